"""Dialogue groundwork: DailyDialog split, conversation checks, assistant-only loss masks
under a chat template (lmlab's default and a ChatML-style one), distinct-n."""

from __future__ import annotations

import pytest

from lmlab.errors import LmlabError
from lmlab.serve.chat_template import ChatTemplate
from lmlab.tasks.dialogue import (
    as_messages,
    assistant_mask,
    check_conversation,
    distinct_n,
    load_dailydialog,
    read_dailydialog,
)
from lmlab.tokenize import BPETokenizer
from shared_data import shared_file

CHATML = ChatTemplate(system="<|im_start|>system\n{content}<|im_end|>\n",
                      user="<|im_start|>user\n{content}<|im_end|>\n",
                      assistant="<|im_start|>assistant\n{content}<|im_end|>\n",
                      generation_prompt="<|im_start|>assistant\n")  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    text = ["How are you today? I am fine, thanks. What about you? Not bad at all."] * 20
    return BPETokenizer.train(text, vocab_size=300)


def test_dailydialog_split_is_fixed_and_whole():
    shared_file("dialogue", "dailydialog_test.txt")
    a, b = load_dailydialog(), load_dailydialog()
    assert [len(a[k]) for k in ("train", "validation", "test")] == [2324, 150, 150]
    assert a["test"] == b["test"]
    assert all(len(d) >= 2 for d in a["test"])


def test_read_dailydialog_turns():
    assert read_dailydialog("Hi . __eou__ Hello ! __eou__\nalone __eou__\n") == [
        ["Hi .", "Hello !"]
    ]


def test_conversation_checks_are_one_line_errors():
    check_conversation(as_messages(["a", "b", "c", "d"], system="be nice"))
    with pytest.raises(LmlabError, match="unknown role 'bot'"):
        check_conversation([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}])
    with pytest.raises(LmlabError, match="alternate"):
        check_conversation([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(LmlabError, match="only come first"):
        check_conversation([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])
    with pytest.raises(LmlabError, match="no assistant"):
        check_conversation([{"role": "user", "content": "a"}])


@pytest.mark.parametrize("template", [ChatTemplate(), CHATML], ids=["default", "chatml"])
def test_mask_covers_exactly_the_assistant_turns(template, tokenizer):
    msgs = as_messages(["How are you today?", "I am fine, thanks.", "What about you?",
                        "Not bad at all."], system="Be brief.")  # fmt: skip
    ids, mask = assistant_mask(template, msgs, tokenizer)
    assert len(ids) == len(mask)
    taught = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    untaught = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    for reply in ("I am fine, thanks.", "Not bad at all."):
        assert reply in taught and reply not in untaught
    for prompt in ("How are you today?", "What about you?", "Be brief."):
        assert prompt in untaught and prompt not in taught
    # two separate runs of ones, one per assistant turn
    runs = sum(1 for k in range(len(mask)) if mask[k] and (k == 0 or not mask[k - 1]))
    assert runs == 2


def test_distinct_n():
    assert distinct_n(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert distinct_n([], 2) == 0.0
