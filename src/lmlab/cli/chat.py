"""``lmlab chat``: talk to a run in the terminal, with history and streaming replies.

Commands: ``/reset`` (forget the conversation), ``/system TEXT`` (set the system message;
no text clears it), ``/params [key=value ...]`` (show or change sampling), ``/history``,
``/help``, ``/quit``. The conversation is rendered with the run's chat template (see
``lmlab.serve.chat_template``); turns that no longer fit the context are dropped oldest first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lmlab.cli._common import (
    add_model_arg,
    add_sampling_args,
    one_line_warnings,
    sampling_from_args,
)

HELP = """commands:
  /reset               forget the conversation (keeps the system message)
  /system [TEXT]       set the system message (no TEXT: clear it)
  /params [k=v ...]    show or set sampling: max_new_tokens temperature top_k top_p min_p
                       repetition_penalty seed (value 'none' clears an optional one)
  /history             print the conversation so far
  /help                this text
  /quit                leave (or Ctrl-D)"""

PARAM_TYPES = {
    "max_new_tokens": int,
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "repetition_penalty": float,
    "seed": int,
}
OPTIONAL = {"top_k", "top_p", "min_p", "seed"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="chat with a run in the terminal",
        description="An interactive chat with a run: type a message, read the streamed reply. "
        "Commands: /reset, /system TEXT, /params k=v, /history, /help, /quit.",
    )
    add_model_arg(p)
    p.add_argument("--system", default="", help="system message to start with")
    p.add_argument(
        "--quantized",
        action="store_true",
        help="open a .gguf file or builtin model on its own Q4_0/Q4_1/Q8_0 blocks (int4/int8 "
        "kernels, about a fifth of the float32 memory) instead of dequantising it",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    add_sampling_args(p)
    p.set_defaults(func=run)


def update_params(params, args: list[str]):
    """``params`` with ``key=value`` settings applied (a clear error for a bad one)."""
    from lmlab.errors import LmlabError

    changes = {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in PARAM_TYPES:
            raise LmlabError(
                f"cannot set {a!r}; use key=value with key in {', '.join(PARAM_TYPES)}"
            )
        if value.strip().lower() == "none" and key in OPTIONAL:
            changes[key] = None
            continue
        try:
            changes[key] = PARAM_TYPES[key](value)
        except ValueError:
            raise LmlabError(f"{key} needs a {PARAM_TYPES[key].__name__}, got {value!r}") from None
    return dataclasses.replace(params, **changes)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._kernel_preload import start_kernel_preload

    start_kernel_preload(args.run)  # overlaps PyTorch's import and the run's loading
    from lmlab.errors import LmlabError
    from lmlab.generate import generate_stream, warm_up
    from lmlab.run import load_run
    from lmlab.serve.chat_template import fit_chat, load_chat_template
    from lmlab.serve.stream import Trim

    one_line_warnings()
    run_ = load_run(args.run, args.device, quantized=args.quantized)
    template = load_chat_template(run_.path, run_.config)
    params = dataclasses.replace(sampling_from_args(args), n=1)
    tok, model = run_.tokenizer, run_.model
    warm_up(model, tok, params)  # part of loading: the first reply starts at full speed
    ctx = model.context_length
    system = args.system
    history: list[dict[str, str]] = []
    tty = sys.stdin.isatty()
    out = sys.stdout
    print(
        f"lmlab chat with {run_.name} ({run_.family}, {model.num_params():,} parameters). "
        "/help for commands, /quit or Ctrl-D to leave.",
        file=sys.stderr,
    )
    while True:
        try:
            line = input("you> ") if tty else sys.stdin.readline()
        except EOFError:
            line = ""
        if not line:  # end of input
            if tty:
                out.write("\n")
            return 0
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("/"):
            cmd, _, rest = line.partition(" ")
            try:
                if cmd in ("/quit", "/exit"):
                    return 0
                if cmd == "/help":
                    print(HELP, file=out)
                elif cmd == "/reset":
                    history.clear()
                    print("(conversation cleared)", file=out)
                elif cmd == "/system":
                    system = rest.strip()
                    print(
                        f"(system message: {system!r})" if system else "(system message cleared)",
                        file=out,
                    )
                elif cmd == "/params":
                    params = update_params(params, rest.split())
                    shown = {k: getattr(params, k) for k in PARAM_TYPES}
                    print("(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")", file=out)
                elif cmd == "/history":
                    for m in history:
                        print(f"{m['role']}: {m['content']}", file=out)
                else:
                    print(f"(unknown command {cmd}; /help lists them)", file=out)
                out.flush()
            except LmlabError as e:
                print(f"(error: {e})", file=out)
            continue
        history.append({"role": "user", "content": line})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        try:
            prompt, dropped = fit_chat(template, messages, tok, ctx - 1 if ctx else None)
        except LmlabError as e:
            history.pop()
            print(f"(error: {e})", file=out)
            continue
        if dropped:
            del history[:dropped]  # keep the history in step with what the model sees
        run_params = dataclasses.replace(params, stop=[*template.stop, *params.stop])
        trim = Trim(template.strip_reply)
        if tty:
            out.write("bot> ")
        reply = []
        for ev in generate_stream(model, tok, prompt, run_params, logprobs=False):
            piece = trim.push(ev.text)
            reply.append(piece)
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()
        history.append({"role": "assistant", "content": "".join(reply)})
