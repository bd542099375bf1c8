"""``lmlab lab probe``: in-context-learning score and induction heads of any run."""

from __future__ import annotations

import argparse

from lmlab.cli._common import add_model_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="in-context-learning score and induction heads of a trained run",
        description="Measure a run of any family: the loss at each position of windows of "
        "text and the in-context-learning score (loss late in the context minus early, as in "
        "Olsson et al. 2022), the loss on repeated random tokens, and for Transformers every "
        "head's prefix-matching score (listing the top induction heads), their attention "
        "patterns, the logit lens on the repeated tokens, and the repeat loss with the top "
        "induction heads zeroed against as many random heads. Writes report.md, probe.json, "
        "icl.png, heads.png, patterns.png, lens.png and ablation.png into --out. A pretrained "
        "model without a data split reads Hamlet (builtin:shakespeare-hamlet).",
        epilog="examples: lmlab lab probe --run runs/demo\n"
        "          lmlab lab probe --run builtin:smollm2   (about 2 minutes on 2 cores)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arg(p)
    p.add_argument(
        "--corpus",
        action="append",
        help="UTF-8 text file(s), folder or glob to probe on (default: the run's validation split)",
    )
    p.add_argument(
        "--context",
        type=int,
        help="window length (default: the model's context length, at most 512)",
    )
    p.add_argument(
        "--windows",
        type=int,
        help="windows of text to average (default 256; 16 for a model over 50M parameters)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        help="repeated random sequences (default 16; 8 for a model over 50M parameters)",
    )
    p.add_argument("--top", type=int, default=5, help="induction heads to list (default 5)")
    p.add_argument(
        "--ablate",
        type=int,
        help="top induction heads to zero in the ablation, 0 to skip it "
        "(default: a twentieth of the heads, 1 to 10)",
    )
    p.add_argument(
        "--draws", type=int, default=3, help="random head sets ablated for comparison (default 3)"
    )
    p.add_argument("--no-lens", action="store_true", help="skip the logit lens")
    p.add_argument(
        "--out", help="report folder (default RUN/probe; runs/probe/NAME for a pretrained model)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the probe text (default 0)")
    p.add_argument(
        "--batch-size", type=int, default=8, help="sequences per forward call (default 8)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from lmlab.errors import LmlabError
    from lmlab.lab.probe import (
        ablation_line,
        lens_onset,
        probe_run,
        text_ids,
        write_probe_report,
    )
    from lmlab.run import load_run

    if any(n is not None and n < 1 for n in (args.windows, args.repeats)):
        raise LmlabError("--windows and --repeats must be at least 1")
    if (args.ablate is not None and args.ablate < 0) or args.draws < 0:
        raise LmlabError("--ablate and --draws must not be negative")
    run_ = load_run(args.run, args.device)
    ids, what = text_ids(run_, args.corpus)
    res = probe_run(
        run_,
        ids,
        what,
        context=args.context,
        n_windows=args.windows,
        n_repeats=args.repeats,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.json,
        ablate=args.ablate,
        draws=args.draws,
        lens=not args.no_lens,
    )
    res.run = str(args.run)  # as given: builtin:smollm2 rather than the file it resolves to
    report = write_probe_report(
        res, Path(args.out) if args.out else default_out(args.run), args.top
    )
    if args.json:
        print(json.dumps(res.as_dict()))
        return 0
    icl = res.icl
    print(
        f"{res.run} ({res.family}), {what}: {res.n_windows} windows of {res.context} tokens\n"
        f"in-context-learning score {icl.score:+.3f} nats "
        f"(loss {icl.loss_late:.3f} at position {icl.late} - {icl.loss_early:.3f} at {icl.early})\n"
        f"repeated random tokens ({res.repeat_k} x 2): loss {res.first_copy_loss:.3f} on the "
        f"first copy, {res.second_copy_loss:.3f} on the second"
    )
    for note in res.notes:
        print(f"note: {note}")
    heads = res.top_heads(args.top)
    if heads:
        prev = res.previous_token
        print("top induction heads (prefix-matching score; previous-token score):")
        for layer, head, s in heads:
            print(f"  layer {layer} head {head}: {s:.3f}  ({prev[layer][head]:.3f})")
    if res.lens:
        onset = lens_onset(res.lens)
        print(
            "logit lens: the second copy reads at least 1 nat better than the first "
            + (f"from the output of layer {onset} on" if onset is not None else "at no layer")
        )
    line = ablation_line(res)
    if line:
        print(f"ablation: {line}")
    print(f"report: {report}")
    return 0


def default_out(spec: str):
    """RUN/probe for a run directory; runs/probe/NAME for a pretrained model (a GGUF file
    or a built-in one lives in a package, not in a folder of one's own)."""
    from pathlib import Path

    from lmlab.interop.sources import PREFIX, is_pretrained

    if not is_pretrained(spec):
        return Path(spec) / "probe"
    s = str(spec)
    name = s[len(PREFIX) :] if s.startswith(PREFIX) else Path(s.rstrip("/")).stem
    return Path("runs") / "probe" / name
