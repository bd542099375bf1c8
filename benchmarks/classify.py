"""Text classification: lmlab's classifiers against scikit-learn's TF-IDF + logistic
regression, on the same fixed splits of SST-2, AG News, ChnSentiCorp and THUCNews titles.

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

Run: python benchmarks/classify.py [--datasets sst2,agnews,...] [--models tfidf,textcnn,...]
                                   [--threads 1] [--write]
``--write`` replaces the ``classify`` section of benchmarks/RESULTS.md and copies two
confusion matrices to docs/. Runs are kept in benchmarks/out/classify/.
"""

from __future__ import annotations

import argparse
import os
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
DATASETS = ("sst2", "agnews", "chnsenticorp", "thucnews")
MODELS = ("tfidf", "bow", "textcnn", "bilstm", "textcnn+vec")
TIME_LIMIT = 600.0  # seconds of training per model: the issue's budget for SST-2's TextCNN
TARGETS = {"sst2": 0.86, "agnews": 0.89, "chnsenticorp": 0.90, "thucnews": 0.85}

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
Vectors for `textcnn+vec` (300-d skip-gram, 5 epochs, trained by lmlab in the time shown
first): English words from NLTK's movie_reviews (2,000 IMDb reviews) and the 55 Gutenberg
books (7.7M tokens; they cover 83% of SST-2's and 62% of AG News's training words); Chinese
characters (covering 96% and 98% of ChnSentiCorp's and THUCNews's) from
online_shopping_10_cats without its hotel category (whose reviews include 558 of
ChnSentiCorp's 776 test reviews), LCSTS Weibo posts, the WMT news test sets' Chinese side and
the three classical novels. Lines equal to any built-in validation or test text are left
out; NLTK's sentence_polarity (SST's own sentences) is never used."""


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


def lmlab_model(name: str, model: str, threads: int, vectors: Path | None) -> dict:
    recipe = RECIPES[name]
    family = model.split("+")[0]
    cfg = {
        "task": {"data": {"builtin": name}},
        "tokenizer": dict(recipe["tokenizer"]),
        "model": {"family": family, **FAMILY[family]},
        "train": {**recipe["train"], "threads": threads, "time_limit": TIME_LIMIT},
    }
    if vectors is not None:
        cfg["task"]["embeddings"] = {"path": str(vectors), "freeze": False}
    out = OUT / f"{name}-{model}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # texts cut to max_len: counted in the log line
        run, reports = train_run(cfg, out, overwrite=True, progress=False, log=lambda s: None)
    import json

    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {"report": reports["test"], "seconds": res["train_seconds"], "params": res["parameters"],
            "note": f"{res['steps']:,} steps, best at {res['best_step']:,}, {res['stopped']}",
            "run": out}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine two threads stall)")  # fmt: skip
    ap.add_argument("--write", action="store_true", help="update RESULTS.md and the docs figure")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    datasets = args.datasets.split(",")
    models = args.models.split(",")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    rows, results = [], {}
    vec_seconds = None
    for name in datasets:
        data = load_task_data({"builtin": name})
        print(f"{name}: {data.sizes()}", file=sys.stderr, flush=True)
        for model in models:
            t0 = time.perf_counter()
            if model == "tfidf":
                r = tfidf(data)
            else:
                vectors = None
                if model.endswith("+vec"):
                    vectors, vec_seconds = pretrained_vectors(data.language, args.threads)
                r = lmlab_model(name, model, args.threads, vectors)
            results[(name, model)] = r
            rep = r["report"]
            ci = rep.intervals["accuracy"]
            secs = f"{r['seconds']:.0f}"
            if model.endswith("+vec") and vec_seconds is not None:
                secs = f"{vec_seconds:.0f} + {r['seconds']:.0f}"
            peer = model == "tfidf"
            rows.append([name, "TF-IDF + LR (scikit-learn)" if peer else f"lmlab {model}",
                         f"{rep.accuracy:.2%} ({ci[0]:.1%}-{ci[1]:.1%})", f"{rep.macro_f1:.4f}",
                         secs, f"{r['params']:,}", r["note"]])  # fmt: skip
            print(f"  {model}: test accuracy {rep.accuracy:.4f}, macro-F1 {rep.macro_f1:.4f}, "
                  f"{r['seconds']:.0f} s ({time.perf_counter() - t0:.0f} s wall)",
                  file=sys.stderr, flush=True)  # fmt: skip
    headers = [
        "data set",
        "model",
        "test accuracy (95% CI)",
        "macro-F1",
        "train s",
        "parameters",
        "notes",
    ]
    body = table(headers, rows)
    print(body)
    verdicts = []
    for name in datasets:
        peer = results.get((name, "tfidf"))
        best = max(
            (v["report"].accuracy, m) for (n, m), v in results.items() if n == name and m != "tfidf"
        )
        target = TARGETS.get(name)
        if target is not None:
            met = "met" if best[0] >= target else "not met"
            verdicts.append(
                f"- {name}: best lmlab {best[1]} {best[0]:.2%} vs target {target:.1%}: **{met}**"
            )
        if peer is not None:
            below = [m for (n, m), v in results.items()
                     if n == name and m != "tfidf" and v["report"].accuracy <= peer["report"].accuracy]  # fmt: skip
            verdicts.append(f"  - below or equal to TF-IDF ({peer['report'].accuracy:.2%}): "
                            f"{', '.join(below) if below else 'none'}")  # fmt: skip
    print("\n".join(verdicts))
    if args.write:
        head = (f"## Text classification — `python benchmarks/classify.py --threads {args.threads}`\n\n"
                f"Measured {started} (load average {load:.1f} at the start: other jobs shared the 2 "
                f"cores), {machine()}.\nTest split scores (SST-2: GLUE dev); time is training "
                "only (lmlab: the training loop with its validations; TF-IDF: vectorise + fit).\n")  # fmt: skip
        write_results(ROOT / "benchmarks" / "RESULTS.md", "classify",
                      head + "\n" + body + "\n\n" + "\n".join(verdicts) + "\n\n" + NOTES)  # fmt: skip
        for run, name in FIGURES.items():
            if (OUT / run / "confusion.png").is_file():
                shutil.copy(OUT / run / "confusion.png", ROOT / "docs" / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
