"""Translation benchmark: Tatoeba Chinese<->English, encoder-decoder Transformer and GRU
seq2seq with attention on the same time budget, greedy and beam-search BLEU/chrF
(sacrebleu), and the zh->en Transformer on the WMT news test sets (out of domain).

    python benchmarks/translate.py --job transformer-zh-en
    ... --job transformer-en-zh, --job rnn-zh-en, --job rnn-en-zh
    python benchmarks/translate.py --wmt 500
    python benchmarks/translate.py --table        # RESULTS.md section from the runs

Each job trains for ``--minutes`` (training time, validation included; the test decoding
comes after) into ``benchmarks/out/translate/JOB`` and writes its ``results.json``.
``python benchmarks/translate.py`` runs every job, the WMT scores and the table in turn.
OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``): on a shared, oversubscribed
machine spinning threads made a 2-thread step ten times slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from _common import ROOT, machine, shared, table, write_results  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "translate"
TRANSFORMER = {"family": "transformer", "d_model": 256, "n_head": 4, "n_enc_layer": 3,
               "n_dec_layer": 3, "d_ff": 1024, "dropout": 0.2, "block": "gpt2"}  # fmt: skip
# Small-data settings (Sennrich & Zhang 2019): heavy dropout and a small BPE vocabulary.
VOCAB = 4000
RNN = {"family": "rnn", "embed_dim": 256, "hidden": 512, "attn_dim": 256, "dropout": 0.2}
JOBS = {f"{fam}-{d}": (model, d) for fam, model in (("transformer", TRANSFORMER), ("rnn", RNN))
        for d in ("zh-en", "en-zh")}  # fmt: skip
WMT = ("wmt18", "wmt19", "wmt20")


def deadline_at(hhmm: str) -> float:
    """Seconds since the epoch of the next HH:MM (UTC)."""
    import datetime as dt

    h, m = map(int, hhmm.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    at = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return (at if at > now else at + dt.timedelta(days=1)).timestamp()


def run_job(name: str, minutes: float, threads: int) -> dict:
    from lmlab.tasks.translate import train_run

    model, direction = JOBS[name]
    cfg = {
        "task": {"kind": "translate", "data": {"name": "tatoeba"}, "direction": direction},
        "tokenizer": {"kind": "bpe", "src_vocab_size": VOCAB, "tgt_vocab_size": VOCAB},
        "model": dict(model),
        "train": {"time_limit": minutes * 60, "threads": threads, "batch_size": 96,
                  "lr": 1e-3, "warmup": 300, "eval_every": 300, "beam": 5, "alpha": 1.0},
    }  # fmt: skip
    train_run(cfg, OUT / name, overwrite=True)
    return json.loads((OUT / name / "results.json").read_text(encoding="utf-8"))


def run_wmt(limit: int, threads: int) -> None:
    import torch

    from lmlab.tasks.translate import load_run
    from lmlab.tasks.translate.data import Pairs, read_wmt

    torch.set_num_threads(threads)
    run = load_run(OUT / "transformer-zh-en")
    scores = {}
    for name in WMT:
        pairs = read_wmt(shared("translation_wmt", f"damo_mt_testsets_zh2en_news_{name}.csv"))
        n = len(pairs)
        if limit:
            pairs = Pairs(pairs.src[:limit], pairs.tgt[:limit])
        s, hyps, tps = run.evaluate(pairs, "beam", progress=True)
        scores[name] = {**s.to_dict(), "of": n, "decode_tokens_per_second": round(tps, 1),
                        "examples": list(zip(pairs.src[:3], hyps[:3], pairs.tgt[:3], strict=True))}  # fmt: skip
        print(f"{name}: {s.format()}", flush=True)
    (OUT / "wmt.json").write_text(json.dumps(scores, indent=1, ensure_ascii=False), "utf-8")


def make_table() -> str:
    rows = []
    for name in JOBS:
        f = OUT / name / "results.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text(encoding="utf-8"))
        g, b = r["test"]["greedy"], r["test"]["beam"]
        rows.append([name.split("-")[0], r["direction"], f"{r['parameters'] / 1e6:.1f}M",
                     f"{r['train_seconds'] / 60:.1f}", f"{r['epochs']:.1f}",
                     f"{g['bleu']:.2f}", f"{b['bleu']:.2f}", f"{b['bleu'] - g['bleu']:+.2f}",
                     f"{g['chrf']:.1f}", f"{b['chrf']:.1f}",
                     f"{b['decode_tokens_per_second']:,.0f}"])  # fmt: skip
    body = [f"Machine: {machine()} (2 cores; the load average is "
            "in the log). Tatoeba cmn-eng test split: 1,000 English sentences with all their Chinese "
            "translations as references (en->zh: 1,000 sources, up to 6 references; zh->en: 1,042 "
            "Chinese sources). Beam 5, GNMT length penalty 1.0. Training time includes the "
            "validations; the test decoding comes after it.", ""]  # fmt: skip
    body.append(table(["model", "direction", "params", "train min", "epochs", "BLEU greedy",
                       "BLEU beam", "beam - greedy", "chrF greedy", "chrF beam",
                       "beam tok/s"], rows))  # fmt: skip
    sig = next((json.loads((OUT / n / "results.json").read_text("utf-8"))["test"]["beam"]
                for n in JOBS if (OUT / n / "results.json").is_file()), None)  # fmt: skip
    if sig:
        body += ["", f"chrF signature: `{sig['chrf_signature']}`"]
        for n in JOBS:
            f = OUT / n / "results.json"
            if f.is_file():
                s = json.loads(f.read_text("utf-8"))["test"]["beam"]["bleu_signature"]
                body.append(f"BLEU signature ({n}): `{s}`")
    w = OUT / "wmt.json"
    if w.is_file():
        wmt = json.loads(w.read_text(encoding="utf-8"))
        body += ["", "Out of domain: the zh->en Transformer (trained on Tatoeba only) on the WMT "
                 "news test sets (this copy's segments; first sources of each file), beam 5:", ""]  # fmt: skip
        body.append(table(["test set", "sources", "BLEU", "chrF"],
                          [[k, f"{v['n']:,} of {v['of']:,}", f"{v['bleu']:.2f}",
                            f"{v['chrf']:.1f}"] for k, v in wmt.items()]))  # fmt: skip
    return "\n".join(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=list(JOBS), action="append", help="train this job")
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per job (10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wmt", type=int, metavar="N", help="score the zh-en Transformer on the "
                    "first N sources of each WMT file (0: all)")  # fmt: skip
    ap.add_argument("--table", action="store_true", help="write the RESULTS.md section")
    ap.add_argument("--deadline", metavar="HH:MM", help="finish by this UTC time: each job "
                    "trains for min(--minutes, its share of the time left)")  # fmt: skip
    args = ap.parse_args()
    shared("translation", "cmn.txt")
    everything = not (args.job or args.table or args.wmt is not None)
    jobs = args.job or (list(JOBS) if everything else [])
    for n, name in enumerate(jobs):
        minutes = args.minutes
        if args.deadline:  # share the time left fairly, leaving room for decoding
            left = (deadline_at(args.deadline) - time.time()) / 60 - 2.0 * (args.wmt is not None)
            minutes = min(minutes, left / (len(jobs) - n) - 1.5)
            if minutes < 1.0:
                print(f"{name}: skipped, {left:.1f} minutes left before {args.deadline}")
                continue
        r = run_job(name, minutes, args.threads)
        print(f"{name}: greedy BLEU {r['test']['greedy']['bleu']}, beam BLEU "
              f"{r['test']['beam']['bleu']}", flush=True)  # fmt: skip
    if args.wmt is not None or everything:
        run_wmt(args.wmt or 500, args.threads)
    if args.table or everything:
        body = make_table()
        print(body)
        write_results(ROOT / "benchmarks" / "RESULTS.md", "translate", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
