"""The matrices of a GGUF file in its own quantised blocks, laid out for the decoding kernel.

A model read from a GGUF file (:mod:`lmlab.interop.gguf_import`) holds float32 weights that
are exactly the dequantisation of the file's blocks: ``d * q + m`` per block of 32 inputs.
The decoding kernel (:mod:`lmlab.generate._fastdecode_kernels`) can read those blocks
instead - Q4_1 is 0.625 bytes a weight against float32's 4 - and compute the same products
in float32 (``d * sum(x * q) + m * sum(x)``), so a memory-bound decoding step reads a
sixth of the bytes and gives the float model's logits (to float32 rounding). Activations
stay float32 (``LMLAB_INT8_ACTIVATIONS=1`` rounds them to int8 as llama.cpp's Q4 x Q8
products do; quantised runs do so by default, see
:func:`lmlab.generate.fastdecode.int8_activations`).

Supported block types: Q4_0, Q4_1, Q8_0. A matrix whose tensors have another type (F16,
K-quants...) or mixed types across layers is left to the dense float path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lmlab.models.transformer import Transformer

TILE = 64  # outputs per tile (the kernel's vector loop runs over a tile)
_BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}


def tiles_of_rows(a: np.ndarray) -> np.ndarray:
    """(out, *rest) -> (n_tiles, *rest, TILE): each tile of ``TILE`` outputs contiguous,
    the output index fastest; ``out`` padded with zeros to a whole number of tiles."""
    pad = (-a.shape[0]) % TILE
    if pad:
        a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
    a = a.reshape(-1, TILE, *a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _split_blocks(raw: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of raw blocks (out, n_blocks * bytes) -> (qs, d, m) in the kernel's tiling:
    qs (n_tiles, n_blocks, 16 or 32, T), d and m (n_tiles, n_blocks, T) float16 bits."""
    out = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(out, -1, _BLOCK_BYTES[kind])
    d = np.ascontiguousarray(blocks[..., 0:2]).view(np.uint16)[..., 0]
    if kind == "Q4_1":
        m = np.ascontiguousarray(blocks[..., 2:4]).view(np.uint16)[..., 0]
        qs = blocks[..., 4:]
    elif kind == "Q4_0":  # d * (q - 8) = d * q + (-8 d), exactly (a power-of-two multiple)
        m = (d.view(np.float16) * np.float16(-8)).view(np.uint16)
        qs = blocks[..., 2:]
    else:  # Q8_0
        m = np.zeros_like(d)
        qs = blocks[..., 2:].view(np.int8)
    return tiles_of_rows(qs), tiles_of_rows(d), tiles_of_rows(m)


def _dequantise(raw: np.ndarray, kind: str) -> np.ndarray:
    import gguf

    t = getattr(gguf.GGMLQuantizationType, kind)
    return gguf.quants.dequantize(np.ascontiguousarray(raw), t).reshape(raw.shape[0], -1)


def _unpermute(raw: np.ndarray, n_head: int) -> np.ndarray:
    from lmlab.interop.gguf_import import unpermute_rope

    return unpermute_rope(raw, n_head)  # a permutation of rows: blocks move with their row


def _sources(model: Transformer, tensors: dict) -> dict[str, list[list]]:
    """For each matrix kind, per layer: the GGUF tensors (with a row permutation or None)
    whose rows, concatenated, are lmlab's matrix."""
    cfg = model.config
    layers = range(cfg.n_layer)
    if cfg.block == "llama":
        kinds = {
            "qkv": [[(f"blk.{i}.attn_q.weight", cfg.n_head),
                     (f"blk.{i}.attn_k.weight", cfg.kv_heads),
                     (f"blk.{i}.attn_v.weight", None)] for i in layers],
            "proj": [[(f"blk.{i}.attn_output.weight", None)] for i in layers],
            "fc": [[(f"blk.{i}.ffn_gate.weight", None), (f"blk.{i}.ffn_up.weight", None)]
                   for i in layers],
            "fc2": [[(f"blk.{i}.ffn_down.weight", None)] for i in layers],
        }  # fmt: skip
    else:
        kinds = {
            "qkv": [[(f"blk.{i}.attn_qkv.weight", None)] for i in layers],
            "proj": [[(f"blk.{i}.attn_output.weight", None)] for i in layers],
            "fc": [[(f"blk.{i}.ffn_up.weight", None)] for i in layers],
            "fc2": [[(f"blk.{i}.ffn_down.weight", None)] for i in layers],
        }
    if not cfg.mlp:
        kinds.pop("fc"), kinds.pop("fc2")
    head = "output.weight" if "output.weight" in tensors else "token_embd.weight"
    kinds["head"] = [[(head, None)]]
    return kinds


def _weights(model: Transformer, kind: str, layer: int) -> torch.Tensor:
    if kind == "head":
        return model.head.weight
    b = model.blocks[layer]
    return {
        "qkv": b.attn.qkv.weight,
        "proj": b.attn.proj.weight,
        "fc": (b.mlp.gate_up if model.config.block == "llama" else b.mlp.fc).weight
        if b.mlp is not None
        else None,
        "fc2": b.mlp.proj.weight if b.mlp is not None else None,
    }[kind]


def block_matrices(
    model: Transformer, path: str | Path
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The kernel's ``(qs, d, m)`` of every matrix kind (``qkv``, ``proj``, ``fc``, ``fc2``
    stacked over layers; ``head`` alone) whose tensors in ``path`` are all of one supported
    block type and whose dequantisation is the model's weight (checked on the first layer
    and the head); kinds left out decode from the dense float weights."""
    from lmlab.interop.gguf_read import GGUFFile

    tensors = {t.name: t for t in GGUFFile(path).tensors}
    found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for kind, per_layer in _sources(model, tensors).items():
        names = [n for parts in per_layer for n, _ in parts]
        if any(n not in tensors for n in names):
            continue
        types = {tensors[n].tensor_type.name for n in names}
        if len(types) != 1 or (qtype := types.pop()) not in _BLOCK_BYTES:
            continue
        stacked = None
        for layer, parts in enumerate(per_layer):
            rows = [
                np.asarray(tensors[n].data) if perm is None else _unpermute(tensors[n].data, perm)
                for n, perm in parts
            ]
            raw = rows[0] if len(rows) == 1 else np.concatenate(rows)
            if layer == 0:  # the blocks must be exactly the model's weights
                w = _weights(model, kind, 0).detach()
                deq = torch.from_numpy(_dequantise(raw, qtype))
                if w.shape != deq.shape or not torch.equal(w, deq):
                    break
            parts3 = _split_blocks(raw, qtype)
            if kind == "head":
                found[kind] = parts3
                break
            if stacked is None:
                stacked = tuple(np.empty((len(per_layer), *p.shape), p.dtype) for p in parts3)
            for dst, src in zip(stacked, parts3, strict=True):
                dst[layer] = src
        else:
            if stacked is not None:
                found[kind] = stacked
    return found
