"""The one tokenizer interface (分词器接口) that every tokenizer of the companion implements.

A tokenizer maps text to integer ids and back, and can be trained, saved and loaded::

    tok = BPETokenizer.train(corpus, vocab_size=512)   # or Char-, WordPiece-, UnigramTokenizer
    ids = tok.encode("To be, or not to be")            # list[int], each in [0, tok.vocab_size)
    text = tok.decode(ids)
    tok.save("tok.json"); Tokenizer.load("tok.json")   # the same tokenizer, whatever its kind

Each kind writes its own JSON description (:meth:`Tokenizer.to_dict`, tagged with a ``"format"``) and
rebuilds itself from it (:meth:`Tokenizer.from_dict`); :meth:`Tokenizer.save` writes that description
atomically (:func:`companion.files.atomic_open`), and :meth:`Tokenizer.load` on the base class reads a
file of any kind. What a kind does *not* promise is that ``decode(encode(text)) == text`` for every
text: byte-level BPE and the character tokenizer are lossless (the latter on its alphabet), WordPiece
lower-cases and drops spaces, and Unigram maps uncovered characters to ``<unk>``.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from companion.files import atomic_open

__all__ = ["Tokenizer"]


class Tokenizer(abc.ABC):
    """Base class of the companion's tokenizers: ``encode``, ``decode``, ``vocab_size``, ``train``,
    ``to_dict``/``from_dict`` and, built on those, ``save`` and ``load``.

    A subclass sets ``format`` (the tag of its JSON files) and implements the abstract methods; it is
    then known to :meth:`load`.
    """

    format: ClassVar[str]
    _kinds: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tag = cls.__dict__.get("format")
        if tag is not None:
            if tag in Tokenizer._kinds and Tokenizer._kinds[tag] is not cls:
                raise TypeError(f"format: {tag!r} is already the tag of {Tokenizer._kinds[tag].__name__}")
            Tokenizer._kinds[tag] = cls

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """The number of ids; every id ``encode`` returns is in ``[0, vocab_size)``."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``."""

    @classmethod
    @abc.abstractmethod
    def train(cls, corpus: str | Iterable[str], vocab_size: int, **kwargs: Any) -> Tokenizer:
        """Learn a vocabulary of ``vocab_size`` ids from ``corpus`` (text, or an iterable of lines)."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description with ``"format": cls.format``, from which :meth:`from_dict` rebuilds
        an identical tokenizer."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_dict`'s description."""

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as readable JSON; a crash never leaves half a file."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        with atomic_open(path) as f:
            f.write(text)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a file written by :meth:`save`.

        Called on :class:`Tokenizer` it returns whichever kind the file holds; called on a kind, the
        file must hold that kind.

        Raises:
            ValueError: for a file of no known format, or of another kind than ``cls``.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        tag = data.get("format") if isinstance(data, dict) else None
        kind = Tokenizer._kinds.get(tag)
        if kind is None:
            known = ", ".join(sorted(Tokenizer._kinds))
            raise ValueError(f"path: {path} is not a tokenizer file (format={tag!r}; known: {known})")
        if not issubclass(kind, cls):
            raise ValueError(f"path: {path} holds a {kind.__name__} (format {tag!r}), not a {cls.__name__}")
        return kind.from_dict(data)
