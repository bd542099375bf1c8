"""Summarisation benchmark: the encoder-decoder Transformer trained from scratch on LCSTS part
II (Weibo text -> headline) and on CSL (abstract -> title), with its pointer-generator output
(``pointer-*``, lmlab's default for summarisation) and without (``transformer-*``), test
ROUGE-1/2/L (rouge-score, Chinese on characters) with greedy and beam-search decoding, beside
the lead-1 and TextRank-1 extractive baselines on the same test split
(``summarize_baselines``' functions); and the GRU seq2seq on LCSTS on the same budget.

    python benchmarks/summarize.py --job transformer-lcsts --minutes 20 --threads 1
    python benchmarks/summarize.py --job transformer-csl --minutes 15 --threads 1
    python benchmarks/summarize.py --job pointer-lcsts --minutes 20 --threads 1
    python benchmarks/summarize.py --job pointer-csl --minutes 15 --threads 1
    python benchmarks/summarize.py --job rnn-lcsts --minutes 20 --threads 1
    python benchmarks/summarize.py --job pointer-lcsts-30 --threads 1   # the budget's effect
    python benchmarks/summarize.py --no-repeat pointer-lcsts --no-repeat pointer-csl
    python benchmarks/summarize.py --table --write     # RESULTS.md section from the runs

Each job trains for ``--minutes`` (training time, validations included; the test decoding
comes after) into ``benchmarks/out/summarize/JOB`` and writes its ``results.json``.
``--no-repeat JOB`` chooses ``--no-repeat-ngram`` for a finished run on its validation split
(beam 5; N in 0, 2, 3, the best validation ROUGE-L, the smaller N on a tie), decodes the test
split once with it and writes ``no_repeat.json`` beside the run's results; the table shows
that row too.
Target (issue 14): LCSTS and CSL test ROUGE-L >= 3 points above the best extractive baseline.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from _common import ROOT, results_section, shared, table  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "summarize"
TRANSFORMER = {"family": "transformer", "d_model": 256, "n_head": 4, "n_enc_layer": 3,
               "n_dec_layer": 3, "d_ff": 1024, "block": "gpt2", "copy": False}  # fmt: skip
POINTER = {**TRANSFORMER, "copy": True}  # the same with a pointer-generator (the default)
RNN = {"family": "rnn", "embed_dim": 256, "hidden": 512, "attn_dim": 256}
# text tokens kept (characters): LCSTS texts are at most 152, CSL abstracts 410 at the 95th
# percentile (longer ones are cut, and counted in results.json)
# A short warm-up (100 steps): the budget allows only about a thousand steps on one thread.
# LCSTS (9,638 texts, a few epochs in the budget) is under-fitted: little dropout; CSL (900
# texts, tens of epochs) over-fits: heavy dropout.
DATA = {"lcsts": {"max_len": 160, "summary_max_len": 32, "batch_size": 32, "eval_every": 250,
                  "valid_rouge": 200},
        "csl": {"max_len": 320, "summary_max_len": 56, "batch_size": 32, "eval_every": 100,
                "valid_rouge": 100}}  # fmt: skip
DROPOUT = {"lcsts": 0.1, "csl": 0.3}
JOBS = {"transformer-lcsts": (TRANSFORMER, "lcsts"), "transformer-csl": (TRANSFORMER, "csl"),
        "pointer-lcsts": (POINTER, "lcsts"), "pointer-csl": (POINTER, "csl"),
        "rnn-lcsts": (RNN, "lcsts"),
        "pointer-lcsts-30": (POINTER, "lcsts")}  # fmt: skip
# minutes per job unless --minutes: the budget ablation's name says its own
MINUTES = {"pointer-lcsts-30": 30.0}
K = 1  # extractive baselines: one sentence (a headline, a title)
NO_REPEAT = (0, 2, 3)  # --no-repeat-ngram values tried on validation (0: off)


def run_job(name: str, minutes: float, threads: int) -> dict:
    from lmlab.tasks.summarize import train_run

    model, data = JOBS[name]
    cfg = {
        "task": {"kind": "summarize", "data": {"name": data}},
        "tokenizer": {"kind": "char", "vocab_size": 5000},
        "model": {**model, "dropout": DROPOUT[data]},
        "train": {"time_limit": minutes * 60, "threads": threads, "lr": 1e-3, "warmup": 100,
                  "beam": 5, "alpha": 1.0, "select": "rougeL", **DATA[data]},
    }  # fmt: skip
    train_run(cfg, OUT / name, overwrite=True)
    return json.loads((OUT / name / "results.json").read_text(encoding="utf-8"))


def tune_no_repeat(name: str) -> dict:
    """Choose ``no_repeat_ngram`` on the run's validation split, then score the test split
    with it once; written to the run's ``no_repeat.json``."""
    from lmlab.tasks.summarize.run import load_run

    run = load_run(OUT / name)
    data = run.task_data()
    val, test = data.split("validation"), data.split("test")
    t0 = time.perf_counter()
    scores = {}
    for n in NO_REPEAT:
        scores[n] = run.evaluate(val, "beam", no_repeat_ngram=n)[0]["rougeL"]
        print(f"{name}: validation ROUGE-L with no-repeat {n}: {scores[n]:.2f}", flush=True)
    best = max(NO_REPEAT, key=lambda n: (scores[n], -n))
    test_scores, hyps, tps = run.evaluate(test, "beam", no_repeat_ngram=best)
    out = {"validation_texts": len(val.texts), "validation_rougeL": scores, "chosen": best,
           "test": {**test_scores, "decode_tokens_per_second": round(tps, 1)},
           "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    (OUT / name / "no_repeat.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    (OUT / name / "test.beam.no_repeat.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    return out


def baselines(name: str) -> dict[str, dict]:
    from lmlab.tasks.summarize.data import load_summaries
    from lmlab.tasks.summarize.extractive import lead, textrank
    from lmlab.tasks.summarize.metrics import rouge

    test = load_summaries(name)["test"]
    return {f"{m}-{K}": rouge([fn(x, "zh", K) for x in test.texts], test.summaries, "zh")
            for m, fn in (("lead", lead), ("textrank", textrank))}  # fmt: skip


def examples(name: str, n: int = 3) -> list[tuple[str, str, str, float]]:
    """The test summaries with the highest and lowest ROUGE-L: (text, beam summary,
    reference, ROUGE-L)."""
    from lmlab.tasks.summarize.data import load_summaries
    from lmlab.tasks.summarize.metrics import rouge

    f = OUT / name / "test.beam.txt"
    data = JOBS[name][1]
    test = load_summaries(data)["test"]
    hyps = f.read_text(encoding="utf-8").split("\n")[: len(test)]
    scored = [(t, h, r, rouge([h], [r], "zh")["rougeL"])
              for t, h, r in zip(test.texts, hyps, test.summaries, strict=True)]  # fmt: skip
    scored.sort(key=lambda x: -x[3])
    return scored[:n] + scored[-n:]


def make_table() -> None:
    rows, best_extractive = [], {}
    for data in ("lcsts", "csl"):
        for method, s in baselines(data).items():
            rows.append([data, method, "-", "-", "-", f"{s['rouge1']:.2f}", f"{s['rouge2']:.2f}",
                         f"{s['rougeL']:.2f}", "-"])  # fmt: skip
            best_extractive[data] = max(best_extractive.get(data, 0.0), s["rougeL"])
    verdicts = []
    for name, (_, data) in JOBS.items():
        f = OUT / name / "results.json"
        if not f.is_file():
            verdicts.append(f"- {name}: no results yet (`--job {name}` has not run to the end)")
            continue
        r = json.loads(f.read_text(encoding="utf-8"))
        for method in ("greedy", "beam"):
            s = r["test"][method]
            label = name.split("-")[0] + (" 30 min" if name.endswith("-30") else "")
            rows.append([data, f"{label} {method}" + (" 5" if method == "beam" else ""),
                         f"{r['parameters'] / 1e6:.1f}M", f"{r['train_seconds'] / 60:.1f}",
                         f"{r['epochs']:.1f}", f"{s['rouge1']:.2f}", f"{s['rouge2']:.2f}",
                         f"{s['rougeL']:.2f}", f"{s['decode_tokens_per_second']:,.0f}"])  # fmt: skip
        nr = OUT / name / "no_repeat.json"
        tuned = json.loads(nr.read_text(encoding="utf-8")) if nr.is_file() else None
        if tuned:
            s, n = tuned["test"], tuned["chosen"]
            rows.append([data, f"{label} beam 5, no-repeat {n or 'off'} (validation)",
                         f"{r['parameters'] / 1e6:.1f}M", f"{r['train_seconds'] / 60:.1f}",
                         f"{r['epochs']:.1f}", f"{s['rouge1']:.2f}", f"{s['rouge2']:.2f}",
                         f"{s['rougeL']:.2f}", f"{s['decode_tokens_per_second']:,.0f}"])  # fmt: skip
        b = r["test"]["beam"]["rougeL"]
        gap = b - best_extractive[data]
        verdicts.append(f"- {name}: beam ROUGE-L {b:.2f} vs best extractive "
                        f"{best_extractive[data]:.2f}: {gap:+.2f} points; target +3 "
                        f"{'met' if gap >= 3 else 'NOT met'}. {r['steps']:,} steps, best "
                        f"validation ROUGE-L at step {r['best_step']:,}; texts cut to "
                        f"{r['cut']['max_len']} characters: {r['cut']['train_validation_texts']:,} "
                        f"in training/validation, {r['cut']['test_texts']:,} in test; "
                        f"{r['train_tokens_per_second']:,.0f} training tokens/s")  # fmt: skip
        if tuned:
            vals = ", ".join(f"{k if k != '0' else 'off'}: {v:.2f}"
                             for k, v in tuned["validation_rougeL"].items())  # fmt: skip
            t = tuned["test"]["rougeL"]
            verdicts.append(f"  - {name} with --no-repeat-ngram chosen on the "
                            f"{tuned['validation_texts']} validation texts ({vals}; chosen: "
                            f"{tuned['chosen'] or 'off'}): test ROUGE-L {t:.2f}, "
                            f"{t - best_extractive[data]:+.2f} vs best extractive; target +3 "
                            f"{'met' if t - best_extractive[data] >= 3 else 'NOT met'}")  # fmt: skip
    print(
        "Test splits: LCSTS part II 514 texts (500 distinct, split by text with seed 1); CSL "
        "`csl_ts_test.tsv`, 1,000 abstracts. ROUGE: rouge-score F1 x 100, Chinese on "
        "characters (every non-space character a token). Models trained from scratch on "
        "one thread, characters as tokens (a 5,000-character vocabulary shared by text and "
        "summary; rarer characters spelled as UTF-8 bytes). pointer: the same Transformer with "
        "a pointer-generator output (`model.copy`, See et al. 2017: a learned gate mixes the "
        "vocabulary distribution with an attention over the text's characters; the default for "
        "summarisation); transformer: without it. The best validation ROUGE-L "
        "(greedy, on validation texts) picks the checkpoint. Training time includes the "
        "validations; beam 5, GNMT length penalty 1.0; tok/s: summary tokens per second "
        "decoding the test split, batch 64, one thread.\n"
    )
    print(table(["data", "summariser", "params", "train min", "epochs", "ROUGE-1", "ROUGE-2",
                 "ROUGE-L", "tok/s"], rows))  # fmt: skip
    print()
    print("\n".join(verdicts))
    for name in ("pointer-lcsts", "pointer-csl"):  # the default model's summaries
        if (OUT / name / "test.beam.txt").is_file():
            print(f"\nBest and worst test summaries of {name} (beam), ROUGE-L:\n")
            for t, h, ref, s in examples(name):
                short = t if len(t) <= 60 else t[:60] + "…"
                print(f"- {s:.1f}: `{h}` (reference `{ref}`; text `{short}`)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=list(JOBS), action="append", help="train this job")
    ap.add_argument("--minutes", type=float, help="training minutes per job (lcsts 20, csl 15)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-repeat", choices=list(JOBS), action="append", metavar="JOB",
                    help="choose --no-repeat-ngram for this finished run on validation")  # fmt: skip
    ap.add_argument("--table", action="store_true", help="print the table from the runs")
    ap.add_argument("--write", action="store_true", help="with --table: write RESULTS.md")
    args = ap.parse_args()
    shared("summarization_zh", "lcsts_part2.src.txt")
    for name in args.no_repeat or []:
        print(f"{name}: {json.dumps(tune_no_repeat(name))}", flush=True)
    jobs = args.job or ([] if args.table or args.no_repeat else list(JOBS))
    for name in jobs:
        minutes = args.minutes or MINUTES.get(name, 15.0 if name.endswith("csl") else 20.0)
        t = time.perf_counter()
        r = run_job(name, minutes, args.threads)
        print(f"{name}: {json.dumps(r['test'])} ({time.perf_counter() - t:.0f} s in all)",
              flush=True)  # fmt: skip
    if args.table or not (args.job or args.no_repeat):
        with results_section("summarize", args.write, "Summarisation"):
            make_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
