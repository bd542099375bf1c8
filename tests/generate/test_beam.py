"""Seq2seq decoding on tiny random models: beam width 1 is greedy, beam search never scores
below greedy, n-best lists are sorted and distinct, scores are the model's log-probabilities,
sampling follows its generator."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from lmlab.generate.beam import beam_search, greedy, length_penalty, sample
from lmlab.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from lmlab.models.seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig

BOS, EOS = 0, 1


def model_for(kind: str, seed: int):
    torch.manual_seed(seed)
    if kind == "rnn":
        m = Seq2SeqRNN(Seq2SeqRNNConfig(src_vocab_size=20, tgt_vocab_size=6, embed_dim=16,
                                        hidden=16, attn_dim=8, dropout=0.0, context_length=24))  # fmt: skip
    else:  # "copy": a pointer-generator over one vocabulary for source and target
        copy = kind == "copy"
        m = EncoderDecoder(EncoderDecoderConfig(src_vocab_size=20, tgt_vocab_size=20 if copy else 6,
                                                d_model=32, n_head=2, n_enc_layer=1,
                                                n_dec_layer=2, dropout=0.0, context_length=24,
                                                tie_output=False, copy=copy))  # fmt: skip
    with torch.no_grad():  # peakier distributions, so that the end token and ties of beams occur
        m.head.weight.mul_(40.0)
    return m.eval()


def sources(seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(2, 20, (6, 5), generator=g)
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[3, 2:] = False
    mask[5, 4:] = False
    return src, mask


def logprob(model, src, mask, tokens: list[int]) -> float:
    """Log-probability of ``tokens`` after the start token, teacher-forced."""
    tgt = torch.tensor([[BOS, *tokens]])
    with torch.no_grad():
        lp = F.log_softmax(model(src[None], mask[None], tgt[:, :-1]).float(), -1)[0]
    return float(lp.gather(1, tgt[0, 1:, None]).sum())


@pytest.mark.parametrize("kind", ["transformer", "copy", "rnn"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_is_greedy(kind, seed):
    model = model_for(kind, seed)
    src, mask = sources(seed)
    g = greedy(model, src, mask, BOS, EOS, max_len=12)
    b = beam_search(model, src, mask, BOS, EOS, width=1, max_len=12, alpha=0.0,
                    with_greedy=False)  # fmt: skip
    assert [h.tokens for h in g] == [n[0].tokens for n in b]
    for h, n in zip(g, b, strict=True):
        assert n[0].logprob == pytest.approx(h.logprob, abs=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "copy", "rnn"])
@pytest.mark.parametrize(("alpha", "early"), [(0.0, True), (1.0, True), (0.6, False)])
def test_beam_never_scores_below_greedy(kind, alpha, early):
    for seed in range(4):
        model = model_for(kind, seed)
        src, mask = sources(seed + 10)
        g = greedy(model, src, mask, BOS, EOS, max_len=10, alpha=alpha)
        for width in (2, 4):
            b = beam_search(model, src, mask, BOS, EOS, width=width, max_len=10, alpha=alpha,
                            early_stopping=early)  # fmt: skip
            for gh, best in zip(g, b, strict=True):
                assert best[0].score >= gh.score - 1e-5


@pytest.mark.parametrize("kind", ["transformer", "copy", "rnn"])
def test_scores_are_the_models_log_probabilities(kind):
    seed = 5 if kind == "copy" else 3  # seeds whose beams do reach the end token
    model = model_for(kind, seed)
    src, mask = sources(seed)
    nbest = beam_search(model, src, mask, BOS, EOS, width=4, n_best=3, max_len=10, alpha=0.7)
    ended = 0
    for r, hyps in enumerate(nbest):
        assert 1 <= len(hyps) <= 3
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        for h in hyps:
            ended += h.tokens[-1] == EOS
            assert h.logprob == pytest.approx(logprob(model, src[r], mask[r], h.tokens), abs=1e-3)
            assert h.score == pytest.approx(h.logprob / length_penalty(len(h.tokens), 0.7))
    assert ended > 0  # the end token does occur in these models


def test_batched_beam_equals_one_row_at_a_time():
    model = model_for("transformer", 5)
    src, mask = sources(5)
    together = beam_search(model, src, mask, BOS, EOS, width=3, max_len=10, n_best=2)
    for r in range(src.shape[0]):
        n = int(mask[r].sum())
        alone = beam_search(model, src[r : r + 1, :n], mask[r : r + 1, :n], BOS, EOS, width=3,
                            max_len=10, n_best=2)[0]  # fmt: skip
        assert [h.tokens for h in alone] == [h.tokens for h in together[r]]


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    model = model_for("rnn", 6)
    src, mask = sources(6)
    a = sample(model, src, mask, BOS, EOS, max_len=10, generator=torch.Generator().manual_seed(3))
    b = sample(model, src, mask, BOS, EOS, max_len=10, generator=torch.Generator().manual_seed(3))
    assert [h.tokens for h in a] == [h.tokens for h in b]
    k1 = sample(model, src, mask, BOS, EOS, max_len=10, top_k=1)
    assert [h.tokens for h in k1] == [h.tokens for h in greedy(model, src, mask, BOS, EOS, 10)]
    for h in a:
        assert 1 <= len(h.tokens) <= 10


def test_ban_repeats_blocks_exactly_the_tokens_that_complete_a_seen_ngram():
    from lmlab.generate.beam import ban_repeats

    hist = [[1, 2, 3, 1, 2], [4], []]

    def banned(n: int) -> list[list[int]]:
        lp = ban_repeats(torch.zeros(3, 6), [list(h) for h in hist], n)
        return [torch.nonzero(torch.isinf(row)).flatten().tolist() for row in lp]

    assert banned(0) == [[], [], []]
    assert banned(3) == [[3], [], []]  # "1 2" was followed by 3
    assert banned(2) == [[3], [], []]  # "2" was followed by 3
    assert banned(1) == [[1, 2, 3], [4], []]  # no token twice


@pytest.mark.parametrize("kind", ["transformer", "copy", "rnn"])
def test_no_repeat_ngram_outputs_never_repeat_one_and_beam_still_beats_greedy(kind):
    model = model_for(kind, 2)
    src, mask = sources(2)
    with torch.no_grad():  # flatter distributions than the other tests': repeats are likely
        model.head.weight.div_(40.0)
    plain = [h[0].tokens for h in beam_search(model, src, mask, BOS, EOS, width=3, max_len=16)]
    assert any(len(set(pairwise(t))) < len(t) - 1 for t in plain)  # repeats without the ban

    g = greedy(model, src, mask, BOS, EOS, max_len=16, no_repeat_ngram=2)
    b = beam_search(model, src, mask, BOS, EOS, width=3, max_len=16, no_repeat_ngram=2)
    for gh, nb in zip(g, b, strict=True):
        for t in (gh.tokens, nb[0].tokens):
            assert len(set(pairwise(t))) == len(t) - 1  # every bigram once
        assert nb[0].score >= gh.score - 1e-6
