"""N-gram run directories and ARPA conversion, in the run format every command reads.

A run holds ``config.toml`` (``[model]`` with ``family = "ngram"`` and the config keys, and
an ``[ngram]`` section saying how text was split), ``tokenizer.json`` and
``model.safetensors``; ``lmlab generate/eval --run DIR`` load it like any trained model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from safetensors import SafetensorError

from lmlab.config import atomic_write_text, load_toml, publish, to_dict
from lmlab.errors import LmlabError
from lmlab.models.arpa import BOS, EOS, UNK, arpa_names, read_arpa, tables_from_arpa, write_arpa
from lmlab.models.kneser_ney import NGramTables, table_arrays
from lmlab.models.pretokenized import encode_lines, read_text
from lmlab.tokenize import Tokenizer, WordTokenizer, load_tokenizer

if TYPE_CHECKING:  # PyTorch is imported only to score or generate, not to build and save
    from lmlab.models.ngram import NGramLM

SPLITS = ("tokenizer", "whitespace")


def save_run(
    out: str | Path,
    model: NGramLM | NGramTables,
    tokenizer: Tokenizer,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors``, ``tokenizer.json`` and ``config.toml`` into ``out``.

    ``model`` is a model or just its estimated tables (``lmlab ngram build`` saves those
    without importing PyTorch)."""
    from safetensors.numpy import save_file

    if isinstance(model, NGramTables):
        arrays = table_arrays(model)
        model_cfg = {"vocab_size": model.vocab_size, "order": model.order,
                     "eos_id": tokenizer.eos_id}  # fmt: skip
    else:
        arrays = {k: v.numpy() for k, v in model.tensors_for_save().items()}
        model_cfg = to_dict(model.config)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".model.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(arrays, tmp)
        publish(tmp, d / "model.safetensors")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    tokenizer.save(d / "tokenizer.json")
    config = {"model": {"family": "ngram", **model_cfg}}
    config["ngram"] = {"split": "tokenizer", **(info or {})}
    atomic_write_text(d / "config.toml", tomli_w.dumps(config))
    return d


def load_run(path: str | Path) -> tuple[NGramLM, Tokenizer, dict[str, Any]]:
    """Model, tokenizer and ``[ngram]`` info of an n-gram run directory."""
    from safetensors.torch import load_file

    from lmlab.models.ngram import NGramLM

    d = Path(path)
    if not d.is_dir():
        raise LmlabError(f"run directory {d} not found; build one with `lmlab ngram build`")
    cfg = load_toml(d / "config.toml")
    model_cfg = dict(cfg.get("model", {}))
    if model_cfg.pop("family", None) != NGramLM.family:
        raise LmlabError(f"{d} is not an n-gram run ([model] family is not 'ngram')")
    from lmlab.models import build_model

    model = build_model(NGramLM.family, model_cfg)
    tokenizer = load_tokenizer(d / "tokenizer.json")
    f = d / "model.safetensors"
    if not f.is_file():
        raise LmlabError(f"{f} not found; the run is incomplete, rebuild it")
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LmlabError(f"{f} is corrupt ({str(e)[:80]}); rebuild the run") from None
    model.load_tensors(tensors)
    assert isinstance(model, NGramLM)
    return model.eval(), tokenizer, dict(cfg.get("ngram", {}))


def encode_for(tokenizer: Tokenizer, text: str, split: str) -> Any:
    """Token ids of ``text`` the way the run was built (``whitespace``: one sentence a line)."""
    if split == "whitespace":
        if not isinstance(tokenizer, WordTokenizer):
            raise LmlabError("whitespace splitting needs a word tokenizer")
        return encode_lines(tokenizer, text)
    return tokenizer.encode_array(text)


def encode_file(tokenizer: Tokenizer, path: str | Path, split: str) -> Any:
    return encode_for(tokenizer, read_text(path), split)


def names_for(tokenizer: Tokenizer) -> list[str]:
    """ARPA word names of every id of ``tokenizer`` (plus ``<s>``)."""
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    return arpa_names(pieces, tokenizer.eos_id, tokenizer.special_tokens.get("<unk>"))


def export_arpa(model: NGramLM, tokenizer: Tokenizer, path: str | Path) -> Path:
    if tokenizer.vocab_size != model.config.vocab_size:
        raise LmlabError("the tokenizer and the n-gram model disagree on the vocabulary size")
    write_arpa(model.tables(), names_for(tokenizer), path)
    return Path(path)


def import_arpa(path: str | Path, tokenizer: Tokenizer | None = None) -> tuple[NGramLM, Tokenizer]:
    """A model from an ARPA file; without ``tokenizer``, a word tokenizer of its unigrams
    (``</s>`` becomes ``<eos>``, ``<unk>`` lmlab's ``<unk>``)."""
    from lmlab.models.ngram import NGramConfig, NGramLM

    orders = read_arpa(path)
    if tokenizer is None:
        words = [w for w in orders[0].words[0] if w not in (BOS, EOS, UNK)]
        tokenizer = WordTokenizer(words, newlines=True)
    names = names_for(tokenizer)
    word_ids = {name: i for i, name in enumerate(names)}
    if "<unk>" not in tokenizer.special_tokens:
        word_ids.pop(UNK, None)
    tables = tables_from_arpa(orders, word_ids, tokenizer.vocab_size, path)
    config = NGramConfig(
        vocab_size=tokenizer.vocab_size, order=tables.order, eos_id=tokenizer.eos_id
    )
    model = NGramLM(config)
    model.set_tables(tables)
    return model, tokenizer
