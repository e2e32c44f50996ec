"""The teaching versions of BPE: short, direct, and slow on purpose.

These functions follow the algorithm of Sennrich et al. (2016) line by line: count every adjacent
pair over all words (weighted by word frequency), merge the best pair everywhere, repeat. Each merge
recounts everything, so training costs O(merges × corpus). The chapter derives them; the benchmark
(``benchmarks/tokenizers.py``) and the tests use them as the reference that
:class:`companion.tokenizers.BPETokenizer`'s incremental trainer must reproduce merge for merge.

Tie-break (the same everywhere in this package): the largest count wins; among equal counts, the
lexicographically smallest pair ``(left, right)``. On the classic corpus
``{low: 5, lowest: 2, newer: 6, wider: 3, new: 2}`` the pairs ``(e, r)`` and ``(r, </w>)`` both occur
9 times, and the rule picks ``(e, r)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import pairwise

from companion.tokenizers.bpe import BPETokenizer
from companion.tokenizers.bpe_trainer import count_words
from companion.tokenizers.pretokenize import GPT2_PATTERN

__all__ = [
    "END_OF_WORD",
    "ByteLevelBPE",
    "bpe_decode",
    "bpe_encode",
    "bpe_train",
    "merge_pair",
    "naive_merges",
    "pair_counts",
    "train_bytes_naive",
]

END_OF_WORD = "</w>"


def pair_counts(words: Mapping[tuple[Hashable, ...], int]) -> dict[tuple[Hashable, Hashable], int]:
    """c(a, b) = Σ_w freq(w) · #{adjacent (a, b) in w}, for every adjacent pair."""
    counts: Counter[tuple[Hashable, Hashable]] = Counter()
    for word, freq in words.items():
        for pair in pairwise(word):
            counts[pair] += freq
    return counts


def merge_pair(word: tuple[Hashable, ...], pair: tuple[Hashable, Hashable]) -> tuple:
    """Replace each non-overlapping occurrence of ``pair`` in ``word`` (left to right) by its
    concatenation ``pair[0] + pair[1]``."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def naive_merges(
    words: Mapping[tuple[Hashable, ...], int], num_merges: int
) -> list[tuple[Hashable, Hashable, int]]:
    """Learn up to ``num_merges`` merges by full recounting; returns ``(left, right, count)`` triples.

    Symbols can be ``str`` (characters) or ``bytes``: anything ordered whose ``+`` concatenates.
    Stops early when no word has two symbols left.
    """
    words = dict(words)
    merges = []
    for _ in range(num_merges):
        counts = pair_counts(words)
        if not counts:
            break  # every word is a single symbol: nothing left to merge
        (a, b), count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # max count, then smallest pair
        merges.append((a, b, count))
        merged: dict[tuple, int] = {}
        for word, freq in words.items():
            new = merge_pair(word, (a, b))
            merged[new] = merged.get(new, 0) + freq
        words = merged
    return merges


def bpe_train(
    word_freqs: Mapping[str, int], num_merges: int, end_of_word: str = END_OF_WORD
) -> list[tuple[str, str, int]]:
    """Character-level BPE on a word-frequency table (Sennrich et al., 2016).

    Each word is split into characters followed by the end-of-word marker ``</w>``.

    Args:
        word_freqs: e.g. ``{"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}``.
        num_merges: how many merges to learn (fewer if no pair is left).
        end_of_word: the marker appended to every word (``""`` for none).

    Returns:
        The merges in order, as ``(left, right, count)``: the pair and how often it occurred when it
        was chosen.
    """
    words = {(*word, end_of_word) if end_of_word else tuple(word): f for word, f in word_freqs.items()}
    return naive_merges(words, num_merges)


def bpe_encode(word: str, merges: Sequence[tuple], end_of_word: str = END_OF_WORD) -> list[str]:
    """Segment one word with learned merges, applied in rank order (the order they were learned)."""
    symbols = (*word, end_of_word) if end_of_word else tuple(word)
    ranks = {(m[0], m[1]): r for r, m in enumerate(merges)}
    while len(symbols) > 1:
        pairs = [p for p in pairwise(symbols) if p in ranks]
        if not pairs:
            break
        symbols = merge_pair(symbols, min(pairs, key=ranks.__getitem__))
    return list(symbols)


def bpe_decode(tokens: Iterable[str], end_of_word: str = END_OF_WORD) -> str:
    """Join tokens into text: each end-of-word marker becomes a space (the last one is dropped)."""
    text = "".join(tokens)
    return text.replace(end_of_word, " ").removesuffix(" ") if end_of_word else text


def train_bytes_naive(
    corpus: str | Iterable[str], vocab_size: int, pattern: str = "gpt2"
) -> list[tuple[bytes, bytes]]:
    """Byte-level BPE by full recounting: the reference the incremental trainer must reproduce.

    Pre-tokenizes like :meth:`companion.tokenizers.bpe.BPETokenizer.train`, then runs
    :func:`naive_merges` on byte words. As in the fast trainer, a merge whose bytes are already a
    token adds no new token, so merges are learned until the vocabulary (256 bytes + new tokens)
    reaches ``vocab_size``.
    """
    words = {tuple(bytes([b]) for b in w.encode("utf-8")): c for w, c in count_words(corpus, pattern).items()}
    vocab = {bytes([i]) for i in range(256)}
    merges: list[tuple[bytes, bytes]] = []
    while len(vocab) < vocab_size:
        counts = pair_counts(words)
        if not counts:
            break
        (a, b), _ = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # max count, then smallest pair
        merges.append((a, b))
        vocab.add(a + b)
        merged: dict[tuple, int] = {}
        for word, freq in words.items():
            new = merge_pair(word, (a, b))
            merged[new] = merged.get(new, 0) + freq
        words = merged
    return merges


class ByteLevelBPE:
    """Byte-level BPE with the minimal interface of the exercise ``tokenization.byte-level-bpe``.

    A thin wrapper over :class:`companion.tokenizers.bpe.BPETokenizer` with GPT-2's pre-tokenization regex.

    Attributes:
        vocab: id → bytes; ids 0–255 are the single bytes.
        merges: the merges in rank order as pairs of ids.
        special_tokens: special token → id (ids after the merged tokens).
    """

    def __init__(self, special_tokens: Sequence[str] = ()) -> None:
        self._special = list(special_tokens)
        self._tok = BPETokenizer(pattern=GPT2_PATTERN, special_tokens=self._special)

    def train(self, corpus: str, vocab_size: int) -> None:
        """Learn merges until the vocabulary (bytes + merges + special tokens) has ``vocab_size`` ids."""
        self._tok = BPETokenizer.train(corpus, vocab_size, pattern=GPT2_PATTERN, special_tokens=self._special)

    @property
    def vocab(self) -> dict[int, bytes]:
        return self._tok.vocab

    @property
    def merges(self) -> list[tuple[int, int]]:
        ids = {b: i for i, b in self._tok.vocab.items()}
        return [(ids[a], ids[b]) for a, b in self._tok.merges]

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._tok.special_tokens)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special tokens are matched whole."""
        return self._tok.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``."""
        return self._tok.decode(ids)
