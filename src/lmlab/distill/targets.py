"""The teacher's soft targets over the training tokens, computed once and cached on disk.

The training split is cut into fixed windows of ``context + 1`` tokens (window ``w`` starts
at token ``w * context``), the same windows the student trains on, so each cached target was
computed from exactly the context the student sees. The teacher runs once, in eval mode under
bf16 autocast, and for every position keeps its top-k log-probabilities plus the remainder
bucket (:func:`lmlab.distill.loss.topk_targets`).

On disk: ``CACHE/<key>/manifest.json`` and ``shard-NNNNN.safetensors`` files of
``SHARD_WINDOWS`` windows each, with ``logp`` (float16, ``(n, context, k + 1)``) and ``index``
(uint16 when the vocabulary fits, else uint32, ``(n, context, k)``). The key hashes what the
targets depend on (the teacher's weights, the training tokens, context, k, temperature), so a
second student, a resumed run or another run with ``--cache`` reuses them, and targets for
other settings sit beside them instead of replacing them. Each shard is written to a temp file
and renamed, and carries the key in its metadata: a teacher pass that is killed resumes at the
first missing shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from lmlab.config import atomic_write_text, publish
from lmlab.distill.loss import topk_targets
from lmlab.errors import LmlabError
from lmlab.progress import progress_bar

FORMAT = 1
MANIFEST = "manifest.json"
SHARD_WINDOWS = 256
LOGIT_BUDGET = 1 << 25  # teacher logits (floats) computed at once: windows x context x vocab


@dataclass(frozen=True)
class TargetSpec:
    """What the cached targets depend on; its hash names the cache folder."""

    teacher: str  # fingerprint of the teacher's weights
    tokens: str  # sha256 of the training tokens
    n_tokens: int
    context: int
    top_k: int
    temperature: float
    vocab_size: int
    format: int = FORMAT

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def n_windows(self) -> int:
        return (self.n_tokens - 1) // self.context


def tokens_digest(tokens: np.ndarray) -> str:
    """sha256 of a token array's values (as uint32, whatever the file's type)."""
    return hashlib.sha256(np.asarray(tokens, dtype=np.uint32).tobytes()).hexdigest()


def window_starts(n_tokens: int, context: int) -> int:
    """How many training windows of ``context + 1`` tokens the split holds (an error if none)."""
    n = (n_tokens - 1) // context
    if n < 1:
        raise LmlabError(
            f"the training split has {n_tokens} tokens, fewer than the context {context} + 1; "
            "use a smaller --context or more text"
        )
    return n


def windows(tokens: np.ndarray, ids: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets ``(len(ids), context)`` of the training windows ``ids``."""
    idx = np.asarray(ids, dtype=np.int64)[:, None] * context + np.arange(context + 1)[None, :]
    win = torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))
    return win[:, :-1], win[:, 1:]


class TeacherTargets:
    """Read access to a complete cache: the targets of any training windows."""

    def __init__(self, folder: Path, spec: TargetSpec) -> None:
        self.folder, self.spec = folder, spec
        n_shards = -(-spec.n_windows // SHARD_WINDOWS)
        self._files = [safe_open(str(_shard_path(folder, i)), "np") for i in range(n_shards)]

    def get(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(n, context, k)`` int64 and log-probabilities ``(n, context, k + 1)``
        float32 of the windows ``ids``."""
        index, logp = [], []
        for w in np.asarray(ids, dtype=np.int64):
            f = self._files[w // SHARD_WINDOWS]
            j = int(w % SHARD_WINDOWS)
            index.append(f.get_slice("index")[j : j + 1])
            logp.append(f.get_slice("logp")[j : j + 1])
        i = torch.from_numpy(np.concatenate(index).astype(np.int64))
        return i, torch.from_numpy(np.concatenate(logp).astype(np.float32))


def _shard_path(folder: Path, i: int) -> Path:
    return folder / f"shard-{i:05d}.safetensors"


def _shard_ok(path: Path, key: str) -> bool:
    try:
        with safe_open(str(path), "np") as f:
            return (f.metadata() or {}).get("key") == key
    except (SafetensorError, OSError, ValueError):
        return False


def missing_shards(folder: Path, spec: TargetSpec) -> list[int]:
    """The shards of ``spec`` not (validly) on disk in ``folder``."""
    n_shards = -(-spec.n_windows // SHARD_WINDOWS)
    return [i for i in range(n_shards) if not _shard_ok(_shard_path(folder, i), spec.key)]


def _save_shard(path: Path, index: np.ndarray, logp: np.ndarray, key: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"index": index, "logp": logp}, str(tmp), metadata={"key": key})
    publish(tmp, path)


@torch.inference_mode()
def compute_targets(
    teacher: torch.nn.Module,
    tokens: np.ndarray,
    spec: TargetSpec,
    folder: Path,
    shards: list[int],
    progress: bool = True,
) -> float:
    """Run ``teacher`` over the windows of ``shards`` and write them; returns the seconds."""
    import time

    teacher.eval()
    device = next(teacher.parameters()).device
    C, k = spec.context, spec.top_k
    per_call = max(1, LOGIT_BUDGET // (C * spec.vocab_size))
    itype = np.uint16 if spec.vocab_size <= 65536 else np.uint32
    todo = sum(min(SHARD_WINDOWS, spec.n_windows - s * SHARD_WINDOWS) for s in shards)
    t0 = time.perf_counter()
    bar = progress_bar(
        total=todo * C, desc="teacher", unit="tok", unit_scale=True, disable=not progress
    )
    for s in shards:
        lo, hi = s * SHARD_WINDOWS, min(spec.n_windows, (s + 1) * SHARD_WINDOWS)
        index = np.empty((hi - lo, C, k), dtype=itype)
        logp = np.empty((hi - lo, C, k + 1), dtype=np.float16)
        for a in range(lo, hi, per_call):
            b = min(hi, a + per_call)
            x, _ = windows(tokens, np.arange(a, b), C)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = teacher(x.to(device))
            lp, ix = topk_targets(logits, k, spec.temperature)
            index[a - lo : b - lo] = ix.cpu().numpy().astype(itype)
            logp[a - lo : b - lo] = lp.cpu().numpy().astype(np.float16)
            bar.update((b - a) * C)
        _save_shard(_shard_path(folder, s), index, logp, spec.key)
    bar.close()
    return time.perf_counter() - t0


def open_targets(
    cache: Path,
    spec: TargetSpec,
    teacher: Callable[[], torch.nn.Module],
    tokens: np.ndarray,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[TeacherTargets, float]:
    """The cached targets of ``spec`` under ``cache``, computing whatever is missing with the
    model ``teacher()`` returns (called only then). Returns them and the teacher's seconds."""
    if spec.top_k > spec.vocab_size:
        raise LmlabError(
            f"--top-k {spec.top_k} exceeds the teacher's vocabulary ({spec.vocab_size}); "
            "use a smaller --top-k"
        )
    folder = cache / spec.key
    todo = missing_shards(folder, spec) if (folder / MANIFEST).is_file() else None
    if todo is None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / MANIFEST, json.dumps({**asdict(spec), "key": spec.key,
                          "shard_windows": SHARD_WINDOWS}, indent=1))  # fmt: skip
        todo = missing_shards(folder, spec)
    seconds = 0.0
    total = -(-spec.n_windows // SHARD_WINDOWS)
    if not todo:
        say(f"lmlab: teacher targets reused from {folder} ({spec.n_windows * spec.context:,} "
            f"positions, top-{spec.top_k})")  # fmt: skip
    else:
        done = total - len(todo)
        say(f"lmlab: teacher pass over {spec.n_windows * spec.context:,} positions "
            f"(top-{spec.top_k} cached in {folder}"
            + (f"; {done} of {total} shards already there)" if done else ")"))  # fmt: skip
        seconds = compute_targets(teacher(), tokens, spec, folder, todo, progress)
    return TeacherTargets(folder, spec), seconds
