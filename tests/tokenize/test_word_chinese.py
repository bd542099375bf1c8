"""The word tokenizer gives Chinese back as it was: no spaces inserted beside Chinese
characters nor around the punctuation written among them (``八戒道：“我说你也！”`` came
back as ``八戒道： “我说你也！”``), while English keeps its spaces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmlab.tokenize import train_tokenizer
from lmlab.tokenize.word import _is_cjk
from shared_data import shared_file


def _pure_chinese(line: str) -> bool:
    """A line of Chinese and punctuation only (no spaces, no letters or digits of a spaced
    script, whose spacing a word tokenizer cannot know)."""
    return bool(line) and not any(c.isspace() or (c.isalnum() and not _is_cjk(c)) for c in line)


def test_the_issue_example_and_english_spacing() -> None:
    texts = ["八戒道：“我说你也！”", "He said “hi” (twice), then left - fine.", "你好，世界。"]
    tok = train_tokenizer("word", texts, max_vocab=None)
    for t in texts:
        assert tok.decode(tok.encode(t)) == t


@pytest.mark.parametrize("book", ["hongloumeng.txt", "sanguoyanyi.txt", "shuihuzhuan.txt"])
def test_real_chinese_text_round_trips(book: str) -> None:
    text = shared_file("zh_classics", book).read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines()[:3000]]
    lines = [ln for ln in lines if _pure_chinese(ln)][:400]
    assert len(lines) > 100
    block = "\n".join(lines)  # several lines at once, line breaks kept
    tok = train_tokenizer("word", [block], max_vocab=None)  # every word known: no <unk>
    for ln in lines:
        assert tok.decode(tok.encode(ln)) == ln
    assert tok.decode(tok.encode(block)) == block


HANZI = "天地玄黄宇宙洪荒日月盈昃辰宿列张八戒道我说你也好了真假姐妹"
PUNCT = "，。！？；：、“”‘’「」《》（）…—．·\"'-`*"
chinese = st.text(alphabet=HANZI, min_size=1, max_size=3)
pieces = st.lists(st.one_of(chinese, st.text(alphabet=PUNCT, min_size=1, max_size=2)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(first=chinese, rest=pieces)
def test_chinese_with_any_punctuation_round_trips(first: str, rest: list[str]) -> None:
    text = first + "".join(rest)
    tok = train_tokenizer("word", [text], max_vocab=None)
    assert tok.decode(tok.encode(text)) == text
