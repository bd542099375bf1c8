"""A fast reader of GGUF headers: metadata and tensor table, tensor data memory-mapped.

``gguf.GGUFReader`` builds a numpy view for every part of every metadata field; a model
with a 49k-token vocabulary has ~250,000 of them and takes 4-5 s to open on a busy core.
This reader parses the same header with ``struct`` from one ``bytes`` copy of it (about
50 ms) and memory-maps the tensor data as ``gguf.GGUFReader`` does, with the same
``ReaderTensor``-like fields (``name``, ``tensor_type``, ``shape``, ``data``), so
dequantising reads the same bytes.

Format (GGUF v2/v3, little-endian): magic, version u32, tensor count u64, metadata count
u64; metadata ``key: string, type: u32, value``; tensor infos ``name, n_dims u32, dims u64
x n (fastest first), type u32, offset u64``; data from the next multiple of
``general.alignment`` (32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
          6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}  # fmt: skip
_STRING, _ARRAY = 8, 9
_PLAIN = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
          "I16": np.int16, "I32": np.int32, "I64": np.int64}  # fmt: skip
# Header bytes read at once; a header larger than this (a huge vocabulary) is read whole.
_HEAD = 16 << 20


@dataclass
class Tensor:
    name: str
    tensor_type: Any  # gguf.GGMLQuantizationType
    shape: np.ndarray  # dims as stored: fastest first
    data: np.ndarray  # memory-mapped; quantised types as bytes (rows, bytes per row)


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.at = buf, 0

    def scalar(self, fmt: str):
        (v,) = struct.unpack_from(fmt, self.buf, self.at)
        self.at += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > len(self.buf) - self.at:
            raise ValueError("string runs past the end of the header")
        s = self.buf[self.at : self.at + n].decode("utf-8", errors="replace")
        self.at += n
        return s

    def value(self, vtype: int):
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, n = self.scalar("<I"), self.scalar("<Q")
            if itype == _STRING:
                return [self.string() for _ in range(n)]
            if itype in _NUMPY:
                dt = np.dtype(_NUMPY[itype]).newbyteorder("<")
                end = self.at + n * dt.itemsize
                if end > len(self.buf):
                    raise ValueError("array runs past the end of the header")
                arr = np.frombuffer(self.buf, dt, n, self.at)
                self.at = end
                return arr.tolist()
            return [self.value(itype) for _ in range(n)]
        if vtype not in _SCALARS:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.scalar(_SCALARS[vtype])


class GGUFFile:
    """``meta``: every metadata key and its value (strings, numbers, lists); ``tensors``:
    the tensor table with memory-mapped data. Raises ValueError / struct.error on a file
    that is not GGUF, truncated or corrupt."""

    def __init__(self, path: str | Path) -> None:
        import gguf

        path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            while True:
                try:
                    self.meta, infos, end = self._parse(head)
                    break
                except (struct.error, ValueError):
                    if len(head) >= size:
                        raise
                    f.seek(0)
                    head = f.read()  # the header is longer than the first read
        align = int(self.meta.get("general.alignment", 32))
        start = end + (-end % align)
        mm = np.memmap(path, mode="r")
        self.tensors: list[Tensor] = []
        for name, dims, raw_type, offset in infos:
            qtype = gguf.GGMLQuantizationType(raw_type)
            n = int(np.prod(dims)) if dims else 1
            block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
            shape = tuple(reversed(dims))
            at = start + offset
            if qtype.name in _PLAIN:
                dt = np.dtype(_PLAIN[qtype.name])
                count = n
            else:
                dt, count = np.dtype(np.uint8), n * nbytes // block
                shape = (*shape[:-1], shape[-1] * nbytes // block)
            if at + count * dt.itemsize > size:
                raise ValueError(f"tensor {name} runs past the end of the file")
            data = np.ndarray(count, dt, mm, at).reshape(shape)
            self.tensors.append(Tensor(name, qtype, np.array(dims, np.uint64), data))

    @staticmethod
    def _parse(buf: bytes):
        c = _Cursor(buf)
        if buf[:4] != b"GGUF":
            raise ValueError("not a GGUF file")
        c.at = 4
        version = c.scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        n_tensors, n_kv = c.scalar("<Q"), c.scalar("<Q")
        meta = {}
        for _ in range(n_kv):
            key = c.string()
            meta[key] = c.value(c.scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.scalar("<I")
            if n_dims > 8:
                raise ValueError(f"tensor {name} has {n_dims} dimensions")
            dims = [c.scalar("<Q") for _ in range(n_dims)]
            infos.append((name, dims, c.scalar("<I"), c.scalar("<Q")))
        return meta, infos, c.at
