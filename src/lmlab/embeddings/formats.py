"""Word-vector files: word2vec text and binary formats, and safetensors + vocabulary JSON.

* text (``.txt``, ``.vec``): a header line ``V D``, then ``word v1 ... vD`` per line; files
  without the header (Stanford GloVe's output) are read too;
* binary (``.bin``): the header line, then per word ``word<space>`` and ``D`` little-endian
  float32 values followed by ``\\n`` (word2vec's C format; gensim reads and writes it);
* ``.safetensors``: one tensor ``vectors`` (V, D), with the words (and counts when known) in
  ``<name>.vocab.json`` beside it. No pickles anywhere.

Every writer is atomic; every reader turns a malformed file into one clear :class:`LmlabError`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from lmlab.config import atomic_write_bytes, atomic_write_text
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError

FORMATS = ("text", "binary", "safetensors")


def guess_format(path: str | Path) -> str:
    """``text``, ``binary`` or ``safetensors`` from the file name."""
    name = str(path).lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".bin"):
        return "binary"
    return "text"


def vocab_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".vocab.json")


def save_vectors(vectors: Vectors, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``vectors`` to ``path`` in ``fmt`` (guessed from the name when None)."""
    fmt = fmt or guess_format(path)
    path = Path(path)
    v, d = vectors.vectors.shape
    if fmt == "text":
        if _numba_pays(v * d):
            from lmlab.embeddings._float_text import text_rows

            body = text_rows(vectors.words, vectors.vectors)
            atomic_write_bytes(path, f"{v} {d}\n".encode() + body)
        else:
            row_fmt = " ".join(["%.9g"] * d)  # 9 significant digits: float32 round-trips
            rows = (
                w + " " + row_fmt % tuple(row)
                for w, row in zip(vectors.words, vectors.vectors.tolist(), strict=True)
            )
            atomic_write_text(path, f"{v} {d}\n" + "\n".join(rows) + "\n")
    elif fmt == "binary":
        parts = [f"{v} {d}\n".encode()]
        data = vectors.vectors.astype("<f4")
        for w, row in zip(vectors.words, data, strict=True):
            parts += [w.encode("utf-8") + b" ", row.tobytes(), b"\n"]
        atomic_write_bytes(path, b"".join(parts))
    elif fmt == "safetensors":
        from safetensors.numpy import save

        vocab = {"words": vectors.words}
        if vectors.counts is not None:
            vocab["counts"] = vectors.counts.tolist()
        atomic_write_bytes(path, save({"vectors": np.ascontiguousarray(vectors.vectors)}))
        atomic_write_text(vocab_path(path), json.dumps(vocab, ensure_ascii=False))
    else:
        raise LmlabError(f"unknown vector format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return path


def _numba_pays(n_values: int) -> bool:
    """Whether the numba text kernel beats ``%`` formatting: for large matrices, and sooner
    when a trainer has already imported numba (its start-up is then paid)."""
    if importlib.util.find_spec("numba") is None:  # pragma: no cover - a dependency
        return False
    return n_values >= (100_000 if "numba" in sys.modules else 2_000_000)


def load_vectors(path: str | Path, fmt: str | None = None) -> Vectors:
    """Read vectors written by lmlab, gensim, word2vec or GloVe."""
    path = Path(path)
    if not path.is_file():
        raise LmlabError(f"vector file {path} not found; check the path")
    fmt = fmt or guess_format(path)
    if fmt == "text":
        return _load_text(path)
    if fmt == "binary":
        return _load_binary(path)
    if fmt == "safetensors":
        return _load_safetensors(path)
    raise LmlabError(f"unknown vector format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _corrupt(path: Path, why: str) -> LmlabError:
    return LmlabError(f"vector file {path} is corrupt or not in the expected format ({why}); "
                      "re-export it or pass the right format")  # fmt: skip


def _header(line: str, path: Path) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _load_text(path: Path) -> Vectors:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise _corrupt(path, "not UTF-8 text; is it a binary .bin file?") from e
    if not lines:
        raise _corrupt(path, "empty file")
    header = _header(lines[0], path)
    body = [ln for ln in (lines[1:] if header else lines) if ln.strip()]
    if not body:
        raise _corrupt(path, "no vectors")
    words, values = [], []
    dim = header[1] if header else len(body[0].rstrip().split(" ")) - 1
    for n, line in enumerate(body, start=2 if header else 1):
        parts = line.rstrip().split(" ")
        if len(parts) != dim + 1:
            raise _corrupt(path, f"line {n} has {len(parts) - 1} values, expected {dim}")
        words.append(parts[0])
        values.append(parts[1:])
    if header and len(words) != header[0]:
        raise _corrupt(path, f"header says {header[0]} words, found {len(words)}")
    try:
        arr = np.array(values, dtype=np.float32)
    except ValueError as e:
        raise _corrupt(path, f"non-numeric value: {e}") from e
    return Vectors(words, arr.reshape(len(words), dim))


def _load_binary(path: Path) -> Vectors:
    data = path.read_bytes()
    nl = data.find(b"\n")
    header = _header(data[:nl].decode("latin-1"), path) if nl > 0 else None
    if header is None:
        raise _corrupt(path, "missing 'count dim' header line")
    v, d = header
    words, rows, pos, width = [], [], nl + 1, 4 * d
    for _ in range(v):
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1
        sp = data.find(b" ", pos)
        if sp < 0 or sp + 1 + width > len(data):
            raise _corrupt(path, f"truncated after {len(words)} of {v} words")
        try:
            words.append(data[pos:sp].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise _corrupt(path, f"word {len(words) + 1} is not UTF-8") from e
        rows.append(np.frombuffer(data, dtype="<f4", count=d, offset=sp + 1))
        pos = sp + 1 + width
    arr = np.stack(rows).astype(np.float32) if rows else np.zeros((0, d), np.float32)
    return Vectors(words, arr)


def _load_safetensors(path: Path) -> Vectors:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    vp = vocab_path(path)
    if not vp.is_file():
        raise LmlabError(f"vocabulary file {vp} not found next to {path}; keep them together")
    try:
        arr = load_file(str(path))["vectors"]
        vocab = json.loads(vp.read_text(encoding="utf-8"))
        words = vocab["words"]
    except (SafetensorError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _corrupt(path, str(e)) from e
    return Vectors(words, arr, vocab.get("counts"))
