"""An LSTM on Penn Treebank in a fixed wall-clock budget, against the Kneser-Ney 5-gram.

Data: Mikolov's PTB files (``../shared/data/ptb/``: 10k words, ``<unk>`` as a word, one
sentence a line, ``<eos>`` after each), split on whitespace exactly as ``lmlab compare
--tokenizer whitespace`` does. The LSTM is trained by lmlab's common trainer with truncated
BPTT (``train.carry_state``: contiguous streams, state carried between batches, as in
Zaremba et al. 2014) and an adaptive softmax; the cosine schedule is sized to the budget.
Perplexity is exact on the whole valid and test streams, state carried, each token
predicted from everything before it. The in-run peer is lmlab's Kneser-Ney 5-gram (equal
to KenLM's lmplz on these files); published points are quoted.

Run: python benchmarks/ptb_lstm.py [--minutes 30] [--recipe medium] [--threads 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from _common import machine, shared, steps_in, table
from lmlab.compare.data import prepare_split
from lmlab.compare.ladder import stream_ppl
from lmlab.evaluate.unknown import count_unk, unk_warning
from lmlab.models import build_model
from lmlab.models.ngram import NGramLM
from lmlab.train.runner import run_training

CONTEXT = 35
PUBLISHED = [  # PTB test perplexity
    ("KN 5-gram (Mikolov 2011)", 141.2),
    ("LSTM small, 2x200, 13 epochs (Zaremba et al. 2014)", 114.5),
    ("LSTM medium, 2x650, dropout 0.5, 39 epochs (Zaremba et al. 2014)", 82.7),
]

RECIPES = {
    "small": {  # 2 x LSTM(256), tied-size adaptive softmax
        "model": {"embed_dim": 256, "hidden_size": 256, "n_layer": 2, "dropout": 0.3},
        "train": {"batch_size": 32, "lr": 3e-3},
    },
    "medium": {  # 2 x LSTM(512), more dropout for the bigger network
        "model": {"embed_dim": 512, "hidden_size": 512, "n_layer": 2, "dropout": 0.5},
        "train": {"batch_size": 32, "lr": 2e-3},
    },
}
COMMON_MODEL = {"family": "rnn", "cell": "lstm", "adaptive_cutoffs": [2000, 6000]}
COMMON_TRAIN = {
    "context": CONTEXT,
    "carry_state": True,
    "warmup": 200,
    "weight_decay": 0.01,
    "grad_clip": 0.5,
    "beta2": 0.99,
    "eval_batches": 20,
    "sample_tokens": 0,
    "log_every": 50,
}


def train_lstm(recipe: str, data_dir: Path, vocab: int, seconds: float, out: Path, tokens) -> dict:
    r = RECIPES[recipe]
    model_cfg = {**COMMON_MODEL, **r["model"]}
    train_cfg = {**COMMON_TRAIN, **r["train"]}
    probe = build_model(
        "rnn", {k: v for k, v in model_cfg.items() if k != "family"} | {"vocab_size": vocab}
    )
    steps = steps_in(
        seconds, probe, vocab, train_cfg["batch_size"], CONTEXT, train_cfg, tokens=tokens
    )
    cfg = {
        "data": {"dataset": str(data_dir)},
        "tokenizer": {"kind": "word"},
        "model": model_cfg,
        "train": {
            **train_cfg,
            "steps": steps,
            "eval_every": max(1, steps // 6),
            "checkpoint_every": max(1, steps // 6),
            "time_limit": seconds,
            "min_lr": train_cfg["lr"] / 30,
        },
    }
    model, res = run_training(cfg, out, overwrite=True)
    return {
        "model": model,
        "steps": res.step,
        "planned": steps,
        "seconds": res.elapsed,
        "tokens": res.tokens_seen,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=30.0, help="LSTM training budget")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="small")
    ap.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ap.add_argument("--keep", type=Path, help="keep the LSTM run directory here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ptb = shared("ptb")
    work = Path(tempfile.mkdtemp(prefix="lmlab-ptb-"))
    try:
        split = prepare_split(
            work / "data",
            ptb / "ptb.train.txt",
            valid=ptb / "ptb.valid.txt",
            test=ptb / "ptb.test.txt",
            tokenizer="whitespace",
        )
        eos = split.tokenizer.eos_id
        unk = count_unk(split.tokenizer, split.test) / max(1, len(split.test))
        print(
            f"Machine: {machine()}\nData: PTB, {len(split.train):,} train / {len(split.valid):,} "
            f"valid / {len(split.test):,} test tokens ({unk:.2%} <unk>), vocabulary "
            f"{split.tokenizer.vocab_size:,}\n"
        )
        if warning := unk_warning(unk, "test tokens"):
            print(warning + "\n")
        t0 = time.perf_counter()
        kn = NGramLM.fit(split.train, order=5, vocab_size=split.tokenizer.vocab_size, eos_id=eos)
        kn_s = time.perf_counter() - t0
        rows = [
            [
                "lmlab Kneser-Ney 5-gram",
                f"{kn.num_params():,}",
                "-",
                f"{kn_s:.1f}",
                f"{stream_ppl(kn, split.valid, eos):.2f}",
                f"{stream_ppl(kn, split.test, eos):.2f}",
            ]
        ]
        out = args.keep or work / "lstm"
        r = train_lstm(
            args.recipe, split.path, split.tokenizer.vocab_size, args.minutes * 60, out, split.train
        )
        model = r["model"].eval()
        valid, test = stream_ppl(model, split.valid, eos), stream_ppl(model, split.test, eos)
        epochs = r["tokens"] / len(split.train)
        rows.append(
            [
                f"lmlab LSTM, {args.recipe} ({r['steps']:,}/{r['planned']:,} steps, {epochs:.1f} epochs)",
                f"{model.num_params():,}",
                f"{r['tokens']:,}",
                f"{r['seconds']:.0f}",
                f"{valid:.2f}",
                f"{test:.2f}",
            ]
        )
        for name, ppl in PUBLISHED:
            rows.append([f"{name} (published)", "-", "-", "-", "-", f"{ppl}"])
        print(
            table(["model", "parameters", "train tokens", "seconds", "valid ppl", "test ppl"], rows)
        )
        print(f"\nLSTM test perplexity vs KN 5-gram: {test / stream_ppl(kn, split.test, eos):.3f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
