"""``lmlab serve``: an OpenAI-compatible HTTP server and web playground for lmlab runs."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve runs over an OpenAI-compatible HTTP API with a web playground",
        description="Serve one or more runs (or word-vector files) over HTTP: /v1/completions, "
        "/v1/chat/completions, /v1/embeddings, /v1/models, /health, streaming as server-sent "
        "events, lmlab's /v1/classify and /v1/qa for task runs (lmlab task train), and a playground "
        "page at /. Bound to loopback unless --host says otherwise.",
    )
    p.add_argument(
        "--run",
        "--model",
        dest="run",
        action="append",
        required=True,
        metavar="[NAME=]PATH",
        help="run directory, task run (classify, qa), .gguf file, Hugging Face folder, "
        "builtin:smollm2 or vectors file to serve (repeatable; the request's 'model' picks one)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on /v1 routes (default: $LMLAB_API_KEY)",
    )
    p.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from ORIGIN to call the API (repeatable; default: none)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=512, help="most new tokens per request (default 512)"
    )
    p.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=8192,
        help="longest prompt for models without a context limit (default 8192)",
    )
    p.add_argument(
        "--max-task-chars",
        type=int,
        default=20_000,
        help="longest text, question or context on /v1/classify and /v1/qa (default 20000)",
    )
    p.add_argument(
        "--max-body", type=int, default=1 << 20, help="largest request body in bytes (1 MiB)"
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (300)")
    p.add_argument("--max-batch", type=int, default=64, help="rows per forward (default 64)")
    p.add_argument(
        "--max-requests",
        type=int,
        default=256,
        help="requests in flight per model before answering 429 (default 256)",
    )
    p.add_argument("--no-batch", action="store_true", help="one forward per request (no batching)")
    p.add_argument(
        "--prefill-chunk",
        type=int,
        default=256,
        help="a Transformer reads longer prompts this many tokens per forward, between the "
        "decoding steps of running requests (default 256; 0: the whole prompt at once)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the models (default: half the cores shared among the models)",
    )
    p.add_argument(
        "--quantized",
        action="store_true",
        help="open .gguf files and builtin models on their own Q4_0/Q4_1/Q8_0 blocks (int4/int8 "
        "kernels, about a fifth of the float32 memory) instead of dequantising them",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--log-level", default="warning", choices=["warning", "info", "debug"])
    p.set_defaults(func=run)


def _listen(host: str, port: int):
    import socket

    from lmlab.errors import LmlabError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise LmlabError(f"cannot resolve --host {host!r} ({e}); pass an address") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise LmlabError(
            f"cannot listen on {host}:{port} ({e.strerror}); choose another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from lmlab.errors import LmlabError
    from lmlab.serve.app import create_app
    from lmlab.serve.limits import ServeSettings
    from lmlab.serve.registry import load_registry
    from lmlab.serve.server import uvicorn_config

    for name, value in [("--max-tokens", args.max_tokens), ("--max-batch", args.max_batch),
                        ("--max-requests", args.max_requests), ("--max-body", args.max_body),
                        ("--max-prompt-tokens", args.max_prompt_tokens),
                        ("--max-task-chars", args.max_task_chars)]:  # fmt: skip
        if value < 1:
            raise LmlabError(f"{name} must be at least 1, got {value}")
    if args.prefill_chunk < 0:
        raise LmlabError(f"--prefill-chunk must be 0 or more, got {args.prefill_chunk}")
    if args.timeout <= 0:
        raise LmlabError(f"--timeout must be positive, got {args.timeout}")
    if args.threads is not None and args.threads < 1:
        raise LmlabError(f"--threads must be at least 1, got {args.threads}")
    from lmlab.interop.sources import open_quantized

    with open_quantized(args.quantized):  # .gguf / builtin models on their own blocks
        registry = load_registry(args.run, args.device)
    api_key = args.api_key or os.environ.get("LMLAB_API_KEY") or None
    settings = ServeSettings(
        api_key=api_key,
        cors_origins=args.cors,
        max_body_bytes=args.max_body,
        timeout_s=args.timeout,
        max_tokens=args.max_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        max_task_chars=args.max_task_chars,
        batch=not args.no_batch,
        max_batch=args.max_batch,
        max_requests=args.max_requests,
        threads=args.threads,
        prefill_chunk=args.prefill_chunk,
    )
    app = create_app(registry, settings)
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    for m in registry.models.values():
        card = m.card()
        if m.kind == "lm":
            what = (
                f"{card['family']}, {card['params']:,} parameters, context {card['context_length']}"
            )
        elif m.kind == "embeddings":
            what = f"word vectors, {card['vocab_size']:,} words"
        else:
            labels = f", labels {', '.join(card['labels'])}" if card.get("labels") else ""
            what = f"{m.kind} task run ({card['family']}{labels}) on {card['route']}"
        print(f"lmlab: model {m.name!r}: {what} ({m.path})", file=sys.stderr)
    print(f"lmlab: listening on {url}  (playground {url}/, OpenAI API {url}/v1)", file=sys.stderr)
    if api_key:
        print("lmlab: API key required on /v1 routes", file=sys.stderr)
    elif host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"lmlab: warning: listening on {host} without an API key: anyone who can reach "
            "this port can use the models (set --api-key or LMLAB_API_KEY)",
            file=sys.stderr,
        )
    sys.stderr.flush()
    server = uvicorn.Server(uvicorn_config(app, args.host, port, args.log_level))
    server.run(sockets=[sock])
    return 0
