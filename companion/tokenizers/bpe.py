"""Byte-level BPE (字节级 BPE), as in GPT-2 and its successors: training, encoding, decoding, files.

Byte pair encoding (Gage, 1994; Sennrich et al., 2016) starts from a base alphabet and repeatedly
adds the concatenation of the most frequent adjacent pair as a new symbol. Byte-level BPE (Radford et
al., 2019) takes the 256 byte values as the base alphabet, so every string — any script, emoji,
control characters — has an encoding and there is no out-of-vocabulary input.

**Training** (``BPETokenizer.train``) pre-tokenizes the corpus with a regex, counts the unique
pre-tokens ("words"), and then merges. Instead of recounting every pair after every merge (the
teaching version, :func:`companion.tokenizers.naive.train_bytes_naive`), it keeps the pair counts
and, for every pair, the set of words containing it; a merge touches only those words and updates
the counts of the pairs that changed. The best pair comes from a heap with lazy deletion.

**Tie-break** (documented, deterministic): the pair with the largest count wins; among equal counts,
the pair whose byte strings ``(left, right)`` are lexicographically smallest. If a merge produces a
byte string that is already a token, the existing id is reused (as Hugging Face ``tokenizers`` does),
so the vocabulary never holds the same bytes twice.

**Encoding** applies the merges by rank: inside each pre-token, repeatedly merge the adjacent pair
with the lowest rank (leftmost first), which is what GPT-2, tiktoken and Hugging Face do. Results are
cached per pre-token, so frequent words cost one dictionary lookup.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
import regex

from companion.tokenizers.base import Tokenizer
from companion.tokenizers.byte_level import token_from_unicode, token_to_unicode
from companion.tokenizers.pretokenize import get_pattern, make_splitter, safe_chunks

__all__ = ["BPETokenizer", "count_words", "train_merges"]

AllowedSpecial = Literal["all", "none"] | Collection[str]


def count_words(
    corpus: str | Iterable[str], pattern: str = "gpt4", special_tokens: Collection[str] = ()
) -> dict[str, int]:
    """Count the pre-tokens of a corpus, streaming it in safe chunks.

    Special tokens are cut out of the text first and never counted, so merges cannot span them.

    Args:
        corpus: one string, or an iterable of strings (e.g. an open text file) read as their
            concatenation.
        pattern: a pattern name of :mod:`companion.tokenizers.pretokenize` or a regex.
        special_tokens: strings removed before counting.
    """
    findall = make_splitter(pattern)
    special = _special_regex(special_tokens)
    counts: Counter[str] = Counter()
    for chunk in safe_chunks(corpus, protect=special):
        parts = special.split(chunk)[::2] if special is not None else (chunk,)  # odd parts: the specials
        for part in parts:
            counts.update(findall(part))
    return counts


def train_merges(
    word_counts: Mapping[bytes, int], num_new_tokens: int, *, min_frequency: int = 1
) -> list[tuple[bytes, bytes]]:
    """Learn byte-level BPE merges from word counts, incrementally, until ``num_new_tokens`` tokens
    were added to the 256 bytes (or no pair is left).

    Almost every merge adds one token; a merge whose bytes are already a token (``(ab, c)`` after
    ``(a, bc)``) adds a rank but no token, so the list can be slightly longer than ``num_new_tokens``.

    Args:
        word_counts: unique pre-tokens (as bytes) and their frequencies.
        num_new_tokens: how many tokens to add to the 256 byte tokens.
        min_frequency: stop when the best pair occurs fewer times than this.

    Returns:
        The merges in rank order, each as ``(left bytes, right bytes)``.
    """
    if isinstance(num_new_tokens, bool) or not isinstance(num_new_tokens, int) or num_new_tokens < 0:
        raise ValueError(f"num_new_tokens: expected an int >= 0, got {num_new_tokens!r}")
    if 256 + num_new_tokens > _MAX_TOKENS:
        raise ValueError(f"num_new_tokens: at most {_MAX_TOKENS - 256:,} (one Unicode character per token)")
    # Each token is one character (token id i -> chr(i), skipping the surrogates), a word is a str of
    # them and a pair is a 2-character str. Then str.find jumps to the occurrences of a pair and
    # str.replace merges them, non-overlapping from the left exactly as BPE does, at C speed.
    token_bytes: dict[str, bytes] = {chr(i): bytes([i]) for i in range(256)}
    symbol_of: dict[bytes, str] = {b: c for c, b in token_bytes.items()}
    items = [(w, f) for w, f in word_counts.items() if len(w) >= 2 and f > 0]  # one byte: no pair
    words: list[str] = [w.decode("latin-1") for w, _ in items]  # byte i -> chr(i)
    freqs: list[int] = [f for _, f in items]
    # Initial pair counts and pair -> word index, vectorized: all adjacent pairs of all words as
    # codes a * 256 + b, grouped by code.
    pair_counts: dict[str, int] = {}
    where: defaultdict[str, set[int]] = defaultdict(set)  # pair -> words that may hold it
    if items:
        flat = np.frombuffer(b"".join(w for w, _ in items), dtype=np.uint8).astype(np.int64)
        lengths = np.array([len(w) for w, _ in items])
        word_of = np.repeat(np.arange(len(items)), lengths)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        keep = np.ones(flat.size, dtype=bool)
        keep[starts + lengths - 1] = False  # the last byte of a word starts no pair
        first = np.flatnonzero(keep)
        codes = flat[first] * 256 + flat[first + 1]
        owners = word_of[first]
        totals = np.bincount(codes, weights=np.asarray(freqs, dtype=np.float64)[owners], minlength=65536)
        order = np.lexsort((owners, codes))
        codes, owners = codes[order], owners[order]
        bounds = np.flatnonzero(np.diff(codes)) + 1
        for code, group in zip(codes[np.r_[0, bounds]].tolist(), np.split(owners, bounds), strict=True):
            pair = chr(code >> 8) + chr(code & 255)
            pair_counts[pair] = int(totals[code])
            where[pair] = set(group.tolist())
    # Max-heap on count, then min on (left bytes, right bytes): the documented tie-break.
    heap = [(-c, token_bytes[p[0]], token_bytes[p[1]], p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    n_tokens = 256
    while heap and n_tokens < 256 + num_new_tokens:
        neg_count, left, right, ab = heapq.heappop(heap)
        if pair_counts.get(ab, 0) != -neg_count:
            continue  # stale entry: the count changed and a fresh entry was pushed
        if -neg_count < min_frequency:
            break
        merged = left + right
        new = symbol_of.get(merged)
        if new is None:  # a new token; reuse the symbol if these bytes already exist
            new = _symbol(n_tokens)
            n_tokens += 1
            token_bytes[new] = merged
            symbol_of[merged] = new
        merges.append((left, right))
        a, b = ab
        # Per neighbour symbol: the summed frequency and the words, turned into pair deltas after
        # the loop (cheaper than building a pair string per occurrence).
        left_freq: dict[str, int] = {}
        right_freq: dict[str, int] = {}
        left_words: defaultdict[str, list[int]] = defaultdict(list)
        right_words: defaultdict[str, list[int]] = defaultdict(list)
        for index in where.pop(ab):
            w = words[index]
            i = w.find(ab)
            if i < 0:
                continue  # the pair left this word through an earlier merge
            freq = freqs[index]
            n = len(w)
            merged_word = w.replace(ab, new)
            words[index] = merged_word
            once = len(merged_word) == n - 1  # the usual case: no second search needed
            end = -1  # where the previous occurrence ended
            # Only the neighbours of each occurrence change: (x, a) -> (x, new), (b, y) -> (new, y);
            # x is the new token itself when the previous occurrence ends right here.
            while i >= 0:
                if i:
                    x = new if i == end else w[i - 1]
                    left_freq[x] = left_freq.get(x, 0) + freq
                    left_words[x].append(index)
                if i + 2 < n:
                    y = w[i + 2]
                    right_freq[y] = right_freq.get(y, 0) + freq
                    right_words[y].append(index)
                if once:
                    break
                end = i + 2
                i = w.find(ab, end)
        delta: defaultdict[str, int] = defaultdict(int)
        for x, freq in left_freq.items():
            delta[x + a] -= freq
            delta[x + new] += freq
            where[x + new].update(left_words[x])
        for y, freq in right_freq.items():
            delta[b + y] -= freq
            delta[new + y] += freq
            where[new + y].update(right_words[y])
        del pair_counts[ab]  # every occurrence was merged
        for pair, change in delta.items():
            if change == 0 or pair == ab:
                continue
            count = pair_counts.get(pair, 0) + change
            if count > 0:
                pair_counts[pair] = count
                heapq.heappush(heap, (-count, token_bytes[pair[0]], token_bytes[pair[1]], pair))
            else:
                pair_counts.pop(pair, None)
                where.pop(pair, None)
    return merges


_MAX_TOKENS = 0x110000 - 0x800  # code points minus the surrogates


def _symbol(token_id: int) -> str:
    """The one-character symbol of a token id in :func:`train_merges` (the surrogates are skipped)."""
    return chr(token_id if token_id < 0xD800 else token_id + 0x800)


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


def _special_regex(special_tokens: Iterable[str]) -> regex.Pattern | None:
    tokens = sorted(set(special_tokens), key=len, reverse=True)  # longest first: "<|a|b|>" before "<|a"
    if not tokens:
        return None
    return regex.compile("(" + "|".join(regex.escape(t) for t in tokens) + ")")


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
        """How many ids there are (byte and merged tokens plus special tokens)."""
        return len(self._id_to_bytes) + len(self.special_tokens)

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
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[piece] = ids
            out.extend(ids)

    def _allowed(self, allowed_special: AllowedSpecial) -> regex.Pattern | None:
        if allowed_special == "all":
            return _special_regex(self.special_tokens)
        if allowed_special == "none":
            return None
        if isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special: expected 'all', 'none' or a set of strings, got {allowed_special!r}"
            )
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special: {sorted(unknown)} are not special tokens of this tokenizer")
        return _special_regex(allowed_special)

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
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": dict(sorted(self.special_tokens.items(), key=lambda kv: kv[1])),
            "vocab": {token_to_unicode(b): i for i, b in sorted(self._id_to_bytes.items())},
            "merges": [f"{token_to_unicode(a)} {token_to_unicode(b)}" for a, b in self.merges],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        """Inverse of :meth:`to_dict`."""
        vocab = {i: token_from_unicode(t) for t, i in data["vocab"].items()}
        merges = [tuple(token_from_unicode(p) for p in m.split(" ")) for m in data["merges"]]
        return cls(merges, vocab=vocab, pattern=data["pattern"], special_tokens=data["special_tokens"])

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
