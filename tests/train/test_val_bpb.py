"""The trainer's ``val_bpb`` is the figure ``lmlab eval`` reports: a word model's ``<unk>``
tokens are charged the spelling of their words there too, not just the model's bits."""

from __future__ import annotations

import json

import pytest

from lmlab.cli import main


def test_word_model_val_bpb_matches_lmlab_eval(tmp_path, tiny_corpus, capsys) -> None:
    run = tmp_path / "word"
    assert main(["train", "--corpus", str(tiny_corpus), "--tokenizer", "word", "--vocab-size",
                 "60", "--depth", "1", "--context", "16", "--steps", "6", "--batch-size", "4",
                 "--eval-every", "3", "--set", "train.eval_batches=100000",
                 "--set", "train.sample_tokens=0", "--set", "train.threads=1",
                 "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if "val_bpb" in r][-1]
    assert final["val_unk_rate"] > 0.2  # a 60-word vocabulary: many <unk>
    assert final["val_bpb"] > 1.3 * final["val_bpb_without_spelling"]
    assert "val_bpb charges each `<unk>` the spelling" in (run / "card.md").read_text()
    assert main(["eval", "--run", str(run), "--window", "16", "--stride", "16", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["unk_rate"] == pytest.approx(final["val_unk_rate"], rel=0.02)
    assert ev["bpb"] == pytest.approx(final["val_bpb"], rel=0.02)  # same windows, same charge
    assert ev["bpb_without_spelling"] == pytest.approx(final["val_bpb_without_spelling"], rel=0.02)


def test_char_model_val_bpb_has_no_unknown_charge(tmp_path, tiny_corpus) -> None:
    run = tmp_path / "char"
    assert main(["train", "--corpus", str(tiny_corpus), "--depth", "1", "--context", "16",
                 "--steps", "2", "--batch-size", "2", "--eval-every", "2",
                 "--set", "train.eval_batches=2", "--set", "train.sample_tokens=0",
                 "--set", "train.threads=1", "--out", str(run)]) == 0  # fmt: skip
    final = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["val_bpb"] > 0 and "val_unk_rate" not in final
