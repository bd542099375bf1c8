"""SmolLM2-135M-Instruct (``builtin:smollm2``, a Q4_1 GGUF) in lmlab against ``transformers``'
own GGUF loader on the same file: both dequantise it to float32, so they must agree.

* tokenizer: the same ids on English prose;
* logits: teacher-forced on 2,000 tokens of that prose, every logit within 1e-3;
* the decoding kernel, which reads the file's blocks, gives the float model's logits;
* greedy generation: lmlab's engine (KV cache, that kernel) writes 64 tokens for 5 prompts, plain and
  through the chat template, and at every step ``transformers``' greedy choice given the
  same prefix is lmlab's token (checked in one forward per prompt: by induction this is
  ``transformers``' own greedy continuation, and it costs a second instead of a minute);
* the chat template: lmlab's Jinja rendering is ``apply_chat_template``'s text.

Each model is loaded once per module (lmlab ~7 s, ``transformers`` ~25 s).
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers", reason="needs transformers (pip install '.[test]')")
pytest.importorskip("accelerate", reason="transformers' GGUF loader needs accelerate")
pytest.importorskip("gguf", reason="needs the gguf package")

import torch  # noqa: E402

from lmlab.errors import LmlabError  # noqa: E402
from shared_data import shared_file  # noqa: E402

pytestmark = pytest.mark.slow

PROSE_FILE = ("gutenberg", "austen_pride_and_prejudice.txt")  # public domain (Project Gutenberg)
N_TOKENS, NEW_TOKENS, LOGIT_TOL = 2000, 64, 1e-3
PROMPTS = [
    "The three primary colours are",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
    "The capital of France is Paris. The capital of Germany is",
    "Water boils at",
]
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."}],
    [
        {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    [
        {"role": "user", "content": "Hi! Who are you?"},
        {"role": "assistant", "content": "I am SmolLM, a small language model."},
        {"role": "user", "content": "Name three fruits."},
    ],
    [{"role": "user", "content": "Explain gravity to a five-year-old."}],
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a machine as busy as 2 shared cores, PyTorch's second thread mostly waits for a
    core (decoding steps took 10x longer with 2 threads than with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gguf_file():
    from lmlab.interop.sources import builtin_path

    try:
        return builtin_path("smollm2")
    except LmlabError as e:
        pytest.skip(f"builtin:smollm2 unavailable ({e})")


@pytest.fixture(scope="module")
def prose() -> str:
    """About 20,000 characters of Pride and Prejudice, Gutenberg header removed."""
    from lmlab.embeddings.corpus import strip_gutenberg

    raw = shared_file(*PROSE_FILE).read_text(encoding="utf-8").replace("\r\n", "\n")
    return strip_gutenberg(raw).strip()[:20000]


@pytest.fixture(scope="module")
def lm(gguf_file):
    from lmlab.run import load_run

    return load_run("builtin:smollm2")


@pytest.fixture(scope="module")
def hf(gguf_file):
    """``transformers``' model and tokenizer from the same GGUF file, float32, eager."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    ).eval()
    return model, tok


@pytest.fixture(scope="module")
def prose_ids(lm, prose) -> list[int]:
    ids = lm.tokenizer.encode(prose)
    assert len(ids) >= N_TOKENS
    return ids[:N_TOKENS]


def test_tokenizer_ids_equal_transformers(lm, hf, prose) -> None:
    _, tok = hf
    ours = lm.tokenizer.encode(prose)
    theirs = tok(prose, add_special_tokens=False).input_ids
    assert len(ours) > N_TOKENS
    assert ours == theirs
    assert lm.tokenizer.decode(ours) == prose


def test_logits_equal_transformers_on_prose(lm, hf, prose_ids) -> None:
    model, _ = hf
    x = torch.tensor([prose_ids])
    with torch.inference_mode():
        ours = lm.model(x)[0]
        theirs = model(x).logits[0]
    assert ours.shape == theirs.shape == (N_TOKENS, lm.model.config.vocab_size)
    diff = (ours - theirs).abs().max().item()
    assert diff < LOGIT_TOL, f"max |logit difference| {diff:.2e} on {N_TOKENS} tokens"
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


def test_fast_decoder_reads_the_files_blocks_with_the_float_models_logits(lm, prose_ids) -> None:
    """The decoding kernel reads the file's Q4_1/Q8_0 blocks, which are exactly the float32
    model's weights: its logits are the model's own, teacher-forced after 500 tokens."""
    from lmlab.generate.fastdecode import fast_decoder

    fast = fast_decoder(lm.model, True)
    assert fast.kinds == ("Q4", "Q4", "Q4", "Q4", "Q8")
    assert fast.nbytes < 110e6  # vs 540 MB of float32 matrices
    ids = torch.tensor([prose_ids[:532]])
    with torch.inference_mode():
        ref_state, state = lm.model.new_state(1), fast.new_state(1)
        lm.model(ids[:, :500], ref_state)
        lm.model(ids[:, :500], state)
        for t in range(500, 532):
            ref = lm.model(ids[:, t : t + 1], ref_state)[0, -1]
            got = fast.step(ids[:, t], state)[0]
            assert (got - ref).abs().max().item() < LOGIT_TOL, t


def _greedy_agrees(model, prompt_ids: list[int], new_ids: list[int]) -> None:
    """At each of the new tokens, transformers' argmax given the prefix is that token."""
    with torch.inference_mode():
        logits = model(torch.tensor([prompt_ids + new_ids])).logits[0]
    choices = logits[len(prompt_ids) - 1 : -1].argmax(-1).tolist()
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(choices, new_ids, strict=True)) if a != b), None
    )
    assert first_diff is None, (
        f"transformers' greedy choice differs at new token {first_diff}: "
        f"{choices[first_diff]} vs lmlab's {new_ids[first_diff]}"
    )


def _lmlab_greedy(lm, prompt) -> tuple[list[int], list[int]]:
    from lmlab.generate import SamplingParams, generate
    from lmlab.generate.engine import prepare_prompt

    params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    prompt_ids = prepare_prompt(lm.model, lm.tokenizer, prompt)
    (out,) = generate(lm.model, lm.tokenizer, prompt_ids, params, fast_decode=True)
    assert len(out.token_ids) == NEW_TOKENS
    return prompt_ids, out.token_ids


@pytest.mark.parametrize("k", range(len(PROMPTS)))
def test_greedy_generation_equals_transformers(lm, hf, k: int) -> None:
    model, tok = hf
    prompt_ids, new_ids = _lmlab_greedy(lm, PROMPTS[k])
    assert prompt_ids == tok(PROMPTS[k], add_special_tokens=False).input_ids
    _greedy_agrees(model, prompt_ids, new_ids)


@pytest.mark.parametrize("k", range(len(CHATS)))
def test_chat_template_and_greedy_reply_equal_transformers(lm, hf, k: int) -> None:
    from lmlab.serve.chat_template import encode_chat, load_chat_template

    model, tok = hf
    template = load_chat_template(lm.path, lm.config)
    text = template.render(CHATS[k])
    assert text == tok.apply_chat_template(CHATS[k], tokenize=False, add_generation_prompt=True)
    prompt_ids, new_ids = _lmlab_greedy(lm, encode_chat(template, CHATS[k], lm.tokenizer))
    assert prompt_ids == tok(text, add_special_tokens=False).input_ids
    _greedy_agrees(model, prompt_ids, new_ids)
