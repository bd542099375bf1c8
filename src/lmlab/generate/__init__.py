"""Text generation for every model family: sampling rules and a streaming engine."""

from lmlab.generate.engine import Completion, TokenEvent, generate, generate_stream
from lmlab.generate.sampling import SamplingParams

__all__ = ["Completion", "SamplingParams", "TokenEvent", "generate", "generate_stream"]
