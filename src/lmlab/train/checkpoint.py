"""Checkpoints that resume exactly: model, optimizer, step and every RNG state.

Weights and optimizer moments go to safetensors; step and RNG states to JSON. Every file is
written to a temp name and renamed, ``trainer_state.json`` last; both safetensors files carry
the step in their metadata, so a save killed half-way is detected on resume, not trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.models import LanguageModel
from lmlab.run import MODEL_FILE, load_tensors_checked, save_tensors_atomic

OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


class FullWeights:
    """How a run checkpoints its weights: every tensor to ``model.safetensors``. A LoRA run
    saves its adapters only (:class:`lmlab.train.lora.LoraWeights`)."""

    file = MODEL_FILE

    def save(self, run_dir: Path, model: LanguageModel, metadata: dict[str, str]) -> None:
        save_tensors_atomic(model.tensors_for_save(), run_dir / MODEL_FILE, metadata=metadata)

    def load(self, run_dir: Path, model: LanguageModel) -> None:
        mt = load_tensors_checked(run_dir / MODEL_FILE)
        try:
            model.load_tensors(mt)
        except RuntimeError as e:
            raise LmlabError(
                f"{run_dir / MODEL_FILE} does not match the run's config ({str(e)[:80]})"
            ) from None


def _optimizer_tensors(
    opt: torch.optim.Optimizer, names: dict[int, str]
) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            key = f"{names[pid]}::{k}"
            if torch.is_tensor(v):
                tensors[key] = v.detach().contiguous().clone()
            else:
                scalars[key] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _param_names(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[int, str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    names, i = {}, 0
    for g in opt.param_groups:
        for p in g["params"]:
            names[i] = by_id[id(p)]
            i += 1
    return names


def save_checkpoint(
    run_dir: Path,
    model: LanguageModel,
    opt: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    extra: dict[str, Any] | None = None,
    weights: Any = None,
) -> None:
    names = _param_names(model, opt)
    otensors, ometa = _optimizer_tensors(opt, names)
    otensors["__torch_rng__"] = torch.get_rng_state()
    device = next(iter(model.parameters()), torch.empty(0)).device
    if device.type == "cuda":  # dropout on the GPU draws from the GPU's generator
        otensors["__cuda_rng__"] = torch.cuda.get_rng_state(device)
    tag = {"step": str(step)}
    save_tensors_atomic(otensors, run_dir / OPTIM_FILE, metadata=tag)
    (weights or FullWeights()).save(run_dir, model, tag)
    state = {
        "step": step,
        "numpy_rng": rng.bit_generator.state,
        "optimizer": ometa,
        **(extra or {}),
    }
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=1, default=_jsonable))


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def _step_tag(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("step")
    except Exception:  # missing/corrupt: load_tensors_checked reports it
        return None


def load_checkpoint(
    run_dir: Path,
    model: LanguageModel,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    weights: Any = None,
) -> dict[str, Any]:
    """Restore model, optimizer and RNGs in place; returns the saved trainer state."""
    weights = weights or FullWeights()
    sf = run_dir / STATE_FILE
    if not sf.is_file():
        raise LmlabError(
            f"no checkpoint to resume in {run_dir} ({STATE_FILE} missing); train without --resume"
        )
    try:
        state = json.loads(sf.read_text(encoding="utf-8"))
        step = int(state["step"])
    except (json.JSONDecodeError, KeyError, ValueError, TypeError):
        raise LmlabError(f"{sf} is corrupt; cannot resume (start a new run)") from None
    for f in (weights.file, OPTIM_FILE):
        saved = _step_tag(run_dir / f)
        if saved is not None and saved != str(step):
            raise LmlabError(
                f"{run_dir / f} is from step {saved}, but {STATE_FILE} says {step}: the last save was "
                "interrupted; the checkpoint cannot be resumed exactly"
            )
    weights.load(run_dir, model)
    ot = load_tensors_checked(run_dir / OPTIM_FILE)
    torch.set_rng_state(ot.pop("__torch_rng__"))
    cuda_rng = ot.pop("__cuda_rng__", None)
    device = next(iter(model.parameters()), torch.empty(0)).device
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, device)
    names = _param_names(model, opt)
    meta = state["optimizer"]
    opt_state: dict[int, dict[str, Any]] = {}
    for pid, name in names.items():
        st = {k.split("::", 1)[1]: v for k, v in ot.items() if k.split("::", 1)[0] == name}
        st.update(
            {
                k.split("::", 1)[1]: v
                for k, v in meta["scalars"].items()
                if k.split("::", 1)[0] == name
            }
        )
        if st:
            opt_state[pid] = st
    opt.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    rng.bit_generator.state = state["numpy_rng"]
    state["step"] = step
    return state
