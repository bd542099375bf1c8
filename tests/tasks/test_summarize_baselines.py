"""Summarisation measuring side: ROUGE against rouge-score on hand-made cases (English with
stemming, Chinese on characters), sentence splitting, lead-k, TextRank and PageRank, and the
fixed LCSTS split."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import LmlabError
from lmlab.tasks.summarize.extractive import lead, pagerank, sentences, textrank
from lmlab.tasks.summarize.metrics import rouge

pytest.importorskip("rouge_score")


def test_rouge_english_matches_rouge_score_with_stemming():
    from rouge_score import rouge_scorer

    preds = ["the cats were running home", "a dog barked"]
    refs = ["the cat runs home quickly", "the dog barks loudly at night"]
    got = rouge(preds, refs, "en")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for t in ("rouge1", "rouge2", "rougeL"):
        want = np.mean([scorer.score(r, p)[t].fmeasure for p, r in zip(preds, refs, strict=True)])
        assert got[t] == pytest.approx(100 * want, abs=0.006)
    assert got["rouge1"] > 0  # stemming matches cats/cat, running/runs


def test_rouge_chinese_counts_characters():
    # rouge-score's own tokenizer would see no tokens in Chinese text
    got = rouge(["我们明天去北京"], ["明天我们去北京"], "zh")
    assert got["rouge1"] == 100.0
    assert got["rouge2"] == pytest.approx(100 * 4 / 6, abs=0.01)  # 4 of 6 bigrams shared
    assert got["rougeL"] == pytest.approx(100 * 5 / 7, abs=0.01)  # LCS 明天去北京 / 我们去北京
    with pytest.raises(LmlabError):
        rouge(["a"], [], "en")


def test_sentences_and_lead():
    en = "First one here. Second! Third?\nA new line"
    assert sentences(en, "en") == ["First one here.", "Second!", "Third?", "A new line"]
    assert lead(en, "en", 2) == "First one here. Second!"
    zh = "今天天气很好。我们去公园吧！好的"
    assert sentences(zh, "zh") == ["今天天气很好。", "我们去公园吧！", "好的"]
    assert lead(zh, "zh", 1) == "今天天气很好。"


def test_pagerank_prefers_the_hub_and_sums_to_one():
    w = np.array([[0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=float)
    r = pagerank(w)
    assert r.sum() == pytest.approx(1.0)
    assert r.argmax() == 0 and r[1] == pytest.approx(r[2])


def test_textrank_picks_the_central_sentence_in_text_order():
    text = ("Cats sleep a lot. The weather is cold today. Cats and dogs sleep a lot at home. "
            "Dogs sleep at home.")  # fmt: skip
    assert textrank(text, "en", 1) == "Cats and dogs sleep a lot at home."
    # the two most central, in the text's order (not by rank)
    assert textrank(text, "en", 2) == "Cats sleep a lot. Cats and dogs sleep a lot at home."
    assert textrank("Only one.", "en", 3) == "Only one."


def test_lcsts_split_fixed():
    from shared_data import shared_file

    shared_file("summarization_zh", "lcsts_part2.src.txt")
    from lmlab.tasks.summarize.data import load_summaries

    a, b = load_summaries("lcsts"), load_summaries("lcsts")
    assert sum(len(a[k]) for k in ("train", "validation", "test")) == 10666
    assert len(set(a["test"].texts)) == 500 and len(set(a["validation"].texts)) == 500
    assert a["test"].texts == b["test"].texts
    # a text repeated in the data stays in one part
    assert not set(a["test"].texts) & (set(a["validation"].texts) | set(a["train"].texts))
