"""What a QA run writes about itself: ``learning_curve.png``, ``results.json``, ``card.md``."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import tomli_w

from lmlab.config import atomic_write_text
from lmlab.tasks.qa.metrics import QAReport
from lmlab.tasks.rundir import CARD_FILE, RESULTS_FILE
from lmlab.train.card import git_revision, package_versions


def plot_learning_curve(metrics_path: Path, out: Path, title: str = "") -> Path | None:
    """Training loss (left) and validation EM/F1 (right) against optimizer steps."""
    if not metrics_path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmlab.tasks.plots import _save

    recs = [
        json.loads(x) for x in metrics_path.read_text(encoding="utf-8").splitlines() if x.strip()
    ]
    if not recs:
        return None
    steps = [r["step"] for r in recs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a1.plot(steps, [r["train_loss"] for r in recs], "o-", ms=3, color="tab:blue", label="train")
    a1.set_ylabel("span cross-entropy (nats)")
    a2.plot(steps, [r["val_f1"] for r in recs], "o-", ms=3, color="tab:green", label="F1")
    a2.plot(steps, [r["val_em"] for r in recs], "s--", ms=3, color="tab:purple", label="EM")
    best = max(range(len(recs)), key=lambda i: recs[i]["val_f1"])
    a2.axvline(steps[best], color="grey", lw=0.8, ls=":", label=f"best (step {steps[best]})")
    a1.set_title("loss")
    a2.set_title("validation")
    for a in (a1, a2):
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        a.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def write_results(run_dir: Path, reports: dict[str, QAReport], extra: dict[str, Any]) -> Path:
    data = {**extra, **{split: r.to_dict() for split, r in reports.items()}}
    atomic_write_text(run_dir / RESULTS_FILE, json.dumps(data, indent=1, ensure_ascii=False))
    return run_dir / RESULTS_FILE


def write_card(run_dir: Path, summary: list[str], reports: dict[str, QAReport],
               config: dict[str, Any]) -> Path:  # fmt: skip
    lines = [f"# Task run: {run_dir.name}", "", *summary, "", "## Scores", ""]
    lines += ["| split | n | EM (95% CI) | F1 (95% CI) | metric |", "|---|---|---|---|---|"]
    for split, r in reports.items():
        ci = r.intervals

        def cell(k: str, v: float, ci=ci) -> str:
            return f"{v:.2f}" + (f" ({ci[k][0]:.2f}-{ci[k][1]:.2f})" if k in ci else "")

        lines.append(
            f"| {split} | {r.n:,} | {cell('em', r.em)} | {cell('f1', r.f1)} | {r.metric} |"
        )
    lines += ["", "## Environment", ""]
    lines += [f"- {k} {v}" for k, v in package_versions().items()]
    lines.append(f"- platform: {platform.platform()}")
    if rev := git_revision():
        lines.append(f"- lmlab git revision: {rev}")
    lines += ["", "## Config", "", "```toml", tomli_w.dumps(config).strip(), "```", ""]
    if (run_dir / "learning_curve.png").is_file():
        lines.append("![learning_curve](learning_curve.png)")
    atomic_write_text(run_dir / CARD_FILE, "\n".join(lines) + "\n")
    return run_dir / CARD_FILE
