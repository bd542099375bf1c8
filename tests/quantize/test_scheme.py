"""Quantise / dequantise round trips: error bounds per scheme, the packing, the refit."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.quantize.scheme import (
    Scheme,
    dequantize_matrix,
    pack_int4,
    quantize_groups,
    quantize_matrix,
    unpack_int4,
)

SCHEMES = [
    Scheme(8, 0, True),
    Scheme(8, 0, False),
    Scheme(4, 32, False),
    Scheme(4, 32, True),
    Scheme(4, 64, False),
    Scheme(4, 128, True),
]


def weights(out: int = 96, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Gaussian rows with a few outliers and rows of different scales, as trained layers."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n, generator=g) * 0.02 * torch.rand(out, 1, generator=g).add(0.2)
    w[::7, ::31] *= 8
    return w


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_round_trip_error_is_within_half_a_step(scheme: Scheme) -> None:
    w = weights()
    qt = quantize_matrix(w, scheme)
    deq = dequantize_matrix(qt, scheme.bits)
    assert deq.shape == w.shape and deq.dtype == torch.float32
    g = scheme.group(w.shape[1])
    step = qt.scales.to(torch.float32).abs().repeat_interleave(g, 1)
    err = (deq - w).abs()
    # every weight inside the levels' range is within half a step of its level (plus
    # float16 rounding); the least-squares refit may clip a few outliers beyond it
    s = qt.scales.to(torch.float32).repeat_interleave(g, 1)
    z = (qt.zeros.to(torch.float32).repeat_interleave(g, 1) if qt.zeros is not None
         else (-8 * s if scheme.bits == 4 else torch.zeros_like(s)))  # fmt: skip
    lo, hi = (0, 15) if scheme.bits == 4 else (-128, 127)
    a, b = torch.minimum(z + lo * s, z + hi * s), torch.maximum(z + lo * s, z + hi * s)
    inside = (w >= a - step / 2) & (w <= b + step / 2)
    assert inside.float().mean() > 0.99
    assert bool((err[inside] <= 0.5 * step[inside] * 1.01 + 1e-6).all())
    rel = ((deq - w).norm() / w.norm()).item()
    assert rel < (0.02 if scheme.bits == 8 else 0.2), rel
    if scheme.bits == 4:
        assert qt.qweight.dtype == torch.uint8 and qt.qweight.shape == (96, 128)
    else:
        assert qt.qweight.dtype == torch.int8 and qt.scales.shape == (96, 1)
    assert qt.scales.dtype == torch.float16
    assert (qt.zeros is None) == scheme.symmetric


def test_finer_groups_and_more_bits_give_smaller_errors() -> None:
    w = weights(seed=1)

    def err(s: Scheme) -> float:
        return (dequantize_matrix(quantize_matrix(w, s), s.bits) - w).pow(2).mean().item()

    e8, e32, e64, e128 = (
        err(Scheme(8, 0, False)),
        err(Scheme(4, 32, False)),
        err(Scheme(4, 64, False)),
        err(Scheme(4, 128, False)),
    )
    assert e8 < e32 < e64 < e128


def test_least_squares_refit_never_raises_the_error() -> None:
    w = weights(seed=2).reshape(-1, 32)
    for symmetric in (False, True):
        s0, z0, q0 = quantize_groups(w, 4, symmetric, refine=0)
        s1, z1, q1 = quantize_groups(w, 4, symmetric, refine=4)
        e0 = ((s0 * q0 + z0 - w) ** 2).sum(1)
        e1 = ((s1 * q1 + z1 - w) ** 2).sum(1)
        assert bool((e1 <= e0 + 1e-12).all())
        assert e1.sum() < 0.97 * e0.sum()  # and it helps on real-looking weights


def test_weights_already_on_a_q4_1_grid_are_recovered_exactly() -> None:
    """A GGUF Q4_1 model's float weights (d * q + m per 32 inputs) quantise back to
    themselves under int4 g32 asymmetric: re-quantising costs nothing."""
    g = torch.Generator().manual_seed(3)
    d = (torch.rand(64, 8, 1, generator=g) * 0.01 + 1e-3).half().float()
    m = (torch.randn(64, 8, 1, generator=g) * 0.05).half().float()
    q = torch.randint(0, 16, (64, 8, 32), generator=g).float()
    q[..., 0], q[..., 1] = 0, 15  # every block spans the full range, as Q4_1's do
    w = (d * q + m).reshape(64, 256)
    s = Scheme(4, 32, False)
    assert torch.equal(dequantize_matrix(quantize_matrix(w, s), 4), w)


def test_pack_unpack_is_the_identity_in_llama_cpp_nibble_order() -> None:
    q = torch.randint(0, 16, (5, 64), generator=torch.Generator().manual_seed(4))
    packed = pack_int4(q)
    assert packed.shape == (5, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed).long(), q)
    # byte i of a block: input i in the low nibble, input 16 + i in the high one
    assert int(packed[0, 3]) == int(q[0, 3]) | (int(q[0, 19]) << 4)


def test_zero_rows_and_constant_groups_do_not_divide_by_zero() -> None:
    w = torch.zeros(4, 64)
    w[1] = 0.5
    for s in SCHEMES[:4]:
        deq = dequantize_matrix(quantize_matrix(w, s), s.bits)
        assert torch.isfinite(deq).all()
        assert (deq - w).abs().max() < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 3}, "unsupported quantisation int3"),
        ({"bits": 4, "group_size": 48}, "unsupported group size 48"),
        ({"bits": 8, "group_size": 32}, "int8 is quantised per output channel"),
    ],
)
def test_bad_schemes_are_one_line_errors(kwargs, message) -> None:
    with pytest.raises(LmlabError, match=message) as e:
        Scheme(**kwargs)
    assert "\n" not in str(e.value)


def test_a_width_not_divisible_by_the_group_is_refused() -> None:
    with pytest.raises(LmlabError, match="96 inputs, not divisible by the group size 64"):
        quantize_matrix(torch.randn(8, 96), Scheme(4, 64, False), "blocks.0.mlp.proj")
