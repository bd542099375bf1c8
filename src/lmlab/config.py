"""Dataclass configs: TOML load/save and ``key=value`` overrides with type checks.

Unknown keys and wrong types are user errors (:class:`LmlabError`), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from lmlab.errors import LmlabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def _allowed(tp: Any) -> tuple[type, ...]:
    """Python types a dataclass field annotation accepts (handles ``X | None``)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(tp):
            out += _allowed(arg)
        return out
    if tp is type(None) or tp is None:
        return (type(None),)
    if origin is not None:
        return (origin,)
    if tp is float:
        return (float, int)
    return (tp,)


def _check(cls_name: str, name: str, value: Any, tp: Any) -> Any:
    allowed = _allowed(tp)
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, allowed)
    if not ok:
        names = " or ".join(sorted({a.__name__ for a in allowed}))
        raise LmlabError(
            f"config key {name!r} of {cls_name} must be {names}, got {value!r}; fix the value"
        )
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if list in allowed and isinstance(value, tuple):
        return list(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise LmlabError(
            f"unknown config key {unknown[0]!r}{' in ' + where if where else ''}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _check(cls.__name__, k, v, hints[k]) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (None values dropped, since TOML has no null)."""
    return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None}


def parse_value(text: str) -> Any:
    """Parse an override value the way TOML would (``4``, ``1e-3``, ``true``, ``"a"``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a nested dict (a copy)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides:
        if "=" not in item:
            raise LmlabError(f"override {item!r} is not KEY=VALUE; write e.g. model.n_layer=4")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise LmlabError(f"override {key!r}: {p!r} is not a section")
        node[parts[-1]] = parse_value(raw.strip())
    return out


# The files of a run directory (lmlab.run reads them; here so that torch-free code can too).
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.toml"
TOKENIZER_FILE = "tokenizer.json"


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file, with one-line errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"config file {p} not found; check the path")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LmlabError(f"config file {p} is not valid TOML ({e}); fix or regenerate it") from e


def umask_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask; 0o644 under umask 022).
    Read from /proc where it can be, as setting the umask to read it is not thread-safe."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temp file (``mkstemp`` makes them 0600) onto ``path``, giving it the
    mode any other new file gets, so a run directory's files are all alike."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so readers never see half a file
    (with the umask's mode, as a plain write would have)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_toml(path: str | os.PathLike, data: dict[str, Any]) -> None:
    atomic_write_text(path, tomli_w.dumps(data))
