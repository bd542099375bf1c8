"""Extractive QA side by side: the sliding-window lexical baseline, SmolLM2-135M-Instruct
answering zero-shot (generative), and the fine-tuned span model, on the same test questions.

    python benchmarks/qa.py                       # reads runs/qa-en and runs/qa-zh
    python benchmarks/qa.py --train               # trains them first (about 50 and 35 min)
    python benchmarks/qa.py --langs en --write    # and rewrites the QA section of RESULTS.md

English: train on SQuAD v1.1 dev minus XQuAD's paragraphs, score on XQuAD-en (SQuAD's
official EM/F1). Chinese: train on CMRC 2018 trial, score on CMRC 2018 dev (CMRC's official
character EM/F1). The span model's scores are its run's ``results.json`` (the test split,
or the seeded sample of it the run was scored on); the baselines are scored here on the
same questions, the generative model on a seeded sample (``--llm-questions``) with the
lexical baseline and the span model's own answers on that sample beside it.
Run it on a quiet machine: ``python benchmarks/qa.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, table, write_results  # noqa: E402

LANGS = {
    "en": {"data": "squad-xquad", "run": "runs/qa-en", "spans": [1, 2, 3, 4, 6],
           "train": ["--freeze-layers", "24", "--bidirectional", "6", "--threads", "2",
                     "--lr", "2e-4", "--head-lr", "2e-3", "--epochs", "3", "--batch-size", "16",
                     "--time-limit", "2700", "--eval-every", "100", "--val-questions", "150"],
           "published": "SQuAD logistic regression F1 51.0 (on SQuAD dev); multilingual BERT "
                        "trained on all of SQuAD: XQuAD-en F1 88.9 / EM 81.2 (Artetxe et al. "
                        "2020); the issue's reference 83.5"},
    "zh": {"data": "cmrc", "run": "runs/qa-zh", "spans": [2, 4, 6, 8, 12],
           "train": ["--freeze-layers", "24", "--bidirectional", "6", "--threads", "2",
                     "--max-len", "256", "--stride", "64", "--negatives", "0.2", "--lr", "2e-4",
                     "--head-lr", "2e-3", "--set", "train.warmup=10", "--epochs", "10",
                     "--batch-size", "16", "--time-limit", "2000", "--eval-every", "60",
                     "--val-questions", "60", "--test-questions", "150"],
           "published": "BERT-base (Chinese) on CMRC 2018 dev: F1 84.5 (the issue's reference)"},
}  # fmt: skip


def sample(examples, n, seed=1):
    from lmlab.tasks.qa.run import _subset

    return _subset(examples, n, seed)


def fmt(rep) -> tuple[str, str]:
    ci = rep.intervals
    f1 = f"{rep.f1:.1f}" + (f" ({ci['f1'][0]:.1f}-{ci['f1'][1]:.1f})" if "f1" in ci else "")
    return f"{rep.em:.1f}", f1


def bench(lang: str, args) -> tuple[list[list[object]], list[str]]:
    from lmlab.tasks.qa.baselines import GenerativeQA, lexical_answer
    from lmlab.tasks.qa.datasets import load_qa_data
    from lmlab.tasks.qa.metrics import metric_for, score_answers

    spec = LANGS[lang]
    run_dir = ROOT / spec["run"]
    cmd = [sys.executable, "-m", "lmlab", "task", "train", "qa", "--data", spec["data"],
           "--base", "builtin:smollm2", *spec["train"], "--out", str(run_dir)]  # fmt: skip
    notes = [f"span model: `lmlab task train qa --data {spec['data']} --base builtin:smollm2 "
             f"{' '.join(spec['train'])} --out {spec['run']}`"]  # fmt: skip
    if args.train:
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run([*cmd, "--overwrite"], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_qa_data({"builtin": spec["data"]})
    metric = metric_for(data.language)
    notes += [f"{lang} data: {n}" for n in data.notes]
    refs = lambda ex: [e.answer_texts for e in ex]  # noqa: E731
    rows: list[list[object]] = []
    results = (
        json.loads((run_dir / "results.json").read_text())
        if (run_dir / "results.json").is_file()
        else None
    )
    n_test = results["test_questions"] if results else len(data.test)
    test = sample(data.test, n_test if n_test < len(data.test) else None)
    # lexical baseline: its span length chosen on the training part
    t0 = time.perf_counter()
    best_len = max(spec["spans"], key=lambda L: score_answers(
        [lexical_answer(e.question, e.context, L)["text"] for e in data.train],
        refs(data.train), metric, 0).f1)  # fmt: skip
    lex = [lexical_answer(e.question, e.context, best_len)["text"] for e in test]
    rep = score_answers(lex, refs(test), metric)
    lex_f1 = rep.f1
    rows.append([lang, f"sliding-window lexical overlap (spans <= {best_len} units, chosen on train)",
                 f"{rep.n:,}", *fmt(rep), f"{time.perf_counter() - t0:.0f} s (all of it)"])  # fmt: skip
    span_rep = None
    if results:
        r = results["test"]
        ci = r.get("f1_ci95") or []
        f1 = f"{r['f1']:.1f}" + (f" ({ci[0]:.1f}-{ci[1]:.1f})" if ci else "")
        cfg = tomllib.loads((run_dir / "config.toml").read_text())
        seen = results.get("windows_seen", results["steps"] * cfg["train"]["batch_size"])
        cached = results.get("frozen_cache_seconds") or 0
        cached = (
            f" (incl. {cached / 60:.1f} min computing the frozen blocks once)" if cached else ""
        )
        trained = (f"{results['train_seconds'] / 60:.1f} min training{cached}, {results['steps']} steps: "
                   f"{seen:,} windows ({results['epochs']:.2f} epochs of {results['train_windows']:,}), "
                   f"{results['train_tokens_per_s']:.0f} tok/s")  # fmt: skip
        task = cfg["task"]
        how = f"top {30 - int(task.get('freeze_layers', 0))} of 30 blocks"
        if task.get("bidirectional"):
            how += f", top {task['bidirectional']} attending both ways"
        rows.append(
            [
                lang,
                f"SmolLM2-135M + span head, fine-tuned ({how})",
                f"{r['n']:,}",
                f"{r['em']:.1f}",
                f1,
                trained,
            ]
        )
        span_rep = r
        if lang == "en":
            met = "met" if r["f1"] >= 60 else "**not met**"
            notes.append(f"target en: XQuAD-en F1 >= 60 (stretch 70): {r['f1']:.1f}, {met}")
        else:
            met = "met" if r["f1"] >= lex_f1 + 10 else "**not met**"
            notes.append(f"target zh: fine-tuned >= lexical + 10 F1 on the same questions: "
                         f"{r['f1']:.1f} vs {lex_f1:.1f} + 10, {met}")  # fmt: skip
        if test is not data.test:
            notes.append(f"{lang}: scored on a seeded sample of {len(test):,} of the "
                         f"{len(data.test):,} test questions (inference time)")  # fmt: skip
    if args.llm_questions:
        few = sample(test, args.llm_questions, seed=2)
        cache = ROOT / "benchmarks" / "out" / f"qa_llm_{lang}.json"
        saved = json.loads(cache.read_text()) if cache.is_file() else {}
        if saved.get("ids") == [e.id for e in few] and not args.fresh:
            answers, secs = saved["answers"], saved["seconds"]
            notes.append(f"{lang}: generative answers from {cache.relative_to(ROOT)} "
                         "(--fresh to answer again)")  # fmt: skip
        else:
            gen = GenerativeQA("builtin:smollm2")
            t0 = time.perf_counter()
            answers = [gen.answer(e.question, e.context) for e in few]
            secs = time.perf_counter() - t0
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"ids": [e.id for e in few], "answers": answers,
                                         "seconds": secs}, ensure_ascii=False))  # fmt: skip
        rep = score_answers(answers, refs(few), metric)
        rows.append([lang, "SmolLM2-135M-Instruct, zero-shot generative (chat template)",
                     f"{rep.n:,}", *fmt(rep), f"{secs / len(few):.2f} s/question"])  # fmt: skip
        lex_few = score_answers([lexical_answer(e.question, e.context, best_len)["text"] for e in few],
                                refs(few), metric)  # fmt: skip
        rows.append(
            [lang, "  lexical overlap on the same sample", f"{lex_few.n:,}", *fmt(lex_few), ""]
        )
        if span_rep is not None:
            from lmlab.tasks.qa import load_run

            span = load_run(run_dir)
            own = score_answers(
                [a[0]["text"] if a else "" for a in span.answer_many(few)], refs(few), metric
            )
            rows.append([lang, "  span model on the same sample", f"{own.n:,}", *fmt(own), ""])
        shown = [
            (e.question, a, e.answer_texts[0]) for e, a in zip(few[:3], answers[:3], strict=True)
        ]
        notes += [
            f"{lang} generative example: Q {q!r} -> {a!r} (reference {r!r})" for q, a, r in shown
        ]
    notes.append(f"{lang} published: {spec['published']}")
    return rows, notes


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--langs", nargs="+", choices=list(LANGS), default=list(LANGS))
    p.add_argument("--train", action="store_true", help="train the span models first")
    p.add_argument("--llm-questions", type=int, default=100,
                   help="test questions the generative model answers (a seeded sample; 0: skip)")  # fmt: skip
    p.add_argument("--fresh", action="store_true",
                   help="answer with the generative model again, not from benchmarks/out")  # fmt: skip
    p.add_argument("--write", action="store_true", help="rewrite the QA section of RESULTS.md")
    args = p.parse_args()
    rows, notes = [], []
    for lang in args.langs:
        r, n = bench(lang, args)
        rows += r
        notes += n
    headers = ["lang", "method", "questions", "EM", "F1 (95% CI)", "cost"]
    body = table(headers, rows)
    print(body)
    print("\n".join(f"- {n}" for n in notes))
    if args.write:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = os.getloadavg()[0]
        text = (f"Machine: {machine()}; table written {when} (1-minute load {load:.1f}); "
                "the span models' own runs say when and how fast they trained.\n\n"
                f"{body}\n\n" + "\n".join(f"- {n}" for n in notes))  # fmt: skip
        write_results(ROOT / "benchmarks" / "RESULTS.md", "qa", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
