"""Plausible wrong answers to the Attention chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import math

import torch
from torch import nn

from companion.nn.attention import MultiHeadAttention, merge_heads, split_heads
from companion.nn.masks import causal
from companion.nn.score_scaling import N_KEYS, softmax_jacobian_norm
from companion.nn.sdpa import scaled_dot_product_attention

# --- attention.sdpa --------------------------------------------------------------------------------


def _masked_scores(q, k, mask, is_causal, scale):
    scores = q @ k.transpose(-2, -1) * scale
    blocked = torch.zeros(scores.shape, dtype=torch.bool)
    if mask is not None:
        blocked = blocked | ~mask
    if is_causal:
        blocked = blocked | torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    return scores, blocked


def sdpa_no_scaling(q, k, v, mask=None, is_causal=False):
    """Forgets the 1/sqrt(d_k) factor."""
    return scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, scale=1.0)


def sdpa_mask_after_softmax(q, k, v, mask=None, is_causal=False):
    """Applies the mask to the probabilities instead of the scores (rows no longer sum to 1)."""
    scores, blocked = _masked_scores(q, k, mask, is_causal, 1 / math.sqrt(q.shape[-1]))
    w = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0)
    return w @ v, w


def sdpa_softmax_wrong_axis(q, k, v, mask=None, is_causal=False):
    """Normalizes over the queries (dim -2) instead of the keys."""
    scores, blocked = _masked_scores(q, k, mask, is_causal, 1 / math.sqrt(q.shape[-1]))
    w = torch.softmax(scores.masked_fill(blocked, -1e30), dim=-2).masked_fill(blocked, 0.0)
    return w @ v, w


def sdpa_neg_inf_nan(q, k, v, mask=None, is_causal=False):
    """Masks with -inf and nothing else: a fully masked row becomes NaN."""
    scores, blocked = _masked_scores(q, k, mask, is_causal, 1 / math.sqrt(q.shape[-1]))
    w = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1)
    return w @ v, w


def sdpa_inverted_mask(q, k, v, mask=None, is_causal=False):
    """Reads the boolean mask as True = blocked."""
    return scaled_dot_product_attention(q, k, v, mask=None if mask is None else ~mask, is_causal=is_causal)


def sdpa_causal_without_diagonal(q, k, v, mask=None, is_causal=False):
    """Causal mask that also hides the query's own position (only strictly earlier tokens)."""
    if is_causal:
        t_q, t_k = q.shape[-2], k.shape[-2]
        strict = causal(t_q, t_k, offset=-1)
        strict[0, 0] = True  # keep the first row non-empty
        mask = strict if mask is None else mask & strict
    return scaled_dot_product_attention(q, k, v, mask=mask)


# --- attention.padding-mask ------------------------------------------------------------------------


def padding_off_by_one(lengths, L):
    return (torch.arange(L)[None, :] <= torch.as_tensor(lengths)[:, None])[:, None, None, :]


def padding_inverted(lengths, L):
    return (torch.arange(L)[None, :] >= torch.as_tensor(lengths)[:, None])[:, None, None, :]


def padding_masks_queries(lengths, L):
    """Puts the padding on the query axis: (B, 1, L, 1)."""
    return (torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None])[:, None, :, None]


def combine_or(pad, causal_mask):
    return pad | causal_mask


def combine_and(pad, causal_mask):
    return pad & causal_mask


def padding_correct(lengths, L):
    return (torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None])[:, None, None, :]


# --- attention.scaling-stats -----------------------------------------------------------------------


def _stats_from_logits(z):
    p = torch.softmax(z, dim=-1)
    entropy = -(p * torch.log_softmax(z, dim=-1)).sum(-1).mean()
    return p, float(z.var()), float(entropy)


def _draw(d_k, n, generator):
    q = torch.randn(n, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(N_KEYS, d_k, generator=generator, dtype=torch.float64)
    return q @ k.T


def stats_divide_by_d(d_k, n, scaled, generator):
    """Scales by 1/d_k instead of 1/sqrt(d_k)."""
    z = _draw(d_k, n, generator)
    z = z / d_k if scaled else z
    p, var, ent = _stats_from_logits(z)
    return var, ent, float(softmax_jacobian_norm(p).mean())


def stats_ignores_flag(d_k, n, scaled, generator):
    """Always scales."""
    z = _draw(d_k, n, generator) / math.sqrt(d_k)
    p, var, ent = _stats_from_logits(z)
    return var, ent, float(softmax_jacobian_norm(p).mean())


def stats_diagonal_jacobian(d_k, n, scaled, generator):
    """Uses diag(p) as the softmax Jacobian (forgets -p pᵀ), which does not vanish at saturation."""
    z = _draw(d_k, n, generator)
    z = z / math.sqrt(d_k) if scaled else z
    p, var, ent = _stats_from_logits(z)
    return var, ent, float(p.pow(2).sum(-1).sqrt().mean())


def stats_entropy_bits(d_k, n, scaled, generator):
    """Entropy in bits rather than nats."""
    z = _draw(d_k, n, generator)
    z = z / math.sqrt(d_k) if scaled else z
    p, var, ent = _stats_from_logits(z)
    return var, ent / math.log(2), float(softmax_jacobian_norm(p).mean())


# --- attention.multi-head --------------------------------------------------------------------------


class _MHABase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.h, self.d = n_heads, d_model
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))


class MHANoOutProj(_MHABase):
    """Forgets W_O."""

    def forward(self, x):
        q, k, v = (split_heads(p(x), self.h) for p in (self.q_proj, self.k_proj, self.v_proj))
        return merge_heads(scaled_dot_product_attention(q, k, v)[0]), None


class MHAReshapeNoTranspose(_MHABase):
    """Splits heads with a bare reshape (B, T, d) -> (B, H, T, d_h), mixing tokens across heads."""

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (
            p(x).reshape(b, self.h, t, self.d // self.h) for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = scaled_dot_product_attention(q, k, v)[0].reshape(b, t, self.d)
        return self.out_proj(out), None


class MHAScaleByDModel(_MHABase):
    """Divides the scores by sqrt(d_model) instead of sqrt(d_h)."""

    def forward(self, x):
        q, k, v = (split_heads(p(x), self.h) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(self.d))[0]
        return self.out_proj(merge_heads(out)), None


class MHANoDivisibilityCheck(MultiHeadAttention):
    """Silently floors the head width instead of refusing d_model % n_heads != 0."""

    def __init__(self, d_model, n_heads):
        super().__init__(d_model - d_model % n_heads, n_heads)


# --- attention.causality ---------------------------------------------------------------------------


def _check_positions(model, ids, vocab_size, positions, perturb_from_offset=1, atol=1e-6):
    with torch.no_grad():
        base = model(ids)
        for t in positions:
            start = t + perturb_from_offset
            if start >= ids.shape[1]:
                continue
            p = ids.clone()
            p[:, start:] = (p[:, start:] + 1) % vocab_size
            if not torch.allclose(model(p)[:, : t + 1], base[:, : t + 1], atol=atol):
                raise AssertionError(f"leak at {t}")


def causal_only_last_token(model, ids, vocab_size):
    """Perturbs only the final token."""
    with torch.no_grad():
        base = model(ids)
        p = ids.clone()
        p[:, -1] = (p[:, -1] + 1) % vocab_size
        if not torch.allclose(model(p)[:, :-1], base[:, :-1], atol=1e-6):
            raise AssertionError("leak")


def causal_includes_current(model, ids, vocab_size):
    """Perturbs tokens >= t instead of > t (flags every causal model)."""
    _check_positions(model, ids, vocab_size, range(ids.shape[1]), perturb_from_offset=0)


def causal_only_first_position(model, ids, vocab_size):
    """Checks t = 0 only."""
    _check_positions(model, ids, vocab_size, [0])


def causal_loose_tolerance(model, ids, vocab_size):
    """Tolerates changes up to 10."""
    _check_positions(model, ids, vocab_size, range(ids.shape[1]), atol=10.0)


# --- attention.cross-attention ---------------------------------------------------------------------


class CrossCausal(MultiHeadAttention):
    """Applies a causal mask in cross-attention."""

    def forward(self, x, enc, src_mask=None):
        return super().forward(x, enc, key_mask=src_mask, is_causal=True)


class CrossIgnoresMask(MultiHeadAttention):
    """Ignores the source padding mask."""

    def forward(self, x, enc, src_mask=None):
        return super().forward(x, enc)


class CrossQueriesFromEncoder(MultiHeadAttention):
    """Takes the queries from the encoder and the keys/values from the decoder."""

    def forward(self, x, enc, src_mask=None):
        return super().forward(enc, x)


class CrossInvertedMask(MultiHeadAttention):
    """Treats True in the source mask as padding."""

    def forward(self, x, enc, src_mask=None):
        return super().forward(x, enc, key_mask=None if src_mask is None else ~src_mask)


MUTANTS = {
    "attention.sdpa": [
        sdpa_no_scaling,
        sdpa_mask_after_softmax,
        sdpa_softmax_wrong_axis,
        sdpa_neg_inf_nan,
        sdpa_inverted_mask,
        sdpa_causal_without_diagonal,
    ],
    "attention.padding-mask": [
        (padding_off_by_one, combine_and),
        (padding_inverted, combine_and),
        (padding_masks_queries, combine_and),
        (padding_correct, combine_or),
    ],
    "attention.scaling-stats": [
        stats_divide_by_d,
        stats_ignores_flag,
        stats_diagonal_jacobian,
        stats_entropy_bits,
    ],
    "attention.multi-head": [MHANoOutProj, MHAReshapeNoTranspose, MHAScaleByDModel, MHANoDivisibilityCheck],
    "attention.causality": [
        causal_only_last_token,
        causal_includes_current,
        causal_only_first_position,
        causal_loose_tolerance,
    ],
    "attention.cross-attention": [CrossCausal, CrossIgnoresMask, CrossQueriesFromEncoder, CrossInvertedMask],
}
