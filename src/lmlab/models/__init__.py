"""Model families behind one interface (see :mod:`lmlab.models.base`)."""

from __future__ import annotations

from typing import Any

from lmlab.config import from_dict
from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel
from lmlab.models.rnn import RNNConfig, RNNLanguageModel
from lmlab.models.transformer import Transformer, TransformerConfig, for_depth

FAMILIES: dict[str, tuple[type, type[LanguageModel]]] = {
    "transformer": (TransformerConfig, Transformer),
    "rnn": (RNNConfig, RNNLanguageModel),
}

__all__ = [
    "FAMILIES",
    "LanguageModel",
    "RNNConfig",
    "RNNLanguageModel",
    "Transformer",
    "TransformerConfig",
    "build_model",
    "config_from_dict",
    "for_depth",
]


def register_family(name: str, config_cls: type, model_cls: type[LanguageModel]) -> None:
    """Add a model family (used by the n-gram and NPLM modules)."""
    FAMILIES[name] = (config_cls, model_cls)


def config_from_dict(family: str, data: dict[str, Any]):
    if family not in FAMILIES:
        raise LmlabError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return from_dict(FAMILIES[family][0], data, where=f"[model] ({family})")


def build_model(family: str, config: Any) -> LanguageModel:
    """Instantiate a model of ``family`` from its config dataclass or a plain dict."""
    if isinstance(config, dict):
        config = config_from_dict(family, config)
    return FAMILIES[family][1](config)


# Families that register themselves on import.
from lmlab.models import ngram as _ngram  # noqa: E402,F401
from lmlab.models import nplm as _nplm  # noqa: E402,F401
