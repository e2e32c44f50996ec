"""WordPiece (Schuster & Nakajima, 2012; Wu et al., 2016), the subword tokenizer of BERT.

**Encoding** (:class:`WordPieceTokenizer`): BERT's basic tokenizer
(:func:`~companion.tokenizers.pretokenize.bert_basic_tokenize`: clean, split CJK characters, strip
accents, lower-case, split on whitespace and punctuation), then, for every word, *greedy
longest-match-first*: take the longest vocabulary entry that is a prefix of the rest of the word;
pieces after the first carry the continuation prefix ``##``. If some position has no match, the
whole word becomes ``[UNK]`` (not just the unmatched part); so does a word longer than
``max_input_chars_per_word`` (100) characters.

**Training** (:meth:`WordPieceTokenizer.train`, :func:`wordpiece_train`): like BPE, bottom-up from
the characters (``c`` at the start of a word, ``##c`` inside it), but each step merges the pair with
the highest *likelihood score*

.. math:: \\operatorname{score}(a, b) = \\frac{c(ab)}{c(a)\\, c(b)},

the pair count over the product of the symbol counts — proportional to the gain in unigram
log-likelihood from merging (Schuster & Nakajima, 2012). It prefers pairs whose parts rarely occur
apart, where BPE's raw frequency prefers pairs of frequent symbols. Ties: the lexicographically
smallest pair ``(a, b)``.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import regex

from companion._validate import check_positive_int
from companion.files import atomic_open
from companion.tokenizers.base import Tokenizer
from companion.tokenizers.pretokenize import bert_basic_tokenize

__all__ = ["SPECIAL_TOKENS", "WordPieceTokenizer", "wordpiece_encode", "wordpiece_train"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PREFIX = "##"


def _merged(a: str, b: str) -> str:
    """The token for the pair (a, b): ``"h" + "##u" → "hu"``, ``"##u" + "##g" → "##ug"``."""
    return a + b.removeprefix(PREFIX)


def _word_symbols(word: str) -> tuple[str, ...]:
    return (word[0], *(PREFIX + ch for ch in word[1:])) if word else ()


# --------------------------------------------------------------------------------------------------
# The teaching versions (exercise references)
# --------------------------------------------------------------------------------------------------


def wordpiece_encode(word: str, vocab: Iterable[str], unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """Greedy longest-match-first segmentation of one word.

    Args:
        word: one pre-tokenized word (no spaces).
        vocab: the vocabulary, continuation pieces spelled ``##x``.
        unk: what a word that cannot be segmented becomes (one token for the whole word).
        max_chars: words longer than this become ``[unk]`` without trying.

    Returns:
        The pieces, e.g. ``["un", "##aff", "##able"]``, or ``[unk]``.
    """
    vocab = vocab if isinstance(vocab, (set, frozenset, dict)) else set(vocab)
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:  # the longest prefix of word[start:] in the vocabulary
            piece = word[start:end] if start == 0 else PREFIX + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # nothing matched at this position: the whole word is unknown
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece_train(word_freqs: Mapping[str, int], vocab_size: int) -> list[str]:
    """WordPiece training by the likelihood score, recomputing every score at every step.

    Args:
        word_freqs: word → frequency (words already pre-tokenized).
        vocab_size: stop when the vocabulary has this many tokens (or no pair is left). The
            alphabet is always kept whole, even if it is larger.

    Returns:
        The vocabulary as a list — the alphabet (every first character ``c`` and inner character
        ``##c``, sorted), then one token per merge in the order learned.
    """
    words = {_word_symbols(w): f for w, f in word_freqs.items() if w}
    vocab = sorted({s for w in words for s in w})
    known = set(vocab)
    while len(vocab) < vocab_size:
        pair_count: Counter[tuple[str, str]] = Counter()
        sym_count: Counter[str] = Counter()
        for word, freq in words.items():
            for s in word:
                sym_count[s] += freq
            for pair in pairwise(word):
                pair_count[pair] += freq
        if not pair_count:
            break
        # score = c(ab) / (c(a) c(b)); ties: the lexicographically smallest pair
        (a, b), _ = min(
            pair_count.items(), key=lambda kv: (-kv[1] / (sym_count[kv[0][0]] * sym_count[kv[0][1]]), kv[0])
        )
        new = _merged(a, b)
        if new not in known:
            known.add(new)
            vocab.append(new)
        merged: dict[tuple[str, ...], int] = {}
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + freq
        words = merged
    return vocab


# --------------------------------------------------------------------------------------------------
# Fast training: incremental pair and symbol counts
# --------------------------------------------------------------------------------------------------


def _train_fast(word_freqs: Mapping[str, int], vocab_size: int, criterion: str = "likelihood") -> list[str]:
    """Same result as :func:`wordpiece_train`, with incremental counts and a lazy heap.

    ``criterion="frequency"`` ranks pairs by c(ab) alone (BPE's rule, which is what Hugging Face's
    ``WordPieceTrainer`` uses); the default is the likelihood score c(ab) / (c(a) c(b)).

    A merge of (a, b) changes the pair counts next to each occurrence (as in BPE) and the symbol
    counts c(a), c(b), c(ab) — and with them the score of *every* pair containing a or b. Those pairs
    get fresh heap entries; an entry is used only if its score still equals the current score.
    """
    words = [list(_word_symbols(w)) for w in word_freqs if w]
    freqs = [f for w, f in word_freqs.items() if w]
    vocab = sorted({s for w in words for s in w})
    known = set(vocab)
    sym_count: defaultdict[str, int] = defaultdict(int)
    pair_count: defaultdict[tuple[str, str], int] = defaultdict(int)
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    pairs_of: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)  # symbol -> pairs containing it
    for i, (word, f) in enumerate(zip(words, freqs, strict=True)):
        for s in word:
            sym_count[s] += f
        for pair in pairwise(word):
            pair_count[pair] += f
            where[pair].add(i)
            pairs_of[pair[0]].add(pair)
            pairs_of[pair[1]].add(pair)

    if criterion not in ("likelihood", "frequency"):
        raise ValueError(f"criterion: expected 'likelihood' or 'frequency', got {criterion!r}")
    by_frequency = criterion == "frequency"

    def score(pair: tuple[str, str]) -> float:
        if by_frequency:
            return float(pair_count[pair])
        return pair_count[pair] / (sym_count[pair[0]] * sym_count[pair[1]])

    heap = [(-score(p), p) for p in pair_count]
    heapq.heapify(heap)
    while heap and len(vocab) < vocab_size:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) <= 0 or -neg != score(pair):
            continue  # stale
        a, b = pair
        new = _merged(a, b)
        if new not in known:
            known.add(new)
            vocab.append(new)
        touched: set[tuple[str, str]] = set()
        for i in where.pop(pair, ()):
            word, f = words[i], freqs[i]
            out, j, hit = [], 0, False
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    if out:
                        touched |= _shift(pair_count, pairs_of, (out[-1], a), (out[-1], new), f)
                        where[(out[-1], new)].add(i)
                    if j + 2 < len(word):
                        touched |= _shift(pair_count, pairs_of, (b, word[j + 2]), (new, word[j + 2]), f)
                        where[(new, word[j + 2])].add(i)
                    sym_count[a] -= f
                    sym_count[b] -= f
                    sym_count[new] += f
                    out.append(new)
                    j += 2
                    hit = True
                else:
                    out.append(word[j])
                    j += 1
            if hit:
                words[i] = out
        pair_count.pop(pair, None)
        touched |= pairs_of[a] | pairs_of[b] | pairs_of[new]
        for p in touched:
            if pair_count.get(p, 0) > 0:
                heapq.heappush(heap, (-score(p), p))
    return vocab


def _shift(
    pair_count: defaultdict[tuple[str, str], int],
    pairs_of: defaultdict[str, set[tuple[str, str]]],
    old: tuple[str, str],
    new: tuple[str, str],
    f: int,
) -> set[tuple[str, str]]:
    pair_count[old] -= f
    if pair_count[old] <= 0:
        del pair_count[old]
        pairs_of[old[0]].discard(old)
        pairs_of[old[1]].discard(old)
    pair_count[new] += f
    pairs_of[new[0]].add(new)
    pairs_of[new[1]].add(new)
    return {old, new}


# --------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer: basic tokenization + WordPiece, with ``[CLS] … [SEP]``.

    Args:
        vocab: the tokens in id order (a ``vocab.txt`` has one per line), or a token → id map.
        unk_token: the token for words that cannot be segmented.
        max_input_chars_per_word: longer words become ``[UNK]`` directly (BERT: 100).
        lowercase: lower-case (and, unless ``strip_accents`` says otherwise, strip accents).
        strip_accents: ``None`` follows ``lowercase``.
        special_tokens: tokens matched whole in the raw text (before normalization), as Hugging
            Face's added tokens are: ``[PAD] [UNK] [CLS] [SEP] [MASK]`` by default.

    Example:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able"])
        >>> tok.tokenize("Unaffable")
        ['un', '##aff', '##able']
    """

    format = "companion.tokenizers.WordPieceTokenizer"

    def __init__(
        self,
        vocab: Sequence[str] | Mapping[str, int],
        *,
        unk_token: str = "[UNK]",
        max_input_chars_per_word: int = 100,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        special_tokens: Sequence[str] = SPECIAL_TOKENS,
    ) -> None:
        self.vocab: dict[str, int] = (
            dict(vocab) if isinstance(vocab, Mapping) else {t: i for i, t in enumerate(vocab)}
        )
        if unk_token not in self.vocab:
            raise ValueError(f"unk_token: {unk_token!r} is not in the vocabulary")
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.special_tokens = [t for t in special_tokens if t in self.vocab]
        tokens = sorted(self.special_tokens, key=len, reverse=True)
        self._special = regex.compile("(" + "|".join(map(regex.escape, tokens)) + ")") if tokens else None
        self._cache: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_vocab_file(
        cls, path: str | Path, *, expected_size: int | None = None, **kwargs: Any
    ) -> WordPieceTokenizer:
        """Load a BERT ``vocab.txt`` (one token per line; the line number is the id).

        The file is checked before it is used: it must end with a newline (a file cut off mid-line
        does not), hold no token twice, and — with ``expected_size`` — have exactly that many lines.

        Raises:
            ValueError: naming the file and what is wrong with it.
        """
        text = Path(path).read_text(encoding="utf-8")
        if not text.endswith("\n"):
            raise ValueError(f"path: {str(path)!r} does not end with a newline; is it truncated?")
        tokens = text[:-1].split("\n")
        if expected_size is not None and len(tokens) != expected_size:
            raise ValueError(f"path: {str(path)!r} holds {len(tokens)} tokens, expected {expected_size}")
        seen: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if t in seen:
                raise ValueError(f"path: {str(path)!r} lists {t!r} twice (lines {seen[t] + 1} and {i + 1})")
            seen[t] = i
        return cls(tokens, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "minilm") -> WordPieceTokenizer:
        """The uncased BERT vocabulary (30,522 tokens) of all-MiniLM-L6-v2, from :mod:`companion.hub`."""
        from companion import hub

        if name != "minilm":
            raise ValueError(f"name: expected 'minilm', got {name!r}")
        return cls.from_vocab_file(hub.path("minilm", hub.MINILM_VOCAB), expected_size=30_522)

    @classmethod
    def train(
        cls,
        corpus: str | Iterable[str],
        vocab_size: int,
        *,
        lowercase: bool = True,
        special_tokens: Sequence[str] = SPECIAL_TOKENS,
        criterion: str = "likelihood",
    ) -> WordPieceTokenizer:
        """Train on a corpus; the vocabulary starts with ``special_tokens``, then the alphabet.

        Args:
            corpus: text, or an iterable of strings (lines).
            vocab_size: the final size, special tokens and alphabet included.
            lowercase: lower-case (and strip accents) before counting, as uncased BERT does.
            special_tokens: the tokens put first in the vocabulary.
            criterion: ``"likelihood"`` merges by c(ab) / (c(a) c(b)) (WordPiece's score);
                ``"frequency"`` by c(ab) (BPE's rule, used by Hugging Face's ``WordPieceTrainer``).
        """
        texts = [corpus] if isinstance(corpus, str) else corpus
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(bert_basic_tokenize(text, lowercase=lowercase))
        check_positive_int("vocab_size", vocab_size)
        learned = _train_fast(counts, vocab_size - len(special_tokens), criterion)
        if len(special_tokens) + len(learned) > vocab_size:  # the alphabet alone does not fit
            raise ValueError(
                f"vocab_size: the {len(special_tokens)} special tokens and the corpus's alphabet of "
                f"{len(learned)} symbols (characters and their ## forms) need at least "
                f"{len(special_tokens) + len(learned)} ids, got {vocab_size}"
            )
        return cls([*special_tokens, *learned], lowercase=lowercase, special_tokens=special_tokens)

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return len(self.vocab)

    def _word(self, word: str) -> tuple[str, ...]:
        hit = self._cache.get(word)
        if hit is None:
            hit = tuple(wordpiece_encode(word, self.vocab, self.unk_token, self.max_input_chars_per_word))
            if len(self._cache) > 1 << 18:
                self._cache.clear()
            self._cache[word] = hit
        return hit

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]``)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        parts = self._special.split(text) if self._special is not None else [text]
        out: list[str] = []
        for k, part in enumerate(parts):
            if k % 2:
                out.append(part)  # a special token, matched whole
                continue
            for word in bert_basic_tokenize(part, lowercase=self.lowercase, strip_accents=self.strip_accents):
                out.extend(self._word(word))
        return out

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids, with ``[CLS] … [SEP]`` around them unless ``add_special_tokens=False``."""
        ids = [self.vocab[t] for t in self.tokenize(text)]
        if add_special_tokens:
            ids = [self.vocab["[CLS]"], *ids, self.vocab["[SEP]"]]
        return ids

    def encode_batch(self, texts: Iterable[str], *, add_special_tokens: bool = True) -> list[list[int]]:
        """Encode several texts."""
        return [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        """Tokens joined by spaces with ``##`` continuations glued back (lossy: case, accents and
        spacing around punctuation are not restored)."""
        tokens = []
        for i in ids:
            if i not in self.ids_to_tokens:
                raise ValueError(f"ids: {i!r} is not in the vocabulary (size {self.vocab_size})")
            t = self.ids_to_tokens[i]
            if skip_special_tokens and t in self.special_tokens:
                continue
            tokens.append(t)
        return " ".join(tokens).replace(" " + PREFIX, "")

    def save_vocab(self, path: str | Path) -> None:
        """Write ``vocab.txt`` (one token per line, in id order)."""
        ordered = [self.ids_to_tokens[i] for i in sorted(self.ids_to_tokens)]
        with atomic_open(path) as f:  # an interrupted save leaves the old file, never half a vocabulary
            f.write("\n".join(ordered) + "\n")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready description :meth:`~companion.tokenizers.base.Tokenizer.save` writes: the vocabulary
        (token → id) and every option, so that, unlike a bare ``vocab.txt``, the file also restores casing and
        special tokens."""
        return {
            "format": self.format,
            "version": 1,
            "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
            "unk_token": self.unk_token,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "special_tokens": list(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordPieceTokenizer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["vocab"],
            unk_token=data["unk_token"],
            max_input_chars_per_word=data["max_input_chars_per_word"],
            lowercase=data["lowercase"],
            strip_accents=data["strip_accents"],
            special_tokens=data["special_tokens"],
        )

    def __repr__(self) -> str:
        return f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase})"
