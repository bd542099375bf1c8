"""A fast CPU decoding step for Transformers: one numba call per generated token.

At batch 1 a small Transformer spends its decoding step in the fixed cost of ~130 PyTorch
calls, and a 100M+ parameter one in streaming its weights from memory. :class:`FastDecoder`
exports the weights once, in tiles that the kernel streams in order, and runs a whole step
(every layer, the KV cache update, the logits) in one compiled kernel
(:mod:`lmlab.generate._fastdecode_kernels`), sharing the KV cache with PyTorch: the prompt
is prefilled by the model's own forward into the same memory, and either path may continue
from the other.

It covers the ``transformer`` family in both blocks (gpt2: LayerNorm with or without bias,
exact or tanh GELU, learned positions; llama: RMSNorm, SwiGLU, RoPE, grouped-query
attention), tied or untied heads and attention-only models, for any number of rows, on CPU
with float32 or bfloat16 weights, in eval mode, without autocast or module hooks.
``LMLAB_FAST_DECODE=0`` turns it off. With float32 weights its logits match the PyTorch
forward to about 1e-6; with bfloat16 weights it computes in float32 on the same bfloat16
values (PyTorch's bfloat16 forward rounds its activations too, so they differ by bfloat16
rounding).

A model read from a GGUF file (:func:`register_gguf`) decodes from the file's own Q4_0,
Q4_1 or Q8_0 blocks (:mod:`lmlab.generate.gguf_blocks`): they are exactly its float32
weights in a sixth of the bytes, and the kernel computes in float32 on them. A quantised
model (:mod:`lmlab.quantize`) on a CPU with AVX-512 VNNI multiplies its 4- and 8-bit
matrices by activations rounded to int8, as llama.cpp does (:func:`int8_activations`).

The kernel is compiled once per machine and kind of weights (5-20 s; numba caches it on
disk) and loaded from that cache by every later process (about a second). Both happen in a
background thread: the engine decodes with PyTorch until the kernel is ready, then
switches, so a generate call never waits for the compiler (``fast_decode=True`` waits).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.nn.modules import module as _module

from lmlab.errors import LmlabError
from lmlab.generate._kernel_types import dummy_matrix as _dummy_matrix
from lmlab.generate.gguf_blocks import tiles_of_rows
from lmlab.models.transformer import KVCache, Transformer, TransformerConfig

ENV = "LMLAB_FAST_DECODE"
ACT8_ENV = "LMLAB_INT8_ACTIVATIONS"
_OFF = ("0", "false", "no", "off")
# Rows are decoded one after another inside each matrix product; beyond this many, PyTorch's
# batched products win (measured: 4x128 model, 64 rows: 0.9x; 16 rows: 1.3x the speed).
MAX_ROWS = 16
_CACHE: weakref.WeakKeyDictionary[Transformer, FastDecoder] = weakref.WeakKeyDictionary()
# Models whose float32 weights are exactly a GGUF file's blocks: model -> (file, signature).
_GGUF: weakref.WeakKeyDictionary[Transformer, tuple[Path, tuple | None]] = (
    weakref.WeakKeyDictionary()
)
MATRICES = ("qkv", "proj", "fc", "fc2", "head")
# How each kind of matrix is stored: dense float32, dense bfloat16 (its bits), 4-bit and
# 8-bit blocks. The token embedding is float32 or bfloat16.
_TORCH_TYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}


class _KernelLoader:
    """Compiles (or loads from numba's cache) the decoding kernel for one combination of
    weight kinds (``key``: the embedding's type, then each of :data:`MATRICES`'s kind) in a
    background thread."""

    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.kernel = None
        self.error: BaseException | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            # the preload's thread may still be importing the module: WARM may not exist yet
            kernels = sys.modules.get("lmlab.generate._fastdecode_kernels")
            if self.key in getattr(kernels, "WARM", ()):
                self._thread = threading.current_thread()  # loaded already (the preload)
                self.kernel = kernels.decode_step
                self._done.set()
                return
            self._thread = threading.Thread(
                target=self._load, name="lmlab-fastdecode-" + "-".join(self.key), daemon=True
            )
            self._thread.start()

    def _load(self) -> None:
        try:
            from lmlab.generate._fastdecode_kernels import decode_step, warm_up

            warm_up(self.key)
            self.kernel = decode_step
        except Exception as e:  # noqa: BLE001 - reported by wait(); the engine falls back
            self.error = e
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self.kernel is not None

    @property
    def failed(self) -> bool:
        return self._done.is_set() and self.kernel is None

    def wait(self):
        self.start()
        self._done.wait()
        if self.kernel is None:
            raise LmlabError(
                f"the fast decoding kernel did not compile ({self.error}); "
                f"set {ENV}=0 to decode with PyTorch only"
            )
        return self.kernel


_LOADERS: dict[tuple[str, ...], _KernelLoader] = {}
_BLAS: list = []  # threadpoolctl's controller of the loaded BLAS libraries, made once


def _one_blas_thread():
    """A context in which BLAS runs on one thread: the kernel's attention calls it (numba's
    ``np.dot``) for products too small to share, and OpenBLAS would otherwise hand larger
    ones to its spinning thread pool from inside a single-threaded kernel."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


_LOADERS_LOCK = threading.Lock()


def _kernel_threads() -> int:
    """Threads for the step's block products: PyTorch's thread count (capped by numba's
    pool), where numba's threading layer is OpenMP or TBB; 1 with its ``workqueue`` layer,
    which aborts the process when two Python threads run parallel code at once (the
    server's worker and a request's thread could)."""
    import numba

    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads > 1:
        if not _THREADING:
            from numba.np.ufunc import parallel

            parallel._launch_threads()
            _THREADING.append(numba.threading_layer())
        if _THREADING[0] not in ("omp", "tbb"):
            return 1
    numba.set_num_threads(threads)
    return threads


_THREADING: list[str] = []  # numba's threading layer, once started


def _loader(key: tuple[str, ...]) -> _KernelLoader:
    with _LOADERS_LOCK:
        if key not in _LOADERS:
            _LOADERS[key] = _KernelLoader(key)
        return _LOADERS[key]


def kernel_ready(weights: str = "float32") -> bool:
    """Whether the compiled kernel for dense ``weights`` (float32 or bfloat16) is loaded
    (starts loading it if not)."""
    loader = _loader((weights,) * 6)
    loader.start()
    return loader.ready


def enabled() -> bool:
    """Whether the fast path is allowed (``LMLAB_FAST_DECODE`` is not 0/false/no/off)."""
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).numpy()


def _wnp(t: torch.Tensor) -> np.ndarray:
    """A weight as the kernel reads it: float32, or bfloat16 as its bits (uint16); a view
    of the tensor's memory where it is contiguous."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    return np.ascontiguousarray(_np(t))


def _bias(b: torch.Tensor | None, n: int) -> np.ndarray:
    return np.zeros(n, np.float32) if b is None else np.ascontiguousarray(_np(b))


def _signature(model: Transformer, modules: list | None = None) -> tuple | None:
    """Identity and in-place version of every parameter; None when untrackable (inference
    tensors have no version counter), which means: export again. ``modules``: the model's
    ``modules()`` when the caller has them."""
    try:  # the modules' own parameter tables: a tenth of the cost of model.parameters()
        return tuple(
            (p.data_ptr(), p._version)
            for m in (model.modules() if modules is None else modules)
            for p in m._parameters.values()
            if p is not None
        )
    except RuntimeError:
        return None


def register_gguf(model: Transformer, path: str | Path) -> None:
    """Record that ``model``'s float32 weights are, right now, exactly the dequantisation
    of GGUF file ``path`` (as :mod:`lmlab.interop.gguf_import` reads it): its fast decoder
    may then read the file's blocks instead, for as long as no parameter changes."""
    _GGUF[model] = (Path(path), _signature(model))


def _gguf_blocks(model: Transformer, signature: tuple | None) -> dict:
    src = _GGUF.get(model)
    if src is None or signature is None or src[1] != signature or not src[0].is_file():
        return {}
    if _dense_dtype(model) != torch.float32:
        return {}
    from lmlab.generate.gguf_blocks import block_matrices

    try:
        return block_matrices(model, src[0])
    except Exception:  # noqa: BLE001 - an unreadable file: decode from the float weights
        return {}


def _dense_dtype(model: Transformer) -> torch.dtype:
    """The type of the model's float weights (its final norm's: a quantised model keeps
    norms, biases and any unquantised matrix in float)."""
    return model.ln_f.weight.dtype


def _quantised(module: object) -> bool:
    quant = sys.modules.get("lmlab.quantize.modules")  # not imported: nothing is quantised
    return quant is not None and isinstance(module, quant._QuantMatrix)


def _quant_matrix(model: Transformer, mods: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's ``(w, d, m)`` of quantised layers (:mod:`lmlab.quantize`), stacked over
    layers: views of the model's own stacked memory where its layers share one, else a
    stacked copy of the quantised bytes."""
    for w, d, m in getattr(model, "_quant_stacks", {}).values():
        if len(w) == len(mods) and all(
            w[i].data_ptr() == q.w.data_ptr() and d[i].data_ptr() == q.d.data_ptr()
            for i, q in enumerate(mods)
        ):
            return w.numpy(), d.numpy().view(np.uint16), m.numpy().view(np.uint16)
    parts = [q.kernel_arrays() for q in mods]
    return tuple(np.ascontiguousarray(np.stack(p)) for p in zip(*parts, strict=True))


def _host_has_vnni() -> bool:
    from llvmlite import binding

    try:
        return bool(binding.get_host_cpu_features().get("avx512vnni"))
    except RuntimeError:  # pragma: no cover - unknown host
        return False


def int8_activations(kinds: tuple[str, ...], quantised: bool) -> bool:
    """Whether the step multiplies 4- and 8-bit matrices by activations rounded to int8 per
    block of 32 (:mod:`lmlab.generate._int8_products`), as llama.cpp does: by
    default for a quantised model (:mod:`lmlab.quantize`) where the CPU has AVX-512 VNNI,
    about 1.5x faster than widening its weights to float32. A float model that decodes from
    a GGUF file's blocks keeps float32 activations, so its logits stay the float model's.
    ``LMLAB_INT8_ACTIVATIONS=0`` or ``1`` decides otherwise."""
    if not {"Q4", "Q8", "I8"} & set(kinds):
        return False
    env = os.environ.get(ACT8_ENV, "").strip().lower()
    if env:
        return env not in _OFF
    return quantised and _host_has_vnni()


def _kind_of(w: np.ndarray, stacked: bool) -> str:
    """The kernel's name for a matrix of weights ``w``: dense, Q4, Q8 or I8."""
    if w.dtype == np.uint8:
        return "Q4"
    if w.dtype == np.int8:
        return "I8" if w.ndim == 3 + stacked else "Q8"
    return "float32" if w.dtype == np.float32 else "bfloat16"


class FastDecoder:
    """The exported weights of one Transformer and its compiled decoding step."""

    def __init__(self, model: Transformer) -> None:
        self.config = cfg = model.config
        self.signature = _signature(model)
        dense = _TORCH_TYPES[_dense_dtype(model)]
        blocks = _gguf_blocks(model, self.signature)
        d, llama, layers = cfg.d_model, cfg.block == "llama", list(model.blocks)
        n = len(layers)
        with torch.no_grad():

            def stack(fn) -> np.ndarray:
                return np.ascontiguousarray(np.stack([fn(b) for b in layers]))

            def norm_b(m) -> np.ndarray:
                return _bias(getattr(m, "bias", None), d)

            def matrix(kind: str, layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                """Blocks from the GGUF file, quantised layers' own memory, or the dense
                weights in tiles (``layer(block)``: the linear layer of a block)."""
                if kind in blocks:
                    return blocks[kind]
                if kind == "head" and _quantised(model.head):
                    return model.head.kernel_arrays()
                if kind != "head" and _quantised(layer(layers[0])):
                    return _quant_matrix(model, [layer(b) for b in layers])

                def weight(b):
                    return (model.head if b is None else layer(b)).weight

                if kind == "head":
                    return (tiles_of_rows(_wnp(weight(None))), *_dummy_matrix(dense, None)[1:])
                first = tiles_of_rows(_wnp(weight(layers[0])))
                w = np.empty((n, *first.shape), first.dtype)
                w[0] = first
                for i, b in enumerate(layers[1:], 1):
                    w[i] = tiles_of_rows(_wnp(weight(b)))
                return (w, *_dummy_matrix(dense, n)[1:])

            # a quantised embedding: the rows a step reads are dequantised before it
            self.qemb = model.tok_emb if _quantised(model.tok_emb) else None
            self.tok_emb = (
                np.zeros((1, 1), np.float32)
                if self.qemb is not None
                else _wnp(model.tok_emb.weight)
            )
            dummy = np.zeros((1, 1), np.float32)
            self.pos_emb = dummy if llama else np.ascontiguousarray(_np(model.pos_emb.weight))
            self.rope_cos = np.ascontiguousarray(_np(model.rope_cos)) if llama else dummy
            self.rope_sin = np.ascontiguousarray(_np(model.rope_sin)) if llama else dummy
            self.ln1_w = stack(lambda b: _np(b.ln1.weight))
            self.ln1_b = stack(lambda b: norm_b(b.ln1))
            self.qkv = matrix("qkv", lambda b: b.attn.qkv)
            self.qkv_b = stack(lambda b: _bias(b.attn.qkv.bias, b.attn.qkv.out_features))
            self.proj = matrix("proj", lambda b: b.attn.proj)
            self.proj_b = stack(lambda b: _bias(b.attn.proj.bias, d))
            if cfg.mlp:
                fc = (lambda b: b.mlp.gate_up) if llama else (lambda b: b.mlp.fc)
                self.ln2_w = stack(lambda b: _np(b.ln2.weight))
                self.ln2_b = stack(lambda b: norm_b(b.ln2))
                self.fc = matrix("fc", fc)
                self.fc_b = stack(lambda b: _bias(fc(b).bias, fc(b).out_features))
                self.fc2 = matrix("fc2", lambda b: b.mlp.proj)
                self.fc2_b = stack(lambda b: _bias(b.mlp.proj.bias, d))
            else:  # attention-only blocks: the kernel skips these
                self.ln2_w = self.ln2_b = self.fc_b = self.fc2_b = np.zeros((n, 1), np.float32)
                self.fc = self.fc2 = _dummy_matrix(dense, n)
            self.lnf_w = np.ascontiguousarray(_np(model.ln_f.weight))
            self.lnf_b = norm_b(model.ln_f)
            self.head = matrix("head", None)
        self.kinds = tuple(_kind_of(getattr(self, k)[0], k != "head") for k in MATRICES)
        emb = "float32" if self.qemb is not None else _TORCH_TYPES[model.tok_emb.weight.dtype]
        self.loader = _loader((emb, *self.kinds))
        self.loader.start()
        self.cfg = np.array(
            [
                cfg.n_head,
                cfg.kv_heads,
                cfg.head_dim,
                int(llama),
                int(cfg.gelu_approximate == "tanh"),
                int(cfg.mlp),
                cfg.ff_dim if cfg.mlp else 0,
                int(int8_activations(self.kinds, any(map(_quantised, model.modules())))),
                1,  # threads: set by each call
            ],
            dtype=np.int64,
        )
        self.eps = float(cfg.norm_eps)
        # products that can share their tiles among threads: int8-activation ones, and
        # float32 ones on 4- and 8-bit blocks (dense float matrices stay on one thread)
        self._threaded = bool(self.cfg[-2]) or bool({"Q4", "Q8"} & set(self.kinds))

    @property
    def nbytes(self) -> int:
        """Bytes of the exported weights (the matrices read at every step)."""
        return sum(a.nbytes for k in MATRICES for a in getattr(self, k))

    def new_state(self, batch_size: int, capacity: int | None = None) -> KVCache:
        """An empty KV cache that both this decoder and the model's forward can extend:
        each layer's keys and values are views of one (L, B, n_kv, capacity, hd) tensor,
        grown on demand (:meth:`KVCache.reserve`) up to the context length."""
        cfg: TransformerConfig = self.config
        state = KVCache(cfg, 0, "cpu", torch.float32, capacity)  # batch 0: allocates nothing
        shape = (cfg.n_layer, batch_size, cfg.kv_heads, state.capacity, cfg.head_dim)
        k, v = torch.zeros(shape), torch.zeros(shape)
        state.k, state.v = list(k.unbind(0)), list(v.unbind(0))
        state._fast_kv = (state.k, state.v, k.numpy(), v.numpy())
        return state

    @property
    def ready(self) -> bool:
        """Whether the kernel is loaded; until then :meth:`step` would wait for it."""
        return self.loader.ready

    def owns(self, state: object) -> bool:
        """Whether ``state`` came from :meth:`new_state` and still holds that memory."""
        kv = getattr(state, "_fast_kv", None)
        return kv is not None and kv[0] is state.k and kv[1] is state.v

    def step(self, ids: torch.Tensor, state: KVCache) -> torch.Tensor:
        """Feed one token per row (``ids`` of shape (B,) or (B, 1)); returns the next-token
        logits (B, V) and advances ``state`` as ``model(ids[:, None], state)`` would."""
        kc = self._cache_of(state)
        ids_np = ids.reshape(-1).numpy()
        if ids_np.dtype != np.int64 or not ids_np.flags.c_contiguous:
            ids_np = np.ascontiguousarray(ids_np, dtype=np.int64)
        n = ids_np.shape[0]
        if n != kc.shape[1]:
            raise LmlabError(f"{n} token ids for a KV cache of {kc.shape[1]} rows")
        rows = self._rows(n)
        if state.lengths is None:
            pos = np.full(n, state.pos, dtype=np.int64)
        else:
            pos = np.ascontiguousarray(state.lengths.numpy(), dtype=np.int64)
        if n and 0 <= int(pos.max()) < self.config.context_length:
            state.reserve(int(pos.max()) + 1)
        out = self._run(ids_np, rows, pos, rows, state)
        if state.lengths is None:
            state.pos += 1
        else:
            state.lengths = state.lengths + 1
            state.pos = int(state.lengths.max())
        return out

    def prefill(self, ids: torch.Tensor, state: KVCache) -> torch.Tensor:
        """Feed a chunk ``ids`` (B, T) after the ``state.pos`` cached tokens of every row;
        returns the logits after its last token (B, V), as ``model(ids, state)[:, -1]``.
        Faster than PyTorch only for short chunks (B*T up to ~16 on a 4x128 model): the
        engine prefills with PyTorch."""
        kc = self._cache_of(state)
        if state.lengths is not None:
            raise LmlabError("a ragged KV cache takes one token per row at a time")
        ids_np = np.ascontiguousarray(ids.numpy(), dtype=np.int64)
        (n, t), ctx = ids_np.shape, self.config.context_length
        if n != kc.shape[1]:
            raise LmlabError(f"{n} rows of token ids for a KV cache of {kc.shape[1]} rows")
        if state.pos + t > ctx:
            raise LmlabError(f"sequence of {state.pos + t} tokens exceeds the context length {ctx}")
        state.reserve(state.pos + t)
        rows = np.repeat(self._rows(n), t)
        pos = np.tile(np.arange(state.pos, state.pos + t, dtype=np.int64), n)
        out = self._run(ids_np.reshape(-1), rows, pos, self._rows(n) * t + (t - 1), state)
        state.pos += t
        return out

    @staticmethod
    def _rows(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def _cache_of(self, state: KVCache) -> np.ndarray:
        if not self.owns(state):
            raise LmlabError("this KV cache was not made by FastDecoder.new_state; use it")
        return state._fast_kv[2]

    def _run(self, ids, rows, pos, keep, state: KVCache) -> torch.Tensor:
        _, _, kc, vc = state._fast_kv
        vocab, ctx = self.config.vocab_size, self.config.context_length
        out = np.empty((keep.shape[0], vocab), np.float32)
        tok_emb = self.tok_emb
        if self.qemb is not None:  # the kernel reads the dequantised rows as its table
            if ids.size and not (ids.min() >= 0 and ids.max() < vocab):
                ids = np.full_like(ids, -1)  # the kernel reports it
            else:
                tok_emb = self.qemb.rows(torch.from_numpy(ids)).numpy()
                ids = np.arange(ids.shape[0], dtype=np.int64)
        kernel = self.loader.wait()
        self.cfg[-1] = _kernel_threads() if self._threaded else 1
        with _one_blas_thread():
            status = kernel(
                ids,
                rows,
                pos,
                keep,
                tok_emb,
                self.pos_emb,
                self.ln1_w,
                self.ln1_b,
                *self.qkv,
                self.qkv_b,
                *self.proj,
                self.proj_b,
                self.ln2_w,
                self.ln2_b,
                *self.fc,
                self.fc_b,
                *self.fc2,
                self.fc2_b,
                self.lnf_w,
                self.lnf_b,
                *self.head,
                self.rope_cos,
                self.rope_sin,
                kc,
                vc,
                self.cfg,
                self.eps,
                out,
            )
        if status:
            raise LmlabError(
                f"token id out of range for a vocabulary of {vocab}, or a row would exceed "
                f"the context length {ctx} (positions {pos.tolist()})"
            )
        return torch.from_numpy(out)


def _bypassed_layers(modules: list[torch.nn.Module]) -> bool:
    """Forward hooks, or a layer replaced by another library's (e.g. peft's LoRA wrappers
    around the linears during LoRA training): the kernel would skip the hooks and read only
    the wrapped base weights."""
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(
        m._forward_hooks or m._forward_pre_hooks or not type(m).__module__.startswith(_OWN)
        for m in modules
    )


_OWN = ("torch.", "lmlab.")


def fast_decoder(model: object, allow: bool | None = None, rows: int = 1) -> FastDecoder | None:
    """The model's :class:`FastDecoder` when the fast path applies (and pays), else None.

    It applies to a plain :class:`Transformer` in eval mode with CPU weights all float32 or
    all bfloat16, no autocast, no forward hooks and no layers of other libraries (which it
    would bypass), decoding at most ``MAX_ROWS`` ``rows``, unless ``allow`` is False (or
    None and ``LMLAB_FAST_DECODE=0``). The export is cached per model and redone when a
    parameter changes (in place or replaced).
    """
    if not (enabled() if allow is None else allow) or rows > MAX_ROWS:
        return None
    if type(model) is not Transformer or model.training or torch.is_autocast_enabled("cpu"):
        return None
    modules = list(model.modules())
    if _bypassed_layers(modules):
        return None
    sig = _signature(model, modules)
    cached = _CACHE.get(model)
    if cached is not None and sig is not None and cached.signature == sig:
        return cached  # the same tensors, unchanged: the checks below passed for them
    dtype = _dense_dtype(model)
    if dtype not in _TORCH_TYPES:
        return None
    for p in model.parameters():
        if p.device.type != "cpu" or p.dtype != dtype:
            return None
    if importlib.util.find_spec("numba") is None:  # pragma: no cover
        return None
    if _loader((_TORCH_TYPES[dtype],) * 6).failed:  # pragma: no cover
        return None
    fast = FastDecoder(model)
    _CACHE[model] = fast
    return fast
