"""Probe any lmlab run: in-context-learning score, copying of repeated text, induction heads.

``probe_run`` measures, for a run of any family:

* the loss at every position of windows of real text and the in-context-learning score
  (:mod:`lmlab.lab.icl`), on the run's validation split or on a given corpus;
* the loss on the first and the second copy of repeated random tokens (a model that copies
  from its context predicts the second copy far better than ``log V``);
* for Transformers, every head's prefix-matching and previous-token scores
  (:mod:`lmlab.lab.heads`), from which the induction heads are read off; the attention
  patterns of the top heads on a short repeated sequence; the logit lens on the repeated
  tokens (:mod:`lmlab.lab.lens`: the loss on each copy read after every layer); and an
  ablation: the second-copy loss with the top induction heads zeroed, against as many
  random heads zeroed.

Pretrained models (``builtin:smollm2``, 30 layers, a 49k-token vocabulary) are probed
within a couple of minutes on 2 CPU cores: the window is at most 512 tokens unless
``context`` says otherwise (Olsson et al.'s positions 500 and 50 fit), models over 50M
parameters read 16 windows by default, the repeated-token pass yields the losses, the head
scores and the logit lens at once, and no batch's logits exceed about 256 MB.

``write_probe_report`` writes ``probe.json``, ``report.md``, ``icl.png`` and, for
Transformers, ``heads.png``, ``patterns.png``, ``lens.png`` and ``ablation.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.lab.heads import (
    ablate_heads,
    attention_patterns,
    plot_head_scores,
    plot_patterns,
    repeated_random_tokens,
    scores_on_repeats,
    top_heads,
)
from lmlab.lab.icl import ICLScore, icl_score, position_losses, sample_windows
from lmlab.lab.lens import ResidualRecorder, lens_losses, plot_lens
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
    # the logit lens on the repeated tokens, per layer (0 = embedding): mean loss and top-1
    # accuracy on the first and the second copy
    lens: dict[str, list[float]] | None = None
    # second-copy (and first-copy) loss with the top induction heads zeroed, and with as
    # many random heads zeroed (several draws), on the first repeated sequences
    ablation: dict | None = None
    # attention weights of a few heads on one short repeated sequence (for patterns.png;
    # not written to probe.json): (layer, head, (T, T) weights)
    patterns: list[tuple[int, int, np.ndarray]] | None = field(default=None, repr=False)
    pattern_k: int = 0

    def top_heads(self, n: int = 5) -> list[tuple[int, int, float]]:
        if self.prefix_matching is None:
            return []
        return top_heads(np.asarray(self.prefix_matching), n)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("icl", "patterns")}
        d["icl"] = self.icl.as_dict()
        d["pattern_heads"] = [[layer, head] for layer, head, _ in self.patterns or []]
        d["top_heads"] = [
            {"layer": layer, "head": head, "prefix_matching": s}
            for layer, head, s in self.top_heads(10)
        ]
        return d


MAX_CONTEXT = 512  # default window at most: Olsson et al.'s positions 500 and 50 fit
LARGE_MODEL = 50_000_000  # parameters above which fewer windows and repeats are read
LARGE_MODEL_WINDOWS = 16
LARGE_MODEL_REPEATS = 8
LENS_ROWS = 128  # positions per copy read through the logit lens
ABLATE_SEQS = 4  # repeated sequences the ablations run on
DEFAULT_TEXT = "builtin:shakespeare-hamlet"  # for a pretrained model without a data split


def run_context(run: Run, context: int | None = None) -> int:
    """The window length to probe with: ``context``, else the model's context length (at
    most 512), else the context the run was trained with."""
    limit = run.model.context_length
    if context is not None:
        if limit is not None and context > limit:
            raise LmlabError(f"--context {context} exceeds the model's context length {limit}")
        return context
    if limit is not None:
        return min(int(limit), MAX_CONTEXT)
    return int(run.config.get("train", {}).get("context", 256))


def default_windows(run: Run) -> int:
    """256 windows of text, or 16 for a model of over 50M parameters (a 135M model reads
    16 x 512 tokens in about 50 s on 2 cores)."""
    return LARGE_MODEL_WINDOWS if run.model.num_params() > LARGE_MODEL else 256


def default_repeats(run: Run) -> int:
    """16 repeated random sequences, or 8 for a model of over 50M parameters."""
    return LARGE_MODEL_REPEATS if run.model.num_params() > LARGE_MODEL else 16


def default_ablate(model) -> int:
    """How many top heads to ablate by default: a twentieth of all heads, 1 to 10."""
    if not isinstance(model, Transformer):
        return 0
    return min(10, max(1, model.config.n_layer * model.config.n_head // 20))


def is_pretrained_run(run: Run) -> bool:
    return "source" in run.config


def text_ids(run: Run, corpus: list[str] | None = None) -> tuple[np.ndarray, str]:
    """Token ids to probe on: ``corpus`` files encoded with the run's tokenizer, else the run's
    validation split (as ``lmlab eval`` does); a pretrained model without one reads Hamlet
    (``builtin:shakespeare-hamlet``)."""
    from lmlab.data.shards import open_dataset
    from lmlab.data.sources import iter_documents, resolve_sources

    tok = run.tokenizer
    has_split = run.path.is_dir() and (run.path / "data" / "meta.json").is_file()
    if not corpus and not has_split and is_pretrained_run(run):
        corpus = [DEFAULT_TEXT]
    if corpus:
        text = "\n".join("".join(doc) for doc in iter_documents(resolve_sources(corpus)))
        if not text.strip():
            raise LmlabError(f"{', '.join(corpus)}: nothing to probe on (empty text)")
        return np.concatenate([[tok.eos_id], tok.encode_array(text)]).astype(np.int64), ", ".join(
            corpus
        )
    if not has_split:
        raise LmlabError(f"{run.path} has no prepared data; pass --corpus TEXT to probe on")
    return np.asarray(open_dataset(run.path / "data").val, dtype=np.int64), "validation split"


def probe_run(
    run: Run,
    ids: np.ndarray,
    text: str = "text",
    context: int | None = None,
    n_windows: int | None = None,
    n_repeats: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    ablate: int | None = None,
    draws: int = 3,
    lens: bool = True,
) -> ProbeResult:
    """Measure the ICL score, copying of repeated random tokens and (Transformers) head
    scores, the logit lens and the ablation of the top ``ablate`` induction heads against
    ``draws`` sets of as many random heads (``ablate=0`` skips it; ``None``: a twentieth of
    the heads, 1 to 10)."""
    model, tok = run.model, run.tokenizer
    ctx = run_context(run, context)
    notes: list[str] = []
    limit = model.context_length
    if context is None and limit is not None and ctx < limit:
        notes.append(f"windows of {ctx} of the model's {limit:,} positions (--context to change)")
    if model.num_params() > LARGE_MODEL and (n_windows is None or n_repeats is None):
        notes.append(
            f"fewer windows ({LARGE_MODEL_WINDOWS}) and repeated sequences "
            f"({LARGE_MODEL_REPEATS}) by default for a model of "
            f"{model.num_params() / 1e6:.0f}M parameters (--windows, --repeats to change)"
        )
    n_windows = default_windows(run) if n_windows is None else n_windows
    n_repeats = default_repeats(run) if n_repeats is None else n_repeats
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
    # never trained; a pretrained vocabulary's special and unused tokens are left out), or
    # the whole vocabulary if the text has too few for distinct repeats.
    special = set(tok.special_tokens.values())
    pool = np.array([i for i in np.unique(ids) if i not in special and i < tok.vocab_size])
    if len(pool) < k:
        pool = np.array([i for i in range(tok.vocab_size) if i not in special])
        notes.append(
            f"the text has fewer than {k} distinct tokens: repeats drawn from the vocabulary"
        )
    reps = repeated_random_tokens(n_repeats, k, pool, seed, bos=tok.eos_id)
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
        first_copy_loss=0.0,
        second_copy_loss=0.0,
        notes=notes,
    )
    if not isinstance(model, Transformer):
        rep_curve = position_losses(model, reps, batch_size)  # L[t] predicts token t + 1
        res.first_copy_loss = float(rep_curve[1:k].mean())  # tokens 2..k of the first copy
        res.second_copy_loss = float(rep_curve[k + 1 :].mean())  # tokens 2..k of the second
        notes.append(
            f"the {run.family} family has no attention heads: in-context-learning score and "
            "copying only"
        )
        return res

    # One pass over the repeats: per-token losses, head scores and the logit lens.
    rng = np.random.default_rng(seed + 1)
    lens_sel = _lens_positions(rng, n_repeats, k) if lens else None
    with ResidualRecorder(model) as rec:

        def select(lo: int, hi: int) -> None:
            if lens_sel is not None:
                rows, pos, _ = lens_sel
                keep = (rows >= lo) & (rows < hi)
                rec.select = (torch.from_numpy(rows[keep] - lo), torch.from_numpy(pos[keep]))

        out = scores_on_repeats(model, reps, k, 1, batch_size, losses=True, on_batch=select)
    loss = out["loss"]  # (N, 2k): loss[:, t] predicts token t + 1
    res.first_copy_loss = float(loss[:, 1:k].mean())
    res.second_copy_loss = float(loss[:, k + 1 :].mean())
    res.prefix_matching = out["prefix_matching"].round(4).tolist()
    res.previous_token = out["previous_token"].round(4).tolist()
    if lens_sel is not None:
        rows, pos, second = lens_sel
        targets = reps[torch.from_numpy(rows), torch.from_numpy(pos + 1)]
        lens_loss, top1 = lens_losses(model, rec.stacked(), targets)
        second = torch.from_numpy(second)
        res.lens = {
            "first_copy_loss": lens_loss[:, ~second].mean(1).round(decimals=4).tolist(),
            "second_copy_loss": lens_loss[:, second].mean(1).round(decimals=4).tolist(),
            "first_copy_top1": top1[:, ~second].float().mean(1).round(decimals=4).tolist(),
            "second_copy_top1": top1[:, second].float().mean(1).round(decimals=4).tolist(),
            "positions": int(len(rows)),
        }

    n_ablate = default_ablate(model) if ablate is None else ablate
    if n_ablate > 0:
        res.ablation = _ablation(
            model, reps[:ABLATE_SEQS], loss[:ABLATE_SEQS], k, res, n_ablate, draws, rng, batch_size
        )

    # Attention patterns of the top induction heads and the top previous-token head on one
    # short repeated sequence, where the stripes are visible.
    ks = min(k, 24)
    short = repeated_random_tokens(1, ks, pool, seed + 2, bos=tok.eos_id)
    pats = attention_patterns(model, short.to(next(model.parameters()).device))
    prev = np.asarray(res.previous_token)
    chosen = [(layer, head) for layer, head, _ in res.top_heads(4)]
    best_prev = top_heads(prev, 1)[0][:2]
    if best_prev not in chosen:
        chosen.append(best_prev)
    res.patterns = [(la, h, pats[la][0, h].cpu().numpy()) for la, h in chosen]
    res.pattern_k = ks
    return res


def _lens_positions(rng: np.random.Generator, n: int, k: int):
    """Up to ``LENS_ROWS`` random (sequence, position) pairs in each copy, sorted by
    sequence (the order the recorder sees them): positions ``t`` whose next token is token
    2..k of the first copy or of the second; and which pairs are in the second copy."""
    first = [(r, t) for r in range(n) for t in range(1, k)]
    second = [(r, t) for r in range(n) for t in range(k + 1, 2 * k)]
    picks = []
    for group, pairs in ((False, first), (True, second)):
        idx = rng.choice(len(pairs), size=min(LENS_ROWS, len(pairs)), replace=False)
        picks += [(*pairs[i], group) for i in idx]
    picks.sort()
    rows, pos, sec = (np.array(c) for c in zip(*picks, strict=True))
    return rows.astype(np.int64), pos.astype(np.int64), sec.astype(bool)


def _ablation(model, reps, loss, k, res: ProbeResult, n: int, draws: int, rng, batch_size):
    """Second- and first-copy losses with the top ``n`` induction heads zeroed and with
    ``draws`` random sets of ``n`` other heads zeroed, on the sequences ``reps``."""
    L, H = model.config.n_layer, model.config.n_head
    n = min(n, L * H)
    top = [(layer, head) for layer, head, _ in res.top_heads(n)]

    def copies(curve) -> tuple[float, float]:
        return float(np.mean(curve[1:k])), float(np.mean(curve[k + 1 :]))

    def ablated(heads) -> tuple[float, float]:
        with ablate_heads(model, heads):
            return copies(position_losses(model, reps, batch_size))

    base = copies(loss.mean(0))
    top_first, top_second = ablated(top)
    others = [(la, h) for la in range(L) for h in range(H) if (la, h) not in set(top)]
    randoms = []
    for _ in range(draws if len(others) >= n else 0):
        heads = [others[i] for i in sorted(rng.choice(len(others), size=n, replace=False))]
        first, second = ablated(heads)
        randoms.append({"heads": [list(h) for h in heads], "first": first, "second": second})
    return {
        "n_heads": n,
        "n_seqs": int(len(reps)),
        "top_heads": [list(h) for h in top],
        "baseline": {"first": base[0], "second": base[1]},
        "top": {"first": top_first, "second": top_second},
        "random": randoms,
    }


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


def plot_ablation(res: ProbeResult, path: Path) -> None:
    """Second-copy loss: intact, top induction heads zeroed, random heads zeroed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = res.ablation
    assert a is not None
    labels = ["intact", f"top {a['n_heads']}\ninduction heads"]
    values = [a["baseline"]["second"], a["top"]["second"]]
    for i, r in enumerate(a["random"]):
        labels.append(f"{a['n_heads']} random\nheads ({i + 1})")
        values.append(r["second"])
    colors = ["tab:grey", "tab:red"] + ["tab:blue"] * len(a["random"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(values), 3.2))
    ax.bar(range(len(values)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(a["baseline"]["first"], color="k", ls="--", lw=0.8, label="first copy, intact")
    ax.set_ylim(0, 1.12 * max([*values, a["baseline"]["first"]]))
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("loss on the second copy (nats)")
    ax.set_title(f"zero-ablation, {a['n_seqs']} repeated sequences of {res.repeat_k}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def lens_onset(lens: dict, gap: float = 1.0) -> int | None:
    """The first layer (from 0; -1 = the embedding) from whose output on the logit lens
    reads the second copy at least ``gap`` nats better than the first, or None."""
    diff = np.asarray(lens["first_copy_loss"]) - np.asarray(lens["second_copy_loss"])
    if not len(diff) or diff[-1] < gap:
        return None
    below = np.nonzero(diff < gap)[0]
    # lens index i is the output of layer i - 1, and below[-1] + 1 the first index for good
    return int(below[-1]) if len(below) else -1


def ablation_line(res: ProbeResult) -> str | None:
    """One sentence: the second-copy loss intact, top heads zeroed, random heads zeroed."""
    a = res.ablation
    if not a:
        return None
    line = (
        f"second-copy loss {a['baseline']['second']:.3f} intact, "
        f"{a['top']['second']:.3f} with the top {a['n_heads']} induction heads zeroed"
    )
    if a["random"]:
        r = [x["second"] for x in a["random"]]
        line += (
            f", {np.mean(r):.3f} with {a['n_heads']} random heads zeroed "
            f"(mean of {len(r)} draws, {min(r):.3f} to {max(r):.3f})"
        )
    return line + f"; {a['n_seqs']} sequences"


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
    if res.patterns:
        lines += [
            "## Attention patterns",
            "",
            f"One sequence of {res.pattern_k} random tokens, twice (after a start token): an "
            "induction head attends along the diagonal "
            f"{res.pattern_k - 1} positions back in the second half, a previous-token head "
            "just below the main diagonal.",
            "",
            "![attention patterns of the top heads](patterns.png)",
            "",
        ]
    if res.lens:
        first, second = res.lens["first_copy_loss"], res.lens["second_copy_loss"]
        onset = lens_onset(res.lens)
        lines += [
            "## Logit lens",
            "",
            "The residual stream after each layer read through the final norm and unembedding "
            f"({res.lens['positions']} positions): loss on the first copy {first[-1]:.2f} and "
            f"on the second {second[-1]:.2f} at the output"
            + (
                f"; the second copy's loss stays at least 1 nat below the first's from the "
                f"output of layer {onset} on (layers from 0, as the heads)."
                if onset is not None
                else "; the second copy's loss is never 1 nat below the first's for good."
            ),
            "",
            "![logit lens](lens.png)",
            "",
        ]
    line = ablation_line(res)
    if line:
        lines += ["## Ablation", "", line[0].upper() + line[1:] + ".", ""]
        lines += ["![ablation](ablation.png)", ""]
    return "\n".join(lines)


def write_probe_report(res: ProbeResult, out: str | Path, top: int = 5) -> Path:
    """``probe.json``, ``report.md``, ``icl.png`` and (Transformers) ``heads.png``,
    ``patterns.png``, ``lens.png`` and ``ablation.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "probe.json", json.dumps(res.as_dict(), indent=1))
    plot_icl(res, out / "icl.png")
    if res.prefix_matching is not None:
        plot_head_scores(np.asarray(res.prefix_matching), out / "heads.png")
    if res.patterns:
        plot_patterns(res.patterns, out / "patterns.png")
    if res.lens:
        names = {"first": "first copy (unpredictable)", "second": "second copy (copying possible)"}
        plot_lens(
            {name: res.lens[f"{c}_copy_loss"] for c, name in names.items()},
            {name: res.lens[f"{c}_copy_top1"] for c, name in names.items()},
            out / "lens.png",
            f"logit lens on repeated random tokens ({res.repeat_k} x 2): each layer's "
            "residual read through the final norm and unembedding",
        )
    if res.ablation:
        plot_ablation(res, out / "ablation.png")
    atomic_write_text(out / "report.md", report_markdown(res, top))
    return out / "report.md"
