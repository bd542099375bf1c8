"""The ladder: n-grams, NPLM, LSTM and Transformer trained at one budget on one split.

Each rung is a run directory under the comparison's folder (so ``lmlab generate --run``
works on any of them). Neural rungs go through the common trainer with a wall-clock or
token budget: a few probe steps measure the step time, then the cosine schedule is sized to
the budget so the learning rate has decayed when time is up. Every rung is then scored the
same way: exact perplexity on the whole validation (and test) stream, each token predicted
from everything before it that the model can see. A finished rung is reused on a rerun.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.compare.data import Split
from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.evaluate.perplexity import stream_loss
from lmlab.evaluate.unknown import count_unk
from lmlab.models import LanguageModel, build_model
from lmlab.models.ngram import NGramLM
from lmlab.models.ngram_io import save_run as save_ngram_run

# Rungs and their model settings, sized for minutes of CPU training (the trainer fills in
# vocab_size and the context).
PRESETS: dict[str, dict[str, Any]] = {
    "ngram3": {"family": "ngram", "order": 3},
    "ngram5": {"family": "ngram", "order": 5},
    "nplm": {"family": "nplm", "context": 5, "embed_dim": 128, "hidden_size": 256, "dropout": 0.2},
    # Truncated BPTT (state carried between batches); on word vocabularies an adaptive
    # softmax (see rung_config) makes its steps several times cheaper.
    "lstm": {
        "family": "rnn",
        "embed_dim": 256,
        "hidden_size": 256,
        "n_layer": 2,
        "dropout": 0.3,
        "tie_embeddings": True,
        "train": {"carry_state": True},
    },
    "transformer": {"family": "transformer", "depth": 4, "dropout": 0.1},
    # The hand-written numpy NPLM (plain SGD, no autograd): lmlab.models.nplm_numpy.
    "nplm_numpy": {
        "family": "nplm",
        "engine": "numpy",
        "context": 5,
        "embed_dim": 64,
        "hidden_size": 128,
    },
}
RESULT_FILE = "ladder.json"


@dataclass
class Budget:
    seconds: float | None = None  # wall-clock training time per neural model
    tokens: int | None = None  # training tokens per neural model
    context: int = 64
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 1337
    threads: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.tokens is None):
            raise LmlabError("give exactly one budget: --minutes or --tokens")


@dataclass
class RungResult:
    name: str
    family: str
    params: int
    train_seconds: float
    tokens_seen: int
    tokens_per_second: float
    valid_ppl: float
    test_ppl: float | None
    sample: str
    position_loss: list[float] = field(default_factory=list)
    valid_unk: float | None = None  # share of <unk> among the scored validation tokens


# ---- scoring ------------------------------------------------------------------------
def stream_ppl(model: LanguageModel, ids: np.ndarray, eos_id: int = 0, chunk: int = 512) -> float:
    """Exact perplexity of predicting every token of ``ids`` from all that precede it.

    The stream is scored after an ``<eos>`` (a sentence start). Stateful models (n-gram,
    NPLM, LSTM) carry their state through it; a Transformer slides its whole context by
    half, many windows per forward call (:func:`lmlab.evaluate.perplexity.stream_loss`).
    """
    x = np.concatenate([[eos_id], np.asarray(ids, dtype=np.int64)])
    loss, _ = stream_loss(model, x, window=model.context_length, chunk=chunk)
    return math.exp(loss)


@torch.inference_mode()
def position_loss(
    model: LanguageModel, ids: np.ndarray, context: int, max_windows: int = 4096
) -> list[float]:
    """Mean loss at each position of fresh ``context``-token windows (no carried state),
    over the non-overlapping windows of ``ids`` (evenly thinned to ``max_windows``)."""
    model.eval()
    n_all = (len(ids) - 1) // context
    if n_all < 1:
        return []
    starts = np.arange(n_all) * context
    if n_all > max_windows:
        starts = starts[np.linspace(0, n_all - 1, max_windows).astype(np.int64)]
    n_win = len(starts)
    win = torch.from_numpy(np.stack([ids[s : s + context + 1] for s in starts]).astype(np.int64))
    losses = []
    for i in range(0, n_win, 32):
        b = win[i : i + 32]
        logits = model(b[:, :-1])
        losses.append(F.cross_entropy(logits.float().transpose(1, 2), b[:, 1:], reduction="none"))
    return torch.cat(losses).mean(0).tolist()


def sample_text(model: LanguageModel, split: Split, seed: int, tokens: int = 30) -> str:
    from lmlab.generate import SamplingParams, generate

    params = SamplingParams(max_new_tokens=tokens, temperature=0.8, top_k=40, seed=seed)
    return " ".join(generate(model, split.tokenizer, "", params)[0].text.split())


# ---- rungs --------------------------------------------------------------------------
def run_ngram(name: str, order: int, split: Split, out: Path) -> tuple[LanguageModel, float]:
    t0 = time.perf_counter()
    model = NGramLM.fit(split.train, order, split.tokenizer.vocab_size, split.tokenizer.eos_id)
    seconds = time.perf_counter() - t0
    save_ngram_run(
        out, model, split.tokenizer, {"split": split.split, "build_seconds": round(seconds, 3)}
    )
    return model, seconds


def rung_config(name: str, split: Split) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model settings and trainer overrides of a neural rung for this split's vocabulary."""
    cfg = dict(PRESETS[name])
    train = dict(cfg.pop("train", {}))
    vocab = split.tokenizer.vocab_size
    # Word ids are frequency-ordered, so an adaptive softmax (frequent words in the head,
    # rare ones in smaller clusters) fits a large word vocabulary.
    if cfg["family"] == "rnn" and split.tokenizer.kind == "word" and vocab >= 5000:
        cfg["adaptive_cutoffs"] = [vocab // 5, 3 * vocab // 5]
        cfg["tie_embeddings"] = False
    return cfg, train


def _probe_step_seconds(model_cfg: dict[str, Any], split: Split, budget: Budget) -> float:
    """Seconds per training step of this model, from a few steps on a throwaway copy."""
    from lmlab.train.runner import model_config

    cfg = {"model": dict(model_cfg), "train": {"context": budget.context}}
    model = build_model(model_cfg["family"], model_config(cfg, split.tokenizer.vocab_size))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    times = []
    for i in range(10):
        starts = rng.integers(0, len(split.train) - budget.context - 1, budget.batch_size)
        b = torch.from_numpy(np.stack([split.train[s : s + budget.context + 1] for s in starts]))
        t0 = time.perf_counter()
        if model.computes_loss:  # the trainer's path (e.g. adaptive softmax)
            loss = model(b[:, :-1], targets=b[:, 1:])
        else:
            logits = model(b[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), b[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:  # the first steps pay one-off set-up costs
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_neural(
    name: str,
    model_cfg: dict[str, Any],
    split: Split,
    out: Path,
    budget: Budget,
    train_overrides: dict[str, Any] | None = None,
) -> tuple[LanguageModel, float, int]:
    from lmlab.train.runner import run_training

    if budget.threads:
        torch.set_num_threads(budget.threads)
    per_step_tokens = budget.batch_size * budget.context
    if budget.tokens is not None:
        steps, limit = max(1, budget.tokens // per_step_tokens), None
    else:
        assert budget.seconds is not None
        step_s = _probe_step_seconds(model_cfg, split, budget)
        # The schedule is sized from the probe; the time limit ends training. On a busy
        # machine the probe can be too pessimistic, so aim 30% long rather than stop early
        # with budget left (the learning rate then ends a little above its floor).
        steps, limit = max(1, int(1.3 * budget.seconds / step_s)), budget.seconds
    train = {
        "steps": steps,
        "context": budget.context,
        "batch_size": budget.batch_size,
        "lr": budget.lr,
        "warmup": min(200, steps // 10),
        "eval_every": max(1, steps // 4),
        "eval_batches": 10,
        "checkpoint_every": max(1, steps // 4),
        "sample_tokens": 0,
        "log_every": max(1, min(50, steps // 20)),
        "seed": budget.seed,
        "time_limit": limit,
        "weight_decay": 0.1,
        "device": "cpu",
        **(train_overrides or {}),
    }
    cfg = {
        "data": {"dataset": str(split.path)},
        "tokenizer": {"kind": split.tokenizer.kind},
        "model": dict(model_cfg),
        "train": train,
    }
    model, result = run_training(cfg, out, overwrite=True, quiet=True)
    return model, result.elapsed, result.tokens_seen


def run_rung(
    name: str,
    split: Split,
    root: Path,
    budget: Budget,
    retrain: bool = False,
    rescore: bool = False,
) -> RungResult:
    """Train (or reuse) one rung and score it; ``rescore`` scores a finished rung again."""
    if name not in PRESETS:
        raise LmlabError(f"unknown model {name!r} for the ladder; choose from {', '.join(PRESETS)}")
    out = root / name
    done = out / RESULT_FILE
    if done.is_file() and not retrain:
        prev = RungResult(**json.loads(done.read_text(encoding="utf-8")))
        if not rescore:
            if prev.valid_unk is None:  # scored before the share was recorded
                prev.valid_unk = count_unk(split.tokenizer, split.valid) / max(1, len(split.valid))
            return prev
        from lmlab.run import load_run

        model = load_run(out).model
        result = score_rung(
            name, prev.family, model, split, budget, prev.train_seconds, prev.tokens_seen
        )
        atomic_write_text(done, json.dumps(asdict(result), indent=2))
        return result
    cfg = PRESETS[name]
    if cfg["family"] == "ngram":
        model, seconds = run_ngram(name, cfg["order"], split, out)
        tokens = len(split.train)
    elif cfg.get("engine") == "numpy":
        from lmlab.compare.numpy_rung import run_numpy_nplm

        model, seconds, tokens = run_numpy_nplm(
            cfg, split, out, budget.seconds, budget.tokens, budget.seed
        )
    else:
        model_cfg, overrides = rung_config(name, split)
        model, seconds, tokens = run_neural(name, model_cfg, split, out, budget, overrides)
    result = score_rung(name, cfg["family"], model, split, budget, seconds, tokens)
    atomic_write_text(done, json.dumps(asdict(result), indent=2))
    return result


def score_rung(
    name: str,
    family: str,
    model: LanguageModel,
    split: Split,
    budget: Budget,
    seconds: float,
    tokens: int,
) -> RungResult:
    """Exact valid/test perplexity, a sample and the per-position loss of one model."""
    model.eval()
    eos = split.tokenizer.eos_id
    return RungResult(
        name=name,
        family=family,
        params=model.num_params(),
        train_seconds=seconds,
        tokens_seen=tokens,
        tokens_per_second=tokens / max(seconds, 1e-9),
        valid_ppl=stream_ppl(model, split.valid, eos),
        test_ppl=stream_ppl(model, split.test, eos) if split.test is not None else None,
        sample=sample_text(model, split, budget.seed),
        valid_unk=count_unk(split.tokenizer, split.valid) / max(1, len(split.valid)),
        position_loss=[]
        if family == "ngram"
        else position_loss(model, split.valid, budget.context),
    )


def load_rung(name: str, path: str | Path, split: Split, budget: Budget) -> RungResult:
    """Score an existing run directory (trained elsewhere) on the comparison's split.

    Its tokenizer must be the split's; training time and tokens come from its records.
    """
    from lmlab.run import load_run

    run = load_run(path)
    if run.tokenizer.to_dict() != split.tokenizer.to_dict():
        raise LmlabError(
            f"run {path} was trained with a different tokenizer; train it on the comparison's "
            f"data ({split.path}) or compare it on its own"
        )
    seconds, tokens = 0.0, 0
    metrics = Path(path) / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line) if line.strip() else {}
            if "elapsed" in rec:
                seconds, tokens = float(rec["elapsed"]), int(rec.get("tokens", tokens))
    elif run.family == "ngram":
        seconds = float(run.config.get("ngram", {}).get("build_seconds", 0.0))
        tokens = len(split.train)
    return score_rung(name, run.family, run.model, split, budget, seconds, tokens)
