"""Training byte-level BPE (字节级 BPE) merges: the pre-token counts and the incremental merge loop.

:meth:`companion.tokenizers.bpe.BPETokenizer.train` pre-tokenizes the corpus with a regex and counts
the unique pre-tokens ("words", :func:`count_words`), then merges (:func:`train_merges`). Instead of
recounting every pair after every merge (the teaching version,
:func:`companion.tokenizers.naive.train_bytes_naive`), :func:`train_merges` keeps the pair counts and,
for every pair, the set of words containing it; a merge touches only those words and updates the
counts of the pairs that changed. The best pair comes from a heap with lazy deletion.

**Tie-break** (documented, deterministic): the pair with the largest count wins; among equal counts,
the pair whose byte strings ``(left, right)`` are lexicographically smallest. If a merge produces a
byte string that is already a token, the existing id is reused (as Hugging Face ``tokenizers`` does),
so the vocabulary never holds the same bytes twice.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping

import numpy as np

from companion.tokenizers.pretokenize import make_splitter, safe_chunks, special_token_regex

__all__ = ["MAX_TOKENS", "count_words", "train_merges"]

#: The most tokens a vocabulary can hold while the merge loop gives each one a Unicode character:
#: the code points minus the surrogates.
MAX_TOKENS = 0x110000 - 0x800


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
    special = special_token_regex(special_tokens)
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
    if 256 + num_new_tokens > MAX_TOKENS:
        raise ValueError(f"num_new_tokens: at most {MAX_TOKENS - 256:,} (one Unicode character per token)")
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


def _symbol(token_id: int) -> str:
    """The one-character symbol of a token id in :func:`train_merges` (the surrogates are skipped)."""
    return chr(token_id if token_id < 0xD800 else token_id + 0x800)
