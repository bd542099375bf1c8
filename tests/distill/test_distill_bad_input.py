"""Bad input to ``lmlab distill``: one line on stderr, exit 2, and the run already in --out
(even with --overwrite) left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmlab.cli import main

CORPUS = "builtin:shakespeare-sonnets"
FAST = ["--batch-size", "8", "--context", "32", "--threads", "1", "--precision", "fp32",
        "--eval-every", "1000"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory, teacher_dir) -> tuple[Path, Path]:
    """A finished student run (the thing never to overwrite) and a run with a word tokenizer."""
    d = tmp_path_factory.mktemp("distill_bad")
    rc = main(["distill", "--teacher", str(teacher_dir), "--corpus", CORPUS, "--out",
               str(d / "student"), "--student-depth", "1", "--student-width", "32",
               "--steps", "5", *FAST])  # fmt: skip
    assert rc == 0
    rc = main(["train", "--corpus", CORPUS, "--out", str(d / "wordrun"), "--tokenizer", "word",
               "--depth", "1", "--steps", "2", "--batch-size", "4", "--context", "16",
               "--set", "train.sample_tokens=0", "--set", "train.threads=1"])  # fmt: skip
    assert rc == 0
    return d, teacher_dir


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


CASES = {
    "tokenizer mismatch": (["--init-from", "{d}/wordrun"], "another tokenizer"),
    "alpha above 1": (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
    "temperature 0": (["--temperature", "0"], "--temperature must be positive"),
    "top-k 0": (["--top-k", "0"], "--top-k must be at least 1"),
    "top-k above the vocabulary": (["--top-k", "100000"], "exceeds the teacher's vocabulary"),
    "depth 0": (["--student-depth", "0"], "--student-depth must be at least 1"),
    "projection wider than the teacher": (
        ["--student-width", "512", "--init-embeddings", "project"], "no wider than the teacher"),
    "context beyond the teacher's": (["--context", "64"], "exceeds the teacher's context length"),
    "teacher not found": (["--teacher", "{d}/nothing"], "not found"),
    "init-from with projection": (
        ["--init-from", "{d}/student", "--init-embeddings", "project"], "use one of them"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_flags_exit_2_with_one_line_and_overwrite_nothing(setup, case, capsys):
    d, teacher = setup
    extra, message = CASES[case]
    extra = [a.format(d=d) for a in extra]
    before = snapshot(d / "student")
    args = ["distill", "--teacher", str(teacher), "--corpus", CORPUS, "--out", str(d / "student"),
            "--student-depth", "1", "--student-width", "32", "--steps", "5", *FAST,
            "--overwrite"]  # fmt: skip
    # later flags win: the case's own --teacher / --context / --student-depth replace the above
    rc = main(args + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("lmlab: error:") and message in err[0], err
    assert snapshot(d / "student") == before
    assert not any(p.name.endswith(".replaced") for p in d.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus", CORPUS, "--student-depth", "1"], "no teacher"),
        (["--teacher", "T", "--student-depth", "1"], "no training text"),
        (["--teacher", "T", "--corpus", CORPUS], "--student-depth"),
        (["--teacher", "T", "--resume"], "drop --teacher"),
        (["--teacher", "T", "--corpus", CORPUS, "--student-depth", "1"], "already exists"),
    ],
)
def test_missing_or_contradictory_flags(setup, args, message, capsys):
    d, teacher = setup
    args = [str(teacher) if a == "T" else a for a in args]
    before = snapshot(d / "student")
    assert main(["distill", "--out", str(d / "student"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert snapshot(d / "student") == before


def test_resume_of_a_run_that_was_not_distilled(setup, capsys):
    d, _ = setup
    assert main(["distill", "--out", str(d / "wordrun"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a distilled run" in err[0]
