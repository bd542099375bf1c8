"""``POST /v1/embeddings`` and the playground's nearest-neighbour explorer.

A language-model run embeds a text as the mean of its final hidden states (the
Transformer's normalised last layer, the LSTM's top layer, the NPLM's hidden layer); an
n-gram model has no hidden states and says so. A word-vector file embeds a text as the
mean of the vectors of its known words (exact, else lower-cased); a text with no known word
is a 400 error, not a zero vector.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, Request

from lmlab.serve.completions import ERRORS
from lmlab.serve.errors import APIError
from lmlab.serve.registry import ServedModel, wrong_kind
from lmlab.serve.schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    NeighborsRequest,
    NeighborsResponse,
)

_PUNCT = re.compile(r"^[^\w]+$")


def text_words(text: str) -> list[str]:
    """Words of ``text`` as ``lmlab embed train`` splits them (regex, jieba for Chinese)."""
    from lmlab.tokenize.word import split_words

    return [w for w in split_words(text, newlines=False) if not _PUNCT.match(w)]


def vector_embedding(served: ServedModel, text: str) -> tuple[np.ndarray, int]:
    """Mean of the known words' vectors and the number of words."""
    v = served.vectors
    words = text_words(text)
    rows = []
    for w in words:
        i = v.index.get(w)
        if i is None:
            i = v.index.get(w.lower())
        if i is not None:
            rows.append(i)
    if not rows:  # no silent zero vector: nothing of the text is known
        shown = ", ".join(repr(w) for w in words[:5]) or "no words"
        raise APIError(
            400,
            f"none of the words of {text[:40]!r} ({shown}) is in the vectors' vocabulary; "
            "send known words",
            "unknown_words",
            "input",
        )
    return v.vectors[rows].mean(axis=0), len(words)


@torch.inference_mode()
def hidden_mean(model: Any, ids: list[int]) -> np.ndarray:
    """Mean-pooled final hidden states of one sequence."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = torch.tensor([ids], dtype=torch.long, device=device)
    if hasattr(model, "hidden_states"):
        h = model.hidden_states(x)
    elif model.family == "nplm":
        b, t = x.shape
        h = model.act(model.hidden(model.embed(model.windows(x)).reshape(b, t, -1)))
    else:
        raise APIError(
            400,
            f"a {model.family} model has no hidden states to embed with; use a neural run "
            "or a word-vectors file",
            "unsupported",
            "model",
        )
    return h[0].float().mean(0).cpu().numpy()


def _inputs(body: EmbeddingRequest) -> list[Any]:
    inp = body.input
    if isinstance(inp, str):
        return [inp]
    if not inp:
        raise APIError(400, "input must not be empty", "invalid_value", "input")
    if isinstance(inp[0], int):
        return [inp]
    return list(inp)


def _encode(vec: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vec]


def embed_all(
    served: ServedModel, inputs: list[Any], max_prompt: int
) -> tuple[list[np.ndarray], int]:
    """Embeddings of every input and the token count (runs in a worker thread)."""
    vecs, tokens = [], 0
    for j, item in enumerate(inputs):
        if served.kind == "embeddings":
            if not isinstance(item, str):
                raise APIError(
                    400, "word-vector models embed text, not token ids", "invalid_value", "input"
                )
            v, n = vector_embedding(served, item)
        else:
            tok = served.run.tokenizer
            ids = tok.encode(item) if isinstance(item, str) else list(item)
            if any(i >= tok.vocab_size for i in ids):
                raise APIError(
                    400,
                    f"input {j} has a token id outside the vocabulary",
                    "invalid_value",
                    "input",
                )
            ids = ids or [tok.eos_id]
            if len(ids) > max_prompt:
                raise APIError(
                    400,
                    f"input {j} has {len(ids)} tokens but the model takes at most {max_prompt}",
                    "context_length_exceeded",
                    "input",
                )
            v, n = hidden_mean(served.run.model, ids), len(ids)
        vecs.append(v)
        tokens += n
    return vecs, tokens


router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERRORS,
             summary="Embed texts (OpenAI embeddings)")  # fmt: skip
async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
    reg, settings = request.app.state.registry, request.app.state.settings
    if not body.model:  # the default: the first model that can embed (not a task run)
        served = next((m for m in reg.models.values() if m.kind in ("lm", "embeddings")), None)
        if served is None:
            raise APIError(400, "no language model or word-vectors model is served",
                           "model_not_found", "model")  # fmt: skip
    else:
        served = reg.get(body.model)
    if served.kind not in ("lm", "embeddings"):
        raise APIError(400, wrong_kind(served, "lm"), "wrong_model", "model")
    inputs = _inputs(body)
    if len(inputs) > settings.max_embedding_inputs:
        raise APIError(400, f"at most {settings.max_embedding_inputs} inputs per request",
                       "invalid_value", "input")  # fmt: skip
    max_prompt = served.context_length or settings.max_prompt_tokens
    try:
        vecs, tokens = await asyncio.wait_for(
            asyncio.to_thread(embed_all, served, inputs, max_prompt), settings.timeout_s
        )
    except TimeoutError:
        raise APIError(
            408, "the request took longer than the server's timeout", "timeout"
        ) from None
    if body.dimensions is not None and body.dimensions != len(vecs[0]):
        raise APIError(400, f"this model's embeddings have {len(vecs[0])} dimensions",
                       "invalid_value", "dimensions")  # fmt: skip
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vecs)]  # fmt: skip
    return {"object": "list", "data": data, "model": served.name,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}}  # fmt: skip


@router.post("/v1/neighbors", response_model=NeighborsResponse, responses=ERRORS,
             summary="lmlab: nearest words of a word-vectors model (or an analogy)")  # fmt: skip
async def neighbors(body: NeighborsRequest, request: Request) -> Any:
    served = request.app.state.registry.get(body.model, kind="embeddings")
    if served.kind != "embeddings":
        raise APIError(400, f"model {served.name!r} is a language model; pick a word-vectors model",
                       "wrong_model", "model")  # fmt: skip
    v = served.vectors

    def find(w: str) -> str:
        if w in v:
            return w
        if w.lower() in v:
            return w.lower()
        raise APIError(404, f"word {w!r} is not in the vocabulary of {served.name!r}",
                       "word_not_found", "positive")  # fmt: skip

    pos = [find(w) for w in body.positive]
    neg = [find(w) for w in body.negative]
    found = await asyncio.to_thread(v.most_similar, pos, neg, body.n)
    return {"model": served.name, "neighbors": [{"word": w, "similarity": s} for w, s in found]}
