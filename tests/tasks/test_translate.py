"""Translation task: the Tatoeba split (deterministic, every translation of an English sentence
in one part), normalisation, parallel-file errors, BLEU/chrF wiring against sacrebleu, and a
tiny Transformer that learns a toy translation through ``train_run``."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from lmlab.errors import LmlabError
from lmlab.tasks.translate.data import (
    load_parallel,
    normalise,
    parse_direction,
    read_pairs,
    split_by_group,
    tatoeba_rows,
)
from lmlab.tasks.translate.metrics import ref_streams, score
from shared_data import shared_file

pytest.importorskip("sacrebleu")


def test_split_by_group_keeps_groups_whole_and_is_seeded():
    keys = [f"s{i % 37}" for i in range(200)]
    a = split_by_group(keys, seed=3, n_test=5, n_valid=4)
    assert a == split_by_group(keys, seed=3, n_test=5, n_valid=4)
    assert a != split_by_group(keys, seed=4, n_test=5, n_valid=4)
    part = {}
    for name, rows in a.items():
        for i in rows:
            assert part.setdefault(keys[i], name) == name
    assert sorted(i for rows in a.values() for i in rows) == list(range(200))
    assert len({keys[i] for i in a["test"]}) == 5 and len({keys[i] for i in a["validation"]}) == 4


def test_tatoeba_split_fixed_and_by_english_sentence():
    path = shared_file("translation", "cmn.txt")
    en, zh = tatoeba_rows(path)
    d = load_parallel({"name": "tatoeba"}, "en-zh")
    again = load_parallel({"name": "tatoeba"}, "en-zh")
    assert d.test.src == again.test.src and d.validation.tgt == again.validation.tgt
    assert len(set(d.test.src)) == 1000 and len(set(d.validation.src)) == 1000
    assert len(d.train) + len(d.validation) + len(d.test) == len(en) == 28447
    where = defaultdict(set)
    for name in ("train", "validation", "test"):
        for s in d.split(name).src:
            where[s].add(name)
    assert all(len(parts) == 1 for parts in where.values())
    # every Chinese translation of a test sentence is among its references
    sources, refs = d.test.grouped()
    ref_of = dict(zip(sources, refs, strict=True))
    for e, z in zip(en, zh, strict=True):
        if e in ref_of:
            assert z in ref_of[e]
    # the other direction holds the same pairs, reversed
    r = load_parallel({"name": "tatoeba"}, "zh-en")
    assert sorted(zip(r.test.tgt, r.test.src, strict=True)) == sorted(
        zip(d.test.src, d.test.tgt, strict=True)
    )


def test_normalise_traditional_to_simplified():
    pytest.importorskip("opencc")
    assert normalise("我們說漢語。 ", "zh") == "我们说汉语。"
    assert normalise("  We   speak ", "en") == "We speak"


def test_parallel_files_errors_and_counted_skips(tmp_path):
    src, tgt = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("one\ntwo\nthree\n", encoding="utf-8")
    tgt.write_text("un\ndeux\n", encoding="utf-8")
    with pytest.raises(LmlabError, match="aligned"):
        read_pairs({"path": str(src), "target_path": str(tgt)}, "path", "en", "fr")
    tgt.write_text("un\n\ntrois\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="1 pairs with an empty side skipped"):
        p = read_pairs({"path": str(src), "target_path": str(tgt)}, "path", "en", "fr")
    assert p.src == ["one", "three"] and p.tgt == ["un", "trois"]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("a\tb\nonly one column\n", encoding="utf-8")
    with pytest.raises(LmlabError, match="tab-separated"):
        read_pairs({"path": str(tsv)}, "path", "en", "fr")
    with pytest.raises(LmlabError, match="SRC-TGT"):
        parse_direction("zhen")
    with pytest.raises(LmlabError, match="Chinese-English"):
        load_parallel({"name": "tatoeba"}, "en-fr")


def test_scores_match_sacrebleu_by_hand():
    from sacrebleu.metrics import BLEU, CHRF

    hyps = ["我们明天去北京。", "他很高兴。", "这是一本书"]
    refs = [["我们明天要去北京。", "明天我们去北京。"], ["他非常高兴。"], ["这是一本书。"]]
    s = score(hyps, refs, "zh")
    streams = [[r[0] for r in refs], ["明天我们去北京。", None, None]]
    assert ref_streams(refs) == streams
    want = BLEU(tokenize="zh").corpus_score(hyps, streams).score
    assert s.bleu == pytest.approx(want, abs=0.005)
    assert s.chrf == pytest.approx(CHRF().corpus_score(hyps, streams).score, abs=0.005)
    assert "tok:zh" in s.bleu_signature and "nrefs:var" in s.bleu_signature
    # zh tokenisation splits characters: 13a would see one token per sentence here
    assert s.bleu > BLEU(tokenize="13a").corpus_score(hyps, streams).score
    en = score(["the cat sat on the mat"], [["the cat sat on the mat"]], "en")
    assert en.bleu == 100.0 and "tok:13a" in en.bleu_signature
    with pytest.raises(LmlabError):
        score(["a"], [], "en")


WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def toy_pairs(path, n: int, seed: int):
    """Digits -> English number words: a translation a tiny model learns in seconds."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        ds = [rng.randrange(10) for _ in range(rng.randint(2, 5))]
        lines.append(" ".join(map(str, ds)) + "\t" + " ".join(WORDS[d] for d in ds))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


MODELS = {
    "transformer": {"family": "transformer", "d_model": 64, "n_head": 2, "n_enc_layer": 1,
                    "n_dec_layer": 1, "d_ff": 128, "dropout": 0.0},
    "rnn": {"family": "rnn", "embed_dim": 32, "hidden": 64, "attn_dim": 32, "dropout": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("family", list(MODELS))
def test_tiny_model_learns_a_toy_translation(tmp_path, family):
    from lmlab.tasks.translate import load_run, train_run

    data = toy_pairs(tmp_path / "toy.tsv", 2000, 0)
    cfg = {
        "task": {"data": {"path": str(data)}, "direction": "xx-en"},
        "tokenizer": {"src_vocab_size": 300, "tgt_vocab_size": 300},
        "model": MODELS[family],
        "train": {"max_steps": 400, "batch_size": 32, "lr": 3e-3, "warmup": 30,
                  "eval_every": 100, "max_len": 16, "threads": 1, "beam": 3},
    }  # fmt: skip
    run, reports = train_run(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert reports["beam"].bleu > 60 and reports["greedy"].bleu > 60
    again = load_run(tmp_path / "run")
    out = again.translate(["3 1 4", "2 7"], "beam", beam=3, n_best=2)
    assert out[0][0][0] == "three one four" and out[1][0][0] == "two seven"
    assert len(out[0]) == 2 and out[0][0][1] >= out[0][1][1]
    for name in ("config.toml", "model.safetensors", "src_tokenizer.json", "results.json",
                 "card.md", "metrics.jsonl", "test.beam.txt"):  # fmt: skip
        assert (tmp_path / "run" / name).is_file()
