"""Read a local Hugging Face checkpoint folder (``config.json``, ``model.safetensors`` or
sharded safetensors, ``tokenizer.json``) of ``LlamaForCausalLM`` or ``GPT2LMHeadModel``
into lmlab's Transformer. No hub access: a folder on disk only, and never a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lmlab.errors import LmlabError
from lmlab.interop.gguf_import import Imported
from lmlab.models.transformer import TransformerConfig
from lmlab.tokenize.pretrained import PretrainedTokenizer

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "GPT2LMHeadModel": "gpt2",
}
_GELU = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LmlabError(f"{path} is not readable JSON ({e.__class__.__name__}); fix it") from None
    if not isinstance(data, dict):
        raise LmlabError(f"{path} must hold a JSON object")
    return data


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif index.is_file():
        files = sorted({folder / f for f in _json(index).get("weight_map", {}).values()})
    else:
        pickles = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
        if pickles:
            raise LmlabError(
                f"{folder} holds only PyTorch pickle weights ({pickles[0]}), which lmlab never "
                "loads; save them as safetensors: model.save_pretrained(DIR, safe_serialization=True)"
            )
        raise LmlabError(f"{folder} has no model.safetensors; it is not a complete checkpoint")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            out.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise LmlabError(f"{f} is corrupt or truncated ({str(e)[:80]})") from None
    return {k: v.float() for k, v in out.items()}


def _rope_theta(c: dict[str, Any]) -> float:
    params = c.get("rope_parameters") or {}
    scaling = c.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise LmlabError(f"RoPE scaling {kind!r} is not supported")
    return float(params.get("rope_theta", c.get("rope_theta", 10000.0)))


def hf_config(c: dict[str, Any], where: Path) -> TransformerConfig:
    archs = c.get("architectures") or []
    arch = next((ARCHITECTURES[a] for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        arch = {"llama": "llama", "qwen2": "qwen2", "gpt2": "gpt2"}.get(c.get("model_type", ""))
    if arch is None:
        raise LmlabError(
            f"{where}: architecture {archs or c.get('model_type')} is not supported; lmlab reads "
            + ", ".join(ARCHITECTURES)
        )
    if arch in ("llama", "qwen2"):
        d, n_head = int(c["hidden_size"]), int(c["num_attention_heads"])
        n_kv = int(c.get("num_key_value_heads") or n_head)
        if c.get("head_dim") not in (None, d // n_head):
            raise LmlabError(f"{where}: head_dim {c['head_dim']} != hidden_size/heads")
        if c.get("hidden_act", "silu") != "silu":
            raise LmlabError(f"{where}: activation {c['hidden_act']!r} is not supported (silu)")
        attn_bias, mlp_bias = bool(c.get("attention_bias")), bool(c.get("mlp_bias"))
        if arch == "qwen2" and c.get("use_sliding_window"):
            raise LmlabError(f"{where}: sliding-window attention is not supported")
        if attn_bias != mlp_bias:
            raise LmlabError(f"{where}: attention_bias and mlp_bias must agree for lmlab")
        return TransformerConfig(
            vocab_size=int(c["vocab_size"]),
            context_length=int(c.get("max_position_embeddings", 2048)),
            n_layer=int(c["num_hidden_layers"]),
            n_head=n_head,
            n_kv_head=n_kv if n_kv != n_head else None,
            d_model=d,
            d_ff=int(c["intermediate_size"]),
            block="llama",
            bias=attn_bias,
            qkv_bias=True if arch == "qwen2" else None,  # Qwen2: biases on q, k, v only
            tie_embeddings=bool(c.get("tie_word_embeddings", False)),
            rope_theta=_rope_theta(c),
            norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        )
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if c.get(flag):
            raise LmlabError(f"{where}: GPT-2 option {flag} is not supported")
    if c.get("scale_attn_weights", True) is False:
        raise LmlabError(f"{where}: GPT-2 without attention scaling is not supported")
    act = c.get("activation_function", "gelu_new")
    if act not in _GELU:
        raise LmlabError(f"{where}: activation {act!r} is not supported")
    d = int(c["n_embd"])
    return TransformerConfig(
        vocab_size=int(c["vocab_size"]),
        context_length=int(c.get("n_positions", 1024)),
        n_layer=int(c["n_layer"]),
        n_head=int(c["n_head"]),
        d_model=d,
        d_ff=int(c.get("n_inner") or 4 * d),
        block="gpt2",
        bias=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        norm_eps=float(c.get("layer_norm_epsilon", 1e-5)),
        gelu_approximate=_GELU[act],
    )


def _map_llama(w: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    g = {k.removeprefix("model."): v for k, v in w.items()}
    out = {"tok_emb.weight": g["embed_tokens.weight"], "ln_f.weight": g["norm.weight"]}
    for i in range(cfg.n_layer):
        b, o = f"layers.{i}.", f"blocks.{i}."
        a, m = b + "self_attn.", b + "mlp."
        for part in ("weight", "bias") if cfg.use_qkv_bias else ("weight",):
            out[o + f"attn.qkv.{part}"] = torch.cat(
                [g[a + f"q_proj.{part}"], g[a + f"k_proj.{part}"], g[a + f"v_proj.{part}"]]
            )
        for part in ("weight", "bias") if cfg.use_bias else ("weight",):
            out[o + f"attn.proj.{part}"] = g[a + f"o_proj.{part}"]
            out[o + f"mlp.gate_up.{part}"] = torch.cat(
                [g[m + f"gate_proj.{part}"], g[m + f"up_proj.{part}"]]
            )
            out[o + f"mlp.proj.{part}"] = g[m + f"down_proj.{part}"]
        out[o + "ln1.weight"] = g[b + "input_layernorm.weight"]
        out[o + "ln2.weight"] = g[b + "post_attention_layernorm.weight"]
    if not cfg.tie_embeddings:
        out["head.weight"] = g["lm_head.weight"]
    return out


def _map_gpt2(w: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    g = {k.removeprefix("transformer."): v for k, v in w.items()}
    out = {
        "tok_emb.weight": g["wte.weight"],
        "pos_emb.weight": g["wpe.weight"],
        "ln_f.weight": g["ln_f.weight"],
        "ln_f.bias": g["ln_f.bias"],
    }
    conv = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "mlp.fc": "mlp.c_fc",
            "mlp.proj": "mlp.c_proj"}  # fmt: skip
    for i in range(cfg.n_layer):
        b, o = f"h.{i}.", f"blocks.{i}."
        for ours, theirs in conv.items():  # Conv1D stores (in, out): transpose to Linear's
            out[o + ours + ".weight"] = g[b + theirs + ".weight"].t().contiguous()
            out[o + ours + ".bias"] = g[b + theirs + ".bias"]
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[o + ours + ".weight"] = g[b + theirs + ".weight"]
            out[o + ours + ".bias"] = g[b + theirs + ".bias"]
    if not cfg.tie_embeddings:
        out["head.weight"] = g.get("lm_head.weight", w.get("lm_head.weight"))
    return out


def _token_str(v) -> str | None:
    if isinstance(v, dict):
        return v.get("content")
    return v if isinstance(v, str) else None


def hf_tokenizer(folder: Path, c: dict[str, Any]) -> tuple[PretrainedTokenizer, str | None]:
    """The folder's ``tokenizer.json`` with the special tokens named in its configs; and the
    chat template (``tokenizer_config.json`` or ``chat_template.jinja``), if any."""
    from tokenizers import Tokenizer as HFTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise LmlabError(
            f"{folder} has no tokenizer.json; save the tokenizer there too "
            "(tokenizer.save_pretrained(DIR) with a fast tokenizer)"
        )
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise LmlabError(f"{path} is not a readable tokenizer ({str(e)[:80]})") from None
    tc = (
        _json(folder / "tokenizer_config.json")
        if (folder / "tokenizer_config.json").is_file()
        else {}
    )
    gen = (
        _json(folder / "generation_config.json")
        if (folder / "generation_config.json").is_file()
        else {}
    )

    def by_id(i) -> str | None:
        return hf.id_to_token(int(i)) if isinstance(i, int) else None

    eos_ids = gen.get("eos_token_id", c.get("eos_token_id"))
    eos_list = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    eos = _token_str(tc.get("eos_token")) or by_id(eos_list[0])
    if eos is None or hf.token_to_id(eos) is None:
        raise LmlabError(f"{folder}: no end-of-sequence token found in the tokenizer's configs")
    bos = _token_str(tc.get("bos_token")) or by_id(c.get("bos_token_id"))
    add_bos = bool(tc.get("add_bos_token", False))
    if not tc.get("add_bos_token") and hf.post_processor is not None and bos:  # Llama 3 style
        probe = hf.encode("a").ids
        add_bos = bool(probe) and probe[0] == hf.token_to_id(bos)
    hf.post_processor = None  # lmlab adds BOS itself (prepare_prompt), never twice
    ends = [t for t in (by_id(i) for i in eos_list) if t and t != eos]
    template = tc.get("chat_template")
    if isinstance(template, list):  # several named templates: take the default
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    return PretrainedTokenizer(hf, eos, bos, add_bos, ends), template


def read_hf(folder: str | Path) -> Imported:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise LmlabError(f"{folder} has no config.json; pass a Hugging Face checkpoint folder")
    c = _json(folder / "config.json")
    try:
        cfg = hf_config(c, folder)
    except KeyError as e:
        raise LmlabError(f"{folder}/config.json lacks {e.args[0]!r}") from None
    weights = _weights(folder)
    if cfg.tie_embeddings and "lm_head.weight" in weights:
        emb = weights.get("model.embed_tokens.weight", weights.get("transformer.wte.weight"))
        if emb is not None and not torch.equal(emb, weights["lm_head.weight"]):
            cfg.tie_embeddings = False  # stored apart and different: keep both
    try:
        mapped = (_map_llama if cfg.block == "llama" else _map_gpt2)(weights, cfg)
    except KeyError as e:
        raise LmlabError(f"{folder}: the weights lack tensor {e.args[0]!r}") from None
    tokenizer, template = hf_tokenizer(folder, c)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise LmlabError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but the model's "
            f"vocabulary is {cfg.vocab_size}; they do not belong together"
        )
    source = {
        "format": "hf",
        "path": str(folder.resolve()),
        "architecture": "qwen2" if cfg.use_qkv_bias and not cfg.use_bias else cfg.block,
        "name": str(c.get("_name_or_path") or folder.name),
        "tensor_types": "float (safetensors)",
        "computed_as": "float32",
    }
    return Imported(cfg, mapped, tokenizer, template, source)
