"""Download a corpus for users who are online: checked against a SHA-256, written atomically.

Nothing in lmlab downloads on its own; this runs only for ``lmlab data --url URL --sha256 HEX``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from lmlab.config import publish
from lmlab.errors import LmlabError
from lmlab.progress import progress_bar


def download(url: str, sha256: str, dest_dir: str | Path, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``dest_dir`` unless a file with the right hash is already there."""
    sha256 = sha256.lower().strip()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise LmlabError("--sha256 must be 64 hexadecimal digits (the expected file hash)")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise LmlabError(f"URL {url!r} must start with http:// or https://")
    name = Path(parsed.path).name or "download.txt"
    dest = Path(dest_dir) / name
    if dest.is_file() and _sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_bar(
                total=total, unit="B", unit_scale=True, desc=f"download {name}", leave=False
            ) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        if h.hexdigest() != sha256:
            raise LmlabError(
                f"download of {url} has SHA-256 {h.hexdigest()}, expected {sha256}; "
                "check the URL and hash (nothing was saved)"
            )
        publish(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise LmlabError(
            f"cannot download {url}: {getattr(e, 'reason', e)}; check the URL and your connection"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
