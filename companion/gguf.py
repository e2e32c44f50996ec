"""A small numpy reader for GGUF files (the llama.cpp model format): metadata, tensors, dequantization.

A GGUF file is: the magic ``GGUF``, a version (3), the number of tensors and of metadata entries; the
metadata as typed key–value pairs (``tokenizer.ggml.tokens`` is an array of strings,
``llama.block_count`` a uint32, …); one record per tensor (name, dimensions, ggml type, offset);
padding to ``general.alignment`` (32); then the tensor data. Everything is little-endian.

The reader memory-maps the file and parses only the header, so opening the 98 MB SmolLM2 file takes
a fraction of a second; tensors are read (and dequantized) on demand.

Dimensions: GGUF lists ``ne[0]`` first, the fastest-varying one; :meth:`GGUFFile.tensor` returns the
numpy array in C order, i.e. with the dimensions reversed — ``token_embd.weight`` with
``ne = [576, 49152]`` becomes an array of shape ``(49152, 576)`` (one row per token).

Supported tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_1 (blocks of 32 values with one or two
float16 parameters: ``x = d·q`` for Q8_0, ``x = d·(q − 8)`` for Q4_0, ``x = d·q + m`` for Q4_1).

Every read is bounds-checked: a truncated or crafted file raises :class:`GGUFError` (a
``ValueError``) naming the file, the byte offset and what was expected there, never a raw
``struct.error`` or a silently shortened string.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["GGMLType", "GGUFError", "GGUFFile", "TensorInfo", "dequantize"]

_MAGIC = b"GGUF"

# Metadata value types: code -> (struct format, size) for the scalars.
_SCALARS = {
    0: ("<B", 1),  # UINT8
    1: ("<b", 1),  # INT8
    2: ("<H", 2),  # UINT16
    3: ("<h", 2),  # INT16
    4: ("<I", 4),  # UINT32
    5: ("<i", 4),  # INT32
    6: ("<f", 4),  # FLOAT32
    7: ("<?", 1),  # BOOL
    10: ("<Q", 8),  # UINT64
    11: ("<q", 8),  # INT64
    12: ("<d", 8),  # FLOAT64
}
_NUMPY = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "?",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
_STRING, _ARRAY = 8, 9
_MAX_DEPTH = 8  # arrays of arrays nest at most this deep (real files use 1)
_MAX_DIMS = 8  # ggml tensors have at most 4 dimensions


class GGUFError(ValueError):
    """A GGUF file that cannot be read: the message names the file, the offset and what was expected."""


class _Reader:
    """Bounds-checked little-endian reads from a buffer, each error naming the file and the offset."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    def fail(self, what: str, at: int | None = None) -> GGUFError:
        return GGUFError(f"{self.path}: offset {self.pos if at is None else at}: {what}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"expected {n:,} bytes of {what}, but the file ends at {self.size:,}")

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        n = struct.calcsize(fmt)
        self.need(n, what)
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return out

    def string(self, what: str) -> str:
        start = self.pos
        (n,) = self.unpack("<Q", f"the length of {what}")
        self.need(n, f"{what} (a string of {n:,} bytes)")
        raw = bytes(self.buf[self.pos : self.pos + n])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})", at=start) from None
        self.pos += n
        return text


class GGMLType:
    """ggml tensor type codes and their block layout: (values per block, bytes per block)."""

    F32, F16, Q4_0, Q4_1, Q8_0, BF16 = 0, 1, 2, 3, 8, 30
    NAMES: ClassVar[dict[int, str]] = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 30: "BF16"}
    BLOCK: ClassVar[dict[int, tuple[int, int]]] = {
        0: (1, 4),
        1: (1, 2),
        2: (32, 18),
        3: (32, 20),
        8: (32, 34),
        30: (1, 2),
    }


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor lives: ``shape`` in numpy order (GGUF's ``ne`` reversed), absolute byte offset."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int

    @property
    def type_name(self) -> str:
        """The ggml type's name (``"Q4_1"``), or ``"type <code>"`` for an unsupported one."""
        return GGMLType.NAMES.get(self.ggml_type, f"type {self.ggml_type}")


class GGUFFile:
    """An open GGUF file: ``metadata`` (a dict) and ``tensors`` (name → :class:`TensorInfo`).

    Args:
        path: the ``.gguf`` file.

    Raises:
        ValueError: if the file is not GGUF (bad magic) or uses an unknown metadata type.

    Example:
        >>> f = GGUFFile(hub.path("smollm2", hub.SMOLLM2_GGUF))  # doctest: +SKIP
        >>> f.metadata["llama.block_count"], f.tensor("token_embd.weight").shape  # doctest: +SKIP
        (30, (49152, 576))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            if self.path.stat().st_size < 24:
                raise GGUFError(f"{self.path}: {self.path.stat().st_size} bytes, shorter than a GGUF header")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._parse()
        except BaseException:
            self._mm.close()
            raise

    def _parse(self) -> None:
        buf = self._mm
        if buf[:4] != _MAGIC:
            raise GGUFError(f"path: {self.path} is not a GGUF file (magic {bytes(buf[:4])!r})")
        r = _Reader(buf, self.path)
        r.pos = 4
        self.version, n_tensors, n_kv = r.unpack("<IQQ", "the header (version, tensor and metadata counts)")
        if self.version < 2:
            raise GGUFError(f"path: GGUF version {self.version} is not supported (need >= 2)")
        for count, what, smallest in ((n_kv, "metadata entries", 12), (n_tensors, "tensor records", 24)):
            if count * smallest > r.size:  # each needs at least this many bytes: a crafted count
                raise r.fail(
                    f"the header declares {count:,} {what}, more than a {r.size:,}-byte file can hold"
                )
        self.metadata: dict[str, Any] = {}
        for i in range(n_kv):
            key = r.string(f"the key of metadata entry {i}")
            (vtype,) = r.unpack("<I", f"the type of {key!r}")
            self.metadata[key] = _read_value(r, vtype, key, 0)
        infos = []
        for i in range(n_tensors):
            name = r.string(f"the name of tensor {i}")
            (n_dims,) = r.unpack("<I", f"the number of dimensions of {name!r}")
            if not 1 <= n_dims <= _MAX_DIMS:
                raise r.fail(f"tensor {name!r} has {n_dims} dimensions (expected 1 to {_MAX_DIMS})")
            dims = r.unpack(f"<{n_dims}Q", f"the dimensions of {name!r}")
            ggml_type, offset = r.unpack("<IQ", f"the type and offset of {name!r}")
            infos.append((name, tuple(reversed(dims)), ggml_type, offset))
        alignment = self.metadata.get("general.alignment", 32)
        if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment < 1:
            raise GGUFError(f"{self.path}: general.alignment must be a positive int, got {alignment!r}")
        self.data_offset = -(-r.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, ggml_type, offset in infos:
            n_values = int(np.prod(shape, dtype=object))
            per_block, block_bytes = GGMLType.BLOCK.get(ggml_type, (0, 0))
            if per_block and n_values % per_block:
                raise GGUFError(
                    f"{self.path}: tensor {name!r} has {n_values} values, not whole blocks of {per_block}"
                )
            n_bytes = n_values // per_block * block_bytes if per_block else 0
            start = self.data_offset + offset
            if start + n_bytes > r.size:
                raise GGUFError(
                    f"{self.path}: offset {start:,}: tensor {name!r} needs {n_bytes:,} bytes, but the file "
                    f"ends at {r.size:,} (truncated?)"
                )
            self.tensors[name] = TensorInfo(name, shape, ggml_type, start, n_bytes)

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of tensor ``name`` as a read-only ``uint8`` array (no copy)."""
        info = self._info(name)
        if not info.n_bytes:
            raise ValueError(f"name: tensor {name!r} has unsupported type {info.type_name}")
        return np.frombuffer(self._mm, dtype=np.uint8, count=info.n_bytes, offset=info.offset)

    def tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as float32 (dequantized if needed), shape ``info.shape`` (numpy order)."""
        info = self._info(name)
        return dequantize(self.raw(name), info.ggml_type, info.shape)

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(
                f"name: no tensor {name!r} in {self.path.name} ({len(self.tensors)} tensors)"
            ) from None

    def close(self) -> None:
        """Release the memory map (arrays returned by :meth:`raw` must not be used afterwards)."""
        self._mm.close()

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GGUFFile({self.path.name!r}, version={self.version}, metadata={len(self.metadata)}, "
            f"tensors={len(self.tensors)})"
        )


def _read_value(r: _Reader, vtype: int, key: str, depth: int) -> Any:
    if vtype in _SCALARS:
        fmt, _ = _SCALARS[vtype]
        return r.unpack(fmt, f"the value of {key!r}")[0]
    if vtype == _STRING:
        return r.string(f"the value of {key!r}")
    if vtype == _ARRAY:
        if depth >= _MAX_DEPTH:
            raise r.fail(f"{key!r}: arrays nested deeper than {_MAX_DEPTH}")
        item_type, count = r.unpack("<IQ", f"the item type and length of the array {key!r}")
        if item_type in _NUMPY:  # numeric arrays in one read
            size = _SCALARS[item_type][1]
            r.need(size * count, f"the {count:,} items of {key!r}")
            values = np.frombuffer(r.buf, dtype=_NUMPY[item_type], count=count, offset=r.pos).tolist()
            r.pos += size * count
            return values
        if count * 8 > r.size - r.pos:  # every item needs at least 8 bytes: a crafted count
            raise r.fail(f"{key!r}: an array of {count:,} items cannot fit in the rest of the file")
        if item_type == _STRING:
            return [r.string(f"item {j} of {key!r}") for j in range(count)]
        return [_read_value(r, item_type, key, depth + 1) for _ in range(count)]
    raise r.fail(f"metadata {key!r}: unknown GGUF value type {vtype}")


def dequantize(raw: np.ndarray, ggml_type: int, shape: tuple[int, ...]) -> np.ndarray:
    """Turn stored bytes into a float32 array of ``shape``.

    Args:
        raw: the tensor's bytes (``uint8``).
        ggml_type: a :class:`GGMLType` code.
        shape: the numpy shape; its product must be a multiple of the block size (32 for Q types).
    """
    raw = np.asarray(raw, dtype=np.uint8)
    if ggml_type == GGMLType.F32:
        return raw.view("<f4").reshape(shape).astype(np.float32)
    if ggml_type == GGMLType.F16:
        return raw.view("<f2").astype(np.float32).reshape(shape)
    if ggml_type == GGMLType.BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if ggml_type not in (GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_1):
        raise ValueError(f"ggml_type: {GGMLType.NAMES.get(ggml_type, ggml_type)} is not supported")
    block_bytes = GGMLType.BLOCK[ggml_type][1]
    blocks = raw.reshape(-1, block_bytes)
    d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1) scale
    if ggml_type == GGMLType.Q8_0:
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(shape)
    packed = blocks[:, -16:]
    # Nibbles: the low 4 bits of byte j are value j, the high 4 bits value j + 16.
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
    if ggml_type == GGMLType.Q4_0:
        return (d * (q - 8.0)).reshape(shape)
    m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    return (d * q + m).reshape(shape)
