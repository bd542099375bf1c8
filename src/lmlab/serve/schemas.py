"""Request and response bodies in OpenAI's shapes (pydantic), plus lmlab's extra fields.

Requests accept OpenAI's sampling fields and lmlab's ``top_k``, ``min_p`` and
``repetition_penalty``; fields this server does not implement are refused with a 400
when set to a value that would change the result (``presence_penalty``, ``logit_bias``...),
and other unknown fields are ignored, as OpenAI-compatible servers commonly do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 16
MAX_TOP_LOGPROBS = 20
MAX_STOPS = 16
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]
Seed = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    """Sampling fields shared by completions and chat completions."""

    model: str | None = Field(None, description="a served model id (default: the first)")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1, description="lmlab: keep the k most likely tokens")
    min_p: float | None = Field(None, ge=0.0, le=1.0, description="lmlab: min-p filtering")
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0, description="lmlab: CTRL's rule")
    ignore_eos: bool = Field(
        False, description="lmlab (as vLLM): go on past the end-of-document token"
    )
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, description="up to 16 stop strings")
    seed: Seed | None = None
    user: str | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="not supported: must be 0")
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0, description="not supported: must be 0")
    logit_bias: dict[str, float] | None = Field(None, description="not supported")

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]] = ""
    max_tokens: int | None = Field(16, ge=0, description="capped by the server's limit")
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    best_of: int | None = Field(None, ge=1, le=MAX_N, description="only best_of = n")
    suffix: str | None = Field(None, description="not supported")


class ContentPart(_Strict):
    type: str = "text"
    text: str = ""


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if p.type == "text")


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class EmbeddingRequest(_Strict):
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class NeighborsRequest(_Strict):
    """The playground's explorer: nearest words, or an analogy (positive - negative)."""

    model: str | None = None
    positive: list[str] = Field(..., min_length=1, max_length=16)
    negative: list[str] = Field(default_factory=list, max_length=16)
    n: int = Field(10, ge=1, le=100)


MAX_TASK_INPUTS = 256
MAX_EXPLAINED = 32
MAX_ANSWERS = 20
MAX_BEAM = 16
MAX_NO_REPEAT = 16


class ClassifyRequest(_Strict):
    """lmlab: classify texts with a classification run (``lmlab task train classify``)."""

    model: str | None = Field(None, description="a served classification run (default: the first)")
    input: str | list[str] = Field(
        ..., description=f"one text or up to {MAX_TASK_INPUTS} texts, none of them empty"
    )
    explain: Literal["grad", "occlusion"] | None = Field(
        None,
        description="also score each token for the predicted label: grad (gradient x input) "
        f"or occlusion (probability drop); at most {MAX_EXPLAINED} texts",
    )


class QARequest(_Strict):
    """lmlab: extractive question answering with a QA run (``lmlab task train qa``)."""

    model: str | None = Field(None, description="a served QA run (default: the first)")
    question: str = Field(..., description="the question (not empty)")
    context: str = Field(..., description="the passage that holds the answer (not empty)")
    top: int = Field(1, ge=1, le=MAX_ANSWERS, description="how many answers, best first")


class TranslateRequest(_Strict):
    """lmlab: translate texts with a translation run (``lmlab task train translate``)."""

    model: str | None = Field(None, description="a served translation run (default: the first)")
    input: str | list[str] = Field(
        ..., description=f"one text or up to {MAX_TASK_INPUTS} texts, none of them empty"
    )
    method: Literal["beam", "greedy"] = Field("beam", description="beam search or greedy")
    beam: int = Field(5, ge=1, le=MAX_BEAM, description="beam width (method beam)")
    n_best: int = Field(1, ge=1, le=MAX_BEAM, description="translations per text, best first "
                        "(at most the beam width)")  # fmt: skip
    no_repeat_ngram: int = Field(0, ge=0, le=MAX_NO_REPEAT, description="never repeat an "
                                 "n-gram of this many tokens within an output (0: off)")  # fmt: skip


class SummarizeRequest(_Strict):
    """lmlab: summarise texts with a summarisation run (``lmlab task train summarize``)."""

    model: str | None = Field(None, description="a served summarisation run (default: the first)")
    input: str | list[str] = Field(
        ..., description=f"one text or up to {MAX_TASK_INPUTS} texts, none of them empty"
    )
    method: Literal["beam", "greedy"] = Field("beam", description="beam search or greedy")
    beam: int = Field(5, ge=1, le=MAX_BEAM, description="beam width (method beam)")
    n_best: int = Field(1, ge=1, le=MAX_BEAM, description="summaries per text, best first "
                        "(at most the beam width)")  # fmt: skip
    no_repeat_ngram: int = Field(0, ge=0, le=MAX_NO_REPEAT, description="never repeat an "
                                 "n-gram of this many tokens within an output (0: off)")  # fmt: skip


# ---- responses -------------------------------------------------------------------------
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lmlab"
    kind: Literal["lm", "embeddings", "classify", "qa", "translate", "summarize"] = Field(
        description="lmlab: language model, word vectors, classification, QA, translation or "
        "summarisation run"
    )
    family: str | None = None
    context_length: int | None = None
    max_tokens: int | None = Field(None, description="lmlab: the most tokens one request gets")
    vocab_size: int | None = None
    params: int | None = None
    chat_template: dict[str, Any] | None = None
    labels: list[str] | None = Field(None, description="lmlab: a classifier's labels, in order")
    max_len: int | None = Field(None, description="lmlab: tokens a classifier reads per text")
    route: str | None = Field(None, description="lmlab: the endpoint a task run answers on")
    direction: str | None = Field(None, description="lmlab: a translator's SRC-TGT languages")
    language: str | None = Field(None, description="lmlab: a summariser's language")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class Neighbor(BaseModel):
    word: str
    similarity: float


class NeighborsResponse(BaseModel):
    model: str
    neighbors: list[Neighbor]


class TaskUsage(BaseModel):
    prompt_tokens: int = Field(description="tokens read (the text(s), or question and context)")
    total_tokens: int


class Explanation(BaseModel):
    method: Literal["grad", "occlusion"]
    label: str
    tokens: list[tuple[str, float]] = Field(description="[token text, score] pairs; positive "
                                            "scores pushed towards the label")  # fmt: skip


class Classification(BaseModel):
    index: int
    label: str = Field(description="the most probable label")
    probability: float
    probabilities: dict[str, float] = Field(description="every label's probability, in the "
                                            "run's label order")  # fmt: skip
    num_tokens: int = Field(description="the text's length in tokens")
    truncated: bool = Field(description="the text is longer than the run's max_len tokens: "
                            "the classifier read only its first max_len, as in training")  # fmt: skip
    explanation: Explanation | None = None


class ClassifyResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    labels: list[str]
    data: list[Classification]
    usage: TaskUsage


class Answer(BaseModel):
    text: str
    start: int = Field(description="character offset of the answer in the context")
    end: int = Field(description="character offset just past the answer: context[start:end]")
    score: float


class QAResponse(BaseModel):
    object: Literal["qa.answers"] = "qa.answers"
    model: str
    answers: list[Answer]


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="the model's length-normalised log-probability")


class Translation(BaseModel):
    index: int
    text: str = Field(description="the best translation")
    score: float
    alternatives: list[Hypothesis] = Field(description="the n_best translations, best first")
    num_tokens: int = Field(description="the source's length in tokens")
    truncated: bool = Field(description="the source was longer than the model's context and "
                            "was cut to fit")  # fmt: skip


class TranslateResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    direction: str
    data: list[Translation]
    usage: Usage


class SummarizeResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    language: str
    data: list[Translation] = Field(description="per text: the best summary, its score and the "
                                    "n-best list, as for translations")  # fmt: skip
    usage: Usage


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str]
