from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.evaluate.perplexity import Score, stream_loss
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig


def test_stream_loss_equals_direct_loss_within_one_window() -> None:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=30, context_length=64, n_layer=1, n_head=2, d_model=16)
    ).eval()
    ids = np.random.default_rng(0).integers(0, 30, 50)
    loss, n = stream_loss(m, ids)
    t = torch.tensor(ids)
    direct = F.cross_entropy(m(t[None, :-1])[0], t[1:]).item()
    assert n == 49 and math.isclose(loss, direct, rel_tol=1e-5)


def test_sliding_windows_score_every_token_once() -> None:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=30, context_length=16, n_layer=1, n_head=2, d_model=16)
    ).eval()
    ids = np.random.default_rng(1).integers(0, 30, 97)
    loss, n = stream_loss(m, ids, stride=16)  # stride = context: plain non-overlapping blocks
    t = torch.tensor(ids)
    total = 0.0
    for s in range(0, 96, 16):
        e = s + 16
        total += F.cross_entropy(m(t[None, s:e])[0], t[s + 1 : e + 1], reduction="sum").item()
    assert n == 96 and math.isclose(loss, total / 96, rel_tol=1e-5)


def test_rnn_stream_loss_carries_state() -> None:
    torch.manual_seed(0)
    m = RNNLanguageModel(RNNConfig(vocab_size=30, embed_dim=8, hidden_size=8)).eval()
    ids = np.random.default_rng(2).integers(0, 30, 3000)
    loss, n = stream_loss(m, ids)
    t = torch.tensor(ids)
    direct = F.cross_entropy(m(t[None, :-1])[0], t[1:]).item()
    assert n == 2999 and math.isclose(loss, direct, rel_tol=1e-4)


def test_bits_per_byte() -> None:
    s = Score(loss=math.log(2), tokens=10, bytes_per_token=2.0)
    assert math.isclose(s.bits_per_byte, 0.5) and math.isclose(s.perplexity, 2.0)


def test_count_models_are_scored_without_full_distributions() -> None:
    from lmlab.models.ngram import NGramLM

    rng = np.random.default_rng(3)
    train = rng.integers(0, 12, 3000)
    lm = NGramLM.fit(train, order=3, vocab_size=12, eos_id=0)
    ids = np.concatenate([[0], rng.integers(1, 12, 200)])
    fast, n = stream_loss(lm, ids)
    logits = lm(torch.tensor(ids[None, :-1]))[0]  # the slow way, through forward
    slow = F.cross_entropy(logits, torch.tensor(ids[1:])).item()
    assert n == 200 and math.isclose(fast, slow, rel_tol=1e-5)


def _one_window_at_a_time(m: Transformer, ids: np.ndarray, window: int, stride: int) -> float:
    """The scoring loop before batching: one window per forward call (the reference)."""
    t = torch.as_tensor(ids)
    n, total, scored, begin = len(t), 0.0, 0, 0
    while scored < n - 1:
        end = min(begin + window, n - 1)
        logits = m(t[begin:end][None])[0]
        new = scored - begin
        total += F.cross_entropy(logits[new:], t[begin + 1 + new : end + 1], reduction="sum").item()
        scored = end
        begin = min(begin + stride, max(0, n - 1 - window)) if end < n - 1 else end
    return total / (n - 1)


def test_batched_windows_score_exactly_as_one_window_at_a_time() -> None:
    from lmlab.evaluate.perplexity import plan_windows

    torch.manual_seed(0)
    for block in ("gpt2", "llama"):
        m = Transformer(
            TransformerConfig(
                vocab_size=40, context_length=32, n_layer=2, n_head=2, d_model=16, block=block
            )
        ).eval()
        for n, stride in [(700, None), (300, 32), (200, 7), (80, 1), (20, None), (33, 3)]:
            ids = np.random.default_rng(n).integers(0, 40, n)
            ref = _one_window_at_a_time(m, ids, 32, stride or 16)
            for batch_tokens in (None, 1, 100):
                loss, count = stream_loss(m, ids, stride, batch_tokens=batch_tokens)
                assert count == n - 1 and abs(loss - ref) < 1e-5, (block, n, stride)
            # every target is scored exactly once
            plan = plan_windows(n, 32, stride or 16)
            length = min(32, n - 1)
            hits = np.zeros(n - 1, dtype=int)
            for begin, new in plan:
                hits[begin + new : begin + length] += 1
            assert (hits == 1).all()


def test_long_contexts_are_scored_by_a_capped_window() -> None:
    from lmlab.errors import LmlabError
    from lmlab.evaluate.perplexity import DEFAULT_WINDOW

    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=30, context_length=4096, n_layer=1, n_head=2, d_model=16, block="llama"
    )
    m = Transformer(cfg).eval()
    ids = np.random.default_rng(5).integers(0, 30, 2500)
    loss, _ = stream_loss(m, ids)
    ref = _one_window_at_a_time(m, ids, DEFAULT_WINDOW, DEFAULT_WINDOW // 2)
    assert abs(loss - ref) < 1e-5
    small, _ = stream_loss(m, ids, window=100, stride=25)
    assert abs(small - _one_window_at_a_time(m, ids, 100, 25)) < 1e-5
    for window, stride in [(5000, None), (0, None), (100, 101)]:
        try:
            stream_loss(m, ids, stride, window)
        except LmlabError as e:
            assert "\n" not in str(e)
        else:
            raise AssertionError(f"window {window}, stride {stride} accepted")


def test_adaptive_softmax_rnn_is_scored_without_full_distributions() -> None:
    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=60, embed_dim=8, hidden_size=8, adaptive_cutoffs=[10, 30])
    m = RNNLanguageModel(cfg).eval()
    ids = np.random.default_rng(4).integers(0, 60, 2500)
    loss, n = stream_loss(m, ids, chunk=300)
    t = torch.tensor(ids)
    logp = m(t[None, :-1])[0]  # log-probabilities through the full output
    direct = F.nll_loss(logp, t[1:]).item()
    assert n == 2499 and math.isclose(loss, direct, rel_tol=1e-5)


def test_progress_is_plain_lines_off_a_terminal(capsys) -> None:
    from lmlab.evaluate.progress import Progress

    bar = Progress(1000, "scoring", every=0.0)
    bar.update(400)
    bar.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\r" not in err and "40% (400/1,000 tokens" in err
    Progress(10, "scoring", enabled=False).update(10)
    assert capsys.readouterr().err == ""


def test_bits_per_byte_charges_unknown_words() -> None:
    s = Score(loss=math.log(2), tokens=10, bytes_per_token=2.0, unk=2, unk_bits=10.0)
    assert math.isclose(s.bits_per_byte_without_spelling, 0.5)
    assert math.isclose(s.bits_per_byte, (10 * 1 + 10) / 20) and s.unk_rate == 0.2
    d = s.as_dict()
    assert d["unk"] == 2 and d["unk_rate"] == 0.2 and d["bpb"] == s.bits_per_byte


def test_bf16_autocast_scores_close_to_fp32() -> None:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=50, context_length=32, n_layer=2, n_head=2, d_model=32)
    ).eval()
    ids = np.random.default_rng(1).integers(0, 50, 400)
    exact, n = stream_loss(m, ids)
    fast, n_fast = stream_loss(m, ids, autocast=torch.bfloat16)
    assert n_fast == n and fast != exact  # the network really ran in bf16
    assert abs(fast - exact) / exact < 1e-2
