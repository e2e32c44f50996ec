"""Exercises of the Architectures chapter (``notebooks/transformer/architectures.ipynb``): encoders,
decoders and encoder–decoders, and BERT's pretraining inputs.

``architectures.masks`` compares the three masks with ``torch.tril``/``torch.ones``, with the rule
``j < P or j <= i`` written out, and with ``F.scaled_dot_product_attention`` (``is_causal=True``, no
mask), and proves by autograd that an attention output depends on exactly the values its mask allows.
``architectures.mlm-masking`` tests the selection rate and the 80/10/10 split against the binomial
expectation (within 4 standard errors) and against ``transformers``' ``DataCollatorForLanguageModeling``
on the same ids, and checks labels, special tokens and padding exactly.
``architectures.nsp-pairs`` checks every pair against the corpus it came from (IsNext: the next
sentence; NotNext: another document), the 50% rate, and the segment ids against the
``token_type_ids`` of ``transformers``' ``BertTokenizerFast``.
``architectures.bert-embeddings`` compares the module with ``transformers``' ``BertEmbeddings`` on the
same random weights and on all-MiniLM-L6-v2's, and with ``F.layer_norm`` of the written-out sum.
``architectures.nonlinearity`` grades ``is_linear`` on maps whose answer the math fixes: matrix products,
affine maps, ReLU, and a Post-LN BERT block with and without its LayerNorms and softmax.
``architectures.glm-mask`` compares GLM's mask with its block construction and with SDPA, and its 2-D
positions with Figure 2 of Du et al., "GLM: General Language Model Pretraining with Autoregressive
Blank Infilling" (2022).
"""

from __future__ import annotations

import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from companion.grading.checks import expect, expect_close, expect_no_error, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.models.bert import BertEmbeddings, mlm_mask, nsp_pairs, segment_ids
from companion.nn.block import TransformerBlock
from companion.nn.masks import bidirectional, causal, glm_mask, glm_positions, prefix_lm
from companion.testing import is_linear


def _grid(m: torch.Tensor) -> str:
    """A (T, T) mask as rows of 0/1."""
    return "\n".join(" ".join(str(int(v)) for v in row) for row in m.detach().to(torch.int64).tolist())


def _expect_mask(got: Any, expected: torch.Tensor, what: str) -> None:
    expect_tensor(got, what, shape=tuple(expected.shape), dtype=torch.bool)
    expect(torch.equal(got, expected), f"{what}: expected\n{_grid(expected)}\ngot\n{_grid(got)}")


def _rule(t: int, allowed) -> torch.Tensor:
    """The (t, t) bool mask with entry (i, j) = allowed(i, j), written out element by element."""
    return torch.tensor([[bool(allowed(i, j)) for j in range(t)] for i in range(t)], dtype=torch.bool)


def _qkv(t: int, seed: int, d: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, t, d, generator=g, dtype=torch.float64) for _ in range(3))


def _dependence(mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(T, T) bool: whether SDPA's output at query i (with ``mask``) has a nonzero gradient wrt value j."""
    t = mask.shape[-1]
    q, k, v = (x[0] for x in _qkv(t, seed))
    jac = torch.autograd.functional.jacobian(
        lambda v_: F.scaled_dot_product_attention(q, k, v_, attn_mask=mask), v
    )  # (T, d, T, d)
    return jac.abs().sum(dim=(1, 3)) > 0


# --------------------------------------------------------------------------------------------------
# architectures.masks
# --------------------------------------------------------------------------------------------------

MASKS = register(
    Exercise(
        id="architectures.masks",
        title="The three masks: bidirectional (encoder), causal (decoder), prefix LM",
        names=("bidirectional_mask", "causal_mask", "prefix_lm_mask"),
        references=(bidirectional, causal, prefix_lm),
        signature='''def bidirectional_mask(t):
    """The encoder's mask (BERT): a bool (t, t) tensor, True where query i may attend key j — everywhere."""

def causal_mask(t):
    """The decoder's mask (GPT): a bool (t, t) tensor, True where key j <= query i (diagonal included)."""

def prefix_lm_mask(t, prefix_len):
    """The prefix LM's mask (UniLM, T5's prefix LM): a bool (t, t) tensor, True where j < prefix_len or
    j <= i — the prefix is seen bidirectionally, the rest causally. 0 <= prefix_len <= t.
    """''',
        hint="True = may attend (torch SDPA's convention); compare torch.arange(t) as a row (keys j) with "
        "itself as a column (queries i); the prefix adds the columns j < prefix_len for every row.",
    )
)


@MASKS.check("each mask is a bool (t, t) tensor (t = 1 and 6)")
def _masks_types(bidirectional_mask, causal_mask, prefix_lm_mask):
    for t in (1, 6):
        expect_tensor(bidirectional_mask(t), f"bidirectional_mask({t})", shape=(t, t), dtype=torch.bool)
        expect_tensor(causal_mask(t), f"causal_mask({t})", shape=(t, t), dtype=torch.bool)
        p = t // 2
        expect_tensor(prefix_lm_mask(t, p), f"prefix_lm_mask({t}, {p})", shape=(t, t), dtype=torch.bool)


@MASKS.check("causal_mask is torch.tril of ones, and in SDPA equals is_causal=True (float64)")
def _masks_causal(bidirectional_mask, causal_mask, prefix_lm_mask):
    for t in (1, 4, 9):
        _expect_mask(causal_mask(t), torch.ones(t, t, dtype=torch.bool).tril(), f"causal_mask({t})")
    q, k, v = _qkv(7, seed=1)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(7))
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    expect_close(got, want, "SDPA output with attn_mask=causal_mask(7) vs is_causal=True", atol=1e-12)


@MASKS.check("bidirectional_mask is all True, and in SDPA equals no mask at all")
def _masks_bidirectional(bidirectional_mask, causal_mask, prefix_lm_mask):
    for t in (1, 5):
        _expect_mask(bidirectional_mask(t), torch.ones(t, t, dtype=torch.bool), f"bidirectional_mask({t})")
    q, k, v = _qkv(6, seed=2)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=bidirectional_mask(6))
    expect_close(
        got, F.scaled_dot_product_attention(q, k, v), "SDPA output with bidirectional_mask(6)", atol=1e-12
    )


@MASKS.check("prefix_lm_mask(t, P) follows the rule j < P or j <= i (several t, P)")
def _masks_prefix_rule(bidirectional_mask, causal_mask, prefix_lm_mask):
    for t, p in ((6, 2), (6, 3), (7, 1), (5, 4), (8, 5), (1, 1)):
        expected = _rule(t, lambda i, j, p=p: j < p or j <= i)
        _expect_mask(prefix_lm_mask(t, p), expected, f"prefix_lm_mask({t}, {p})")


@MASKS.check("prefix_len = 0 gives the causal mask and prefix_len = t the bidirectional one")
def _masks_prefix_edges(bidirectional_mask, causal_mask, prefix_lm_mask):
    for t in (1, 5):
        ones = torch.ones(t, t, dtype=torch.bool)
        _expect_mask(prefix_lm_mask(t, 0), ones.tril(), f"prefix_lm_mask({t}, 0) (= causal)")
        _expect_mask(prefix_lm_mask(t, t), ones, f"prefix_lm_mask({t}, {t}) (= bidirectional)")


@MASKS.check("no leak: in SDPA, output i has a nonzero gradient wrt value j exactly where the rule allows")
def _masks_leak(bidirectional_mask, causal_mask, prefix_lm_mask):
    t = 6
    cases = [
        ("causal_mask(6)", causal_mask(t), lambda i, j: j <= i),
        ("bidirectional_mask(6)", bidirectional_mask(t), lambda i, j: True),
        ("prefix_lm_mask(6, 2)", prefix_lm_mask(t, 2), lambda i, j: j < 2 or j <= i),
        ("prefix_lm_mask(6, 4)", prefix_lm_mask(t, 4), lambda i, j: j < 4 or j <= i),
    ]
    for what, mask, allowed in cases:
        expect_tensor(mask, what)
        got, want = _dependence(mask), _rule(t, allowed)
        expect(
            torch.equal(got, want),
            f"{what}: output i should depend on value j exactly where\n{_grid(want)}\n"
            f"but with your mask in SDPA it depends on\n{_grid(got)}",
        )


# --------------------------------------------------------------------------------------------------
# architectures.mlm-masking
# --------------------------------------------------------------------------------------------------

MLM = register(
    Exercise(
        id="architectures.mlm-masking",
        title="BERT's masked-LM corruption: choose 15%, then 80% [MASK], 10% random, 10% unchanged",
        names=("mlm_mask",),
        references=(mlm_mask,),
        signature='''def mlm_mask(input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None,
             probability=0.15, generator=None):
    """BERT's masking (Devlin et al., 2019, §3.1). input_ids: (B, T) int64.

    Choose each maskable token independently with `probability`; a token is maskable unless its id is in
    special_ids ([CLS], [SEP], [PAD], …) or attention_mask (B, T) is 0 there. Of the chosen tokens,
    80% become mask_id, 10% a random id drawn uniformly from [0, vocab_size), 10% stay unchanged.
    Draw all randomness from `generator`. Do not modify input_ids.
    Returns (inputs, labels), both (B, T) of input_ids' dtype: inputs the corrupted ids; labels the
    ORIGINAL id at every chosen position and -100 everywhere else (the loss ignores -100).
    """''',
        hint="one uniform per position decides 'chosen' (u < probability), a second one splits the chosen "
        "(< 0.8: [MASK]; < 0.9: random; else unchanged); labels come from the untouched input_ids.",
    )
)

_V = 100
_PAD, _UNK, _CLS, _SEP, _MASK = range(5)
_SPECIAL = (_PAD, _UNK, _CLS, _SEP, _MASK)
# Of the chosen tokens (never [MASK] themselves): a random id equals the original, or [MASK], with 1/V each.
_SPLIT = {
    "[MASK]": 0.8 + 0.1 / _V,
    "random (changed, not [MASK])": 0.1 * (1 - 2 / _V),
    "unchanged": 0.1 + 0.1 / _V,
}


def _mlm_batch(seed: int, *, pad_id: int | None = _PAD, b: int = 64, t: int = 512):
    """``(ids, attention_mask)``: ``[CLS] A [SEP] B [SEP]`` rows of random lengths, right-padded with
    ``pad_id`` (``None``: the padding keeps ordinary ids, so only the attention mask marks it)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(_SPECIAL), _V, (b, t), generator=g)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    real = torch.arange(t)[None, :] < lengths[:, None]
    rows = torch.arange(b)
    ids[:, 0] = _CLS
    ids[rows, lengths // 2] = _SEP
    ids[rows, lengths - 1] = _SEP
    if pad_id is not None:
        ids[~real] = pad_id
    return ids, real.long()


def _mlm(fn, ids, attention_mask, *, probability=0.15, seed=0):
    out = fn(
        ids,
        mask_id=_MASK,
        vocab_size=_V,
        special_ids=_SPECIAL,
        attention_mask=attention_mask,
        probability=probability,
        generator=torch.Generator().manual_seed(seed),
    )
    expect(
        isinstance(out, tuple) and len(out) == 2,
        f"mlm_mask must return a tuple (inputs, labels), got {type(out).__name__}",
    )
    inputs = expect_tensor(out[0], "inputs", shape=tuple(ids.shape), dtype=ids.dtype)
    labels = expect_tensor(out[1], "labels", shape=tuple(ids.shape), dtype=ids.dtype)
    return inputs, labels


def _expect_rate(count: int, n: int, p: float, what: str) -> None:
    se = math.sqrt(p * (1 - p) / n)
    frac = count / n
    expect(
        abs(frac - p) <= 4 * se,
        f"{what}: expected {p:.4f} ± {4 * se:.4f} (4 standard errors, n = {n}), got {frac:.4f} ({count}/{n})",
    )


def _split_counts(ids, inputs, chosen) -> dict[str, int]:
    orig, new = ids[chosen], inputs[chosen]
    is_mask, same = new == _MASK, new == orig
    return {
        "[MASK]": int(is_mask.sum()),
        "random (changed, not [MASK])": int((~is_mask & ~same).sum()),
        "unchanged": int(same.sum()),
    }


@MLM.check("returns (inputs, labels) of input_ids' shape and dtype (input_ids left as given)")
def _mlm_shapes(fn):
    ids, attention = _mlm_batch(0, b=4, t=16)
    _mlm(fn, ids, attention)
    ids, attention = _mlm_batch(1, b=1, t=7)
    _mlm(fn, ids, None)


@MLM.check("labels: the original id at each chosen position, −100 elsewhere; unchosen inputs unchanged")
def _mlm_labels(fn):
    ids, attention = _mlm_batch(2)
    inputs, labels = _mlm(fn, ids, attention)
    chosen = labels != -100
    expect(bool(chosen.any()), "no position was chosen (every label is -100)")
    wrong = chosen & (labels != ids)
    if wrong.any():
        raise AssertionError(
            f"{int(wrong.sum())} chosen label(s) differ from the original id, e.g. at {_first(wrong)}: "
            f"expected {int(ids[wrong][0])}, got {int(labels[wrong][0])} (labels hold the uncorrupted ids)"
        )
    changed = ~chosen & (inputs != ids)
    if changed.any():
        raise AssertionError(
            f"{int(changed.sum())} unchosen position(s) (label -100) changed, e.g. at {_first(changed)}: "
            f"expected {int(ids[changed][0])}, got {int(inputs[changed][0])}"
        )
    share = chosen.float().mean().item()
    expect(share < 0.5, f"{share:.0%} of the positions carry a label: expected about 15%, -100 elsewhere")


def _first(where: torch.Tensor) -> tuple[int, ...] | None:
    """The index of the first True entry (None if there is none)."""
    found = torch.nonzero(where)
    return tuple(int(i) for i in found[0]) if len(found) else None


@MLM.check("special ids and padding (attention_mask 0) are never chosen")
def _mlm_never(fn):
    ids, attention = _mlm_batch(3)
    inputs, labels = _mlm(fn, ids, attention, probability=0.5)
    chosen = labels != -100
    special = torch.isin(ids, torch.tensor(_SPECIAL))
    bad = chosen & special
    expect(not bool(bad.any()), f"{int(bad.sum())} special-token position(s) chosen, e.g. at {_first(bad)}")
    touched = special & (inputs != ids)
    expect(
        not bool(touched.any()), f"{int(touched.sum())} special token(s) changed, e.g. at {_first(touched)}"
    )
    ids, attention = _mlm_batch(4, pad_id=None)  # padding holds ordinary ids: only attention_mask marks it
    inputs, labels = _mlm(fn, ids, attention, probability=0.5)
    bad = (labels != -100) & (attention == 0)
    expect(
        not bool(bad.any()),
        f"{int(bad.sum())} padding position(s) (attention_mask 0, ordinary ids) chosen, "
        f"e.g. at {_first(bad)}",
    )


@MLM.check("chooses ≈ probability of the maskable tokens (p = 0.15 and 0.3, within 4 standard errors)")
def _mlm_rate(fn):
    for seed, p in ((5, 0.15), (6, 0.3)):
        ids, attention = _mlm_batch(seed)
        _, labels = _mlm(fn, ids, attention, probability=p, seed=seed)
        maskable = ~torch.isin(ids, torch.tensor(_SPECIAL)) & (attention == 1)
        chosen = (labels != -100) & maskable
        _expect_rate(int(chosen.sum()), int(maskable.sum()), p, f"probability={p}: chosen share of maskable")


@MLM.check("of the chosen: ≈ 80% [MASK], 10% random, 10% unchanged (within 4 standard errors)")
def _mlm_split(fn):
    ids, attention = _mlm_batch(7)
    inputs, labels = _mlm(fn, ids, attention, seed=7)
    chosen = labels != -100
    counts, n = _split_counts(ids, inputs, chosen), int(chosen.sum())
    expect(n > 0, "no position was chosen (every label is -100)")
    for name, p in _SPLIT.items():
        _expect_rate(counts[name], n, p, f"share of the chosen that are {name}")


@MLM.check("random replacements are spread over [0, vocab_size), not one id")
def _mlm_random_ids(fn):
    ids, attention = _mlm_batch(8)
    inputs, labels = _mlm(fn, ids, attention, probability=0.3, seed=8)
    replaced = (labels != -100) & (inputs != ids) & (inputs != _MASK)
    values = inputs[replaced]
    expect(
        values.numel() > 200, f"expected about 10% of ~6,700 chosen to be random ids, got {values.numel()}"
    )
    lo, hi = int(values.min()), int(values.max())
    expect(0 <= lo and hi < _V, f"random ids must lie in [0, vocab_size={_V}), got min {lo}, max {hi}")
    distinct = values.unique().numel()
    expect(
        distinct >= 0.8 * _V,
        f"{values.numel()} random replacements took only {distinct} distinct ids; expected nearly all {_V} "
        "(a fresh uniform id per position)",
    )


@lru_cache(maxsize=1)
def _hf_tokenizer():
    """transformers' BERT tokenizer over a small WordPiece vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK] w0 …"""
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(_V - 5))]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast.from_pretrained(folder)
    if (len(tokenizer), tokenizer.mask_token_id, tokenizer.cls_token_id) != (_V, _MASK, _CLS):
        raise RuntimeError("the test vocabulary did not load as written")  # the check's own setup
    return tokenizer


@MLM.check("statistics agree with transformers' DataCollatorForLanguageModeling on the same ids")
def _mlm_hf(fn):
    from transformers import DataCollatorForLanguageModeling

    ids, attention = _mlm_batch(9)
    never = torch.isin(ids, torch.tensor(_SPECIAL)) | (attention == 0)
    collator = DataCollatorForLanguageModeling(_hf_tokenizer(), mlm=True, mlm_probability=0.15)
    with torch.random.fork_rng(devices=[]):
        _ = torch.manual_seed(9)
        ref_inputs, ref_labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=never)
    inputs, labels = _mlm(fn, ids, attention, seed=9)
    n = int((~never).sum())
    a, b = int(((labels != -100) & ~never).sum()), int(((ref_labels != -100) & ~never).sum())
    se = math.sqrt(0.15 * 0.85 * 2 / n)
    expect(
        abs(a - b) / n <= 4 * se,
        f"chosen share of maskable: transformers gives {b / n:.4f}, yours {a / n:.4f} "
        f"(allowed difference {4 * se:.4f})",
    )
    mine, ref = labels != -100, ref_labels != -100
    got_c, ref_c = _split_counts(ids, inputs, mine), _split_counts(ids, ref_inputs, ref)
    n_got, n_ref = int(mine.sum()), int(ref.sum())
    expect(n_got > 0, "no position was chosen (every label is -100)")
    for name, p in _SPLIT.items():
        se = math.sqrt(p * (1 - p) * (1 / n_got + 1 / n_ref))
        a, b = got_c[name] / n_got, ref_c[name] / n_ref
        expect(
            abs(a - b) <= 4 * se,
            f"share of the chosen that are {name}: transformers gives {b:.4f}, yours {a:.4f} "
            f"(allowed difference {4 * se:.4f})",
        )


@MLM.check("the same generator seed gives the same result, another seed a different one")
def _mlm_generator(fn):
    ids, attention = _mlm_batch(10, b=8, t=64)
    first, again, other = (_mlm(fn, ids, attention, seed=s) for s in (3, 3, 4))
    same = torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    expect(same, "two calls with generators seeded alike gave different masks: draw from `generator`")
    expect(not torch.equal(first[1], other[1]), "seeds 3 and 4 gave the same masks")


# --------------------------------------------------------------------------------------------------
# architectures.nsp-pairs
# --------------------------------------------------------------------------------------------------

NSP = register(
    Exercise(
        id="architectures.nsp-pairs",
        title="Next-sentence-prediction pairs and the segment ids of [CLS] A [SEP] B [SEP]",
        names=("nsp_pairs", "segment_ids"),
        references=(nsp_pairs, segment_ids),
        signature='''def nsp_pairs(documents, n_pairs, *, generator=None):
    """n_pairs next-sentence-prediction examples, a list of (A, B, label) (Devlin et al., 2019, §3.1).

    documents: a list of documents, each a list of consecutive sentences (strings).
    Pick A from a random document; half the pairs are IsNext, label 0: B is the sentence right after A
    in its document; the other half NotNext, label 1: B is a random sentence of another document
    (label 0/1 as in transformers' BertForPreTraining next_sentence_label). Draw from `generator`.
    Raise ValueError with fewer than two documents.
    """

def segment_ids(len_a, len_b=0):
    """The segment (token-type) ids of [CLS] A [SEP] B [SEP], an int64 tensor: 0 for [CLS], the len_a
    tokens of A and the first [SEP]; 1 for the len_b tokens of B and the final [SEP].
    len_b = 0 is a single sentence [CLS] A [SEP] (len_a + 2 zeros).
    """''',
        hint="IsNext needs a sentence with a successor (index < len(doc) - 1); for NotNext draw the other "
        "document from the len(documents) - 1 that are not A's; segments switch to 1 after the first [SEP].",
    )
)

_DOCS = [[f"Document {d}, sentence {s}." for s in range(n)] for d, n in enumerate((4, 6, 3, 7, 5, 2))]
_WHERE = {s: (d, i) for d, doc in enumerate(_DOCS) for i, s in enumerate(doc)}


def _pairs(fn, n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    out = list(fn(_DOCS, n, generator=torch.Generator().manual_seed(seed)))
    expect(len(out) == n, f"nsp_pairs(documents, {n}): expected {n} pairs, got {len(out)}")
    pairs = []
    for k, p in enumerate(out):
        expect(isinstance(p, tuple) and len(p) == 3, f"pair {k}: expected a tuple (A, B, label), got {p!r}")
        a, b, label = p
        expect(a in _WHERE and b in _WHERE, f"pair {k}: A and B must be sentences of the corpus, got {p!r}")
        label = int(label)
        expect(label in (0, 1), f"pair {k}: the label must be 0 (IsNext) or 1 (NotNext), got {p[2]!r}")
        pairs.append((a, b, label))
    return pairs


@NSP.check("returns n_pairs (A, B, label) triples of corpus sentences; reproducible for a seeded generator")
def _nsp_shape(nsp_pairs, segment_ids):
    first, again = _pairs(nsp_pairs, 40, seed=1), _pairs(nsp_pairs, 40, seed=1)
    expect(
        first == again, "two calls with generators seeded alike gave different pairs: draw from `generator`"
    )
    _pairs(nsp_pairs, 1)


@NSP.check("about half the pairs are IsNext (label 0): within 4 standard errors over 2,000 pairs")
def _nsp_half(nsp_pairs, segment_ids):
    pairs = _pairs(nsp_pairs, 2000, seed=2)
    _expect_rate(sum(label == 0 for _, _, label in pairs), len(pairs), 0.5, "share of IsNext (label 0)")


@NSP.check("IsNext (label 0): B is the sentence right after A in A's document")
def _nsp_is_next(nsp_pairs, segment_ids):
    for a, b, label in _pairs(nsp_pairs, 400, seed=3):
        if label == 0:
            (da, ia), (db, ib) = _WHERE[a], _WHERE[b]
            expect(
                (db, ib) == (da, ia + 1),
                f"IsNext pair ({a!r}, {b!r}): expected B = the next sentence of A's document"
                + (f", {_DOCS[da][ia + 1]!r}" if ia + 1 < len(_DOCS[da]) else " (A is its document's last)"),
            )


@NSP.check("NotNext (label 1): B comes from a different document than A")
def _nsp_not_next(nsp_pairs, segment_ids):
    pairs = _pairs(nsp_pairs, 2000, seed=4)
    same = [(a, b) for a, b, label in pairs if label == 1 and _WHERE[a][0] == _WHERE[b][0]]
    n = sum(label == 1 for _, _, label in pairs)
    expect(not same, f"{len(same)} of {n} NotNext pairs take B from A's own document, e.g. {same[:1]}")


@NSP.check("A and the NotNext Bs are spread over the corpus: every document, ≥ 3/4 of the sentences")
def _nsp_spread(nsp_pairs, segment_ids):
    pairs = _pairs(nsp_pairs, 2000, seed=5)
    docs_a = {_WHERE[a][0] for a, _, _ in pairs}
    expect(
        docs_a == set(range(len(_DOCS))),
        f"A came only from documents {sorted(docs_a)} of 0 … {len(_DOCS) - 1}",
    )
    randoms = [b for _, b, label in pairs if label == 1]
    docs_b = {_WHERE[b][0] for b in randoms}
    expect(
        docs_b == set(range(len(_DOCS))),
        f"NotNext Bs came only from documents {sorted(docs_b)} of 0 … {len(_DOCS) - 1}",
    )
    distinct = len(set(randoms))
    expect(
        distinct >= 0.75 * len(_WHERE),
        f"{len(randoms)} NotNext Bs are only {distinct} distinct sentences of {len(_WHERE)}: expected "
        "a random sentence of a random other document",
    )


@NSP.check("fewer than two documents raise ValueError")
def _nsp_one_document(nsp_pairs, segment_ids):
    g = torch.Generator().manual_seed(6)
    one = [["The only document.", "Its second sentence.", "Its third."]]
    expect_raises(ValueError, lambda: nsp_pairs(one, 4, generator=g), "nsp_pairs on one document")
    expect_raises(ValueError, lambda: nsp_pairs([], 4, generator=g), "nsp_pairs on no documents")


@NSP.check("segment_ids equal the token_type_ids of transformers' BertTokenizerFast (pairs and singles)")
def _nsp_segments(nsp_pairs, segment_ids):
    tokenizer = _hf_tokenizer()
    for len_a, len_b in ((1, 0), (5, 0), (1, 1), (3, 4), (7, 2)):
        text_a = " ".join(f"w{i}" for i in range(len_a))
        text_b = " ".join(f"w{i}" for i in range(10, 10 + len_b))
        enc = tokenizer(text_a, text_b) if len_b else tokenizer(text_a)
        want = torch.tensor(enc["token_type_ids"])
        got = expect_tensor(
            segment_ids(len_a, len_b), f"segment_ids({len_a}, {len_b})", shape=tuple(want.shape)
        )
        expect(
            got.dtype == torch.int64, f"segment_ids({len_a}, {len_b}): expected dtype int64, got {got.dtype}"
        )
        expect(
            torch.equal(got, want),
            f"segment_ids({len_a}, {len_b}) for {tokenizer.convert_ids_to_tokens(enc['input_ids'])}: "
            f"expected {want.tolist()}, got {got.tolist()}",
        )
    default = expect_tensor(segment_ids(3), "segment_ids(3) (len_b defaults to 0)", shape=(5,))
    expect(default.tolist() == [0] * 5, f"segment_ids(3): expected [0, 0, 0, 0, 0], got {default.tolist()}")


# --------------------------------------------------------------------------------------------------
# architectures.bert-embeddings
# --------------------------------------------------------------------------------------------------

EMBEDDINGS = register(
    Exercise(
        id="architectures.bert-embeddings",
        title="BERT's input embeddings: LayerNorm(token + segment + position)",
        names=("BertEmbeddings",),
        references=(BertEmbeddings,),
        signature='''class BertEmbeddings(torch.nn.Module):
    """BertEmbeddings(vocab_size, max_len, d_model, n_segments=2, eps=1e-12, *, pad_token_id=0).

    Submodules: word_embeddings, an nn.Embedding(vocab_size, d_model, padding_idx=pad_token_id);
    position_embeddings, a learned table with .weight of shape (max_len, d_model) (an nn.Embedding will
    do); token_type_embeddings, an nn.Embedding(n_segments, d_model); norm, an nn.LayerNorm(d_model, eps).
    forward(input_ids (B, T), token_type_ids (B, T) or None) returns (B, T, d_model):
        norm(word_embeddings[input_ids] + token_type_embeddings[token_type_ids] + position table[0 … T-1])
    token_type_ids None means all 0 (sentence A); ids outside [0, n_segments) raise (ValueError or
    IndexError). No dropout needed (the checks run in eval mode).
    """''',
        hint="positions are torch.arange(T) on input_ids' device; add the three lookups, then normalize "
        "once; BERT's LayerNorm epsilon is 1e-12, not PyTorch's default 1e-5.",
    )
)

_TINY = {"vocab_size": 50, "max_len": 24, "d_model": 16}


def _weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """BERT-like random weights: tables N(0, 0.02²) (BERT's init), LayerNorm 1 + N(0, 0.1²) and N(0, 0.1²)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        out[name] = 1 + 0.1 * w if name == "norm.weight" else (0.1 if name == "norm.bias" else 0.02) * w
    return out


def _load(module: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """Copy ``weights`` (``<submodule>.weight``/``.bias``) into the learner's module, which must have them."""
    module = module.double().eval()
    with torch.no_grad():
        for name, w in weights.items():
            sub, attr = name.split(".")
            param = getattr(getattr(module, sub, None), attr, None)
            expect(isinstance(param, torch.Tensor), f"BertEmbeddings has no tensor {name}")
            expect_tensor(param, f"BertEmbeddings.{name}", shape=tuple(w.shape))
            param.copy_(w)
    return module


def _hf_embeddings(config_kwargs: dict[str, Any], weights: dict[str, torch.Tensor]) -> nn.Module:
    from transformers import BertConfig as HFBertConfig
    from transformers.models.bert.modeling_bert import BertEmbeddings as HFBertEmbeddings

    config = HFBertConfig(**config_kwargs)
    hf = HFBertEmbeddings(config).double().eval()
    names = {"norm.weight": "LayerNorm.weight", "norm.bias": "LayerNorm.bias"}
    result = hf.load_state_dict({names.get(k, k): v for k, v in weights.items()}, strict=False)
    if result.unexpected_keys or set(result.missing_keys) - {n for n, _ in hf.named_buffers()}:
        raise RuntimeError(f"transformers' BertEmbeddings did not take the weights: {result}")  # the setup
    return hf


def _tiny_inputs(seed: int, b: int = 3, t: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, _TINY["vocab_size"], (b, t), generator=g)
    return ids, torch.randint(0, 2, (b, t), generator=g)


def _tiny_shapes(n_segments: int = 2) -> dict[str, tuple[int, ...]]:
    v, m, d = _TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"]
    return {
        "word_embeddings.weight": (v, d),
        "position_embeddings.weight": (m, d),
        "token_type_embeddings.weight": (n_segments, d),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }


def _embed(module, ids, types=None):
    with torch.no_grad():
        return module(ids) if types is None else module(ids, types)


@EMBEDDINGS.check("its tables are (V, d), (max_len, d), (n_segments, d), and norm has (d,) weight and bias")
def _emb_shapes(cls):
    for n_segments in (2, 3):
        module = cls(_TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"], n_segments)
        for name, shape in _tiny_shapes(n_segments).items():
            sub, attr = name.split(".")
            param = getattr(getattr(module, sub, None), attr, None)
            expect(isinstance(param, torch.Tensor), f"BertEmbeddings has no tensor {name}")
            expect_tensor(param, f"BertEmbeddings(…, n_segments={n_segments}).{name}", shape=shape)


@EMBEDDINGS.check("equals transformers' BertEmbeddings on the same random weights (float64, atol 1e-6)")
def _emb_hf(cls):
    weights = _weights(_tiny_shapes(), seed=0)
    config = {
        "vocab_size": _TINY["vocab_size"], "hidden_size": _TINY["d_model"], "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": _TINY["max_len"],
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    }  # fmt: skip
    hf = _hf_embeddings(config, weights)
    module = _load(cls(_TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"]), weights)
    ids, types = _tiny_inputs(1)
    with torch.no_grad():
        want, want_default = hf(input_ids=ids, token_type_ids=types), hf(input_ids=ids)
    expect_close(_embed(module, ids, types), want, "output with token_type_ids", atol=1e-6)
    expect_close(
        _embed(module, ids), want_default, "output with token_type_ids=None (all sentence A)", atol=1e-6
    )


@EMBEDDINGS.check("equals F.layer_norm(E_tok[x] + E_seg[s] + E_pos[0 … T-1], eps=1e-12), written out")
def _emb_formula(cls):
    weights = _weights(_tiny_shapes(), seed=2)
    module = _load(cls(_TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"]), weights)
    ids, types = _tiny_inputs(3, b=2, t=_TINY["max_len"])  # every position row in use
    total = (
        weights["word_embeddings.weight"][ids]
        + weights["token_type_embeddings.weight"][types]
        + weights["position_embeddings.weight"][: ids.shape[1]]
    )
    want = F.layer_norm(total, (_TINY["d_model"],), weights["norm.weight"], weights["norm.bias"], eps=1e-12)
    expect_close(_embed(module, ids, types), want, "output", atol=1e-9)


@EMBEDDINGS.check("positions count from 0: editing position row 0 changes position 0's output, only it")
def _emb_positions(cls):
    weights = _weights(_tiny_shapes(), seed=4)
    module = _load(cls(_TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"]), weights)
    ids, types = _tiny_inputs(5, b=2, t=6)
    before = _embed(module, ids, types)
    with torch.no_grad():
        module.position_embeddings.weight[0] += 0.05 * torch.randn(
            _TINY["d_model"], generator=torch.Generator().manual_seed(6), dtype=torch.float64
        )
    after = _embed(module, ids, types)
    expect_tensor(after, "output", shape=(2, 6, _TINY["d_model"]))
    change = (after[:, 0] - before[:, 0]).abs().max().item()
    expect(
        change > 1e-3, f"changing position row 0 moved position 0's output by only {change:.3g}: is it row 0?"
    )
    expect_close(after[:, 1:], before[:, 1:], "positions 1 … 5 after changing position row 0", atol=1e-12)


def _expect_value_or_index_error(fn, what: str) -> None:
    try:
        fn()
    except NotImplementedError:
        raise
    except (ValueError, IndexError):
        return
    except Exception as exc:
        raise AssertionError(
            f"{what}: expected ValueError or IndexError, got {type(exc).__name__}: {exc}"
        ) from None
    raise AssertionError(f"{what}: expected ValueError or IndexError, but nothing was raised")


@EMBEDDINGS.check("segment ids outside [0, n_segments) raise ValueError or IndexError")
def _emb_bad_segments(cls):
    module = cls(_TINY["vocab_size"], _TINY["max_len"], _TINY["d_model"]).eval()
    ids = torch.tensor([[2, 7, 9, 3]])
    ok = torch.tensor([[0, 0, 1, 1]])
    expect_no_error(lambda: _embed(module, ids, ok), "segment ids 0 and 1 must be accepted")
    for bad in ([[0, 0, 2, 2]], [[0, -1, 1, 1]]):
        _expect_value_or_index_error(
            lambda bad=bad: _embed(module, ids, torch.tensor(bad)), f"segment ids {bad}"
        )


@lru_cache(maxsize=1)
def _minilm_files() -> tuple[Path, dict[str, Any], dict[str, int]]:
    """The pinned all-MiniLM-L6-v2 folder, its config and its vocabulary (token -> id)."""
    from companion import hub

    folder = hub.fetch("minilm")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    vocab = {w: i for i, w in enumerate((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    return folder, config, vocab


def _minilm_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's five embedding tensors (float64), read without loading the rest of the model."""
    from safetensors import safe_open

    names = {
        "word_embeddings.weight": "embeddings.word_embeddings.weight",
        "position_embeddings.weight": "embeddings.position_embeddings.weight",
        "token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
        "norm.weight": "embeddings.LayerNorm.weight",
        "norm.bias": "embeddings.LayerNorm.bias",
    }
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return {ours: f.get_tensor(theirs).double() for ours, theirs in names.items()}


@EMBEDDINGS.check("with all-MiniLM-L6-v2's weights equals transformers' on real token ids (atol 1e-6)")
def _emb_minilm(cls):
    folder, config, vocab = _minilm_files()
    weights = _minilm_weights(folder)
    keys = "vocab_size hidden_size max_position_embeddings type_vocab_size layer_norm_eps pad_token_id"
    hf = _hf_embeddings({k: config[k] for k in keys.split()}, weights)
    sizes = (config[k] for k in ("vocab_size", "max_position_embeddings", "hidden_size", "type_vocab_size"))
    module = _load(cls(*sizes), weights)
    a, b = "the quick brown fox".split(), "jumps over the lazy dog .".split()
    ids = torch.tensor([[vocab[w] for w in ["[CLS]", *a, "[SEP]", *b, "[SEP]"]]])
    types = torch.tensor([[0] * (len(a) + 2) + [1] * (len(b) + 1)])
    with torch.no_grad():
        want, want_default = hf(input_ids=ids, token_type_ids=types), hf(input_ids=ids)
    expect_close(_embed(module, ids, types), want, "[CLS] the quick brown fox [SEP] jumps … [SEP]", atol=1e-6)
    expect_close(_embed(module, ids), want_default, "the same ids with token_type_ids=None", atol=1e-6)


# --------------------------------------------------------------------------------------------------
# architectures.nonlinearity
# --------------------------------------------------------------------------------------------------

NONLINEARITY = register(
    Exercise(
        id="architectures.nonlinearity",
        title="Is it linear? Homogeneity and additivity, and where a Transformer's nonlinearity lives",
        names=("is_linear",),
        references=(is_linear,),
        signature='''def is_linear(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Whether f behaves as a linear map at x and y: True iff BOTH
        homogeneity   f(a·x)   ≈ a·f(x)
        additivity    f(x + y) ≈ f(x) + f(y)
    hold, each compared with torch.allclose(..., rtol=rtol, atol=atol) (float rounding makes exact
    equality fail even for a matrix product). f maps a tensor to a tensor (a module in eval mode, say);
    x and y have the same shape; a is any scale other than 0 and 1. Return a Python bool.
    """''',
        hint="ReLU passes homogeneity for a > 0 and fails additivity; an affine map Wx + b fails both; "
        "compute f(x) and f(y) once, under torch.no_grad().",
    )
)


def _seeded_modules(seed: int, build) -> nn.Module:
    """``build()`` on a seeded, forked generator, in float32 whatever the default dtype (a chapter may
    have set float64): the same weights in every session."""
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        _ = torch.manual_seed(seed)
        torch.set_default_dtype(torch.float32)
        try:
            return build()
        finally:
            torch.set_default_dtype(previous)


def _xy(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g, dtype=torch.float32) for _ in range(2))


def _verdict(fn, f, x, y, what: str, want: bool, **kw) -> None:
    got = fn(f, x, y, **kw)
    expect(isinstance(got, bool), f"{what}: expected a Python bool, got {type(got).__name__} {got!r}")
    expect(got is want, f"{what}: expected is_linear(...) = {want}, got {got}")


@NONLINEARITY.check(
    "a bias-free nn.Linear and a float32 matrix product are linear (True), though not exactly"
)
def _lin_linear(fn):
    layer = _seeded_modules(0, lambda: nn.Linear(16, 16, bias=False))
    x, y = _xy((8, 16), seed=1)
    _verdict(fn, layer, x, y, "nn.Linear(16, 16, bias=False)", True)
    w = torch.randn(16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    x, y = _xy((16, 16), seed=3)
    # f(x + y) and f(x) + f(y) differ in the last bits here: torch.equal would wrongly say "not linear".
    _verdict(fn, lambda z: z @ w, x, y, "z ↦ z @ W (float32)", True)
    _verdict(fn, lambda z: z @ w, x, y, "z ↦ z @ W (float32) with a = 3", True, a=3.0)


@NONLINEARITY.check("nn.Linear with a bias is affine, not linear (False)")
def _lin_affine(fn):
    layer = _seeded_modules(4, lambda: nn.Linear(16, 16))
    x, y = _xy((4, 16), seed=5)
    _verdict(fn, layer, x, y, "nn.Linear(16, 16) with its bias", False)


@NONLINEARITY.check("ReLU is not linear: homogeneous for a = 2, but not additive (False)")
def _lin_relu(fn):
    x, y = _xy((4, 32), seed=6)
    _verdict(fn, torch.relu, x, y, "ReLU on inputs of both signs", False)


@NONLINEARITY.check("ReLU on x, y > 0 is additive but fails homogeneity at a = −2: not linear (False)")
def _lin_relu_negative_scale(fn):
    x, y = _xy((4, 32), seed=7)
    _verdict(
        fn, torch.relu, x.abs() + 0.1, y.abs() + 0.1, "ReLU on positive inputs with a = -2", False, a=-2.0
    )
    _verdict(fn, lambda z: 3 * z, x, y, "z ↦ 3z with a = -2", True, a=-2.0)


class _FixedAttention(nn.Module):
    """Attention whose weights P are fixed (not a softmax of the input): ``out_proj(P @ v_proj(h))``."""

    def __init__(self, d: int, t: int) -> None:
        super().__init__()
        self.v_proj, self.out_proj = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.register_buffer("p", torch.softmax(torch.randn(t, t, dtype=torch.float32), dim=-1))

    def forward(self, h: torch.Tensor, **masks: Any) -> torch.Tensor:
        return self.out_proj(self.p @ self.v_proj(h))


def _bert_block(seed: int, *, bias: bool = True, layer_norms: bool = True, fixed_attention: int = 0):
    """A Post-LN BERT block (bidirectional, d = d_ff = 16, 2 heads) whose FFN activation is the identity;
    optionally without its LayerNorms, and with fixed attention weights over ``fixed_attention`` tokens."""

    def build() -> nn.Module:
        attention = _FixedAttention(16, fixed_attention) if fixed_attention else None
        block = TransformerBlock(
            16, 2, d_hidden=16, norm="layernorm", norm_position="post", ffn="mlp", activation="identity",
            bias=bias, causal=False, attention=attention,
        )  # fmt: skip
        if not layer_norms:
            block.ln_1, block.ln_2 = nn.Identity(), nn.Identity()
        return block.eval()

    return _seeded_modules(seed, build)


@NONLINEARITY.check("a Post-LN BERT block with an identity FFN activation is not linear, nor without its LNs")
def _lin_block(fn):
    x, y = _xy((2, 5, 16), seed=8)
    _verdict(fn, _bert_block(9), x, y, "Post-LN block, identity FFN activation (LayerNorm + softmax)", False)
    block = _bert_block(10, bias=False, layer_norms=False)
    _verdict(fn, block, x, y, "the block without biases and LayerNorms (softmax attention remains)", False)


@NONLINEARITY.check("the block without LayerNorms and biases, its attention weights fixed, is linear (True)")
def _lin_block_linear(fn):
    x, y = _xy((2, 5, 16), seed=11)
    block = _bert_block(12, bias=False, layer_norms=False, fixed_attention=5)
    _verdict(fn, block, x, y, "x ↦ h + FFN(h), h = x + P x W_V W_O, identity activation", True)
    _verdict(fn, block, x, y, "the same with a = 0.5", True, a=0.5)


@NONLINEARITY.check("rtol and atol are honoured: z + 1e-3·z² is linear only under rtol = atol = 0.1")
def _lin_tolerance(fn):
    x, y = _xy((4, 16), seed=15)

    def almost(z):
        return z + 1e-3 * z**2

    _verdict(fn, almost, x, y, "z + 1e-3·z² at the default tolerances", False)
    _verdict(fn, almost, x, y, "z + 1e-3·z² with rtol = atol = 0.1", True, rtol=0.1, atol=0.1)


# --------------------------------------------------------------------------------------------------
# architectures.glm-mask
# --------------------------------------------------------------------------------------------------

GLM = register(
    Exercise(
        id="architectures.glm-mask",
        title="GLM's blank-infilling mask and 2-D positions",
        names=("glm_mask", "glm_positions"),
        references=(glm_mask, glm_positions),
        signature='''def glm_mask(len_a, len_b):
    """GLM's self-attention mask over [Part A | Part B] (Du et al., 2022), a bool (T, T) tensor with
    T = len_a + len_b, True where query i may attend key j: a Part A token sees all of Part A and none
    of Part B; a Part B token sees all of Part A and the Part B tokens up to and including itself.
    """

def glm_positions(len_a, spans):
    """GLM's 2-D positions (position_1, position_2): two int64 tensors of length len_a + Σ (n + 1).

    spans: [(mask_position, n), ...] in Part B's order: the 0-based index in Part A of the span's
    [MASK] and the span's length n; Part B holds each span as [START] s_1 … s_n.
    position_1 (0-based, unlike the paper's 1-based figure): a Part A token's index in Part A;
        every Part B token of a span, [START] included, takes its [MASK]'s index.
    position_2: 0 for Part A; 1, 2, …, n + 1 over a span's [START] s_1 … s_n.
    """''',
        hint="the mask is the prefix-LM mask with prefix len_a; for the positions, loop over the spans in "
        "the order given (not sorted), appending [where] * (n + 1) and range(1, n + 2).",
    )
)


def _glm_blocks(len_a: int, len_b: int) -> torch.Tensor:
    """The mask assembled from its four blocks: [[A×A ones, A×B zeros], [B×A ones, B×B lower triangle]]."""
    top = torch.cat([torch.ones(len_a, len_a), torch.zeros(len_a, len_b)], dim=1)
    bottom = torch.cat([torch.ones(len_b, len_a), torch.ones(len_b, len_b).tril()], dim=1)
    return torch.cat([top, bottom]).bool()


def _glm(glm_mask_fn, len_a: int, len_b: int) -> torch.Tensor:
    t = len_a + len_b
    return expect_tensor(
        glm_mask_fn(len_a, len_b), f"glm_mask({len_a}, {len_b})", shape=(t, t), dtype=torch.bool
    )


@GLM.check("glm_mask: a bool (T, T) tensor; Part A rows see all of Part A and none of Part B")
def _glm_part_a(glm_mask, glm_positions):
    for len_a, len_b in ((3, 4), (5, 2), (1, 3)):
        m = _glm(glm_mask, len_a, len_b)
        rows = m[:len_a]
        expect(
            bool(rows[:, :len_a].all()),
            f"glm_mask({len_a}, {len_b}): a Part A row misses a Part A token:\n{_grid(m)}",
        )
        expect(
            not bool(rows[:, len_a:].any()),
            f"glm_mask({len_a}, {len_b}): a Part A row sees Part B:\n{_grid(m)}",
        )


@GLM.check("glm_mask: a Part B row sees all of Part A, and Part B causally, itself included")
def _glm_part_b(glm_mask, glm_positions):
    for len_a, len_b in ((3, 4), (2, 6)):
        m = _glm(glm_mask, len_a, len_b)
        expect(
            bool(m[len_a:, :len_a].all()),
            f"glm_mask({len_a}, {len_b}): a Part B row misses Part A:\n{_grid(m)}",
        )
        want = torch.ones(len_b, len_b, dtype=torch.bool).tril()
        expect(
            torch.equal(m[len_a:, len_a:], want),
            f"glm_mask({len_a}, {len_b}): Part B × Part B should be the lower triangle with its diagonal\n"
            f"{_grid(want)}\ngot\n{_grid(m[len_a:, len_a:])}",
        )


@GLM.check("glm_mask equals its block construction for several sizes; len_b = 0 is all True")
def _glm_blocks_check(glm_mask, glm_positions):
    for len_a, len_b in ((1, 1), (4, 3), (6, 5), (2, 9), (5, 0), (1, 0)):
        _expect_mask(glm_mask(len_a, len_b), _glm_blocks(len_a, len_b), f"glm_mask({len_a}, {len_b})")


@GLM.check("in SDPA: Part A's outputs ignore Part B, and a Part B output ignores later Part B tokens")
def _glm_sdpa(glm_mask, glm_positions):
    len_a, len_b = 4, 5
    mask = _glm(glm_mask, len_a, len_b)
    q, k, v = _qkv(len_a + len_b, seed=20)
    base = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    g = torch.Generator().manual_seed(21)
    cases = (
        (len_a, "Part A's outputs after changing all of Part B"),
        (len_a + 2, "outputs up to Part B's 2nd token after changing the Part B tokens past it"),
    )
    for cut, what in cases:
        k2, v2 = k.clone(), v.clone()
        k2[:, cut:] += 3 * torch.randn(k2[:, cut:].shape, generator=g, dtype=torch.float64)
        v2[:, cut:] += 3 * torch.randn(v2[:, cut:].shape, generator=g, dtype=torch.float64)
        out = F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask)
        expect_close(out[:, :cut], base[:, :cut], what, atol=1e-12)
    v3 = v.clone()
    v3[:, 0] += 1.0
    change = (F.scaled_dot_product_attention(q, k, v3, attn_mask=mask) - base)[:, len_a:].abs().amin().item()
    expect(change > 0, "a Part B output ignored Part A's first token: Part B must see all of Part A")


def _positions(fn, len_a: int, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    out = fn(len_a, spans)
    expect(
        isinstance(out, tuple) and len(out) == 2,
        f"glm_positions must return (position_1, position_2), got {out!r}",
    )
    t = len_a + sum(n + 1 for _, n in spans)
    for name, p in zip(("position_1", "position_2"), out, strict=True):
        expect_tensor(p, f"glm_positions({len_a}, {spans}): {name}", shape=(t,), dtype=torch.int64)
    return out[0].tolist(), out[1].tolist()


@GLM.check("glm_positions reproduce Figure 2 of Du et al. (2022): x1 … x6, spans {x5 x6} then {x3}")
def _glm_figure(glm_mask, glm_positions):
    # Part A = x1 x2 [M] x4 [M]; Part B = [S] x5 x6 [S] x3. The paper's 1-based Position 1 is
    # 1 2 3 4 5 5 5 5 3 3 and Position 2 is 0 0 0 0 0 1 2 3 1 2.
    pos1, pos2 = _positions(glm_positions, 5, [(4, 2), (2, 1)])
    want1, want2 = [0, 1, 2, 3, 4, 4, 4, 4, 2, 2], [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]
    expect(pos1 == want1, f"position_1 (0-based; the paper's minus 1): expected {want1}, got {pos1}")
    expect(pos2 == want2, f"position_2: expected {want2}, got {pos2}")


@GLM.check("glm_positions on other span lists follow the rule; no spans gives 0 … len_a − 1 and zeros")
def _glm_rule(glm_mask, glm_positions):
    cases = ((7, [(1, 3), (5, 1), (3, 2)]), (3, [(0, 4)]), (6, [(5, 1), (0, 2)]), (4, []))
    for len_a, spans in cases:
        want1, want2 = list(range(len_a)), [0] * len_a
        for where, n in spans:
            want1 += [where] * (n + 1)
            want2 += list(range(1, n + 2))
        pos1, pos2 = _positions(glm_positions, len_a, spans)
        expect(pos1 == want1, f"glm_positions({len_a}, {spans}): position_1 expected {want1}, got {pos1}")
        expect(pos2 == want2, f"glm_positions({len_a}, {spans}): position_2 expected {want2}, got {pos2}")
