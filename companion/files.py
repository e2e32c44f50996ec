"""Files that are never half-written, and experiment results with their provenance.

* :func:`atomic_open` writes a temporary file beside the destination and renames it into place. A rename
  within one directory is atomic on POSIX and Windows, so a reader (or a run that crashed half-way
  through a save) sees either the old file or the complete new one, never half a file. Checkpoints,
  tokenizer files and experiment results are written through it.
* :func:`write_json` writes a results record that way (sorted keys, one space of indentation: stable
  diffs); :func:`config_hash` names the configuration a result came from; :func:`provenance` records
  how it was made (script, torch version, device, threads, seconds). The ``experiments/`` scripts use them,
  and the chapters check the hash before they read a committed result.
* :func:`committed_result` reads a file of ``experiments/results/`` for a chapter: from the clone of
  the book's repository the notebook runs in, or, where only the package is installed (Colab),
  downloaded from the repository.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "RESULTS_URL",
    "atomic_open",
    "committed_result",
    "config_hash",
    "provenance",
    "remove_orphans",
    "write_json",
]

#: Where the committed results live in the book's repository (``project.urls`` of ``pyproject.toml``).
RESULTS_URL = "https://raw.githubusercontent.com/llm-foundations/llm-foundations/main/experiments/results/"


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


def remove_orphans(path: str | Path) -> list[Path]:
    """Delete the temporary files that :func:`atomic_open` left beside ``path`` when its process was
    killed mid-write (``.<name>.<random>.tmp``); return what was removed.

    Call it where one process owns ``path`` — at the start of a run, before its first save — never
    while another process may be writing the same file.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def write_json(record: Any, path: str | Path) -> None:
    """Write ``record`` as JSON to ``path`` atomically (sorted keys, indent 1, a final newline)."""
    with atomic_open(path) as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` (sorted keys, no spaces): the name of a configuration.

    A committed result stores the hash of the configuration it was run with; a chapter recomputes it
    from the current defaults and refuses a stale file.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def provenance(script: str, *, device: str, threads: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """How a result was made: the script, the torch version, device, threads and wall time.

    Args:
        script: the path of the script, relative to the repository root.
        device, threads: where it ran.
        seconds: wall-clock time of the run (rounded to 0.1 s).
        **extra: more fields (e.g. ``data="companion.data.tiny_shakespeare, character level"``).
    """
    record = {
        "script": script,
        "torch": torch.__version__,
        "device": device,
        "threads": threads,
        "seconds": round(float(seconds), 1),
    }
    return {**record, **extra}


def committed_result(name: str, *, start: str | Path | None = None, as_json: bool = True) -> Any:
    """A committed file of ``experiments/results/``: the parsed JSON, or the text with ``as_json=False``.

    The file is looked for in ``experiments/results/`` of ``start`` (default: the working directory)
    and of each folder above it, so a notebook finds its repository's copy wherever it runs inside
    the clone; without one (on Colab) it is downloaded from :data:`RESULTS_URL`.

    Args:
        name: the file name, e.g. ``"length_extrapolation.json"``.
        start: where to start looking.
        as_json: parse the file as JSON (default) or return its text.

    Raises:
        ValueError: if ``name`` is not a plain file name.
    """
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name: expected a file name in experiments/results, got {name!r}")
    here = Path.cwd() if start is None else Path(start).resolve()
    for folder in (here, *here.parents):
        path = folder / "experiments" / "results" / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            break
    else:
        import urllib.request  # only without a clone: Colab

        with urllib.request.urlopen(RESULTS_URL + name, timeout=30) as response:
            text = response.read().decode("utf-8")
    return json.loads(text) if as_json else text
