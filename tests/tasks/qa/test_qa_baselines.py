"""The lexical-overlap baseline on hand-checked passages; cleaning generated answers."""

from __future__ import annotations

from lmlab.tasks.qa.baselines import clean_generated, lexical_answer, sentences

CTX = "Einstein was born in Ulm in 1879. He died in Princeton in 1955."


def test_lexical_answer_picks_the_nearest_run_in_the_best_sentence():
    # sentence 1 holds "einstein" and "born"; its candidate runs are "Ulm" (2 words from
    # "born") and "1879" (4 words away)
    a = lexical_answer("In which city was Einstein born?", CTX)
    assert (a["text"], a["start"], a["end"]) == ("Ulm", 21, 24)
    b = lexical_answer("Where did he die? He died where", CTX)
    assert b["text"] == "Princeton" and CTX[b["start"] : b["end"]] == "Princeton"
    zh = "鲁迅原名周树人，浙江绍兴人。他是中国现代文学的奠基人。"
    c = lexical_answer("鲁迅原名叫什么", zh, max_span=3)
    assert c["text"] == "周树人"


def test_sentences_and_cleaning():
    assert [CTX[a:b] for a, b in sentences(CTX)] == ["Einstein was born in Ulm in 1879. ",
                                                     "He died in Princeton in 1955."]  # fmt: skip
    assert clean_generated(' Answer: "Ulm".\nmore') == "Ulm"
    assert clean_generated("The answer is 1879.") == "1879"
