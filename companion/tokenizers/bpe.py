"""Byte-level BPE (字节级 BPE), as in GPT-2 and its successors: encoding, decoding, files.

Byte pair encoding (Gage, 1994; Sennrich et al., 2016) starts from a base alphabet and repeatedly
adds the concatenation of the most frequent adjacent pair as a new symbol. Byte-level BPE (Radford et
al., 2019) takes the 256 byte values as the base alphabet, so every string — any script, emoji,
control characters — has an encoding and there is no out-of-vocabulary input.

**Training** (``BPETokenizer.train``) counts the corpus's pre-tokens and learns the merges with
:mod:`companion.tokenizers.bpe_trainer` (incremental pair counts, a heap, a documented tie-break).

**Encoding** applies the merges by rank: inside each pre-token, repeatedly merge the adjacent pair
with the lowest rank (leftmost first), which is what GPT-2, tiktoken and Hugging Face do. Results are
cached per pre-token, so frequent words cost one dictionary lookup.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import regex

from companion.tokenizers.base import Tokenizer
from companion.tokenizers.bpe_trainer import count_words, train_merges
from companion.tokenizers.byte_level import token_from_unicode, token_to_unicode
from companion.tokenizers.pretokenize import get_pattern, make_splitter, safe_chunks, special_token_regex

__all__ = ["BPETokenizer"]

AllowedSpecial = Literal["all", "none"] | Collection[str]

#: Longest pre-token kept in the encoding cache, so that its memory is bounded by ``cache_size`` entries
#: of at most this many characters (before: 30 distinct 1 MB words held about 258 MB).
_CACHE_PIECE = 64


def _merge_pair(ids: list[int], a: int, b: int, new_id: int) -> list[int] | None:
    """Replace every non-overlapping (a, b) in ``ids``, left to right; None if there is none."""
    out: list[int] = []
    i, n, found = 0, len(ids), False
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
            found = True
        else:
            out.append(ids[i])
            i += 1
    return out if found else None


class BPETokenizer(Tokenizer):
    """A byte-level BPE tokenizer: 256 byte tokens, ranked merges, special tokens, a pre-token regex.

    Build one by training (:meth:`train`), from a file written by
    :meth:`~companion.tokenizers.base.Tokenizer.save` (:meth:`~companion.tokenizers.base.Tokenizer.load`),
    from GPT-2-style vocabulary and merge strings (:meth:`from_vocab_and_merges`), or from a pretrained model
    (:meth:`from_gguf`, :meth:`from_pretrained`).

    Args:
        merges: the merges in rank order, as ``(left bytes, right bytes)``.
        vocab: optional id → bytes map. Without it, ids are assigned as in training: byte ``b`` has id
            ``b`` and each new merged token the next id.
        pattern: the pre-tokenization regex or a name (``"gpt2"``, ``"gpt4"``, ``"smollm"``).
        special_tokens: a map string → id; without ids (a list), ids follow the vocabulary.
        cache_size: how many pre-token encodings to remember (0 disables the cache).

    Example:
        >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260)
        >>> tok.decode(tok.encode("slower")) == "slower"
        True
    """

    format = "companion.tokenizers.BPETokenizer"

    def __init__(
        self,
        merges: Sequence[tuple[bytes, bytes]] = (),
        *,
        vocab: Mapping[int, bytes] | None = None,
        pattern: str = "gpt4",
        special_tokens: Mapping[str, int] | Sequence[str] | None = None,
        cache_size: int = 1 << 18,
    ) -> None:
        self.pattern = get_pattern(pattern)
        self._split = make_splitter(self.pattern)  # regex.findall, with a fast path for ASCII text
        if vocab is None:
            vocab = {i: bytes([i]) for i in range(256)}
            seen = set(vocab.values())
            for left, right in merges:
                if left + right not in seen:
                    seen.add(left + right)
                    vocab[len(vocab)] = left + right
        self._id_to_bytes: dict[int, bytes] = {}
        for i, b in vocab.items():
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise ValueError(f"vocab: ids must be non-negative ints, got {i!r}")
            if not isinstance(b, bytes):
                raise TypeError(f"vocab: token {i} must be bytes, got {type(b).__name__}")
            self._id_to_bytes[i] = b
        self._bytes_to_id = {b: i for i, b in self._id_to_bytes.items()}
        if len(self._bytes_to_id) != len(self._id_to_bytes):
            raise ValueError("vocab: two ids map to the same bytes")
        # The byte tokens; a pretrained vocabulary may lack some (SmolLM2 lacks 21 byte values).
        self._byte_ids: list[int | None] = [self._bytes_to_id.get(bytes([b])) for b in range(256)]
        self.merges: list[tuple[bytes, bytes]] = []
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (left, right) in enumerate(merges):
            try:
                key = (self._bytes_to_id[left], self._bytes_to_id[right])
                merged = self._bytes_to_id[left + right]
            except KeyError as exc:
                raise ValueError(
                    f"merges: merge {rank} {(left, right)} uses a token not in vocab: {exc}"
                ) from None
            self.merges.append((left, right))
            self._ranks.setdefault(key, (rank, merged))
        self.special_tokens: dict[str, int] = {}
        self._special_by_id: dict[int, str] = {}
        if special_tokens is not None:
            items = (
                special_tokens.items()
                if isinstance(special_tokens, Mapping)
                else ((t, None) for t in special_tokens)
            )
            for token, token_id in items:
                self.add_special_token(token, token_id)
        self._cache_size = cache_size
        self._cache: dict[str, tuple[int, ...]] = {}

    # ------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        corpus: str | Iterable[str],
        vocab_size: int,
        *,
        pattern: str = "gpt4",
        special_tokens: Sequence[str] = (),
        min_frequency: int = 1,
    ) -> BPETokenizer:
        """Train a byte-level BPE tokenizer.

        Args:
            corpus: the training text, or an iterable of strings (an open file streams line by line;
                chunks are re-cut at safe places, so the result equals training on the whole text).
            vocab_size: the final vocabulary size: 256 bytes + merges + special tokens. Training
                stops early when no pair is left.
            pattern: pre-tokenization regex or name.
            special_tokens: added after the merges; never split, never part of a merge.
            min_frequency: stop when the best pair occurs fewer times than this.

        Raises:
            ValueError: if ``vocab_size`` < 256 + the number of special tokens.
        """
        special_tokens = list(dict.fromkeys(special_tokens))
        floor = 256 + len(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < floor:
            raise ValueError(
                f"vocab_size: expected an int >= {floor} (256 bytes + {len(special_tokens)} special "
                f"tokens), got {vocab_size!r}"
            )
        word_counts = count_words(corpus, pattern, special_tokens)
        counts = {w.encode("utf-8"): c for w, c in word_counts.items()}
        merges = train_merges(counts, vocab_size - floor, min_frequency=min_frequency)
        return cls(merges, pattern=pattern, special_tokens=special_tokens)

    @classmethod
    def from_vocab_and_merges(
        cls,
        tokens: Mapping[str, int] | Sequence[str],
        merges: Sequence[str] | Sequence[tuple[str, str]],
        *,
        special_tokens: Collection[str] = (),
        pattern: str = "gpt2",
    ) -> BPETokenizer:
        """Build from GPT-2-style files: tokens spelled in the byte alphabet (``"Ġthe"``) and merges
        ``"Ġ t"`` (or pairs). ``special_tokens`` are tokens matched whole in the text instead."""
        if not isinstance(tokens, Mapping):
            tokens = {t: i for i, t in enumerate(tokens)}
        special_tokens = set(special_tokens)
        vocab = {i: token_from_unicode(t) for t, i in tokens.items() if t not in special_tokens}
        pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
        byte_merges = [(token_from_unicode(a), token_from_unicode(b)) for a, b in pairs]
        specials = {t: tokens[t] for t in special_tokens}
        return cls(byte_merges, vocab=vocab, pattern=pattern, special_tokens=specials)

    @classmethod
    def from_gguf(cls, path: str | Path, *, pattern: str | None = None) -> BPETokenizer:
        """Load the tokenizer of a GGUF model file (``tokenizer.ggml.model == "gpt2"``).

        Tokens marked CONTROL or USER_DEFINED become special tokens. The pre-tokenizer follows
        ``tokenizer.ggml.pre`` (``"smollm"`` → :data:`~companion.tokenizers.pretokenize.SMOLLM_PATTERN`,
        otherwise GPT-2's) unless ``pattern`` is given.
        """
        from companion.gguf import GGUFFile

        meta = GGUFFile(path).metadata
        model = meta.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"path: expected a byte-level BPE vocabulary (model 'gpt2'), got {model!r}")
        tokens = meta["tokenizer.ggml.tokens"]
        types = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
        special = [t for t, kind in zip(tokens, types, strict=True) if kind in (3, 4)]
        if pattern is None:
            pattern = "smollm" if meta.get("tokenizer.ggml.pre") == "smollm" else "gpt2"
        tok = cls.from_vocab_and_merges(
            tokens, meta["tokenizer.ggml.merges"], special_tokens=special, pattern=pattern
        )
        tok.bos_id = meta.get("tokenizer.ggml.bos_token_id")
        tok.eos_id = meta.get("tokenizer.ggml.eos_token_id")
        tok.chat_template = meta.get("tokenizer.chat_template")
        return tok

    @classmethod
    def from_pretrained(cls, name: str = "smollm2", *, pattern: str | None = None) -> BPETokenizer:
        """A pretrained tokenizer from the pinned assets of :mod:`companion.hub` (fetched if needed).

        ``"smollm2"``: SmolLM2-135M-Instruct's 49,152-token byte-level BPE, read from its GGUF file.
        """
        from companion import hub

        if name != "smollm2":
            raise ValueError(f"name: expected 'smollm2', got {name!r}")
        return cls.from_gguf(hub.path("smollm2", hub.SMOLLM2_GGUF), pattern=pattern)

    bos_id: int | None = None
    eos_id: int | None = None
    chat_template: str | None = None  # the model's Jinja chat template (from a GGUF file)

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
    ) -> list[int] | str:
        """A conversation as the model reads it: rendered by :attr:`chat_template`, then encoded
        with special tokens (Hugging Face's ``apply_chat_template``; see :mod:`companion.tokenizers.chat`).

        Returns:
            The ids, or the text with ``tokenize=False``.
        """
        from companion.tokenizers.chat import render_chat_template

        if self.chat_template is None:
            raise ValueError(
                "chat_template: this tokenizer has none (load it with from_gguf/from_pretrained)"
            )
        text = render_chat_template(self.chat_template, messages, add_generation_prompt=add_generation_prompt)
        return self.encode(text) if tokenize else text

    def add_special_token(self, token: str, token_id: int | None = None) -> int:
        """Register ``token`` as a special token (matched whole, never split); return its id."""
        if not isinstance(token, str) or not token:
            raise ValueError(f"token: expected a non-empty str, got {token!r}")
        if token_id is None:
            token_id = max([*self._id_to_bytes, *self.special_tokens.values(), -1]) + 1
        if token_id in self._id_to_bytes or (
            token_id in self.special_tokens.values() and self.special_tokens.get(token) != token_id
        ):
            raise ValueError(f"token_id: {token_id} is already used by another token")
        self.special_tokens[token] = token_id
        self._special_by_id = {i: t for t, i in self.special_tokens.items()}
        self._cache = {}
        return token_id

    # ------------------------------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """The largest id + 1, the size of an embedding table that covers every id. Ids are usually
        contiguous (then this is the number of tokens); a special token added at id 5000 makes it
        5001, not 259."""
        ids = [*self._id_to_bytes, *self.special_tokens.values()]
        return max(ids) + 1 if ids else 0

    @property
    def vocab(self) -> dict[int, bytes]:
        """A copy of the id → bytes map of the ordinary (non-special) tokens."""
        return dict(self._id_to_bytes)

    @property
    def missing_bytes(self) -> list[int]:
        """Byte values without a token. Encoding drops them (as Hugging Face does); empty after training."""
        return [b for b, i in enumerate(self._byte_ids) if i is None]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of an id (a special token's UTF-8 text)."""
        if token_id in self._id_to_bytes:
            return self._id_to_bytes[token_id]
        if token_id in self._special_by_id:
            return self._special_by_id[token_id].encode("utf-8")
        raise ValueError(f"token_id: {token_id!r} is not in the vocabulary (size {self.vocab_size})")

    # ------------------------------------------------------------------------------------------
    # encoding
    # ------------------------------------------------------------------------------------------

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        byte_ids = self._byte_ids
        ids = [i for i in (byte_ids[b] for b in piece.encode("utf-8")) if i is not None]
        ranks = self._ranks
        if len(ids) > 64:
            return tuple(_merge_by_rank_heap(ids, ranks))
        while len(ids) > 1:
            best_rank, best = None, None
            for pair in pairwise(ids):
                found = ranks.get(pair)
                if found is not None and (best_rank is None or found[0] < best_rank):
                    best_rank, best = found[0], pair
            if best is None:
                break
            a, b = best
            ids = _merge_pair(ids, a, b, ranks[best][1]) or ids
        return tuple(ids)

    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        cache = self._cache
        if self._cache_size <= 0:
            for piece in self._split(text):
                out.extend(self._encode_piece(piece))
            return
        for piece in self._split(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._encode_piece(piece)
                # The cache is for the frequent short words; a long piece (a run of spaces, a long
                # word in a binary-like text) is not worth keeping and would make the cache's size in
                # bytes unbounded: entries hold at most _CACHE_PIECE characters.
                if len(piece) <= _CACHE_PIECE:
                    if len(cache) >= self._cache_size:
                        cache.clear()
                    cache[piece] = ids
            out.extend(ids)

    def _allowed(self, allowed_special: AllowedSpecial) -> regex.Pattern | None:
        if allowed_special == "all":
            return special_token_regex(self.special_tokens)
        if allowed_special == "none":
            return None
        if isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special: expected 'all', 'none' or a set of strings, got {allowed_special!r}"
            )
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special: {sorted(unknown)} are not special tokens of this tokenizer")
        return special_token_regex(allowed_special)

    def encode(self, text: str, *, allowed_special: AllowedSpecial = "all") -> list[int]:
        """Encode text to ids.

        Args:
            text: any string.
            allowed_special: which special tokens are recognized in the text: ``"all"`` (default,
                like Hugging Face), ``"none"`` or a set of token strings. A special token that is not
                allowed is encoded as ordinary text, byte by byte.

        Returns:
            The token ids, ``(N,)`` as a list.
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        out: list[int] = []
        special = self._allowed(allowed_special)
        if special is None:
            self._encode_ordinary(text, out)
            return out
        for i, part in enumerate(special.split(text)):
            if i % 2:  # odd parts are the captured special tokens
                out.append(self.special_tokens[part])
            elif part:
                self._encode_ordinary(part, out)
        return out

    def encode_batch(
        self, texts: Iterable[str], *, allowed_special: AllowedSpecial = "all"
    ) -> list[list[int]]:
        """Encode several texts (sharing the pre-token cache)."""
        return [self.encode(t, allowed_special=allowed_special) for t in texts]

    def encode_file(
        self,
        path: str | Path,
        *,
        chunk_chars: int = 1 << 20,
        allowed_special: AllowedSpecial = "all",
        encoding: str = "utf-8",
    ) -> Iterator[list[int]]:
        """Stream a text file: yield the ids chunk by chunk, in memory O(``chunk_chars``).

        Chunks are cut where no pre-token or special token can straddle the cut, so the
        concatenation of the yielded lists equals ``encode(whole file)``.
        """
        special = self._allowed(allowed_special)
        with open(path, encoding=encoding, newline="") as f:
            blocks = iter(lambda: f.read(min(chunk_chars, 1 << 16)), "")
            for chunk in safe_chunks(blocks, chunk_chars, protect=special):
                yield self.encode(chunk, allowed_special=allowed_special)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of ids (special tokens as their UTF-8 text)."""
        table, special = self._id_to_bytes, self._special_by_id
        parts = []
        for i in ids:
            piece = table.get(i)
            if piece is None:
                if i not in special:
                    raise ValueError(f"ids: {i!r} is not in the vocabulary (size {self.vocab_size})")
                piece = special[i].encode("utf-8")
            parts.append(piece)
        return b"".join(parts)

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        """Decode ids to text. A token sequence that cuts a UTF-8 character in two cannot be decoded
        exactly; ``errors`` says what to do then (``"replace"`` gives U+FFFD, ``"strict"`` raises)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def tokens(self, text: str, **kwargs) -> list[str]:
        """The tokens of ``text`` spelled in GPT-2's byte alphabet (``"Ġworld"``), for display."""
        return [
            self._special_by_id[i] if i in self._special_by_id else token_to_unicode(self._id_to_bytes[i])
            for i in self.encode(text, **kwargs)
        ]

    # ------------------------------------------------------------------------------------------
    # files
    # ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready description :meth:`~companion.tokenizers.base.Tokenizer.save` writes: tokens in
        GPT-2's byte alphabet, merges as ``"Ġ t"``."""
        return {
            "format": self.format,
            "version": 2,
            "vocab_size": self.vocab_size,
            "missing_bytes": self.missing_bytes,
            "pattern": self.pattern,
            "special_tokens": dict(sorted(self.special_tokens.items(), key=lambda kv: kv[1])),
            "vocab": {token_to_unicode(b): i for i, b in sorted(self._id_to_bytes.items())},
            "merges": [f"{token_to_unicode(a)} {token_to_unicode(b)}" for a, b in self.merges],
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "chat_template": self.chat_template,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        """Inverse of :meth:`to_dict`, checked: no id is used twice, the byte tokens are all there
        (or exactly the ``missing_bytes`` the file declares), and the size is the declared one.

        Raises:
            ValueError: saying what is inconsistent.
        """
        by_id: dict[int, list[str]] = {}
        for t, i in data["vocab"].items():
            by_id.setdefault(i, []).append(t)
        shared = {i: ts for i, ts in by_id.items() if len(ts) > 1}
        if shared:
            i, ts = next(iter(sorted(shared.items())))
            raise ValueError(
                f"vocab: id {i} is given to {len(ts)} tokens ({ts[:3]}); every id must be unique"
            )
        vocab = {i: token_from_unicode(ts[0]) for i, ts in by_id.items()}
        merges = [tuple(token_from_unicode(p) for p in m.split(" ")) for m in data["merges"]]
        tok = cls(merges, vocab=vocab, pattern=data["pattern"], special_tokens=data["special_tokens"])
        declared = data.get("missing_bytes", [])  # version 1 files were all written by training: none
        if tok.missing_bytes != list(declared):
            raise ValueError(
                f"vocab: byte tokens {tok.missing_bytes[:8]} are missing (the file declares "
                f"{list(declared)[:8]}); encoding would silently drop those bytes"
            )
        if "vocab_size" in data and tok.vocab_size != data["vocab_size"]:
            raise ValueError(
                f"vocab_size: the file declares {data['vocab_size']}, its tokens make {tok.vocab_size}"
            )
        tok.bos_id, tok.eos_id = data.get("bos_id"), data.get("eos_id")
        tok.chat_template = data.get("chat_template")
        return tok

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={len(self.special_tokens)})"
        )


def _merge_by_rank_heap(ids: list[int], ranks: Mapping[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Rank-order merging for long pre-tokens in O(n log n): a heap of (rank, position) over a
    doubly linked list. Gives the same result as the quadratic loop (lowest rank, leftmost first)."""
    n = len(ids)
    tok = list(ids)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    alive = [True] * n
    heap = []
    for i in range(n - 1):
        found = ranks.get((tok[i], tok[i + 1]))
        if found is not None:
            heap.append((found[0], i, tok[i], tok[i + 1]))
    heapq.heapify(heap)
    while heap:
        _, i, a, b = heapq.heappop(heap)
        j = nxt[i]
        if not alive[i] or j >= n or tok[i] != a or tok[j] != b:
            continue  # stale: one side was merged since this entry was pushed
        tok[i] = ranks[(a, b)][1]
        alive[j] = False
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        p, q = prv[i], nxt[i]
        if p >= 0:
            found = ranks.get((tok[p], tok[i]))
            if found is not None:
                heapq.heappush(heap, (found[0], p, tok[p], tok[i]))
        if q < n:
            found = ranks.get((tok[i], tok[q]))
            if found is not None:
                heapq.heappush(heap, (found[0], i, tok[i], tok[q]))
    return [tok[i] for i in range(n) if alive[i]]
