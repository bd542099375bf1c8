"""lmlab's task endpoints beside the OpenAI ones: ``POST /v1/classify``, ``POST /v1/qa``,
``POST /v1/translate`` and ``POST /v1/summarize``.

A classification run (``lmlab task train classify``) answers ``/v1/classify`` with every
label's probability per text, the shape ``lmlab task predict --json`` prints, and can score
each token for the predicted label (``explain``). A question-answering run (``lmlab task
train qa``) answers ``/v1/qa`` with answer spans of the context: their text, character
offsets and score. A translation run (``lmlab task train translate``) answers
``/v1/translate`` with each text's best translations by beam search or greedy decoding,
batched as ``lmlab translate`` does; a summarisation run (``lmlab task train summarize``)
answers ``/v1/summarize`` the same way. The task run is called in a worker thread, one call at a time per run;
bad requests (the wrong kind of run, empty or over-long text, missing fields) get a 4xx in
OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from lmlab.errors import LmlabError
from lmlab.serve.completions import ERRORS
from lmlab.serve.errors import APIError
from lmlab.serve.limits import ServeSettings
from lmlab.serve.registry import ServedModel
from lmlab.serve.schemas import (
    MAX_EXPLAINED,
    MAX_TASK_INPUTS,
    ClassifyRequest,
    ClassifyResponse,
    QARequest,
    QAResponse,
    SummarizeRequest,
    SummarizeResponse,
    TranslateRequest,
    TranslateResponse,
)

router = APIRouter()


def check_text(text: str, what: str, param: str, settings: ServeSettings) -> None:
    """A 400 for an empty text or one longer than the server's ``max_task_chars``."""
    if not text.strip():
        raise APIError(400, f"{what} is empty; send some text", "invalid_value", param)
    if len(text) > settings.max_task_chars:
        raise APIError(
            400,
            f"{what} has {len(text):,} characters but this server takes at most "
            f"{settings.max_task_chars:,} (lmlab serve --max-task-chars); send a shorter text",
            "input_too_long",
            param,
        )


def input_texts(value: str | list[str], settings: ServeSettings) -> list[str]:
    """A request's ``input`` (one text or a list) as a list, each text checked; 400s name
    the problem."""
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise APIError(400, "input must not be empty: send a text or a list of texts",
                       "invalid_value", "input")  # fmt: skip
    if len(texts) > MAX_TASK_INPUTS:
        raise APIError(400, f"at most {MAX_TASK_INPUTS} texts per request; send {len(texts)} "
                       "in several requests", "invalid_value", "input")  # fmt: skip
    for i, text in enumerate(texts):
        check_text(text, "input" if isinstance(value, str) else f"input {i}", "input", settings)
    return texts


async def run_task(fn, served: ServedModel, settings: ServeSettings) -> Any:
    """``fn()`` in a worker thread, one call at a time on ``served``, within the timeout."""

    def locked() -> Any:
        with served.lock:
            return fn()

    try:
        return await asyncio.wait_for(asyncio.to_thread(locked), settings.timeout_s)
    except TimeoutError:
        raise APIError(
            408, f"the request took longer than the server's timeout ({settings.timeout_s:g} s)",
            "timeout",
        ) from None  # fmt: skip
    except (APIError, LmlabError):
        raise
    except Exception as e:  # the run failed on this input: the request's answer, not the server's
        raise APIError(400, f"the model failed on this input: {e}", "model_error") from None


def classify_texts(served: ServedModel, texts: list[str], explain: str | None) -> dict[str, Any]:
    """Probabilities (and explanations) of ``texts`` from a classification run."""
    import torch

    task = served.task
    labels = list(task.labels)
    with torch.inference_mode():
        probs = np.asarray(task.predict_proba(texts), dtype=np.float64)
    if probs.shape != (len(texts), len(labels)) or not np.isfinite(probs).all():
        raise APIError(400, f"model {served.name!r} gave no valid probabilities for this input",
                       "model_error", "input")  # fmt: skip
    tok, max_len = getattr(task, "tokenizer", None), getattr(task, "max_len", None)
    data, total = [], 0
    for i, (text, p) in enumerate(zip(texts, probs, strict=True)):
        best = int(p.argmax())
        n = len(tok.encode(text)) if tok is not None else 0
        total += min(n, max_len) if max_len else n
        item: dict[str, Any] = {
            "index": i,
            "label": labels[best],
            "probability": float(p[best]),
            "probabilities": {name: float(x) for name, x in zip(labels, p, strict=True)},
            "num_tokens": n,
            "truncated": bool(max_len and n > max_len),
        }
        if explain:
            pieces, scores, target = task.explain(text, explain, best)
            item["explanation"] = {
                "method": explain,
                "label": labels[int(target)],
                "tokens": [
                    [str(t), float(s) if math.isfinite(float(s)) else 0.0]
                    for t, s in zip(pieces, scores, strict=True)
                ],  # fmt: skip
            }
        data.append(item)
    return {"object": "list", "model": served.name, "labels": labels, "data": data,
            "usage": {"prompt_tokens": total, "total_tokens": total}}  # fmt: skip


def answers_of(served: ServedModel, question: str, context: str, top: int) -> list[dict]:
    """The QA run's answers, checked to be spans of ``context``."""
    found = served.task.answer(question, context, top=top)
    out = []
    for a in list(found)[:top]:
        start, end = int(a["start"]), int(a["end"])
        score = float(a["score"])
        if not (0 <= start <= end <= len(context)) or not math.isfinite(score):
            raise APIError(400, f"model {served.name!r} gave an answer outside the context",
                           "model_error", "context")  # fmt: skip
        out.append({"text": str(a["text"]), "start": start, "end": end, "score": score})
    return out


@router.post("/v1/classify", response_model=ClassifyResponse, responses=ERRORS,
             summary="lmlab: label probabilities of texts from a classification run")  # fmt: skip
async def classify(body: ClassifyRequest, request: Request) -> Any:
    reg, settings = request.app.state.registry, request.app.state.settings
    served = reg.get(body.model, kind="classify")
    texts = input_texts(body.input, settings)
    if body.explain and len(texts) > MAX_EXPLAINED:
        raise APIError(400, f"explain takes at most {MAX_EXPLAINED} texts per request",
                       "invalid_value", "explain")  # fmt: skip
    return await run_task(lambda: classify_texts(served, texts, body.explain), served, settings)


@router.post("/v1/qa", response_model=QAResponse, responses=ERRORS,
             summary="lmlab: answer a question from a passage with a QA run")  # fmt: skip
async def qa(body: QARequest, request: Request) -> Any:
    reg, settings = request.app.state.registry, request.app.state.settings
    served = reg.get(body.model, kind="qa")
    check_text(body.question, "question", "question", settings)
    check_text(body.context, "context", "context", settings)
    answers = await run_task(
        lambda: answers_of(served, body.question, body.context, body.top), served, settings
    )
    return {"object": "qa.answers", "model": served.name, "answers": answers}


def seq2seq_texts(served: ServedModel, texts: list[str], method: str, beam: int,
                  n_best: int, no_repeat_ngram: int = 0) -> dict[str, Any]:  # fmt: skip
    """A translation or summarisation run's ``n_best`` outputs for each text (beam search or
    greedy), with token counts; summaries are capped at the run's summary length."""
    import warnings

    run = served.task
    limit = run.source_limit
    lengths = run.source_lengths(texts)
    cap = {"max_len": run.summary_limit} if served.kind == "summarize" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is reported per text below
        found = run.translate(texts, method=method, beam=beam,
                              n_best=n_best if method == "beam" else 1,
                              no_repeat_ngram=no_repeat_ngram, **cap)  # fmt: skip
    data, out_tokens = [], 0
    for i, (hyps, n) in enumerate(zip(found, lengths, strict=True)):
        if not hyps or not all(math.isfinite(float(s)) for _, s in hyps):
            raise APIError(400, f"model {served.name!r} gave no output for input {i}",
                           "model_error", "input")  # fmt: skip
        out_tokens += len(run.tgt_tok.encode(hyps[0][0]))
        data.append({"index": i, "text": hyps[0][0], "score": float(hyps[0][1]),
                     "alternatives": [{"text": t, "score": float(s)} for t, s in hyps],
                     "num_tokens": n, "truncated": n > limit})  # fmt: skip
    read = sum(min(n, limit) for n in lengths)
    body = {"object": "list", "model": served.name, "data": data,
            "usage": {"prompt_tokens": read, "completion_tokens": out_tokens,
                      "total_tokens": read + out_tokens}}  # fmt: skip
    if served.kind == "translate":
        body["direction"] = run.direction
    else:
        body["language"] = run.lang
    return body


def check_decoding(method: str, beam: int, n_best: int) -> None:
    """400s for an n-best list the decoding cannot give."""
    if method == "beam" and n_best > beam:
        raise APIError(400, f"n_best ({n_best}) cannot exceed the beam width ({beam})",
                       "invalid_value", "n_best")  # fmt: skip
    if method == "greedy" and n_best > 1:
        raise APIError(400, "greedy decoding gives one output; use method beam for n_best",
                       "invalid_value", "n_best")  # fmt: skip


@router.post("/v1/translate", response_model=TranslateResponse, responses=ERRORS,
             summary="lmlab: translate texts with a translation run")  # fmt: skip
async def translate(body: TranslateRequest, request: Request) -> Any:
    reg, settings = request.app.state.registry, request.app.state.settings
    served = reg.get(body.model, kind="translate")
    texts = input_texts(body.input, settings)
    check_decoding(body.method, body.beam, body.n_best)
    return await run_task(
        lambda: seq2seq_texts(served, texts, body.method, body.beam, body.n_best,
                              body.no_repeat_ngram),
        served, settings,
    )  # fmt: skip


@router.post("/v1/summarize", response_model=SummarizeResponse, responses=ERRORS,
             summary="lmlab: summarise texts with a summarisation run")  # fmt: skip
async def summarize(body: SummarizeRequest, request: Request) -> Any:
    reg, settings = request.app.state.registry, request.app.state.settings
    served = reg.get(body.model, kind="summarize")
    texts = input_texts(body.input, settings)
    check_decoding(body.method, body.beam, body.n_best)
    return await run_task(
        lambda: seq2seq_texts(served, texts, body.method, body.beam, body.n_best,
                              body.no_repeat_ngram),
        served, settings,
    )  # fmt: skip
