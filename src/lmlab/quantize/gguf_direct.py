"""A GGUF file's Q4_0 / Q4_1 / Q8_0 tensors as lmlab's quantised matrices, with no float
round trip.

llama.cpp's blocks already are lmlab's quantised forms (:mod:`lmlab.quantize.scheme`):
a Q4_1 block (float16 ``d``, ``m``, 16 bytes of nibbles) is int4 group 32 asymmetric,
``W = d q + m``, in the same nibble order; Q4_0 (``d``, nibbles, ``W = d (q - 8)``) is
int4 group 32 symmetric (``z = -8 d``, exact in float16, so a Q4_0 tensor can also join
an asymmetric matrix); Q8_0 (``d``, 32 signed bytes, ``W = d q``) is int8 in blocks of 32,
which the decoding kernel reads as it is (lmlab's own int8 is per channel). So the
quantised tensors are cut straight from the file's bytes with numpy views: no float
matrix of a mapped tensor ever exists.

Which GGUF rows make which lmlab matrix (query/key/value concatenated, llama.cpp's RoPE row
permutation of the query and key undone, gate and up concatenated) is taken from
:mod:`lmlab.interop.gguf_import`'s own mapping, run on arrays of *row indices* instead of
weights: the mapping is then the float import's by construction, and a permutation moves
whole block rows, never values.

Two uses:

* :func:`open_gguf_quantized` (``--quantized`` on generate, eval, chat and serve): the
  model in memory, its matrices in the kernels' layout (prefill through ``QuantLinear``,
  decoding through the fused kernel). A kind of matrix (query-key-value, projection, MLP
  in, MLP out, embedding, head) whose tensors are of another type (F16, F32, K-quants) in
  any layer is read as float for that kind only, with one counted warning.
* :func:`quantized_tensors` (``lmlab quantize`` from a GGUF file): the quantised run's
  ``model.safetensors``; blocks that already are the requested scheme (int4 g32: Q4_1 ->
  asymmetric, Q4_0 -> symmetric or asymmetric) are written as they are, every other
  matrix is dequantised and re-quantised a slice of rows at a time (e.g. the Q8_0 token
  embedding into the default int8 per-channel embedding).

Tensors are read with ``readinto`` from the file, one at a time, not through a memory map:
pages of a mapped file count in the process's resident memory, the page cache does not.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.quantize.scheme import BLOCK, QuantTensor, Scheme, quantize_matrix

DIRECT = ("Q4_0", "Q4_1", "Q8_0")
_BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}
ROWS_PER_SLICE = 4096  # rows dequantised at once when a matrix is re-quantised


@dataclass
class Matrix:
    """One lmlab matrix (``name``: its module) as rows of GGUF tensors: output row ``r`` is
    row ``rows[r]`` of tensor ``parts[ids[r]]``."""

    name: str
    parts: list[str]
    ids: np.ndarray
    rows: np.ndarray
    types: set[str] = field(default_factory=set)

    @property
    def kind(self) -> str:
        """The matrix with its layer number dropped (``attn.qkv``, ``tok_emb``...)."""
        return self.name.split(".", 2)[2] if self.name.startswith("blocks.") else self.name


def _representation(types: set[str]) -> tuple[int, bool] | None:
    """``(bits, symmetric)`` that holds tensors of ``types`` exactly, or None."""
    if types <= {"Q4_0"}:
        return 4, True
    if types <= {"Q4_0", "Q4_1"}:
        return 4, False
    if types == {"Q8_0"}:
        return 8, True
    return None


class GGUFTensors:
    """The tensor table of a GGUF file and its tensors' bytes, read on request."""

    def __init__(self, path: Path, reader) -> None:
        self.path = path
        self.tensors = {t.name: t for t in reader.tensors}

    def type(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def _offset(self, name: str) -> int:
        """Where the tensor's data starts in the file (its view's distance from the map)."""
        data = self.tensors[name].data
        base = data
        while not isinstance(base, np.memmap):
            base = base.base
        return int(base.offset) + data.ctypes.data - base.ctypes.data

    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored: (rows, bytes per row) uint8 for block types, (rows, cols)
        float for F16/F32; a fresh array read from the file."""
        t = self.tensors[name]
        out = np.empty(t.data.shape, t.data.dtype)
        with open(self.path, "rb") as f:
            f.seek(self._offset(name))
            if f.readinto(memoryview(out.reshape(-1).view(np.uint8))) != out.nbytes:
                raise LmlabError(f"{self.path}: tensor {name} is truncated; download it again")
        return out

    def dequantised(self, name: str, raw: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``raw`` (default: the whole tensor) as float32 (rows, cols)."""
        import gguf

        t = self.tensors[name]
        raw = self.raw(name) if raw is None else raw
        arr = gguf.quants.dequantize(np.ascontiguousarray(raw), t.tensor_type)
        return np.asarray(arr, np.float32).reshape(raw.shape[0], -1)


def header(path: str | Path):
    """``(Imported without tensors, GGUFTensors)`` of a GGUF file."""
    from lmlab.interop.gguf_import import read_gguf_header

    path = Path(path)
    imp, reader = read_gguf_header(path)
    return imp, GGUFTensors(path, reader)


def layout(imp, g: GGUFTensors) -> tuple[dict[str, Matrix], dict[str, np.ndarray]]:
    """The float import's mapping applied to row indices: every 2-D tensor lmlab reads, as a
    :class:`Matrix` of GGUF rows, and the 1-D tensors (norms, biases) as float32 values."""
    from lmlab.interop.gguf_import import _map_gpt2, _map_llama

    names = list(g.tensors)
    stand_in: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        t = g.tensors[name]
        if t.data.ndim == 2:
            rows = np.arange(t.data.shape[0], dtype=np.int64)
            stand_in[name] = np.stack([np.full_like(rows, i), rows], 1)
        else:
            stand_in[name] = np.asarray(g.dequantised(name), np.float32).reshape(-1)
    mapping = _map_gpt2 if imp.source["architecture"] == "gpt2" else _map_llama
    try:
        mapped = mapping(stand_in, imp.config, g.path)
    except KeyError as e:
        raise LmlabError(f"{g.path} lacks tensor {e.args[0]}; the file is incomplete") from None
    except ValueError as e:
        raise LmlabError(f"{g.path} has a malformed tensor ({e}); the file is corrupt") from None
    matrices, floats = {}, {}
    for key, arr in mapped.items():
        if arr.ndim == 2 and arr.dtype == np.int64:
            ids, local = np.unique(arr[:, 0], return_inverse=True)
            parts = [names[i] for i in ids]
            m = Matrix(key.removesuffix(".weight"), parts, local.reshape(-1), arr[:, 1])
            m.types = {g.type(p) for p in parts}
            matrices[m.name] = m
        else:
            floats[key] = np.ascontiguousarray(arr, np.float32)
    return matrices, floats


def _blocks(raw: np.ndarray, qtype: str, symmetric: bool):
    """``(q, d, z)`` numpy arrays of a tensor's raw block rows (out, bytes): ``q`` uint8
    nibbles (out, in/2) or int8 (out, in), ``d`` and ``z`` float16 (out, in/32), ``z`` None
    when symmetric. Views of ``raw`` cut into contiguous arrays; no float values."""
    b = raw.reshape(raw.shape[0], -1, _BLOCK_BYTES[qtype])
    d = np.ascontiguousarray(b[..., 0:2]).view(np.float16)[..., 0]
    if qtype == "Q4_1":
        if symmetric:
            raise ValueError("Q4_1 blocks are asymmetric")
        z = np.ascontiguousarray(b[..., 2:4]).view(np.float16)[..., 0]
        return b[..., 4:].reshape(raw.shape[0], -1), d, z
    if qtype == "Q4_0":  # d (q - 8) = d q + (-8 d), exactly (a power-of-two multiple)
        z = None if symmetric else d * np.float16(-8)
        return b[..., 2:].reshape(raw.shape[0], -1), d, z
    return b[..., 2:].reshape(raw.shape[0], -1).view(np.int8), d, None


def direct_tensor(m: Matrix, g: GGUFTensors, symmetric: bool) -> QuantTensor:
    """The quantised form of matrix ``m`` cut from its tensors' blocks (Q4_0/Q4_1 as int4
    g32, asymmetric unless ``symmetric``; Q8_0 as int8 in blocks of 32)."""
    q = d = z = None
    for i, part in enumerate(m.parts):
        sel = np.nonzero(m.ids == i)[0]
        pq, pd, pz = _blocks(g.raw(part), g.type(part), symmetric)
        rows = m.rows[sel]  # a row permutation moves whole blocks
        if len(m.parts) == 1 and np.array_equal(rows, np.arange(len(rows))):
            q, d, z = pq, pd, pz  # the tensor as it is: no second copy
            break
        if q is None:
            q = np.empty((len(m.ids), pq.shape[1]), pq.dtype)
            d = np.empty((len(m.ids), pd.shape[1]), np.float16)
            z = None if pz is None else np.empty_like(d)
        if pq.shape[1] != q.shape[1] or pq.dtype != q.dtype or (pz is None) != (z is None):
            raise LmlabError(f"{g.path}: the tensors of {m.name} do not fit together")
        q[sel], d[sel] = pq[rows], pd[rows]
        if z is not None:
            z[sel] = pz[rows]
        del pq, pd, pz
    n_in = d.shape[1] * BLOCK
    t = torch.from_numpy
    return QuantTensor(t(q), t(d), None if z is None else t(z), len(m.ids), n_in)


def float_rows(m: Matrix, g: GGUFTensors, raws: dict, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of matrix ``m`` dequantised to float32 (``raws``: the parts' raw
    tensors, read once by the caller)."""
    out = None
    for i, part in enumerate(m.parts):
        sel = np.nonzero(m.ids[lo:hi] == i)[0]
        if not len(sel):
            continue
        rows = g.dequantised(part, raws[part][m.rows[lo:hi][sel]])
        if out is None:
            out = np.empty((hi - lo, rows.shape[1]), np.float32)
        out[sel] = rows
    return out


def float_matrix(m: Matrix, g: GGUFTensors) -> torch.Tensor:
    raws = {p: g.raw(p) for p in m.parts}
    return torch.from_numpy(float_rows(m, g, raws, 0, len(m.ids)))


def _target_names(config) -> list[str]:
    from lmlab.models.transformer import Transformer
    from lmlab.quantize.runs import linear_names

    with torch.device("meta"):
        names = linear_names(Transformer(config))
    return [*names, "tok_emb", *([] if config.tie_embeddings else ["head"])]


def plan(imp, matrices: dict[str, Matrix]) -> tuple[dict[str, tuple[int, bool]], Counter]:
    """Which matrices map directly, as ``(bits, symmetric)``; each kind of matrix (all its
    layers) maps as one, so that the decoding kernel reads one layout per kind. Returns
    also the types of the matrices left in float, counted."""
    by_kind: dict[str, list[Matrix]] = {}
    for name in _target_names(imp.config):
        by_kind.setdefault(matrices[name].kind, []).append(matrices[name])
    direct, left = {}, Counter()
    for ms in by_kind.values():
        rep = _representation(set().union(*(m.types for m in ms)))
        for m in ms:
            if rep is None:
                left.update(m.types - set(DIRECT) or m.types)
            else:
                direct[m.name] = rep
    return direct, left


def open_gguf_quantized(path: str | Path):
    """``(Imported without tensors, model)``: the Transformer of a GGUF file whose Q4_0 /
    Q4_1 / Q8_0 matrices are the file's blocks (see the module docstring)."""
    from lmlab.quantize.runs import assemble

    imp, g = header(path)
    matrices, floats = layout(imp, g)
    direct, left = plan(imp, matrices)
    types = imp.source["tensor_types"]
    if not direct:
        raise LmlabError(
            f"{g.path} has no Q4_0, Q4_1 or Q8_0 matrices to open quantised (its tensors: "
            f"{types}); open it without --quantized, or quantise it with lmlab quantize"
        )
    tensors = {k: torch.from_numpy(v) for k, v in floats.items()}
    for name in _target_names(imp.config):
        if name not in direct:
            tensors[name + ".weight"] = float_matrix(matrices[name], g)
    for key, m in matrices.items():  # 2-D tensors that are not matrices (learned positions)
        if key not in direct and key + ".weight" not in tensors:
            tensors[key + ".weight"] = float_matrix(m, g)
    if left:
        n = sum(1 for k in _target_names(imp.config) if k not in direct)
        print(
            f"lmlab: warning: {n} matrices of {g.path.name} are not Q4_0/Q4_1/Q8_0 in every "
            f"layer ({', '.join(f'{t} x{c}' for t, c in left.most_common())}): read as float32",
            file=sys.stderr,
        )

    def quantised():
        for name, (bits, symmetric) in direct.items():
            yield name, direct_tensor(matrices[name], g, symmetric), bits

    model = assemble(imp.config, quantised(), tensors, g.path)
    kinds = Counter(b for b in direct.values())
    imp.source["computed_as"] = (
        f"float32 on the file's own blocks ({kinds[(4, False)] + kinds[(4, True)]} int4 and "
        f"{kinds[(8, True)]} int8 matrices"
        + (f"; {len(_target_names(imp.config)) - len(direct)} read as float32)" if left else ")")
    )
    return imp, model


def _direct_under(m: Matrix, scheme: Scheme) -> bool:
    """Whether matrix ``m``'s blocks already are ``scheme`` (int4 g32)."""
    if scheme.bits != 4 or scheme.group_size != BLOCK:
        return False
    return m.types <= ({"Q4_0"} if scheme.symmetric else {"Q4_0", "Q4_1"})


def quantized_tensors(path: str | Path, scheme: Scheme, progress: bool = True):
    """``(Imported without tensors, n_params, tensors)``: the ``model.safetensors`` of GGUF
    file ``path`` quantised under ``scheme`` (see the module docstring), and how many of its
    matrices were written straight from the file's blocks (``imp.source["direct"]``)."""
    from tqdm import tqdm

    from lmlab.models.transformer import Transformer
    from lmlab.quantize.runs import _scheme_of, _targets

    imp, g = header(path)
    matrices, floats = layout(imp, g)
    with torch.device("meta"):
        meta = Transformer(imp.config)
    n_params = meta.num_params()
    targets = _targets(meta, scheme)
    for name in targets:
        _scheme_of(scheme, name).check_width(name, meta.get_submodule(name).weight.shape[1])
    out: dict[str, torch.Tensor] = {}
    skip = {f"{n}.weight" for n in targets}
    if imp.config.tie_embeddings and scheme.embeddings:
        skip.add("head.weight")
    for key in meta.tensors_for_save():
        if key in skip:
            continue
        if key in floats:
            out[key] = torch.from_numpy(floats[key])
        elif key.removesuffix(".weight") in matrices:
            out[key] = float_matrix(matrices[key.removesuffix(".weight")], g)
        else:
            raise LmlabError(f"{g.path} lacks the tensor of {key}; the file is incomplete")
    direct = 0
    bar = tqdm(targets, desc=f"quantising ({scheme.name})", unit="matrix", disable=not progress)
    for name in bar:
        m, s = matrices[name], _scheme_of(scheme, name)
        if _direct_under(m, s):
            qt = direct_tensor(m, g, s.symmetric)
            direct += 1
        else:  # re-quantised a slice of rows at a time (every scheme is row-local)
            raws, n = {p: g.raw(p) for p in m.parts}, len(m.ids)
            pieces = []
            for lo in range(0, n, ROWS_PER_SLICE):
                w = float_rows(m, g, raws, lo, min(n, lo + ROWS_PER_SLICE))
                pieces.append(quantize_matrix(torch.from_numpy(w), s, name))
            del raws
            qt = QuantTensor(
                torch.cat([p.qweight for p in pieces]),
                torch.cat([p.scales for p in pieces]),
                None if pieces[0].zeros is None else torch.cat([p.zeros for p in pieces]),
                len(m.ids),
                pieces[0].in_features,
            )
        out[f"{name}.qweight"], out[f"{name}.scales"] = qt.qweight, qt.scales
        if qt.zeros is not None:
            out[f"{name}.zeros"] = qt.zeros
    imp.source["direct"] = direct
    return imp, n_params, out
