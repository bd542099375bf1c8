"""SQuAD's and CMRC 2018's official EM/F1 against hand-computed cases."""

from __future__ import annotations

import pytest

from lmlab.tasks.qa.metrics import (
    cmrc_em,
    cmrc_f1,
    cmrc_segments,
    score_answers,
    squad_em,
    squad_f1,
    squad_normalize,
)


def test_squad_normalisation():
    assert squad_normalize("The  Eiffel Tower!") == "eiffel tower"
    assert squad_normalize("an apple, a pear and the plum.") == "apple pear and plum"
    # articles go only as whole words; punctuation goes before the article check
    assert squad_normalize("Theatre: A-team") == "theatre ateam"
    assert squad_em("An Apple.", "apple") == 1.0
    assert squad_em("apples", "apple") == 0.0


def test_squad_f1_by_hand():
    # pred {cat, sat}, ref {cat, sat, down}: P = 1, R = 2/3, F1 = 0.8
    assert squad_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # repeated words count with their multiplicity: pred {to, to, be}, ref {to, be}
    # common = min counts: to 1, be 1 -> 2; P = 2/3, R = 1, F1 = 0.8
    assert squad_f1("to to be", "to be") == pytest.approx(0.8)
    assert squad_f1("Denver Broncos", "Carolina Panthers") == 0.0
    assert squad_f1("", "x") == 0.0


def test_best_reference_and_means():
    rep = score_answers(["Paris", "in 1879", "nothing"],
                        [["London", "paris"], ["1879"], ["something"]], "squad", n_boot=200)  # fmt: skip
    # EM: 1, 0, 0 -> 33.33; F1: 1, 2/3 (P 1/2, R 1), 0 -> 55.56
    assert rep.n == 3
    assert rep.em == pytest.approx(100 / 3)
    assert rep.f1 == pytest.approx(100 * (1 + 2 / 3) / 3)
    lo, hi = rep.intervals["f1"]
    assert 0.0 <= lo <= rep.f1 <= hi <= 100.0


def test_cmrc_segmentation():
    # Chinese characters one by one; English words and numbers stay whole; CMRC's
    # punctuation is dropped without splitting the run around it
    assert cmrc_segments("NBA总冠军2018") == ["nba", "总", "冠", "军", "2018"]
    assert cmrc_segments("《红楼梦》，曹雪芹") == ["红", "楼", "梦", "曹", "雪", "芹"]
    assert cmrc_segments("ω-force 3.5 GHz") == ["ωforce", "3.5", "ghz"]


def test_cmrc_f1_by_hand():
    # ref [光 荣 和 ωforce 开 发], pred [光 荣 和 ωforce]: LCS 4, P 1, R 4/6, F1 0.8
    assert cmrc_f1("光荣和ω-force", "光荣和ω-force开发") == pytest.approx(0.8)
    # the longest common *substring*: ref [北 大 学], pred [北 京 大 学] share 大学 (2), not 3
    # P 2/4, R 2/3 -> F1 = 2 * (1/2 * 2/3) / (1/2 + 2/3) = 4/7
    assert cmrc_f1("北京大学", "北大学") == pytest.approx(4 / 7)
    assert cmrc_f1("上海", "北京") == 0.0
    assert cmrc_em("《红楼梦》", "红楼梦") == 1.0
    assert cmrc_em("红楼梦。", "红楼") == 0.0


def test_cmrc_best_of_references():
    rep = score_answers(["北京大学"], [["上海", "北京大学", "北大学"]], "cmrc", n_boot=0)
    assert rep.em == 100.0 and rep.f1 == 100.0
    assert rep.intervals == {}
