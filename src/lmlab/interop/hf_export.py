"""Write an lmlab Transformer run as a Hugging Face checkpoint folder that
``transformers.AutoModelForCausalLM.from_pretrained(DIR)`` loads: Llama blocks as
``LlamaForCausalLM``, GPT-2 blocks as ``GPT2LMHeadModel``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from lmlab.errors import LmlabError
from lmlab.models.transformer import Transformer, TransformerConfig


def check_exportable(run, fmt: str) -> Transformer:
    model = run.model
    if not isinstance(model, Transformer):
        raise LmlabError(
            f"only Transformer runs can be exported to {fmt}; {run.name} is a {run.family} model"
        )
    cfg: TransformerConfig = model.config
    if not cfg.mlp:
        raise LmlabError(f"attention-only Transformers have no {fmt} equivalent")
    if cfg.block == "gpt2" and cfg.kv_heads != cfg.n_head:
        raise LmlabError(f"GPT-2 blocks with grouped-query attention have no {fmt} equivalent")
    return model


def _split_qkv(cfg: TransformerConfig, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    q, kv = cfg.n_head * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    return tuple(x.contiguous() for x in t.split([q, kv, kv]))


def hf_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face's names and layouts."""
    cfg = model.config
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    if cfg.block == "llama":
        out["model.embed_tokens.weight"] = sd["tok_emb.weight"]
        out["model.norm.weight"] = sd["ln_f.weight"]
        for i in range(cfg.n_layer):
            o, b = f"blocks.{i}.", f"model.layers.{i}."
            for part in ("weight", "bias") if cfg.use_qkv_bias else ("weight",):
                q, k, v = _split_qkv(cfg, sd[o + f"attn.qkv.{part}"])
                out[b + f"self_attn.q_proj.{part}"] = q
                out[b + f"self_attn.k_proj.{part}"] = k
                out[b + f"self_attn.v_proj.{part}"] = v
            for part in ("weight", "bias") if cfg.use_bias else ("weight",):
                out[b + f"self_attn.o_proj.{part}"] = sd[o + f"attn.proj.{part}"]
                gate, up = sd[o + f"mlp.gate_up.{part}"].chunk(2)
                out[b + f"mlp.gate_proj.{part}"] = gate.contiguous()
                out[b + f"mlp.up_proj.{part}"] = up.contiguous()
                out[b + f"mlp.down_proj.{part}"] = sd[o + f"mlp.proj.{part}"]
            out[b + "input_layernorm.weight"] = sd[o + "ln1.weight"]
            out[b + "post_attention_layernorm.weight"] = sd[o + "ln2.weight"]
        if not cfg.tie_embeddings:
            out["lm_head.weight"] = sd["head.weight"]
        return out
    d = cfg.d_model

    def bias(key: str, n: int) -> torch.Tensor:
        return sd.get(key, torch.zeros(n))

    out["transformer.wte.weight"] = sd["tok_emb.weight"]
    out["transformer.wpe.weight"] = sd["pos_emb.weight"]
    out["transformer.ln_f.weight"] = sd["ln_f.weight"]
    out["transformer.ln_f.bias"] = bias("ln_f.bias", d)
    conv = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "mlp.fc": "mlp.c_fc",
            "mlp.proj": "mlp.c_proj"}  # fmt: skip
    for i in range(cfg.n_layer):
        o, b = f"blocks.{i}.", f"transformer.h.{i}."
        for ours, theirs in conv.items():
            w = sd[o + ours + ".weight"]
            out[b + theirs + ".weight"] = w.t().contiguous()  # Conv1D: (in, out)
            out[b + theirs + ".bias"] = bias(o + ours + ".bias", w.shape[0])
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[b + theirs + ".weight"] = sd[o + ours + ".weight"]
            out[b + theirs + ".bias"] = bias(o + ours + ".bias", d)
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["head.weight"]
    return out


def hf_config_llama(cfg: TransformerConfig, common: dict[str, Any]) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ff_dim,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.kv_heads,
        "num_hidden_layers": cfg.n_layer,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "attention_bias": cfg.use_bias,
        "mlp_bias": cfg.use_bias,
        "attention_dropout": 0.0,
        **common,
    }


def hf_config(model: Transformer, eos_id: int, bos_id: int | None) -> dict[str, Any]:
    cfg = model.config
    common = {"vocab_size": cfg.vocab_size, "tie_word_embeddings": cfg.tie_embeddings,
              "torch_dtype": "float32", "eos_token_id": eos_id,
              "bos_token_id": bos_id if bos_id is not None else eos_id}  # fmt: skip
    if cfg.block == "llama" and cfg.use_qkv_bias and not cfg.use_bias:
        llama = hf_config_llama(cfg, common)
        return {**llama, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                "use_sliding_window": False}  # fmt: skip
    if cfg.block == "llama":
        if cfg.use_qkv_bias != cfg.use_bias:
            raise LmlabError("query/key/value biases without the others need bias=false (Qwen2)")
        return hf_config_llama(cfg, common)
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": cfg.ff_dim,
        "n_positions": cfg.context_length,
        "n_ctx": cfg.context_length,
        "activation_function": "gelu_new" if cfg.gelu_approximate == "tanh" else "gelu",
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        **common,
    }


def export_hf(run, out: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors``, ``generation_config.json`` and, for
    byte-level BPE tokenizers, ``tokenizer.json`` + ``tokenizer_config.json``."""
    from lmlab.config import atomic_write_text
    from lmlab.run import save_tensors_atomic
    from lmlab.serve.chat_template import load_chat_template

    model = check_exportable(run, "Hugging Face")
    tok = run.tokenizer
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bos = tok.bos_id
    save_tensors_atomic(hf_tensors(model), out / "model.safetensors", {"format": "pt"})
    cfg = hf_config(model, tok.eos_id, bos)

    def dump(name: str, data: dict[str, Any]) -> None:
        atomic_write_text(out / name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    dump("config.json", cfg)
    dump(
        "generation_config.json",
        {"bos_token_id": cfg["bos_token_id"], "eos_token_id": sorted(tok.end_ids)},
    )
    hf = getattr(tok, "hf", None)
    if hf is None:
        warnings.warn(
            f"the {tok.kind} tokenizer has no Hugging Face equivalent; only the model is "
            "exported (token ids are lmlab's own)",
            stacklevel=2,
        )
        return out
    atomic_write_text(out / "tokenizer.json", hf.to_str())
    eos = tok.id_to_piece(tok.eos_id) if tok.kind != "hf" else tok.eos_token
    tc: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": eos,
        "bos_token": getattr(tok, "bos_token", None) or eos,
        "add_bos_token": bool(tok.add_bos),
        "model_max_length": model.config.context_length,
        "clean_up_tokenization_spaces": False,
    }
    template = load_chat_template(run.path, run.config)
    if template.jinja:
        tc["chat_template"] = template.jinja
    dump("tokenizer_config.json", tc)
    return out
