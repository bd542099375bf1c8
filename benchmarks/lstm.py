"""The classic LSTM network on word-level Tiny Shakespeare, against its peers, in one run.

Tokens: lowercase, ``\\w+|[^\\w\\s]``, line ends kept as a token (as KenLM's ``</s>``), the
10,000 most frequent words + ``<unk>``; first
90% train, last 10% validation; training windows of 50 tokens. Peers: Kneser-Ney 5-gram on
the same tokens (lmlab's ``ngram`` family, which reproduces KenLM's ``lmplz`` exactly),
and the original Keras model (Embedding(10000,16)-LSTM(64)-LSTM(64)-Dense) whose 10-minute
figure on this machine is quoted from issue #2 unless ``--keras`` runs it (needs
``tensorflow-cpu``).

Validation perplexity is measured on the whole validation split with the LSTM's state
carried through it (and, for reference, on independent 50-token windows).

Run: python benchmarks/lstm.py [--minutes 10] [--reference-config]
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine, shared, steps_in, table
from lmlab.data.shards import open_dataset, prepare_dataset
from lmlab.data.sources import resolve_sources
from lmlab.evaluate.perplexity import stream_loss, window_loss
from lmlab.evaluate.unknown import count_unk, unk_warning
from lmlab.models import build_model
from lmlab.models.ngram import NGramLM
from lmlab.train.runner import run_training

KERAS_PPL = 205.0  # the original Keras model after 10 minutes here (issue #2)
CONTEXT = 50

RECIPES = {
    "lmlab-recipe": {  # 2 x LSTM(256) with an adaptive softmax over the 10k words
        "model": {
            "family": "rnn",
            "embed_dim": 256,
            "hidden_size": 256,
            "n_layer": 2,
            "dropout": 0.3,
            "adaptive_cutoffs": [2000, 6000],
        },
        "train": {
            "batch_size": 32,
            "lr": 3e-3,
            "min_lr": 1.5e-4,
            "warmup": 100,
            "weight_decay": 0.1,
            "grad_clip": 0.5,
            "beta2": 0.99,
        },
    },
    "reference-config": {  # Embedding(10000,16) -> LSTM(64) -> LSTM(64) -> Dense(10000)
        "model": {
            "family": "rnn",
            "embed_dim": 16,
            "hidden_size": 64,
            "n_layer": 2,
            "dropout": 0.0,
        },
        "train": {
            "batch_size": 32,
            "lr": 1e-2,
            "min_lr": 1e-3,
            "warmup": 50,
            "weight_decay": 0.0,
            "beta2": 0.99,
        },
    },
}


def train_recipe(name: str, data_dir: Path, vocab: int, seconds: float, work: Path) -> dict:
    recipe = RECIPES[name]
    m = dict(recipe["model"])
    model = build_model(m.pop("family"), {**m, "vocab_size": vocab})
    steps = steps_in(
        seconds,
        model,
        vocab,
        recipe["train"]["batch_size"],
        CONTEXT,
        recipe["train"],
        tokens=open_dataset(data_dir).train,
    )
    cfg = {
        "data": {"dataset": str(data_dir)},
        "tokenizer": {"kind": "word"},
        "model": dict(recipe["model"]),
        "train": {
            "steps": steps,
            "context": CONTEXT,
            "eval_every": max(1, steps // 5),
            "checkpoint_every": 10**9,
            "eval_batches": 20,
            "sample_tokens": 0,
            "log_every": 50,
            "time_limit": seconds,
            **recipe["train"],
        },
    }
    model, res = run_training(cfg, work / name, overwrite=True, quiet=True)
    ds = open_dataset(data_dir)
    val = np.asarray(ds.val, dtype=np.int64)
    loss, _ = stream_loss(model, val)
    wloss, _ = window_loss(model, val, CONTEXT, 64)
    return {
        "name": name,
        "params": model.num_params(),
        "steps": res.step,
        "seconds": res.elapsed,
        "tokens": res.tokens_seen,
        "ppl": math.exp(loss),
        "window_ppl": math.exp(wloss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument(
        "--reference-config", action="store_true", help="also train the reference 16/64/64 network"
    )
    ap.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = shared("shakespeare", "input.txt")
    work = Path(tempfile.mkdtemp(prefix="lmlab-lstm-"))
    try:
        tok, meta = prepare_dataset(
            resolve_sources([str(corpus)]),
            work / "data",
            tokenizer_kind="word",
            tokenizer_options={"lowercase": True, "newlines": True, "max_vocab": 10000},
        )
        ds = open_dataset(work / "data")
        unk = count_unk(tok, ds.val) / max(1, len(ds.val))
        print(
            f"Machine: {machine()}\nData: {corpus}: {meta.train_tokens:,} train / {meta.val_tokens:,} validation "
            f"tokens ({unk:.2%} <unk>), vocabulary {tok.vocab_size:,} (10,000 words + <eos> + <unk>)\n"
        )
        if warning := unk_warning(unk, "validation tokens"):
            print(warning + "\n")
        t0 = time.perf_counter()
        kn = NGramLM.fit(
            np.asarray(ds.train, dtype=np.int64),
            order=5,
            vocab_size=tok.vocab_size,
            eos_id=tok.eos_id,
        )
        kn_ppl = kn.perplexity(np.asarray(ds.val, dtype=np.int64))
        kn_s = time.perf_counter() - t0
        rows = [
            [
                "Kneser-Ney 5-gram (lmlab ngram = KenLM lmplz)",
                f"{kn.num_params():,}",
                "-",
                f"{kn_s:.1f}",
                f"{kn_ppl:.1f}",
                "-",
            ]
        ]
        names = ["lmlab-recipe"] + (["reference-config"] if args.reference_config else [])
        for name in names:
            r = train_recipe(name, work / "data", tok.vocab_size, args.minutes * 60, work)
            rows.append(
                [
                    f"lmlab LSTM, {name}",
                    f"{r['params']:,}",
                    f"{r['tokens']:,}",
                    f"{r['seconds']:.0f}",
                    f"{r['ppl']:.1f}",
                    f"{r['window_ppl']:.1f}",
                ]
            )
        rows.append(
            [
                "Keras original, 10 min (quoted from issue #2: TensorFlow is not installed here)",
                "~0.9M",
                "-",
                "600",
                f"{KERAS_PPL:.0f}",
                "-",
            ]
        )
        print(
            table(
                [
                    "model",
                    "parameters",
                    "train tokens",
                    "seconds",
                    "val ppl (stream)",
                    "val ppl (50-token windows)",
                ],
                rows,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
