"""Plausible wrong answers to the Tokenization chapter's exercises: each must fail at least one check."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from companion.tokenizers import naive
from companion.tokenizers.naive import ByteLevelBPE, bpe_decode, bpe_encode, bpe_train, merge_pair
from companion.tokenizers.pretokenize import sp_denormalize, sp_normalize
from companion.tokenizers.unigram import unigram_prune, unigram_viterbi
from companion.tokenizers.wordpiece import wordpiece_encode, wordpiece_train

# --- tokenization.bpe ------------------------------------------------------------------------------


def _train_with(word_freqs, num_merges, *, key, weighted=True, marker="</w>"):
    words = {(*w, marker) if marker else tuple(w): f for w, f in word_freqs.items()}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, f in words.items():
            for pair in pairwise(word):
                counts[pair] += f if weighted else 1
        if not counts:
            break
        pair, count = key(counts)
        merges.append((*pair, count))
        words = {merge_pair(w, pair): f for w, f in words.items()}
    return merges


def train_largest_pair_on_ties(word_freqs, num_merges):
    """Breaks ties towards the largest pair, so (r, </w>) beats (e, r)."""
    return _train_with(word_freqs, num_merges, key=lambda c: max(c.items(), key=lambda kv: (kv[1], kv[0])))


def train_unweighted(word_freqs, num_merges):
    """Counts each word once, ignoring its frequency."""
    return _train_with(
        word_freqs, num_merges, key=lambda c: min(c.items(), key=lambda kv: (-kv[1], kv[0])), weighted=False
    )


def train_first_seen_on_ties(word_freqs, num_merges):
    """Counter.most_common: ties go to whichever pair was counted first."""
    return _train_with(word_freqs, num_merges, key=lambda c: c.most_common(1)[0])


def train_crashes_when_exhausted(word_freqs, num_merges):
    """max() over an empty Counter raises instead of stopping."""
    words = {(*w, "</w>"): f for w, f in word_freqs.items()}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, f in words.items():
            for pair in pairwise(word):
                counts[pair] += f
        pair, count = max(counts.items(), key=lambda kv: (kv[1], [-ord(c) for c in "".join(kv[0])]))
        merges.append((*pair, count))
        words = {merge_pair(w, pair): f for w, f in words.items()}
    return merges


def encode_reverse_rank(word, merges):
    """Applies the highest-rank (latest) merge first."""
    return bpe_encode(word, list(reversed(merges)))


def encode_one_pass(word, merges):
    """Applies each merge once, left to right, in the order of the word's pairs (not by rank)."""
    ranks = {(m[0], m[1]) for m in merges}
    symbols = [*word, "</w>"]
    i = 0
    while i < len(symbols) - 1:
        if (symbols[i], symbols[i + 1]) in ranks:
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        else:
            i += 1
    return symbols


def decode_keeps_markers(tokens):
    """Forgets to turn end-of-word markers back into spaces."""
    return "".join(tokens)


def decode_drops_markers(tokens):
    """Deletes the markers instead of turning them into spaces: words run together."""
    return "".join(tokens).replace("</w>", "")


# --- tokenization.wordpiece ------------------------------------------------------------------------


def _wp_train_with(score):
    def train(word_freqs, vocab_size):
        words = {(w[0], *("##" + c for c in w[1:])): f for w, f in word_freqs.items() if w}
        vocab = sorted({s for w in words for s in w})
        while len(vocab) < vocab_size:
            pairs, syms = Counter(), Counter()
            for w, f in words.items():
                for s in w:
                    syms[s] += f
                for p in pairwise(w):
                    pairs[p] += f
            if not pairs:
                break
            (a, b), _ = min(
                pairs.items(), key=lambda kv: (-score(kv[1], syms[kv[0][0]], syms[kv[0][1]]), kv[0])
            )
            new = a + b.removeprefix("##")
            if new not in vocab:
                vocab.append(new)
            merged = {}
            for w, f in words.items():
                out, i = [], 0
                while i < len(w):
                    if i + 1 < len(w) and (w[i], w[i + 1]) == (a, b):
                        out.append(new)
                        i += 2
                    else:
                        out.append(w[i])
                        i += 1
                merged[tuple(out)] = merged.get(tuple(out), 0) + f
            words = merged
        return vocab

    return train


wordpiece_train_by_frequency = _wp_train_with(lambda ab, a, b: ab)  # BPE's criterion
wordpiece_train_by_sum = _wp_train_with(lambda ab, a, b: ab / (a + b))


def wordpiece_encode_shortest_first(word, vocab, unk="[UNK]", max_chars=100):
    """Takes the shortest matching prefix instead of the longest."""
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def wordpiece_encode_partial_unk(word, vocab, unk="[UNK]", max_chars=100):
    """Emits [UNK] for the unmatched character only and carries on."""
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            pieces.append(unk)
            start += 1
        else:
            pieces.append(piece)
            start = end
    return pieces


def wordpiece_encode_no_limit(word, vocab, unk="[UNK]", max_chars=100):
    """Ignores max_chars."""
    return wordpiece_encode(word, vocab, unk, max_chars=10**9)


# --- tokenization.unigram --------------------------------------------------------------------------


def viterbi_greedy_longest(text, logp):
    """Greedy longest match: not the most likely segmentation."""
    max_len = max(len(p) for p in logp)
    pieces, s = [], 0
    while s < len(text):
        for e in range(min(len(text), s + max_len), s, -1):
            if text[s:e] in logp:
                pieces.append(text[s:e])
                s = e
                break
        else:
            raise ValueError(f"cannot segment {text!r}")
    return pieces, sum(logp[p] for p in pieces)


def viterbi_fewest_pieces(text, logp):
    """Minimizes the number of pieces and ignores the probabilities (ties by score)."""
    flat = {p: -1000.0 + 1e-3 * s for p, s in logp.items()}
    pieces, _ = unigram_viterbi(text, flat)
    return pieces, sum(logp[p] for p in pieces)


def viterbi_shortest_first_ties(text, logp):
    """Correct maximum, but ties go to the shortest first piece (a forward DP with >=)."""
    n = len(text)
    best, back = [0.0] + [float("-inf")] * n, [0] * (n + 1)
    for e in range(1, n + 1):
        for s in range(e):
            score = logp.get(text[s:e])
            if score is not None and best[s] + score >= best[e]:
                best[e], back[e] = best[s] + score, s
    if best[n] == float("-inf"):
        raise ValueError(f"cannot segment {text!r}")
    pieces, e = [], n
    while e > 0:
        pieces.append(text[back[e] : e])
        e = back[e]
    return pieces[::-1], best[n]


def prune_by_probability(vocab, corpus, keep=0.8):
    """Keeps the most probable pieces instead of the ones whose removal costs most."""
    multi = sorted((p for p in vocab if len(p) > 1), key=lambda p: (-vocab[p], p))
    kept = set(multi[: round(keep * len(multi))])
    return {p: s for p, s in vocab.items() if len(p) == 1 or p in kept}


def prune_drops_characters(vocab, corpus, keep=0.8):
    """Prunes single characters like any other piece."""
    kept = unigram_prune(vocab, corpus, keep)
    rare = min((p for p in kept if len(p) == 1), key=lambda p: (vocab[p], p))
    return {p: s for p, s in kept.items() if p != rare}


def prune_keeps_all_pieces_fraction(vocab, corpus, keep=0.8):
    """Applies the fraction to all pieces, characters included."""
    ranked = sorted(vocab, key=lambda p: (-vocab[p], p))
    kept = set(ranked[: round(keep * len(vocab))]) | {p for p in vocab if len(p) == 1}
    return {p: s for p, s in vocab.items() if p in kept}


# --- tokenization.sentencepiece-normalize ----------------------------------------------------------


def normalize_no_dummy_prefix(text):
    return text.replace(" ", "▁")


def denormalize_no_dummy_prefix(pieces):
    return ("".join(pieces) if not isinstance(pieces, str) else pieces).replace("▁", " ")


def normalize_collapses_spaces(text):
    """Collapses runs of spaces (SentencePiece's remove_extra_whitespaces, which is not lossless)."""
    return "▁" + "▁".join(text.split(" ")).replace("▁▁", "▁") if text else ""


def denormalize_strips(pieces):
    """Strips all leading and trailing spaces."""
    return sp_denormalize(pieces).strip()


def normalize_prefix_on_empty(text):
    return "▁" + text.replace(" ", "▁")


def normalize_underscore(text):
    """Uses '_' instead of '▁'."""
    return "_" + text.replace(" ", "_") if text else ""


def denormalize_underscore(pieces):
    text = "".join(pieces)
    return text[1:].replace("_", " ") if text.startswith("_") else text.replace("_", " ")


# --- tokenization.byte-level-bpe -------------------------------------------------------------------


class CharLevelBPE(ByteLevelBPE):
    """Builds the base vocabulary from the corpus's characters: unseen characters become UNK (-1)."""

    def train(self, corpus, vocab_size):
        super().train(corpus, vocab_size)
        self._seen = set(corpus)

    def encode(self, text):
        ids = []
        for ch in text:
            ids.extend(ByteLevelBPE.encode(self, ch) if ch in self._seen else [-1])
        return ids

    def decode(self, ids):
        return ByteLevelBPE.decode(self, [i for i in ids if i >= 0])


class NoPretokenizationBPE(ByteLevelBPE):
    """Trains on the whole text without GPT-2's regex, so merges cross spaces and punctuation."""

    def train(self, corpus, vocab_size):
        from companion.tokenizers.bpe import BPETokenizer

        self._tok = BPETokenizer.train(corpus, vocab_size, pattern=r"(?s).+", special_tokens=self._special)


class SpecialTokensSplitBPE(ByteLevelBPE):
    """Encodes special tokens as ordinary text (byte by byte)."""

    def encode(self, text):
        return self._tok.encode(text, allowed_special="none")


class NoVocabCheckBPE(ByteLevelBPE):
    """Accepts any vocab_size (silently learns no merges below 256)."""

    def train(self, corpus, vocab_size):
        super().train(corpus, max(vocab_size, 256 + len(self._special)))


class LargestPairTieBPE(ByteLevelBPE):
    """Trains with the naive trainer but breaks ties towards the largest pair."""

    def train(self, corpus, vocab_size):
        from companion.tokenizers.bpe import BPETokenizer
        from companion.tokenizers.bpe_trainer import count_words
        from companion.tokenizers.pretokenize import GPT2_PATTERN

        words = {
            tuple(bytes([b]) for b in w.encode()): c
            for w, c in count_words(corpus, GPT2_PATTERN, self._special).items()
        }
        merges, vocab = [], {bytes([i]) for i in range(256)}
        while len(vocab) < vocab_size - len(self._special):
            counts = naive.pair_counts(words)
            if not counts:
                break
            (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
            merges.append((a, b))
            vocab.add(a + b)
            words = {merge_pair(w, (a, b)): c for w, c in words.items()}
        self._tok = BPETokenizer(merges, pattern=GPT2_PATTERN, special_tokens=self._special)


MUTANTS = {
    "tokenization.bpe": [
        (train_largest_pair_on_ties, bpe_encode, bpe_decode),
        (train_unweighted, bpe_encode, bpe_decode),
        (train_first_seen_on_ties, bpe_encode, bpe_decode),
        (train_crashes_when_exhausted, bpe_encode, bpe_decode),
        (bpe_train, encode_reverse_rank, bpe_decode),
        (bpe_train, encode_one_pass, bpe_decode),
        (bpe_train, bpe_encode, decode_keeps_markers),
        (bpe_train, bpe_encode, decode_drops_markers),
    ],
    "tokenization.wordpiece": [
        (wordpiece_train_by_frequency, wordpiece_encode),
        (wordpiece_train_by_sum, wordpiece_encode),
        (wordpiece_train, wordpiece_encode_shortest_first),
        (wordpiece_train, wordpiece_encode_partial_unk),
        (wordpiece_train, wordpiece_encode_no_limit),
    ],
    "tokenization.unigram": [
        (viterbi_greedy_longest, unigram_prune),
        (viterbi_fewest_pieces, unigram_prune),
        (viterbi_shortest_first_ties, unigram_prune),
        (unigram_viterbi, prune_by_probability),
        (unigram_viterbi, prune_drops_characters),
        (unigram_viterbi, prune_keeps_all_pieces_fraction),
    ],
    "tokenization.sentencepiece-normalize": [
        (normalize_no_dummy_prefix, denormalize_no_dummy_prefix),
        (normalize_collapses_spaces, sp_denormalize),
        (sp_normalize, denormalize_strips),
        (normalize_prefix_on_empty, sp_denormalize),
        (normalize_underscore, denormalize_underscore),
    ],
    "tokenization.byte-level-bpe": [
        CharLevelBPE,
        NoPretokenizationBPE,
        SpecialTokensSplitBPE,
        NoVocabCheckBPE,
        LargestPairTieBPE,
    ],
}
