"""Probe any lmlab run: in-context-learning score, copying of repeated text, induction heads.

``probe_run`` measures, for a run of any family:

* the loss at every position of windows of real text and the in-context-learning score
  (:mod:`lmlab.lab.icl`), on the run's validation split or on a given corpus;
* the loss on the first and the second copy of repeated random tokens (a model that copies
  from its context predicts the second copy far better than ``log V``);
* for Transformers, every head's prefix-matching and previous-token scores
  (:mod:`lmlab.lab.heads`), from which the induction heads are read off.

``write_probe_report`` writes ``probe.json``, ``report.md``, ``icl.png`` and, for
Transformers, ``heads.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.lab.heads import head_scores, plot_head_scores, repeated_random_tokens, top_heads
from lmlab.lab.icl import ICLScore, icl_score, position_losses, sample_windows
from lmlab.models.transformer import Transformer
from lmlab.run import Run


@dataclass
class ProbeResult:
    run: str
    family: str
    text: str  # what the windows were cut from
    context: int
    n_windows: int
    position_loss: list[float]
    icl: ICLScore
    repeat_k: int
    first_copy_loss: float  # random tokens, first copy: unpredictable (about log V at best)
    second_copy_loss: float  # the same tokens again: low if the model copies from context
    prefix_matching: list[list[float]] | None = None  # (layer, head), Transformers only
    previous_token: list[list[float]] | None = None
    notes: list[str] = field(default_factory=list)

    def top_heads(self, n: int = 5) -> list[tuple[int, int, float]]:
        if self.prefix_matching is None:
            return []
        return top_heads(np.asarray(self.prefix_matching), n)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "icl"}
        d["icl"] = self.icl.as_dict()
        d["top_heads"] = [
            {"layer": layer, "head": head, "prefix_matching": s}
            for layer, head, s in self.top_heads(10)
        ]
        return d


def run_context(run: Run, context: int | None = None) -> int:
    """The window length to probe with: ``context``, else the model's context length, else
    the context the run was trained with."""
    limit = run.model.context_length
    if context is not None:
        if limit is not None and context > limit:
            raise LmlabError(f"--context {context} exceeds the model's context length {limit}")
        return context
    return int(limit or run.config.get("train", {}).get("context", 256))


def text_ids(run: Run, corpus: list[str] | None = None) -> tuple[np.ndarray, str]:
    """Token ids to probe on: ``corpus`` files encoded with the run's tokenizer, else the run's
    validation split (as ``lmlab eval`` does)."""
    from lmlab.data.shards import open_dataset
    from lmlab.data.sources import iter_documents, resolve_sources

    tok = run.tokenizer
    if corpus:
        text = "\n".join("".join(doc) for doc in iter_documents(resolve_sources(corpus)))
        if not text.strip():
            raise LmlabError(f"{', '.join(corpus)}: nothing to probe on (empty text)")
        return np.concatenate([[tok.eos_id], tok.encode_array(text)]).astype(np.int64), ", ".join(
            corpus
        )
    if not (run.path / "data" / "meta.json").is_file():
        raise LmlabError(f"{run.path} has no prepared data; pass --corpus TEXT to probe on")
    return np.asarray(open_dataset(run.path / "data").val, dtype=np.int64), "validation split"


def probe_run(
    run: Run,
    ids: np.ndarray,
    text: str = "text",
    context: int | None = None,
    n_windows: int = 256,
    n_repeats: int = 16,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> ProbeResult:
    """Measure the ICL score, copying of repeated random tokens and (Transformers) head scores."""
    model, tok = run.model, run.tokenizer
    ctx = run_context(run, context)
    notes: list[str] = []
    windows = sample_windows(ids, n_windows, ctx + 1, seed)
    if len(windows) < n_windows:
        notes.append(
            f"the text holds {len(windows)} windows of {ctx + 1} tokens (asked {n_windows})"
        )
    curve = position_losses(model, windows, batch_size, progress)
    score = icl_score(curve)

    k = min(128, (ctx - 1) // 2)
    if k < 2:
        raise LmlabError(f"context {ctx} is too short for repeated sequences; use --context 8+")
    # Random tokens among those the text uses (a char tokenizer's byte fallbacks, say, were
    # never trained), or the whole vocabulary if the text has too few for distinct repeats.
    special = set(tok.special_tokens.values())
    pool = np.array([i for i in np.unique(ids) if i not in special and i < tok.vocab_size])
    if len(pool) < k:
        pool = np.array([i for i in range(tok.vocab_size) if i not in special])
        notes.append(
            f"the text has fewer than {k} distinct tokens: repeats drawn from the vocabulary"
        )
    reps = repeated_random_tokens(n_repeats, k, pool, seed, bos=tok.eos_id)
    rep_curve = position_losses(model, reps, batch_size)  # L[t] predicts token t + 1
    first = float(rep_curve[1:k].mean())  # tokens 2..k of the first copy (after the bos)
    second = float(rep_curve[k + 1 :].mean())  # tokens 2..k of the second copy
    if k > len(pool):
        notes.append(
            f"only {len(pool)} distinct tokens for a repeat of {k}: tokens recur in a copy"
        )

    res = ProbeResult(
        run=str(run.path),
        family=run.family,
        text=text,
        context=ctx,
        n_windows=len(windows),
        position_loss=[round(float(v), 5) for v in curve],
        icl=score,
        repeat_k=k,
        first_copy_loss=first,
        second_copy_loss=second,
        notes=notes,
    )
    if isinstance(model, Transformer):
        scores = head_scores(model, pool, k, n_repeats, seed, bos=tok.eos_id, batch_size=batch_size)
        res.prefix_matching = scores["prefix_matching"].round(4).tolist()
        res.previous_token = scores["previous_token"].round(4).tolist()
    else:
        notes.append(
            f"the {run.family} family has no attention heads: in-context-learning score and "
            "copying only"
        )
    return res


def plot_icl(res: ProbeResult, path: Path) -> None:
    """Loss against position in the context, with the two ICL positions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    loss = np.asarray(res.position_loss)
    ax.plot(np.arange(len(loss)), loss, lw=0.8, color="tab:blue", label="mean loss")
    w = max(1, len(loss) // 32)
    if w > 1:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(
            np.arange(len(smooth)) + (w - 1) / 2,
            smooth,
            color="tab:red",
            lw=1.5,
            label=f"{w}-position average",
        )
    for p, v in ((res.icl.early, res.icl.loss_early), (res.icl.late, res.icl.loss_late)):
        ax.plot([p], [v], "ko", ms=4)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("position in context (tokens)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(
        f"ICL score {res.icl.score:+.3f} nats (pos {res.icl.late} - pos {res.icl.early})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_markdown(res: ProbeResult, top: int = 5) -> str:
    lines = [
        f"# Probe of `{res.run}` ({res.family})",
        "",
        f"- text: {res.text}; {res.n_windows} windows of {res.context} tokens",
        f"- in-context-learning score: **{res.icl.score:+.3f}** nats (loss {res.icl.loss_late:.3f} "
        f"at position {res.icl.late} minus {res.icl.loss_early:.3f} at position {res.icl.early}; "
        "negative means later tokens are predicted better)",
        f"- repeated random tokens ({res.repeat_k} tokens, twice): loss {res.first_copy_loss:.3f} on "
        f"the first copy, {res.second_copy_loss:.3f} on the second",
    ]
    lines += [f"- note: {n}" for n in res.notes]
    lines += ["", "![loss by position](icl.png)", ""]
    if res.prefix_matching is not None:
        prev = np.asarray(res.previous_token)
        lines += [
            "## Induction heads (prefix-matching score)",
            "",
            "| layer | head | prefix-matching | previous-token |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {layer} | {head} | {s:.3f} | {prev[layer, head]:.3f} |"
            for layer, head, s in res.top_heads(top)
        ]
        lines += ["", "![prefix-matching score per head](heads.png)", ""]
    return "\n".join(lines)


def write_probe_report(res: ProbeResult, out: str | Path, top: int = 5) -> Path:
    """``probe.json``, ``report.md``, ``icl.png`` and (Transformers) ``heads.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "probe.json", json.dumps(res.as_dict(), indent=1))
    plot_icl(res, out / "icl.png")
    if res.prefix_matching is not None:
        plot_head_scores(np.asarray(res.prefix_matching), out / "heads.png")
    atomic_write_text(out / "report.md", report_markdown(res, top))
    return out / "report.md"
