"""Training a summariser on a tiny LCSTS slice: validation loss goes down, the validation
ROUGE-L is recorded, texts longer than the model's length are cut with a counted warning,
and the run opens again and summarises (the wiring, not the quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmlab.errors import LmlabError
from shared_data import shared_file

pytest.importorskip("rouge_score")

MAX_LEN = 110  # LCSTS texts: median 108 characters


def lcsts_slice(d: Path, n: int = 300) -> Path:
    """The first ``n`` LCSTS pairs as a text<TAB>summary file."""
    src = shared_file("summarization_zh", "lcsts_part2.src.txt").read_text("utf-8").splitlines()
    tgt = shared_file("summarization_zh", "lcsts_part2.tgt.txt").read_text("utf-8").splitlines()
    rows = [f"{s.strip()}\t{t.strip()}" for s, t in zip(src[:n], tgt[:n], strict=True)]
    (d / "lcsts.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return d / "lcsts.tsv"


def tiny_config(data: Path, **train) -> dict:
    return {"task": {"data": {"path": str(data)}},
            "model": {"family": "transformer", "d_model": 32, "n_head": 2, "n_enc_layer": 1,
                      "n_dec_layer": 1, "d_ff": 64, "dropout": 0.0},
            "train": {"max_steps": 60, "eval_every": 20, "batch_size": 32, "lr": 3e-3,
                      "warmup": 5, "threads": 1, "max_len": MAX_LEN, "summary_max_len": 30,
                      "valid_rouge": 8, "beam": 2, **train}}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lmlab.tasks.summarize.data import load_task_data
    from lmlab.tasks.summarize.run import train_run

    d = tmp_path_factory.mktemp("summarize")
    data = lcsts_slice(d)
    with pytest.warns(UserWarning) as caught:
        run, reports = train_run(tiny_config(data), d / "run", progress=False, log=lambda s: None)
    split = load_task_data({"path": str(data)})
    texts = split.train.texts + split.validation.texts
    return run, reports, [str(w.message) for w in caught], texts


def test_training_lowers_validation_loss_and_records_rouge(trained):
    run, reports, _, _ = trained
    recs = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text("utf-8").splitlines()]
    assert [r["step"] for r in recs] == [20, 40, 60]
    assert recs[-1]["valid_loss"] < recs[0]["valid_loss"]
    assert all(0 <= r["rougeL"] <= 100 for r in recs)
    results = json.loads((run.path / "results.json").read_text("utf-8"))
    assert set(results["test"]) == {"greedy", "beam"}
    assert set(results["test"]["beam"]) >= {"rouge1", "rouge2", "rougeL",
                                            "decode_tokens_per_second"}  # fmt: skip
    assert results["tokenizer"].startswith("char") and "characters" in results["rouge"]
    assert reports["beam"] == {k: results["test"]["beam"][k] for k in reports["beam"]}


@pytest.mark.filterwarnings("ignore:.*(cut to their first|summaries longer)")
def test_the_pointer_generator_is_the_default_and_learns_faster_than_without(trained, tmp_path):
    """Same data, steps and seed: the copy output (the default) reaches a lower validation
    loss than the same Transformer without it, which must generate every character."""
    from lmlab.tasks.summarize.run import train_run

    run, _, _, _ = trained
    assert run.model.copy_head is not None
    data = lcsts_slice(tmp_path)
    cfg = tiny_config(data)
    cfg["model"]["copy"] = False
    plain, _ = train_run(cfg, tmp_path / "plain", progress=False, log=lambda s: None)
    assert plain.model.copy_head is None

    def last_loss(r) -> float:
        lines = (r.path / "metrics.jsonl").read_text("utf-8").splitlines()
        return json.loads(lines[-1])["valid_loss"]

    assert last_loss(run) < last_loss(plain) - 0.1, (last_loss(run), last_loss(plain))


def test_long_texts_are_cut_with_a_counted_warning(trained):
    run, _, messages, texts = trained
    from lmlab.tasks.translate.data import normalise

    # characters are the tokens (validation characters unseen in training: UTF-8 bytes)
    long = sum(len(run.src_tok.encode(normalise(t, "zh"))) > MAX_LEN for t in texts)
    assert 0 < long < len(texts)
    assert any(f"{long:,} of {len(texts):,} training and validation texts longer than "
               f"{MAX_LEN} tokens cut" in m for m in messages), messages  # fmt: skip
    with pytest.warns(UserWarning, match=f"1 of 2 texts longer than {MAX_LEN} tokens cut"):
        out = run.summarize(["短文本。", "长" * (MAX_LEN + 5)], "greedy")
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


@pytest.mark.filterwarnings("ignore:.*cut to their first")
def test_reopened_run_summarises_like_the_trained_one(trained):
    from lmlab.tasks.summarize.run import load_run

    run, _, _, _ = trained
    again = load_run(run.path)
    texts = again.task_data().test.texts[:4]
    assert again.summarize(texts, beam=2) == run.summarize(texts, beam=2)
    beam_file = (run.path / "test.beam.txt").read_text("utf-8").split("\n")
    assert again.summarize(texts, beam=2) == beam_file[:4]


def test_bad_settings_are_one_line_errors(tmp_path):
    from lmlab.tasks.summarize.run import train_run

    data = lcsts_slice(tmp_path, 100)
    with pytest.raises(LmlabError, match="select"):
        train_run(tiny_config(data, select="bleu"), tmp_path / "r", progress=False)
    cfg = tiny_config(data)
    cfg["tokenizer"] = {"kind": "words"}
    with pytest.raises(LmlabError, match="tokenizer"):
        train_run(cfg, tmp_path / "r2", progress=False, log=lambda s: None)
