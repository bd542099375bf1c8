"""The run directory: everything needed to rebuild a model, in safe formats.

``runs/<name>/`` holds ``config.toml`` (sections ``[data]``, ``[tokenizer]``, ``[model]``
with ``family``, ``[train]``), ``tokenizer.json``, ``model.safetensors``, and from training
``optimizer.safetensors``, ``trainer_state.json``, ``metrics.jsonl``, ``loss.png``,
``samples.txt`` and ``card.md``. Every command that needs a model takes ``--run DIR``.
A LoRA fine-tuning run holds ``adapter_model.safetensors`` instead of ``model.safetensors``;
loading it reads the base named in its ``[init]`` section and merges the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lmlab.config import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_toml, publish
from lmlab.errors import LmlabError
from lmlab.models import LanguageModel, build_model
from lmlab.tokenize import Tokenizer, load_tokenizer

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TOKENIZER_FILE", "Run", "load_run"]


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    model: LanguageModel
    tokenizer: Tokenizer

    @property
    def family(self) -> str:
        return self.config["model"]["family"]

    @property
    def name(self) -> str:
        return self.path.name


def save_tensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """``safetensors`` save via a temp file and rename (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    publish(tmp, path)


def load_tensors_checked(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a one-line error if it is missing, truncated or corrupt."""
    if not path.is_file():
        raise LmlabError(f"{path} not found; is this a finished run directory?")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LmlabError(
            f"{path} is corrupt or truncated ({str(e).splitlines()[0][:80]}); restore it or retrain"
        ) from None
    check_finite(tensors, path)
    return tensors


def check_finite(tensors: dict[str, torch.Tensor], path: Path | str) -> None:
    """An error naming the first tensor that holds NaN (or +Inf: a log-probability table may
    hold -Inf for an impossible event, never +Inf), so a diverged run is not used silently."""
    for name, t in tensors.items():
        if not t.is_floating_point() or bool(torch.isfinite(t.sum())):
            continue  # one reduction: a finite sum means no NaN and no infinity
        if torch.isnan(t).any() or torch.isposinf(t).any():
            raise LmlabError(
                f"{path} holds NaN or infinite values in {name!r}: the model diverged or the "
                "file is damaged; retrain (lower the learning rate) or restore an earlier copy"
            )


def load_run(
    path: str | Path, device: str | torch.device = "cpu", quantized: bool | None = None
) -> Run:
    """Rebuild the model and tokenizer of a run directory, in eval mode. A GGUF file, a
    Hugging Face checkpoint folder or ``builtin:NAME`` is read as a pretrained model;
    ``quantized`` (``--quantized``; default: inside ``sources.open_quantized()``) opens a
    GGUF file on its own Q4_0/Q4_1/Q8_0 blocks instead of dequantising it to float32."""
    from lmlab.interop.sources import is_pretrained, open_pretrained, quantized_default

    if is_pretrained(path):
        on = quantized_default() if quantized is None else quantized
        return open_pretrained(path, device, quantized=on)
    p = Path(path)
    if not p.is_dir():
        raise LmlabError(f"run directory {p} not found; pass --run runs/NAME")
    cfg = load_toml(p / CONFIG_FILE)
    if quantized and "quantization" not in cfg:  # asked for this run, not by a server's default
        raise LmlabError(
            f"--quantized opens a GGUF file's own quantised blocks; {p} is a float run: "
            "quantise it with lmlab quantize, or drop --quantized"
        )
    model_cfg = dict(cfg.get("model", {}))
    family = model_cfg.pop("family", None)
    if family is None:
        raise LmlabError(f"{p / CONFIG_FILE} has no [model] family; the run is incomplete")
    tokenizer = load_tokenizer(p / TOKENIZER_FILE)
    if "quantization" in cfg:  # weight-only int8/int4: built with no float copy
        return Run(p, cfg, _load_quantized(p, family, model_cfg, cfg).to(device).eval(), tokenizer)
    model = build_model(family, model_cfg)
    lora = cfg.get("init", {}).get("lora") is not None
    weights = p / MODEL_FILE
    if lora:
        from lmlab.train.finetune import reopen_base

        weights = Path(cfg["init"].get("path") or cfg["init"].get("source", "?"))
        tensors = reopen_base(cfg["init"], p).tensors
    else:
        tensors = load_tensors_checked(weights)
    try:
        model.load_tensors(tensors)
    except (RuntimeError, KeyError) as e:
        raise LmlabError(
            f"{weights} does not match {p / CONFIG_FILE} ({str(e).splitlines()[0][:100]})"
        ) from None
    if lora:
        from lmlab.train.lora import merge_adapter

        merge_adapter(model, p)
    model.to(device).eval()
    if "init" not in cfg:  # imported, never trained since
        _decode_from_source_blocks(model, cfg.get("source", {}))
    return Run(p, cfg, model, tokenizer)


def _load_quantized(p: Path, family: str, model_cfg: dict, cfg: dict) -> LanguageModel:
    """The model of a run written by ``lmlab quantize`` (:mod:`lmlab.quantize`)."""
    from lmlab.models import config_from_dict
    from lmlab.quantize.runs import build_quantized, quantized_scheme

    if family != "transformer":
        raise LmlabError(f"{p / CONFIG_FILE}: only transformer runs can be quantised")
    scheme = quantized_scheme(cfg)
    return build_quantized(
        config_from_dict(family, model_cfg), load_tensors_checked(p / MODEL_FILE), scheme, p
    )


def _decode_from_source_blocks(model: LanguageModel, source: dict[str, Any]) -> None:
    """A run imported from a GGUF file that is still there, unchanged, decodes from the
    file's own quantised blocks (which are exactly its float32 weights)."""
    if source.get("format") != "gguf" or "file_bytes" not in source:
        return
    f = Path(source.get("path", ""))
    try:
        st = f.stat()
    except OSError:
        return
    if (st.st_size, st.st_mtime_ns) == (source["file_bytes"], source["file_mtime_ns"]):
        from lmlab.generate.fastdecode import register_gguf

        register_gguf(model, f)
