"""``lmlab lab report``: one HTML page (plus Markdown) per results database.

For each task: the verdicts in plain words (emergence, mirage, scaling fit), the figures
of :mod:`lmlab.lab.plots` (written next to the page and embedded in it, so the HTML file
alone is enough to share), and a table of every size's final metrics.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from lmlab.config import atomic_write_text
from lmlab.lab import results as db
from lmlab.lab.analysis import TaskAnalysis, analyse
from lmlab.lab.metrics import METRICS
from lmlab.lab.plots import all_figures

CAPTIONS = {
    "mirage": "Left: the all-or-nothing metric. Right: continuous metrics of the same runs, "
    "each rescaled from its worst (0) to its best (1) value over all runs. Lines: mean over seeds; "
    "bands: min to max over seeds; faint dots: each seed's run.",
    "params": "Every metric at the end of training against the number of parameters "
    "(lines: mean over seeds; bands: min to max over seeds; faint dots: each seed's run).",
    "compute": "Every checkpoint against training compute, 6 · parameters · tokens "
    "(lines: mean over seeds per size; bands: min to max).",
    "step": "Every checkpoint against the training step (lines: mean over seeds per size; "
    "bands: min to max).",
    "loss_fit": "Test loss on the answer tokens against parameters, with the power-law fit "
    "of the mean over seeds (faint dots: each seed).",
}


def _fmt(v: float) -> str:
    if v != v:  # NaN
        return "—"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"


def _seeds_words(c) -> str:
    lo = int(c.n.min()) if len(c.n) else c.seeds
    if lo == c.seeds:
        return f"{c.seeds} seed{'s' if c.seeds > 1 else ''} per size"
    return f"{lo} to {c.seeds} seeds per size"


def summary_markdown(a: TaskAnalysis) -> str:
    """The task's verdicts and final-metric tables as Markdown."""
    lines = [f"### {a.task}", ""]
    for sa in a.settings:
        c = sa.curve
        ids = ", ".join(map(str, c.seed_ids))
        lines.append(
            f"**{c.label}** ({_seeds_words(c)}: seed{'s' if len(c.seed_ids) > 1 else ''} {ids})"
        )
        lines.append("")
        if c.seeds == 1:
            lines.append(
                "One seed per size: every verdict below rests on a single run per size, and "
                "a run of the same size with another seed can land elsewhere. Sweep with "
                "several seeds (`--seeds 0,1,2`, the default) to see the spread."
            )
            lines.append("")
        heads = ["size", "parameters", *(METRICS[m].label for m in a.metrics)]
        if c.seeds > 1:
            heads.insert(2, "seeds")
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "---|" * len(heads))
        for i, size in enumerate(c.sizes):
            cells = [size, f"{int(c.n_params[i]):,}", *(_fmt(c.mean[m][i]) for m in a.metrics)]
            if c.seeds > 1:
                cells.insert(2, str(int(c.n[i])))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if c.seeds > 1:
            lines.append("The table holds means over seeds. Each seed's own run:")
            lines.append("")
            lines += _per_seed_table(a, c)
            lines.append("")
        if sa.training:
            lines.append("Along training steps, per size:")
            lines.append("")
            lines.append(
                "| size | discontinuous metric along training | mirage check along training |"
            )
            lines.append("|---|---|---|")
            for size, em, mc in sa.training:
                ek = em.seeds.label() if c.seeds > 1 and em.seeds else em.kind
                mk = (mc.seeds.label() if c.seeds > 1 and mc.seeds else mc.kind) if mc else "—"
                lines.append(f"| {size} | {ek} | {mk} |")
            lines.append("")
        for v in _verdicts(sa):
            lines.append(f"- {v}")
        lines.append("")
    return "\n".join(lines)


def _per_seed_table(a: TaskAnalysis, c) -> list[str]:
    """Each seed's final value of the discontinuous metrics (and the loss), with mean ± sd
    and the range: where the seeds disagree, this is where it shows."""
    shown = [m for m in a.metrics if METRICS[m].discrete] + ["loss"]
    shown = [m for m in shown if m in a.metrics]
    heads = ["size", "metric", *(f"seed {s}" for s in c.seed_ids), "mean ± sd", "min–max"]
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for i, size in enumerate(c.sizes):
        for m in shown:
            cells = [size, METRICS[m].label]
            cells += [_fmt(c.by_seed[m][s][i]) for s in c.seed_ids]
            cells.append(f"{_fmt(c.mean[m][i])} ± {_fmt(c.sd[m][i])}")
            cells.append(f"{_fmt(c.lo[m][i])}–{_fmt(c.hi[m][i])}")
            out.append("| " + " | ".join(cells) + " |")
    return out


def _verdicts(sa) -> list[str]:
    out = [e.verdict for e in sa.emergence]
    out += [m.verdict for m in sa.mirage]
    if sa.training:
        size, em, mc = sa.training[-1]
        out.append(f"Along training ({size}, the largest size): {em.verdict} {mc.verdict}")
    if sa.fit is not None:
        text = "Scaling: " + sa.fit.describe("test loss")
        text += " on the mean over seeds." if sa.curve.seeds > 1 else ", one seed."
        if len(sa.seed_fits) >= 2:
            alphas = [f.alpha for f in sa.seed_fits.values()]
            text += (
                f" Fitted to each seed's own losses, α ranges from {min(alphas):.3f} to "
                f"{max(alphas):.3f} ({len(alphas)} seeds)."
            )
        out.append(text)
    else:
        out.append(f"Scaling: no fit ({sa.fit_note}).")
    return out


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _md_table_to_html(md: str) -> str:
    """Every Markdown table in ``md`` (a block of ``|`` lines) as an HTML table."""
    tables, block = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                block.append(line)
            continue
        if block:
            cells = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in block]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]
            )
            tables.append(f"<table><tr>{head}</tr>{body}</table>")
            block = []
    return "".join(tables)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
.verdict { background: #f5f7fa; border-left: 4px solid #4a7; padding: 0.4em 0.8em; margin: 0.4em 0; }
.caption { color: #555; font-size: 0.9em; }
"""


def write_report(db_path: str | Path, out: str | Path, tasks: list[str] | None = None) -> Path:
    """Analyse every task in ``db_path`` and write ``out/report.html`` (and figures,
    ``report.md``); returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    con = db.connect(db_path, create=False)
    try:
        names = tasks or db.tasks_in(con)
        analyses = [analyse(con, t) for t in names]
    finally:
        con.close()
    parts = [f"<h1>lmlab emergence lab: {html.escape(Path(db_path).name)}</h1>"]
    md = [f"# lmlab emergence lab: {Path(db_path).name}", ""]
    for a in analyses:
        prefix = re.sub(r"[^A-Za-z0-9]+", "_", a.task).strip("_") + "_"
        figs = all_figures(a, out, prefix)
        wall = sum(r["wall_s"] or 0 for r in a.runs)
        parts.append(f"<h2>{html.escape(a.task)}</h2>")
        parts.append(
            f"<p>{len(a.runs)} runs, {len({r['size'] for r in a.runs})} sizes from "
            f"{min(r['n_params'] for r in a.runs):,} to {max(r['n_params'] for r in a.runs):,} "
            f"parameters, {len({r['seed'] for r in a.runs})} seed(s), "
            f"{wall / 60:.1f} min of training in total. Answers are "
            f"{a.answer_tokens or 'a variable number of'} tokens long with &lt;eos&gt;.</p>"
        )
        task_md = summary_markdown(a)
        md.append(task_md)
        for sa in a.settings:
            parts.append(
                f"<h3>{html.escape(sa.curve.label)} ({html.escape(_seeds_words(sa.curve))})</h3>"
            )
            parts += [f'<div class="verdict">{html.escape(v)}</div>' for v in _verdicts(sa)]
        parts.append("<h3>Final metrics</h3>" + _md_table_to_html(task_md))
        for name, path in figs.items():
            parts.append(_img(path) + f'<div class="caption">{html.escape(CAPTIONS[name])}</div>')
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>lmlab lab report</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}"
        "<p class='caption'>Metrics: exact match and multiple-choice accuracy are all-or-nothing; "
        "per-token accuracy, edit distance, log-likelihood, loss and the Brier score are "
        "continuous. Emergence: near chance (≤ 10% of the way to perfect) at the smallest "
        "size, near perfect (≥ 90%) at the largest, with at least half of the rise between "
        "two neighbouring sizes. Every verdict is made on the mean over seeds and then on each "
        "seed's own curve: it says how many seeds agree and gives the range over seeds of "
        "its key numbers; with one seed it says it rests on one seed.</p></body></html>"
    )
    page_path = out / "report.html"
    atomic_write_text(page_path, page)
    atomic_write_text(out / "report.md", "\n".join(md))
    return page_path
