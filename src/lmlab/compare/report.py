"""The comparison's outputs: a Markdown table, a perplexity plot and a per-position plot."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from lmlab.compare.ladder import RungResult
from lmlab.config import atomic_write_text
from lmlab.evaluate.unknown import unk_warning


def _fmt_int(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def markdown_table(results: list[RungResult]) -> str:
    """The results table; a ``<unk>`` column when the split has one, and a warning line
    under the table when ``<unk>`` is over 1% of the validation tokens."""
    has_test = any(r.test_ppl is not None for r in results)
    has_unk = any(r.valid_unk is not None for r in results)
    head = "| model | valid ppl |" + (" test ppl |" if has_test else "")
    head += " valid <unk> |" if has_unk else ""
    head += " parameters | training s | tokens seen | tokens/s |\n"
    head += "|---|---|" + ("---|" if has_test else "") + ("---|" if has_unk else "")
    head += "---|---|---|---|\n"
    rows = []
    for r in results:
        row = f"| {r.name} | {r.valid_ppl:.2f} |"
        if has_test:
            row += f" {r.test_ppl:.2f} |" if r.test_ppl is not None else " - |"
        if has_unk:
            row += f" {r.valid_unk:.2%} |" if r.valid_unk is not None else " - |"
        row += (
            f" {_fmt_int(r.params)} | {r.train_seconds:.1f} | {_fmt_int(r.tokens_seen)} "
            f"| {r.tokens_per_second:,.0f} |"
        )
        rows.append(row)
    warning = unk_warning(
        max((r.valid_unk or 0.0 for r in results), default=0.0), "validation tokens"
    )
    return head + "\n".join(rows) + "\n" + (f"\n{warning}\n" if warning else "")


def samples_block(results: list[RungResult]) -> str:
    return "\n".join(f"* **{r.name}**: {r.sample}" for r in results) + "\n"


def plot_ladder(results: list[RungResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r.name for r in results]
    xs = range(len(results))
    ax.bar([x - 0.2 for x in xs], [r.valid_ppl for r in results], width=0.4, label="valid")
    if any(r.test_ppl is not None for r in results):
        ax.bar([x + 0.2 for x in xs], [r.test_ppl or 0 for r in results], width=0.4, label="test")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("perplexity")
    ax.set_title("The ladder: perplexity at one budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_positions(results: list[RungResult], path: Path) -> Path | None:
    curves = [r for r in results if r.position_loss]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in curves:
        ax.plot(range(1, len(r.position_loss) + 1), r.position_loss, label=r.name)
    ax.set_xlabel("position in the context window (tokens seen)")
    ax.set_ylabel("mean loss (nats)")
    ax.set_title("Loss by position: how much context each model uses")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: list[RungResult], out: Path, title: str) -> Path:
    """``report.md``, ``results.json``, ``ladder.png`` and ``positions.png`` in ``out``."""
    plot_ladder(results, out / "ladder.png")
    pos = plot_positions(results, out / "positions.png")
    text = f"# {title}\n\n" + markdown_table(results) + "\n![perplexity](ladder.png)\n"
    if pos is not None:
        text += "\n![loss by position](positions.png)\n"
    text += "\n## Samples\n\n" + samples_block(results)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "results.json", json.dumps([asdict(r) for r in results], indent=2))
    return out / "report.md"
