"""The models a server offers: language-model runs, task runs and word-vector files, by name.

``--run`` takes a run directory (``config.toml`` + ``model.safetensors``), a task run from
``lmlab task train`` (its ``config.toml`` has a ``[task]`` section: a classifier, a
question answerer, a translator or a summariser, served on ``/v1/classify``, ``/v1/qa``,
``/v1/translate`` or ``/v1/summarize``), a word-vector file from
``lmlab embed train`` (``.txt``, ``.vec``, ``.bin``, ``.safetensors``) or a folder holding
one; ``NAME=PATH`` names it, else the folder or file name is its id.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.serve.batcher import ModelWorker
from lmlab.serve.chat_template import ChatTemplate, load_chat_template

VECTOR_SUFFIXES = (".txt", ".vec", ".bin", ".safetensors")
# task kinds the server answers, and the route of each
TASK_ROUTES = {"classify": "/v1/classify", "qa": "/v1/qa", "translate": "/v1/translate",
               "summarize": "/v1/summarize"}  # fmt: skip
KIND_NAMES = {"lm": "a language model", "embeddings": "a word-vectors model",
              "classify": "a classification run", "qa": "a question-answering run",
              "translate": "a translation run", "summarize": "a summarisation run"}  # fmt: skip


@dataclass
class ServedModel:
    name: str
    path: Path
    kind: str  # "lm" | "embeddings" | "classify" | "qa"
    run: Any = None  # lmlab.run.Run for language models
    vectors: Any = None  # lmlab.embeddings.vectors.Vectors for word-vector files
    task: Any = None  # a task run (lmlab.tasks.rundir.load_task_run) for classify / qa
    task_config: dict[str, Any] | None = None
    template: ChatTemplate | None = None
    worker: ModelWorker | None = None
    max_tokens: int = 512
    created: int = field(default_factory=lambda: int(time.time()))
    lock: threading.Lock = field(default_factory=threading.Lock)  # one task call at a time

    @property
    def context_length(self) -> int | None:
        return self.run.model.context_length if self.run is not None else None

    def max_prompt_tokens(self, default: int) -> int:
        """Longest prompt: the context minus one token to generate, else the server limit."""
        ctx = self.context_length
        return ctx - 1 if ctx is not None else default

    def card(self) -> dict[str, Any]:
        base = {"id": self.name, "object": "model", "created": self.created, "owned_by": "lmlab"}
        if self.kind == "embeddings":
            v = self.vectors
            return {**base, "kind": "embeddings", "family": "word-vectors",
                    "vocab_size": len(v), "params": int(v.vectors.size)}  # fmt: skip
        if self.kind in TASK_ROUTES:
            return {**base, **self.task_card()}
        m = self.run.model
        return {
            **base,
            "kind": "lm",
            "family": self.run.family,
            "context_length": m.context_length,
            "max_tokens": self.max_tokens,
            "vocab_size": self.run.tokenizer.vocab_size,
            "params": m.num_params(),
            "chat_template": self.template.to_dict() if self.template else None,
        }

    def task_card(self) -> dict[str, Any]:
        cfg = self.task_config or {}
        model = getattr(self.task, "model", None)
        params = model.num_params() if hasattr(model, "num_params") else None
        if params is None and hasattr(model, "parameters"):
            params = sum(p.numel() for p in model.parameters())
        tok = getattr(self.task, "tokenizer", None)
        card = {
            "kind": self.kind,
            "family": cfg.get("model", {}).get("family"),
            "params": params,
            "vocab_size": getattr(tok, "vocab_size", None),
            "route": TASK_ROUTES[self.kind],
        }
        if self.kind == "translate":
            card["direction"] = self.task.direction
        if self.kind in ("translate", "summarize"):
            card["context_length"] = self.task.source_limit
        if self.kind == "summarize":
            card["language"] = self.task.lang
        if self.kind == "classify":
            card["labels"] = list(self.task.labels)
            card["max_len"] = getattr(self.task, "max_len", None)
        return card


def parse_spec(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` -> (name, path)."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and not Path(spec).exists():
        p = Path(path)
    else:
        p, name = Path(spec), ""
    if not name:
        name = p.name if p.is_dir() else p.stem
        name = name or "model"
    return name, p


def _vectors_in(folder: Path) -> Path | None:
    found = sorted(
        f for f in folder.iterdir() if f.suffix in VECTOR_SUFFIXES and ".vocab" not in f.name
    )
    return found[0] if len(found) == 1 else None


def load_model(spec: str, device: str = "cpu", max_tokens: int = 512) -> ServedModel:
    """Load one ``--run`` value; a one-line :class:`LmlabError` if it cannot be served."""
    from lmlab.interop.sources import PREFIX, is_pretrained

    if spec.startswith(PREFIX):
        name, p = spec[len(PREFIX) :], spec
    else:
        name, p = parse_spec(spec)
    pretrained = str(p).startswith(PREFIX) or (
        is_pretrained(p) and not (p.is_file() and p.suffix in VECTOR_SUFFIXES)
    )
    if not pretrained and not p.exists():
        raise LmlabError(f"{p} not found; pass --run with a run directory or a vectors file")
    if not pretrained and p.is_dir() and (p / "config.toml").is_file():
        task = _load_task(name, p)
        if task is not None:
            return task
    if pretrained or (p.is_dir() and (p / "config.toml").is_file()):
        from lmlab.generate.engine import warm_up
        from lmlab.run import load_run

        run = load_run(p, device)
        warm_up(run.model, run.tokenizer)  # the first request's first token costs a step
        return ServedModel(
            name,
            run.path,
            "lm",
            run=run,
            template=load_chat_template(run.path, run.config),
            max_tokens=max_tokens,
        )
    vec = p if p.is_file() else _vectors_in(p)
    if vec is None or vec.suffix not in VECTOR_SUFFIXES:
        raise LmlabError(
            f"{p} is neither a run directory (no config.toml) nor a word-vectors file "
            f"({', '.join(VECTOR_SUFFIXES)}); pass a finished run or `lmlab embed train` output"
        )
    from lmlab.embeddings.vectors import Vectors

    try:
        vectors = Vectors.load(vec)
    except LmlabError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, KeyError, RuntimeError) as e:
        raise LmlabError(f"{vec} is not a readable vectors file ({e}); check the file") from None
    return ServedModel(name, vec, "embeddings", vectors=vectors)


def _load_task(name: str, p: Path) -> ServedModel | None:
    """A task run (``[task]`` in its config) as a served model; None for other runs."""
    from lmlab.config import load_toml

    try:
        cfg = load_toml(p / "config.toml")
    except LmlabError:
        return None  # load_run says what is wrong with it
    if "task" not in cfg or cfg["task"].get("kind") == "chat":
        return None  # a chat run (lmlab task train chat) is an ordinary language model
    from lmlab.tasks.rundir import load_task_run, task_config

    kind = task_config(p)["task"]["kind"]
    if kind not in TASK_ROUTES:
        raise LmlabError(
            f"{p} is a {kind!r} task run; lmlab serve answers {', '.join(TASK_ROUTES)} runs"
        )
    return ServedModel(name, p, kind, task=load_task_run(p), task_config=cfg)


class Registry:
    """Served models by name; the first is the default for requests without ``model``."""

    def __init__(self, models: list[ServedModel]) -> None:
        if not models:
            raise LmlabError("no model to serve; pass --run")
        self.models: dict[str, ServedModel] = {}
        for m in models:
            if m.name in self.models:
                raise LmlabError(f"two models are named {m.name!r}; name them with --run NAME=PATH")
            self.models[m.name] = m

    def start_workers(self, threads: int | None = None, **worker_options: Any) -> None:
        """One worker thread per language model. ``threads`` (torch's intra-op threads,
        process-wide) defaults to half the cores shared among the models, at least 1."""
        import os

        import torch

        lms = [m for m in self.models.values() if m.kind == "lm"]
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // (2 * max(1, len(lms))))
        self._saved_threads = torch.get_num_threads()
        for m in lms:
            if m.worker is None:
                m.worker = ModelWorker(
                    m.run.model, m.run.tokenizer, m.name, threads=threads, **worker_options
                )

    def close(self) -> None:
        for m in self.models.values():
            if m.worker is not None:
                m.worker.close()
                m.worker = None
        if getattr(self, "_saved_threads", None):
            import torch

            torch.set_num_threads(self._saved_threads)

    def get(self, name: str | None, kind: str | None = None) -> ServedModel:
        from lmlab.serve.errors import APIError

        if name is None or name == "":
            candidates = [m for m in self.models.values() if kind is None or m.kind == kind]
            if not candidates:
                what = KIND_NAMES.get(kind, kind).split(" ", 1)[1]
                raise APIError(400, f"no {what} is served; pass one to lmlab serve --run",
                               "model_not_found", "model")  # fmt: skip
            return candidates[0]
        m = self.models.get(name)
        if m is None:
            raise APIError(
                404,
                f"model {name!r} does not exist; served: {', '.join(self.models)}",
                "model_not_found",
                "model",
            )
        if kind == "lm" and m.kind == "embeddings":
            raise APIError(
                400, f"model {name!r} holds word vectors; it can only embed", "wrong_model", "model"
            )
        if kind is not None and m.kind != kind:
            raise APIError(400, wrong_kind(m, kind), "wrong_model", "model")
        return m


def wrong_kind(m: ServedModel, wanted: str) -> str:
    """Why model ``m`` cannot answer a request for kind ``wanted``, and where it can."""
    where = {"lm": "/v1/completions and /v1/chat/completions",
             "embeddings": "/v1/embeddings and /v1/neighbors"}.get(m.kind, TASK_ROUTES.get(m.kind))  # fmt: skip
    need = KIND_NAMES[wanted] + (f" (lmlab task train {wanted})" if wanted in TASK_ROUTES else "")
    return f"model {m.name!r} is {KIND_NAMES[m.kind]} (use {where}); this route needs {need}"


def load_registry(specs: list[str], device: str = "cpu", max_tokens: int = 512) -> Registry:
    return Registry([load_model(s, device, max_tokens) for s in specs])
