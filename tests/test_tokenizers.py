"""companion.tokenizers against references we did not write.

* BPE: SmolLM2's vocabulary and merges (read by our GGUF reader) give the same ids as Hugging Face
  `tokenizers` built from the vocabulary and merges that llama.cpp's `gguf` package extracts, on the
  1,000+ varied lines of tests/data/tokenization_lines.json; the incremental trainer reproduces the
  merges of the naive trainer (same tie-break); compression on tiny Shakespeare is within 1% of
  `tokenizers`' BPE trainer; decode(encode(s)) == s for any string (hypothesis).
* WordPiece: ids identical to `transformers.BertTokenizerFast` on the MiniLM vocab.txt, same lines.
* Every kind implements one interface (companion.tokenizers.base.Tokenizer): one parametrized test
  round-trips each through to_dict/from_dict and through files, ids and description unchanged.
* Unigram: with SentencePiece's trained pieces and scores, identical Viterbi ids and log-likelihoods
  (|diff| <= 1e-6) on the same lines; sampling frequencies match the exact distribution and
  SentencePiece's sampler; our EM-trained vocabulary is compared with SentencePiece's loosely.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from itertools import pairwise, product

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.data import tiny_shakespeare
from companion.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    bpe_trainer,
)
from companion.tokenizers import bpe as bpe_module
from companion.tokenizers import pretokenize as pretokenize_module
from companion.tokenizers.byte_level import bytes_to_unicode, token_from_unicode, token_to_unicode
from companion.tokenizers.naive import (
    ByteLevelBPE,
    bpe_decode,
    bpe_encode,
    bpe_train,
    naive_merges,
    pair_counts,
    train_bytes_naive,
)
from companion.tokenizers.pretokenize import (
    PATTERNS,
    bert_basic_tokenize,
    make_splitter,
    pretokenize,
    safe_chunks,
    sp_denormalize,
    sp_normalize,
    sp_split,
)
from companion.tokenizers.unigram import unigram_prune, unigram_viterbi
from companion.tokenizers.wordpiece import _train_fast, wordpiece_encode, wordpiece_train
from tests._tokenizer_refs import lines as parity_lines
from tests._tokenizer_refs import smollm2_hf_tokenizer

CLASSIC = {"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)  # any Unicode scalar value (no surrogates)


@pytest.fixture(scope="module")
def lines():
    out = parity_lines()
    assert len(out) >= 1000
    return out


@pytest.fixture(scope="module")
def shakespeare():
    return tiny_shakespeare()


@pytest.fixture(scope="module")
def smollm2():
    return BPETokenizer.from_pretrained("smollm2")


@pytest.fixture(scope="module")
def small_bpe(shakespeare):
    return BPETokenizer.train(shakespeare[:200_000], 400, special_tokens=["<|endoftext|>"])


# --------------------------------------------------------------------------------------------------
# bytes and pre-tokenization
# --------------------------------------------------------------------------------------------------


def test_byte_alphabet_is_gpt2s():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert token_to_unicode(b" the") == "Ġthe" and token_from_unicode("Ġthe") == b" the"
    with pytest.raises(ValueError, match="not in the byte alphabet"):
        token_from_unicode("€")


@settings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from(list("ab Z9٣\n\t'!你😀 ")), max_size=80))
def test_pretokenizers_match_hugging_face(text):
    from tokenizers import pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    smollm = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    for pattern, ref in (("gpt2", byte_level), ("smollm", smollm)):
        expected = [token_from_unicode(p).decode("utf-8") for p, _ in ref.pre_tokenize_str(text)]
        assert pretokenize(text, pattern) == expected, pattern


@settings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from(list("ab Zé9\n\r\t'!你。 ")), max_size=200), st.integers(1, 12))
def test_safe_chunks_do_not_change_pretokens(text, chunk):
    for name in PATTERNS:
        pieces = [p for c in safe_chunks(text, chunk) for p in pretokenize(c, name)]
        assert pieces == pretokenize(text, name), name
    assert "".join(safe_chunks(iter(text.splitlines(keepends=True)), chunk)) == text


_ASCII = [chr(i) for i in range(128)]


def _ascii_split(name: str):
    # The standard-library pattern itself, so that the tests fail if make_splitter stopped using it.
    return re.compile(pretokenize_module._ASCII_PATTERNS[PATTERNS[name]]).findall


def test_every_named_pattern_has_an_ascii_fast_path():
    assert set(pretokenize_module._ASCII_PATTERNS) == set(PATTERNS.values())


def test_ascii_fast_path_matches_regex_on_every_short_ascii_string():
    """Every ASCII string of length 1 and 2 (16,512 strings), for each named pattern."""
    strings = _ASCII + [a + b for a in _ASCII for b in _ASCII]
    for name in PATTERNS:
        split, fast = make_splitter(name), _ascii_split(name)
        for text in strings:
            assert fast(text) == split(text) == pretokenize(text, name), (name, text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(_ASCII + list("aZ 9'\n") * 8), max_size=120))
def test_ascii_fast_path_matches_regex_on_random_ascii_text(text):
    for name in PATTERNS:
        assert _ascii_split(name)(text) == make_splitter(name)(text) == pretokenize(text, name), name


def test_splitter_falls_back_to_regex_for_unicode_and_custom_patterns():
    text = "Ünïcode 你好 ٣٤ it's"
    for name in PATTERNS:
        assert make_splitter(name)(text) == pretokenize(text, name)
    assert make_splitter(r"\w+|\W")("a b") == ["a", " ", "b"]


# --------------------------------------------------------------------------------------------------
# BPE: teaching version and incremental trainer
# --------------------------------------------------------------------------------------------------


def test_classic_corpus_first_merges_and_tie_break():
    merges = bpe_train(CLASSIC, 10)
    # (e, r) and (r, </w>) both occur 9 times; the lexicographically smallest pair wins.
    counts = pair_counts({(*w, "</w>"): f for w, f in CLASSIC.items()})
    assert counts[("e", "r")] == counts[("r", "</w>")] == 9 == max(counts.values())
    assert merges[0] == ("e", "r", 9)
    assert bpe_encode("lowest", merges) == ["low", "e", "s", "t", "</w>"]
    assert bpe_decode(bpe_encode("newest", merges) + bpe_encode("wider", merges)) == "newest wider"
    assert len(bpe_train({"ab": 1}, 100)) == 2  # stops when every word is one symbol


def test_hello_world_pairs_all_tie():
    counts = pair_counts({tuple("hello"): 1, tuple("world"): 1})
    assert len(counts) == 8 and set(counts.values()) == {1}


def test_incremental_trainer_reproduces_the_naive_trainer(shakespeare):
    corpus = shakespeare[:60_000]
    fast = BPETokenizer.train(corpus, 330, pattern="gpt2").merges
    assert fast == train_bytes_naive(corpus, 330, "gpt2")
    assert len(fast) >= 74


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(st.sampled_from("aab"), min_size=1, max_size=9), min_size=1, max_size=40),
    st.integers(1, 40),
)
def test_incremental_trainer_matches_naive_on_tie_heavy_corpora(words, n_new):
    # A two-letter alphabet makes ties and repeated byte strings ((a, ab) vs (aa, b)) common.
    _assert_trainers_agree(" ".join(words), 256 + n_new)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(st.sampled_from("aé你b"), min_size=1, max_size=6), min_size=1, max_size=30),
    st.integers(1, 40),
)
def test_incremental_trainer_matches_naive_on_multibyte_words(words, n_new):
    # UTF-8 bytes >= 128 become symbols chr(128..255) inside the trainer.
    _assert_trainers_agree(" ".join(words), 256 + n_new)


def _assert_trainers_agree(corpus: str, vocab_size: int) -> None:
    fast = BPETokenizer.train(corpus, vocab_size, pattern="gpt2").merges
    assert fast == train_bytes_naive(corpus, vocab_size, "gpt2")


def test_trainer_symbols_skip_the_surrogates():
    assert bpe_trainer._symbol(0xD7FF) == "\ud7ff" and bpe_trainer._symbol(0xD800) == "\ue000"
    assert len({bpe_trainer._symbol(i) for i in range(0xD000, 0xE000)}) == 0x1000
    bpe_trainer._symbol(bpe_trainer.MAX_TOKENS - 1)  # the last token id still has a character
    with pytest.raises(ValueError, match="one Unicode character per token"):
        bpe_trainer.train_merges({b"ab": 1}, bpe_trainer.MAX_TOKENS)


def test_compression_within_one_percent_of_hugging_face(shakespeare):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    ref = Tokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.train_from_iterator(
        [shakespeare],
        trainers.BpeTrainer(
            vocab_size=1024, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        ),
    )
    ours = BPETokenizer.train(shakespeare, 1024, pattern="gpt2")
    assert ours.vocab_size == ref.get_vocab_size() == 1024
    n_ref, n_ours = len(ref.encode(shakespeare).ids), len(ours.encode(shakespeare))
    assert abs(n_ours / n_ref - 1) < 0.01, (n_ours, n_ref)


def test_training_validation_and_min_frequency(shakespeare):
    with pytest.raises(ValueError, match="vocab_size: expected an int >= 257"):
        BPETokenizer.train("abc", 256, special_tokens=["<s>"])
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", 100)
    tok = BPETokenizer.train("ab ab ab cd", 1000)
    assert tok.vocab_size < 1000  # stops when no pair is left
    corpus = shakespeare[:10_000]
    rare = BPETokenizer.train(corpus, 2000, pattern="gpt2", min_frequency=5).merges
    full = BPETokenizer.train(corpus, 2000, pattern="gpt2").merges
    assert len(rare) < len(full) and full[: len(rare)] == rare
    words = {
        tuple(bytes([b]) for b in w.encode()): c for w, c in Counter(pretokenize(corpus, "gpt2")).items()
    }
    counts = [c for _, _, c in naive_merges(words, len(rare) + 1)]
    assert min(counts[:-1]) >= 5 > counts[-1]  # training stopped at the first pair seen < 5 times


# --------------------------------------------------------------------------------------------------
# BPE: encoding, special tokens, files
# --------------------------------------------------------------------------------------------------


def test_smollm2_ids_equal_hugging_face_on_parity_lines(smollm2, lines):
    ref = smollm2_hf_tokenizer()
    mismatches = [line for line in lines if smollm2.encode(line) != ref.encode(line).ids]
    assert not mismatches, f"{len(mismatches)} of {len(lines)} lines differ, e.g. {mismatches[0]!r}"


def test_smollm2_facts_and_round_trip(smollm2, lines):
    assert smollm2.vocab_size == 49152 and len(smollm2.merges) == 48900
    assert len(smollm2.missing_bytes) == 21  # DESIGN §7: 21 byte values have no token
    assert (smollm2.bos_id, smollm2.eos_id) == (1, 2)
    assert smollm2.special_tokens["<|im_start|>"] == 1
    missing = set(smollm2.missing_bytes)
    clean = [line for line in lines if not missing & set(line.encode())]
    assert len(clean) >= 1000
    assert all(smollm2.decode(smollm2.encode(line)) == line for line in clean)


def test_long_pretokens_use_the_heap_and_agree_with_the_loop(smollm2):
    rng = random.Random(0)
    for _ in range(30):
        word = "".join(rng.choice("ab cd你😀") for _ in range(rng.randint(65, 300)))
        ids = [smollm2._byte_ids[b] for b in word.encode()]
        heap = bpe_module._merge_by_rank_heap(ids, smollm2._ranks)
        loop = list(ids)
        while len(loop) > 1:  # the quadratic reference: lowest rank, leftmost first
            ranked = [(smollm2._ranks[p][0], i) for i, p in enumerate(pairwise(loop)) if p in smollm2._ranks]
            if not ranked:
                break
            _, i = min(ranked)
            pair = (loop[i], loop[i + 1])
            loop = bpe_module._merge_pair(loop, *pair, smollm2._ranks[pair][1])
        assert heap == loop


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_decode_encode_is_identity_for_any_string(small_bpe, text):
    assert small_bpe.decode(small_bpe.encode(text, allowed_special="none")) == text
    assert small_bpe.decode(small_bpe.encode(text)) == text


def test_special_tokens_are_never_split(small_bpe):
    eot = small_bpe.special_tokens["<|endoftext|>"]
    assert eot == 399 and small_bpe.vocab_size == 400
    ids = small_bpe.encode("To be<|endoftext|>or not<|endoftext|>")
    assert ids.count(eot) == 2 and small_bpe.decode(ids) == "To be<|endoftext|>or not<|endoftext|>"
    plain = small_bpe.encode("To be<|endoftext|>", allowed_special="none")
    assert eot not in plain and small_bpe.decode(plain) == "To be<|endoftext|>"
    assert small_bpe.encode("a<|endoftext|>", allowed_special={"<|endoftext|>"})[-1] == eot
    with pytest.raises(ValueError, match="not special tokens"):
        small_bpe.encode("x", allowed_special={"<|nope|>"})
    # training never merges across a special token
    tok = BPETokenizer.train("ab<|sep|>ab<|sep|>ab<|sep|>" * 20, 270, special_tokens=["<|sep|>"])
    assert all(b"<|" not in t and b"|>" not in t for t in tok.vocab.values() if len(t) > 1)
    with pytest.raises(ValueError, match="already used"):
        tok.add_special_token("<|x|>", 3)


def test_save_load_round_trip(tmp_path, small_bpe, smollm2, lines):
    path = tmp_path / "tok.json"
    small_bpe.save(path)
    text = path.read_text(encoding="utf-8")
    assert '"format": "companion.tokenizers.BPETokenizer"' in text and '"Ġ' in text  # readable JSON
    loaded = BPETokenizer.load(path)
    assert loaded.merges == small_bpe.merges and loaded.special_tokens == small_bpe.special_tokens
    assert loaded.encode("O Romeo, Romeo!<|endoftext|>") == small_bpe.encode("O Romeo, Romeo!<|endoftext|>")
    smollm2.save(path)
    again = BPETokenizer.load(path)
    assert all(again.encode(line) == smollm2.encode(line) for line in lines[::10])
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=r"is not a tokenizer file \(format='other'"):
        BPETokenizer.load(tmp_path / "bad.json")


def test_encode_file_streams_exactly(tmp_path, smollm2, lines):
    text = "<|im_start|>" + "\n".join(lines) + "<|im_end|>\n" + "\n".join(lines[:50])
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8", newline="")
    chunks = list(smollm2.encode_file(path, chunk_chars=2000))
    assert len(chunks) > 10
    assert [i for c in chunks for i in c] == smollm2.encode(text)
    assert smollm2.encode_batch(lines[:20]) == [smollm2.encode(line) for line in lines[:20]]


def test_streamed_training_equals_training_on_the_whole_text(tmp_path, shakespeare):
    path = tmp_path / "corpus.txt"
    path.write_text(shakespeare[:100_000], encoding="utf-8")
    whole = BPETokenizer.train(shakespeare[:100_000], 300)
    with open(path, encoding="utf-8") as f:
        streamed = BPETokenizer.train(f, 300)
    assert streamed.merges == whole.merges


def test_bpe_errors(small_bpe):
    with pytest.raises(TypeError, match="text: expected str"):
        small_bpe.encode(b"bytes")
    with pytest.raises(ValueError, match="ids: 99999 is not in the vocabulary"):
        small_bpe.decode([1, 99999])
    with pytest.raises(ValueError, match="pattern"):
        BPETokenizer(pattern="")
    assert small_bpe.decode(small_bpe.encode("你")[:1]) == "\ufffd"  # a cut UTF-8 character
    with pytest.raises(UnicodeDecodeError):
        small_bpe.decode(small_bpe.encode("你")[:1], errors="strict")


def test_byte_level_never_oov_wrapper(shakespeare):
    bl = ByteLevelBPE(special_tokens=["<|endoftext|>"])
    bl.train(shakespeare[:30_000], 300)
    assert len(bl.vocab) + len(bl.special_tokens) == 300 and all(
        bl.vocab[b] == bytes([b]) for b in range(256)
    )
    text = "Ω≈ç√ 你好 🤖 \x00\x7f"
    assert bl.decode(bl.encode(text)) == text and max(bl.encode(text)) < 300


# --------------------------------------------------------------------------------------------------
# WordPiece
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_wordpiece():
    return WordPieceTokenizer.from_pretrained("minilm")


def test_wordpiece_ids_equal_bert_tokenizer_fast(minilm_wordpiece, lines):
    from transformers import BertTokenizerFast

    from companion import hub

    ref = BertTokenizerFast(vocab=str(hub.path("minilm", hub.MINILM_VOCAB)), do_lower_case=True)
    assert minilm_wordpiece.vocab_size == 30522
    mismatches = [line for line in lines if minilm_wordpiece.encode(line) != ref.encode(line)]
    assert not mismatches, f"{len(mismatches)} of {len(lines)} lines differ, e.g. {mismatches[0]!r}"
    hard = ["Café naïve", "大模型基础", "🤖 x" + "y" * 101, "a\u0301\u200b\x00b", "[MASK] [mask]"]
    assert [minilm_wordpiece.encode(h) for h in hard] == [ref.encode(h) for h in hard]


def test_wordpiece_basics(minilm_wordpiece):
    tok = minilm_wordpiece
    assert bert_basic_tokenize("Héllo, 世界!") == ["hello", ",", "世", "界", "!"]
    assert tok.tokenize("x" * 101) == ["[UNK]"]  # longer than max_input_chars_per_word
    assert wordpiece_encode("abc", {"a", "##b"}) == ["[UNK]"]  # one unmatched piece: the whole word
    assert tok.decode(tok.encode("Tokenization is fun!")) == "tokenization is fun !"
    with pytest.raises(ValueError, match="unk_token"):
        WordPieceTokenizer(["a", "b"])


def test_wordpiece_fast_trainer_equals_the_naive_one(shakespeare):
    counts = Counter(bert_basic_tokenize(shakespeare[:20_000]))
    naive = wordpiece_train(counts, 200)
    assert _train_fast(counts, 200) == naive and len(naive) == 200


def test_wordpiece_score_differs_from_bpe_frequency():
    # BPE merges the most frequent pair, (a, t): 28 times. But a and t are common on their own;
    # q and u occur only together, so the likelihood score c(ab)/(c(a)c(b)) = 3/(3·3) picks them.
    corpus = {"the": 10, "that": 8, "this": 6, "at": 20, "ha": 15, "aqu": 3}
    vocab = wordpiece_train(corpus, 100)
    alphabet = sorted({w[0] for w in corpus} | {"##" + c for w in corpus for c in w[1:]})
    assert vocab[: len(alphabet)] == alphabet and vocab[len(alphabet)] == "##qu"
    assert bpe_train(corpus, 1, end_of_word="")[0] == ("a", "t", 28)


def test_wordpiece_frequency_criterion_behaves_like_hugging_faces_trainer(shakespeare):
    # Hugging Face's WordPieceTrainer runs the BPE (frequency) trainer; it breaks ties in hash order,
    # so compare loosely: fertility on held-out text within 1%, most tokens shared.
    from tokenizers import BertWordPieceTokenizer

    train, held = shakespeare[:150_000], shakespeare[1_000_000:1_050_000]
    ours = WordPieceTokenizer.train(train, 1500, criterion="frequency")
    hf = BertWordPieceTokenizer(lowercase=True)
    hf.train_from_iterator([train], vocab_size=1500, show_progress=False)
    hf_tokens = sorted(hf.get_vocab(), key=hf.get_vocab().get)
    n_ours = len(ours.encode(held, add_special_tokens=False))
    n_hf = len(WordPieceTokenizer(hf_tokens).encode(held, add_special_tokens=False))
    assert abs(n_ours / n_hf - 1) < 0.01, (n_ours, n_hf)
    assert len(set(hf_tokens) & set(ours.vocab)) / len(hf_tokens) > 0.85
    with pytest.raises(ValueError, match="criterion"):
        WordPieceTokenizer.train("abc", 10, criterion="pmi")


def test_wordpiece_train_save_load(tmp_path, shakespeare, monkeypatch):
    tok = WordPieceTokenizer.train(shakespeare[:30_000], 400)
    assert tok.vocab_size == 400 and tok.ids_to_tokens[1] == "[UNK]"
    tok.save_vocab(tmp_path / "vocab.txt")
    again = WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert again.encode("Romeo and Juliet") == tok.encode("Romeo and Juliet")
    # a save that fails on the disk (here: fsync on a full disk) leaves the old file whole
    before = (tmp_path / "vocab.txt").read_bytes()
    bigger = WordPieceTokenizer.train(shakespeare[:30_000], 500)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        bigger.save_vocab(tmp_path / "vocab.txt")
    monkeypatch.undo()
    assert (tmp_path / "vocab.txt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.txt"]


# --------------------------------------------------------------------------------------------------
# Unigram and SentencePiece
# --------------------------------------------------------------------------------------------------


def _sp_train(lines, model_type="unigram", vocab_size=2000):
    spm = pytest.importorskip("sentencepiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_by_unicode_script=False,
        character_coverage=0.9995,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


@pytest.fixture(scope="module")
def sp_unigram(shakespeare, lines):
    train = [s for s in shakespeare.split("\n") if s.strip()][:8000] + [s for s in lines if "\n" not in s]
    return _sp_train(train)


def test_unigram_viterbi_equals_sentencepiece(sp_unigram, lines):
    tok = UnigramTokenizer.from_sentencepiece(sp_unigram)
    worst = 0.0
    for line in lines:
        ids = sp_unigram.encode(line)
        assert tok.encode(line) == ids, line
        pieces = sp_unigram.encode(line, out_type=str)  # an <unk> piece shows the unknown text
        ll = sum(
            sp_unigram.get_score(i) if i != sp_unigram.unk_id() else len(p) * tok.unk_score
            for i, p in zip(ids, pieces, strict=True)
        )
        worst = max(worst, abs(tok.log_likelihood(line) - ll))
        assert "".join(pieces) == sp_normalize(line)  # SentencePiece's boundaries for spaces
        if sp_unigram.unk_id() not in ids:
            assert sp_unigram.decode(ids) == line == tok.decode(ids)  # lossless
    assert worst <= 1e-6


def _fit_pvalue(counts: Counter, probs: np.ndarray, n: int) -> float:
    """Chi-square goodness-of-fit p-value of ``counts`` (by index) against ``probs``, rare bins pooled."""
    from scipy.stats import chisquare

    expected = probs * n
    observed = np.array([counts[k] for k in range(len(probs))], dtype=float)
    common = expected >= 5
    obs = np.append(observed[common], observed[~common].sum())
    exp = np.append(expected[common], expected[~common].sum())
    keep = exp > 0
    return float(chisquare(obs[keep], exp[keep] * obs.sum() / exp[keep].sum()).pvalue)


def test_unigram_sampling_matches_the_exact_distribution_and_sentencepiece(sp_unigram):
    tok = UnigramTokenizer.from_sentencepiece(sp_unigram)
    spm = pytest.importorskip("sentencepiece")
    spm.set_random_generator_seed(0)
    word, alpha, n = "hello", 0.5, 4000
    segs = tok.segmentations(word)
    logits = np.array([alpha * score for _, score in segs])
    exact = np.exp(logits - np.logaddexp.reduce(logits))
    index = {tuple(p): k for k, (p, _) in enumerate(segs)}
    rng = random.Random(0)
    ours = Counter(index[tuple(tok.sample(word, alpha, rng))] for _ in range(n))
    theirs = Counter(
        index[tuple(sp_unigram.encode(word, out_type=str, enable_sampling=True, alpha=alpha, nbest_size=-1))]
        for _ in range(n)
    )
    # Goodness of fit to the exact distribution, one chi-square test per sampler over all segmentations
    # (those expected fewer than 5 times pooled into one bin, where the test is valid). SentencePiece's
    # sampler cannot be seeded reliably, so its counts differ from run to run: a per-segmentation
    # 4-sigma band failed now and then on rare segmentations (skewed counts); at p < 1e-6 a correct
    # sampler fails once in a million runs, while sampling at the wrong alpha gives p ~ 1e-100.
    assert _fit_pvalue(ours, exact, n) > 1e-6, "our sampler"
    assert _fit_pvalue(theirs, exact, n) > 1e-6, "SentencePiece's sampler"
    wrong = np.exp(2 * logits - np.logaddexp.reduce(2 * logits))  # alpha doubled: must be rejected
    assert _fit_pvalue(ours, wrong, n) < 1e-12
    # the marginal likelihood is the log-sum over all segmentations
    total = np.logaddexp.reduce([s for _, s in segs])
    assert tok.marginal_log_likelihood(word) == pytest.approx(total, rel=1e-12)


def test_unigram_em_training_is_close_to_sentencepiece(shakespeare):
    train = [s for s in shakespeare.split("\n") if s.strip()]
    held_out, train = train[-2000:], train[:6000]
    ours = UnigramTokenizer.train(train, 800)
    sp = _sp_train(train, vocab_size=800)
    theirs = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    overlap = len(theirs & {p for p, _ in ours.pieces}) / len(theirs)
    n_ours = sum(len(ours.encode(s)) for s in held_out)
    n_sp = sum(len(sp.encode(s)) for s in held_out)
    assert ours.vocab_size == 800
    assert overlap >= 0.7, overlap
    assert abs(n_ours / n_sp - 1) <= 0.10, (n_ours, n_sp)


@settings(max_examples=60, deadline=None)
@given(st.text(st.sampled_from("abc"), min_size=1, max_size=9), st.randoms(use_true_random=False))
def test_unigram_viterbi_equals_brute_force(text, rnd):
    # log-probabilities that are multiples of 1/4: sums are exact, so ties are real ties
    pieces = {"".join(p) for k in (1, 2, 3) for p in product("abc", repeat=k)}
    logp = {p: -rnd.randint(1, 12) / 4 for p in sorted(pieces) if len(p) == 1 or rnd.random() < 0.5}

    def all_segmentations(s):
        if not s:
            yield []
            return
        for e in range(1, len(s) + 1):
            if s[:e] in logp:
                for rest in all_segmentations(s[e:]):
                    yield [s[:e], *rest]

    best = max(sum(logp[p] for p in seg) for seg in all_segmentations(text))
    ties = [seg for seg in all_segmentations(text) if sum(logp[p] for p in seg) == best]
    expected = max(ties, key=lambda seg: [len(p) for p in seg])  # longest first piece, then second, ...
    assert unigram_viterbi(text, logp) == (expected, best)


def test_unigram_prune_keeps_characters_and_the_fraction():
    vocab = {"a": -2.0, "b": -2.0, "c": -3.0, "ab": -1.5, "bc": -2.5, "abc": -2.0, "ca": -4.0, "cab": -3.0}
    corpus = ["abc", "abc", "ab", "cab", "bc", "ca"]
    kept = unigram_prune(vocab, corpus, keep=0.6)
    assert {"a", "b", "c"} <= set(kept) and len(kept) == 3 + 3
    assert all(kept[p] == vocab[p] for p in kept)
    with pytest.raises(ValueError, match="keep"):
        unigram_prune(vocab, corpus, keep=0)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_sentencepiece_normalization_is_lossless(text):
    norm = sp_normalize(text)
    # Lossless except for a "▁" already in the text: it comes back as a space (SentencePiece too).
    assert " " not in norm and sp_denormalize(norm) == text.replace("\u2581", " ")
    assert "".join(sp_split(norm)) == norm


def test_unigram_errors_and_unknowns(sp_unigram):
    tok = UnigramTokenizer.from_sentencepiece(sp_unigram)
    with pytest.raises(TypeError, match="text"):
        tok.encode(3)
    with pytest.raises(ValueError, match="ids"):
        tok.decode([10**6])
    ids = tok.encode("\U0001d400\U0001d401 x")  # two unknown characters in a row: one <unk>
    assert ids.count(tok.unk_id) == 1
    with pytest.raises(ValueError, match="alpha"):
        tok.sample("x", alpha=-1)


# --------------------------------------------------------------------------------------------------
# One interface: every kind trains, encodes, decodes and round-trips through memory and files
# --------------------------------------------------------------------------------------------------

KINDS = {
    "char": lambda corpus: CharTokenizer.train(corpus),
    "bpe": lambda corpus: BPETokenizer.train(corpus, 300, special_tokens=["<|endoftext|>"]),
    "wordpiece": lambda corpus: WordPieceTokenizer.train(corpus, 300),
    "unigram": lambda corpus: UnigramTokenizer.train(corpus, 300),
    "bpe-smollm2": lambda corpus: BPETokenizer.from_pretrained("smollm2"),
    "wordpiece-minilm": lambda corpus: WordPieceTokenizer.from_pretrained("minilm"),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def any_tokenizer(request, shakespeare):
    return KINDS[request.param](shakespeare[:40_000])


def test_every_kind_is_a_tokenizer_with_in_range_ids(any_tokenizer, shakespeare):
    assert isinstance(any_tokenizer, Tokenizer)
    assert Tokenizer._kinds[any_tokenizer.format] is type(any_tokenizer)
    for line in shakespeare[50_000:52_000].splitlines():
        ids = any_tokenizer.encode(line)
        assert all(isinstance(i, int) and 0 <= i < any_tokenizer.vocab_size for i in ids)
        assert isinstance(any_tokenizer.decode(ids), str)


def test_every_kind_round_trips_in_memory_and_through_files(tmp_path, any_tokenizer, shakespeare):
    probe = shakespeare[50_000:53_000].splitlines()  # the char tokenizer's alphabet covers these
    described = any_tokenizer.to_dict()
    assert described["format"] == any_tokenizer.format
    again = type(any_tokenizer).from_dict(json.loads(json.dumps(described)))
    path = tmp_path / "tok.json"
    any_tokenizer.save(path)
    loaded = Tokenizer.load(path)  # the base class finds the kind from the file
    assert type(loaded) is type(any_tokenizer) and type(again) is type(any_tokenizer)
    assert again.to_dict() == described and loaded.to_dict() == described
    assert type(any_tokenizer).load(path).to_dict() == described
    for line in probe:
        ids = any_tokenizer.encode(line)
        assert again.encode(line) == ids and loaded.encode(line) == ids
        assert loaded.decode(ids) == any_tokenizer.decode(ids)


def test_unigram_file_keeps_sentencepiece_scores_exactly(tmp_path, sp_unigram, lines):
    tok = UnigramTokenizer.from_sentencepiece(sp_unigram)
    tok.save(tmp_path / "unigram.json")
    loaded = UnigramTokenizer.load(tmp_path / "unigram.json")
    assert loaded.pieces == tok.pieces and loaded.control_ids == tok.control_ids
    for line in lines[::20]:
        assert loaded.encode(line) == tok.encode(line)
        assert loaded.log_likelihood(line) == tok.log_likelihood(line)


def test_lossless_kinds_decode_what_they_encode(shakespeare):
    for tok in (CharTokenizer.train(shakespeare), BPETokenizer.train(shakespeare[:20_000], 300)):
        assert tok.decode(tok.encode(shakespeare[60_000:61_000])) == shakespeare[60_000:61_000]


def test_loading_the_wrong_kind_or_no_tokenizer_is_a_clear_error(tmp_path):
    CharTokenizer("abc").save(tmp_path / "char.json")
    with pytest.raises(ValueError, match=r"holds a CharTokenizer .* not a BPETokenizer"):
        BPETokenizer.load(tmp_path / "char.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"not a tokenizer file \(format=None; known: .*CharTokenizer"):
        Tokenizer.load(tmp_path / "list.json")
    with pytest.raises(ValueError, match="vocab_size: a character tokenizer has one id per character"):
        CharTokenizer.train("abc", vocab_size=4)


def test_decode_and_train_refuse_impossible_requests():
    """Before: CharTokenizer.decode([-1]) returned the last character, and WordPieceTokenizer.train
    with vocab_size=1 silently returned a 59-token vocabulary."""
    chars = CharTokenizer("abcz")
    assert chars.decode([0, 3]) == "az"
    for bad in ([-1], [4], [1.0]):
        with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 4\)"):
            chars.decode(bad)
    with pytest.raises(ValueError, match=r"need at least .* ids, got 1"):
        WordPieceTokenizer.train("hello world " * 50, 1)
    with pytest.raises(ValueError, match="vocab_size"):
        WordPieceTokenizer.train("hello world", 0)
    small = WordPieceTokenizer.train("hello world " * 50, 40)
    assert small.vocab_size <= 40


def test_tokenizer_files_are_checked_on_load(tmp_path):
    """Before: a BPE file in which two tokens share an id loaded, and every encode then dropped byte
    0x05; a truncated vocab.txt loaded as a small WordPiece; a special token at id 5000 left
    vocab_size at 259; the pre-token cache grew with the length of the words (30 words of 1 MB held
    ~258 MB)."""
    tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=260)
    data = tok.to_dict()
    assert data["vocab_size"] == 260 and data["missing_bytes"] == []
    clash = json.loads(json.dumps(data))
    clash["vocab"][next(t for t, i in clash["vocab"].items() if i == 6)] = 5
    with pytest.raises(ValueError, match="vocab: id 5 is given to 2 tokens"):
        BPETokenizer.from_dict(clash)
    dropped = json.loads(json.dumps(data))
    del dropped["vocab"][next(t for t, i in dropped["vocab"].items() if i == 5)]
    with pytest.raises(ValueError, match=r"byte tokens \[5\] are missing"):
        BPETokenizer.from_dict(dropped)
    resized = dict(data, vocab_size=300)
    with pytest.raises(ValueError, match="vocab_size: the file declares 300, its tokens make 260"):
        BPETokenizer.from_dict(resized)
    smollm2 = BPETokenizer.from_pretrained("smollm2")  # lacks 21 byte tokens: declared, so it loads
    again = BPETokenizer.from_dict(json.loads(json.dumps(smollm2.to_dict())))
    assert again.missing_bytes == smollm2.missing_bytes and len(smollm2.missing_bytes) == 21

    tok.add_special_token("<|big|>", 5000)
    assert tok.vocab_size == 5001 and tok.encode("<|big|>") == [5000]

    vocab = tmp_path / "vocab.txt"
    WordPieceTokenizer.train("hello world " * 50, 40).save_vocab(vocab)
    full = vocab.read_text(encoding="utf-8")
    cut = len(full) // 2
    while full[cut - 1] == "\n":
        cut -= 1
    vocab.write_text(full[:cut], encoding="utf-8")  # cut off mid-line
    with pytest.raises(ValueError, match="does not end with a newline; is it truncated"):
        WordPieceTokenizer.from_vocab_file(vocab)
    lines = full.splitlines()
    vocab.write_text("\n".join(lines[:8]) + "\n", encoding="utf-8")  # cut at a line boundary
    with pytest.raises(ValueError, match=f"holds 8 tokens, expected {len(lines)}"):
        WordPieceTokenizer.from_vocab_file(vocab, expected_size=len(lines))
    vocab.write_text("\n".join([*lines, lines[-1]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="twice"):
        WordPieceTokenizer.from_vocab_file(vocab)

    import tracemalloc

    smollm2.encode("warm up")
    tracemalloc.start()
    rng = random.Random(0)
    for _ in range(10):
        smollm2.encode("".join(rng.choice("abcdefghij") for _ in range(200_000)))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < 5_000_000, f"{held / 1e6:.1f} MB held by the cache after 10 distinct 200 KB words"
