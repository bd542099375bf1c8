"""Kneser-Ney maths on a hand-checkable corpus, normalisation and scoring on real text."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models import build_model
from lmlab.models.kneser_ney import estimate_discounts
from lmlab.models.ngram import NGramConfig, NGramLM
from lmlab.models.pretokenized import encode_lines, read_text, whitespace_tokenizer
from lmlab.tokenize import WordTokenizer

DATA = Path(
    os.environ.get(
        "LMLAB_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
)

# ids: </s>=0, a=1, b=2, c=3. Sentences "a b", "a b", "a c".
TOY = np.array([1, 2, 0, 1, 2, 0, 1, 3, 0])


def toy_model(order: int = 2) -> NGramLM:
    return NGramLM.fit(TOY, order=order, vocab_size=4, eos_id=0)


def p(model: NGramLM, context: list[int], word: int) -> float:
    """p(word | context) from forward, after a sentence start (an empty context is fed as
    a lone ``<eos>``, which the model reads as ``<s>``)."""
    logits = model(torch.tensor([context or [0]]))
    return float(logits[0, -1, word].exp())


def test_toy_bigram_probabilities_by_hand() -> None:
    m = toy_model(2)
    # Too little data for Chen & Goodman's estimate: KenLM's fallback discounts 0.5, 1, 1.5.
    np.testing.assert_allclose(m.discounts.numpy(), [[0.5, 1.0, 1.5]] * 2)
    # Unigram continuation counts: a 1 (<s>), b 1 (a), c 1 (a), </s> 2 (b, c); total 5.
    # gamma = (0.5*3 + 1*1)/5 = 0.5, uniform 1/4: p1 = u + 0.125.
    uni = 10 ** m.logp_1.numpy()[:4]
    np.testing.assert_allclose(uni, [0.2 + 0.125, 0.1 + 0.125, 0.1 + 0.125, 0.1 + 0.125], rtol=1e-6)
    # Context "a": b twice, c once; denominator 3, gamma(a) = (1 + 0.5)/3 = 0.5.
    assert p(m, [1], 2) == pytest.approx((2 - 1) / 3 + 0.5 * 0.225, rel=1e-6)
    assert p(m, [1], 3) == pytest.approx(0.5 / 3 + 0.5 * 0.225, rel=1e-6)
    assert p(m, [1], 1) == pytest.approx(0.5 * 0.225, rel=1e-6)  # unseen: backs off
    assert p(m, [1], 0) == pytest.approx(0.5 * 0.325, rel=1e-6)
    # Sentence start: "<s> a" three times (raw count, discount D3+ = 1.5), gamma = 0.5.
    assert p(m, [], 1) == pytest.approx((3 - 1.5) / 3 + 0.5 * 0.225, rel=1e-6)
    assert p(m, [], 2) == pytest.approx(0.5 * 0.225, rel=1e-6)


def test_toy_trigram_uses_continuation_counts_below_the_top_order() -> None:
    m = toy_model(3)
    # Bigram "a b" occurs twice but always after <s>: its adjusted count is 1 (one left
    # context), like "a c"; so in the bigram table p(b|a) = p(c|a) = 0.5/2 + gamma*p1.
    # Unigram level is unchanged from the bigram model.
    logp = {k: v for k, v in zip(m.tables().keys[1].tolist(), m.logp_2.tolist(), strict=True)}
    w = 5
    pb = 10 ** logp[1 * w + 2]
    pc = 10 ** logp[1 * w + 3]
    gamma_a = (0.5 + 0.5) / 2
    assert pb == pytest.approx(0.5 / 2 + gamma_a * 0.225, rel=1e-6)
    assert pc == pytest.approx(0.5 / 2 + gamma_a * 0.225, rel=1e-6)
    # Full trigram context "<s> a": b twice (D2 = 1), c once (D1 = 0.5), backing off to p2.
    gamma = (1 + 0.5) / 3
    assert p(m, [0, 1], 2) == pytest.approx((2 - 1) / 3 + gamma * pb, rel=1e-6)


def test_discounts_follow_chen_goodman() -> None:
    counts = np.array([1] * 40 + [2] * 20 + [3] * 10 + [4] * 5 + [7] * 3)
    y = 40 / (40 + 2 * 20)
    expected = [1 - 2 * y * 20 / 40, 2 - 3 * y * 10 / 20, 3 - 4 * y * 5 / 10]
    np.testing.assert_allclose(estimate_discounts(counts), expected)
    assert estimate_discounts(np.array([1, 1, 2])).tolist() == [0.5, 1.0, 1.5]


def timemachine_ids() -> tuple[WordTokenizer, np.ndarray]:
    path = DATA / "timemachine" / "timemachine.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set LMLAB_SHARED_DATA)")
    text = read_text(path).lower()
    tok = whitespace_tokenizer([text])
    return tok, encode_lines(tok, text)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
def test_distributions_sum_to_one_for_every_context(order: int) -> None:
    tok, ids = timemachine_ids()
    n = len(ids) * 9 // 10
    m = NGramLM.fit(ids[:n], order, tok.vocab_size, tok.eos_id)
    probs = m(torch.from_numpy(ids[n : n + 600]).view(3, 200)).exp()
    assert probs.shape == (3, 200, tok.vocab_size)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 200), atol=2e-5, rtol=0)
    assert float(probs.min()) > 0


def test_score_matches_forward_and_incremental_state() -> None:
    tok, ids = timemachine_ids()
    m = NGramLM.fit(ids[:20000], 4, tok.vocab_size, tok.eos_id)
    seq = ids[20000:20300]
    fast = m.score(seq)
    logits = m(torch.from_numpy(seq).view(1, -1))[0] / np.log(10)
    dense = logits[:-1].gather(-1, torch.from_numpy(seq[1:]).view(-1, 1))[:, 0].numpy()
    np.testing.assert_allclose(dense, fast[1:], atol=1e-5)
    state = m.new_state(1)
    parts = [m(torch.from_numpy(seq[i : i + 37]).view(1, -1), state) for i in range(0, 300, 37)]
    np.testing.assert_allclose(
        torch.cat(parts, 1).numpy(), (logits * np.log(10)).numpy()[None], atol=1e-5
    )
    # Training text is more probable than unseen text, and the 4-gram beats a unigram.
    assert m.perplexity(seq) < NGramLM.fit(ids[:20000], 1, tok.vocab_size, tok.eos_id).perplexity(
        seq
    )


def test_ptb_matches_kenlm_lmplz_reference() -> None:
    d = DATA / "ptb"
    if not (d / "ptb.train.txt").is_file():
        pytest.skip(f"Penn Treebank not found under {d}")
    train = read_text(d / "ptb.train.txt")
    tok = whitespace_tokenizer([train])
    ids = encode_lines(tok, train)
    valid = encode_lines(tok, read_text(d / "ptb.valid.txt"))
    test = encode_lines(tok, read_text(d / "ptb.test.txt"))
    m5 = NGramLM.fit(ids, 5, tok.vocab_size, tok.eos_id)
    # KenLM lmplz -o 5 on the same files: 148.01 valid, 141.19 test.
    assert m5.perplexity(valid) == pytest.approx(148.01, abs=0.01)
    assert m5.perplexity(test) == pytest.approx(141.19, abs=0.01)


def test_rebuilds_from_config_and_saved_tensors() -> None:
    m = toy_model(3)
    clone = build_model("ngram", {"vocab_size": 4, "order": 3, "eos_id": 0})
    clone.load_tensors(m.tensors_for_save())
    x = torch.tensor([[1, 2, 0, 1]])
    torch.testing.assert_close(clone(x), m(x))
    assert m.num_params() > 0


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(LmlabError, match="order"):
        NGramLM.fit(TOY, order=7, vocab_size=4)
    with pytest.raises(LmlabError, match="order"):
        NGramConfig(order=0)
    with pytest.raises(LmlabError, match="token ids"):
        NGramLM.fit(np.array([1, 9]), order=2, vocab_size=4)
    with pytest.raises(LmlabError, match="no tokens"):
        NGramLM.fit(np.array([], dtype=np.int64), order=2, vocab_size=4)
    with pytest.raises(LmlabError, match="do not match"):
        toy_model(2).load_tensors(toy_model(3).tensors_for_save())


def test_corrupt_tables_are_rejected() -> None:
    t = toy_model(3).tensors_for_save()
    t["key_2"] = t["key_2"].flip(0)  # keys out of order: lookups would silently fail
    with pytest.raises(LmlabError, match="corrupt"):
        toy_model(3).load_tensors(t)
    t = toy_model(3).tensors_for_save()
    t["bow_2"] = t["bow_2"][:-1]
    with pytest.raises(LmlabError, match="corrupt"):
        toy_model(3).load_tensors(t)
