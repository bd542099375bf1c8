"""The generation engine: prompt in, tokens streamed out, for any lmlab model.

It keeps the model's decoding state (the Transformer's KV cache, the LSTM's hidden state)
so each new token costs one step, crops prompts longer than the context (or refuses them),
slides the context window when a long generation fills it, and applies stop strings
without ever emitting part of one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from lmlab.errors import LmlabError
from lmlab.generate.fastdecode import fast_decoder
from lmlab.generate.sampling import SamplingParams, choose
from lmlab.models import LanguageModel
from lmlab.models.transformer import KVCache
from lmlab.tokenize import Tokenizer

# Prompts of up to this many tokens (over all rows) are prefilled by the decoding kernel
# once it is loaded: a few of its steps cost less than one PyTorch forward, whose first call
# in a process costs 10x its later ones. Longer prompts prefill in one batched forward.
FAST_PREFILL_TOKENS = 4


class PromptCroppedWarning(UserWarning):
    """The prompt was longer than the model's context and lost its beginning."""


@dataclass
class TokenEvent:
    """One generated token of sample ``index``: the text it adds (may be empty while a
    multi-byte character or a possible stop string is held back)."""

    index: int
    token_id: int
    text: str
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" on a sample's last event


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int


def prepare_prompt(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | list[int],
    on_long_prompt: str = "crop",
) -> list[int]:
    """Prompt token ids that fit the context: cropped to the last tokens (with a warning),
    or refused with ``on_long_prompt="error"``; an empty prompt starts a new document."""
    ids = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
    bos = tokenizer.bos_id if tokenizer.add_bos else None
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]  # a model trained with a start-of-sequence token sees one
    if not ids:
        ids = [tokenizer.eos_id]  # an empty prompt starts a new document
    ctx = model.context_length
    if ctx is not None and len(ids) > ctx - 1:
        if on_long_prompt == "error":
            raise LmlabError(
                f"prompt has {len(ids)} tokens but the model's context is {ctx}; shorten the prompt"
            )
        keep = ctx - 1
        warnings.warn(
            f"prompt of {len(ids)} tokens is longer than the context ({ctx}); "
            f"keeping its last {keep} tokens",
            PromptCroppedWarning,
            stacklevel=2,
        )
        ids = ids[-keep:]
    return ids


def _stop_hold(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                best = max(best, k)
                break
    return best


def sample_text(tokenizer: Tokenizer, params: SamplingParams, prompt_ids: list[int]) -> _SampleText:
    """The detokeniser of one sample: stop strings, and the end-of-document token unless
    ``params.ignore_eos`` (or the tokenizer's ``<eos>`` only ends lines)."""
    stop_at_eos = not params.ignore_eos and tokenizer.eos_ends_document
    return _SampleText(tokenizer, params.stop, prompt_ids, stop_at_eos)


class _SampleText:
    """Incremental detokenisation of one sample, with stop strings.

    Each new token is decoded together with a few committed tokens (so word spacing and
    byte-level merges come out right) instead of re-decoding the whole sample: constant
    work per token. The window of committed tokens grows from ``CONTEXT`` to twice that
    and then restarts, so the decoded window is reused as the next token's base: about
    one decode per token instead of two.
    """

    CONTEXT = 4

    def __init__(
        self,
        tokenizer: Tokenizer,
        stops: list[str],
        prompt_ids: list[int] = (),
        stop_at_eos: bool = False,
    ) -> None:
        self.tok, self.stops = tokenizer, [s for s in stops if s]
        self.ends = tokenizer.end_ids if stop_at_eos else set()
        self.longest_stop = max((len(s) for s in self.stops), default=0)
        # The prompt's last tokens give the first new token its context (a space before a
        # word, say); they are never emitted themselves.
        specials = set(tokenizer.special_tokens.values())
        self.ids: list[int] = [i for i in prompt_ids if i not in specials][-self.CONTEXT :]
        self.pending: list[int] = []  # tokens that end in an incomplete character
        self.emitted = 0
        self.text = ""
        self._start = 0  # the context window is self.ids[self._start :]
        self._base: str | None = None  # its decoded text, once known
        self._full = ""  # the window plus pending tokens, decoded

    def _piece(self) -> str:
        if len(self.ids) - self._start > 2 * self.CONTEXT:
            self._start, self._base = len(self.ids) - self.CONTEXT, None
        ctx = self.ids[self._start :]
        if self._base is None:
            self._base = self.tok.decode(ctx) if ctx else ""
        base = self._base
        self._full = full = self.tok.decode(ctx + self.pending)
        return full[len(base) :] if full.startswith(base) else full

    def _commit(self) -> None:
        self.ids.extend(self.pending)
        self.pending.clear()
        self._base = self._full  # the window now ends with the committed tokens

    def push(self, token_id: int) -> tuple[str, bool]:
        """Add a token; returns (text safe to emit now, whether a stop string or the
        end-of-document token was hit)."""
        if token_id in self.ends:  # the end of the document: emit what was held back, stop
            return self.flush(), True
        self.pending.append(token_id)
        piece = self._piece()
        if piece.endswith("\ufffd") and len(self.pending) < 4:
            return "", False  # an incomplete multi-byte character: wait for the rest
        self._commit()
        self.text += piece
        if self.stops:
            window = max(0, self.emitted - self.longest_stop)
            hits = [at for at in (self.text.find(s, window) for s in self.stops) if at != -1]
            if hits:
                self.text = self.text[: min(hits)]
                out = self.text[self.emitted :]
                self.emitted = len(self.text)
                return out, True
        safe = len(self.text) - _stop_hold(
            self.text[-self.longest_stop :] if self.stops else "", self.stops
        )
        out = self.text[self.emitted : max(self.emitted, safe)]
        self.emitted = max(self.emitted, safe)
        return out, False

    def flush(self) -> str:
        if self.pending:
            self.text += self._piece()
            self._commit()
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out


def _prefill(model, fast, prompt: torch.Tensor, state) -> torch.Tensor:
    """The logits after the prompt ``(n, L)``, its keys and values now in ``state``."""
    if fast and fast.ready and prompt.numel() <= FAST_PREFILL_TOKENS:
        return fast.prefill(prompt, state)  # a short prompt: skip PyTorch's first call
    return model(prompt, state)[:, -1]


@torch.inference_mode()
def generate_stream(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | list[int],
    params: SamplingParams,
    top_logprobs: int = 0,
    on_long_prompt: str = "crop",
    logprobs: bool = True,
    fast_decode: bool | None = None,
) -> Iterator[TokenEvent]:
    """Yield a :class:`TokenEvent` per generated token for each of ``params.n`` samples
    (``logprob`` is 0.0 when ``logprobs`` is off and no ``top_logprobs`` are asked for).

    Transformers on CPU decode with :mod:`lmlab.generate.fastdecode` where it applies, once
    its kernel is loaded (``fast_decode=True``: wait for it; ``False`` or
    ``LMLAB_FAST_DECODE=0``: PyTorch only); the same tokens either way.
    """
    if model.training:  # (eval() walks every module: a tenth of a millisecond a call)
        model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    ids = prepare_prompt(model, tokenizer, prompt, on_long_prompt)
    n, ctx = params.n, model.context_length
    gen = None
    if params.seed is not None:
        gen = torch.Generator(device=device)
        gen.manual_seed(params.seed)
    prompt_t = torch.tensor([ids] * n, dtype=torch.long, device=device)  # (n, L)
    history: list[list[int]] = [list(ids) for _ in range(n)]  # for re-filling a full window
    seen = None
    if params.repetition_penalty != 1.0:
        seen = torch.zeros(n, model_vocab(model, tokenizer), dtype=torch.bool, device=device)
        seen.scatter_(1, prompt_t, True)
    fast = fast_decoder(model, fast_decode, rows=n)
    state = fast.new_state(n) if fast else model.new_state(n, device)
    if n > 1 and isinstance(state, KVCache):  # n samples of one prompt: prefill it once
        one = fast.new_state(1) if fast else model.new_state(1, device)
        logits = _prefill(model, fast, prompt_t[:1], one).repeat(n, 1)
        state.reserve(one.pos)
        for dst, src in zip(state.k + state.v, one.k + one.v, strict=True):
            dst[:, :, : one.pos] = src[:, :, : one.pos]
        state.pos = one.pos
    else:
        logits = _prefill(model, fast, prompt_t, state)
    texts = [sample_text(tokenizer, params, ids) for _ in range(n)]
    done = [params.max_new_tokens == 0] * n
    for i in range(n) if params.max_new_tokens == 0 else ():
        yield TokenEvent(i, -1, "", 0.0, finish_reason="length")
    steps = 0
    while not all(done):
        nxt = choose(logits, params, seen, gen)  # (n,)
        if logprobs or top_logprobs:
            logp = logits.float().log_softmax(-1)
            chosen_lp = logp.gather(1, nxt[:, None]).squeeze(1).tolist()
            tops = logp.topk(top_logprobs, dim=-1) if top_logprobs else None
        else:
            chosen_lp, tops = [0.0] * n, None
        steps += 1
        nxt_list = nxt.tolist()
        for i in range(n):
            if done[i]:
                continue
            delta, stopped = texts[i].push(nxt_list[i])
            finish = "stop" if stopped else ("length" if steps >= params.max_new_tokens else None)
            if finish == "length":
                delta += texts[i].flush()
            top = (
                list(zip(tops.indices[i].tolist(), tops.values[i].tolist(), strict=True))
                if tops is not None
                else []
            )
            if finish:
                done[i] = True
            yield TokenEvent(i, nxt_list[i], delta, chosen_lp[i], top, finish)
        if all(done):
            break
        for h, t in zip(history, nxt_list, strict=True):
            h.append(t)
        if seen is not None:
            seen.scatter_(1, nxt[:, None], True)
        if ctx is not None and getattr(state, "pos", 0) >= ctx:
            # The window is full: restart the cache from the last half of the context.
            keep = torch.tensor(
                [h[-(ctx // 2) :] for h in history], dtype=torch.long, device=device
            )
            state = fast.new_state(n) if fast else model.new_state(n, device)
            logits = model(keep, state)[:, -1]
        elif fast and (fast.ready or fast_decode):  # else PyTorch until the kernel is loaded
            logits = fast.step(nxt, state)  # the same as the model's forward, in one call
        else:
            logits = model(nxt[:, None], state)[:, -1]


def warm_up(
    model: LanguageModel, tokenizer: Tokenizer, params: SamplingParams | None = None
) -> None:
    """Make ``model`` ready to decode at full speed, as the last step of loading it.

    Exports the weights for the decoding kernel (waiting for the kernel to load) and
    generates one throwaway token with ``params``' sampling rules, which pays PyTorch's
    first-call costs of those operators. llama.cpp's loader runs the same kind of warm-up
    decode. Afterwards the first real token costs about what every later one does. The
    throwaway sample has its own seed, so the global random state is left as it was.
    """
    model.eval()
    fast = fast_decoder(model)
    if fast is not None:
        fast.loader.wait()
    base = params or SamplingParams()
    warm = replace(base, n=1, max_new_tokens=1, seed=0, stop=[])
    bos = getattr(tokenizer, "bos_id", None)
    for _ in generate_stream(model, tokenizer, [0 if bos is None else bos], warm, logprobs=False):
        pass


def model_vocab(model: LanguageModel, tokenizer: Tokenizer) -> int:
    return int(getattr(model.config, "vocab_size", tokenizer.vocab_size))


def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | list[int],
    params: SamplingParams,
    on_long_prompt: str = "crop",
    fast_decode: bool | None = None,
) -> list[Completion]:
    """Run :func:`generate_stream` to the end; one :class:`Completion` per sample."""
    ids = prepare_prompt(model, tokenizer, prompt, on_long_prompt)
    parts: list[list[str]] = [[] for _ in range(params.n)]
    tokens: list[list[int]] = [[] for _ in range(params.n)]
    reasons = ["length"] * params.n
    for ev in generate_stream(
        model, tokenizer, ids, params, logprobs=False, fast_decode=fast_decode
    ):
        parts[ev.index].append(ev.text)
        if ev.token_id >= 0:
            tokens[ev.index].append(ev.token_id)
        if ev.finish_reason:
            reasons[ev.index] = ev.finish_reason
    return [
        Completion("".join(p), t, r, len(ids))
        for p, t, r in zip(parts, tokens, reasons, strict=True)
    ]
