"""llama.cpp through ``llama-cpp-python``, with its weight repacking turned off where it
crashes.

On a CPU with AMX, llama.cpp repacks Q4/Q8 weights into AMX tiles ("extra buffer types") at
load. Where the operating system does not grant the process AMX state (some sandboxes and
VMs), its first ``llama_decode`` dies with a segmentation fault. :func:`configure` tries one
decode in a child process; if that crashes, every later llama.cpp process of the benchmark
loads models with ``use_extra_bufts = false`` (its AVX-512/AVX2 kernels) and the report says
so."""

from __future__ import annotations

import os
import subprocess
import sys

ENV = "LMLAB_BENCH_LLAMA_EXTRA_BUFTS"
_PROBE = """
import sys, llama_cpp as lc
llm = lc.Llama(sys.argv[1], n_ctx=64, n_threads=1, n_threads_batch=1, verbose=False)
llm.eval(llm.tokenize(b"Hello there"))
"""


def llama_cpp():
    """The ``llama_cpp`` module, its models loaded without extra buffer types when
    :func:`configure` found that they crash."""
    import llama_cpp as lc

    if os.environ.get(ENV) == "0" and not getattr(lc, "_lmlab_no_extra_bufts", False):
        default = lc.llama_cpp.llama_model_default_params

        def params():
            p = default()
            p.use_extra_bufts = False
            return p

        lc.llama_cpp.llama_model_default_params = params
        lc.llama_model_default_params = params
        lc._lmlab_no_extra_bufts = True
    return lc


def configure(gguf: str) -> str:
    """Probe llama.cpp's default load on ``gguf`` in a child process; set :data:`ENV` for
    the benchmark's later processes. Returns a sentence for the report ('' when the default
    works)."""
    if ENV in os.environ:
        pass
    else:
        r = subprocess.run([sys.executable, "-c", _PROBE, gguf], capture_output=True,
                           timeout=300)  # fmt: skip
        os.environ[ENV] = "1" if r.returncode == 0 else "0"
    if os.environ[ENV] == "1":
        return ""
    return (
        "llama.cpp's weight repacking into AMX tiles crashed this host's processes "
        "(segmentation fault at the first decode), so llama.cpp ran with "
        "`use_extra_bufts = false`: its AVX-512 kernels, without the AMX repack."
    )
