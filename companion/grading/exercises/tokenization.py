"""Exercises of the Tokenization chapter (``notebooks/transformer/tokenization.ipynb``).

Checks compare the candidate with the companion's reference on seeded random corpora, with facts the
math fixes (the classic corpus's first merge, brute-force Viterbi, lossless normalization), and with
independent references: Hugging Face ``tokenizers`` (BERT's WordPiece on the local MiniLM vocabulary,
byte-level BPE with the candidate's own merges) and ``sentencepiece`` (piece boundaries for spaces).
"""

from __future__ import annotations

import io
import random
from collections import Counter
from functools import lru_cache
from itertools import product

from companion.data import tiny_shakespeare
from companion.grading.checks import expect, expect_raises
from companion.grading.registry import Exercise, register
from companion.tokenizers import naive as ref_naive
from companion.tokenizers import pretokenize as ref_pre
from companion.tokenizers import unigram as ref_unigram
from companion.tokenizers import wordpiece as ref_wordpiece
from companion.tokenizers.byte_level import token_to_unicode
from companion.tokenizers.pretokenize import bert_basic_tokenize

CLASSIC = {"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}
_VARIED = [
    "Hello, world! Tokenizers split text into tokens.",
    "大模型基础：分词把文本切分成词元。",
    "Emoji 🤖🎉 and accents: café, naïve, Straße.",
    "Numbers 3.14159 and 1,000,000; code: x = f(y) ** 2",
    "  leading, trailing and   repeated   spaces  ",
    "tabs\tand\nnewlines\r\nand control \x00\x7f bytes",
]


def _random_corpus(rng: random.Random, alphabet: str = "abcde", n_words: int = 12) -> dict[str, int]:
    words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(n_words)}
    return {w: rng.randint(1, 9) for w in sorted(words)}


def _shakespeare_words(n_chars: int) -> Counter[str]:
    return Counter(tiny_shakespeare()[:n_chars].split())


# --------------------------------------------------------------------------------------------------
# tokenization.bpe
# --------------------------------------------------------------------------------------------------

BPE = register(
    Exercise(
        id="tokenization.bpe",
        title="BPE from scratch: training, encoding by merge rank, decoding",
        names=("bpe_train", "bpe_encode", "bpe_decode"),
        references=(ref_naive.bpe_train, ref_naive.bpe_encode, ref_naive.bpe_decode),
        signature='''def bpe_train(word_freqs, num_merges):
    """Learn BPE merges (Sennrich et al., 2016) from {word: frequency}.

    Split every word into characters followed by the end-of-word marker "</w>". Repeat num_merges
    times: count every adjacent pair, weighted by word frequency; take the pair with the largest
    count — ties go to the lexicographically smallest pair (a, b) — and replace it everywhere by the
    concatenation a + b. Stop early (no error) when no word has two symbols left.
    Returns [(a, b, count), ...] in the order learned.
    """

def bpe_encode(word, merges):
    """Segment one word: characters + "</w>", then repeatedly apply the present pair with the lowest
    rank (position in merges). Returns a list of symbols, e.g. ["low", "e", "s", "t", "</w>"]."""

def bpe_decode(tokens):
    """Concatenate tokens; every "</w>" becomes a space and the final one is dropped."""''',
        hint="count pairs with a Counter over itertools.pairwise(word), weighted by freq; pick "
        "min(counts.items(), key=lambda kv: (-kv[1], kv[0])); encode by repeatedly merging the "
        "lowest-rank pair.",
    )
)


@BPE.check("first merge on the classic corpus is (e, r) with count 9, not the tied (r, </w>)")
def _bpe_first(bpe_train, bpe_encode, bpe_decode):
    merges = bpe_train(dict(CLASSIC), 1)
    expect(len(merges) == 1, f"expected 1 merge, got {len(merges)}")
    expect(tuple(merges[0]) == ("e", "r", 9), f"expected ('e', 'r', 9), got {tuple(merges[0])}")


@BPE.check("the first 10 merges on the classic corpus, with their counts")
def _bpe_classic(bpe_train, bpe_encode, bpe_decode):
    expected = [tuple(m) for m in ref_naive.bpe_train(dict(CLASSIC), 10)]
    got = [tuple(m) for m in bpe_train(dict(CLASSIC), 10)]
    expect(got == expected, f"expected {expected}, got {got}")


@BPE.check("every pair of 'hello world' counts 1: the first merge is the smallest pair, count 1")
def _bpe_hello(bpe_train, bpe_encode, bpe_decode):
    got = [tuple(m) for m in bpe_train({"hello": 1, "world": 1}, 1)]
    expect(got == [("d", "</w>", 1)], f"expected [('d', '</w>', 1)], got {got}")


@BPE.check("merges match the reference on random corpora (frequency-weighted counts)")
def _bpe_random(bpe_train, bpe_encode, bpe_decode):
    rng = random.Random(1)
    for _ in range(5):
        corpus = _random_corpus(rng)
        expected = [tuple(m) for m in ref_naive.bpe_train(dict(corpus), 8)]
        got = [tuple(m) for m in bpe_train(dict(corpus), 8)]
        expect(got == expected, f"corpus {corpus}: expected {expected}, got {got}")


@BPE.check("the vocabulary only grows: alphabet + one new symbol per merge, nothing removed")
def _bpe_vocab(bpe_train, bpe_encode, bpe_decode):
    words = _shakespeare_words(3000)
    merges = bpe_train(dict(words), 40)
    expect(len(merges) == 40, f"expected 40 merges, got {len(merges)}")
    alphabet = {c for w in words for c in w} | {"</w>"}
    vocab = alphabet | {m[0] + m[1] for m in merges}
    for w in list(words)[:200]:
        pieces = bpe_encode(w, merges)
        expect(set(pieces) <= vocab, f"{w!r} -> {pieces} uses symbols outside alphabet + merges")
    single = bpe_encode("l", merges)
    expect(single == ["l", "</w>"], f"'l' must still encode as ['l', '</w>'], got {single}")


@BPE.check("encoding applies merges by rank, not by list pass or frequency")
def _bpe_rank(bpe_train, bpe_encode, bpe_decode):
    merges = [("b", "c", 5), ("a", "b", 9), ("a", "bc", 1), ("d", "</w>", 1)]
    got = bpe_encode("abcd", merges)
    expect(got == ["abc", "d</w>"], f"expected ['abc', 'd</w>'] for 'abcd', got {got}")
    learned = ref_naive.bpe_train(dict(_shakespeare_words(3000)), 60)
    for w in ["thee", "therefore", "nothing", "Romeo", "whither"]:
        expected = ref_naive.bpe_encode(w, learned)
        expect(
            bpe_encode(w, learned) == expected, f"{w!r}: expected {expected}, got {bpe_encode(w, learned)}"
        )


@BPE.check("decode(encode(x)) == x, and unseen words split into known symbols")
def _bpe_roundtrip(bpe_train, bpe_encode, bpe_decode):
    merges = bpe_train(dict(CLASSIC), 10)
    for text in ["lowest", "newer wider", "lowering newest", "zebra"]:
        tokens = [t for w in text.split() for t in bpe_encode(w, merges)]
        expect(bpe_decode(tokens) == text, f"decode(encode({text!r})) = {bpe_decode(tokens)!r}")
    unseen = bpe_encode("lowering", merges)
    expect(unseen[0] == "low" and "".join(unseen) == "lowering</w>", f"'lowering' -> {unseen}")


@BPE.check("asking for more merges than possible stops cleanly")
def _bpe_exhaust(bpe_train, bpe_encode, bpe_decode):
    got = [tuple(m) for m in bpe_train({"ab": 3}, 10)]
    expect(got == [("a", "b", 3), ("ab", "</w>", 3)], f"expected 2 merges then stop, got {got}")


# --------------------------------------------------------------------------------------------------
# tokenization.wordpiece
# --------------------------------------------------------------------------------------------------

WORDPIECE = register(
    Exercise(
        id="tokenization.wordpiece",
        title="WordPiece: likelihood-scored training and greedy longest-match-first encoding",
        names=("wordpiece_train", "wordpiece_encode"),
        references=(ref_wordpiece.wordpiece_train, ref_wordpiece.wordpiece_encode),
        signature='''def wordpiece_train(word_freqs, vocab_size):
    """Train WordPiece on {word: frequency}.

    Symbols: the first character c of a word, "##c" for every later character. The vocabulary starts
    as the sorted set of these symbols (always kept whole). Repeat while it has fewer than vocab_size
    tokens and some word has two symbols: merge the pair (a, b) with the largest score
    c(ab) / (c(a) * c(b)) (counts weighted by word frequency; ties: the smallest pair) into
    a + b without the "##" of b ("h" + "##u" -> "hu", "##u" + "##g" -> "##ug"); append the new token.
    Returns the vocabulary list (alphabet, then tokens in the order learned).
    """

def wordpiece_encode(word, vocab, unk="[UNK]", max_chars=100):
    """Greedy longest-match-first: the longest vocabulary entry that is a prefix of the rest of the
    word ("##"-prefixed after the first piece). If some position matches nothing, return [unk] for
    the whole word; a word longer than max_chars is [unk] too."""''',
        hint="recompute pair and symbol counts each step; score = pair_count / (count[a] * count[b]). "
        "Encoding: for start in the word, try end from len(word) down to start + 1.",
    )
)

_WP_CORPUS = {"the": 10, "that": 8, "this": 6, "at": 20, "ha": 15, "aqu": 3}


@WORDPIECE.check("merges by c(ab)/(c(a)c(b)): the first new token is '##qu', not the frequent 'at'")
def _wp_score(wordpiece_train, wordpiece_encode):
    vocab = list(wordpiece_train(dict(_WP_CORPUS), 14))
    alphabet = sorted({w[0] for w in _WP_CORPUS} | {"##" + c for w in _WP_CORPUS for c in w[1:]})
    expect(
        vocab[: len(alphabet)] == alphabet,
        f"expected the sorted alphabet {alphabet} first, got {vocab[: len(alphabet)]}",
    )
    expect(
        len(vocab) > len(alphabet) and vocab[len(alphabet)] == "##qu",
        f"first merged token: expected '##qu', got {vocab[len(alphabet) :][:1]}",
    )


@WORDPIECE.check("vocabulary size, alphabet kept, and merged-token spelling match the reference")
def _wp_random(wordpiece_train, wordpiece_encode):
    rng = random.Random(2)
    for _ in range(4):
        corpus = _random_corpus(rng, "abcd", 10)
        expected = ref_wordpiece.wordpiece_train(dict(corpus), 16)
        got = list(wordpiece_train(dict(corpus), 16))
        expect(got == expected, f"corpus {corpus}: expected {expected}, got {got}")
    small = list(wordpiece_train({"abc": 2}, 2))
    expect(small == ["##b", "##c", "a"], f"vocab_size below the alphabet keeps the alphabet: got {small}")


@WORDPIECE.check("encoding is longest-match-first with ## continuations")
def _wp_encode(wordpiece_train, wordpiece_encode):
    vocab = {"u", "un", "una", "##f", "##ff", "##aff", "##able", "##a", "##b", "##le", "[UNK]"}
    cases = {"unaffable": ["una", "##ff", "##able"], "un": ["un"], "unable": ["una", "##b", "##le"]}
    for word, expected in cases.items():
        got = list(wordpiece_encode(word, vocab))
        expect(got == expected, f"{word!r}: expected {expected}, got {got}")


@WORDPIECE.check("an unmatched piece makes the whole word one [UNK]; so does a word over max_chars")
def _wp_unk(wordpiece_train, wordpiece_encode):
    vocab = {"a", "##b", "##c", "b"}
    got = list(wordpiece_encode("abx", vocab))
    expect(got == ["[UNK]"], f"'abx' (no '##x'): expected ['[UNK]'], got {got}")
    got = list(wordpiece_encode("xb", vocab, unk="<unk>"))
    expect(got == ["<unk>"], f"custom unk: expected ['<unk>'], got {got}")
    expect(
        list(wordpiece_encode("a" + "b" * 4, {"a", "##b"}, max_chars=5)) == ["a", "##b", "##b", "##b", "##b"],
        "5 chars with max_chars=5 must be encoded",
    )
    got = list(wordpiece_encode("a" + "b" * 5, {"a", "##b"}, max_chars=5))
    expect(got == ["[UNK]"], f"6 chars with max_chars=5: expected ['[UNK]'], got {got}")


@lru_cache(maxsize=1)
def _bert_reference():
    from tokenizers import Tokenizer

    from companion import hub

    tok = Tokenizer.from_file(str(hub.path("minilm", "tokenizer.json")))
    tok.no_truncation()
    tok.no_padding()
    vocab = set(hub.path("minilm", hub.MINILM_VOCAB).read_text(encoding="utf-8").split("\n"))
    return tok, vocab


@WORDPIECE.check("with the local BERT vocab.txt, tokens equal Hugging Face's BERT tokenizer")
def _wp_bert(wordpiece_train, wordpiece_encode):
    ref, vocab = _bert_reference()
    lines = [*_VARIED, *tiny_shakespeare().splitlines()[:300:7], "unaffable tokenization " + "x" * 120]
    for line in lines:
        expected = ref.encode(line, add_special_tokens=False).tokens
        got = [p for w in bert_basic_tokenize(line) for p in wordpiece_encode(w, vocab)]
        expect(got == expected, f"{line!r}: expected {expected}, got {got}")


# --------------------------------------------------------------------------------------------------
# tokenization.unigram
# --------------------------------------------------------------------------------------------------

UNIGRAM = register(
    Exercise(
        id="tokenization.unigram",
        title="Unigram LM: Viterbi segmentation and one pruning step",
        names=("unigram_viterbi", "unigram_prune"),
        references=(ref_unigram.unigram_viterbi, ref_unigram.unigram_prune),
        signature='''def unigram_viterbi(text, logp):
    """The most likely segmentation: argmax over segmentations x of sum(logp[piece]).

    Returns (pieces, log_probability). Ties: the segmentation whose first piece is longest, then
    whose second piece is longest, and so on (a DP from the end, trying longer pieces first and
    keeping a candidate only if strictly better, gives exactly this). Raise ValueError if text
    cannot be segmented.
    """

def unigram_prune(vocab, corpus, keep=0.8):
    """One pruning step. vocab: {piece: logp}; corpus: a list of words.

    L = sum over the words of their Viterbi log-probability. The loss of a piece is how much L drops
    when that piece alone is removed. Keep every single character; of the longer pieces keep
    round(keep * n_long) with the largest loss (ties: the lexicographically smaller piece). Return
    {piece: logp} of the kept pieces, log-probabilities unchanged.
    """''',
        hint="best[s] = max over e of logp[text[s:e]] + best[e], filled for s = n-1 … 0 with e from "
        "the longest piece down; the loss only involves words whose best path uses the piece.",
    )
)


def _quarter_vocab(rng: random.Random, alphabet: str = "abc") -> dict[str, float]:
    pieces = sorted({"".join(p) for k in (1, 2, 3) for p in product(alphabet, repeat=k)})
    return {p: -rng.randint(1, 12) / 4 for p in pieces if len(p) == 1 or rng.random() < 0.5}


def _brute_force(text: str, logp: dict[str, float]) -> tuple[list[str], float]:
    def segs(s):
        if not s:
            yield []
            return
        for e in range(1, len(s) + 1):
            if s[:e] in logp:
                for rest in segs(s[e:]):
                    yield [s[:e], *rest]

    scored = [(seg, sum(logp[p] for p in seg)) for seg in segs(text)]
    best = max(score for _, score in scored)
    return max((seg for seg, score in scored if score == best), key=lambda seg: [len(p) for p in seg]), best


@UNIGRAM.check("Viterbi equals brute-force maximum likelihood on strings of <= 10 characters, ties included")
def _uni_brute(unigram_viterbi, unigram_prune):
    rng = random.Random(3)
    for _ in range(60):
        logp = _quarter_vocab(rng)  # multiples of 1/4: sums are exact, so ties are real ties
        text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 10)))
        expected = _brute_force(text, logp)
        pieces, score = unigram_viterbi(text, dict(logp))
        got = (list(pieces), float(score))
        expect(got == expected, f"text {text!r}, logp {logp}: expected {expected}, got {got}")


@UNIGRAM.check("an unsegmentable string raises ValueError")
def _uni_error(unigram_viterbi, unigram_prune):
    expect_raises(
        ValueError, lambda: unigram_viterbi("abz", {"a": -1.0, "b": -1.0}), "text with 'z' not covered"
    )


@UNIGRAM.check("pruning keeps every single character and round(keep * n) longer pieces")
def _uni_prune_size(unigram_viterbi, unigram_prune):
    rng = random.Random(4)
    for keep in (0.5, 0.8, 1.0):
        vocab = _quarter_vocab(rng)
        corpus = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 6))) for _ in range(15)]
        kept = unigram_prune(dict(vocab), list(corpus), keep)
        chars = [p for p in vocab if len(p) == 1]
        n_long = sum(len(p) > 1 for p in vocab)
        expect(all(c in kept for c in chars), f"single characters must be kept, kept {sorted(kept)}")
        expect(
            len(kept) == len(chars) + round(keep * n_long),
            f"keep={keep}: expected {len(chars) + round(keep * n_long)} pieces, got {len(kept)}",
        )
        expect(all(kept[p] == vocab[p] for p in kept), "log-probabilities must not change")


@UNIGRAM.check("pruning removes the pieces whose removal lowers the likelihood least (matches the reference)")
def _uni_prune_ref(unigram_viterbi, unigram_prune):
    rng = random.Random(5)
    for _ in range(6):
        vocab = _quarter_vocab(rng)
        corpus = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 6))) for _ in range(20)]
        expected = ref_unigram.unigram_prune(dict(vocab), list(corpus), 0.6)
        got = dict(unigram_prune(dict(vocab), list(corpus), 0.6))
        expect(set(got) == set(expected), f"kept {sorted(got)}, expected {sorted(expected)}")


# --------------------------------------------------------------------------------------------------
# tokenization.sentencepiece-normalize
# --------------------------------------------------------------------------------------------------

SP = register(
    Exercise(
        id="tokenization.sentencepiece-normalize",
        title="SentencePiece whitespace: ▁ for spaces, lossless round trip",
        names=("sp_normalize", "sp_denormalize"),
        references=(ref_pre.sp_normalize, ref_pre.sp_denormalize),
        signature='''def sp_normalize(text):
    """Replace every space by "▁" (U+2581) and prepend one "▁" (the dummy prefix) unless text is
    empty. Keep everything else, including repeated, leading and trailing spaces."""

def sp_denormalize(pieces):
    """Inverse: join the pieces (a list of strings, or one string), drop the one leading dummy "▁",
    turn every other "▁" back into a space."""''',
        hint="str.replace does the work; remove only the first ▁ when decoding, never strip().",
    )
)


@SP.check("'Hello world' -> '▁Hello▁world' and back")
def _sp_basic(sp_normalize, sp_denormalize):
    got = sp_normalize("Hello world")
    expect(got == "▁Hello▁world", f"expected '▁Hello▁world', got {got!r}")
    expect(sp_denormalize(["▁Hello", "▁wor", "ld"]) == "Hello world", "denormalize of a piece list")


@SP.check("lossless with leading, trailing and repeated spaces, Chinese, emoji and control characters")
def _sp_roundtrip(sp_normalize, sp_denormalize):
    for text in [" lead", "trail ", "a  b   c", "  ", " ", "你好 世界", "🤖 🎉", "tab\tnew\nline", *_VARIED]:
        norm = sp_normalize(text)
        expect(" " not in norm, f"{text!r}: normalized text still has spaces: {norm!r}")
        expect(sp_denormalize(norm) == text, f"{text!r} -> {norm!r} -> {sp_denormalize(norm)!r}")
        expect(sp_denormalize(list(norm)) == text, f"{text!r}: denormalize of single characters")


@SP.check("the empty string stays empty")
def _sp_empty(sp_normalize, sp_denormalize):
    expect(sp_normalize("") == "", f"expected '', got {sp_normalize('')!r}")
    expect(sp_denormalize([]) == "", f"expected '', got {sp_denormalize([])!r}")


@lru_cache(maxsize=1)
def _sp_model():
    import sentencepiece as spm

    model = io.BytesIO()
    lines = [line for line in tiny_shakespeare().splitlines()[:3000] if line] + _VARIED
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=300,
        model_type="unigram",
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


@SP.check("matches sentencepiece's pieces (identity normalization): joined pieces == sp_normalize(text)")
def _sp_reference(sp_normalize, sp_denormalize):
    sp = _sp_model()
    for text in ["To be, or not  to be", " leading space", "double  space ", "你好 世界", "a", ""]:
        pieces = sp.encode(text, out_type=str)
        expect(
            "".join(pieces) == sp_normalize(text),
            f"{text!r}: sentencepiece gives {pieces}, you give {sp_normalize(text)!r}",
        )
        if sp.unk_id() not in sp.encode(text):
            expect(
                sp_denormalize(pieces) == sp.decode(sp.encode(text)) == text, f"{text!r}: decoding {pieces}"
            )


# --------------------------------------------------------------------------------------------------
# tokenization.byte-level-bpe
# --------------------------------------------------------------------------------------------------

BYTE_BPE = register(
    Exercise(
        id="tokenization.byte-level-bpe",
        title="Byte-level BPE: 256 base bytes, no UNK, special tokens, GPT-2-compatible merges",
        names=("ByteLevelBPE",),
        references=(ref_naive.ByteLevelBPE,),
        signature='''class ByteLevelBPE:
    """Byte-level BPE (GPT-2 style).

    ByteLevelBPE(special_tokens=()) — special tokens are matched whole in text and never split.
    .train(corpus, vocab_size): raise ValueError if vocab_size < 256 + len(special_tokens).
        Pre-tokenize with GPT-2's regex (companion.tokenizers.pretokenize.GPT2_PATTERN, removing the
        special tokens from the corpus first), count the words, start from the 256 single bytes
        (id b = byte b) and merge the most frequent adjacent pair (ties: the smallest pair of byte
        strings) until the vocabulary has vocab_size ids including the special tokens, which get the
        last ids. A merge whose bytes already are a token reuses that token's id.
    .vocab: {id: bytes};  .merges: [(id_a, id_b), ...] in rank order;  .special_tokens: {str: id}
    .encode(text) -> list[int]: apply the merges by rank inside each pre-token.
    .decode(ids) -> str: concatenate the bytes and decode UTF-8.
    """''',
        hint="work on lists of ints; count pairs with a Counter over itertools.pairwise(ids), weighted by "
        "word frequency; split the text on special tokens with a capturing regex before pre-tokenizing.",
    )
)


def _trained(cls, corpus: str, vocab_size: int, special=()):
    tok = cls(special_tokens=list(special))
    tok.train(corpus, vocab_size)
    return tok


@BYTE_BPE.check("vocab_size < 256 (+ special tokens) raises ValueError")
def _bb_small(ByteLevelBPE):
    expect_raises(ValueError, lambda: _trained(ByteLevelBPE, "abc abc", 255), "vocab_size=255")
    expect_raises(
        ValueError,
        lambda: _trained(ByteLevelBPE, "abc abc", 256, ["<s>"]),
        "vocab_size=256 with one special token",
    )


@BYTE_BPE.check("base vocabulary = the 256 bytes; vocabulary size as requested")
def _bb_base(ByteLevelBPE):
    tok = _trained(ByteLevelBPE, tiny_shakespeare()[:20_000], 300)
    vocab = dict(tok.vocab)
    expect(all(vocab.get(b) == bytes([b]) for b in range(256)), "ids 0..255 must be the single bytes")
    expect(
        len(vocab) + len(tok.special_tokens) == 300,
        f"expected 300 ids, got {len(vocab) + len(tok.special_tokens)}",
    )


@BYTE_BPE.check(
    "any string (Chinese, emoji, control bytes, unseen characters) encodes without UNK and decodes exactly"
)
def _bb_roundtrip(ByteLevelBPE):
    tok = _trained(ByteLevelBPE, tiny_shakespeare()[:20_000], 300)
    for text in [*_VARIED, "Ω≈ç√∫ ⅻ", "\x00\x01\x1f", "🫠👨‍👩‍👧", "ʕ•ᴥ•ʔ"]:
        ids = list(tok.encode(text))
        expect(all(0 <= i < 300 for i in ids), f"{text!r}: ids out of range: {ids}")
        expect(tok.decode(ids) == text, f"{text!r}: decode(encode(x)) = {tok.decode(ids)!r}")


@BYTE_BPE.check("special tokens are never split and get the last ids")
def _bb_special(ByteLevelBPE):
    corpus = "<|endoftext|>".join(tiny_shakespeare()[:20_000].split("\n\n"))
    tok = _trained(ByteLevelBPE, corpus, 300, ["<|endoftext|>"])
    eot = tok.special_tokens.get("<|endoftext|>")
    expect(eot == 299, f"expected id 299 for <|endoftext|>, got {eot}")
    ids = list(tok.encode("the end<|endoftext|>a new start<|endoftext|>"))
    expect(ids.count(eot) == 2, f"expected <|endoftext|> twice as one id, got {ids}")
    expect(
        tok.decode(ids) == "the end<|endoftext|>a new start<|endoftext|>", "round trip with special tokens"
    )
    merged = [dict(tok.vocab)[i] for i in range(256, 299) if i in dict(tok.vocab)]
    expect(not any(b"|>" in t or b"<|" in t for t in merged), f"a merge crossed a special token: {merged}")


@BYTE_BPE.check("merges equal the reference trainer's (GPT-2 pre-tokens, documented tie-break)")
def _bb_merges(ByteLevelBPE):
    corpus = tiny_shakespeare()[:30_000]
    got = _trained(ByteLevelBPE, corpus, 320)
    ref = _trained(ref_naive.ByteLevelBPE, corpus, 320)
    vocab, rvocab = dict(got.vocab), dict(ref.vocab)
    got_m = [(vocab[a], vocab[b]) for a, b in got.merges]
    ref_m = [(rvocab[a], rvocab[b]) for a, b in ref.merges]
    first = next((k for k, (x, y) in enumerate(zip(got_m, ref_m, strict=False)) if x != y), None)
    expect(
        got_m == ref_m,
        f"{len(got_m)} vs {len(ref_m)} merges; first difference at rank {first}: "
        f"{got_m[first] if first is not None else '-'} vs {ref_m[first] if first is not None else '-'}",
    )


@BYTE_BPE.check("with its merges, the ids equal Hugging Face tokenizers' byte-level BPE")
def _bb_hf(ByteLevelBPE):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = _trained(ByteLevelBPE, tiny_shakespeare()[:30_000], 400)
    vocab = dict(tok.vocab)
    hf = Tokenizer(
        models.BPE(
            {token_to_unicode(b): i for i, b in vocab.items()},
            [(token_to_unicode(vocab[a]), token_to_unicode(vocab[b])) for a, b in tok.merges],
        )
    )
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in [*_VARIED, *tiny_shakespeare()[30_000:33_000].splitlines()]:
        expected, got = hf.encode(text).ids, list(tok.encode(text))
        expect(got == expected, f"{text!r}: tokenizers gives {expected}, you give {got}")
