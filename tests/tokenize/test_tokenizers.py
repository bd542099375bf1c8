from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmlab.errors import LmlabError
from lmlab.tokenize import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)

TRAIN = [
    "To be, or not to be, that is the question.\n",
    "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。\n",
]


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TRAIN * 20, vocab_size=300)


@pytest.fixture(scope="module")
def char() -> CharTokenizer:
    return CharTokenizer.train(TRAIN)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_char_round_trips_any_unicode(char: CharTokenizer, text: str) -> None:
    assert char.decode(char.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("天地玄黄宇宙洪荒🎉😀é\n ab"))
        | st.characters(exclude_categories=("Cs",))
    )
)
def test_bpe_round_trips_any_unicode(bpe: BPETokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text


def test_char_known_characters_get_one_token_each(char: CharTokenizer) -> None:
    assert len(char.encode("天地 be")) == 5
    # an unseen emoji falls back to its 4 UTF-8 bytes
    assert len(char.encode("🎉")) == 4
    assert char.decode(char.encode("🎉")) == "🎉"


def test_bpe_merges_frequent_words(bpe: BPETokenizer) -> None:
    assert len(bpe.encode("question")) < len("question")


def test_word_tokenizer_english_and_chinese() -> None:
    tok = WordTokenizer.train(
        ["我们在北京天安门广场。Hello, world! hello again.\n"], lowercase=True
    )
    pieces = tok.tokens("我们在北京。Hello, world!")
    assert pieces[:2] == ["我们", "在"]
    assert "hello" in pieces and "," in pieces
    assert tok.decode(tok.encode("hello, world!")) == "hello, world!"
    assert tok.decode(tok.encode("我们在北京天安门广场。")) == "我们在北京天安门广场。"


def test_word_vocabulary_cap_maps_rest_to_unk() -> None:
    tok = WordTokenizer.train(["a a a b b c"], max_vocab=2)
    assert tok.words == ["a", "b"]
    assert tok.encode("a c") == [tok._stoi["a"], tok.unk_id]


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_round_trip(tmp_path, kind: str) -> None:
    tok = train_tokenizer(kind, TRAIN * 5, **({"vocab_size": 280} if kind == "bpe" else {}))
    tok.save(tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    text = "To be, or not 天地。"
    assert again.encode(text) == tok.encode(text)
    assert again.special_tokens == tok.special_tokens
    assert "<eos>" in tok.special_tokens
    assert json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))["kind"] == kind


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_unpaired_surrogates_are_a_clear_error(kind: str) -> None:
    tok = train_tokenizer(kind, TRAIN)
    with pytest.raises(LmlabError, match="surrogate"):
        tok.encode("a\ud800b")


def test_bad_tokenizer_inputs(tmp_path) -> None:
    with pytest.raises(LmlabError, match="unknown tokenizer"):
        train_tokenizer("sentencepiece", TRAIN)
    with pytest.raises(LmlabError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LmlabError, match="corrupt"):
        load_tokenizer(tmp_path / "bad.json")


def test_long_bpe_texts_encode_as_one_piece(bpe: BPETokenizer) -> None:
    from lmlab.data.builtin import builtin_files

    text = (
        builtin_files("shakespeare-sonnets")[0].read_text(encoding="utf-8")[:200_000]
        + "\n\n  天地\n x"
    )
    assert bpe.encode_array(text).tolist() == bpe.encode(text)


def test_char_byte_fallback_in_long_text(char: CharTokenizer) -> None:
    text = ("To be 🎉, or not 天地 é\n" * 3000)[:-1]
    ids = char.encode_array(text)
    assert char.decode(ids) == text
    assert len(ids) == len(text) + 3000 * (4 - 1) + 3000 * (2 - 1) - 0


def test_whitespace_split_reads_pretokenised_text(tmp_path) -> None:
    text = " the company said n't <unk> N\n\n prices rose\n"
    tok = WordTokenizer.train([text], split="whitespace")
    ids = tok.encode(text)
    assert tok.tokens(text) == [
        "the",
        "company",
        "said",
        "n't",
        "<unk>",
        "N",
        "<eos>",
        "<eos>",
        "prices",
        "rose",
        "<eos>",
    ]
    assert ids[4] == tok.unk_id and ids[6] == tok.eos_id
    assert tok.decode(ids) == "the company said n't <unk> N\n\nprices rose\n"
    tok.save(tmp_path / "t.json")
    assert load_tokenizer(tmp_path / "t.json").encode(text) == ids
