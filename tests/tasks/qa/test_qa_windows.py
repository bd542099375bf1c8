"""Windows over long passages map answer tokens back to exact character offsets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmlab.errors import LmlabError
from lmlab.tasks.qa.data import Answer, QAExample
from lmlab.tasks.qa.decode import best_answers
from lmlab.tasks.qa.windows import make_windows, span_chars, window_starts
from lmlab.tokenize import CharTokenizer
from lmlab.tokenize.bpe import BPETokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "ulm", "1879", "Einstein", "was", "born", "in",
         "北京", "大学", "the", "of", "x-ray", "3.5", "(a)", "naïve"]  # fmt: skip


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train([" ".join(WORDS * 30)], vocab_size=300, min_frequency=1)


@pytest.fixture(scope="module")
def chars():
    return CharTokenizer.train([" ".join(WORDS) + "Question: Which words?\nPassage:"])


def test_window_starts_cover_with_overlap():
    assert window_starts(10, 20, 5) == [0]
    starts = window_starts(100, 30, 10)
    assert starts[0] == 0 and starts[-1] == 70
    assert all(b - a == 20 for a, b in zip(starts[:-2], starts[1:-1], strict=True))
    covered = set()
    for s in starts:
        covered |= set(range(s, s + 30))
    assert covered == set(range(100))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=5, max_size=80),
    data=st.data(),
    max_len=st.integers(60, 120),
    stride=st.integers(0, 12),
)
def test_labelled_windows_give_back_the_answer_characters(bpe, chars, words, data, max_len, stride):
    context = " ".join(words)
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i, min(len(words) - 1, i + 3)))
    start = len(" ".join(words[:i])) + (1 if i else 0)
    text = " ".join(words[i : j + 1])
    assert context[start : start + len(text)] == text
    ex = QAExample("q", "Which words?", context, [Answer(text, start)])
    for tok in (bpe, chars):
        windows = make_windows([ex], tok, max_len, stride, labels=True)
        hits = [w for w in windows if w.start > 0]
        end = start + len(text)
        if not hits:  # an overlap (stride) shorter than the answer can cut it in every window
            assert all(not (w.offsets[0, 0] <= start and w.offsets[-1, 1] >= end)
                       for w in windows), "a window holds the whole answer but is not labelled"  # fmt: skip
            assert stride < len(text)
            continue
        for w in hits:
            assert span_chars(w, w.start, w.end, context) == (start, start + len(text))
        # a decoder that puts all its mass on the labelled tokens finds exactly the answer
        logits = []
        for w in windows:
            lg = np.full((len(w.ids), 2), -10.0, dtype=np.float32)
            lg[0] = 0.0
            if w.start:
                lg[w.start, 0] = lg[w.end, 1] = 10.0
            logits.append(lg)
        best = best_answers(windows, logits, context, max_answer_tokens=max_len)[0]
        assert (best["start"], best["end"], best["text"]) == (start, start + len(text), text)
        assert 0.9 < best["score"] <= 1.0


def test_skips_and_errors_are_counted(bpe):
    ctx = "alpha beta gamma " * 20
    long_answer = ctx[: len(ctx) - 1]
    ex = [QAExample("a", "Which?", ctx, [Answer(long_answer, 0)]),
          QAExample("b", "Which? " * 40, ctx, [Answer("beta", 6)])]  # fmt: skip
    with pytest.warns(UserWarning) as rec:
        windows = make_windows(ex, bpe, 48, 8, labels=True)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "1 answer skipped: answer longer than a window" in msgs
    assert "1 question skipped: question too long" in msgs
    assert windows == []
    with pytest.raises(LmlabError, match="--stride"):
        make_windows(ex[:1], bpe, 48, 47)
