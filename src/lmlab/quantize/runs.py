"""Quantised run directories: write one from any model source, rebuild its model.

``quantize_run`` reads a run (a run directory, a GGUF file, a Hugging Face folder or
``builtin:NAME``), quantises every linear layer of its Transformer (and, unless
``embeddings`` is off, the token embedding, with a head tied to it; those two in int8 per
channel under int4 unless ``embedding_bits`` is 4) and writes a new run
directory: ``config.toml`` with a ``[quantization]`` section, ``tokenizer.json``,
``model.safetensors`` (see :mod:`lmlab.quantize.scheme` for the tensors), the chat template
and ``card.md``; the prepared ``data/`` split is hard-linked (copied where links fail) so
``lmlab eval`` and ``lab probe`` find it. Built in a temporary folder and renamed: a
failure leaves nothing, and an existing run is never overwritten.

``build_quantized`` rebuilds the model of such a run on the meta device and swaps in
:class:`~lmlab.quantize.modules.QuantLinear` / ``QuantEmbedding`` layers: the float
weights of the quantised matrices never exist in memory.
"""

from __future__ import annotations

import os
import shutil
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel
from lmlab.quantize.modules import QuantEmbedding, QuantLinear, _QuantMatrix, kernel_layout
from lmlab.quantize.scheme import QuantTensor, Scheme, quantize_matrix

SECTION = "quantization"
PARTS = ("qweight", "scales", "zeros")


def linear_names(model) -> list[str]:
    """Module names of the Transformer's matrices to quantise, in order (the head last)."""
    names = []
    for i, b in enumerate(model.blocks):
        names += [f"blocks.{i}.attn.qkv", f"blocks.{i}.attn.proj"]
        if b.mlp is not None:
            fc = "gate_up" if model.config.block == "llama" else "fc"
            names += [f"blocks.{i}.mlp.{fc}", f"blocks.{i}.mlp.proj"]
    return names


def _targets(model, scheme: Scheme) -> list[str]:
    """Every matrix to quantise: the blocks' linears, the head and the embedding (as the
    scheme and the tie decide)."""
    names = linear_names(model)
    tied = model.config.tie_embeddings
    if scheme.embeddings:
        names.append("tok_emb")
    if not tied:
        names.append("head")
    return names


def quantize_tensors(model, scheme: Scheme, progress: bool = True) -> dict[str, torch.Tensor]:
    """The ``model.safetensors`` of ``model`` quantised under ``scheme``."""
    from tqdm import tqdm

    from lmlab.models import Transformer

    if type(model) is not Transformer:
        raise LmlabError(
            f"only Transformer runs can be quantised (this one is {type(model).__name__})"
        )
    targets = _targets(model, scheme)
    for name in targets:
        mod = model.get_submodule(name)
        _scheme_of(scheme, name).check_width(name, mod.weight.shape[1])
    out: dict[str, torch.Tensor] = {}
    skip = {f"{n}.weight" for n in targets}
    if model.config.tie_embeddings and scheme.embeddings:
        skip.add("head.weight")
    for k, v in model.tensors_for_save().items():
        if k not in skip:
            out[k] = v
    for name in tqdm(
        targets, desc=f"quantising ({scheme.name})", unit="matrix", disable=not progress
    ):
        w = model.get_submodule(name).weight.detach().to(torch.float32)
        qt = quantize_matrix(w, _scheme_of(scheme, name), name)
        out[f"{name}.qweight"], out[f"{name}.scales"] = qt.qweight, qt.scales
        if qt.zeros is not None:
            out[f"{name}.zeros"] = qt.zeros
    return out


def _scheme_of(scheme: Scheme, name: str) -> Scheme:
    """The embedding and the head take the scheme's embedding scheme; the rest, the scheme."""
    return scheme.for_embeddings() if name in ("tok_emb", "head") else scheme


def _quant_tensor(tensors: dict[str, torch.Tensor], name: str, where: Path) -> QuantTensor:
    try:
        q, s = tensors.pop(f"{name}.qweight"), tensors.pop(f"{name}.scales")
    except KeyError:
        raise LmlabError(f"{where} lacks the quantised tensors of {name}; re-quantise") from None
    z = tensors.pop(f"{name}.zeros", None)
    out = q.shape[0]
    n = q.shape[1] * (2 if q.dtype == torch.uint8 else 1)
    if s.dtype != torch.float16 or s.shape[0] != out or (z is not None and z.shape != s.shape):
        raise LmlabError(f"{where}: the scales of {name} do not match its weights; re-quantise")
    return QuantTensor(q, s, z, out, n)


def build_quantized(config, tensors: dict[str, torch.Tensor], scheme: Scheme, where: Path):
    """A Transformer of ``config`` whose quantised matrices are ``tensors``' (no float copy)."""
    tensors = dict(tensors)
    with torch.device("meta"):
        from lmlab.models.transformer import Transformer

        names = _targets(Transformer(config), scheme)

    def matrices():
        for name in names:
            yield name, _quant_tensor(tensors, name, where), _scheme_of(scheme, name).bits

    return assemble(config, matrices(), tensors, where)


def assemble(config, matrices, tensors: dict[str, torch.Tensor], where: Path | str):
    """A Transformer of ``config`` from quantised matrices and float tensors, with no float
    copy of the quantised ones. ``matrices`` yields ``(module name, QuantTensor, bits)``
    (a generator: each matrix is laid out in the kernel's tiles, copied into its layer stack
    and dropped before the next is made); ``tensors`` holds every other tensor, by
    :meth:`~lmlab.models.transformer.Transformer.tensors_for_save` name (a float matrix
    among them stays an ``nn.Linear``; the dict is consumed, and ``matrices`` may pop from
    it as it goes). A tied head shares the embedding's memory."""
    from lmlab.models.transformer import Transformer, _rope_tables

    with torch.device("meta"):
        model = Transformer(config)
    stacks: dict[str, tuple[torch.Tensor, ...]] = {}
    for name, qt, bits in matrices:
        expect = model.get_submodule(name).weight.shape
        if (qt.out_features, qt.in_features) != tuple(expect):
            raise LmlabError(
                f"{where}: {name} is {qt.out_features}x{qt.in_features}, the config says "
                f"{expect[0]}x{expect[1]}; re-quantise"
            )
        if qt.qweight.dtype != (torch.int8 if bits == 8 else torch.uint8):
            raise LmlabError(f"{where}: {name} is not int{bits} as config.toml says")
        w, d, m = _into_stack(stacks, name, len(model.blocks), kernel_layout(qt, bits))
        del qt
        if name == "tok_emb":
            layer: nn.Module = QuantEmbedding(expect[0], expect[1], bits, w, d, m)
        else:
            bias = tensors.pop(f"{name}.bias", None)
            layer = QuantLinear(expect[0], expect[1], bits, w, d, m, bias)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, layer)
    quant_emb = isinstance(model.tok_emb, QuantEmbedding)
    if config.tie_embeddings:
        if quant_emb:
            model.head = QuantLinear.sharing(model.tok_emb)
        tensors.pop("head.weight", None)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if unexpected:
        raise LmlabError(f"{where} has unexpected tensors {unexpected[:3]}; re-quantise")
    if config.tie_embeddings and not quant_emb:
        model.head.weight = model.tok_emb.weight
    if config.block == "llama":
        model.rope_cos, model.rope_sin = _rope_tables(config)
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_meta:
            raise LmlabError(f"{where} lacks tensor {name}; re-quantise")
    model._quant_stacks = stacks
    # what other commands ask of a model, answered for the quantised matrices too
    model.num_params = types.MethodType(_num_params, model)
    model.tensors_for_save = types.MethodType(_float_tensors, model)
    return model


def _quant_layers(model) -> dict[str, _QuantMatrix]:
    """The quantised matrices by module name (a tied head, sharing the embedding's, once)."""
    out, seen = {}, set()
    for name, m in model.named_modules():
        if isinstance(m, _QuantMatrix) and id(m.w) not in seen:
            seen.add(id(m.w))
            out[name] = m
    return out


def _num_params(model, trainable_only: bool = False) -> int:
    """Parameters counted as in the float model: the float ones plus every quantised weight."""
    n = LanguageModel.num_params(model, trainable_only)
    if trainable_only:
        return n
    return n + sum(m.out_features * m.in_features for m in _quant_layers(model).values())


def _float_tensors(model) -> dict[str, torch.Tensor]:
    """The float model's tensors, quantised matrices dequantised (for export or as the start
    of fine-tuning): the only place the whole float model is materialised, on request."""
    out = LanguageModel.tensors_for_save(model)  # state_dict() dequantises (the layers' hook)
    if model.config.tie_embeddings:
        out.pop("head.weight", None)
    return out


def _into_stack(stacks: dict, name: str, n_layer: int, wdm: tuple) -> tuple[torch.Tensor, ...]:
    """Copy a block's matrix into one (L, ...) tensor per kind of matrix and return views of
    it: the decoding kernel then reads every layer's weights without a second copy."""
    if not name.startswith("blocks."):
        return wdm
    layer, suffix = name.split(".", 2)[1:]
    stack = stacks.get(suffix)
    if stack is None or any(s.shape[1:] != t.shape or s.dtype != t.dtype
                            for s, t in zip(stack, wdm, strict=True)):  # fmt: skip
        if stack is not None or int(layer) != 0:
            return wdm  # layers of different shapes: each keeps its own
        stack = stacks[suffix] = tuple(torch.empty((n_layer, *t.shape), dtype=t.dtype) for t in wdm)
    for s, t in zip(stack, wdm, strict=True):
        s[int(layer)] = t
    return tuple(s[int(layer)] for s in stack)


def quantized_scheme(cfg: dict[str, Any]) -> Scheme | None:
    """The scheme of a run's config, or None when the run is not quantised."""
    sec = cfg.get(SECTION)
    return None if sec is None else Scheme.from_config(sec)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link (else copy) the files under ``src`` into ``dst``: a derived run shares its
    source run's prepared data."""
    for root, _, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                os.link(Path(root) / f, target / f)
            except OSError:
                shutil.copy2(Path(root) / f, target / f)


def quantize_run(source: str | Path, out: str | Path, scheme: Scheme) -> Path:
    """Quantise ``source`` into a new run directory ``out`` (see the module docstring)."""
    import json

    from lmlab.config import atomic_write_text, save_toml
    from lmlab.run import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_run, save_tensors_atomic

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LmlabError(f"{out} already exists; choose a new --out (nothing was overwritten)")
    src_dir = Path(str(source))
    if src_dir.is_dir() and (src_dir / CONFIG_FILE).is_file():
        from lmlab.config import load_toml

        if SECTION in load_toml(src_dir / CONFIG_FILE):
            raise LmlabError(
                f"{source} is already quantised; quantise its float source run instead"
            )
    gguf = _gguf_source(source)
    if gguf is not None:  # matrix by matrix from the file: blocks already in the scheme kept
        from lmlab.interop.sources import pretrained_config
        from lmlab.quantize.gguf_direct import quantized_tensors

        imp, n_params, tensors = quantized_tensors(gguf, scheme)
        run = types.SimpleNamespace(config=pretrained_config(imp), tokenizer=imp.tokenizer)
    else:
        run = load_run(source)
        if SECTION in run.config:
            raise LmlabError(
                f"{source} is already quantised; quantise its float source run instead"
            )
        tensors = quantize_tensors(run.model, scheme)
        n_params = run.model.num_params()
    cfg = {k: v for k, v in run.config.items() if k != "chat"}
    cfg[SECTION] = {**scheme.to_config(), "from": str(source)}
    tmp = out.with_name(f".{out.name}.quantizing")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_toml(tmp / CONFIG_FILE, cfg)
        run.tokenizer.save(tmp / TOKENIZER_FILE)
        save_tensors_atomic(tensors, tmp / MODEL_FILE, {"format": "pt", "lmlab": "quantized"})
        from lmlab.serve.chat_template import TEMPLATE_FILE

        if src_dir.is_dir() and (src_dir / TEMPLATE_FILE).is_file():
            shutil.copy2(src_dir / TEMPLATE_FILE, tmp / TEMPLATE_FILE)
        elif "chat" in run.config:
            text = json.dumps(run.config["chat"], ensure_ascii=False, indent=1)
            atomic_write_text(tmp / TEMPLATE_FILE, text)
        if src_dir.is_dir() and (src_dir / "data").is_dir():
            link_tree(src_dir / "data", tmp / "data")
        size = (tmp / MODEL_FILE).stat().st_size
        atomic_write_text(tmp / "card.md", _card(out.name, source, scheme, size, n_params))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # empty (checked above)
    tmp.rename(out)
    return out


def _gguf_source(source) -> Path | None:
    """The GGUF file that ``source`` names (a path or ``builtin:NAME``), or None."""
    from lmlab.interop.sources import PICKLE_SUFFIXES, is_pretrained, source_path

    if not is_pretrained(source):
        return None
    p = source_path(source)
    if not p.is_file() or p.suffix.lower() in PICKLE_SUFFIXES:
        return None  # an HF folder; a pickle is refused by the float path
    return p


def _card(name: str, source, scheme: Scheme, size: int, n_params: int) -> str:
    return "\n".join(
        [
            f"# Run card: {name}",
            "",
            f"- quantised from `{source}`: **{scheme.name}**"
            + ("" if scheme.embeddings else " (token embedding kept in float)"),
            f"- parameters: {n_params:,}; model.safetensors: {size / 1e6:.1f} MB",
            "- weight-only: activations, the KV cache, norms and biases stay float32",
            "- every command that takes --run computes with the quantised weights",
            "",
        ]
    )
