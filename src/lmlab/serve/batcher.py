"""Continuous batching: one worker thread per model decodes every active request.

The HTTP handlers never touch the model. They hand a :class:`GenRequest` to the model's
:class:`ModelWorker` and read :class:`~lmlab.generate.engine.TokenEvent` objects back as
they come. The worker thread keeps a list of *groups*, each one batch through the model
with its decoding state, and advances every group by one token per round, so streams
interleave and nobody waits for a long generation to end. Requests that arrive together
are prefilled together when their prompts have the same length, and groups whose states
can be joined (see :mod:`lmlab.serve.states`) are joined into one forward per step.

Each request keeps its own sampling parameters, seed, repetition mask and stop strings,
and draws its tokens with the engine's own :func:`~lmlab.generate.sampling.choose` and
incremental detokeniser, on its own rows of the batch; so a request gives the same tokens
as ``lmlab.generate.generate`` with the same seed, batched or not.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lmlab.errors import LmlabError
from lmlab.generate.engine import TokenEvent, model_vocab, sample_text
from lmlab.generate.sampling import SamplingParams, choose
from lmlab.models import LanguageModel
from lmlab.serve import states
from lmlab.tokenize import Tokenizer

FINISHED = "finished"  # emitted once after a request's last TokenEvent


class RequestTimeout(Exception):
    """The request ran past its deadline; its stream is ended."""


class QueueFull(Exception):
    """The model already has as many requests as it accepts."""


@dataclass
class GenRequest:
    """One prompt to continue; ``emit`` receives TokenEvents, then FINISHED or an exception.

    ``emit`` is called from the worker thread and must be thread-safe (the server passes
    ``loop.call_soon_threadsafe``-based callbacks)."""

    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[Any], None]
    logprobs: bool = False
    top_logprobs: int = 0
    deadline: float | None = None  # time.monotonic() value
    cancelled: threading.Event = field(default_factory=threading.Event)
    score_prompt: bool = False  # emit the prompt tokens' PromptScores first (echo + logprobs)


@dataclass
class PromptScores:
    """Log-probabilities of a prompt's tokens under the model (the first has none), and the
    ``top`` most likely tokens at each position: what ``echo`` with ``logprobs`` returns."""

    ids: list[int]
    logprobs: list[float | None]
    top: list[list[tuple[int, float]]]


class _Active:
    """A request being decoded: its rows' texts, histories, repetition mask and generator."""

    def __init__(self, req: GenRequest, tokenizer: Tokenizer, vocab: int, device) -> None:
        p = req.params
        self.req, self.n = req, p.n
        self.gen = None
        if p.seed is not None:
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(p.seed)
        self.texts = [sample_text(tokenizer, p, req.prompt_ids) for _ in range(p.n)]
        self.history = [list(req.prompt_ids) for _ in range(p.n)]
        self.seen = None
        if p.repetition_penalty != 1.0:
            self.seen = torch.zeros(p.n, vocab, dtype=torch.bool, device=device)
            self.seen[:, req.prompt_ids] = True
        self.done = [False] * p.n
        self.steps = 0


@dataclass
class _Group:
    state: Any
    logits: torch.Tensor  # (rows, V): the next-token logits of every row
    members: list[_Active]

    @property
    def rows(self) -> int:
        return sum(a.n for a in self.members)


@dataclass
class _Prefill:
    """A long prompt being read one chunk per worker turn, between decoding steps."""

    member: _Active
    ids: torch.Tensor  # (rows, prompt length)
    state: Any
    done: int = 0  # prompt tokens read so far


class ModelWorker:
    """The thread that owns one model and decodes all its requests in batches.

    ``batch=False`` keeps one forward per request (still interleaved); ``window_s`` is how
    long an idle worker waits after a first request for others to batch with it;
    ``threads`` sets torch's intra-op threads (process-wide) when the worker starts.
    A Transformer reads a prompt longer than ``prefill_chunk`` tokens that many tokens per
    forward, one chunk per turn of the worker, between the decoding steps of the requests
    already running (chunked prefill), so a long prompt never holds them for its whole
    prefill; 0 reads every prompt in one forward.
    """

    def __init__(
        self,
        model: LanguageModel,
        tokenizer: Tokenizer,
        name: str = "model",
        batch: bool = True,
        max_batch: int = 64,
        window_s: float = 0.004,
        max_requests: int = 256,
        threads: int | None = None,
        prefill_chunk: int = 256,
    ) -> None:
        self.model, self.tok, self.name = model, tokenizer, name
        self.threads = threads
        self.batch, self.max_batch, self.window_s = batch, max_batch, window_s
        self.max_requests = max_requests
        self.device = next(iter(model.parameters()), torch.empty(0)).device
        self.vocab = model_vocab(model, tokenizer)
        # A Transformer whose KV cache takes rows of different lengths: prompts of any length
        # are prefilled together, right-padded (causal attention never looks at the padding)
        probe = model.new_state(1, self.device)
        self.ragged = batch and hasattr(probe, "lengths") and states.kind(probe) == "kv"
        self.prefill_chunk = prefill_chunk if states.kind(probe) == "kv" else 0
        self._inbox: queue.Queue[GenRequest | None] = queue.Queue()
        self._groups: list[_Group] = []
        self._prefilling: list[_Prefill] = []
        self._lock = threading.Lock()
        self._inflight = 0
        # decode forwards, rows they carried, the largest batch (evidence of batching), the
        # most requests decoded at once, and requests ended by a client leaving or a timeout
        self.stats = dict.fromkeys(
            ("forwards", "rows", "max_rows", "prefills", "prefill_chunks", "max_active",
             "cancelled", "timeouts"),
            0,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._loop, name=f"lmlab-{name}", daemon=True)
        self._thread.start()

    # ---- the handlers' side --------------------------------------------------------------
    def submit(self, req: GenRequest) -> None:
        with self._lock:
            if self._inflight >= self.max_requests:
                raise QueueFull(f"model {self.name!r} is busy ({self._inflight} requests)")
            self._inflight += 1
        self._inbox.put(req)

    @property
    def inflight(self) -> int:
        return self._inflight

    def close(self, timeout: float = 5.0) -> None:
        self._inbox.put(None)
        self._thread.join(timeout)

    # ---- the worker thread -----------------------------------------------------------------
    def _loop(self) -> None:
        if self.threads:
            # torch's intra-op pool is shared by the process; small decoding steps run
            # fastest on few threads (a busy core stalls every parallel region's barrier)
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            while True:
                new = self._collect(block=not self._groups and not self._prefilling)
                if new is None:
                    waiting = [a for g in self._groups for a in g.members]
                    for a in waiting + [p.member for p in self._prefilling]:
                        self._end(a.req, RequestTimeout("the server is shutting down"))
                    return
                if new:
                    self._admit(new)
                for g in list(self._groups):
                    try:
                        self._step(g)
                    except Exception as e:  # a model failure ends these requests, not the server
                        self._groups.remove(g)
                        for a in g.members:
                            self._end(a.req, e)
                if self._prefilling:
                    self._prefill_next_chunk()
                if len(self._groups) > 1:
                    self._join_groups()

    def _collect(self, block: bool) -> list[GenRequest] | None:
        out: list[GenRequest] = []
        if block:
            first = self._inbox.get()
            if first is None:
                return None
            out.append(first)
            until = time.monotonic() + (self.window_s if self.batch else 0.0)
            while (left := until - time.monotonic()) > 0:
                try:
                    item = self._inbox.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:
                    return None
                out.append(item)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return out
            if item is None:
                return None
            out.append(item)

    def _end(self, req: GenRequest, what: Any) -> None:
        with self._lock:
            self._inflight -= 1
        if req.cancelled.is_set():
            self.stats["cancelled"] += 1
        elif isinstance(what, RequestTimeout):
            self.stats["timeouts"] += 1
        if not req.cancelled.is_set():
            self._emit(req, what)

    def _emit(self, req: GenRequest, item: Any) -> None:
        try:
            req.emit(item)
        except RuntimeError:  # the client's event loop is gone
            req.cancelled.set()

    def _admit(self, new: list[GenRequest]) -> None:
        now = time.monotonic()
        buckets: dict[int, list[GenRequest]] = {}
        for req in new:
            if req.cancelled.is_set():
                self._end(req, None)
            elif req.deadline is not None and now > req.deadline:
                self._end(req, RequestTimeout("the request timed out in the queue"))
            elif req.score_prompt and not self._score_prompt(req):
                continue
            elif req.params.max_new_tokens == 0:
                for i in range(req.params.n):
                    self._emit(req, TokenEvent(i, -1, "", 0.0, finish_reason="length"))
                self._end(req, FINISHED)
            elif self.prefill_chunk and len(req.prompt_ids) > self.prefill_chunk:
                self._start_chunked_prefill(req)
            else:
                key = 0 if self.ragged else len(req.prompt_ids) if self.batch else id(req)
                buckets.setdefault(key, []).append(req)
        for reqs in buckets.values():
            chunk: list[GenRequest] = []
            for req in reqs:
                if chunk and sum(r.params.n for r in chunk) + req.params.n > self.max_batch:
                    self._prefill(chunk)
                    chunk = []
                chunk.append(req)
            self._prefill(chunk)
        if len(self._groups) > 1:
            self._join_groups()
        active = sum(len(g.members) for g in self._groups)
        self.stats["max_active"] = max(self.stats["max_active"], active)

    def _score_prompt(self, req: GenRequest) -> bool:
        """Emit the prompt's :class:`PromptScores` (one forward over the prompt); False if
        the model failed and the request has been ended."""
        ids = req.prompt_ids
        try:
            state = self.model.new_state(1, self.device)
            x = torch.tensor([ids], dtype=torch.long, device=self.device)
            logp = self.model(x, state)[0, :-1].float().log_softmax(-1)  # (T-1, V)
            nxt = torch.tensor(ids[1:], dtype=torch.long, device=self.device)
            lps = logp.gather(1, nxt[:, None]).squeeze(1).tolist() if len(ids) > 1 else []
            tops: list[list[tuple[int, float]]] = [[]]
            if req.top_logprobs and len(ids) > 1:
                t = logp.topk(min(req.top_logprobs, logp.shape[-1]), dim=-1)
                tops += [list(zip(i, v, strict=True))
                         for i, v in zip(t.indices.tolist(), t.values.tolist(), strict=True)]  # fmt: skip
            else:
                tops += [[] for _ in ids[1:]]
        except Exception as e:
            self._end(req, e if isinstance(e, LmlabError) else RuntimeError(str(e)))
            return False
        self._emit(req, PromptScores(list(ids), [None, *lps], tops))
        return True

    def _prefill(self, reqs: list[GenRequest]) -> None:
        try:
            members = [_Active(r, self.tok, self.vocab, self.device) for r in reqs]
            rows = [h for a in members for h in a.history]
            lengths = [len(r) for r in rows]
            longest = max(lengths)
            pad = self.tok.eos_id
            ids = torch.tensor(
                [r + [pad] * (longest - len(r)) for r in rows], dtype=torch.long, device=self.device
            )
            state = self.model.new_state(len(rows), self.device)
            out = self.model(ids, state)
            last = torch.tensor(lengths, device=self.device) - 1
            logits = out[torch.arange(len(rows), device=self.device), last]
            if min(lengths) < longest:  # right-padded rows: each continues from its own length
                state.lengths = last + 1
                state.pos = longest
        except Exception as e:
            for r in reqs:
                self._end(r, e if isinstance(e, LmlabError) else RuntimeError(str(e)))
            return
        self.stats["prefills"] += 1
        self._groups.append(_Group(state, logits, members))

    def _start_chunked_prefill(self, req: GenRequest) -> None:
        try:
            a = _Active(req, self.tok, self.vocab, self.device)
            ids = torch.tensor(a.history, dtype=torch.long, device=self.device)
            self._prefilling.append(_Prefill(a, ids, self.model.new_state(a.n, self.device)))
        except Exception as e:
            self._end(req, e if isinstance(e, LmlabError) else RuntimeError(str(e)))

    def _prefill_next_chunk(self) -> None:
        """Read the next chunk of the oldest long prompt; once it is read, its rows join
        the decoding groups."""
        p = self._prefilling[0]
        req = p.member.req
        if req.cancelled.is_set():
            self._prefilling.pop(0)
            self._end(req, None)
            return
        if req.deadline is not None and time.monotonic() > req.deadline:
            self._prefilling.pop(0)
            self._end(req, RequestTimeout("the request took longer than the server's timeout"))
            return
        try:
            chunk = p.ids[:, p.done : p.done + self.prefill_chunk]
            out = self.model(chunk, p.state)
        except Exception as e:
            self._prefilling.pop(0)
            self._end(req, e if isinstance(e, LmlabError) else RuntimeError(str(e)))
            return
        p.done += chunk.shape[1]
        self.stats["prefill_chunks"] += 1
        if p.done >= p.ids.shape[1]:
            self._prefilling.pop(0)
            self.stats["prefills"] += 1
            self._groups.append(_Group(p.state, out[:, -1], [p.member]))

    def _join_groups(self) -> None:
        if not self.batch:
            return
        merged: list[_Group] = []
        for g in self._groups:
            for m in merged:
                if m.rows + g.rows <= self.max_batch and states.can_join(m.state, g.state):
                    m.state = states.join([m.state, g.state])
                    m.logits = torch.cat([m.logits, g.logits])
                    m.members += g.members
                    break
            else:
                merged.append(g)
        self._groups = merged

    def _step(self, g: _Group) -> None:
        """Choose one token for every row of ``g``, emit the events, run the next forward."""
        want_lp = any(a.req.logprobs or a.req.top_logprobs for a in g.members)
        logp_all = g.logits.float().log_softmax(-1) if want_lp else None
        now = time.monotonic()
        keep: list[_Active] = []
        keep_rows: list[int] = []
        next_ids: list[torch.Tensor] = []
        off = 0
        for a in g.members:
            lo, off = off, off + a.n
            req, p = a.req, a.req.params
            if req.cancelled.is_set():
                self._end(req, None)
                continue
            if req.deadline is not None and now > req.deadline:
                self._end(req, RequestTimeout("the request took longer than the server's timeout"))
                continue
            nxt = choose(g.logits[lo:off], p, a.seen, a.gen)  # (n,)
            nxt_list = nxt.tolist()
            lps, tops = [0.0] * a.n, None
            if logp_all is not None and (req.logprobs or req.top_logprobs):
                logp = logp_all[lo:off]
                lps = logp.gather(1, nxt[:, None]).squeeze(1).tolist()
                if req.top_logprobs:
                    t = logp.topk(min(req.top_logprobs, logp.shape[-1]), dim=-1)
                    tops = (t.indices.tolist(), t.values.tolist())
            a.steps += 1
            for i in range(a.n):
                if a.done[i]:
                    continue
                delta, stopped = a.texts[i].push(nxt_list[i])
                finish = "stop" if stopped else ("length" if a.steps >= p.max_new_tokens else None)
                if finish == "length":
                    delta += a.texts[i].flush()
                top = list(zip(tops[0][i], tops[1][i], strict=True)) if tops else []
                if finish:
                    a.done[i] = True
                self._emit(req, TokenEvent(i, nxt_list[i], delta, lps[i], top, finish))
            if all(a.done):
                self._end(req, FINISHED)
                continue
            for h, t in zip(a.history, nxt_list, strict=True):
                h.append(t)
            if a.seen is not None:
                a.seen.scatter_(1, nxt[:, None], True)
            keep.append(a)
            keep_rows.extend(range(lo, off))
            next_ids.append(nxt)
        if not keep:
            self._groups.remove(g)
            return
        if len(keep_rows) < g.rows:
            g.state = states.select(g.state, keep_rows)
        g.members = keep
        ctx = self.model.context_length
        pos = states.positions(g.state)
        if ctx is not None and pos is not None and max(pos) >= ctx:
            # Requests whose window is full restart from the last half of their context
            # (as the engine does), in a group of their own; the others decode on.
            stay, stay_rows, stay_ids, off = [], [], [], 0
            for a, nxt in zip(keep, next_ids, strict=True):
                if pos[off] >= ctx:
                    window = [h[-(ctx // 2) :] for h in a.history]
                    state = self.model.new_state(len(window), self.device)
                    logits = self.model(torch.tensor(window, device=self.device), state)[:, -1]
                    self._groups.append(_Group(state, logits, [a]))
                else:
                    stay.append(a)
                    stay_rows.extend(range(off, off + a.n))
                    stay_ids.append(nxt)
                off += a.n
            if not stay:
                self._groups.remove(g)
                return
            g.state, g.members, next_ids = states.select(g.state, stay_rows), stay, stay_ids
            keep_rows = stay_rows
        g.logits = self.model(torch.cat(next_ids)[:, None], g.state)[:, -1]
        self.stats["forwards"] += 1
        self.stats["rows"] += len(keep_rows)
        self.stats["max_rows"] = max(self.stats["max_rows"], len(keep_rows))


def complete_all(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    params: SamplingParams,
    max_batch: int = 16,
    on_done: Callable[[int], None] | None = None,
) -> list[str]:
    """The first sample's text for each of ``prompts``, decoded offline through one
    :class:`ModelWorker` with at most ``max_batch`` requests in flight (continuous
    batching: a finished row's place goes to the next prompt at once).

    For evaluations that generate many replies: the worker gives each request the tokens
    :func:`lmlab.generate.generate` gives it alone, and batching reads the weights once per
    step for all rows instead of once per row. ``on_done(k)`` is called as prompt ``k``
    finishes (from this thread), e.g. to advance a progress bar.
    """
    results: queue.Queue[tuple[int, Any]] = queue.Queue()
    texts: list[list[str]] = [[] for _ in prompts]
    out: list[str | None] = [None] * len(prompts)

    def emitter(k: int) -> Callable[[Any], None]:
        def emit(item: Any) -> None:
            if isinstance(item, TokenEvent):
                if item.index == 0:
                    texts[k].append(item.text)
            else:  # FINISHED or the exception that ended it
                results.put((k, item))

        return emit

    worker = ModelWorker(model, tokenizer, "offline", max_batch=max_batch, window_s=0.0,
                         max_requests=max_batch)  # fmt: skip
    try:
        nxt, busy = 0, 0
        while nxt < len(prompts) or busy:
            while nxt < len(prompts) and busy < max_batch:
                worker.submit(GenRequest(list(prompts[nxt]), params, emitter(nxt)))
                nxt, busy = nxt + 1, busy + 1
            k, item = results.get()
            busy -= 1
            if item is not FINISHED:
                raise item if isinstance(item, Exception) else RuntimeError(str(item))
            out[k] = "".join(texts[k])
            if on_done is not None:
                on_done(k)
    finally:
        worker.close()
    return [t or "" for t in out]
