"""``lmlab lab probe``: in-context-learning score and induction heads of any run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="in-context-learning score and induction heads of a trained run",
        description="Measure a run of any family: the loss at each position of windows of "
        "text and the in-context-learning score (loss late in the context minus early, as in "
        "Olsson et al. 2022), the loss on repeated random tokens, and for Transformers every "
        "head's prefix-matching score, listing the top induction heads. Writes report.md, "
        "probe.json, icl.png and heads.png into --out.",
        epilog="example: lmlab lab probe --run runs/demo",
    )
    p.add_argument(
        "--run",
        "--model",
        dest="run",
        required=True,
        help="run directory, .gguf file, Hugging Face folder or builtin:smollm2",
    )
    p.add_argument(
        "--corpus",
        action="append",
        help="UTF-8 text file(s), folder or glob to probe on (default: the run's validation split)",
    )
    p.add_argument(
        "--context", type=int, help="window length (default: the model's context length)"
    )
    p.add_argument(
        "--windows", type=int, default=256, help="windows of text to average (default 256)"
    )
    p.add_argument("--repeats", type=int, default=16, help="repeated random sequences (default 16)")
    p.add_argument("--top", type=int, default=5, help="induction heads to list (default 5)")
    p.add_argument("--out", help="report folder (default RUN/probe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from lmlab.errors import LmlabError
    from lmlab.lab.probe import probe_run, text_ids, write_probe_report
    from lmlab.run import load_run

    if args.windows < 1 or args.repeats < 1:
        raise LmlabError("--windows and --repeats must be at least 1")
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
    )
    report = write_probe_report(res, Path(args.out) if args.out else run_.path / "probe", args.top)
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
    print(f"report: {report}")
    return 0
