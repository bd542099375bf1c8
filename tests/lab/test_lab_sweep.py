"""A tiny end-to-end sweep: results table, resume, parallel processes, Ray, report, CLI."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.lab import results as db
from lmlab.lab.report import write_report
from lmlab.lab.sweep import DEFAULT_SIZES, plan, run_sweep
from lmlab.lab.tasks import get_task
from lmlab.lab.trainer import eval_steps, model_config
from lmlab.models import build_model

TINY = dict(n_test=30, evals=2, batch_size=16, warmup=5)
SIZES = ["16x1", "24x1", "32x1"]


def _rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return sorted(
            con.execute("SELECT task, size, data, steps, seed, step, metric, value FROM results")
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lab") / "add.sqlite"
    specs = plan("add:digits=1", SIZES, data=[60], steps=[30], seeds=[0], **TINY)
    summary = run_sweep(specs, path, workers=1, threads=1, progress=False)
    assert (summary.ran, summary.skipped) == (3, 0)
    return path


def test_default_sizes_span_two_orders_of_magnitude() -> None:
    vocab = len(get_task("add").vocab())
    counts = [
        build_model("transformer", model_config(s, vocab, 14)).num_params() for s in DEFAULT_SIZES
    ]
    assert counts == sorted(counts) and counts[-1] / counts[0] >= 100


def test_results_table_holds_every_measurement(swept: Path) -> None:
    con = db.connect(swept, create=False)
    runs = db.load_runs(con)
    assert [r["size"] for r in runs] == SIZES and all(r["task"] == "add:digits=1" for r in runs)
    assert runs[0]["n_params"] < runs[1]["n_params"] < runs[2]["n_params"]
    cps = db.load_checkpoints(con)
    con.close()
    assert len(cps) == 3 * len(eval_steps(30, 2))
    for c in cps:
        for m in (
            "exact_match",
            "token_accuracy",
            "edit_distance",
            "answer_loglik",
            "loss",
            "train_loss",
        ):
            assert m in c
        assert c["tokens"] == c["step"] * 16 * 7  # batch x (sequence - 1): <bos>1+2=03<eos>
        assert c["compute"] == pytest.approx(6 * c["n_params"] * c["tokens"])
    first = [c for c in cps if c["step"] == 0]
    last = [c for c in cps if c["step"] == 30]
    assert all(lst["loss"] < fst["loss"] for fst, lst in zip(first, last, strict=True))


def test_rerun_resumes_instead_of_repeating(swept: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(swept.read_bytes())
    before = _rows(copy)
    again = plan("add:digits=1", SIZES, data=[60], steps=[30], seeds=[0], **TINY)
    s = run_sweep(again, copy, workers=1, threads=1, progress=False)
    assert (s.ran, s.skipped) == (0, 3)
    assert _rows(copy) == before
    more = plan("add:digits=1", SIZES[:1], data=[60], steps=[30], seeds=[0, 1], **TINY)
    s = run_sweep(more, copy, workers=1, threads=1, progress=False)
    assert (s.ran, s.skipped) == (1, 1)  # only the new seed trains
    assert len(_rows(copy)) == len(before) * 4 // 3


@pytest.mark.slow
def test_parallel_processes_give_the_same_measurements(swept: Path, tmp_path: Path) -> None:
    specs = plan("add:digits=1", SIZES, data=[60], steps=[30], seeds=[0], **TINY)
    run_sweep(specs, tmp_path / "par.sqlite", workers=2, threads=1, progress=False)
    assert _rows(tmp_path / "par.sqlite") == _rows(swept)


@pytest.mark.slow
def test_ray_local_instance_runs_the_same_work(swept: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    specs = plan("add:digits=1", SIZES[:2], data=[60], steps=[30], seeds=[0], **TINY)
    s = run_sweep(
        specs, tmp_path / "ray.sqlite", workers=2, threads=1, ray_address="local", progress=False
    )
    assert s.ran == 2
    want = [r for r in _rows(swept) if r[1] in SIZES[:2]]
    assert _rows(tmp_path / "ray.sqlite") == want


def test_an_unreachable_ray_address_is_one_clear_error_at_once(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a free port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    specs = plan("add:digits=1", SIZES[:1], data=[60], steps=[30], seeds=[0], **TINY)
    t0 = time.perf_counter()
    with pytest.raises(LmlabError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        run_sweep(specs, tmp_path / "r.sqlite", ray_address=f"127.0.0.1:{port}", progress=False)
    assert time.perf_counter() - t0 < 10


def test_report_has_plots_and_verdicts(swept: Path, tmp_path: Path) -> None:
    page = write_report(swept, tmp_path / "rep")
    html = page.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 5
    assert "add:digits=1" in html and "Scaling: test loss" in html
    assert "exact match" in html and "per-token accuracy" in html
    assert "Along training (32x1, the largest size)" in html
    for name in ("mirage", "params", "compute", "step", "loss_fit"):
        assert (tmp_path / "rep" / f"add_digits_1_{name}.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "| 16x1 |" in md and "| 32x1 |" in md


def test_cli_sweep_report_and_errors(tmp_path: Path, capsys) -> None:
    dbp = tmp_path / "cli.sqlite"
    args = ["lab", "sweep", "dyck:max_pairs=3", "--sizes", "16x1,32x1", "--data", "40",
            "--steps", "10", "--test-size", "20", "--evals", "1", "--batch-size", "8",
            "--workers", "1", "--threads", "1", "--db", str(dbp)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 runs (2 sizes x 1 data x 1 steps x 3 seeds)" in out  # three seeds by default
    assert "6 runs trained" in out
    assert main(args) == 0
    assert "0 runs trained, 6 already" in capsys.readouterr().out
    assert main(["lab", "report", "--db", str(dbp), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "Brier score" in out and "multiple-choice accuracy" in out
    assert "3 seeds per size" in out and "seeds" in out.split("- ", 1)[1]
    assert (tmp_path / "r" / "report.html").is_file()
    assert main(["lab", "sweep", "add", "--sizes", "16y1", "--db", str(dbp)]) == 2
    assert "WIDTHxLAYERS" in capsys.readouterr().err
    assert main(["lab", "report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert main(["lab", "tasks", "recall:pairs=3", "-n", "2"]) == 0
    assert "answer:" in capsys.readouterr().out
    with pytest.raises(LmlabError, match="unknown task"):
        plan("nope")
