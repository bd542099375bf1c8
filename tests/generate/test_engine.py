from __future__ import annotations

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.generate import SamplingParams, generate, generate_stream
from lmlab.generate.engine import PromptCroppedWarning, _SampleText
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig
from lmlab.tokenize import CharTokenizer


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train(["abcdefghij klmnop\n"])


def model(tok, ctx=16) -> Transformer:
    torch.manual_seed(0)
    return Transformer(
        TransformerConfig(
            vocab_size=tok.vocab_size, context_length=ctx, n_layer=1, n_head=2, d_model=16
        )
    )


def test_greedy_matches_uncached_argmax(tok) -> None:
    m = model(tok).eval()
    out = generate(m, tok, "abc", SamplingParams(max_new_tokens=30, temperature=0))[0]
    ids = tok.encode("abc")
    for _ in range(30):  # the slow way: full forward over the (cropped) window each step
        window = (
            ids[-(m.context_length) :]
            if len(ids) < m.context_length
            else ids[-(m.context_length // 2) :]
        )
        ids.append(int(m(torch.tensor([window]))[0, -1].argmax()))
    # before the window slides (16 tokens) both paths see the same context
    assert out.token_ids[:12] == ids[3:15]
    assert len(out.token_ids) == 30 and out.finish_reason == "length"


def test_seeded_samples_repeat_and_n_samples(tok) -> None:
    m = model(tok)
    p = SamplingParams(max_new_tokens=12, seed=7, n=3, repetition_penalty=1.3, top_p=0.9)
    a, b = generate(m, tok, "ab", p), generate(m, tok, "ab", p)
    assert [c.text for c in a] == [c.text for c in b]
    assert len(a) == 3 and len({c.text for c in a}) > 1


def test_stop_strings_are_never_emitted() -> None:
    tok = CharTokenizer.train(["abc"])
    st = _SampleText(tok, ["bc"])
    outs = [st.push(i) for i in tok.encode("aabca")]
    emitted = "".join(o for o, _ in outs[:4])
    assert emitted == "aa" and outs[3][1] is True


def test_long_prompt_is_cropped_with_warning_or_refused(tok) -> None:
    m = model(tok)
    with pytest.warns(PromptCroppedWarning):
        out = generate(m, tok, "abcdefghij" * 5, SamplingParams(max_new_tokens=3, temperature=0))
    assert out[0].prompt_tokens == 15
    with pytest.raises(LmlabError, match="context"):
        list(
            generate_stream(
                m, tok, "abcdefghij" * 5, SamplingParams(max_new_tokens=3), on_long_prompt="error"
            )
        )


def test_rnn_generates_beyond_any_window(tok) -> None:
    torch.manual_seed(0)
    m = RNNLanguageModel(RNNConfig(vocab_size=tok.vocab_size, embed_dim=8, hidden_size=8))
    out = generate(m, tok, "a", SamplingParams(max_new_tokens=100, temperature=0))[0]
    assert len(out.token_ids) == 100


def test_stream_reports_logprobs_and_top_alternatives(tok) -> None:
    m = model(tok)
    events = list(
        generate_stream(
            m, tok, "ab", SamplingParams(max_new_tokens=5, temperature=0), top_logprobs=3
        )
    )
    assert len(events) == 5
    for e in events:
        assert len(e.top) == 3 and e.top[0][0] == e.token_id
        assert abs(e.top[0][1] - e.logprob) < 1e-6


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_streamed_pieces_join_to_the_decoded_text(kind: str) -> None:
    from lmlab.tokenize import train_tokenizer

    corpus = ["Hello, world! 你好，世界。 It is a fine day.\n"] * 5
    tok = train_tokenizer(kind, corpus, **({"vocab_size": 280} if kind == "bpe" else {}))
    text = "Hello, world! 🎉 你好，世界。 It is fine.\nday"
    ids = tok.encode(text)
    st = _SampleText(tok, [])
    pieces = [st.push(i)[0] for i in ids]
    assert "".join(pieces) + st.flush() == tok.decode(ids)


def test_first_generated_word_is_spaced_from_the_prompt() -> None:
    from lmlab.tokenize import WordTokenizer

    tok = WordTokenizer.train(["hello world again"])
    st = _SampleText(tok, [], tok.encode("hello"))
    assert st.push(tok.encode("world")[0]) == (" world", False)
