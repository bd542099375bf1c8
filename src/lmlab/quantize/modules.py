"""Layers that hold quantised weights and compute with them: :class:`QuantLinear`,
:class:`QuantEmbedding`.

A quantised matrix lives in memory in the decoding kernel's own layout (tiles of
``TILE`` outputs, see :mod:`lmlab.generate._fastdecode_kernels`), so the one-call decoding
step reads the same bytes as these layers and nothing is ever held twice:

* int4: ``w`` uint8 (n_tiles, in/32, 16, T) nibbles, ``d`` and ``m`` (n_tiles, in/32, T)
  float16 bits, ``W[o, 32k + i] = d * q + m`` (a group of 64 or 128 inputs repeats its
  scale and zero point over its 32-input blocks);
* int8: ``w`` int8 (n_tiles, in, T), ``d`` and ``m`` (n_tiles, T) float16 bits,
  ``W[o, i] = d[o] * q + m[o]``;
* int8 in blocks of 32 inputs (a GGUF file's Q8_0, opened directly by
  :mod:`lmlab.quantize.gguf_direct`): ``w`` int8 (n_tiles, in/32, 32, T), ``d``
  (n_tiles, in/32, T), ``m`` zeros, ``W[o, 32k + i] = d * q``.

The scale tensors are kept as int16 bit patterns so that ``model.to(dtype)`` leaves them
alone. Forward: a few rows of float32 input (decoding outside the fused kernel) go
through the kernel's own matrix product; more rows (prefill, evaluation, batches)
dequantise this one matrix, transiently, and call ``F.linear`` - the model never holds a
float copy of its quantised weights. ``.weight`` dequantises on demand, for analysis code
(logit lens, probes) that reads a matrix.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmlab.quantize.scheme import BLOCK, QuantTensor, offsets

TILE = 64  # outputs per tile; the same as lmlab.generate.gguf_blocks.TILE
KERNEL_ROWS = 16  # up to this many input rows use the kernel's matrix product
CHUNK_WEIGHTS = 1 << 22  # the most weights dequantised at once by a forward (16 MB float32)


def _tiles(a: np.ndarray) -> np.ndarray:
    from lmlab.generate.gguf_blocks import tiles_of_rows

    return tiles_of_rows(a)


def _bits16(t: torch.Tensor) -> np.ndarray:
    return t.contiguous().view(torch.int16).numpy()


def kernel_layout(t: QuantTensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w, d, m)`` in the kernel's tiles from a matrix's on-disk form."""
    z = offsets(t.scales, t.zeros, bits)
    s16, z16 = _bits16(t.scales), _bits16(z)
    if bits == 4:
        rep = t.in_features // t.scales.shape[1] // BLOCK  # blocks per group
        w = _tiles(t.qweight.numpy().reshape(t.out_features, -1, BLOCK // 2))
        d, m = (_tiles(np.repeat(a, rep, axis=1)) for a in (s16, z16))
    elif t.scales.shape[1] > 1:  # int8 in blocks of 32 (Q8_0): the kernel's 8-bit blocks
        if t.in_features != BLOCK * t.scales.shape[1] or t.zeros is not None:
            raise ValueError("grouped int8 must be symmetric blocks of 32 inputs (Q8_0)")
        w = _tiles(t.qweight.numpy().reshape(t.out_features, -1, BLOCK))
        d, m = _tiles(s16), _tiles(z16)
    else:
        w = _tiles(t.qweight.numpy())
        d, m = _tiles(s16[:, 0]), _tiles(z16[:, 0])
    return torch.from_numpy(w), torch.from_numpy(d), torch.from_numpy(m)


def _float_weight_hook(module, state_dict, prefix, local_metadata) -> None:
    state_dict[prefix + "weight"] = module.dequantize(torch.float32)


class _QuantMatrix(nn.Module):
    """A quantised (out, in) matrix in the kernel layout (see the module docstring)."""

    def __init__(self, out_features: int, in_features: int, bits: int, w, d, m) -> None:
        super().__init__()
        self.out_features, self.in_features, self.bits = out_features, in_features, bits
        self.register_buffer("w", w, persistent=False)
        self.register_buffer("d", d, persistent=False)
        self.register_buffer("m", m, persistent=False)
        # state_dict() shows the float model (what export and fine-tuning read), dequantised
        # on request; loading never goes through it
        self.register_state_dict_post_hook(_float_weight_hook)

    @property
    def kind(self) -> str:
        """The kernel's name for this kind of matrix: ``Q4``, ``Q8`` (int8 blocks of 32)
        or ``I8`` (int8 per channel)."""
        if self.bits == 4:
            return "Q4"
        return "Q8" if self.w.ndim == 4 else "I8"

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(w, d, m)`` as numpy views for the kernel (float16 bits as uint16)."""
        return self.w.numpy(), self.d.numpy().view(np.uint16), self.m.numpy().view(np.uint16)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.w, self.d, self.m))

    def _scales(self, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d.view(torch.float16).to(dtype), self.m.view(torch.float16).to(dtype)

    def dequantize(
        self, dtype: torch.dtype = torch.float32, tiles: slice = slice(None)
    ) -> torch.Tensor:
        """The matrix (out, in) in ``dtype`` (or the outputs of ``tiles``): a transient copy."""
        if dtype in (torch.float32, torch.bfloat16) and self.w.device.type == "cpu":
            return self._dequantize_kernel(tiles).to(dtype)
        d, m = self._scales(dtype)
        d, m, qw = d[tiles], m[tiles], self.w[tiles]
        if self.w.ndim == 4:  # blocks of 32: Q4 nibbles or Q8 bytes
            q = torch.cat([qw & 15, qw >> 4], 2) if self.bits == 4 else qw
            q = q.to(dtype)  # (nt, nb, 32, T)
            w = (q * d[:, :, None] + m[:, :, None]).reshape(q.shape[0], -1, TILE)
        else:
            w = qw.to(dtype) * d[:, None] + m[:, None]  # (nt, in, T)
        w = w.transpose(1, 2).reshape(-1, self.in_features)
        start = (tiles.start or 0) * TILE
        return w[: max(0, self.out_features - start)]

    def _dequantize_kernel(self, tiles: slice) -> torch.Tensor:
        """:meth:`dequantize` in one compiled pass (float32)."""
        from lmlab.generate._fastdecode_kernels import dequantize_i8, dequantize_q4

        t0, t1, _ = tiles.indices(self.w.shape[0])
        rows = max(0, min(t1 * TILE, self.out_features) - t0 * TILE)
        out = np.empty((rows, self.in_features), np.float32)
        w, d, m = self.kernel_arrays()
        if self.kind == "Q8":
            from lmlab.quantize._kernels import dequantize_q8

            dequantize_q8(w, d, t0, out)
        else:
            (dequantize_q4 if self.bits == 4 else dequantize_i8)(w, d, m, t0, out)
        return torch.from_numpy(out)

    def rows(self, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Rows ``idx`` (any shape) of the matrix, dequantised: ``(*idx.shape, in)``."""
        flat = idx.reshape(-1)
        t, lane = flat // TILE, flat % TILE
        d, m = self._scales(dtype)
        if self.w.ndim == 4:
            q = self.w[t, :, :, lane]  # (n, nb, 16) nibbles or (n, nb, 32) bytes
            q = (torch.cat([q & 15, q >> 4], 2) if self.bits == 4 else q).to(dtype)
            out = q * d[t, :, lane][..., None] + m[t, :, lane][..., None]
        else:
            out = self.w[t, :, lane].to(dtype) * d[t, lane][:, None] + m[t, lane][:, None]
        return out.reshape(*idx.shape, self.in_features)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised float32 matrix, computed on each access (for analysis code)."""
        return self.dequantize(torch.float32)

    def extra_repr(self) -> str:
        blocks = " g32" if self.kind == "Q8" else ""
        return f"in={self.in_features}, out={self.out_features}, int{self.bits}{blocks}"


class QuantLinear(_QuantMatrix):
    """``nn.Linear`` with a quantised weight (float bias)."""

    def __init__(self, out_features, in_features, bits, w, d, m, bias=None) -> None:
        super().__init__(out_features, in_features, bits, w, d, m)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    @classmethod
    def sharing(cls, other: _QuantMatrix) -> QuantLinear:
        """A linear layer on the same memory as ``other`` (a head tied to the embedding)."""
        return cls(other.out_features, other.in_features, other.bits, other.w, other.d, other.m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        n = int(np.prod(lead)) if lead else 1
        if (
            0 < n <= KERNEL_ROWS
            and x.dtype == torch.float32
            and x.device.type == "cpu"
            and not (torch.is_grad_enabled() and x.requires_grad)
            and not torch.is_autocast_enabled("cpu")
        ):
            return self._kernel_forward(x.reshape(n, -1)).reshape(*lead, self.out_features)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if not dtype.is_floating_point:
            dtype = torch.float32
        bias = None if self.bias is None else self.bias.to(dtype)
        x = x.to(dtype)
        n_tiles = self.w.shape[0]
        step = max(1, CHUNK_WEIGHTS // (TILE * self.in_features))
        if step >= n_tiles:
            return F.linear(x, self.dequantize(dtype), bias)
        # a large matrix (a vocabulary head): a slice of outputs at a time, so the float
        # copy never exceeds CHUNK_WEIGHTS
        parts = [
            F.linear(x, self.dequantize(dtype, slice(t, t + step))) for t in range(0, n_tiles, step)
        ]
        out = torch.cat(parts, -1)
        return out if bias is None else out + bias

    def _kernel_forward(self, x: torch.Tensor) -> torch.Tensor:
        from lmlab.generate._fastdecode_kernels import matmul

        xn = np.ascontiguousarray(x.detach().numpy())
        out = np.empty((xn.shape[0], self.out_features), np.float32)
        bias = (
            np.zeros(self.out_features, np.float32)
            if self.bias is None
            else self.bias.detach().to(torch.float32).numpy()
        )
        matmul(xn, *self.kernel_arrays(), bias, out)
        return torch.from_numpy(out)


class QuantEmbedding(_QuantMatrix):
    """``nn.Embedding`` with a quantised table: a lookup dequantises only the rows it reads."""

    @property
    def dtype(self) -> torch.dtype:
        """The type of the vectors it returns (read by ``Transformer.new_state``)."""
        return torch.float32

    @property
    def num_embeddings(self) -> int:
        return self.out_features

    @property
    def embedding_dim(self) -> int:
        return self.in_features

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.rows(ids, torch.float32)
