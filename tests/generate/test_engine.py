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


@pytest.mark.parametrize("fast", [False, True])
def test_n_greedy_samples_share_one_prefill_and_equal_one_sample(tok, fast) -> None:
    """n samples prefill the prompt once and copy its keys and values to every row: greedy,
    each is the single sample's continuation, also after the KV cache has grown."""
    m = model(tok, ctx=300).eval()
    prompt = "abcdefghij klmnop" * 16  # 272 characters: beyond the cache's first 256 rows
    one = generate(m, tok, prompt, SamplingParams(max_new_tokens=20, temperature=0),
                   fast_decode=fast)[0]  # fmt: skip
    many = generate(m, tok, prompt, SamplingParams(max_new_tokens=20, temperature=0, n=3),
                    fast_decode=fast)  # fmt: skip
    assert [c.token_ids for c in many] == [one.token_ids] * 3


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


@pytest.fixture(scope="module")
def hello_model():
    """A tiny Transformer trained on documents that all read "hello world": after "hello"
    it says " world" and then ends the document."""
    tok = CharTokenizer.train(["hello world"])
    doc = tok.encode("hello world") + [tok.eos_id]
    data = torch.tensor(doc * 64)
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(
            vocab_size=tok.vocab_size, context_length=24, n_layer=1, n_head=2, d_model=32
        )
    )
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(150):
        starts = torch.randint(0, len(data) - 25, (16,))
        x = torch.stack([data[s : s + 24] for s in starts])
        y = torch.stack([data[s + 1 : s + 25] for s in starts])
        loss = torch.nn.functional.cross_entropy(m(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval(), tok


def test_generation_stops_at_the_end_of_the_document(hello_model) -> None:
    m, tok = hello_model
    greedy = SamplingParams(max_new_tokens=20, temperature=0)
    out = generate(m, tok, "hello", greedy)[0]
    assert out.text == " world" and out.finish_reason == "stop"
    assert out.token_ids[-1] == tok.eos_id  # the end token is counted, never shown
    events = list(generate_stream(m, tok, "hello", greedy))
    assert "".join(e.text for e in events) == " world" and events[-1].finish_reason == "stop"
    # ignore_eos goes on into the next document, to the token budget
    more = generate(
        m, tok, "hello", SamplingParams(max_new_tokens=20, temperature=0, ignore_eos=True)
    )[0]
    assert more.finish_reason == "length" and len(more.token_ids) == 20
    assert more.text.startswith(" world<eos>h")  # the next document begins


def test_end_of_document_releases_text_held_for_a_stop_string() -> None:
    tok = CharTokenizer.train(["abxyz"])
    st = _SampleText(tok, ["xyz"], stop_at_eos=True)
    assert st.push(tok.encode("a")[0]) == ("a", False)
    assert st.push(tok.encode("x")[0]) == ("", False)  # might be the start of "xyz"
    assert st.push(tok.eos_id) == ("x", True)


def test_eos_that_ends_lines_does_not_stop_generation() -> None:
    from lmlab.generate.engine import sample_text
    from lmlab.tokenize import WordTokenizer

    lines = WordTokenizer.train(["a b\nc d\n"], split="whitespace")
    assert not lines.eos_ends_document  # Penn Treebank style: <eos> after every sentence
    assert sample_text(lines, SamplingParams(), []).ends == set()
    words = WordTokenizer.train(["a b\nc d\n"])
    assert words.eos_ends_document
    assert sample_text(words, SamplingParams(), []).ends == {words.eos_id}
    assert sample_text(words, SamplingParams(ignore_eos=True), []).ends == set()
