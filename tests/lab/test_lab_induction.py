"""Induction-head reproduction: data, phase-change detection, and a small real phase change."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import LmlabError
from lmlab.lab.induction import (
    InductionConfig,
    detect_phase_change,
    periodic_batch,
    plot_induction,
    summary_lines,
    train_induction,
)
from lmlab.lab.probe import probe_run
from lmlab.run import Run
from lmlab.tokenize import WordTokenizer


def test_periodic_batch_repeats_distinct_tokens_with_a_random_period() -> None:
    x = periodic_batch(np.random.default_rng(0), 50, 24, 30, min_period=3).numpy()
    assert x.shape == (50, 24) and x.min() >= 0 and x.max() < 30
    periods = []
    for row in x:
        k = next(k for k in range(3, 13) if (row[k:] == row[:-k]).all())
        assert len(set(row[:k])) == k  # distinct within one period
        periods.append(k)
    assert len(set(periods)) > 5  # the period varies from sequence to sequence
    y = periodic_batch(np.random.default_rng(0), 50, 24, 30, min_period=3).numpy()
    assert (x == y).all()


def test_phase_change_detection_on_hand_made_curves() -> None:
    steps = np.arange(0, 1001, 50)
    loss = 4.0 - 3.9 / (1 + np.exp(-(steps - 500) / 30))  # a sharp drop centred on step 500
    c = detect_phase_change(steps, loss, min_change=2.0)
    assert c is not None and 450 <= c.step <= 550 and c.rate < 0
    assert c.start == pytest.approx(4.0, abs=1e-3) and c.end == pytest.approx(0.1, abs=1e-3)
    assert 400 <= c.begin < c.step < c.finish <= 650
    assert detect_phase_change(steps, np.full(len(steps), 4.0), 1.0) is None  # flat
    assert detect_phase_change(steps, 4.0 - steps / 1000, 2.0) is None  # too small a change
    rising = detect_phase_change(steps, 4.0 - loss, 2.0, falling=False)
    assert rising is not None and 450 <= rising.step <= 550 and rising.rate > 0


def test_config_checks() -> None:
    with pytest.raises(LmlabError, match="vocab_size"):
        InductionConfig(vocab_size=10, seq_len=64)
    with pytest.raises(LmlabError, match="min_period"):
        InductionConfig(min_period=40, seq_len=64)


@pytest.mark.slow
def test_two_layers_show_the_phase_change_and_one_layer_does_not(tmp_path) -> None:
    cfg = InductionConfig(
        vocab_size=32, seq_len=32, d_model=32, n_head=2, steps=450, lr=3e-3, eval_every=50,
        eval_seqs=32,
    )  # fmt: skip
    model, two = train_induction(cfg, 2, progress=False)
    _, one = train_induction(cfg, 1, progress=False)
    log_v = np.log(32)
    # 2 layers: the repeat loss falls from about log V to near 0 in a phase change, and a
    # layer-2 head becomes an induction head at the same time
    assert two.repeat_loss[0] > 0.9 * log_v and two.repeat_loss[-1] < 0.3
    assert two.first_half_loss[-1] > 0.8 * log_v  # random tokens stay unpredictable
    assert two.loss_change is not None and two.score_change is not None
    assert abs(two.loss_change.step - two.score_change.step) <= 100
    layer, _, score = two.best_head()
    assert layer == 1 and score > 0.6
    # 1 layer: no induction head, no phase change, repeat loss far above
    assert one.loss_change is None and one.best_head()[2] < 0.3
    assert one.repeat_loss[-1] > 2.0
    plot_induction([two, one], cfg.vocab_size, tmp_path / "induction.png")
    assert (tmp_path / "induction.png").read_bytes()[:4] == b"\x89PNG"
    assert "phase change: repeat loss falls" in summary_lines([two, one], 32)[0]
    assert "no phase change" in summary_lines([two, one], 32)[1]

    # `lmlab lab probe` on this model (given a 32-word tokenizer) finds the induction head
    # and a strongly negative in-context-learning score on text that repeats itself.
    words = [f"w{i}" for i in range(30)]
    tok = WordTokenizer(words)
    assert tok.vocab_size == 32
    run = Run(tmp_path, {"model": {"family": "transformer"}}, model.eval(), tok)
    period = np.random.default_rng(5).permutation(np.arange(2, 32))[:12]
    stream = np.resize(period, 400)  # a "text" repeating every 12 words
    res = probe_run(run, stream, "periodic text", n_windows=8, n_repeats=8, progress=False)
    top_layer, _, top_score = res.top_heads(1)[0]
    assert top_layer == 1 and top_score > 0.5
    assert res.second_copy_loss < 0.5 < 2.5 < res.first_copy_loss
    assert res.icl.score < -2.0  # position 3 cannot be predicted, position 31 can
