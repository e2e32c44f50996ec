"""Atomic file writes: write a temporary file beside the destination, then rename it into place.

A rename within one directory is atomic on POSIX and Windows, so a reader (or a run that crashed
half-way through a save) sees either the old file or the complete new one, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open"]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` when the ``with`` block succeeds.

    The parent directory is created if needed. On success the data are flushed to disk before the
    rename (and the rename itself is made durable where the OS allows); on an exception the
    temporary file is removed and ``path`` is left untouched. The new file gets the usual
    permissions (``0o666`` minus the umask), not the owner-only ``0o600`` of ``tempfile.mkstemp``.

    Args:
        path: the destination.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: the text encoding (ignored in binary mode).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: expected 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL: never open an existing file; mode 0o666: the kernel applies the umask, as for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
