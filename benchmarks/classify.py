"""Text classification: lmlab's classifiers against scikit-learn's TF-IDF + logistic
regression, on the same fixed splits of SST-2, AG News, ChnSentiCorp, waimai_10k and
THUCNews titles.

For every data set the peer is ``TfidfVectorizer`` (English: word 1-2-grams; Chinese:
character 1-3-grams; sublinear tf) + ``LogisticRegression``, its C chosen on the validation
split from 1, 4, 16 (the time column is the chosen fit's). lmlab's families (``bow``,
``textcnn``, ``bilstm``) train from random vectors (English: lower-cased words; Chinese:
characters) with early stopping on validation accuracy, at most 10 minutes each;
``textcnn+vec`` starts TextCNN from 300-d skip-gram vectors that lmlab trains first on
unlabelled text (see ``_write_vector_corpus``: never the data sets' own validation or test
texts, nor NLTK's sentence_polarity, which holds SST's sentences), its time shown as vectors
+ classifier. Every test score is on the test split (SST-2: GLUE's dev set), with a 95%
bootstrap interval.

The pretrained rungs use SmolLM2-135M-Instruct (``builtin:smollm2``): ``lm`` fine-tunes it
with LoRA adapters and a head started from the label words (see :data:`LM_RECIPES`: a seeded
sample of the training texts, a time limit; ``lm:N`` trains on N texts instead, ``lm:N:wK`` on
N of those with K+ words), ``prompt0`` ... ``prompt8`` prompt it with k
demonstrations and read the label words' likelihood (nothing trained; "train s" is then the
time to score the test split).

Run: python benchmarks/classify.py [--datasets sst2,agnews,...] [--models tfidf,textcnn,...]
                                   [--threads 1] [--write]
Each measured row is kept in benchmarks/out/classify/rows.json (with when it was measured),
so one row can be rerun alone; ``--write`` then rebuilds the ``classify`` section of
benchmarks/RESULTS.md from every kept row (rows measured before the store existed are read
back from RESULTS.md), draws the shots exhibit and copies confusion matrices to docs/.
Runs are kept in benchmarks/out/classify/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from _common import ROOT, machine, shared, table, write_results
from lmlab.tasks.classify import train_run
from lmlab.tasks.datasets import TaskData, load_task_data
from lmlab.tasks.metrics import evaluate_predictions

OUT = ROOT / "benchmarks" / "out" / "classify"
DATASETS = ("sst2", "agnews", "chnsenticorp", "waimai", "thucnews")
MODELS = ("tfidf", "bow", "textcnn", "bilstm", "textcnn+vec")
PRETRAINED_MODELS = ("lm", "prompt0", "prompt1", "prompt4", "prompt8")
BASE = "builtin:smollm2"
ROWS = OUT / "rows.json"
# Fine-tuning SmolLM2 with LoRA on 2 shared cores: a seeded, stratified sample of the training
# texts (about what fits the time limit), validations on a sample of the validation split.
LM_RECIPES = {
    "sst2": {"max_train": 4800, "max_len": 64, "time_limit": 1000, "eval_every": 40,
             "max_validation": 500},
    "agnews": {"max_train": 2400, "max_len": 96, "time_limit": 1000, "eval_every": 25,
               "max_validation": 300},
    "chnsenticorp": {"max_train": 1600, "max_len": 160, "time_limit": 1000, "eval_every": 25,
                     "max_validation": 300},
    "waimai": {"max_train": 2400, "max_len": 96, "time_limit": 1000, "eval_every": 25,
               "max_validation": 300},
    "thucnews": {"max_train": 3200, "max_len": 48, "time_limit": 1000, "eval_every": 25,
                 "max_validation": 300},
}  # fmt: skip
LORA = {"rank": 16, "alpha": 32.0}
SHOTS_FIGURE = "classify_prompt_shots.png"
TIME_LIMIT = 600.0  # seconds of training per model: the issue's budget for SST-2's TextCNN
TARGETS = {"sst2": 0.86, "agnews": 0.89, "chnsenticorp": 0.90, "thucnews": 0.85}
LM_TARGET = {"sst2": 0.90}  # fine-tuned pretrained Transformer (stretch 0.913)

# Per data set: tokenizer and training settings shared by lmlab's families.
RECIPES = {
    "sst2": {"tokenizer": {"kind": "word"}, "train": {"epochs": 6, "eval_every": 400, "patience": 4}},
    "agnews": {"tokenizer": {"kind": "word"}, "train": {"epochs": 12, "max_len": 128, "patience": 4}},
    "chnsenticorp": {"tokenizer": {"kind": "char"}, "train": {"epochs": 12, "max_len": 400, "patience": 4}},
    "waimai": {"tokenizer": {"kind": "char"}, "train": {"epochs": 12, "max_len": 200, "patience": 4}},
    "thucnews": {"tokenizer": {"kind": "char"}, "train": {"epochs": 12, "max_len": 64, "patience": 4}},
}  # fmt: skip
FAMILY = {"bow": {}, "textcnn": {}, "bilstm": {}}
FIGURES = {  # run -> picture under docs/ (--write)
    "sst2-textcnn": "classify_sst2_textcnn_confusion.png",
    "thucnews-textcnn+vec": "classify_thucnews_textcnn_confusion.png",
}
NOTES = """\
`lm`: SmolLM2-135M-Instruct (`builtin:smollm2`, GGUF Q4_1 read as float32) with LoRA adapters
(rank 16, alpha 32, on every attention and MLP linear) and a linear head on the last token's
hidden state, started from the label words' output rows; prompt `Review: {text}\\nSentiment:`
(per data set, see lmlab.tasks.prompting); bf16 autocast; trained on the seeded sample of
training texts in the notes within a 1,000 s limit (AG News on all 9,000 texts: 2,400 s,
`lm:9600:t2400`). `prompt k=K`: the same model, K demonstrations (balanced over labels,
seed 1) before the text, label words scored by their likelihood; nothing trained.

Vectors for `textcnn+vec` (300-d skip-gram, 5 epochs, trained by lmlab in the time shown
first): English words from NLTK's movie_reviews (2,000 IMDb reviews) and the 55 Gutenberg
books (7.7M tokens; they cover 83% of SST-2's and 62% of AG News's training words); Chinese
characters (covering 96% and 98% of ChnSentiCorp's and THUCNews's) from
online_shopping_10_cats without its hotel category (whose reviews include 558 of
ChnSentiCorp's 776 test reviews), LCSTS Weibo posts, the WMT news test sets' Chinese side and
the three classical novels. Lines equal to any built-in validation or test text are left
out; NLTK's sentence_polarity (SST's own sentences) is never used.

Vectors for `textcnn+llm`: SmolLM2-135M's input embeddings as static word vectors (Kim 2014's
pretrained vectors, from an LLM's token table instead of word2vec): every word of the
training texts gets the mean of its BPE pieces' 576-d rows, scaled to unit deviation."""


def tfidf(data: TaskData) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if data.language == "zh":
        make = lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)  # noqa: E731
    else:
        make = lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,  # noqa: E731
                                       token_pattern=r"(?u)\b\w+\b|[^\w\s]")  # fmt: skip
    y_tr, y_va = np.array(data.ids(data.train)), np.array(data.ids(data.validation))
    best = None
    for c in (1.0, 4.0, 16.0):
        t0 = time.perf_counter()
        vec = make()
        clf = LogisticRegression(C=c, max_iter=2000).fit(vec.fit_transform(data.train.texts), y_tr)
        seconds = time.perf_counter() - t0
        acc = float((clf.predict(vec.transform(data.validation.texts)) == y_va).mean())
        if best is None or acc > best[0]:
            best = (acc, c, vec, clf, seconds)
    _, c, vec, clf, seconds = best
    pred = clf.predict(vec.transform(data.test.texts))
    report = evaluate_predictions(np.array(data.ids(data.test)), pred, data.labels)
    return {"report": report, "seconds": seconds, "params": int(clf.coef_.size + clf.intercept_.size),
            "note": f"C={c:g}, {len(vec.vocabulary_):,} features"}  # fmt: skip


def _train_vectors(files: list[Path], mode: str, threads: int):
    from lmlab.embeddings.corpus import encode_corpus, iter_sentences
    from lmlab.embeddings.word2vec import Word2VecConfig, train_word2vec

    corpus = encode_corpus(iter_sentences(files, mode, lowercase=True))
    try:
        cfg = Word2VecConfig(sg=True, vector_size=300, window=5, min_count=3, epochs=5,
                             workers=threads, seed=1, progress=False)  # fmt: skip
        return train_word2vec(corpus, cfg).vectors
    finally:
        corpus.close()


def _held_out_texts() -> set[str]:
    """Validation and test texts of every built-in data set: kept out of the vector corpora."""
    out: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("sst2", "agnews", "chnsenticorp", "waimai", "thucnews"):
            d = load_task_data({"builtin": name})
            out.update(d.validation.texts, d.test.texts)
    return out


def _write_vector_corpus(lang: str, folder: Path) -> list[Path]:
    """Unlabelled text for the vectors. English: NLTK movie_reviews (IMDb reviews) + the
    Gutenberg books. Chinese: online_shopping_10_cats reviews without its hotel category (which
    holds most of ChnSentiCorp's reviews), LCSTS Weibo news posts, the Chinese side of the WMT
    news test sets, and the three classical novels. Any line equal to a validation or test
    text of a built-in data set is left out."""
    import csv
    import io

    held_out = _held_out_texts()
    lines: list[str] = []
    files: list[Path] = []
    if lang == "en":
        with zipfile.ZipFile(shared("nltk_data", "movie_reviews.zip")) as z:
            for name in sorted(z.namelist()):
                if name.endswith(".txt") and ("/pos/" in name or "/neg/" in name):
                    lines += z.read(name).decode("utf-8").splitlines()
        files.append(shared("gutenberg"))
    else:
        with zipfile.ZipFile(shared("sentiment_zh", "online_shopping_10_cats.zip")) as z:
            text = z.read("online_shopping_10_cats.csv").decode("utf-8-sig")
        lines += [r["review"].lstrip("\ufeff") for r in csv.DictReader(io.StringIO(text))
                  if r["cat"] != "酒店"]  # fmt: skip
        lines += shared("summarization_zh", "lcsts_part2.src.txt").read_text("utf-8").splitlines()
        for year in (18, 19, 20):
            f = shared("translation_wmt", f"damo_mt_testsets_zh2en_news_wmt{year}.csv")
            lines += [row[0] for row in csv.reader(io.StringIO(f.read_text("utf-8"))) if row]
        files.append(shared("zh_classics"))
    kept = [x.strip() for x in lines if x.strip() and x.strip() not in held_out]
    own = folder / f"unlabelled_{lang}.txt"
    own.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return [own, *files]


def pretrained_vectors(lang: str, threads: int) -> tuple[Path, float]:
    """300-d skip-gram vectors, words (English) or characters (Chinese), trained here on
    unlabelled text (cached in benchmarks/out/classify with their training time)."""
    from lmlab.embeddings.corpus import list_files

    path = OUT / f"vectors_{lang}_sg300.bin"
    stamp = path.with_suffix(".seconds")
    if path.is_file() and stamp.is_file():
        return path, float(stamp.read_text())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = list_files([str(f) for f in _write_vector_corpus(lang, Path(tmp))])
        vectors = _train_vectors(files, "words" if lang == "en" else "chars", threads)
    OUT.mkdir(parents=True, exist_ok=True)
    vectors.save(path)
    seconds = time.perf_counter() - t0
    stamp.write_text(f"{seconds:.1f}")
    return path, seconds


def llm_word_vectors(name: str, data) -> tuple[Path, float]:
    """SmolLM2-135M's input embeddings as static word vectors: Kim (2014)'s recipe of
    pretrained vectors under TextCNN, with an LLM's token table in place of word2vec's. Each
    word of the training texts (lower-cased, as the word tokenizer splits them) gets the mean
    of its BPE pieces' rows (the word as it follows a space), 576-d, scaled to unit standard
    deviation like the classifier's random rows (cached in benchmarks/out/classify)."""
    import numpy as np

    from lmlab.embeddings.vectors import Vectors
    from lmlab.run import load_run
    from lmlab.tokenize.word import split_words

    path = OUT / f"vectors_{name}_smollm2.bin"
    stamp = path.with_suffix(".seconds")
    if path.is_file() and stamp.is_file():
        return path, float(stamp.read_text())
    t0 = time.perf_counter()
    r = load_run("builtin:smollm2")
    table = r.model.tok_emb.weight.detach().float().numpy()
    words = sorted({w for t in data.train.texts
                    for w in split_words(t, lowercase=True, newlines=False)})  # fmt: skip
    mat = np.stack([table[r.tokenizer.encode(" " + w)].mean(0) for w in words])
    mat = (mat - mat.mean()) / mat.std()
    OUT.mkdir(parents=True, exist_ok=True)
    Vectors(words, mat.astype(np.float32)).save(path)
    seconds = time.perf_counter() - t0
    stamp.write_text(f"{seconds:.1f}")
    return path, seconds


def lmlab_model(name: str, model: str, threads: int, vectors: Path | None) -> dict:
    """``textcnn``, ``textcnn+vec`` (pretrained vectors), ``textcnn+llm`` (SmolLM2's input
    embeddings as word vectors), ``textcnn@word`` (another tokenizer
    than the data set's usual one: ``word`` cuts Chinese with jieba), ``textcnn+vec:w123:f256``
    (TextCNN's filter widths 1, 2, 3 and 256 filters of each)."""
    recipe = RECIPES[name]
    model, _, kind = model.partition("@")
    family = model.split("+")[0].split(":")[0]
    settings = dict(FAMILY[family])
    for opt in model.split(":")[1:]:
        if opt.startswith("w"):
            settings["widths"] = [int(c) for c in opt[1:]]
        elif opt.startswith("f"):
            settings["filters"] = int(opt[1:])
        else:
            raise SystemExit(f"unknown model option {opt!r} in {model!r}")
    cfg = {
        "task": {"data": {"builtin": name}},
        "tokenizer": {"kind": kind} if kind else dict(recipe["tokenizer"]),
        "model": {"family": family, **settings},
        "train": {**recipe["train"], "threads": threads, "time_limit": TIME_LIMIT},
    }
    if vectors is not None:
        cfg["task"]["embeddings"] = {"path": str(vectors), "freeze": False}
    out = OUT / (f"{name}-{model.replace(':', '-')}" + (f"-{kind}" if kind else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # texts cut to max_len: counted in the log line
        run, reports = train_run(cfg, out, overwrite=True, progress=False, log=lambda s: None)
    import json

    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {"report": reports["test"], "seconds": res["train_seconds"], "params": res["parameters"],
            "note": f"{res['steps']:,} steps, best at {res['best_step']:,} (validation "
                    f"{res['validation']['accuracy']:.1%}), {res['stopped']}",
            "run": out}  # fmt: skip


def _shots(model: str) -> dict[str, int]:
    """``prompt4`` -> 4 shots, seed 1; ``prompt4s2`` -> 4 shots drawn with seed 2."""
    k, _, seed = model.removeprefix("prompt").partition("s")
    return {"shots": int(k), "shot_seed": int(seed or 1)}


def pretrained_model(name: str, model: str, threads: int) -> dict:
    """``lm`` (LoRA fine-tuning) or ``promptK`` (K demonstrations) on SmolLM2."""
    # lm, lm:N (N training texts), lm:N:wK (and only texts of K+ words), lm:N:tS (S seconds),
    # lm:N:eE (E epochs)
    if model.startswith("lm"):
        recipe = dict(LM_RECIPES[name])
        if ":" in model:
            n, *extra = model.split(":")[1:]
            recipe.update(max_train=int(n), eval_every=max(recipe["eval_every"], int(n) // 32 // 6))
            for x in extra:
                if x.startswith("t"):
                    recipe["time_limit"] = int(x[1:])
                elif x.startswith("e"):
                    recipe["epochs"] = int(x[1:])
                else:
                    recipe["min_words"] = int(x.removeprefix("w"))
        cfg = {"task": {"data": {"builtin": name}, "base": BASE},
               "model": {"family": "lm", "lora": dict(LORA)},
               "train": {**recipe, "threads": threads}}  # fmt: skip
    else:
        cfg = {"task": {"data": {"builtin": name}, "base": BASE},
               "model": {"family": "prompt", **_shots(model)},
               "train": {"threads": threads, "max_validation": 300}}  # fmt: skip
    out = OUT / f"{name}-{model.replace(':', '-')}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run, reports = train_run(cfg, out, overwrite=True, progress=False,
                                 log=lambda s: print("   ", s, file=sys.stderr, flush=True))  # fmt: skip
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    if model.startswith("lm"):
        n = res["sizes"]["train"]
        words = f" of {recipe['min_words']}+ words" if recipe.get("min_words") else ""
        words += f" x {recipe['epochs']} epochs" if recipe.get("epochs", 1) != 1 else ""
        note = (f"LoRA r{LORA['rank']}, {n:,} training texts{words}, {res['steps']:,} steps, best at "
                f"{res['best_step']:,}, {res['stopped']}")  # fmt: skip
        return {"report": reports["test"], "seconds": res["train_seconds"], "params": res["parameters"],
                "note": note, "run": out, "trainable": res["trainable_parameters"]}  # fmt: skip
    n_test = reports["test"].n
    secs = res["eval_seconds"] * n_test / (n_test + reports["validation"].n)
    return {"report": reports["test"], "seconds": secs, "params": res["parameters"],
            "note": f"{_shots(model)['shots']}-shot (demonstration seed {_shots(model)['shot_seed']}), "
                    "nothing trained; time: scoring the test split",
            "run": out}  # fmt: skip


ABLATION = OUT / "ablation.json"
ABLATION_RECIPE = {"max_train": 640, "max_validation": 500, "max_len": 64, "eval_every": 10,
                   "epochs": 1, "patience": 0}  # fmt: skip


def pooling_ablation(threads: int) -> None:
    """Which pooling (and head start) for ``lm``: 20 LoRA steps each on SST-2 (640 training
    texts), scored on 500 validation texts (the selection split, never the test split)."""
    results = []
    for pooling, head in (("last", "label_words"), ("last", "random"), ("mean", "random")):
        cfg = {"task": {"data": {"builtin": "sst2"}, "base": BASE},
               "model": {"family": "lm", "lora": dict(LORA), "pooling": pooling, "head_init": head},
               "train": {**ABLATION_RECIPE, "threads": threads}}  # fmt: skip
        out = OUT / f"ablation-{pooling}-{head}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, reports = train_run(cfg, out, overwrite=True, progress=False, log=lambda s: None)
        hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        v = reports["validation"]
        results.append({"pooling": pooling, "head_init": head,
                        "curve": [round(h["val_accuracy"], 4) for h in hist],
                        "accuracy": v.accuracy, "ci": list(v.intervals["accuracy"]),
                        "seconds": json.loads((out / "results.json").read_text())["train_seconds"]})  # fmt: skip
        print(f"  {pooling} / {head}: validation {v.accuracy:.4f} curve {results[-1]['curve']}",
              file=sys.stderr, flush=True)  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    ABLATION.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "load": round(os.getloadavg()[0], 1), "runs": results}, indent=1))  # fmt: skip


def _ablation_text() -> str:
    if not ABLATION.is_file():  # kept as RESULTS.md has it
        text = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
        kept = re.search(r"\n\n(Pooling and head start for `lm`.*?)\n\n`lm`: ", text, re.S)
        return "\n\n" + kept.group(1) if kept else ""
    a = json.loads(ABLATION.read_text())
    rows = [[r["pooling"], r["head_init"].replace("_", " "), f"{r['accuracy']:.2%} "
             f"({r['ci'][0]:.1%}-{r['ci'][1]:.1%})", " ".join(f"{x:.3f}" for x in r["curve"]),
             f"{r['seconds']:.0f}"] for r in a["runs"]]  # fmt: skip
    return (
        "\n\nPooling and head start for `lm` (`--pooling-ablation`, measured "
        f"{a['measured']}, load {a['load']}): SmolLM2 + LoRA, 20 steps of 32 SST-2 training "
        "texts each; SST-2 validation accuracy (500 texts, never the test split) of the "
        "selected model, and the curve at steps 10 and 20:\n\n"
        + table(["pooling", "head start", "validation accuracy", "curve", "train s"], rows)
    )


def _row_cells(name: str, model: str, r: dict, vec_seconds: float | None) -> list[str]:
    rep = r["report"]
    ci = rep.intervals["accuracy"]
    secs = f"{r['seconds']:.0f}"
    if ("+vec" in model or "+llm" in model) and vec_seconds is not None:
        secs = f"{vec_seconds:.0f} + {r['seconds']:.0f}"
    label = {"tfidf": "TF-IDF + LR (scikit-learn)"}.get(
        model,
        f"lmlab {model.replace('prompt', 'prompt k=')}"
        if model.startswith("prompt")
        else "lmlab lm (SmolLM2 + LoRA)"
        if model.startswith("lm")
        else f"lmlab {model}",
    )
    params = f"{r['params']:,}" + (f" ({r['trainable']:,} trained)" if r.get("trainable") else "")
    return [name, label, f"{rep.accuracy:.2%} ({ci[0]:.1%}-{ci[1]:.1%})", f"{rep.macro_f1:.4f}",
            secs, params, r["note"]]  # fmt: skip


def _old_rows() -> dict[str, dict]:
    """Rows of the RESULTS.md table measured before rows.json existed, with their date."""
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    sec = re.search(r"<!-- classify:start -->(.*?)<!-- classify:end -->", text, re.S)
    if sec is None:
        return {}
    when = re.search(
        r"Measured (\d{4}-\d\d-\d\d \d\d:\d\d UTC) \(load average ([\d.]+)", sec.group(1)
    )
    out = {}
    for line in sec.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("data set", "") or set(cells[0]) <= {"-"}:
            continue
        model = "tfidf" if cells[1].startswith("TF-IDF") else cells[1].removeprefix("lmlab ")
        if model.startswith("lm ("):  # one row per recipe: lm:N[:wK], as the command named it
            n = re.search(r"([\d,]+) training texts( of (\d+)\+ words)?( x (\d+) epochs)?",
                          cells[6])  # fmt: skip
            model = "lm"
            if n is not None:
                model += f":{n.group(1).replace(',', '')}"
                model += f":w{n.group(3)}" if n.group(3) else ""
                model += f":e{n.group(5)}" if n.group(5) else ""
        model = model.replace("prompt k=", "prompt")
        acc = float(cells[2].split("%")[0]) / 100
        stamp = re.match(r"(.+ UTC) \(([\d.]+)\)", cells[7]) if len(cells) > 7 else None
        measured, load = (
            (stamp.group(1), float(stamp.group(2)))
            if stamp
            else ((when.group(1), float(when.group(2))) if when else ("?", None))
        )
        out[f"{cells[0]}|{model}"] = {"dataset": cells[0], "model": model, "cells": cells[:7],
                                       "accuracy": acc, "measured": measured,
                                       "load": load}  # fmt: skip
    return out


def load_rows() -> dict[str, dict]:
    if ROWS.is_file():
        return json.loads(ROWS.read_text(encoding="utf-8"))
    return _old_rows()


def shots_figure(rows: dict[str, dict], path: Path) -> Path | None:
    """Accuracy against the number of demonstrations, one line per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[int, list[float]]] = {}
    for row in rows.values():
        if row["model"].startswith("prompt"):
            k = _shots(row["model"])["shots"]
            series.setdefault(row["dataset"], {}).setdefault(k, []).append(row["accuracy"])
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, pts in sorted(series.items()):
        ks = sorted(pts)
        for k in ks:  # each demonstration seed
            ax.scatter(
                [k] * len(pts[k]), np.array(pts[k]) * 100, color="tab:blue", alpha=0.35, s=18
            )
        mean = [100 * float(np.mean(pts[k])) for k in ks]
        ax.plot(ks, mean, marker="o", color="tab:blue",
                label=f"{name}: SmolLM2-135M-Instruct (mean over demonstration seeds)")  # fmt: skip
        fts = [r for r in rows.values() if r["dataset"] == name and r["model"].startswith("lm")]
        ft = max(fts, key=lambda r: r["accuracy"]) if fts else None
        if ft:
            ax.axhline(
                ft["accuracy"] * 100, ls="--", color="gray", label=f"{name}: fine-tuned (LoRA)"
            )
        peer = rows.get(f"{name}|tfidf")
        if peer:
            ax.axhline(peer["accuracy"] * 100, ls=":", color="black", label=f"{name}: TF-IDF + LR")
    ax.axhline(50, ls="-", lw=0.8, color="red", alpha=0.5, label="chance (2 classes)")
    ax.set_xticks([0, 1, 4, 8])
    ax.set_xlabel("demonstrations in the prompt (k shots)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Prompting a 135M instruct model: accuracy against shots")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine two threads stall)")  # fmt: skip
    ap.add_argument("--write", action="store_true", help="update RESULTS.md and the docs figure")
    ap.add_argument("--write-only", action="store_true",
                    help="measure nothing; rebuild RESULTS.md's section from the kept rows")  # fmt: skip
    ap.add_argument("--pooling-ablation", action="store_true",
                    help="lm on SST-2, short: pooling last/mean x head from label words/random")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.write_only:
        write_all(load_rows(), args.threads)
        print(docs_table(load_rows()))
        return 0
    if args.pooling_ablation:
        pooling_ablation(args.threads)
        if args.write:
            write_all(load_rows(), args.threads)
        return 0
    datasets = args.datasets.split(",")
    models = args.models.split(",")
    load = os.getloadavg()[0]
    rows, results = [], {}
    vec_seconds = None
    kept = load_rows()
    for name in datasets:
        data = load_task_data({"builtin": name})
        print(f"{name}: {data.sizes()}", file=sys.stderr, flush=True)
        for model in models:
            t0 = time.perf_counter()
            if model == "tfidf":
                r = tfidf(data)
            elif model.startswith(("lm", "prompt")):
                r = pretrained_model(name, model, args.threads)
            else:
                vectors = None
                if "+vec" in model:
                    vectors, vec_seconds = pretrained_vectors(data.language, args.threads)
                elif "+llm" in model:
                    vectors, vec_seconds = llm_word_vectors(name, data)
                r = lmlab_model(name, model, args.threads, vectors)
            results[(name, model)] = r
            rep = r["report"]
            rows.append(_row_cells(name, model, r, vec_seconds))
            kept[f"{name}|{model}"] = {"dataset": name, "model": model, "cells": rows[-1],
                                        "accuracy": rep.accuracy, "ci": list(rep.intervals["accuracy"]),
                                        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        "load": round(load, 1)}  # fmt: skip
            OUT.mkdir(parents=True, exist_ok=True)
            ROWS.write_text(json.dumps(kept, indent=1, ensure_ascii=False), encoding="utf-8")
            print(f"  {model}: test accuracy {rep.accuracy:.4f}, macro-F1 {rep.macro_f1:.4f}, "
                  f"{r['seconds']:.0f} s ({time.perf_counter() - t0:.0f} s wall)",
                  file=sys.stderr, flush=True)  # fmt: skip
    headers = ["data set", "model", "test accuracy (95% CI)", "macro-F1", "train s",
               "parameters", "notes"]  # fmt: skip
    print(table(headers, rows))
    if args.write:
        write_all(kept, args.threads)
    return 0


def _verdicts(kept: dict[str, dict]) -> list[str]:
    out = []
    for name in DATASETS:
        mine = {r["model"]: r["accuracy"] for r in kept.values() if r["dataset"] == name}
        if not mine:
            continue
        peer = mine.pop("tfidf", None)
        if not mine:
            continue
        # SST-2's 86% is the TextCNN-from-scratch target; the others hold for any model.
        pool = {m: a for m, a in mine.items() if name != "sst2" or m.startswith("textcnn")}
        best_acc, best = max((a, m) for m, a in (pool or mine).items())
        target = TARGETS.get(name)
        if target is not None:
            met = "met" if best_acc >= target else "not met"
            out.append(
                f"- {name}: {'TextCNN' if name == 'sst2' else 'best lmlab'} ({best}) "
                f"{best_acc:.2%} vs target {target:.1%}: **{met}**"
            )
        else:
            out.append(f"- {name}: best lmlab {best} {best_acc:.2%} (no target)")
        lms = {m: a for m, a in mine.items() if m.startswith("lm")}
        if name in LM_TARGET and lms:
            acc, m = max((a, m) for m, a in lms.items())
            met = "met" if acc >= LM_TARGET[name] else "not met"
            out.append(f"  - fine-tuned pretrained Transformer (best: {m}) {acc:.2%} vs target "
                       f"{LM_TARGET[name]:.1%} (stretch 91.3%): **{met}**")  # fmt: skip
        if peer is not None:
            below = [m for m, a in mine.items() if a <= peer]
            out.append(
                f"  - below or equal to TF-IDF ({peer:.2%}): {', '.join(below) if below else 'none'}"
            )
    return out


def docs_table(kept: dict[str, dict]) -> str:
    """The docs' pivot: one row per model, one column per data set (test accuracy, time)."""
    names = [d for d in DATASETS if any(r["dataset"] == d for r in kept.values())]
    groups: dict[str, list[str]] = {}  # lm and lm:N share a row
    for r in sorted(kept.values(), key=lambda r: _model_order(r["model"])):
        m = r["model"]  # lm and lm:N share a row; TextCNN's settings (textcnn:w123) do not
        g = groups.setdefault(m.split(":")[0] if m.startswith("lm") else m, [])
        if r["model"] not in g:
            g.append(r["model"])
    lines = ["| model | " + " | ".join(names) + " | parameters |", "|---" * (len(names) + 2) + "|"]
    for m, members in groups.items():
        cells, params = [], set()
        for d in names:
            found = [kept[f"{d}|{x}"] for x in members if f"{d}|{x}" in kept]
            if not found:
                cells.append("–")
                continue
            r = max(found, key=lambda r: r["accuracy"])
            cell = f"{r['accuracy']:.2%}, {r['cells'][4]} s"
            if n := re.search(r"([\d,]+) training texts", r["cells"][6]):
                cell += f" ({n.group(1)} texts)"
            cells.append(cell)
            params.add(r["cells"][5].split(" (")[0])
        label = kept[next(k for k in kept if kept[k]["model"] == members[0])]["cells"][1]
        if m.startswith("prompt"):
            sh = _shots(m)
            label = f"lmlab prompt k={sh['shots']}" + (
                f" (seed {sh['shot_seed']})" if sh["shot_seed"] != 1 else ""
            )
        nums = sorted(int(x.replace(",", "")) for x in params)
        lo, hi = (f"{nums[0] / 1e6:.1f}M", f"{nums[-1] / 1e6:.1f}M") if nums else ("", "")
        ptxt = lo + (f"–{hi}" if hi != lo else "")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ptxt} |")
    return "\n".join(lines)


def _model_order(m: str) -> float:
    base = {x: i for i, x in enumerate(("tfidf", *MODELS[1:]))}
    if m in base:
        return base[m]
    if m.startswith("lm"):
        return 10 + (int(m.split(":")[1]) / 1e6 if ":" in m else 0.5)
    if m.startswith("prompt"):
        return 20 + _shots(m)["shots"] + _shots(m)["shot_seed"] / 10
    return 99


def write_all(kept: dict[str, dict], threads: int) -> None:
    """RESULTS.md's classify section from every kept row, the shots figure, the confusions."""
    order = {m: i for i, m in enumerate(("tfidf", *MODELS[1:], *PRETRAINED_MODELS))}
    order.update({m: 20 + _shots(m)["shots"] + _shots(m)["shot_seed"] / 10
                  for m in {r["model"] for r in kept.values()} if m.startswith("prompt")})  # fmt: skip
    order.update(
        {
            m: len(MODELS) + int(m.split(":")[1]) / 1e6
            for m in {r["model"] for r in kept.values()}
            if m.startswith("lm:")
        }
    )
    ds = {d: i for i, d in enumerate(DATASETS)}
    keys = sorted(
        kept, key=lambda k: (ds.get(kept[k]["dataset"], 99), order.get(kept[k]["model"], 99))
    )
    headers = ["data set", "model", "test accuracy (95% CI)", "macro-F1", "train s",
               "parameters", "notes", "measured (load)"]  # fmt: skip
    body = table(headers, [[*kept[k]["cells"][:7], f"{kept[k]['measured']} ({kept[k].get('load', '?')})"]
                           for k in keys])  # fmt: skip
    head = ("## Text classification — `python benchmarks/classify.py --threads 1`\n\n"
            f"{machine().rsplit(', ', 1)[0]}; 1 or 2 PyTorch threads per run, as its command "
            "gave. Each row says when it was measured and the load average then (other "
            "jobs shared the 2 cores; rows are rerun one at a time with --datasets/--models).\n"
            "Test split scores (SST-2: GLUE dev); time is training only (lmlab: the training loop "
            "with its validations; TF-IDF: vectorise + fit; prompting: scoring the test split).\n")  # fmt: skip
    write_results(ROOT / "benchmarks" / "RESULTS.md", "classify",
                  head + "\n" + body + "\n\n" + "\n".join(_verdicts(kept)) + _ablation_text() + "\n\n" + NOTES)  # fmt: skip
    for run, name in FIGURES.items():
        if (OUT / run / "confusion.png").is_file():
            shutil.copy(OUT / run / "confusion.png", ROOT / "docs" / name)
    shots_figure(kept, ROOT / "docs" / SHOTS_FIGURE)


if __name__ == "__main__":
    sys.exit(main())
