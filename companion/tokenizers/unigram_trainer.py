"""Training a Unigram language-model tokenizer (Kudo, "Subword Regularization", 2018), as SentencePiece
does: a seed vocabulary, EM with a Bayesian M-step, and pruning by likelihood loss.

:func:`train_unigram` returns the pieces and scores that
:meth:`companion.tokenizers.unigram.UnigramTokenizer.train` builds its tokenizer from. For speed,
every step runs on all unique words at once with numpy: the lattice of a word is a list of edges
(start, end, piece), and the forward, backward and Viterbi recursions run over end (or start)
positions, vectorized across words (the lattice's class here). The tokenizer itself (Viterbi
encoding, sampling, persistence) is :mod:`companion.tokenizers.unigram`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.special import digamma

from companion.tokenizers.pretokenize import SPACE_SYMBOL, sp_normalize, sp_split

__all__ = ["train_unigram"]


def train_unigram(
    corpus: str | Iterable[str],
    vocab_size: int,
    *,
    max_piece_length: int = 16,
    shrinking_factor: float = 0.75,
    num_sub_iterations: int = 2,
    seed_size: int = 200_000,
    history: list | None = None,
) -> list[tuple[str, float]]:
    """The pieces and scores of a Unigram model trained by EM with pruning (Kudo, 2018): what
    :meth:`companion.tokenizers.unigram.UnigramTokenizer.train` builds its tokenizer from, with
    ``("<unk>", 0.0)`` first (id 0). The steps and arguments are described there.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
    if not 0 < shrinking_factor < 1:
        raise ValueError(f"shrinking_factor: expected a number in (0, 1), got {shrinking_factor!r}")
    lines = corpus.splitlines() if isinstance(corpus, str) else (x for c in corpus for x in c.splitlines())
    word_counts: Counter[str] = Counter()
    for line in lines:
        if line:
            word_counts.update(sp_split(sp_normalize(line)))
    words = sorted(word_counts)
    weights = np.array([word_counts[w] for w in words], dtype=np.float64)

    # (1) seed: characters + frequent substrings, counted in one pass over all (word, span) pairs
    sub_ids: dict[str, int] = {}
    e_sub = np.array(
        [
            sub_ids.setdefault(word[a:b], len(sub_ids))
            for word in words
            for a, b in _spans(len(word), max_piece_length)
        ],
        dtype=np.int64,
    )
    e_w, e_span = _all_spans(words, max_piece_length)
    sub_names = list(sub_ids)
    sub_count = np.bincount(e_sub, weights=weights[e_w], minlength=len(sub_names))
    sub_len = np.array([len(t) for t in sub_names])
    sub_ok = np.array([SPACE_SYMBOL not in t[1:] for t in sub_names])
    is_char = sub_len == 1
    multi = np.flatnonzero(~is_char & sub_ok & (sub_count > 1))
    if multi.size > seed_size:
        multi = multi[np.argsort(-(sub_count[multi] * sub_len[multi]), kind="stable")[:seed_size]]
    seed_subs = np.r_[np.flatnonzero(is_char), multi]
    names = [sub_names[i] for i in seed_subs]
    char_mask = sub_len[seed_subs] == 1
    scores = np.log(sub_count[seed_subs] * sub_len[seed_subs])
    scores -= np.logaddexp.reduce(scores)
    piece_of_sub = np.full(len(sub_names), -1, dtype=np.int64)
    piece_of_sub[seed_subs] = np.arange(seed_subs.size)
    e_piece = piece_of_sub[e_sub]
    hit = e_piece >= 0
    lattice = _Lattice(words, (e_w[hit], e_span[hit, 0], e_span[hit, 1], e_piece[hit]))
    del e_w, e_sub, e_span, sub_ids, sub_names
    alive = np.ones(len(names), dtype=bool)
    prune_cache: dict = {}
    target = vocab_size - 1  # id 0 is <unk>
    desired = max(int(target * 1.1), int(char_mask.sum()))
    while True:
        for _ in range(num_sub_iterations):  # (2) EM
            logp = np.where(alive, scores, -np.inf)
            counts, _ = lattice.expected_counts(logp, weights)
            alive &= (counts >= 0.5) | char_mask
            total = counts[alive].sum()
            scores = np.where(alive, digamma(np.maximum(counts, 1e-12)) - digamma(total), -np.inf)
            lattice.keep(alive)
        if history is not None:
            history.append((int(alive.sum()) + 1, _snapshot(names, scores, alive)))
        if alive.sum() <= desired:
            break
        # (3) prune
        new_size = max(desired, int(alive.sum() * shrinking_factor))
        alive = _prune(
            lattice, names, scores, alive, char_mask, weights, new_size, max_piece_length, prune_cache
        )
        lattice.keep(alive)
    # finalize: the best pieces, all characters kept
    order = sorted(np.flatnonzero(alive), key=lambda i: (not char_mask[i], -scores[i], names[i]))
    n_chars = int(char_mask[alive].sum())
    kept = order[: max(target, n_chars)]
    kept.sort(key=lambda i: (-scores[i], names[i]))
    pieces = [("<unk>", 0.0)] + [(names[i], float(scores[i])) for i in kept]
    return pieces


_PAIRS: dict[tuple[int, int], list[tuple[int, int]]] = {}


def _spans(n: int, max_len: int) -> list[tuple[int, int]]:
    """All (start, end) with 0 <= start < end <= n and end - start <= max_len, by start then end."""
    key = (n, max_len)
    if key not in _PAIRS:
        _PAIRS[key] = [(s, e) for s in range(n) for e in range(s + 1, min(n, s + max_len) + 1)]
    return _PAIRS[key]


def _span_array(n: int, max_len: int) -> np.ndarray:
    key = (-n, max_len)  # a separate cache slot for the array form
    if key not in _PAIRS:
        _PAIRS[key] = np.array(_spans(n, max_len), dtype=np.int64).reshape(-1, 2)
    return _PAIRS[key]


def _all_spans(words: Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(word index, [start, end]) of every span of every word, in word order then span order."""
    sizes = [len(_spans(len(w), max_len)) for w in words]
    if not sizes or not sum(sizes):
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int64)
    word_of = np.repeat(np.arange(len(words)), sizes)
    spans = np.concatenate([_span_array(len(w), max_len) for w in words])
    return word_of, spans


def _edges_of(words: Sequence[str], lookup: Mapping[str, int], max_len: int) -> tuple[np.ndarray, ...]:
    """(word, start, end, piece) of every substring of every word that ``lookup`` knows."""
    get = lookup.get
    ids = np.array(
        [get(word[a:b], -1) for word in words for a, b in _spans(len(word), max_len)], dtype=np.int64
    )
    word_of, spans = _all_spans(words, max_len)
    hit = ids >= 0
    return word_of[hit], spans[hit, 0], spans[hit, 1], ids[hit]


class _Lattice:
    """All (word, start, end, piece) edges of many words, with DP over positions vectorized across words.

    Edges are stored in forward order (by end, word, start); ``_bwd`` is the backward order (by start
    descending, then word, end). Dropping edges with a mask keeps both orders sorted.
    """

    def __init__(self, words: Sequence[str], edges: tuple[np.ndarray, ...]) -> None:
        self.n_words = len(words)
        self.lengths = np.array([len(w) for w in words], dtype=np.int64)
        self.max_n = int(self.lengths.max(initial=0))
        w, s, e, p = edges
        order = np.lexsort((s, w, e))
        self.w, self.s, self.e, self.p = w[order], s[order], e[order], p[order]
        self._bwd = np.lexsort((self.e, self.w, -self.s))
        self._prepare()

    def keep(self, alive: np.ndarray) -> None:
        """Drop the edges of pieces with ``alive[piece] == False``."""
        m = alive[self.p]
        new_index = np.cumsum(m) - 1
        self._bwd = new_index[self._bwd[m[self._bwd]]]
        self.w, self.s, self.e, self.p = self.w[m], self.s[m], self.e[m], self.p[m]
        self._prepare()

    def drop_edges(self, mask: np.ndarray) -> None:
        """Drop the edges where ``mask`` is True."""
        m = ~mask
        new_index = np.cumsum(m) - 1
        self._bwd = new_index[self._bwd[m[self._bwd]]]
        self.w, self.s, self.e, self.p = self.w[m], self.s[m], self.e[m], self.p[m]
        self._prepare()

    @staticmethod
    def _blocks(pos: np.ndarray, w: np.ndarray) -> list[tuple[int, int, int, np.ndarray, np.ndarray]]:
        """For sorted edges: per position block (pos, lo, hi), the word-group starts and group index."""
        out = []
        bounds = np.flatnonzero(np.diff(pos)) + 1
        los = np.r_[0, bounds]
        his = np.r_[bounds, pos.size]
        for lo, hi in zip(los.tolist(), his.tolist(), strict=True):
            ws = w[lo:hi]
            starts = np.flatnonzero(np.r_[True, ws[1:] != ws[:-1]])
            group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, ws.size]))
            out.append((int(pos[lo]), lo, hi, starts, group))
        return out

    def _prepare(self) -> None:
        self._fwd_blocks = self._blocks(self.e, self.w) if self.e.size else []
        b = self._bwd
        self._bw, self._bs, self._be, self._bp = self.w[b], self.s[b], self.e[b], self.p[b]
        self._bwd_blocks = self._blocks(self._bs, self._bw) if b.size else []

    def forward(self, logp: np.ndarray, viterbi: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """alpha[w, e]: log Σ (or max) over the paths of word[:e]; with ``viterbi`` the best edges."""
        alpha = np.full((self.n_words, self.max_n + 1), -np.inf)
        alpha[:, 0] = 0.0
        back = np.full((self.n_words, self.max_n + 1), -1, dtype=np.int64) if viterbi else None
        for e, lo, hi, starts, group in self._fwd_blocks:
            w = self.w[lo:hi]
            vals = alpha[w, self.s[lo:hi]] + logp[self.p[lo:hi]]
            peak = np.maximum.reduceat(vals, starts)
            words = w[starts]
            if viterbi:
                hit = np.flatnonzero(vals == peak[group])
                _, first = np.unique(group[hit], return_index=True)  # the first (longest piece) of ties
                alpha[words, e] = peak
                back[words, e] = lo + hit[first]
            else:
                alpha[words, e] = _group_logsumexp(vals, starts, group, peak)
        return alpha, back

    def backward(self, logp: np.ndarray) -> np.ndarray:
        """beta[w, s]: log Σ over the paths of word[s:]."""
        beta = np.full((self.n_words, self.max_n + 1), -np.inf)
        beta[np.arange(self.n_words), self.lengths] = 0.0
        for s, lo, hi, starts, group in self._bwd_blocks:
            w = self._bw[lo:hi]
            vals = beta[w, self._be[lo:hi]] + logp[self._bp[lo:hi]]
            peak = np.maximum.reduceat(vals, starts)
            beta[w[starts], s] = _group_logsumexp(vals, starts, group, peak)
        return beta

    def expected_counts(self, logp: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """E-step: Σ_w weight_w · E[#uses of each piece | w], and Σ_w weight_w · log P(w)."""
        alpha, _ = self.forward(logp)
        beta = self.backward(logp)
        z = alpha[np.arange(self.n_words), self.lengths]
        post = np.exp(alpha[self.w, self.s] + logp[self.p] + beta[self.w, self.e] - z[self.w])
        counts = np.bincount(self.p, weights=post * weights[self.w], minlength=logp.size)
        return counts, float((weights * z).sum())

    def viterbi_nodes(self, logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pieces on every word's best path, as parallel arrays (word index, piece id)."""
        _, back = self.forward(logp, viterbi=True)
        pos = self.lengths.copy()
        words_out, pieces_out = [], []
        active = np.flatnonzero(pos > 0)
        while active.size:
            edge = back[active, pos[active]]
            words_out.append(active)
            pieces_out.append(self.p[edge])
            pos[active] = self.s[edge]
            active = active[pos[active] > 0]
        if not words_out:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(words_out), np.concatenate(pieces_out)


def _group_logsumexp(vals: np.ndarray, starts: np.ndarray, group: np.ndarray, peak: np.ndarray) -> np.ndarray:
    safe = np.where(np.isfinite(peak), peak, 0.0)
    total = np.add.reduceat(np.exp(vals - safe[group]), starts)
    with np.errstate(divide="ignore"):
        return safe + np.log(total)


def _snapshot(names: list[str], scores: np.ndarray, alive: np.ndarray) -> list[tuple[str, float]]:
    return [(names[i], float(scores[i])) for i in np.flatnonzero(alive)]


def _prune(
    lattice: _Lattice,
    names: list[str],
    scores: np.ndarray,
    alive: np.ndarray,
    char_mask: np.ndarray,
    weights: np.ndarray,
    new_size: int,
    max_len: int,
    cache: dict,
) -> np.ndarray:
    """SentencePiece's pruning: keep the ``new_size`` pieces whose removal would cost the most.

    A piece's uses in the Viterbi paths (``freq``) are assumed re-spelled by its best alternative
    segmentation; the loss is the resulting drop of the unigram log-likelihood, weighted by the
    share of words that use the piece.
    """
    logp = np.where(alive, scores, -np.inf)
    node_w, node_p = lattice.viterbi_nodes(logp)
    freq = np.bincount(node_p, weights=weights[node_w], minlength=len(names))
    cands = np.array([i for i in np.flatnonzero(alive) if not char_mask[i]], dtype=np.int64)
    keep = alive & char_mask
    if cands.size == 0:
        return keep
    # Best segmentation of each multi-character piece's own string without the piece itself. The
    # lattice of these strings is built at the first pruning round and only masked afterwards
    # (pieces only ever leave the vocabulary).
    if "alt" not in cache:
        alive_ids = {names[i]: int(i) for i in np.flatnonzero(alive)}
        strings = [names[i] for i in cands]
        alt = _Lattice(strings, _edges_of(strings, alive_ids, max_len))
        alt.drop_edges(alt.p == cands[alt.w])
        cache["alt"], cache["alt_owner"] = alt, cands
    alt, owner = cache["alt"], cache["alt_owner"]
    alt.keep(alive)
    all_w, all_p = alt.viterbi_nodes(logp)
    row = np.full(len(names), -1, dtype=np.int64)
    row[cands] = np.arange(cands.size)
    alt_w = row[owner[all_w]]  # index into cands (owners that died map to -1)
    live = alt_w >= 0
    alt_w, alt_p = alt_w[live], all_p[live]
    vsum, total_weight = freq.sum(), weights.sum()
    f_i = freq[cands]
    n_alt = np.bincount(alt_w, minlength=cands.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        new_sum = vsum + f_i * (n_alt - 1)  # its uses are re-spelled with n_alt pieces
        terms = np.log(freq[alt_p] + f_i[alt_w])
        logprob_alt = np.bincount(alt_w, weights=terms, minlength=cands.size) - n_alt * np.log(new_sum)
        logprob_sp = np.log(f_i) - np.log(vsum)
        loss = f_i / total_weight * (logprob_sp - logprob_alt)
    loss = np.where((f_i > 0) & (n_alt > 0), loss, -np.inf)  # unused pieces go first
    budget = max(new_size - int(keep.sum()), 0)
    ranked = sorted(range(cands.size), key=lambda k: (-loss[k], names[cands[k]]))
    keep[cands[ranked[:budget]]] = True
    return keep
