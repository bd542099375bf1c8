"""The numba text kernel for word vectors: every float32 comes back exactly, in C's %.9g
layout (positional or scientific, trailing zeros dropped)."""

import numpy as np

from lmlab.embeddings._float_text import text_rows


def _values(line: str) -> list[str]:
    return line.split(" ")[1:]


def test_every_float32_round_trips_and_reads_like_percent_9g():
    rng = np.random.default_rng(0)
    mat = np.concatenate(
        [
            (rng.standard_normal((200, 50)) * 0.3).astype(np.float32),
            (10.0 ** rng.uniform(-40, 38, (200, 50)) * rng.choice([-1, 1], (200, 50))).astype(
                np.float32
            ),
            rng.integers(-1000, 1000, (20, 50)).astype(np.float32),  # integers: no point
        ]
    )
    mat[0, :8] = [0.0, -0.0, 1e-7, 123456789, -3e12, 0.5, np.inf, -np.inf]
    words = [f"w{i}" for i in range(len(mat) - 1)] + ["中文"]
    lines = text_rows(words, mat).decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(mat) + 1
    back = np.array([[np.float32(float(x)) for x in _values(ln)] for ln in lines[:-1]])
    np.testing.assert_array_equal(back, mat)
    assert [ln.split(" ")[0] for ln in lines[:-1]] == words
    same = 0
    for ln, row in zip(lines[:-1], mat.tolist(), strict=True):
        ref = [f"{x:.9g}" for x in row]
        got = _values(ln)
        same += got == ref
        for g, r in zip(got, ref, strict=True):  # same layout; at most the 9th digit differs
            assert ("e" in g) == ("e" in r) and len(g) <= len(r) + 1, (g, r)
    assert same >= 0.9 * len(mat)
    assert _values(lines[0])[:8] == ["0", "-0", "1.00000001e-07", "123456792",
                                     "-3.00000005e+12", "0.5", "inf", "-inf"]  # fmt: skip


def test_nan_and_an_empty_matrix():
    assert text_rows(["a"], np.array([[np.nan, 1.0]], np.float32)) == b"a nan 1\n"
    assert text_rows([], np.zeros((0, 3), np.float32)) == b""
