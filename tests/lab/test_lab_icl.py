"""The in-context-learning score against hand-computed values, and loss by position."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.lab.icl import icl_score, position_losses, sample_windows
from lmlab.models import build_model


def test_icl_score_hand_computed() -> None:
    loss = np.linspace(3.0, 2.0, 101)  # L[t] = 3 - t/100
    s = icl_score(loss)  # late 100, early 10, band 101 // 32 = 3
    assert (s.late, s.early, s.band) == (100, 10, 3)
    assert s.loss_early == pytest.approx(2.9)  # mean of L[7] .. L[13]
    assert s.loss_late == pytest.approx((2.03 + 2.02 + 2.01 + 2.0) / 4)  # L[97..100], clipped
    assert s.score == pytest.approx(2.015 - 2.9)
    # Olsson's definition at explicit positions, no averaging: 500 vs 50
    curve = np.full(600, 4.0)
    curve[50], curve[500] = 3.5, 2.25
    exact = icl_score(curve, early=50, late=500, band=0)
    assert exact.score == pytest.approx(-1.25)
    assert exact.as_dict()["icl_score"] == pytest.approx(-1.25)
    assert icl_score(np.full(40, 1.7)).score == pytest.approx(0.0)  # no context use


def test_icl_score_rejects_bad_positions() -> None:
    with pytest.raises(LmlabError):
        icl_score([1.0])
    with pytest.raises(LmlabError):
        icl_score(np.ones(10), early=5, late=5)
    with pytest.raises(LmlabError):
        icl_score(np.ones(10), early=2, late=10)
    # a band wider than the gap is narrowed so the two averages never share positions
    assert icl_score(np.arange(10.0), early=3, late=7, band=5).band == 2


def test_position_losses_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = build_model(
        "transformer", dict(vocab_size=17, context_length=12, n_layer=1, n_head=2, d_model=16)
    ).eval()
    windows = np.random.default_rng(0).integers(0, 17, size=(5, 13))
    got = position_losses(model, windows, batch_size=2)
    x = torch.from_numpy(windows)
    direct = F.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none").mean(0)
    assert got.shape == (12,)
    assert np.allclose(got, direct.detach().numpy(), atol=1e-5)
    with torch.no_grad():  # a model that knows nothing: log V at every position
        model.head.weight.zero_()
    assert np.allclose(position_losses(model, windows), math.log(17), atol=1e-5)


def test_position_losses_for_a_recurrent_model() -> None:
    torch.manual_seed(0)
    rnn = build_model("rnn", dict(vocab_size=11, embed_dim=8, hidden_size=8, n_layer=1)).eval()
    windows = np.random.default_rng(1).integers(0, 11, size=(3, 21))
    curve = position_losses(rnn, windows)
    assert curve.shape == (20,) and np.isfinite(curve).all()
    assert abs(icl_score(curve).score) < 1.0


def test_sample_windows() -> None:
    ids = np.arange(1000)
    w = sample_windows(ids, 8, 50, seed=3)  # many windows available: random, non-overlapping
    assert w.shape == (8, 50)
    assert all((row == np.arange(row[0], row[0] + 50)).all() for row in w)
    assert len(set(w[:, 0] // 50)) == 8 and (w[:, 0] % 50 == 0).all()
    assert np.array_equal(w, sample_windows(ids, 8, 50, seed=3))
    few = sample_windows(np.arange(60), 8, 50)  # few available: evenly spread, overlapping
    assert few[0, 0] == 0 and few[-1, -1] == 59
    with pytest.raises(LmlabError, match="fewer than one window"):
        sample_windows(np.arange(10), 2, 50)
