"""Text generation for every model family: sampling rules and a streaming engine.

The names below are imported on first use, so that importing a submodule (the numba
decoding kernel, loaded in a background thread at start-up) does not import PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Completion",
    "SamplingParams",
    "TokenEvent",
    "generate",
    "generate_stream",
    "warm_up",
]

if TYPE_CHECKING:
    from lmlab.generate.engine import Completion, TokenEvent, generate, generate_stream, warm_up
    from lmlab.generate.sampling import SamplingParams


def __getattr__(name: str) -> Any:
    if name == "SamplingParams":
        from lmlab.generate.sampling import SamplingParams

        return SamplingParams
    if name in __all__:
        from lmlab.generate import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'lmlab.generate' has no attribute {name!r}")
