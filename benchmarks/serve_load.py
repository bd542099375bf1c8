"""Load test of ``lmlab serve``: 32 concurrent streaming clients, batched vs unbatched.

For each model (a character Transformer and a character LSTM, trained here for a few steps
unless ``--run`` is given) and each prompt mix (all prompts the same length, or lengths
from 8 to 60 characters), a server is started in its own process (``lmlab serve``, once with
batching and once with ``--no-batch``), and 32 clients on loopback each send their share of a
fixed number of streaming completion requests (64 new tokens, temperature 0.8, a seed each)
one after the other. Reported: request latency p50/p99, time to first token p50/p99,
generated tokens per second over the whole run, errors, and batched/unbatched ratios.

    .venv/bin/python benchmarks/serve_load.py [--requests 256] [--clients 32] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import table, write_results

KEY = "bench"
TEXT = (
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
    "rough winds do shake the darling buds of May, and summer's lease hath all too short a date."
)


def train_runs(root: Path, steps: int) -> dict[str, Path]:
    """A depth-2 Transformer (context 128) and a 2x128 LSTM on the sonnets, characters."""
    common = ["--corpus", "builtin:shakespeare-sonnets", "--steps", str(steps), "--batch-size", "16",
              "--context", "128", "--eval-every", "100000", "--set", "train.sample_tokens=0",
              "--set", "train.eval_batches=2"]  # fmt: skip
    runs = {"transformer": root / "transformer", "lstm": root / "lstm"}
    cmds = {
        "transformer": ["--depth", "2"],
        "lstm": ["--model", "rnn", "--set", "model.embed_dim=64", "--set", "model.hidden_size=128"],
    }
    for name, extra in cmds.items():
        print(f"training the {name} ({steps} steps) ...", flush=True)
        subprocess.run([sys.executable, "-m", "lmlab", "train", "--out", str(runs[name]), *common, *extra],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return runs


def start_server(run: Path, batch: bool, threads: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "lmlab", "serve", "--run", f"m={run}", "--port", "0",
           "--api-key", KEY, "--threads", str(threads), "--max-tokens", "1024"]  # fmt: skip
    if not batch:
        cmd.append("--no-batch")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("the server did not start")
        if "listening on" in line:
            return proc, line.split("listening on ")[1].split()[0]


async def one_request(client: httpx.AsyncClient, url: str, prompt: str, seed: int, max_tokens: int):
    body = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8,
            "seed": seed, "stream": True}  # fmt: skip
    t0 = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if first is None and chunk["choices"] and chunk["choices"][0]["text"]:
                first = time.perf_counter()
            if "usage" in chunk:
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return end - t0, (first or end) - t0, tokens


async def load(url: str, prompts: list[str], clients: int, max_tokens: int) -> dict:
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for i, p in enumerate(prompts):
        queue.put_nowait((i, p))
    lat, ttft, errors = [], [], []
    tokens = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                 timeout=600) as client:  # fmt: skip

        async def worker() -> None:
            nonlocal tokens
            while not queue.empty():
                i, prompt = queue.get_nowait()
                try:
                    total, first, n = await one_request(client, url, prompt, i, max_tokens)
                    lat.append(total)
                    ttft.append(first)
                    tokens += n
                except Exception as e:  # counted, not fatal
                    errors.append(str(e))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]

    return {"requests": len(prompts), "errors": len(errors), "wall": wall, "tokens": tokens,
            "tok_s": tokens / wall, "p50": pct(lat, 50), "p99": pct(lat, 99),
            "ttft50": pct(ttft, 50), "ttft99": pct(ttft, 99), "first_error": errors[:1]}  # fmt: skip


def prompts_for(mix: str, n: int) -> list[str]:
    if mix == "same length":
        return [TEXT[i % 40 : i % 40 + 32] for i in range(n)]
    return [TEXT[: 8 + (i * 13) % 53] for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", default=[], metavar="NAME=PATH",
                    help="serve these runs instead of training two small ones")  # fmt: skip
    ap.add_argument("--requests", type=int, default=256, help="requests per configuration")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per configuration, batched and unbatched alternating; the run "
                    "with the most tokens/s is kept (the cores are shared: noise is one-sided)")  # fmt: skip
    ap.add_argument("--results", type=Path, help="also write the section into this RESULTS.md")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    runs = (
        dict(r.split("=", 1) for r in args.run)
        if args.run
        else train_runs(Path(tmp.name), args.train_steps)
    )
    rows, summary = [], {}
    for name, run in runs.items():
        for mix in ("same length", "mixed lengths"):
            prompts = prompts_for(mix, args.requests)
            res: dict[bool, dict] = {}
            for rep in range(args.repeats):
                for batch in (True, False):
                    proc, url = start_server(Path(run), batch, args.threads)
                    try:
                        r = asyncio.run(load(url, prompts, args.clients, args.max_tokens))
                    finally:
                        proc.terminate()
                        proc.wait(30)
                    kind = "batched" if batch else "unbatched"
                    print(f"{name}, {mix}, {kind}, run {rep + 1}: {r}", flush=True)
                    if batch not in res or r["tok_s"] > res[batch]["tok_s"]:
                        res[batch] = r
            for batch in (True, False):
                r = res[batch]
                ratio = res[True]["tok_s"] / res[False]["tok_s"]
                rows.append([name, mix, "batched" if batch else "one request per forward",
                             f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['ttft50']:.3f}",
                             f"{r['ttft99']:.3f}", f"{r['tok_s']:,.0f}", r["errors"],
                             f"{ratio:.2f}x" if batch else "1.00x"])  # fmt: skip
            summary[(name, mix)] = res
    headers = ["model", "prompts", "server", "latency p50 s", "p99 s", "first token p50 s", "p99 s",
               "tokens/s", "errors", "tokens/s vs unbatched"]  # fmt: skip
    load_avg = os.getloadavg()
    body = (
        "## Serving under load (`benchmarks/serve_load.py`)\n\n"
        f"{args.clients} concurrent streaming clients on loopback, {args.requests} completion requests "
        f"per row ({args.max_tokens} new tokens each, temperature 0.8, one seed per request), "
        "the server in its own process (`lmlab serve`, "
        f"{args.threads} torch thread), the clients in another. Character-level models trained for "
        f"{args.train_steps} steps on the sonnets: Transformer depth 2 (context 128) and a 2-layer "
        "LSTM (embedding 64, hidden 128). Prompts of one length (32 characters) or of 8 to 60. "
        f"Best of {args.repeats} run(s) per row (batched and unbatched alternating). "
        "The batched server runs every active request through one forward per token (Transformer "
        "rows of different lengths in a ragged KV cache); `--no-batch` runs one forward per "
        "request per token, still interleaved.\n\n"
        + table(headers, rows)
        + f"\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_avg[0]:.1f} at the end (cores shared with "
        "other jobs: the same configuration can vary up to 2x between repeats, so absolute figures "
        "are noisy; the ratios less so). Command: "
        f"`.venv/bin/python benchmarks/serve_load.py --requests {args.requests} --clients {args.clients} "
        f"--repeats {args.repeats} --results benchmarks/RESULTS.md`."
    )
    print(body)
    if args.results:
        write_results(args.results, "serve", body)
    tmp.cleanup()


if __name__ == "__main__":
    main()
