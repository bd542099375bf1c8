"""The ladder's ``nplm_numpy`` rung: the hand-written numpy NPLM trained by plain SGD.

Same budget as the other neural rungs, no autograd and no trainer: the teaching module of
:mod:`lmlab.models.nplm_numpy` held against PyTorch implementations. Its weights are saved
as an ordinary ``nplm`` run, so every lmlab command can load it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
from safetensors.torch import save_file

from lmlab.config import atomic_write_text, publish, to_dict
from lmlab.models import LanguageModel
from lmlab.models.nplm import NPLMConfig
from lmlab.models.nplm_numpy import NumpyNPLM

BATCH = 256  # windows (= predicted tokens) per SGD step
LR = 0.5


def save_torch_run(out: Path, model: LanguageModel, tokenizer: Any, family: str) -> None:
    """``model.safetensors``, ``config.toml`` and ``tokenizer.json`` of a finished model."""
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".model.", suffix=".tmp")
    os.close(fd)
    save_file(model.tensors_for_save(), tmp)
    publish(tmp, out / "model.safetensors")
    tokenizer.save(out / "tokenizer.json")
    config = {"model": {"family": family, **to_dict(model.config)}}
    atomic_write_text(out / "config.toml", tomli_w.dumps(config))


def run_numpy_nplm(
    preset: dict[str, Any],
    split: Any,
    out: Path,
    seconds: float | None,
    tokens: int | None,
    seed: int,
) -> tuple[LanguageModel, float, int]:
    """Train for ``seconds`` of wall-clock or ``tokens`` predicted tokens; returns the model
    (as torch), the training time and the tokens seen."""
    cfg = NPLMConfig(
        vocab_size=split.tokenizer.vocab_size,
        pad_id=split.tokenizer.eos_id,
        **{k: v for k, v in preset.items() if k not in ("family", "engine")},
    )
    net = NumpyNPLM.init(cfg, seed=seed, dtype=np.float32)
    train = split.train
    if tokens is not None:
        steps, limit = max(1, tokens // BATCH), None
    else:
        probe = NumpyNPLM.init(cfg, seed=seed, dtype=np.float32)
        t0 = time.perf_counter()
        probe.train_sgd(train, steps=3, batch_size=BATCH, lr=LR, seed=seed)
        step_s = (time.perf_counter() - t0) / 3
        steps, limit = max(1, int(1.3 * seconds / step_s)), seconds  # as the other rungs
    t0 = time.perf_counter()
    losses = net.train_sgd(train, steps=steps, batch_size=BATCH, lr=LR, seed=seed, time_limit=limit)
    elapsed = time.perf_counter() - t0
    model = net.to_torch()
    save_torch_run(out, model, split.tokenizer, "nplm")
    return model, elapsed, len(losses) * BATCH
