"""Plausible wrong answers to the Efficient attention chapter's exercises: each must fail a check."""

from __future__ import annotations

import math

import torch
from torch import nn

from companion.grading.exercises.efficient_attention import _ReferenceToyMLA
from companion.nn.attention import GroupedQueryAttention, mean_pool_kv_heads
from companion.nn.kv_cache import kv_cache_bytes
from companion.nn.linformer import linformer
from companion.nn.masks import block_sparse, sliding_window
from companion.nn.mla import rope_half

# --- efficient-attention.gqa-kv-cache ----------------------------------------------------------------


class _GQABase(nn.Module):
    def __init__(self, d_model, n_heads, n_kv_heads):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError("n_heads must be divisible by n_kv_heads")
        self.h, self.g, self.d_h = n_heads, n_kv_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.d_h, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.d_h, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def _expand(self, k):
        return k.repeat_interleave(self.h // self.g, dim=1)

    def _scale(self):
        return 1 / math.sqrt(self.d_h)

    def forward(self, x, is_causal=False):
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.d_h).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.g, self.d_h).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.g, self.d_h).transpose(1, 2)
        k, v = self._expand(k), self._expand(v)
        s = q @ k.transpose(-2, -1) * self._scale()
        if is_causal:
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return self.out_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)), None


class GQATiledHeads(_GQABase):
    """Query head h reads KV head h % G (``repeat`` instead of ``repeat_interleave``)."""

    def _expand(self, k):
        return k.repeat(1, self.h // self.g, 1, 1)


class GQAScaleByDModel(_GQABase):
    """Divides the scores by sqrt(d_model) instead of sqrt(d_h)."""

    def _scale(self):
        return 1 / math.sqrt(self.h * self.d_h)


class GQANoDivisibilityCheck(GroupedQueryAttention):
    """Falls back to MQA instead of refusing n_heads % n_kv_heads != 0."""

    def __init__(self, d_model, n_heads, n_kv_heads):
        super().__init__(d_model, n_heads, n_kv_heads if n_heads % n_kv_heads == 0 else 1)


class GQAFullKV(GroupedQueryAttention):
    """Keeps H key/value heads and only *pretends* to group them (no memory saved)."""

    def __init__(self, d_model, n_heads, n_kv_heads):
        if n_heads % n_kv_heads:
            raise ValueError("n_heads must be divisible by n_kv_heads")
        super().__init__(d_model, n_heads, n_heads)


def kv_bytes_keys_only(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    """Forgets that the values are cached too (no factor 2)."""
    return n_layers * n_kv_heads * head_dim * dtype.itemsize * seq_len * batch_size


def kv_bytes_fixed_fp32(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    """Assumes 4 bytes per element whatever the dtype."""
    return 2 * n_layers * n_kv_heads * head_dim * 4 * seq_len * batch_size


def kv_bytes_ignores_batch(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    return 2 * n_layers * n_kv_heads * head_dim * dtype.itemsize * seq_len


def _kv_ok(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    return kv_cache_bytes(n_layers, n_kv_heads, head_dim, dtype=dtype, seq_len=seq_len, batch_size=batch_size)


def convert_interleaved_groups(weight, n_heads, n_kv_heads):
    """Groups heads g, g + G, g + 2G, … instead of consecutive heads."""
    d_h = weight.shape[0] // n_heads
    w = weight.reshape(n_heads // n_kv_heads, n_kv_heads, d_h, -1).mean(0)
    return w.reshape(n_kv_heads * d_h, -1)


def convert_sum(weight, n_heads, n_kv_heads):
    """Sums the heads of a group instead of averaging them."""
    return mean_pool_kv_heads(weight, n_heads, n_kv_heads) * (n_heads // n_kv_heads)


def convert_first_head(weight, n_heads, n_kv_heads):
    """Keeps the first head of each group (a valid initialization, but not mean pooling)."""
    d_h = weight.shape[0] // n_heads
    return weight.reshape(n_kv_heads, n_heads // n_kv_heads, d_h, -1)[:, 0].reshape(n_kv_heads * d_h, -1)


# --- efficient-attention.mla -------------------------------------------------------------------------


class MLAScaleWithoutRope(_ReferenceToyMLA):
    """Scales the scores by 1/sqrt(d_h), forgetting the d_rope rotary dimensions."""

    def forward(self, x, absorb=False):
        d_r = self.d_rope
        b, t, _ = x.shape
        h, d_h = self.n_heads, self.head_dim
        pos = torch.arange(t)
        lat = self.latents(x)
        c, k_r = lat[..., : self.d_latent], lat[..., self.d_latent :]
        q = torch.cat(
            [
                self.q_proj(x).view(b, t, h, d_h).transpose(1, 2),
                rope_half(self.q_rope(x).view(b, t, h, d_r).transpose(1, 2), pos),
            ],
            -1,
        )
        k = torch.cat(
            [self.up_k(c).view(b, t, h, d_h).transpose(1, 2), k_r.unsqueeze(1).expand(b, h, t, d_r)], -1
        )
        v = self.up_v(c).view(b, t, h, d_h).transpose(1, 2)
        s = q @ k.transpose(-2, -1) / math.sqrt(d_h)
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return self.out_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h * d_h))


class MLAAbsorbDropsRope(_ReferenceToyMLA):
    """The absorbed path scores only the content part and forgets the decoupled RoPE key."""

    def forward(self, x, absorb=False):
        if not absorb:
            return super().forward(x)
        saved = self.d_rope
        self.d_rope = 0  # the absorbed scores lose the rotary dimensions
        try:
            return super().forward(x, absorb=True)
        finally:
            self.d_rope = saved


class MLAKeyNotRotated(_ReferenceToyMLA):
    """Caches the rotary key without rotating it (positions are lost)."""

    def latents(self, x, positions=None):
        return torch.cat([self.down_kv(x), self.k_rope(x)], dim=-1)


class MLANotCausal(_ReferenceToyMLA):
    """Forgets the causal mask."""

    def forward(self, x, absorb=False):
        return super(_ReferenceToyMLA, self).forward(x, is_causal=False, absorb=absorb)[0]


# --- efficient-attention.sparse-masks ----------------------------------------------------------------


def sliding_off_by_one(L, w):
    """Lets each query see w + 1 keys (j >= i - w)."""
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    return (j <= i) & (j >= i - w)


def sliding_not_causal(L, w):
    """A symmetric band |i - j| < w: the future leaks."""
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    return (i - j).abs() < w


def _sliding_ok(L, w):
    return sliding_window(L, window=w)


def block_not_causal(L, block, pattern):
    """Forgets the causal constraint."""
    return block_sparse(L, block, pattern, causal=False)


def block_fixed_first_column(L, block, pattern):
    """Uses the first position of each block (j % block == 0) as the summary column of 'fixed'."""
    if pattern != "fixed":
        return block_sparse(L, block, pattern)
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    return (((i // block) == (j // block)) | (j % block == 0)) & (j <= i)


def _block_ok(L, block, pattern):
    return block_sparse(L, block, pattern)


def linformer_swapped(q, k, v, E, F):
    """Projects the keys with F and the values with E."""
    return linformer(q, k, v, F, E)


def linformer_no_scale(q, k, v, E, F):
    return torch.softmax(q @ (E @ k).transpose(-2, -1), -1) @ (F @ v)


def _linformer_ok(q, k, v, E, F):
    return linformer(q, k, v, E, F)


# --- efficient-attention.flash-reference -------------------------------------------------------------


def _tiles(q, k, v, block_q, block_k, causal, *, rescale=True, m_start=float("-inf"), skip=True, last=True):
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1])
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    stop_q = t_q if last else t_q - t_q % block_q
    for i0 in range(0, stop_q, block_q):
        i1 = min(i0 + block_q, t_q)
        qi = q[..., i0:i1, :] * scale
        m = torch.full((*q.shape[:-2], i1 - i0, 1), m_start, dtype=q.dtype)
        ell = torch.zeros_like(m)
        acc = torch.zeros(*q.shape[:-2], i1 - i0, v.shape[-1], dtype=q.dtype)
        j_stop = min(t_k, i1) if (causal and skip) else t_k
        for j0 in range(0, j_stop, block_k):
            j1 = min(j0 + block_k, t_k)
            s = qi @ k[..., j0:j1, :].transpose(-2, -1)
            if causal:
                rows, cols = torch.arange(i0, i1)[:, None], torch.arange(j0, j1)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            ref = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
            p = torch.exp(s - ref)
            alpha = torch.exp(m - ref) if rescale else torch.ones_like(m)
            ell = alpha * ell + p.sum(-1, keepdim=True)
            acc = alpha * acc + p @ v[..., j0:j1, :]
            m = m_new
        out[..., i0:i1, :] = acc / ell
    return out


def flash_no_rescale(q, k, v, block_q, block_k, causal=False):
    """Forgets to rescale the accumulator and normalizer when the running max grows."""
    return _tiles(q, k, v, block_q, block_k, causal, rescale=False)


def flash_max_starts_at_zero(q, k, v, block_q, block_k, causal=False):
    """Starts the running max at 0: rows of very negative scores underflow to 0/0."""
    return _tiles(q, k, v, block_q, block_k, causal, m_start=0.0)


def flash_no_skip(q, k, v, block_q, block_k, causal=False):
    """Masks but never skips the key blocks above the diagonal (correct, but does wasted work)."""
    return _tiles(q, k, v, block_q, block_k, causal, skip=False)


def flash_drops_last_block(q, k, v, block_q, block_k, causal=False):
    """Iterates over whole query blocks only: a partial last block stays 0."""
    return _tiles(q, k, v, block_q, block_k, causal, last=False)


def flash_naive(q, k, v, block_q, block_k, causal=False):
    """Ignores the tiling and materializes the full score matrix."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


MUTANTS = {
    "efficient-attention.gqa-kv-cache": [
        (GQATiledHeads, _kv_ok, mean_pool_kv_heads),
        (GQAScaleByDModel, _kv_ok, mean_pool_kv_heads),
        (GQANoDivisibilityCheck, _kv_ok, mean_pool_kv_heads),
        (GQAFullKV, _kv_ok, mean_pool_kv_heads),
        (GroupedQueryAttention, kv_bytes_keys_only, mean_pool_kv_heads),
        (GroupedQueryAttention, kv_bytes_fixed_fp32, mean_pool_kv_heads),
        (GroupedQueryAttention, kv_bytes_ignores_batch, mean_pool_kv_heads),
        (GroupedQueryAttention, _kv_ok, convert_interleaved_groups),
        (GroupedQueryAttention, _kv_ok, convert_sum),
        (GroupedQueryAttention, _kv_ok, convert_first_head),
    ],
    "efficient-attention.mla": [MLAScaleWithoutRope, MLAAbsorbDropsRope, MLAKeyNotRotated, MLANotCausal],
    "efficient-attention.sparse-masks": [
        (sliding_off_by_one, _block_ok, _linformer_ok),
        (sliding_not_causal, _block_ok, _linformer_ok),
        (_sliding_ok, block_not_causal, _linformer_ok),
        (_sliding_ok, block_fixed_first_column, _linformer_ok),
        (_sliding_ok, _block_ok, linformer_swapped),
        (_sliding_ok, _block_ok, linformer_no_scale),
    ],
    "efficient-attention.flash-reference": [
        flash_no_rescale,
        flash_max_starts_at_zero,
        flash_no_skip,
        flash_drops_last_block,
        flash_naive,
    ],
}
