"""The Unigram language-model tokenizer (Unigram 分词) of Kudo (2018), as in SentencePiece.

A Unigram model gives every piece :math:`x_i` of the vocabulary a probability :math:`p(x_i)` and a
segmentation :math:`\\mathbf{x} = (x_1, \\dots, x_M)` of a text :math:`X` the probability
:math:`P(\\mathbf{x}) = \\prod_i p(x_i)`. The tokenizer outputs the most likely segmentation,

.. math:: \\mathbf{x}^* = \\arg\\max_{\\mathbf{x} \\in S(X)} \\sum_i \\log p(x_i),

found by the Viterbi algorithm over the lattice of all pieces that occur in :math:`X`. Training
(:meth:`UnigramTokenizer.train`) starts from a large seed vocabulary (frequent substrings), fits the
probabilities by EM — the E-step computes each piece's expected count with the forward–backward
algorithm, the M-step renormalizes — and prunes the pieces whose removal lowers the corpus
likelihood least, keeping every single character, until the vocabulary has the requested size.
Sampling from :math:`P(\\mathbf{x} \\mid X) \\propto P(\\mathbf{x})^\\alpha` (forward filtering,
backward sampling) gives *subword regularization*.

Text handling follows SentencePiece with identity normalization: a space becomes ``▁`` and one ``▁``
is prepended (:func:`~companion.tokenizers.pretokenize.sp_normalize`), so decoding is lossless.
A character that no piece covers becomes ``<unk>`` with SentencePiece's score (lowest piece score
minus 10), and adjacent unknown characters are reported as one ``<unk>``, as SentencePiece does.

Training is in :mod:`companion.tokenizers.unigram_trainer` (vectorized over all unique words with
numpy).
"""

from __future__ import annotations

import math
import random
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from companion.tokenizers.base import Tokenizer
from companion.tokenizers.pretokenize import SPACE_SYMBOL, sp_denormalize, sp_normalize, sp_split
from companion.tokenizers.unigram_trainer import train_unigram

__all__ = ["UNK_PENALTY", "UnigramTokenizer", "unigram_prune", "unigram_viterbi"]

#: SentencePiece scores an unknown character as (lowest piece score − 10).
UNK_PENALTY = 10.0


# --------------------------------------------------------------------------------------------------
# The teaching versions (exercise references)
# --------------------------------------------------------------------------------------------------


def unigram_viterbi(text: str, logp: Mapping[str, float]) -> tuple[list[str], float]:
    """The most likely segmentation of ``text`` under a unigram model, by dynamic programming.

    ``best[s]`` is the best log-probability of the suffix ``text[s:]``; it is computed from the end,
    ``best[s] = max_e logp[text[s:e]] + best[e]``. Ties are broken deterministically: among
    segmentations with the same log-probability, the one whose first piece is longest, then whose
    second piece is longest, and so on.

    Args:
        text: the string to segment.
        logp: piece → log-probability.

    Returns:
        ``(pieces, log_probability)``.

    Raises:
        ValueError: if no segmentation exists (some character is covered by no piece).
    """
    n = len(text)
    max_len = max((len(p) for p in logp), default=0)
    best = [-math.inf] * (n + 1)
    nxt = [0] * (n + 1)
    best[n] = 0.0
    for s in range(n - 1, -1, -1):
        for e in range(min(n, s + max_len), s, -1):  # longest first: strict > keeps it on ties
            score = logp.get(text[s:e])
            if score is not None and best[e] > -math.inf and score + best[e] > best[s]:
                best[s], nxt[s] = score + best[e], e
    if n and best[0] == -math.inf:
        raise ValueError(f"text: {text!r} cannot be segmented with these pieces")
    pieces, s = [], 0
    while s < n:
        pieces.append(text[s : nxt[s]])
        s = nxt[s]
    return pieces, best[0]


def unigram_prune(vocab: Mapping[str, float], corpus: Sequence[str], keep: float = 0.8) -> dict[str, float]:
    """One pruning step of Unigram training, with the exact likelihood loss.

    The corpus log-likelihood is ``L = Σ_w max_x log P(x)`` over the words ``w`` of ``corpus`` (Viterbi
    segmentations). The loss of a piece is how much ``L`` drops when the piece alone is removed (the
    other log-probabilities unchanged). Every single character is kept; of the longer pieces,
    ``round(keep · n)`` with the largest loss are kept (ties: the lexicographically smaller piece).

    Args:
        vocab: piece → log-probability; must contain every character of the corpus.
        corpus: the words (repeats count).
        keep: the fraction of multi-character pieces to keep, in (0, 1].

    Returns:
        The kept pieces with their (unchanged) log-probabilities.
    """
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ValueError(f"keep: expected a number in (0, 1], got {keep!r}")
    chars = {c for w in corpus for c in w}
    missing = sorted(chars - set(vocab))
    if missing:
        raise ValueError(f"vocab: characters {missing[:5]} of the corpus are not pieces")
    counts = Counter(corpus)
    base = {w: unigram_viterbi(w, vocab) for w in counts}
    multi = [p for p in vocab if len(p) > 1]
    loss = {}
    for piece in multi:
        reduced = {p: s for p, s in vocab.items() if p != piece}
        drop = 0.0
        for w, c in counts.items():
            pieces, score = base[w]
            if piece in pieces:  # only words whose best path uses the piece can change
                drop += c * (score - unigram_viterbi(w, reduced)[1])
        loss[piece] = drop
    n_keep = round(keep * len(multi))
    kept = set(sorted(multi, key=lambda p: (-loss[p], p))[:n_keep])
    return {p: s for p, s in vocab.items() if len(p) == 1 or p in kept}


# --------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------


class UnigramTokenizer(Tokenizer):
    """A Unigram LM tokenizer with SentencePiece's whitespace handling.

    Args:
        pieces: the vocabulary in id order, as ``(piece, log_probability)`` pairs. Id 0 is usually
            ``<unk>``.
        unk_id: the id emitted for characters no piece covers.
        control_ids: ids that are never matched in text (``<unk>``, ``<s>``, ``</s>``).
        add_dummy_prefix: prepend ``▁`` to the text, as SentencePiece does by default.

    Example:
        >>> tok = UnigramTokenizer([("<unk>", 0.0), ("▁", -2.0), ("a", -1.0), ("b", -1.0), ("▁ab", -1.5)],
        ...                        control_ids=[0])
        >>> tok.encode_pieces("ab ba")
        ['▁ab', '▁', 'b', 'a']
    """

    format = "companion.tokenizers.UnigramTokenizer"

    def __init__(
        self,
        pieces: Sequence[tuple[str, float]],
        *,
        unk_id: int = 0,
        control_ids: Iterable[int] = (0,),
        add_dummy_prefix: bool = True,
    ) -> None:
        self.pieces: list[tuple[str, float]] = [(str(p), float(s)) for p, s in pieces]
        if not 0 <= unk_id < len(self.pieces):
            raise ValueError(f"unk_id: expected an id in [0, {len(self.pieces)}), got {unk_id!r}")
        self.unk_id = unk_id
        self.control_ids = frozenset(control_ids) | {unk_id}
        self.add_dummy_prefix = add_dummy_prefix
        self._scores: dict[str, tuple[float, int]] = {}
        for i, (piece, score) in enumerate(self.pieces):
            if i not in self.control_ids and piece:
                self._scores.setdefault(piece, (score, i))
        normal = [s for s, _ in self._scores.values()]
        self.unk_score = (min(normal) if normal else 0.0) - UNK_PENALTY
        # float32 copies for the Viterbi decisions (see _segment): piece -> (score32, id, score)
        self._scores32 = {p: (_to_f32(sc), i, sc) for p, (sc, i) in self._scores.items()}
        self._unk32 = _to_f32(self.unk_score)
        self.max_piece_len = max((len(p) for p in self._scores), default=1)
        # With no "▁" inside a piece, lattices can be built (and cached) word by word.
        self._split_words = not any(SPACE_SYMBOL in p[1:] for p in self._scores)
        self._cache: dict[str, list] = {}

    # ---------------------------------------------------------------------------------------------

    @classmethod
    def from_sentencepiece(cls, processor: object) -> UnigramTokenizer:
        """Copy pieces, scores and control/unknown ids from a ``sentencepiece.SentencePieceProcessor``."""
        n = processor.get_piece_size()
        pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(n)]
        control = [
            i
            for i in range(n)
            if processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i)
        ]
        return cls(pieces, unk_id=processor.unk_id(), control_ids=control)

    @property
    def vocab_size(self) -> int:
        """Number of ids."""
        return len(self.pieces)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready description :meth:`~companion.tokenizers.base.Tokenizer.save` writes: pieces with
        their log-probabilities (JSON keeps every float exactly), the unknown and control ids, and the
        dummy-prefix option."""
        return {
            "format": self.format,
            "version": 1,
            "pieces": [[piece, score] for piece, score in self.pieces],
            "unk_id": self.unk_id,
            "control_ids": sorted(self.control_ids),
            "add_dummy_prefix": self.add_dummy_prefix,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnigramTokenizer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            [(piece, score) for piece, score in data["pieces"]],
            unk_id=data["unk_id"],
            control_ids=data["control_ids"],
            add_dummy_prefix=data["add_dummy_prefix"],
        )

    def _word_lattice(self, word: str) -> list[list[tuple[int, float, int, float]]]:
        """Cached lattice of one word: per start, [(end, score as float32, id, score)], pieces by
        increasing end, then the ``<unk>`` edge if no single-character piece starts there."""
        rows = self._cache.get(word)
        if rows is None:
            rows = []
            scores, n = self._scores32, len(word)
            for s in range(n):
                row, single = [], False
                for e in range(s + 1, min(n, s + self.max_piece_len) + 1):
                    hit = scores.get(word[s:e])
                    if hit is not None:
                        row.append((e, hit[0], hit[1], hit[2]))
                        single = single or e == s + 1
                if not single:
                    row.append((s + 1, self._unk32, -1, self.unk_score))
                rows.append(row)
            if len(self._cache) > 1 << 16:
                self._cache.clear()
            self._cache[word] = rows
        return rows

    def _viterbi(self, text: str) -> tuple[list[int], float]:
        """Viterbi over the whole normalized text, replicating SentencePiece's decisions.

        SentencePiece relaxes the lattice start by start, accepts a candidate only if it is strictly
        better, and accumulates path scores in float32 over the whole sentence. Exact ties between
        segmentations (the same pieces in another order, e.g. in "xxxx…") are therefore decided by
        float32 rounding at the running total, so we round the same way. Lattices are cached per
        word (no piece crosses a ``▁``). Returns the ids (adjacent unknowns merged into one
        ``<unk>``) and the float64 sum of the chosen pieces' scores.
        """
        n = len(text)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int, float]] = [(0, -1, 0.0)] * (n + 1)
        best[0] = 0.0
        f32 = _to_f32
        words = sp_split(text) if self._split_words else [text]
        offset = 0
        for word in words:
            for s, row in enumerate(self._word_lattice(word)):
                base = best[offset + s]
                if base == -math.inf:
                    continue
                for e, s32, pid, s64 in row:
                    cand = f32(base + s32)
                    if cand > best[offset + e]:
                        best[offset + e], back[offset + e] = cand, (offset + s, pid, s64)
            offset += len(word)
        ids: list[int] = []
        total = 0.0
        e = n
        while e > 0:
            s, pid, score = back[e]
            total += score
            if pid != -1:
                ids.append(pid)
            elif not ids or ids[-1] != self.unk_id:  # adjacent unknowns become one <unk>
                ids.append(self.unk_id)
            e = s
        ids.reverse()
        return ids, total

    def _normalize(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        return sp_normalize(text, add_dummy_prefix=self.add_dummy_prefix)

    def encode(self, text: str) -> list[int]:
        """The ids of the most likely segmentation (Viterbi)."""
        return self._viterbi(self._normalize(text))[0]

    def encode_pieces(self, text: str) -> list[str]:
        """The pieces of the most likely segmentation (``<unk>`` for unknown runs)."""
        return [self.pieces[i][0] for i in self.encode(text)]

    def log_likelihood(self, text: str) -> float:
        """log P(x*) = Σ log p over the Viterbi segmentation (each unknown character scores ``unk_score``)."""
        return self._viterbi(self._normalize(text))[1]

    def decode(self, ids: Iterable[int]) -> str:
        """Join the pieces, ``▁`` → space, drop the dummy prefix (``<unk>`` decodes to ``" ⁇ "``)."""
        parts = []
        for i in ids:
            if not 0 <= i < len(self.pieces):
                raise ValueError(f"ids: {i!r} is out of range [0, {len(self.pieces)})")
            parts.append(
                " \u2047 " if i == self.unk_id else "" if i in self.control_ids else self.pieces[i][0]
            )
        return sp_denormalize(parts, add_dummy_prefix=self.add_dummy_prefix)

    # ---------------------------------------------------------------------------------------------
    # lattice quantities for one word: all segmentations, marginal likelihood, sampling
    # ---------------------------------------------------------------------------------------------

    def _edges(self, text: str) -> list[list[tuple[int, float, int]]]:
        """edges[s] = [(end, score, id)] of the lattice of ``text`` (unknown characters included)."""
        n, out = len(text), []
        for s in range(n):
            row, single = [], False
            for e in range(s + 1, min(n, s + self.max_piece_len) + 1):
                hit = self._scores.get(text[s:e])
                if hit is not None:
                    row.append((e, hit[0], hit[1]))
                    single = single or e == s + 1
            if not single:
                row.append((s + 1, self.unk_score, self.unk_id))
            out.append(row)
        return out

    def marginal_log_likelihood(self, text: str) -> float:
        """log P(X) = log Σ_{x ∈ S(X)} Π p(x_i) by the forward algorithm (after normalization)."""
        norm = sp_normalize(text, add_dummy_prefix=self.add_dummy_prefix)
        alpha = self._forward(norm, 1.0)
        return alpha[-1]

    def _forward(self, text: str, alpha_scale: float) -> list[float]:
        edges = self._edges(text)
        fwd = [-math.inf] * (len(text) + 1)
        fwd[0] = 0.0
        for s, row in enumerate(edges):
            if fwd[s] == -math.inf:
                continue
            for e, score, _ in row:
                fwd[e] = np.logaddexp(fwd[e], fwd[s] + alpha_scale * score)
        return fwd

    def segmentations(self, text: str, *, normalized: bool = False) -> list[tuple[list[str], float]]:
        """Every segmentation of ``text`` with its log-probability, best first (small inputs only)."""
        norm = text if normalized else sp_normalize(text, add_dummy_prefix=self.add_dummy_prefix)
        edges = self._edges(norm)
        out: list[tuple[list[str], float]] = []

        def walk(s: int, pieces: list[str], score: float) -> None:
            if s == len(norm):
                out.append((list(pieces), score))
                return
            for e, sc, _ in edges[s]:
                pieces.append(norm[s:e])
                walk(e, pieces, score + sc)
                pieces.pop()

        walk(0, [], 0.0)
        return sorted(out, key=lambda t: -t[1])

    def sample(self, text: str, alpha: float = 0.1, rng: Any = None) -> list[str]:
        """Sample a segmentation from P(x | X) ∝ P(x)^alpha (subword regularization, Kudo 2018).

        Forward filtering computes the (scaled) forward scores; backward sampling then draws the
        last piece in proportion to exp(forward[start] + alpha·score), and so on to the beginning.
        ``alpha`` → ∞ gives the Viterbi segmentation, ``alpha = 0`` a uniform choice among all
        segmentations. ``rng`` is a ``random.Random`` (a fresh unseeded one if omitted).
        """
        if not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise ValueError(f"alpha: expected a number >= 0, got {alpha!r}")
        rng = rng or random.Random()
        norm = sp_normalize(text, add_dummy_prefix=self.add_dummy_prefix)
        edges = self._edges(norm)
        fwd = self._forward(norm, alpha)
        incoming: list[list[tuple[int, float, int]]] = [[] for _ in range(len(norm) + 1)]
        for s, row in enumerate(edges):
            for e, score, pid in row:
                incoming[e].append((s, score, pid))
        pieces, e = [], len(norm)
        while e > 0:
            cands = incoming[e]
            logits = np.array([fwd[s] + alpha * sc for s, sc, _ in cands])
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            k = _choice(rng, probs)
            s = cands[k][0]
            pieces.append(norm[s:e] if cands[k][2] != self.unk_id else "<unk>")
            e = s
        return pieces[::-1]

    # ---------------------------------------------------------------------------------------------
    # training
    # ---------------------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        corpus: str | Iterable[str],
        vocab_size: int,
        *,
        max_piece_length: int = 16,
        shrinking_factor: float = 0.75,
        num_sub_iterations: int = 2,
        seed_size: int = 200_000,
        history: list | None = None,
    ) -> UnigramTokenizer:
        """Train by EM with pruning (Kudo, 2018), on sentences = the lines of ``corpus``.

        Steps: (1) seed with every character and the ``seed_size`` most frequent substrings of the
        words (a substring never contains ``▁`` except as its first character), scored by frequency ×
        length; (2) run ``num_sub_iterations`` EM steps — expected counts by forward–backward,
        then log p = ψ(count) − ψ(Σ counts) (ψ = digamma, SentencePiece's Bayesian M-step), dropping
        pieces with an expected count below 0.5; (3) prune to max(1.1 × target, shrinking_factor ×
        current size) with SentencePiece's estimate of each piece's likelihood loss (its freq in the
        Viterbi paths, and the likelihood if its uses were re-segmented by its best alternative);
        repeat (2)–(3), then keep the ``vocab_size − 1`` best pieces (``<unk>`` is id 0); every
        character is always kept.

        Args:
            corpus: text, or an iterable of strings; every line is one sentence.
            vocab_size: final number of ids including ``<unk>``.
            history: if a list is given, ``(vocab size, pieces with scores)`` is appended after every
                pruning round, for plotting compression against vocabulary size.
        """
        pieces = train_unigram(
            corpus,
            vocab_size,
            max_piece_length=max_piece_length,
            shrinking_factor=shrinking_factor,
            num_sub_iterations=num_sub_iterations,
            seed_size=seed_size,
            history=history,
        )
        return cls(pieces, unk_id=0, control_ids=(0,))


_F32 = struct.Struct("<f")


def _to_f32(x: float) -> float:
    """Round a float to the nearest float32 (as a Python float)."""
    return _F32.unpack(_F32.pack(x))[0]


def _choice(rng: random.Random, probs: np.ndarray) -> int:
    u, acc = rng.random(), 0.0
    for k, p in enumerate(probs):
        acc += p
        if u < acc:
            return k
    return len(probs) - 1
