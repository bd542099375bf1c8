"""Weight-only quantisation schemes: what a quantised matrix is, and how to make one.

Two schemes, both on the rows of a weight matrix ``W`` (out, in):

* ``int8``: per output channel (one scale per row), ``W[o, i] ~ s[o] * q[o, i] + z[o]``
  with ``q`` int8; symmetric (``z = 0``, ``s = max|w| / 127``) or asymmetric (the row's
  range over 255 levels, ``z`` a float zero point).
* ``int4``: per group of ``group_size`` inputs (32, 64 or 128), ``W ~ s * q + z`` with
  ``q`` in 0..15; symmetric (``z = -8 s``: llama.cpp's Q4_0 rule, the value of largest
  magnitude maps to -8) or asymmetric (``z`` a float zero point, llama.cpp's Q4_1 form).
  Asymmetric groups are refined by least squares (``s, z`` refitted to the chosen levels
  a few times, keeping the best), which lowers the squared error below the plain
  min/max rule and never raises it.

The token embedding and the output head (tied or not) take int8 per channel by default
under int4 too (``embedding_bits``), as llama.cpp's Q4 files keep them in 8 bits: the
head's error reaches every logit.

Zero points are floats (a "float zero-point domain", as in llama.cpp's Q4_1 ``m`` and
torchao), and scales and zero points are float16, as in GGUF: ``W ~ s * q + z`` is then
exactly what every kernel computes, and a GGUF Q4_0/Q4_1/Q8_0 block is a special case.

On disk (``model.safetensors`` of a quantised run), each quantised ``NAME.weight`` becomes
``NAME.qweight`` (int8 (out, in), or uint8 (out, in/2) for int4: each block of 32 inputs is
16 bytes, low nibble input ``32k + i``, high nibble input ``32k + 16 + i``, llama.cpp's
order), ``NAME.scales`` float16 (out, in/group) and, when asymmetric, ``NAME.zeros``
float16 of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmlab.errors import LmlabError

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
BLOCK = 32  # int4 inputs per packed block (nibble order) and per kernel scale


@dataclass(frozen=True)
class Scheme:
    """How a run's matrices are quantised (the ``[quantization]`` section of config.toml)."""

    bits: int = 4
    group_size: int = 32  # int4 only; int8 is per channel (0 here)
    symmetric: bool = False
    embeddings: bool = True  # the token embedding (and a head tied to it) too
    embedding_bits: int = 8  # the embedding's and the output head's: 8 (per channel) or 4

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise LmlabError(f"unsupported quantisation int{self.bits}; use int8 or int4")
        if self.bits == 4 and self.group_size not in GROUP_SIZES:
            raise LmlabError(f"unsupported group size {self.group_size}; int4 takes 32, 64 or 128")
        if self.bits == 8 and self.group_size not in (0,):
            raise LmlabError(
                "int8 is quantised per output channel; --group-size applies to int4 only"
            )
        if self.embedding_bits not in BITS:
            raise LmlabError(f"unsupported embedding quantisation int{self.embedding_bits}")

    @property
    def name(self) -> str:
        kind = "sym" if self.symmetric else "asym"
        if self.bits == 8:
            return f"int8 per-channel {kind}"
        emb = "" if not self.embeddings else f", int{self.embedding_bits} embedding and head"
        return f"int4 g{self.group_size} {kind}{emb}"

    def for_embeddings(self) -> Scheme:
        """The scheme of the token embedding and the output head: int8 per channel
        (symmetric), or this int4 scheme. Like llama.cpp's Q4 files, which keep those in
        8 bits, because the head's error reaches every logit directly."""
        if self.embedding_bits == 8:
            return Scheme(8, 0, True, self.embeddings, 8)
        return self

    def to_config(self) -> dict:
        return {
            "bits": self.bits,
            "group_size": self.group_size,
            "symmetric": self.symmetric,
            "embeddings": self.embeddings,
            "embedding_bits": self.embedding_bits,
        }

    @classmethod
    def from_config(cls, d: dict) -> Scheme:
        try:
            return cls(
                bits=int(d["bits"]),
                group_size=int(d.get("group_size", 0)),
                symmetric=bool(d.get("symmetric", False)),
                embeddings=bool(d.get("embeddings", True)),
                embedding_bits=int(d.get("embedding_bits", d["bits"])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise LmlabError(f"[quantization] section is malformed ({e}); re-quantise") from None

    def group(self, in_features: int) -> int:
        """Inputs per scale for a matrix of ``in_features`` columns."""
        return in_features if self.bits == 8 else self.group_size

    def check_width(self, name: str, in_features: int) -> None:
        """One-line error when a matrix's width does not split into groups and blocks."""
        if self.bits == 4 and in_features % self.group_size:
            raise LmlabError(
                f"{name} has {in_features} inputs, not divisible by the group size "
                f"{self.group_size}; choose a group size that divides it"
            )


@dataclass
class QuantTensor:
    """One quantised matrix in its on-disk form (see the module docstring)."""

    qweight: torch.Tensor
    scales: torch.Tensor  # float16 (out, in/group)
    zeros: torch.Tensor | None  # float16 (out, in/group) when asymmetric
    out_features: int
    in_features: int


def _f16(t: torch.Tensor) -> torch.Tensor:
    """Round to float16 (saturating, so a huge weight cannot become inf) and back."""
    return t.clamp(-65504.0, 65504.0).to(torch.float16).to(torch.float32)


def _levels(w: torch.Tensor, s: torch.Tensor, z: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    safe = torch.where(s == 0, torch.ones_like(s), s)
    return torch.clamp(torch.round((w - z) / safe), lo, hi)


def _fit(w, lo, hi, s, z, symmetric, refine: int):
    """Levels for groups ``w`` (G, g) from a start ``s, z`` (G, 1), then ``refine`` least
    squares refits of ``s, z`` (asymmetric) or ``s`` (symmetric, ``z = -mid s``); per group
    the candidate of smallest squared error wins. Returns float16-exact ``s, z, q``."""
    mid = (lo + hi + 1) // 2 if symmetric else 0
    best_s = _f16(s)
    best_z = -mid * best_s if symmetric else _f16(z)
    best_q = _levels(w, best_s, best_z, lo, hi)
    best_err = ((best_s * best_q + best_z - w) ** 2).sum(1, keepdim=True)
    q = best_q
    for _ in range(refine):
        if symmetric:
            c = q - mid
            den = (c * c).sum(1, keepdim=True)
            s_new = torch.where(den > 0, (c * w).sum(1, keepdim=True) / den.clamp_min(1e-30), s)
            z_new = -mid * s_new
        else:
            qm, wm = q.mean(1, keepdim=True), w.mean(1, keepdim=True)
            var = ((q - qm) ** 2).sum(1, keepdim=True)
            s_new = torch.where(
                var > 0, ((q - qm) * (w - wm)).sum(1, keepdim=True) / var.clamp_min(1e-30), s
            )
            z_new = wm - s_new * qm
        s_new, z_new = _f16(s_new), _f16(z_new)
        if symmetric:
            z_new = -mid * s_new  # exact: mid is a power of two
        q = _levels(w, s_new, z_new, lo, hi)
        err = ((s_new * q + z_new - w) ** 2).sum(1, keepdim=True)
        better = err < best_err
        best_s = torch.where(better, s_new, best_s)
        best_z = torch.where(better, z_new, best_z)
        best_q = torch.where(better, q, best_q)
        best_err = torch.minimum(err, best_err)
    return best_s, best_z, best_q


def quantize_groups(
    w: torch.Tensor, bits: int, symmetric: bool, refine: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantise groups ``w`` (G, g) float32: returns ``s, z`` (G, 1) float16-exact float32 and
    levels ``q`` (G, g) as float32 (0..15 for int4, -128..127 for int8)."""
    w = w.to(torch.float32)
    if bits == 8:
        if symmetric:
            s = w.abs().amax(1, keepdim=True) / 127
            return _fit(w, -127, 127, s, torch.zeros_like(s), True, refine)
        mn, mx = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
        s = (mx - mn) / 255
        return _fit(w, -128, 127, s, mn + 128 * s, False, refine)
    if symmetric:  # Q4_0: the value of largest magnitude maps to -8
        s = w.gather(1, w.abs().argmax(1, keepdim=True)) / -8
        return _fit(w, 0, 15, s, -8 * s, True, refine)
    mn, mx = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
    return _fit(w, 0, 15, (mx - mn) / 15, mn, False, refine)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Levels (out, in) 0..15 -> bytes (out, in/2) in llama.cpp's block order."""
    out, n = q.shape
    b = q.to(torch.uint8).reshape(out, n // BLOCK, 2, BLOCK // 2)
    return (b[:, :, 0] | (b[:, :, 1] << 4)).reshape(out, n // 2)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Bytes (out, in/2) -> levels (out, in) uint8, the inverse of :func:`pack_int4`."""
    out, half = packed.shape
    b = packed.reshape(out, half // (BLOCK // 2), BLOCK // 2)
    return torch.stack([b & 15, b >> 4], 2).reshape(out, half * 2)


def quantize_matrix(w: torch.Tensor, scheme: Scheme, name: str = "matrix") -> QuantTensor:
    """Quantise one weight matrix (out, in) under ``scheme``."""
    if w.ndim != 2:
        raise LmlabError(f"{name} is not a matrix (shape {tuple(w.shape)}); cannot quantise it")
    out, n = w.shape
    scheme.check_width(name, n)
    g = scheme.group(n)
    s, z, q = quantize_groups(w.detach().reshape(-1, g), scheme.bits, scheme.symmetric)
    q = q.reshape(out, n)
    qweight = pack_int4(q) if scheme.bits == 4 else q.to(torch.int8)
    scales = s.reshape(out, n // g).to(torch.float16)
    zeros = None if scheme.symmetric else z.reshape(out, n // g).to(torch.float16)
    return QuantTensor(qweight.contiguous(), scales.contiguous(), zeros, out, n)


def offsets(scales: torch.Tensor, zeros: torch.Tensor | None, bits: int) -> torch.Tensor:
    """The float16 offsets ``z`` of ``W ~ s * q + z``: the stored zeros, or for symmetric
    int4 ``-8 s`` (exact in float16), for symmetric int8 zero."""
    if zeros is not None:
        return zeros
    if bits == 4:
        return (scales.to(torch.float32) * -8).to(torch.float16)
    return torch.zeros_like(scales)


def dequantize_matrix(t: QuantTensor, bits: int) -> torch.Tensor:
    """Float32 (out, in) of a quantised matrix (a reference; models never do this whole)."""
    q = unpack_int4(t.qweight) if bits == 4 else t.qweight
    g = t.in_features // t.scales.shape[1]
    s = t.scales.to(torch.float32)
    z = offsets(t.scales, t.zeros, bits).to(torch.float32)
    w = q.to(torch.float32).reshape(t.out_features, -1, g) * s[..., None] + z[..., None]
    return w.reshape(t.out_features, t.in_features)
