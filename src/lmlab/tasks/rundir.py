"""The task run directory: what every task kind writes, and how a run is opened by kind.

``runs/<name>/`` of a task run holds ``config.toml`` (``[task]`` with ``kind``, the data spec
``[task.data]``, ``split_seed``, ``labels``; ``[task.embeddings]`` or ``base`` when the model
started from word vectors or a pretrained model; then ``[tokenizer]``, ``[model]`` with
``family``, ``[train]``), ``tokenizer.json``, ``model.safetensors``, ``metrics.jsonl`` (one
line per validation), ``results.json`` (scores per split with intervals, per-class figures,
confusion matrices), ``confusion.png``, ``learning_curve.png`` and ``card.md``.
"""

from __future__ import annotations

import importlib
import json
import platform
from pathlib import Path
from typing import Any

import tomli_w

from lmlab.config import atomic_write_text, load_toml
from lmlab.errors import LmlabError
from lmlab.run import CONFIG_FILE
from lmlab.tasks import KINDS
from lmlab.tasks.metrics import Report
from lmlab.train.card import git_revision, package_versions

RESULTS_FILE = "results.json"
CARD_FILE = "card.md"


def task_config(path: str | Path) -> dict[str, Any]:
    """The run's ``config.toml``, checked to be a task run's."""
    p = Path(path)
    if not p.is_dir():
        raise LmlabError(f"run directory {p} not found; pass --run runs/NAME")
    cfg = load_toml(p / CONFIG_FILE)
    kind = cfg.get("task", {}).get("kind")
    if kind is None:
        raise LmlabError(
            f"{p} is not a task run (no [task] section in {CONFIG_FILE}); train one with "
            "lmlab task train"
        )
    if kind not in KINDS:
        raise LmlabError(f"{p}: task kind {kind!r} unknown to this lmlab ({', '.join(KINDS)})")
    return cfg


def task_module(kind: str):
    if kind not in KINDS:
        raise LmlabError(f"unknown task kind {kind!r}; choose one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind][0])


def load_task_run(path: str | Path) -> Any:
    """Open a task run of any kind (its kind's ``load_run``)."""
    cfg = task_config(path)
    return task_module(cfg["task"]["kind"]).load_run(path)


def write_results(run_dir: Path, reports: dict[str, Report], extra: dict[str, Any]) -> Path:
    data = {**extra, **{split: r.to_dict() for split, r in reports.items()}}
    atomic_write_text(run_dir / RESULTS_FILE, json.dumps(data, indent=1, ensure_ascii=False))
    return run_dir / RESULTS_FILE


def write_card(
    run_dir: Path,
    summary: list[str],
    reports: dict[str, Report],
    config: dict[str, Any],
    pictures: list[str],
) -> Path:
    """``card.md``: summary lines, scores per split, per-class figures of the last split,
    environment, the config and the pictures."""
    lines = [f"# Task run: {run_dir.name}", "", *summary, "", "## Scores", ""]
    lines += ["| split | n | accuracy (95% CI) | macro-F1 (95% CI) |", "|---|---|---|---|"]
    for split, r in reports.items():
        ci = r.intervals
        acc = f"{r.accuracy:.4f}" + (
            f" ({ci['accuracy'][0]:.4f}-{ci['accuracy'][1]:.4f})" if ci else ""
        )
        f1 = f"{r.macro_f1:.4f}" + (
            f" ({ci['macro_f1'][0]:.4f}-{ci['macro_f1'][1]:.4f})" if ci else ""
        )
        lines.append(f"| {split} | {r.n:,} | {acc} | {f1} |")
    if reports:
        split, r = list(reports.items())[-1]
        lines += ["", f"Per class ({split}):", "", "| class | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for row in r.per_class():
            lines.append(f"| {row['label']} | {row['precision']:.4f} | {row['recall']:.4f} | "
                         f"{row['f1']:.4f} | {row['support']:,} |")  # fmt: skip
    lines += ["", "## Environment", ""]
    lines += [f"- {k} {v}" for k, v in package_versions().items()]
    lines.append(f"- platform: {platform.platform()}")
    if rev := git_revision():
        lines.append(f"- lmlab git revision: {rev}")
    lines += ["", "## Config", "", "```toml", tomli_w.dumps(config).strip(), "```", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures if (run_dir / p).is_file()]
    atomic_write_text(run_dir / CARD_FILE, "\n".join(lines) + "\n")
    return run_dir / CARD_FILE
