"""LoRA fine-tuning: low-rank adapters from ``peft`` on lmlab's own linear layers.

``peft`` wraps the targeted ``nn.Linear`` modules of the model in place (the model stays an
lmlab :class:`~lmlab.models.transformer.Transformer`), freezes everything else, and only the
adapters are trained and saved, in peft's standard format: ``adapter_model.safetensors``
(keys ``base_model.model.<module>.lora_A.weight``) and ``adapter_config.json`` in the run
directory. The base weights stay where they are; the run's ``[init]`` section says where.

Loading a LoRA run for generation, evaluation or serving merges the adapters into the base
weights (``W += alpha / rank * B @ A``) without ``peft``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.run import load_tensors_checked, save_tensors_atomic

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
PREFIX = "base_model.model."  # what peft's PeftModel.save_pretrained puts before module names
# The attention and MLP linears of lmlab's Transformer (gate_up: llama, fc: gpt2).
DEFAULT_TARGETS = ("attn.qkv", "attn.proj", "mlp.gate_up", "mlp.fc", "mlp.proj")
INSTALL_HINT = "pip install 'lmlab[lora]' (or pip install peft)"


@dataclass
class LoraSettings:
    """The ``[init.lora]`` section of a LoRA run's ``config.toml``."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] | None = None  # module names (suffixes); None: DEFAULT_TARGETS present

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise LmlabError(f"--lora-rank must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise LmlabError(f"--lora-alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise LmlabError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if self.targets is not None and (
            not self.targets or not all(isinstance(t, str) and t for t in self.targets)
        ):
            raise LmlabError("--lora-targets needs module names, e.g. attn.qkv,mlp.proj")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def resolve_targets(model: nn.Module, settings: LoraSettings) -> list[str]:
    """The target names to use: every given one must name a linear layer of ``model``."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if settings.targets is None:
        found = [t for t in DEFAULT_TARGETS if any(_matches(n, t) for n in linears)]
        if not found:
            raise LmlabError(
                f"the {getattr(model, 'family', 'model')} has none of LoRA's default target "
                f"layers ({', '.join(DEFAULT_TARGETS)}); name its linears with --lora-targets"
            )
        return found
    for t in settings.targets:
        if not any(_matches(n, t) for n in linears):
            names = sorted({n.split(".", 2)[-1] if n.startswith("blocks.") else n for n in linears})
            raise LmlabError(
                f"--lora-targets {t!r} names no linear layer of the model; its linears: "
                + ", ".join(names[:8])
            )
    return list(settings.targets)


def _peft():
    try:
        import peft
    except ImportError:
        raise LmlabError(f"--lora needs the peft package: {INSTALL_HINT}") from None
    return peft


def peft_config(settings: LoraSettings, targets: list[str], base: str | None = None):
    return _peft().LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        base_model_name_or_path=base,
    )


def apply_lora(model: nn.Module, settings: LoraSettings, targets: list[str]) -> None:
    """Wrap ``targets`` of ``model`` with fresh adapters (B = 0: the model is unchanged) and
    freeze every other parameter."""
    peft = _peft()
    peft.inject_adapter_in_model(peft_config(settings, targets), model)


def adapter_config(settings: LoraSettings, targets: list[str], base: str | None) -> dict[str, Any]:
    """``adapter_config.json`` as ``PeftModel.save_pretrained`` writes it for this model."""
    cfg = peft_config(settings, targets, base).to_dict()
    out = {k: sorted(v) if isinstance(v, set) else v for k, v in cfg.items()}
    out["inference_mode"] = True
    out["auto_mapping"] = {
        "base_model_class": "Transformer",
        "parent_library": "lmlab.models.transformer",
    }
    return out


class LoraWeights:
    """How a LoRA run checkpoints its weights: the adapters only (see
    :class:`lmlab.train.checkpoint.FullWeights` for the interface)."""

    file = ADAPTER_FILE

    def __init__(self, settings: LoraSettings, targets: list[str], base: str | None) -> None:
        self.settings, self.targets, self.base = settings, targets, base

    def save(self, run_dir: Path, model: nn.Module, metadata: dict[str, str]) -> None:
        from peft import get_peft_model_state_dict

        tensors = {
            PREFIX + k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()
        }
        save_tensors_atomic(tensors, run_dir / ADAPTER_FILE, {"format": "pt", **metadata})
        cfg = adapter_config(self.settings, self.targets, self.base)
        atomic_write_text(run_dir / ADAPTER_CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")

    def load(self, run_dir: Path, model: nn.Module) -> None:
        from peft import set_peft_model_state_dict

        tensors = load_tensors_checked(run_dir / ADAPTER_FILE)
        tensors = {k.removeprefix(PREFIX): v for k, v in tensors.items()}
        try:
            res = set_peft_model_state_dict(model, tensors)
        except RuntimeError as e:
            raise LmlabError(
                f"{run_dir / ADAPTER_FILE} does not match the run's config ({str(e)[:80]})"
            ) from None
        bad = [k for k in res.unexpected_keys if "lora_" in k]
        if bad:
            raise LmlabError(
                f"{run_dir / ADAPTER_FILE} has adapters the model lacks ({bad[0]}); the run is damaged"
            )


def read_adapter_config(run_dir: Path) -> dict[str, Any]:
    p = run_dir / ADAPTER_CONFIG_FILE
    if not p.is_file():
        raise LmlabError(f"{p} not found; the LoRA run is incomplete (train it again)")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmlabError(f"{p} is not valid JSON ({e}); restore it or retrain") from None
    if not isinstance(cfg, dict) or cfg.get("peft_type", "LORA") != "LORA":
        raise LmlabError(f"{p} is not a LoRA adapter config")
    unsupported = [
        k
        for k in ("use_dora", "rank_pattern", "alpha_pattern", "fan_in_fan_out", "lora_bias")
        if cfg.get(k)
    ]
    if unsupported:
        raise LmlabError(f"{p}: lmlab cannot merge adapters with {unsupported[0]} set")
    return cfg


@torch.no_grad()
def merge_adapter(model: nn.Module, run_dir: Path) -> int:
    """Add the adapters of ``run_dir`` into ``model``'s base weights (``W += s * B @ A``, with
    ``s = alpha / rank``, or ``alpha / sqrt(rank)`` for rsLoRA), without peft. Returns the
    number of layers changed."""
    cfg = read_adapter_config(run_dir)
    rank, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank
    tensors = load_tensors_checked(run_dir / ADAPTER_FILE)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        name = key.removeprefix(PREFIX)
        for part in ("lora_A", "lora_B"):
            if name.endswith(f".{part}.weight"):
                pairs.setdefault(name[: -len(f".{part}.weight")], {})[part] = t
                break
        else:
            raise LmlabError(f"{run_dir / ADAPTER_FILE}: unexpected tensor {key!r}")
    for module_name, ab in pairs.items():
        try:
            layer = model.get_submodule(module_name)
        except AttributeError:
            layer = None
        if not isinstance(layer, nn.Linear) or set(ab) != {"lora_A", "lora_B"}:
            raise LmlabError(
                f"{run_dir / ADAPTER_FILE}: adapter {module_name!r} does not fit the model"
            )
        a, b = ab["lora_A"].float(), ab["lora_B"].float()
        w = layer.weight
        if a.shape != (rank, w.shape[1]) or b.shape != (w.shape[0], rank):
            raise LmlabError(
                f"{run_dir / ADAPTER_FILE}: adapter {module_name!r} has shapes {tuple(a.shape)}, "
                f"{tuple(b.shape)}, the layer {tuple(w.shape)}"
            )
        w.add_((b @ a * scale).to(w.dtype))
    return len(pairs)
