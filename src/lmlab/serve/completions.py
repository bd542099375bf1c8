"""``POST /v1/completions`` and ``POST /v1/chat/completions``, streamed or whole.

Both go through the model's worker (see :mod:`lmlab.serve.batcher`): the handler checks
the request, encodes the prompt, and turns token events into OpenAI's response or its
server-sent-event chunks. ``usage`` comes with every answer; in a stream it rides on the
chunk that finishes the last choice (and, with ``stream_options.include_usage``, also
on a final chunk without choices, as OpenAI sends it).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lmlab.errors import LmlabError
from lmlab.generate.engine import TokenEvent, sample_text
from lmlab.generate.sampling import SamplingParams
from lmlab.serve.batcher import PromptScores
from lmlab.serve.chat_template import fit_chat
from lmlab.serve.errors import APIError
from lmlab.serve.limits import ServeSettings
from lmlab.serve.registry import ServedModel
from lmlab.serve.schemas import MAX_STOPS, ChatRequest, CompletionRequest, ErrorResponse, _Sampling
from lmlab.serve.stream import (
    SSE_DONE,
    SSE_HEADERS,
    Trim,
    collect,
    new_id,
    sse,
    sse_error,
    token_events,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in [
        (400, "invalid request"),
        (401, "missing or wrong API key"),
        (404, "unknown model"),
        (408, "the request timed out"),
        (413, "request body too large"),
        (429, "the model is busy"),
    ]
}
STREAM_DOC = {"content": {"text/event-stream": {}}, "description": "JSON, or SSE chunks"}
MAX_PROMPTS = 32


def _check_supported(body: _Sampling) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name):
            raise APIError(
                400, f"{name} is not supported; use repetition_penalty", "unsupported", name
            )
    if body.logit_bias:
        raise APIError(400, "logit_bias is not supported", "unsupported", "logit_bias")


def sampling_params(body: _Sampling, max_new: int, extra_stops: list[str] = ()) -> SamplingParams:
    stops = [*extra_stops, *body.stop_list()]
    if len(body.stop_list()) > MAX_STOPS:
        raise APIError(400, f"at most {MAX_STOPS} stop strings", "invalid_value", "stop")
    try:
        return SamplingParams(
            max_new_tokens=max_new,
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p if body.top_p < 1.0 else None,
            min_p=body.min_p,
            repetition_penalty=body.repetition_penalty,
            stop=stops,
            seed=body.seed,
            n=body.n,
            ignore_eos=body.ignore_eos,
        )
    except LmlabError as e:
        raise APIError(400, str(e), "invalid_value") from None


def _max_new(body: _Sampling, served: ServedModel, *names: str) -> int:
    """The request's ``max_tokens`` (the first of ``names`` it sets): the model's cap when
    not given, and a 400 naming the cap when it asks for more (as OpenAI refuses a
    ``max_tokens`` beyond the model's limit)."""
    cap = served.max_tokens
    for name in names:
        value = getattr(body, name)
        if name in body.model_fields_set and value is not None:
            if value > cap:
                raise APIError(
                    400,
                    f"{name} is too large: {value}. This server gives model {served.name!r} at "
                    f"most {cap} new tokens per request (lmlab serve --max-tokens); ask for "
                    f"{cap} or fewer",
                    "invalid_value",
                    name,
                )
            return value
    default = getattr(body, names[0])  # a field's default (completions: 16), within the cap
    return cap if default is None else min(default, cap)


def _check_length(ids: list[int], served: ServedModel, settings: ServeSettings) -> list[int]:
    limit = served.max_prompt_tokens(settings.max_prompt_tokens)
    if len(ids) > limit:
        raise APIError(
            400,
            f"the prompt has {len(ids)} tokens but model {served.name!r} takes at most {limit}; "
            "shorten the prompt",
            "context_length_exceeded",
            "prompt",
        )
    return ids


def encode_prompts(prompt: Any, served: ServedModel, settings: ServeSettings) -> list[list[int]]:
    """The prompt(s) of a completion request as token ids, checked against the context."""
    tok = served.run.tokenizer
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif not prompt:
        items = [""]
    elif isinstance(prompt[0], int):
        items = [prompt]
    else:
        items = list(prompt)
    if len(items) > MAX_PROMPTS:
        raise APIError(400, f"at most {MAX_PROMPTS} prompts per request", "invalid_value", "prompt")
    out = []
    bos = tok.bos_id if tok.add_bos else None
    for item in items:
        if isinstance(item, str):
            ids = tok.encode(item)
        else:
            ids = list(item)
            bad = [i for i in ids if i >= tok.vocab_size]
            if bad:
                raise APIError(
                    400,
                    f"token id {bad[0]} is outside the vocabulary (size {tok.vocab_size})",
                    "invalid_value",
                    "prompt",
                )
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]  # as lmlab generate does (lmlab.generate.engine.prepare_prompt)
        out.append(_check_length(ids or [tok.eos_id], served, settings))
    return out


def _usage(prompts: list[list[int]], completion: int) -> dict[str, int]:
    p = sum(len(x) for x in prompts)
    return {"prompt_tokens": p, "completion_tokens": completion, "total_tokens": p + completion}


def _piece(tok, i: int) -> str:
    return tok.id_to_piece(i)


def completion_logprobs(tok, evs: list[TokenEvent], offset: int) -> dict[str, Any]:
    """OpenAI's legacy completion logprobs for some token events."""
    tokens, lps, tops, offsets = [], [], [], []
    for ev in evs:
        if ev.token_id < 0:
            continue
        tokens.append(_piece(tok, ev.token_id))
        lps.append(ev.logprob)
        top: dict[str, float] = {}
        for i, lp in ev.top:
            top.setdefault(_piece(tok, i), lp)
        tops.append(top)
        offsets.append(offset)
        offset += len(ev.text)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def prompt_logprobs(tok, scores: PromptScores) -> dict[str, Any]:
    """The echoed prompt's part of the completion logprobs, in OpenAI's shape: the first
    token has no log-probability (nothing precedes it), the others theirs under the model.
    ``text_offset`` counts characters of the prompt as the tokenizer decodes it."""
    detok = sample_text(tok, SamplingParams(max_new_tokens=1, ignore_eos=True), [])
    tokens, offsets, offset = [], [], 0
    for i in scores.ids:
        tokens.append(_piece(tok, i))
        offsets.append(offset)
        offset += len(detok.push(i)[0])
    tops: list[dict[str, float] | None] = [None]
    for alts in scores.top[1:]:
        top: dict[str, float] = {}
        for i, lp in alts:
            top.setdefault(_piece(tok, i), lp)
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": list(scores.logprobs), "top_logprobs": tops,
            "text_offset": offsets}  # fmt: skip


def join_logprobs(first: dict[str, Any] | None, then: dict[str, Any]) -> dict[str, Any]:
    return then if first is None else {k: first[k] + then[k] for k in then}


def chat_logprobs(tok, evs: list[TokenEvent]) -> dict[str, Any]:
    """OpenAI's chat logprobs (``content``: token, logprob, bytes, top_logprobs)."""

    def entry(i: int, lp: float) -> dict[str, Any]:
        s = _piece(tok, i)
        return {"token": s, "logprob": lp, "bytes": list(s.encode("utf-8", "replace"))}

    content = []
    for ev in evs:
        if ev.token_id < 0:
            continue
        e = entry(ev.token_id, ev.logprob)
        e["top_logprobs"] = [entry(i, lp) for i, lp in ev.top]
        content.append(e)
    return {"content": content, "refusal": None}


def _served(request: Request, name: str | None) -> tuple[ServedModel, ServeSettings]:
    served = request.app.state.registry.get(name, kind="lm")
    return served, request.app.state.settings


router = APIRouter()


@router.post(
    "/v1/completions",
    responses={**ERRORS, 200: STREAM_DOC},
    summary="Continue a prompt (OpenAI completions)",
)
async def completions(body: CompletionRequest, request: Request) -> Any:
    _check_supported(body)
    if body.suffix:
        raise APIError(400, "suffix is not supported", "unsupported", "suffix")
    if body.best_of not in (None, body.n):
        raise APIError(400, "best_of must equal n", "unsupported", "best_of")
    served, settings = _served(request, body.model)
    prompts = encode_prompts(body.prompt, served, settings)
    params = sampling_params(body, _max_new(body, served, "max_tokens"))
    tok, n = served.run.tokenizer, body.n
    top = body.logprobs or 0
    want_lp = body.logprobs is not None
    score = want_lp and body.echo  # echo + logprobs: the prompt's tokens are scored too
    events = token_events(served, prompts, params, settings.timeout_s, want_lp, top, score)
    prompt_lp: dict[int, dict[str, Any]] = {}
    cid, created = new_id("cmpl"), int(time.time())
    texts_in = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    echo = [
        (t if isinstance(t, str) else tok.decode(p)) if body.echo else ""
        for t, p in zip(texts_in or [""], prompts, strict=False)
    ]

    def choice(k: int, ev: TokenEvent) -> int:
        return k * n + ev.index

    if not body.stream:
        items = await collect(events, request)
        texts: dict[int, list[str]] = {}
        evs: dict[int, list[TokenEvent]] = {}
        reasons: dict[int, str] = {}
        for k, ev in items:
            if isinstance(ev, PromptScores):
                prompt_lp[k] = prompt_logprobs(tok, ev)
                continue
            c = choice(k, ev)
            texts.setdefault(c, [echo[k]]).append(ev.text)
            evs.setdefault(c, []).append(ev)
            if ev.finish_reason:
                reasons[c] = ev.finish_reason
        done = sum(1 for _, ev in items if isinstance(ev, TokenEvent) and ev.token_id >= 0)
        choices = [
            {
                "index": c,
                "text": "".join(texts.get(c, [echo[c // n]])),
                "logprobs": join_logprobs(
                    prompt_lp.get(c // n),
                    completion_logprobs(tok, evs.get(c, []), len(echo[c // n])),
                )
                if want_lp
                else None,
                "finish_reason": reasons.get(c, "length"),
            }
            for c in range(len(prompts) * n)
        ]
        return JSONResponse(
            {"id": cid, "object": "text_completion", "created": created, "model": served.name,
             "choices": choices, "usage": _usage(prompts, done), "system_fingerprint": None}
        )  # fmt: skip

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def stream():
        total, finished, done = len(prompts) * n, 0, 0
        offsets = [0] * total
        started = [False] * total
        base = {"id": cid, "object": "text_completion", "created": created, "model": served.name}
        try:
            async for k, ev in events:
                if isinstance(ev, PromptScores):
                    prompt_lp[k] = prompt_logprobs(tok, ev)
                    continue
                c = choice(k, ev)
                done += ev.token_id >= 0
                finished += ev.finish_reason is not None
                text, first = ev.text, not started[c]
                if first:
                    started[c], text = True, echo[k] + text
                if not text and not ev.finish_reason and not want_lp:
                    continue
                lp = None
                if want_lp:
                    lp = completion_logprobs(tok, [ev], offsets[c] + len(echo[k]) * first)
                    lp = join_logprobs(prompt_lp.get(k) if first else None, lp)
                offsets[c] += len(text)
                ch = {"index": c, "text": text, "logprobs": lp, "finish_reason": ev.finish_reason}
                out = {**base, "choices": [ch]}
                if finished == total:
                    out["usage"] = _usage(prompts, done)
                yield sse(out)
            if include_usage:
                yield sse({**base, "choices": [], "usage": _usage(prompts, done)})
        except APIError as e:
            yield sse_error(e)
        yield SSE_DONE

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post(
    "/v1/chat/completions",
    responses={**ERRORS, 200: STREAM_DOC},
    summary="Reply to a conversation (OpenAI chat completions)",
)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    _check_supported(body)
    served, settings = _served(request, body.model)
    tok, template, n = served.run.tokenizer, served.template, body.n
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    ids, _ = fit_chat(  # the template's markers are specials, the messages plain text
        template, messages, tok, served.max_prompt_tokens(settings.max_prompt_tokens)
    )
    prompts = [_check_length(ids or [tok.eos_id], served, settings)]
    params = sampling_params(
        body, _max_new(body, served, "max_completion_tokens", "max_tokens"), template.stop
    )
    top = body.top_logprobs or 0
    want_lp = body.logprobs or top > 0
    events = token_events(served, prompts, params, settings.timeout_s, want_lp, top)
    cid, created = new_id("chatcmpl"), int(time.time())
    base = {"id": cid, "created": created, "model": served.name, "system_fingerprint": None}

    if not body.stream:
        items = await collect(events, request)
        choices = []
        for c in range(n):
            evs = [ev for _, ev in items if ev.index == c]
            text = "".join(ev.text for ev in evs)
            if template.strip_reply:
                text = text.strip()
            choices.append(
                {
                    "index": c,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": chat_logprobs(tok, evs) if want_lp else None,
                    "finish_reason": next(
                        (ev.finish_reason for ev in evs if ev.finish_reason), "length"
                    ),
                }
            )
        done = sum(1 for _, ev in items if ev.token_id >= 0)
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": choices,
             "usage": _usage(prompts, done)}
        )  # fmt: skip

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def stream():
        chunk = {**base, "object": "chat.completion.chunk"}
        trims = [Trim(template.strip_reply) for _ in range(n)]
        finished = done = 0
        try:
            for c in range(n):
                delta = {"role": "assistant", "content": ""}
                yield sse({**chunk, "choices": [{"index": c, "delta": delta, "logprobs": None,
                                                 "finish_reason": None}]})  # fmt: skip
            async for _, ev in events:
                done += ev.token_id >= 0
                text = trims[ev.index].push(ev.text)
                lp = chat_logprobs(tok, [ev]) if want_lp else None
                if text or lp:
                    ch = {"index": ev.index, "delta": {"content": text}, "logprobs": lp,
                          "finish_reason": None}  # fmt: skip
                    yield sse({**chunk, "choices": [ch]})
                if ev.finish_reason:
                    finished += 1
                    ch = {"index": ev.index, "delta": {}, "logprobs": None,
                          "finish_reason": ev.finish_reason}  # fmt: skip
                    out = {**chunk, "choices": [ch]}
                    if finished == n:
                        out["usage"] = _usage(prompts, done)
                    yield sse(out)
            if include_usage:
                yield sse({**chunk, "choices": [], "usage": _usage(prompts, done)})
        except APIError as e:
            yield sse_error(e)
        yield SSE_DONE

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
