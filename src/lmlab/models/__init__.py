"""Model families behind one interface (see :mod:`lmlab.models.base`).

The families are imported on first use (``build_model``, ``FAMILIES`` or a class name),
so that code which only counts n-grams or reads a config never imports PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lmlab.config import from_dict
from lmlab.errors import LmlabError

if TYPE_CHECKING:  # the names this package offers, imported lazily by __getattr__
    from lmlab.models.base import LanguageModel
    from lmlab.models.rnn import RNNConfig, RNNLanguageModel
    from lmlab.models.transformer import Transformer, TransformerConfig, for_depth

# name -> module that defines it
_LAZY = {
    "LanguageModel": "lmlab.models.base",
    "Transformer": "lmlab.models.transformer",
    "TransformerConfig": "lmlab.models.transformer",
    "for_depth": "lmlab.models.transformer",
    "RNNConfig": "lmlab.models.rnn",
    "RNNLanguageModel": "lmlab.models.rnn",
}
# Modules whose families register themselves on import (register_family), in the order
# they are listed to users.
FAMILY_MODULES = ("transformer", "rnn", "ngram", "nplm")

_FAMILIES: dict[str, tuple[type, type]] = {}
_loaded = False

__all__ = [
    "FAMILIES",
    "LanguageModel",
    "RNNConfig",
    "RNNLanguageModel",
    "Transformer",
    "TransformerConfig",
    "build_model",
    "config_from_dict",
    "families",
    "for_depth",
    "register_family",
]


def register_family(name: str, config_cls: type, model_cls: type) -> None:
    """Add a model family (each family's module calls this on import)."""
    _FAMILIES[name] = (config_cls, model_cls)


def families() -> dict[str, tuple[type, type]]:
    """Every model family: name -> (config dataclass, model class)."""
    global _loaded
    if not _loaded:
        for name in FAMILY_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True
    return _FAMILIES


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":
        return families()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def config_from_dict(family: str, data: dict[str, Any]):
    fams = families()
    if family not in fams:
        raise LmlabError(f"unknown model family {family!r}; choose one of {', '.join(fams)}")
    return from_dict(fams[family][0], data, where=f"[model] ({family})")


def build_model(family: str, config: Any) -> LanguageModel:
    """Instantiate a model of ``family`` from its config dataclass or a plain dict."""
    if isinstance(config, dict):
        config = config_from_dict(family, config)
    return families()[family][1](config)
