"""float32 matrices as decimal text, nine significant digits per value, in a numba kernel.

Writing word vectors as text is the last step of every embedding job; Python's ``%.9g``
formats about four million values a second, this kernel about forty. Nine significant digits
bring every float32 back exactly; the kernel rounds in float64, so its ninth digit can differ
from C's ``%.9g`` by one where a value sits near a rounding tie (both round-trip).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_POW10 = 10.0 ** np.arange(-60, 61, dtype=np.float64)  # 10**k at [60 + k]
_WIDTH = 17  # the longest value: "-1.23456789e-100" is 16 bytes, plus a separator


@njit(cache=True, nogil=True, error_model="numpy")
def _put(x, out, at, pow10, digits):
    """Write ``x`` at ``out[at:]`` as ``%.9g`` would (``nan``, ``inf`` included); return the
    end."""
    if x != x:
        out[at], out[at + 1], out[at + 2] = 110, 97, 110
        return at + 3
    if x < 0 or (x == 0.0 and math.copysign(1.0, x) < 0):
        out[at] = 45
        at += 1
        x = -x
    if x == 0.0:
        out[at] = 48
        return at + 1
    if x == math.inf:
        out[at], out[at + 1], out[at + 2] = 105, 110, 102
        return at + 3
    e = int(math.floor(math.log10(x)))
    m = int(x * pow10[68 - e] + 0.5)  # the nine digits, 10**8 <= m < 10**9
    if m >= 1_000_000_000:
        e += 1
        m = int(x * pow10[68 - e] + 0.5)
    elif m < 100_000_000:
        e -= 1
        m = int(x * pow10[68 - e] + 0.5)
    for i in range(8, -1, -1):
        digits[i] = 48 + m % 10
        m //= 10
    k = 9  # significant digits left once trailing zeros go
    while k > 1 and digits[k - 1] == 48:
        k -= 1
    if -4 <= e < 9:  # positional, as %g chooses
        if e >= 0:
            for i in range(e + 1):
                out[at] = digits[i]
                at += 1
            if k > e + 1:
                out[at] = 46
                at += 1
                for i in range(e + 1, k):
                    out[at] = digits[i]
                    at += 1
            return at
        out[at], out[at + 1] = 48, 46
        at += 2
        for _ in range(-e - 1):
            out[at] = 48
            at += 1
        for i in range(k):
            out[at] = digits[i]
            at += 1
        return at
    out[at] = digits[0]  # scientific: d.ddde+XX
    at += 1
    if k > 1:
        out[at] = 46
        at += 1
        for i in range(1, k):
            out[at] = digits[i]
            at += 1
    out[at] = 101
    out[at + 1] = 45 if e < 0 else 43
    at += 2
    e = abs(e)
    if e >= 100:
        out[at] = 48 + e // 100
        at += 1
    out[at], out[at + 1] = 48 + (e // 10) % 10, 48 + e % 10
    return at + 2


@njit(cache=True, nogil=True, error_model="numpy")
def _format_rows(mat, out, pow10):
    digits = np.empty(9, np.uint8)
    ends = np.empty(mat.shape[0], np.int64)
    at = 0
    for r in range(mat.shape[0]):
        for c in range(mat.shape[1]):
            out[at] = 32  # a space before every value: it follows the row's word
            at = _put(np.float64(mat[r, c]), out, at + 1, pow10, digits)
        out[at] = 10
        at += 1
        ends[r] = at
    return ends


def text_rows(words: list[str], mat: np.ndarray) -> bytes:
    """``word v1 ... vD\\n`` for every row of ``mat`` (float32), UTF-8."""
    mat = np.ascontiguousarray(mat, dtype=np.float32)
    out = np.empty(mat.size * _WIDTH + mat.shape[0] + 1, np.uint8)
    ends = _format_rows(mat, out, _POW10)
    body = out[: ends[-1] if len(ends) else 0].tobytes()
    starts = [0, *ends[:-1].tolist()] if len(ends) else []
    return b"".join(
        w.encode("utf-8") + body[s:e] for w, s, e in zip(words, starts, ends.tolist(), strict=True)
    )
