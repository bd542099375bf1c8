"""``lmlab distill`` end to end on a tiny teacher trained in the test: the student learns from
it (its KL to the teacher falls), the run is an ordinary run directory, the cached targets are
reused by a second student and a resumed run, and ``--alpha 0`` never runs the teacher."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmlab.cli import main
from lmlab.config import load_toml
from lmlab.data.shards import open_dataset
from lmlab.evaluate.perplexity import window_loss
from lmlab.run import load_run

CORPUS = "builtin:shakespeare-sonnets"
FAST = ["--batch-size", "16", "--context", "32", "--threads", "1", "--precision", "fp32",
        "--eval-every", "1000"]  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory, teacher_dir) -> Path:
    d = tmp_path_factory.mktemp("distill")
    (d / "teacher").symlink_to(teacher_dir)
    return d


def distill(work: Path, out: str, *extra: str, steps: int = 60) -> Path:
    rc = main(["distill", "--teacher", str(work / "teacher"), "--corpus", CORPUS,
               "--out", str(work / out), "--student-depth", "1", "--student-width", "32",
               "--steps", str(steps), *FAST, *extra])  # fmt: skip
    assert rc == 0
    return work / out


def records(run: Path, key: str) -> list[float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(ln)[key] for ln in lines if key in json.loads(ln)]


def test_student_learns_from_the_teacher_and_is_an_ordinary_run(work, capsys):
    run = distill(work, "student", "--alpha", "0.9", "--temperature", "2", "--top-k", "16",
                  "--init-embeddings", "project", "--lr", "1e-2")  # fmt: skip
    out = capsys.readouterr().out
    assert "teacher pass over" in out and "embeddings projected" in out
    kl = records(run, "kl")
    assert len(kl) >= 5 and kl[-1] < 0.6 * kl[0]  # the student moves towards the teacher
    # the student's tokenizer is the teacher's, and every lmlab command can load the run
    assert (run / "tokenizer.json").read_bytes() == (
        work / "teacher" / "tokenizer.json"
    ).read_bytes()
    student, teacher = load_run(run), load_run(work / "teacher")
    assert student.model.num_params() < teacher.model.num_params() / 5
    cfg = load_toml(run / "config.toml")
    assert cfg["distill"]["alpha"] == 0.9 and cfg["distill"]["teacher_fingerprint"]
    assert "## Distillation" in (run / "card.md").read_text(encoding="utf-8")
    assert main(["generate", "--run", str(run), "--max-new-tokens", "8", "--seed", "1"]) == 0
    loss, _ = window_loss(student.model, open_dataset(run / "data").val, 32)
    assert loss == pytest.approx(records(run, "val_loss")[-1], rel=1e-4)


def test_second_student_and_resume_reuse_the_cache(work, capsys):
    cache = work / "cache"
    distill(work, "a", "--cache", str(cache), "--top-k", "8", steps=20)
    shards = sorted(cache.rglob("shard-*.safetensors"))
    assert shards
    stamps = [p.stat().st_mtime_ns for p in shards]
    capsys.readouterr()
    b = distill(work, "b", "--cache", str(cache), "--top-k", "8", "--alpha", "1", steps=10)
    assert "teacher targets reused" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in shards] == stamps
    assert not (b / "teacher_targets").exists()
    assert main(["distill", "--out", str(b), "--resume", "--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "teacher targets reused" in out and "resuming" in out
    assert records(b, "step")[-1] == 20 and len(records(b, "kl")) == 2
    assert load_toml(b / "config.toml")["train"]["steps"] == 20


def test_alpha_zero_trains_from_scratch_without_the_teacher(work, capsys, monkeypatch):
    import lmlab.distill.runner as runner

    def no_teacher(base):
        raise AssertionError("the teacher was run with --alpha 0")

    monkeypatch.setattr(runner, "teacher_model", no_teacher)
    run = distill(work, "scratch", "--alpha", "0", steps=20)
    assert "from scratch" in capsys.readouterr().out
    assert not (run / "teacher_targets").exists()
    assert records(run, "kl") == [] and len(records(run, "ce")) == 2
    vocab = load_run(run).model.config.vocab_size
    assert records(run, "val_loss")[-1] < math.log(vocab)  # it learnt something


def test_init_from_a_student_with_the_same_tokenizer(work, capsys):
    first = distill(work, "first", "--alpha", "0.5", "--lr", "1e-2", steps=40)
    capsys.readouterr()
    again = distill(work, "again", "--init-from", str(first), "--lr", "1e-9", steps=2)
    assert "starts from" in capsys.readouterr().out
    # with a negligible learning rate the student is still the one it started from
    assert records(again, "val_loss")[-1] == pytest.approx(records(first, "val_loss")[-1], rel=1e-3)


def test_a_hugging_face_teacher(tmp_path, capsys):
    """A pretrained teacher (a tiny Llama made by transformers): the student takes its
    tokenizer and its embeddings projected to the student's width."""
    from tiny_hf import TEXT, save_tiny

    save_tiny("llama", tmp_path / "hf")
    (tmp_path / "text.txt").write_text(TEXT * 4, encoding="utf-8")
    rc = main(["distill", "--teacher", str(tmp_path / "hf"), "--corpus", str(tmp_path / "text.txt"),
               "--out", str(tmp_path / "s"), "--student-depth", "1", "--student-width", "16",
               "--init-embeddings", "project", "--top-k", "8", "--steps", "20", *FAST])  # fmt: skip
    assert rc == 0
    assert "embeddings projected from the teacher's (320, 64) table" in capsys.readouterr().out
    student, teacher = load_run(tmp_path / "s"), load_run(tmp_path / "hf")
    assert student.tokenizer.to_dict() == teacher.tokenizer.to_dict()
    assert student.model.config.vocab_size == teacher.model.config.vocab_size == 320
    assert records(tmp_path / "s", "kl")[-1] < records(tmp_path / "s", "kl")[0]


def test_a_teacher_pass_stopped_half_way_resumes_where_it_stopped(work, capsys, monkeypatch):
    from lmlab.distill import targets

    monkeypatch.setattr(targets, "SHARD_WINDOWS", 64)
    save, calls = targets._save_shard, []

    def stop_after_one(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the teacher runs
        save(*a, **k)

    monkeypatch.setattr(targets, "_save_shard", stop_after_one)
    args = ["distill", "--teacher", str(work / "teacher"), "--corpus", CORPUS, "--out",
            str(work / "stopped"), "--student-depth", "1", "--student-width", "32",
            "--steps", "10", *FAST]  # fmt: skip
    assert main(args) == 130
    assert not (work / "stopped" / "model.safetensors").exists()
    monkeypatch.setattr(targets, "_save_shard", save)
    capsys.readouterr()
    assert main(["distill", "--out", str(work / "stopped"), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "1 of " in out and "shards already there" in out
    assert records(work / "stopped", "step")[-1] == 10
