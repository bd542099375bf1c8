"""Read a GGUF file (llama.cpp's format) into lmlab's own Transformer.

The weights are dequantised to float32 with the ``gguf`` package and mapped onto
:class:`lmlab.models.transformer.Transformer`: ``llama`` (RMSNorm, SwiGLU, RoPE, GQA) and
``gpt2`` (LayerNorm, GELU, learned positions). llama.cpp's converter permutes the query and
key rows of Llama models for its interleaved RoPE; the import undoes that, since lmlab
rotates half-split pairs as Hugging Face does. The tokenizer is rebuilt from the metadata
(tokens, merges, pre-tokenizer, special tokens) as a Hugging Face ``tokenizers`` object;
the chat template is kept verbatim (Jinja2).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.models.transformer import TransformerConfig
from lmlab.tokenize.pretrained import PretrainedTokenizer

ARCHITECTURES = ("llama", "qwen2", "gpt2")
_END_STRINGS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "</s>",
    "<end_of_turn>",
)


@dataclass
class Imported:
    """A pretrained model read from a file or folder, before it becomes a run."""

    config: TransformerConfig
    tensors: dict[str, torch.Tensor]
    tokenizer: PretrainedTokenizer
    chat_template: str | None
    source: dict[str, Any] = field(default_factory=dict)


def _reader(path: Path):
    from lmlab.interop.gguf_read import GGUFFile

    if not path.is_file():
        raise LmlabError(f"{path} not found; pass a .gguf file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise LmlabError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    try:
        return GGUFFile(path)
    except (ValueError, OSError, IndexError, KeyError, struct.error) as e:
        raise LmlabError(
            f"{path} is truncated or corrupt ({str(e).splitlines()[0][:80]}); download it again"
        ) from None


def _fields(reader) -> dict[str, Any]:
    return dict(reader.meta)


def _need(meta: dict[str, Any], key: str, path: Path):
    if key not in meta:
        raise LmlabError(f"{path} has no {key!r} in its metadata; the file is incomplete")
    return meta[key]


def _f32(x) -> float:
    """A float32 from the metadata as the decimal it was written from (1e-05, not
    9.99999974e-06)."""
    return float(f"{float(x):.7g}")


def _config(meta: dict[str, Any], arch: str, path: Path) -> TransformerConfig:
    p = arch + "."
    d = int(_need(meta, p + "embedding_length", path))
    n_head = int(_need(meta, p + "attention.head_count", path))
    n_kv = int(meta.get(p + "attention.head_count_kv", n_head))
    common = dict(
        context_length=int(_need(meta, p + "context_length", path)),
        n_layer=int(_need(meta, p + "block_count", path)),
        n_head=n_head,
        n_kv_head=n_kv if n_kv != n_head else None,
        d_model=d,
        d_ff=int(_need(meta, p + "feed_forward_length", path)),
    )
    if arch in ("llama", "qwen2"):
        scaling = meta.get(p + "rope.scaling.type", "none")
        if scaling not in ("none", ""):
            raise LmlabError(f"{path}: RoPE scaling {scaling!r} is not supported")
        rope_dims = int(meta.get(p + "rope.dimension_count", d // n_head))
        if rope_dims != d // n_head:
            raise LmlabError(
                f"{path}: partial RoPE ({rope_dims} of {d // n_head} dimensions) is not supported"
            )
        return TransformerConfig(
            **common,
            block="llama",
            bias=False,
            qkv_bias=arch == "qwen2",
            rope_theta=_f32(meta.get(p + "rope.freq_base", 10000.0)),
            norm_eps=_f32(_need(meta, p + "attention.layer_norm_rms_epsilon", path)),
            vocab_size=0,
        )
    return TransformerConfig(
        **common,
        block="gpt2",
        bias=True,
        norm_eps=_f32(meta.get(p + "attention.layer_norm_epsilon", 1e-5)),
        # GPT-2's gelu_new; llama.cpp's GELU is the tanh form too (lmlab's own exports say
        # which form they were trained with)
        gelu_approximate=str(meta.get("lmlab.gelu_approximate", "tanh")),
        vocab_size=0,
    )


def _dequantise(t, rows: int | None = None) -> np.ndarray:
    import gguf

    data = t.data if rows is None else t.data.reshape(-1, t.data.shape[-1])[:rows]
    try:
        arr = gguf.quants.dequantize(data, t.tensor_type)
    except NotImplementedError:
        raise LmlabError(
            f"tensor {t.name} has type {t.tensor_type.name}, which lmlab cannot read; "
            "re-quantise the model to Q8_0, Q4_0/Q4_1, a K-quant, F16 or F32"
        ) from None
    if rows is not None:  # a probe: the type can be read
        return np.asarray(arr, dtype=np.float32)
    shape = tuple(int(x) for x in reversed(t.shape))  # GGML lists dimensions fastest first
    return np.asarray(arr, dtype=np.float32).reshape(shape)


def unpermute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's permutation of query/key rows (interleaved -> half-split RoPE)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's permutation of query/key rows (half-split -> interleaved RoPE)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _map_llama(
    g: dict[str, np.ndarray], cfg: TransformerConfig, path: Path
) -> dict[str, np.ndarray]:
    """Llama and Qwen2 (which has query/key/value biases and, as its RoPE is the half-split
    kind already, no permuted rows)."""
    out = {"tok_emb.weight": g.pop("token_embd.weight"), "ln_f.weight": g.pop("output_norm.weight")}
    qwen = cfg.use_qkv_bias
    for i in range(cfg.n_layer):
        b, o = f"blk.{i}.", f"blocks.{i}."
        q, k = g.pop(b + "attn_q.weight"), g.pop(b + "attn_k.weight")
        if not qwen:
            q, k = unpermute_rope(q, cfg.n_head), unpermute_rope(k, cfg.kv_heads)
        out[o + "attn.qkv.weight"] = np.concatenate([q, k, g.pop(b + "attn_v.weight")])
        if qwen:
            out[o + "attn.qkv.bias"] = np.concatenate(
                [g.pop(b + f"attn_{x}.bias") for x in ("q", "k", "v")]
            )
        out[o + "attn.proj.weight"] = g.pop(b + "attn_output.weight")
        out[o + "ln1.weight"] = g.pop(b + "attn_norm.weight")
        out[o + "ln2.weight"] = g.pop(b + "ffn_norm.weight")
        out[o + "mlp.gate_up.weight"] = np.concatenate(
            [g.pop(b + "ffn_gate.weight"), g.pop(b + "ffn_up.weight")]
        )
        out[o + "mlp.proj.weight"] = g.pop(b + "ffn_down.weight")
    if "output.weight" in g:
        out["head.weight"] = g.pop("output.weight")
    return out


def _map_gpt2(
    g: dict[str, np.ndarray], cfg: TransformerConfig, path: Path
) -> dict[str, np.ndarray]:
    out = {
        "tok_emb.weight": g.pop("token_embd.weight"),
        "pos_emb.weight": g.pop("position_embd.weight"),
        "ln_f.weight": g.pop("output_norm.weight"),
        "ln_f.bias": g.pop("output_norm.bias"),
    }
    names = {
        "ln1": "attn_norm",
        "attn.qkv": "attn_qkv",
        "attn.proj": "attn_output",
        "ln2": "ffn_norm",
        "mlp.fc": "ffn_up",
        "mlp.proj": "ffn_down",
    }
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            for part in ("weight", "bias"):
                out[f"blocks.{i}.{ours}.{part}"] = g.pop(f"blk.{i}.{theirs}.{part}")
    if "output.weight" in g:
        out["head.weight"] = g.pop("output.weight")
    return out


def read_gguf_header(path: str | Path):
    """Everything :func:`read_gguf` reads except the weights: an :class:`Imported` with no
    tensors, and the file's reader (its tensor table, data memory-mapped, not yet read).
    :mod:`lmlab.quantize.gguf_direct` maps the quantised blocks from there."""
    path = Path(path)
    reader = _reader(path)
    meta = _fields(reader)
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise LmlabError(
            f"{path}: architecture {arch!r} is not supported; lmlab reads {', '.join(ARCHITECTURES)}"
        )
    cfg = _config(meta, arch, path)
    raw = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in raw or len(raw["token_embd.weight"].shape) != 2:
        raise LmlabError(f"{path} lacks tensor token_embd.weight; the file is incomplete")
    cfg.vocab_size = int(raw["token_embd.weight"].shape[1])  # dimensions fastest first
    cfg.tie_embeddings = "output.weight" not in raw
    cfg.__post_init__()
    for t in reader.tensors:  # every tensor's type can be read (one row each)
        _dequantise(t, rows=1)
    tokenizer = gguf_tokenizer(meta, path)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise LmlabError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model's embedding "
            f"only {cfg.vocab_size}; the file is inconsistent"
        )
    types = Counter(t.tensor_type.name for t in reader.tensors)
    source = {
        "format": "gguf",
        "path": str(path.resolve()),
        "architecture": arch,
        "name": str(meta.get("general.name", path.stem)),
        "tensor_types": ", ".join(f"{k} x{n}" for k, n in types.most_common()),
        "computed_as": "float32, dequantised from the file's tensors",
        # the file as it was read: an imported run decodes from its blocks while it is unchanged
        "file_bytes": path.stat().st_size,
        "file_mtime_ns": path.stat().st_mtime_ns,
    }
    imp = Imported(cfg, {}, tokenizer, meta.get("tokenizer.chat_template"), source)
    return imp, reader


def read_gguf(path: str | Path) -> Imported:
    """The model, tokenizer and chat template of a GGUF file, dequantised to float32."""
    path = Path(path)
    imp, reader = read_gguf_header(path)
    cfg = imp.config
    raw = {t.name: t for t in reader.tensors}
    try:
        g = {name: _dequantise(t) for name, t in raw.items()}
        mapped = (_map_gpt2 if imp.source["architecture"] == "gpt2" else _map_llama)(g, cfg, path)
    except KeyError as e:
        raise LmlabError(f"{path} lacks tensor {e.args[0]}; the file is incomplete") from None
    except ValueError as e:  # a reshape of a truncated tensor
        raise LmlabError(f"{path} has a malformed tensor ({e}); the file is corrupt") from None
    imp.tensors = {
        k: torch.from_numpy(np.require(v, np.float32, ["C", "W"])) for k, v in mapped.items()
    }
    return imp


# -- tokenizer --------------------------------------------------------------------------

_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def pre_tokenizer(pre: str):
    """The Hugging Face pre-tokenizer that reproduces llama.cpp's ``tokenizer.ggml.pre``."""
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("default", "gpt2", "gpt-2", "mpt", "olmo", "starcoder", "refact", "jais", ""):
        return byte_level
    if pre == "smollm":  # digits one by one, then GPT-2's pattern
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    regex = {"llama3": _LLAMA3, "llama-bpe": _LLAMA3, "dbrx": _LLAMA3, "smaug-bpe": _LLAMA3,
             "qwen2": _QWEN2, "stablelm2": _QWEN2}.get(pre)  # fmt: skip
    if regex is None:
        raise LmlabError(
            f"pre-tokenizer {pre!r} is not supported; lmlab reads gpt2, smollm, llama3 and qwen2"
        )
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def gguf_tokenizer(meta: dict[str, Any], path: Path) -> PretrainedTokenizer:
    from tokenizers import AddedToken, decoders, models
    from tokenizers import Tokenizer as HFTokenizer

    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise LmlabError(
            f"{path}: tokenizer model {kind!r} is not supported; lmlab reads byte-level BPE ('gpt2')"
        )
    tokens = list(_need(meta, "tokenizer.ggml.tokens", path))
    types = list(meta.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    pre = str(meta.get("tokenizer.ggml.pre", "default"))
    vocab = {t: i for i, t in enumerate(tokens)}
    hf = HFTokenizer(
        models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in ("llama3", "llama-bpe"))
    )
    hf.pre_tokenizer = pre_tokenizer(pre)
    hf.decoder = decoders.ByteLevel()
    control = [
        AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3
    ]
    user = [
        AddedToken(tokens[i], special=False, normalized=False)
        for i, t in enumerate(types)
        if t == 4
    ]
    if control:
        hf.add_special_tokens(control)
    if user:
        hf.add_tokens(user)

    def token(key: str) -> str | None:
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    eos = token("eos") or token("eot")
    if eos is None:
        raise LmlabError(f"{path}: the tokenizer names no end-of-sequence token")
    ends = [t for t in (token("eot"), token("eom")) if t]
    ends += [t for t in _END_STRINGS if t in vocab and types[vocab[t]] == 3]
    return PretrainedTokenizer(
        hf,
        eos_token=eos,
        bos_token=token("bos"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        end_tokens=sorted(set(ends) - {eos}),
        gguf_pre=pre,
    )
