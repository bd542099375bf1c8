"""Chunked prefill in the server's model worker: how long a long prompt holds the streams
that are already decoding, read at once (``--prefill-chunk 0``) or in chunks (default 256).

A Transformer (depth 4, width 256, context 2048; untrained: only speed is measured) decodes
8 greedy streams; once they run, a 2,000-token prompt arrives. Reported, for each setting:
the longest pause between two tokens of the running streams (p50 and worst over repeats),
the long request's time to its first token, and the streams' tokens/s over the whole run.

    .venv/bin/python benchmarks/serve_prefill.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import torch

from _common import table
from lmlab.generate import SamplingParams
from lmlab.models import Transformer, TransformerConfig
from lmlab.serve.batcher import FINISHED, GenRequest, ModelWorker
from lmlab.tokenize import CharTokenizer

STREAMS, STREAM_TOKENS, LONG_PROMPT = 8, 200, 2000


def one_run(model, tok, chunk: int, threads: int) -> dict[str, float]:
    worker = ModelWorker(model, tok, "m", window_s=0.01, threads=threads, prefill_chunk=chunk)
    stamps: list[list[float]] = [[] for _ in range(STREAMS)]
    long_first: list[float] = []
    done = [threading.Event() for _ in range(STREAMS + 1)]

    def emitter(k: int):
        def emit(item) -> None:
            if item == FINISHED or isinstance(item, Exception):
                done[k].set()
            elif k < STREAMS:
                stamps[k].append(time.perf_counter())
            elif not long_first:
                long_first.append(time.perf_counter())

        return emit

    greedy = SamplingParams(max_new_tokens=STREAM_TOKENS, temperature=0, ignore_eos=True)
    t0 = time.perf_counter()
    try:
        for k in range(STREAMS):
            worker.submit(GenRequest(tok.encode("abc"[: 1 + k % 3]), greedy, emitter(k)))
        while min(len(s) for s in stamps) < 20:  # every stream is decoding
            time.sleep(0.001)
        prompt = tok.encode(("abcdefghij klmnop\n" * 200)[:LONG_PROMPT])
        sent = time.perf_counter()
        one = SamplingParams(max_new_tokens=1, temperature=0, ignore_eos=True)
        worker.submit(GenRequest(prompt, one, emitter(STREAMS)))
        assert all(d.wait(120) for d in done)
    finally:
        worker.close()
    gaps = [b - a for s in stamps for a, b in zip(s[:-1], s[1:], strict=True)]
    return {
        "pause": max(gaps),
        "ttft": long_first[0] - sent,
        "tok_s": sum(len(s) for s in stamps) / (max(s[-1] for s in stamps) - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    tok = CharTokenizer.train(["abcdefghij klmnop\n"])
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, context_length=2048, n_layer=4,
                            n_head=4, d_model=256)  # fmt: skip
    model = Transformer(cfg).eval()
    results: dict[int, list[dict[str, float]]] = {0: [], 256: []}
    for _ in range(args.repeats):  # interleaved, so load changes hit both settings
        for chunk in results:
            results[chunk].append(one_run(model, tok, chunk, args.threads))
    rows = []
    for chunk, runs in results.items():
        pauses = [r["pause"] * 1000 for r in runs]
        rows.append([
            "whole prompt at once (--prefill-chunk 0)" if chunk == 0 else f"chunks of {chunk}",
            f"{statistics.median(pauses):.0f} / {max(pauses):.0f}",
            f"{statistics.median(r['ttft'] for r in runs) * 1000:.0f}",
            f"{statistics.median(r['tok_s'] for r in runs):,.0f}",
        ])  # fmt: skip
    print(f"{STREAMS} streams decoding, then a {LONG_PROMPT}-token prompt; {args.threads} thread(s),"
          f" {args.repeats} repeats\n")  # fmt: skip
    print(table(["prefill", "longest pause of the streams, ms (p50 / worst)",
                 "long prompt's first token, ms", "streams' tokens/s"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
