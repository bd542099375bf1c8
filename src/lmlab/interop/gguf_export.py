"""Write an lmlab Transformer run as a GGUF file that llama.cpp (and Ollama) load:
architecture ``llama`` or ``gpt2``, tensors in F32, F16 or Q8_0, the byte-level BPE
vocabulary with its merges, and the chat template if the run has one.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError
from lmlab.interop.gguf_import import permute_rope
from lmlab.interop.hf_export import check_exportable

TYPES = ("f32", "f16", "q8_0")


def _pre_name(tok) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer."""
    if getattr(tok, "gguf_pre", None):
        return tok.gguf_pre
    if tok.kind == "bpe":
        return "gpt-2"  # lmlab's BPE: GPT-2's byte-level pattern (llama.cpp's name)
    pre = json.loads(tok.hf.to_str()).get("pre_tokenizer") or {}
    kinds = [p.get("type") for p in pre.get("pretokenizers", [pre])]
    if kinds == ["ByteLevel"]:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"]:
        return "smollm"
    warnings.warn("unknown pre-tokenizer; writing 'gpt-2' (llama.cpp may split text differently)",
                  stacklevel=3)  # fmt: skip
    return "gpt-2"


def _vocab(writer, tok) -> None:
    import gguf

    hf = getattr(tok, "hf", None)
    if hf is None:
        warnings.warn(
            f"the {tok.kind} tokenizer has no GGUF equivalent; writing a file without a "
            "vocabulary (llama.cpp then takes token ids only)",
            stacklevel=3,
        )
        writer.add_tokenizer_model("none")
        return
    n = hf.get_vocab_size()
    tokens = [hf.id_to_token(i) or f"[PAD{i}]" for i in range(n)]
    specials = set(tok.special_tokens.values())
    types = [gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL for i in range(n)]
    merges = json.loads(hf.to_str())["model"].get("merges", [])
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_name(tok))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tok.eos_id)
    writer.add_bos_token_id(tok.bos_id if tok.bos_id is not None else tok.eos_id)
    writer.add_add_bos_token(bool(tok.add_bos))


def _tensors(model) -> dict[str, np.ndarray]:
    cfg = model.config
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["tok_emb.weight"], "output_norm.weight": sd["ln_f.weight"]}
    if not cfg.tie_embeddings:
        out["output.weight"] = sd["head.weight"]
    if cfg.block == "llama":
        if cfg.use_bias:
            raise LmlabError("llama.cpp's llama architecture has no biases; train with bias=false")
        qwen = cfg.use_qkv_bias  # Qwen2: q/k/v biases, half-split RoPE (no permutation)
        q, kv = cfg.n_head * cfg.head_dim, cfg.kv_heads * cfg.head_dim
        for i in range(cfg.n_layer):
            o, b = f"blocks.{i}.", f"blk.{i}."
            wq, wk, wv = np.split(sd[o + "attn.qkv.weight"], [q, q + kv])
            if not qwen:
                wq, wk = permute_rope(wq, cfg.n_head), permute_rope(wk, cfg.kv_heads)
            else:
                bq, bk, bv = np.split(sd[o + "attn.qkv.bias"], [q, q + kv])
                out[b + "attn_q.bias"], out[b + "attn_k.bias"], out[b + "attn_v.bias"] = bq, bk, bv
            out[b + "attn_q.weight"], out[b + "attn_k.weight"] = wq, wk
            out[b + "attn_v.weight"] = wv
            out[b + "attn_output.weight"] = sd[o + "attn.proj.weight"]
            out[b + "attn_norm.weight"] = sd[o + "ln1.weight"]
            out[b + "ffn_norm.weight"] = sd[o + "ln2.weight"]
            gate, up = np.split(sd[o + "mlp.gate_up.weight"], 2)
            out[b + "ffn_gate.weight"], out[b + "ffn_up.weight"] = gate, up
            out[b + "ffn_down.weight"] = sd[o + "mlp.proj.weight"]
            if cfg.use_bias:
                raise LmlabError(
                    "llama.cpp's llama architecture has no biases; train with bias=false"
                )
        return out
    d = cfg.d_model
    out["position_embd.weight"] = sd["pos_emb.weight"]
    out["output_norm.bias"] = sd.get("ln_f.bias", np.zeros(d, np.float32))
    names = {"ln1": "attn_norm", "attn.qkv": "attn_qkv", "attn.proj": "attn_output",
             "ln2": "ffn_norm", "mlp.fc": "ffn_up", "mlp.proj": "ffn_down"}  # fmt: skip
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            w = sd[f"blocks.{i}.{ours}.weight"]
            out[f"blk.{i}.{theirs}.weight"] = w
            out[f"blk.{i}.{theirs}.bias"] = sd.get(
                f"blocks.{i}.{ours}.bias", np.zeros(w.shape[0], np.float32)
            )
    return out


def export_gguf(run, out: str | Path, dtype: str = "f16") -> Path:
    """Write ``out`` (a ``.gguf`` file) atomically: temp file, then rename."""
    import gguf

    dtype = dtype.lower()
    if dtype not in TYPES:
        raise LmlabError(f"GGUF tensor type {dtype!r} unknown; choose one of {', '.join(TYPES)}")
    model = check_exportable(run, "GGUF")
    cfg = model.config
    tensors = _tensors(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    arch = "qwen2" if cfg.block == "llama" and cfg.use_qkv_bias else cfg.block
    w = gguf.GGUFWriter(str(tmp), arch)
    try:
        w.add_name(run.name)
        w.add_context_length(cfg.context_length)
        w.add_embedding_length(cfg.d_model)
        w.add_block_count(cfg.n_layer)
        w.add_feed_forward_length(cfg.ff_dim)
        w.add_head_count(cfg.n_head)
        w.add_vocab_size(cfg.vocab_size)
        if arch in ("llama", "qwen2"):
            w.add_head_count_kv(cfg.kv_heads)
            w.add_layer_norm_rms_eps(cfg.norm_eps)
            w.add_rope_freq_base(cfg.rope_theta)
            w.add_rope_dimension_count(cfg.head_dim)
        else:
            w.add_layer_norm_eps(cfg.norm_eps)
            # llama.cpp's GELU is the tanh form; an lmlab run trained with the exact one
            # says so, so that importing the file again gives back the same model.
            w.add_string("lmlab.gelu_approximate", cfg.gelu_approximate)
        file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]  # fmt: skip
        w.add_file_type(file_type)
        _vocab(w, run.tokenizer)
        from lmlab.serve.chat_template import load_chat_template

        template = load_chat_template(run.path, run.config)
        if template.jinja:
            w.add_chat_template(template.jinja)
        for name, arr in tensors.items():
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if arr.ndim == 1 or dtype == "f32":
                w.add_tensor(name, arr)
            elif dtype == "q8_0" and arr.shape[-1] % 32 == 0:
                q = gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(name, arr.astype(np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return out
