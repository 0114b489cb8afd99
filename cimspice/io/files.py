"""Files written by cimspice: always atomically (temp file beside the target + rename), with
the usual permissions, and checked for writability before a long run starts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from ..text import storable_text
from ..errors import InputError


def _temp_beside(path: Path) -> str:
    """Create an empty temp file in ``path``'s directory; one-line InputError if impossible."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name for -o")
    if not parent.is_dir():
        raise InputError(f"{path}: output directory {parent} does not exist; create it or choose another -o")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{path}: output directory {parent} is not writable; choose another -o")
    try:  # os.access says yes for root even where creating fails (read-only mounts, /proc)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot create a file in {parent} ({exc.strerror}); "
                         f"choose another -o") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    return tmp


def check_output_path(path: str | Path) -> None:
    """Fail early (before a long run) if ``path`` cannot be written; leaves nothing behind."""
    os.unlink(_temp_beside(Path(path)))


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(storable_text(text), encoding="utf-8")


def file_digest(path) -> str:
    """Short SHA-256 of a file's bytes (run identities: weights, datasets)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
