"""Plausible wrong answers to the Architectures chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import torch
from torch import nn

# --- architectures.masks ---------------------------------------------------------------------------


def bidirectional_ok(t):
    """A correct encoder mask (paired with the wrong ones below)."""
    return torch.ones(t, t, dtype=torch.bool)


def causal_ok(t):
    """A correct causal mask (paired with the wrong ones below)."""
    return torch.ones(t, t, dtype=torch.bool).tril()


def prefix_lm_ok(t, prefix_len):
    """A correct prefix-LM mask (paired with the wrong ones below)."""
    j = torch.arange(t)
    return (j[None, :] < prefix_len) | (j[None, :] <= j[:, None])


def causal_strict_lower(t):
    """Hides the query's own position: only strictly earlier keys (the first row sees nothing)."""
    return torch.ones(t, t, dtype=torch.bool).tril(-1)


def causal_upper_triangle(t):
    """The transposed triangle: each query sees itself and the future."""
    return torch.ones(t, t, dtype=torch.bool).triu()


def bidirectional_float(t):
    """Float 1.0 instead of True (SDPA adds a float mask to the scores)."""
    return torch.ones(t, t)


def causal_float(t):
    """Float 0/1 instead of bool: SDPA adds it to the scores, so nothing is blocked."""
    return torch.ones(t, t).tril()


def prefix_lm_float(t, prefix_len):
    """Float 0/1 instead of bool."""
    return prefix_lm_ok(t, prefix_len).float()


def bidirectional_blocked_convention(t):
    """True = blocked (the additive-mask habit): nothing blocked is all False."""
    return torch.zeros(t, t, dtype=torch.bool)


def causal_blocked_convention(t):
    """True = blocked: marks the future instead of the visible keys."""
    return torch.ones(t, t, dtype=torch.bool).triu(1)


def prefix_lm_blocked_convention(t, prefix_len):
    """True = blocked."""
    return ~prefix_lm_ok(t, prefix_len)


def prefix_lm_ignores_prefix(t, prefix_len):
    """Ignores prefix_len: plain causal."""
    return torch.ones(t, t, dtype=torch.bool).tril()


def prefix_lm_prefix_rows_see_all(t, prefix_len):
    """Lets the prefix's own rows see the whole sequence, target tokens included."""
    i = torch.arange(t)[:, None]
    return prefix_lm_ok(t, prefix_len) | (i < prefix_len)


def prefix_lm_off_by_one(t, prefix_len):
    """j <= prefix_len: one key too many in the bidirectional prefix."""
    j = torch.arange(t)
    return (j[None, :] <= prefix_len) | (j[None, :] <= j[:, None])


# --- architectures.mlm-masking ---------------------------------------------------------------------


def _draws(input_ids, generator):
    u = torch.rand(input_ids.shape, generator=generator)
    v = torch.rand(input_ids.shape, generator=generator)
    return u, v


def _maskable(input_ids, special_ids, attention_mask):
    maskable = ~torch.isin(input_ids, torch.tensor(list(special_ids), dtype=input_ids.dtype))
    if attention_mask is not None:
        maskable &= attention_mask.bool()
    return maskable


def _corrupt(input_ids, chosen, v, random_ids, mask_id, p_mask=0.8, p_random=0.1):
    inputs = torch.where(chosen & (v < p_mask), torch.full_like(input_ids, mask_id), input_ids)
    return torch.where(chosen & (v >= p_mask) & (v < p_mask + p_random), random_ids, inputs)


def _mlm(
    input_ids,
    mask_id,
    vocab_size,
    special_ids,
    attention_mask,
    probability,
    generator,
    *,
    p_mask=0.8,
    p_random=0.1,
    maskable=None,
    random_ids=None,
):
    u, v = _draws(input_ids, generator)
    if random_ids is None:
        random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator)
    if maskable is None:
        maskable = _maskable(input_ids, special_ids, attention_mask)
    chosen = maskable & (u < probability)
    inputs = _corrupt(input_ids, chosen, v, random_ids, mask_id, p_mask, p_random)
    return inputs, torch.where(chosen, input_ids, torch.full_like(input_ids, -100)), chosen


def mlm_always_mask(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Replaces every chosen token with [MASK] (100/0/0)."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, labels, _ = _mlm(*args, p_mask=1.0, p_random=0.0)
    return inputs, labels


def mlm_90_10_0(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """90% [MASK] and 10% random: never keeps a chosen token unchanged."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, labels, _ = _mlm(*args, p_mask=0.9, p_random=0.1)
    return inputs, labels


def mlm_selects_special_tokens(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Ignores special_ids: [CLS] and [SEP] get masked and predicted too."""
    args = (input_ids, mask_id, vocab_size, (), attention_mask, probability, generator)
    inputs, labels, _ = _mlm(*args)
    return inputs, labels


def mlm_ignores_attention_mask(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Ignores attention_mask: padding that does not hold a special id can be chosen."""
    args = (input_ids, mask_id, vocab_size, special_ids, None, probability, generator)
    inputs, labels, _ = _mlm(*args)
    return inputs, labels


def mlm_labels_everywhere(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Labels every position with its id instead of -100 outside the chosen ones."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, _, _ = _mlm(*args)
    return inputs, input_ids.clone()


def mlm_labels_hold_corrupted_ids(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Takes the labels from the corrupted inputs ([MASK], random ids) instead of the originals."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, _, chosen = _mlm(*args)
    return inputs, torch.where(chosen, inputs, torch.full_like(input_ids, -100))


def mlm_modifies_input_in_place(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Writes the corruption into input_ids itself and returns it."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, labels, _ = _mlm(*args)
    input_ids.copy_(inputs)
    return input_ids, labels


def mlm_fixed_probability(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Always chooses 15%, whatever probability says."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, 0.15, generator)
    inputs, labels, _ = _mlm(*args)
    return inputs, labels


def mlm_one_random_id(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Draws one random id and puts it at every randomly replaced position."""
    random_ids = torch.randint(0, vocab_size, (1,), generator=generator).expand(input_ids.shape)
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    inputs, labels, _ = _mlm(*args, random_ids=random_ids)
    return inputs, labels


def mlm_corrupts_unchosen(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Applies the 80/10/10 split to every maskable token, not only the chosen 15%."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, generator)
    _, labels, _ = _mlm(*args)
    maskable = _maskable(input_ids, special_ids, attention_mask)
    v = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator)
    return _corrupt(input_ids, maskable, v, random_ids, mask_id), labels


def mlm_ignores_generator(
    input_ids, *, mask_id, vocab_size, special_ids=(), attention_mask=None, probability=0.15, generator=None
):
    """Draws from torch's global generator instead of the one given."""
    args = (input_ids, mask_id, vocab_size, special_ids, attention_mask, probability, None)
    inputs, labels, _ = _mlm(*args)
    return inputs, labels


# --- architectures.nsp-pairs -----------------------------------------------------------------------


def _pick(n, generator):
    return int(torch.randint(0, n, (1,), generator=generator))


def _pairs(documents, n_pairs, generator, random_b, *, check=True, flip=False, always_next=False):
    docs = [list(d) for d in documents]
    if check and len(docs) < 2:
        raise ValueError("documents: expected at least 2 documents")
    pairs = []
    for i in range(n_pairs):
        d = _pick(len(docs), generator)
        s = _pick(len(docs[d]) - 1, generator)
        if i % 2 == 0 or always_next:
            pairs.append((docs[d][s], docs[d][s + 1], 1 if flip else 0))
        else:
            pairs.append((docs[d][s], random_b(docs, d, generator), 0 if flip else 1))
    return pairs


def _other_document(docs, d, generator):
    other = (d + 1 + _pick(len(docs) - 1, generator)) % len(docs)
    return docs[other][_pick(len(docs[other]), generator)]


def nsp_notnext_from_same_document(documents, n_pairs, *, generator=None):
    """NotNext B is a random sentence of A's own document."""
    return _pairs(documents, n_pairs, generator, lambda docs, d, g: docs[d][_pick(len(docs[d]), g)])


def nsp_notnext_from_whole_corpus(documents, n_pairs, *, generator=None):
    """NotNext B is a random sentence of any document, A's own included (sometimes the next one)."""

    def any_sentence(docs, d, g):
        e = _pick(len(docs), g)
        return docs[e][_pick(len(docs[e]), g)]

    return _pairs(documents, n_pairs, generator, any_sentence)


def nsp_labels_flipped(documents, n_pairs, *, generator=None):
    """Labels IsNext 1 and NotNext 0 (the opposite of BertForPreTraining's next_sentence_label)."""
    return _pairs(documents, n_pairs, generator, _other_document, flip=True)


def nsp_always_is_next(documents, n_pairs, *, generator=None):
    """Only IsNext pairs: the classifier has nothing to learn."""
    return _pairs(documents, n_pairs, generator, _other_document, always_next=True)


def nsp_no_error_for_one_document(documents, n_pairs, *, generator=None):
    """With one document, silently takes NotNext Bs from it instead of raising."""

    def other_or_same(docs, d, g):
        if len(docs) == 1:
            return docs[0][_pick(len(docs[0]), g)]
        return _other_document(docs, d, g)

    if not documents:
        raise ValueError("documents: empty")
    return _pairs(documents, n_pairs, generator, other_or_same, check=False)


def nsp_notnext_first_sentence_of_next_document(documents, n_pairs, *, generator=None):
    """NotNext B is always the first sentence of the following document: not random."""
    return _pairs(documents, n_pairs, generator, lambda docs, d, g: docs[(d + 1) % len(docs)][0])


def nsp_ignores_generator(documents, n_pairs, *, generator=None):
    """Draws from torch's global generator instead of the one given."""
    return _pairs(documents, n_pairs, None, _other_document)


def nsp_ok(documents, n_pairs, *, generator=None):
    """Correct pairs (paired with the wrong segment ids below)."""
    return _pairs(documents, n_pairs, generator, _other_document)


def segment_ids_ok(len_a, len_b=0):
    """Correct segment ids (paired with the wrong pairs above)."""
    return torch.tensor([0] * (len_a + 2) + [1] * (len_b + 1 if len_b else 0))


def segment_ids_all_zero(len_a, len_b=0):
    """Every token in segment 0."""
    return torch.zeros(len_a + 2 + (len_b + 1 if len_b else 0), dtype=torch.int64)


def segment_ids_first_sep_in_b(len_a, len_b=0):
    """Counts the [SEP] after A as part of B (segment 1)."""
    if not len_b:
        return torch.zeros(len_a + 2, dtype=torch.int64)
    return torch.tensor([0] * (len_a + 1) + [1] * (len_b + 2))


def segment_ids_cls_in_b(len_a, len_b=0):
    """Puts [CLS] in segment 1 (it is sentence A's, segment 0)."""
    ids = segment_ids_ok(len_a, len_b)
    ids[0] = 1
    return ids


def segment_ids_final_sep_zero(len_a, len_b=0):
    """Gives B's closing [SEP] segment 0."""
    ids = segment_ids_ok(len_a, len_b)
    ids[-1] = 0
    return ids


def segment_ids_single_sentence_gets_b_sep(len_a, len_b=0):
    """Always appends B's [SEP], even for a single sentence."""
    return torch.tensor([0] * (len_a + 2) + [1] * (len_b + 1))


def segment_ids_as_list(len_a, len_b=0):
    """Returns a Python list instead of a tensor."""
    return segment_ids_ok(len_a, len_b).tolist()


# --- architectures.bert-embeddings -----------------------------------------------------------------


class _Embeddings(nn.Module):
    def __init__(self, vocab_size, max_len, d_model, n_segments=2, eps=1e-12, *, pad_token_id=0):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.token_type_embeddings = nn.Embedding(n_segments, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def _parts(self, input_ids, token_type_ids, first_position=0):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(first_position, first_position + input_ids.shape[1])
        tok = self.word_embeddings(input_ids)
        return tok, self.token_type_embeddings(token_type_ids), self.position_embeddings(positions)


class EmbeddingsNoLayerNorm(_Embeddings):
    """Returns the sum of the three embeddings without the LayerNorm."""

    def forward(self, input_ids, token_type_ids=None):
        tok, seg, pos = self._parts(input_ids, token_type_ids)
        return tok + seg + pos


class EmbeddingsNormBeforeSum(_Embeddings):
    """Normalizes the token embedding, then adds the segment and position embeddings."""

    def forward(self, input_ids, token_type_ids=None):
        tok, seg, pos = self._parts(input_ids, token_type_ids)
        return self.norm(tok) + seg + pos


class EmbeddingsNoSegment(_Embeddings):
    """Drops the segment (token-type) embedding."""

    def forward(self, input_ids, token_type_ids=None):
        tok, _, pos = self._parts(input_ids, token_type_ids)
        return self.norm(tok + pos)


class EmbeddingsPositionsFromOne(_Embeddings):
    """Counts positions from 1 (reads rows 1 … T of the position table)."""

    def forward(self, input_ids, token_type_ids=None):
        tok, seg, pos = self._parts(input_ids, token_type_ids, first_position=1)
        return self.norm(tok + seg + pos)


class EmbeddingsTorchDefaultEps(_Embeddings):
    """Uses nn.LayerNorm's default eps = 1e-5 instead of BERT's 1e-12."""

    def __init__(self, vocab_size, max_len, d_model, n_segments=2, eps=1e-12, *, pad_token_id=0):
        super().__init__(vocab_size, max_len, d_model, n_segments, 1e-5, pad_token_id=pad_token_id)

    def forward(self, input_ids, token_type_ids=None):
        tok, seg, pos = self._parts(input_ids, token_type_ids)
        return self.norm(tok + seg + pos)


class EmbeddingsClampsSegments(_Embeddings):
    """Clamps segment ids into [0, n_segments) instead of refusing bad ones."""

    def forward(self, input_ids, token_type_ids=None):
        if token_type_ids is not None:
            token_type_ids = token_type_ids.clamp(0, self.token_type_embeddings.num_embeddings - 1)
        tok, seg, pos = self._parts(input_ids, token_type_ids)
        return self.norm(tok + seg + pos)


# --- architectures.nonlinearity --------------------------------------------------------------------


def _sides(f, x, y, a):
    with torch.no_grad():
        fx, fy = f(x), f(y)
        return (f(a * x), a * fx), (f(x + y), fx + fy)


def is_linear_homogeneity_only(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Tests f(a·x) = a·f(x) only (ReLU passes for a > 0)."""
    (h1, h2), _ = _sides(f, x, y, a)
    return bool(torch.allclose(h1, h2, rtol=rtol, atol=atol))


def is_linear_additivity_only(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Tests f(x + y) = f(x) + f(y) only (ReLU passes on positive inputs)."""
    _, (s1, s2) = _sides(f, x, y, a)
    return bool(torch.allclose(s1, s2, rtol=rtol, atol=atol))


def is_linear_exact_equality(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Compares with torch.equal: float rounding makes even a matrix product "nonlinear"."""
    (h1, h2), (s1, s2) = _sides(f, x, y, a)
    return bool(torch.equal(h1, h2) and torch.equal(s1, s2))


def is_linear_zero_maps_to_zero(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Checks only f(0) = 0, which ReLU (and many nonlinear maps) satisfy."""
    with torch.no_grad():
        out = f(torch.zeros_like(x))
    return bool(torch.allclose(out, torch.zeros_like(out), rtol=rtol, atol=atol))


def is_linear_inverted(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Returns True when a test fails: the answer is the wrong way round."""
    (h1, h2), (s1, s2) = _sides(f, x, y, a)
    return not (torch.allclose(h1, h2, rtol=rtol, atol=atol) and torch.allclose(s1, s2, rtol=rtol, atol=atol))


def is_linear_returns_tensor(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Right verdict, but as a 0-d bool tensor instead of a Python bool."""
    (h1, h2), (s1, s2) = _sides(f, x, y, a)
    return ((h1 - h2).abs() <= atol + rtol * h2.abs()).all() & (
        (s1 - s2).abs() <= atol + rtol * s2.abs()
    ).all()


def is_linear_scale_fixed_at_two(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Tests homogeneity with a = 2 whatever a is given (ReLU on positive inputs then looks linear)."""
    (h1, h2), (s1, s2) = _sides(f, x, y, 2.0)
    return bool(torch.allclose(h1, h2, rtol=rtol, atol=atol) and torch.allclose(s1, s2, rtol=rtol, atol=atol))


def is_linear_default_tolerances(f, x, y, a=2.0, *, rtol=1e-4, atol=1e-5):
    """Ignores rtol and atol (torch.allclose's own defaults instead)."""
    (h1, h2), (s1, s2) = _sides(f, x, y, a)
    return bool(torch.allclose(h1, h2) and torch.allclose(s1, s2))


# --- architectures.glm-mask ------------------------------------------------------------------------


def _blocks(len_a, len_b, *, a_sees_b=False, b_block=None):
    t = len_a + len_b
    m = torch.zeros(t, t, dtype=torch.bool)
    m[:, :len_a] = True
    if a_sees_b:
        m[:len_a, len_a:] = True
    m[len_a:, len_a:] = torch.ones(len_b, len_b, dtype=torch.bool).tril() if b_block is None else b_block
    return m


def glm_mask_ok(len_a, len_b):
    """A correct GLM mask (paired with the wrong positions below)."""
    return _blocks(len_a, len_b)


def glm_mask_b_bidirectional(len_a, len_b):
    """Part B sees all of Part B, later tokens included (it would see the answers it must predict)."""
    return _blocks(len_a, len_b, b_block=torch.ones(len_b, len_b, dtype=torch.bool))


def glm_mask_a_sees_b(len_a, len_b):
    """Part A sees Part B too (the spans leak into the corrupted text)."""
    return _blocks(len_a, len_b, a_sees_b=True)


def glm_mask_b_without_self(len_a, len_b):
    """Part B sees only strictly earlier Part B tokens, not itself."""
    return _blocks(len_a, len_b, b_block=torch.ones(len_b, len_b, dtype=torch.bool).tril(-1))


def glm_mask_causal_everywhere(len_a, len_b):
    """Causal over the whole sequence: Part A is no longer bidirectional."""
    t = len_a + len_b
    return torch.ones(t, t, dtype=torch.bool).tril()


def _positions(len_a, spans, *, first_pos2=1, sequential=False, one_based=False, reset=True):
    pos1, pos2 = list(range(len_a)), [0] * len_a
    count = first_pos2
    for where, n in spans:
        if reset:
            count = first_pos2
        if sequential:
            pos1 += list(range(len(pos1), len(pos1) + n + 1))
        else:
            pos1 += [where] * (n + 1)
        pos2 += list(range(count, count + n + 1))
        count += n + 1
    p1 = torch.tensor(pos1, dtype=torch.int64) + (1 if one_based else 0)
    return p1, torch.tensor(pos2, dtype=torch.int64)


def glm_positions_ok(len_a, spans):
    """Correct 2-D positions (paired with the wrong masks above)."""
    return _positions(len_a, spans)


def glm_positions_pos2_from_zero(len_a, spans):
    """Position 2 counts 0 … n within a span, so [START] looks like a Part A token."""
    return _positions(len_a, spans, first_pos2=0)


def glm_positions_pos1_sequential(len_a, spans):
    """Gives span tokens sequential positions past Part A (this leaks each span's length)."""
    return _positions(len_a, spans, sequential=True)


def glm_positions_pos1_one_based(len_a, spans):
    """Copies the paper's 1-based figure instead of the 0-based convention asked for."""
    return _positions(len_a, spans, one_based=True)


def glm_positions_pos2_not_reset(len_a, spans):
    """Position 2 keeps counting across spans instead of restarting at 1."""
    return _positions(len_a, spans, reset=False)


def glm_positions_spans_sorted(len_a, spans):
    """Sorts the spans by position instead of keeping Part B's (shuffled) order."""
    return _positions(len_a, sorted(spans))


MUTANTS = {
    "architectures.masks": [
        (bidirectional_ok, causal_strict_lower, prefix_lm_ok),
        (bidirectional_ok, causal_upper_triangle, prefix_lm_ok),
        (bidirectional_float, causal_float, prefix_lm_float),
        (bidirectional_ok, causal_float, prefix_lm_ok),
        (bidirectional_blocked_convention, causal_blocked_convention, prefix_lm_blocked_convention),
        (bidirectional_ok, causal_ok, prefix_lm_ignores_prefix),
        (bidirectional_ok, causal_ok, prefix_lm_prefix_rows_see_all),
        (bidirectional_ok, causal_ok, prefix_lm_off_by_one),
    ],
    "architectures.mlm-masking": [
        mlm_always_mask,
        mlm_90_10_0,
        mlm_selects_special_tokens,
        mlm_ignores_attention_mask,
        mlm_labels_everywhere,
        mlm_labels_hold_corrupted_ids,
        mlm_modifies_input_in_place,
        mlm_fixed_probability,
        mlm_one_random_id,
        mlm_corrupts_unchosen,
        mlm_ignores_generator,
    ],
    "architectures.nsp-pairs": [
        (nsp_notnext_from_same_document, segment_ids_ok),
        (nsp_notnext_from_whole_corpus, segment_ids_ok),
        (nsp_labels_flipped, segment_ids_ok),
        (nsp_always_is_next, segment_ids_ok),
        (nsp_no_error_for_one_document, segment_ids_ok),
        (nsp_notnext_first_sentence_of_next_document, segment_ids_ok),
        (nsp_ignores_generator, segment_ids_ok),
        (nsp_ok, segment_ids_all_zero),
        (nsp_ok, segment_ids_first_sep_in_b),
        (nsp_ok, segment_ids_cls_in_b),
        (nsp_ok, segment_ids_final_sep_zero),
        (nsp_ok, segment_ids_single_sentence_gets_b_sep),
        (nsp_ok, segment_ids_as_list),
    ],
    "architectures.bert-embeddings": [
        EmbeddingsNoLayerNorm,
        EmbeddingsNormBeforeSum,
        EmbeddingsNoSegment,
        EmbeddingsPositionsFromOne,
        EmbeddingsTorchDefaultEps,
        EmbeddingsClampsSegments,
    ],
    "architectures.nonlinearity": [
        is_linear_homogeneity_only,
        is_linear_additivity_only,
        is_linear_exact_equality,
        is_linear_zero_maps_to_zero,
        is_linear_inverted,
        is_linear_returns_tensor,
        is_linear_scale_fixed_at_two,
        is_linear_default_tolerances,
    ],
    "architectures.glm-mask": [
        (glm_mask_b_bidirectional, glm_positions_ok),
        (glm_mask_a_sees_b, glm_positions_ok),
        (glm_mask_b_without_self, glm_positions_ok),
        (glm_mask_causal_everywhere, glm_positions_ok),
        (glm_mask_ok, glm_positions_pos2_from_zero),
        (glm_mask_ok, glm_positions_pos1_sequential),
        (glm_mask_ok, glm_positions_pos1_one_based),
        (glm_mask_ok, glm_positions_pos2_not_reset),
        (glm_mask_ok, glm_positions_spans_sorted),
    ],
}
