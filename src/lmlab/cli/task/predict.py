"""``lmlab task predict``: labels with probabilities for new text, optionally explained.

lmlab task predict --run runs/sst2-cnn "a gorgeous , witty film" "flat and tedious"
lmlab task predict --run runs/sst2-cnn --file reviews.txt --json
echo "服务很好，房间干净" | lmlab task predict --run runs/hotel --explain
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="use a task run on new text: labels with probabilities, answers, translations",
        description="Run a task run on each TEXT, each line of --file, or each line of standard "
        "input: a classifier prints labels with probabilities (optionally explained), a "
        "translation run its translations, a QA run the answer to --question.",
    )
    p.add_argument("--run", required=True, help="task run directory")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify or translate")
    p.add_argument("--file", help="one text per line ('-': standard input)")
    p.add_argument("--top", type=int, default=3, help="labels shown per text (3)")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    p.add_argument("--explain", action="store_true",
                   help="score each input token's part in the prediction")  # fmt: skip
    p.add_argument("--explain-method", choices=["grad", "occlusion"], default="grad",
                   help="grad: gradient x input (default); occlusion: probability drop "
                   "when the token is left out")  # fmt: skip
    from lmlab.cli.task.kinds import all_kind_modules

    for module in all_kind_modules().values():  # kinds with options of their own
        if hasattr(module, "add_predict_arguments"):
            module.add_predict_arguments(p)
    p.set_defaults(func=run)


def _read_texts(args: argparse.Namespace) -> list[str]:
    from lmlab.errors import LmlabError

    if args.texts and args.file:
        raise LmlabError("give texts as arguments or --file, not both")
    if args.texts:
        lines = list(args.texts)
    elif args.file and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise LmlabError(f"cannot read {args.file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise LmlabError(f"{args.file} is not UTF-8 text; convert it to UTF-8") from None
    elif args.file == "-" or not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise LmlabError("nothing to classify: give TEXT arguments, --file F, or pipe text in")
    texts = [t.strip() for t in lines if t.strip()]
    empty = len(lines) - len(texts)
    if empty:
        warnings.warn(f"{empty} empty line{'s' if empty != 1 else ''} skipped", stacklevel=2)
    if not texts:
        raise LmlabError("nothing to classify: every text is empty")
    return texts


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.tasks.rundir import load_task_run

    one_line_warnings()
    from lmlab.cli.task.kinds import kind_module
    from lmlab.tasks.rundir import task_config

    kind_cli = kind_module(task_config(args.run)["task"]["kind"])
    if hasattr(kind_cli, "predict"):
        return kind_cli.predict(args, load_task_run(args.run))
    texts = _read_texts(args)
    task_run = load_task_run(args.run)
    labels = task_run.labels
    probs = task_run.predict_proba(texts)
    method = {"grad": "gradient x input", "occlusion": "occlusion"}[args.explain_method]
    for text, p in zip(texts, probs, strict=True):
        order = p.argsort()[::-1]
        top = [(labels[i], float(p[i])) for i in order[: max(1, args.top)]]
        rec = {"text": text, "label": top[0][0], "probability": top[0][1],
               "probabilities": {labels[i]: float(p[i]) for i in order}}  # fmt: skip
        if args.explain:
            pieces, scores, target = task_run.explain(text, args.explain_method, int(order[0]))
            rec["explanation"] = {"method": args.explain_method, "label": labels[target],
                                  "tokens": [[t, round(float(s), 4)] for t, s in zip(pieces, scores, strict=True)]}  # fmt: skip
        if args.json:
            print(json.dumps(rec, ensure_ascii=False))
            continue
        shown = "  ".join(f"{name} {prob:.4f}" for name, prob in top)
        print(f"{shown}  | {text if len(text) <= 80 else text[:77] + '...'}")
        if args.explain:
            toks = rec["explanation"]["tokens"]
            print(f"  {method} for {rec['label']}: " + " ".join(f"{t}({s:+.3f})" for t, s in toks))
            best = sorted(toks, key=lambda ts: -ts[1])[:5]
            print("  most for it: " + ", ".join(f"{t} {s:+.3f}" for t, s in best if s > 0))
    return 0
