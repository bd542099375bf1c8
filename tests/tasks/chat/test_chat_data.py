"""Chat data: JSONL conversations with one-line errors naming the line, seeded held-out
parts, DailyDialog and SAMSum as chat."""

from __future__ import annotations

import json
import re

import pytest
from chat_synth import conversations, write_jsonl

from lmlab.errors import LmlabError
from lmlab.tasks.chat.data import (
    SAMSUM_VALIDATION,
    data_spec,
    load_chat_data,
    read_jsonl,
)
from shared_data import shared_file


def lines(tmp_path, *rows) -> str:
    p = tmp_path / "chats.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(p)


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},
         "chats.jsonl line 3: message 2 has unknown role 'bot'"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
         "chats.jsonl line 3: message 2 is a user turn where a assistant turn should come"),
        ({"messages": [{"role": "assistant", "content": "a"}]},
         "chats.jsonl line 3: message 1 is a assistant turn where a user turn"),
        ({"messages": [{"role": "user", "content": "a"}]}, "line 3: no assistant turn"),
        ({"messages": [{"role": "user", "content": 3}]}, "line 3: message 1 needs a role and"),
        ({"text": "hi"}, 'line 3: expected {"messages"'),
        ("{not json", "chats.jsonl line 3 is not valid JSON"),
    ],
)  # fmt: skip
def test_bad_conversations_name_the_line(tmp_path, bad, message):
    path = lines(tmp_path, GOOD, "", bad)
    with pytest.raises(LmlabError, match=re.escape(message)):
        read_jsonl(path)


def test_jsonl_split_is_seeded_and_whole(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", conversations(40, 0))
    spec = data_spec(path)
    a, b = load_chat_data(spec), load_chat_data(spec)
    assert (len(a.train), len(a.validation), a.test) == (36, 4, None)
    assert a.validation == b.validation and a.notes
    assert sorted(map(str, a.train + a.validation)) == sorted(map(str, read_jsonl(path)))
    with pytest.raises(LmlabError, match="not a built-in data set"):
        data_spec(str(tmp_path / "nothing.txt"))


def test_dailydialog_and_samsum_as_chat():
    shared_file("dialogue", "dailydialog_test.txt")
    dd = load_chat_data({"builtin": "dailydialog"})
    assert (len(dd.train), len(dd.validation), len(dd.test)) == (2324, 150, 150)
    assert [m["role"] for m in dd.test[0][:2]] == ["user", "assistant"]
    shared_file("summarization_en", "samsum_test.json")
    s = load_chat_data({"builtin": "samsum"})
    assert len(s.validation) == SAMSUM_VALIDATION and len(s.train) + len(s.validation) == 818
    assert len(s.test) == 819 and s.summaries
    user, reply = s.test[0]
    assert user["content"].startswith("Summarize this dialogue") and reply["role"] == "assistant"
    assert load_chat_data({"builtin": "samsum"}).validation == s.validation
