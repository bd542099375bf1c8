"""Decoding for sequence-to-sequence models: greedy, beam search and sampling, batched.

Works with any model that has ``start(src, src_mask) -> state``, ``step(tgt, state) ->
logits (B, T, V)`` (advancing ``state`` in place) and ``state.select(rows)``:
:class:`lmlab.models.encoder_decoder.EncoderDecoder` and
:class:`lmlab.models.seq2seq_rnn.Seq2SeqRNN`.

A hypothesis' *score* is its log-probability under the model divided by the GNMT length
penalty ``((5 + n) / 6) ** alpha`` (Wu et al. 2016; ``alpha = 0``: the plain
log-probability), where ``n`` counts its tokens including the end token. Beam search keeps
``width`` live hypotheses per source; with ``early_stopping`` a source is done once
``width`` hypotheses have ended, otherwise once no live one can still beat the worst of the
n-best. Plain beam search can prune the greedy path and end below it; by default the greedy
hypothesis is decoded too and competes in the n-best list, so beam search never returns a
lower score than greedy decoding (``with_greedy=False`` turns that off).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Hypothesis:
    tokens: list[int]  # without the start token; ends with the end token unless cut
    logprob: float  # sum of the tokens' log-probabilities
    score: float  # logprob / length penalty


def length_penalty(n: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + n) / 6) ** alpha``."""
    return ((5.0 + n) / 6.0) ** alpha if alpha else 1.0


def max_lengths(src_mask: torch.Tensor, ratio: float, extra: int, cap: int) -> list[int]:
    """Longest output per row: ``ratio * source length + extra``, at most ``cap``."""
    return [min(cap, int(ratio * int(n)) + extra) for n in src_mask.sum(1).tolist()]


def _limits(model, src_mask, max_len) -> list[int]:
    cap = model.context_length - 1
    if max_len is None:
        return max_lengths(src_mask, 2.0, 10, cap)
    if isinstance(max_len, int):
        return [min(cap, max_len)] * src_mask.shape[0]
    return [min(cap, int(n)) for n in max_len]


def ban_repeats(lp: torch.Tensor, hists: list[list[int]], n: int) -> torch.Tensor:
    """``lp`` (rows, V) with every token that would complete an ``n``-gram already in its
    row's tokens ``hists[row]`` at -inf (fairseq's and Hugging Face's
    ``no_repeat_ngram_size``); ``n`` 0: unchanged."""
    if n <= 0:
        return lp
    for r, h in enumerate(hists):
        if len(h) < n - 1 or (n == 1 and not h):
            continue
        prefix = h[len(h) - n + 1 :] if n > 1 else []
        banned = [h[i + n - 1] for i in range(len(h) - n + 1) if h[i : i + n - 1] == prefix]
        if banned:
            lp[r, banned] = float("-inf")
    return lp


@torch.no_grad()
def greedy(
    model, src, src_mask, bos: int, eos: int, max_len=None, alpha: float = 0.0,
    no_repeat_ngram: int = 0,
):  # fmt: skip
    """The most likely next token at every step; one :class:`Hypothesis` per row."""
    return _decode(model, src, src_mask, bos, eos, max_len, alpha, None, no_repeat_ngram)


@torch.no_grad()
def sample(
    model, src, src_mask, bos: int, eos: int, max_len=None, temperature: float = 1.0,
    top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
    no_repeat_ngram: int = 0,
):  # fmt: skip
    """Ancestral sampling with temperature, top-k and nucleus (top-p) filtering."""
    opts = (temperature, top_k, top_p, generator)
    return _decode(model, src, src_mask, bos, eos, max_len, 0.0, opts, no_repeat_ngram)


def _filter(logits: torch.Tensor, temperature: float, top_k: int, top_p: float):
    logits = logits / max(temperature, 1e-6)
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_l, order = logits.sort(dim=-1, descending=True)
        cum = sorted_l.softmax(-1).cumsum(-1)
        drop = cum - sorted_l.softmax(-1) > top_p  # keep the first token past top_p
        sorted_l = sorted_l.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_l)
    return logits


def _decode(model, src, src_mask, bos, eos, max_len, alpha, sample, no_repeat_ngram=0):
    B = src.shape[0]
    limits = _limits(model, src_mask, max_len)
    state = model.start(src, src_mask)
    tok = torch.full((B, 1), bos, dtype=torch.long, device=src.device)
    out = [[] for _ in range(B)]
    logp = [0.0] * B
    alive = [True] * B
    for _ in range(max(limits)):
        lp = F.log_softmax(model.step(tok, state)[:, -1].float(), dim=-1)
        lp = ban_repeats(lp, out, no_repeat_ngram)
        if sample is None:
            nxt = lp.argmax(-1)
        else:
            temperature, top_k, top_p, gen = sample
            probs = _filter(lp, temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        chosen = lp.gather(1, nxt[:, None]).squeeze(1).tolist()
        nxt_l = nxt.tolist()
        for b in range(B):
            if not alive[b]:
                continue
            out[b].append(nxt_l[b])
            logp[b] += chosen[b]
            if nxt_l[b] == eos or len(out[b]) >= limits[b]:
                alive[b] = False
        if not any(alive):
            break
        tok = torch.tensor([[eos if not alive[b] else nxt_l[b]] for b in range(B)],
                           device=src.device)  # fmt: skip
    return [
        Hypothesis(o, lp_, lp_ / length_penalty(len(o), alpha))
        for o, lp_ in zip(out, logp, strict=True)
    ]


@torch.no_grad()
def beam_search(
    model, src, src_mask, bos: int, eos: int, width: int = 5, max_len=None,
    alpha: float = 1.0, early_stopping: bool = True, n_best: int = 1, with_greedy: bool = True,
    no_repeat_ngram: int = 0,
) -> list[list[Hypothesis]]:  # fmt: skip
    """The ``n_best`` highest-scoring hypotheses of each row, best first (see the module
    docstring for the score, the stopping rule and ``with_greedy``)."""
    B, K = src.shape[0], max(1, width)
    n_best = max(1, min(n_best, K))
    limits = _limits(model, src_mask, max_len)
    dev = src.device
    state = model.start(src, src_mask).select(torch.arange(B, device=dev).repeat_interleave(K))
    tok = torch.full((B * K, 1), bos, dtype=torch.long, device=dev)
    scores = torch.zeros(B, K, device=dev)
    scores[:, 1:] = float("-inf")  # all beams start equal: keep one copy
    hist: list[list[int]] = [[] for _ in range(B * K)]
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    for t in range(max(limits)):
        lp = F.log_softmax(model.step(tok, state)[:, -1].float(), dim=-1)  # (B*K, V)
        lp = ban_repeats(lp, hist, no_repeat_ngram)
        V = lp.shape[-1]
        cand = (scores.view(B * K, 1) + lp).view(B, K * V)
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=1)
        top_s, top_i = top_s.tolist(), top_i.tolist()
        rows, toks, new_scores = [], [], []
        n = t + 1  # tokens in a hypothesis that ends now
        for b in range(B):
            keep: list[tuple[float, int, int]] = []
            if not done[b]:
                last = n >= limits[b]
                for j, (s, i) in enumerate(zip(top_s[b], top_i[b], strict=True)):
                    if s == float("-inf"):
                        break
                    k, w = divmod(i, V)
                    if w == eos or last:
                        if j < K:  # a hypothesis among the best K that ends here
                            toks_ = hist[b * K + k] + [w]
                            finished[b].append(Hypothesis(toks_, s, s / length_penalty(n, alpha)))
                    else:
                        keep.append((s, b * K + k, w))
                    if len(keep) == K:
                        break
                done[b] = (
                    last
                    or not keep
                    or _is_done(finished[b], keep, K, n, alpha, early_stopping, limits[b])
                )
            if done[b]:
                keep = [(float("-inf"), b * K, eos)] * K
            keep += [(float("-inf"), b * K, eos)] * (K - len(keep))
            for s, r, w in keep:
                new_scores.append(s)
                rows.append(r)
                toks.append(w)
        if all(done):
            break
        idx = torch.tensor(rows, device=dev)
        state = state.select(idx)
        hist = [hist[r] + [w] for r, w in zip(rows, toks, strict=True)]
        scores = torch.tensor(new_scores, device=dev).view(B, K)
        tok = torch.tensor(toks, device=dev).view(B * K, 1)
    if with_greedy:
        for b, g in enumerate(greedy(model, src, src_mask, bos, eos, limits, alpha,
                                     no_repeat_ngram)):  # fmt: skip
            if not any(h.tokens == g.tokens for h in finished[b]):
                finished[b].append(g)
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]


def _is_done(finished, keep, K, n, alpha, early_stopping, limit) -> bool:
    if len(finished) < K:
        return False
    if early_stopping:
        return True
    # the best a live hypothesis can still reach: its log-probability only falls, so with
    # alpha > 0 its best score is its current log-probability over the longest penalty
    best_live = max(s for s, _, _ in keep)
    best_live /= length_penalty(limit if alpha > 0 else n, alpha)
    worst = sorted(h.score for h in finished)[-K]
    return worst >= best_live
