"""The character tokenizer (字符级分词器): one id per distinct character, in sorted order.

nanoGPT's ``shakespeare_char`` vocabulary: tiny Shakespeare has 65 characters, so ``V = 65``. Lossless
on its alphabet; a character it has not seen is an error rather than an unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from companion.tokenizers.base import Tokenizer

__all__ = ["CharTokenizer"]


class CharTokenizer(Tokenizer):
    """Character-level tokenizer: one id per distinct character of the corpus, in sorted order.

    Args:
        text: the corpus whose characters form the vocabulary (a string, or an iterable of strings or
            characters).
    """

    format = "companion.tokenizers.CharTokenizer"

    def __init__(self, text: str | Iterable[str]) -> None:
        chars = set(text) if isinstance(text, str) else {c for part in text for c in part}
        self.chars: list[str] = sorted(chars)
        if not self.chars:
            raise ValueError("text: expected a non-empty corpus")
        self._stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(
        cls, corpus: str | Iterable[str], vocab_size: int | None = None, **kwargs: Any
    ) -> CharTokenizer:
        """The characters of ``corpus``; ``vocab_size``, if given, must equal their number.

        Raises:
            ValueError: if ``vocab_size`` differs from the number of distinct characters.
        """
        if kwargs:
            raise TypeError(f"CharTokenizer.train: unexpected arguments {sorted(kwargs)}")
        tok = cls(corpus)
        if vocab_size is not None and vocab_size != tok.vocab_size:
            raise ValueError(
                f"vocab_size: a character tokenizer has one id per character; the corpus has "
                f"{tok.vocab_size} distinct characters, got vocab_size={vocab_size}"
            )
        return tok

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters ``V``."""
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; a character outside the vocabulary is a ``ValueError``."""
        try:
            return [self._stoi[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"text: character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (a list or a 1-D tensor)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        ids = list(ids)
        bad = [
            i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.chars)
        ]
        if bad:  # a negative id would index from the end ('z' for -1) instead of failing
            raise ValueError(f"ids: expected ids in [0, {len(self.chars)}), got {bad[:5]}")
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        """``{"format": "companion.tokenizers.CharTokenizer", "chars": [...]}``."""
        return {"format": self.format, "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        """Inverse of :meth:`to_dict`."""
        return cls(data["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
