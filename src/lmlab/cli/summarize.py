"""``lmlab summarize``: summaries of texts (arguments, a file or stdin) on standard output.

lmlab summarize --run runs/lcsts "一段微博新闻……"                    # a summarisation run
lmlab summarize --run runs/lcsts --file news.txt --beam 5 > heads.txt  # one text per line
lmlab summarize --model builtin:smollm2 --whole --file dialogue.txt   # a chat model, prompted
cat articles.txt | lmlab summarize --model builtin:smollm2 --json

With a run trained by ``lmlab task train summarize`` the texts are summarised in batches by
beam search; with any chat-capable model (``builtin:smollm2``, a GGUF file, a chat run) each
text is put under an instruction in a user message, rendered with the model's chat template,
and the greedy reply is the summary. One line out per text; a progress bar on stderr for
more than 20 texts.
"""

from __future__ import annotations

import argparse
import sys

PROGRESS_FROM = 20  # texts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summarize",
        help="summarise text with a summarisation run or a chat model (arguments, --file, stdin)",
        description="Summarise each TEXT, each line of --file, or each line of standard input "
        "(--whole: the whole input as one text) with a run trained by `lmlab task train "
        "summarize` (beam search, batched) or with a chat model prompted through its chat "
        "template (e.g. --model builtin:smollm2). One summary per line on standard output.",
    )
    p.add_argument("--run", "--model", dest="run", required=True,
                   help="summarisation run directory, or a chat model: builtin:smollm2, a "
                   ".gguf file, a Hugging Face folder or a chat run")  # fmt: skip
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to summarise")
    p.add_argument("--file", help="one text per line ('-': standard input)")
    p.add_argument("--whole", action="store_true",
                   help="the whole file or standard input is one text (a dialogue, an article)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    g = p.add_argument_group("summarisation runs")
    g.add_argument("--beam", type=int, help="beam width (the run's, 5)")
    g.add_argument("--decode", choices=["beam", "greedy"], default="beam", help="decoding (beam)")
    g.add_argument("--length-penalty", type=float,
                   help="GNMT length penalty alpha (the run's, 1.0)")  # fmt: skip
    g.add_argument("--batch-size", type=int, default=64, help="texts decoded together (64)")
    g.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                   help="never repeat an N-token n-gram within a summary (0: off)")  # fmt: skip
    c = p.add_argument_group("chat models")
    c.add_argument("--lang", choices=["en", "zh"], default="en",
                   help="language of the default instruction (en)")  # fmt: skip
    c.add_argument("--prompt", help="instruction with a {text} placeholder (default: "
                   "'Summarize the following text in one or two sentences. ...')")  # fmt: skip
    c.add_argument("--system", default="", help="system message")
    c.add_argument("--max-new-tokens", type=int, default=80, help="longest summary (80 tokens)")
    c.add_argument("--quantized", action="store_true",
                   help="open a GGUF model on its own quantised blocks")  # fmt: skip
    p.set_defaults(func=run)


def read_texts(args: argparse.Namespace) -> list[str]:
    """The texts to summarise; bad input (missing or non-UTF-8 file, nothing to summarise)
    is one clear error, empty lines are skipped with a counted warning."""
    import warnings

    from lmlab.errors import LmlabError

    if args.texts and args.file:
        raise LmlabError("give texts as arguments or --file, not both")
    if args.texts:
        lines = list(args.texts)
    elif args.file and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as f:
                data = f.read()
        except OSError as e:
            raise LmlabError(f"cannot read {args.file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise LmlabError(f"{args.file} is not UTF-8 text; convert it to UTF-8") from None
        lines = [data] if args.whole else data.splitlines()
    elif args.file == "-" or not sys.stdin.isatty():
        try:
            data = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise LmlabError("standard input is not UTF-8 text; convert it to UTF-8") from None
        lines = [data] if args.whole else data.splitlines()
    else:
        raise LmlabError("nothing to summarise: give TEXT arguments, --file F, or pipe text in")
    texts = [t.strip() for t in lines if t.strip()]
    empty = len(lines) - len(texts)
    if empty and not args.whole:
        warnings.warn(f"{empty} empty line{'s' if empty != 1 else ''} skipped", stacklevel=2)
    if not texts:
        raise LmlabError("nothing to summarise: the input is empty")
    return texts


def open_summarizer(args: argparse.Namespace):
    """A summarisation run (``kind = "summarize"``) or, for anything else that
    :func:`lmlab.run.load_run` opens, a chat summariser."""
    from pathlib import Path

    from lmlab.config import load_toml
    from lmlab.errors import LmlabError
    from lmlab.run import CONFIG_FILE

    p = Path(args.run)
    kind = None
    if p.is_dir() and (p / CONFIG_FILE).is_file():
        kind = load_toml(p / CONFIG_FILE).get("task", {}).get("kind")
    if kind == "summarize":
        from lmlab.tasks.summarize.run import load_run

        return load_run(p)
    if kind is not None:
        raise LmlabError(f"{args.run} is a {kind} run; give a summarisation run (lmlab task "
                         "train summarize) or a chat model such as builtin:smollm2")  # fmt: skip
    from lmlab.tasks.summarize.prompted import open_chat_summarizer

    return open_chat_summarizer(args.run, args.lang, args.prompt, args.system,
                                args.max_new_tokens, quantized=args.quantized or None)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json

    from lmlab.cli._common import one_line_warnings
    from lmlab.errors import LmlabError

    one_line_warnings()
    if args.beam is not None and args.beam < 1:
        raise LmlabError(f"--beam must be at least 1, got {args.beam}")
    if args.batch_size < 1 or args.max_new_tokens < 1:
        raise LmlabError("--batch-size and --max-new-tokens must be at least 1")
    if args.no_repeat_ngram < 0:
        raise LmlabError(f"--no-repeat-ngram must be 0 (off) or more, got {args.no_repeat_ngram}")
    texts = read_texts(args)
    summarizer = open_summarizer(args)
    progress = len(texts) > PROGRESS_FROM
    from lmlab.tasks.summarize.run import SummarizationRun

    if isinstance(summarizer, SummarizationRun):
        out = summarizer.summarize(texts, args.decode, args.beam, args.length_penalty,
                                   batch_size=args.batch_size, progress=progress,
                                   no_repeat_ngram=args.no_repeat_ngram)  # fmt: skip
    else:
        out = summarizer.summarize(texts, progress=progress)
    for text, summary in zip(texts, out, strict=True):
        if args.json:
            print(json.dumps({"text": text, "summary": summary}, ensure_ascii=False))
        else:
            print(summary)
    sys.stdout.flush()
    return 0
