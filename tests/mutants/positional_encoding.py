"""Plausible wrong answers to the Positional encoding chapter's exercises: each must fail a check."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion.losses import length_extrapolation
from companion.nn.positional import offset_matrix, sinusoidal
from companion.nn.relative_bias import alibi_bias, alibi_slopes, t5_relative_bucket
from companion.nn.rope import rope

# --- positional-encoding.sinusoidal ----------------------------------------------------------------


def _ok_sinusoidal(n_pos, d, base=10000.0):
    return sinusoidal(n_pos, d, base, dtype=torch.float64)


def _ok_offset(k, d, base=10000.0):
    return offset_matrix(k, d, base)


def sinusoidal_exponent_i_over_d(n_pos, d, base=10000.0):
    """ω_i = base^(−i/d) instead of base^(−2i/d): the wavelengths stop at 2π·√base."""
    if d % 2:
        raise ValueError("d must be even")
    omega = base ** (-torch.arange(d // 2, dtype=torch.float64) / d)
    angles = torch.arange(n_pos, dtype=torch.float64)[:, None] * omega
    return torch.stack((angles.sin(), angles.cos()), -1).reshape(n_pos, d)


def sinusoidal_concatenated(n_pos, d, base=10000.0):
    """[sin … sin, cos … cos] (the half-split layout) where the paper interleaves."""
    if d % 2:
        raise ValueError("d must be even")
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(n_pos, dtype=torch.float64)[:, None] * omega
    return torch.cat((angles.sin(), angles.cos()), -1)


def sinusoidal_float32(n_pos, d, base=10000.0):
    """Angles in float32: about 1e-7 relative error, far from the closed form at large p."""
    if d % 2:
        raise ValueError("d must be even")
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = torch.arange(n_pos, dtype=torch.float32)[:, None] * omega
    return torch.stack((angles.sin(), angles.cos()), -1).reshape(n_pos, d).double()


def sinusoidal_periodic(n_pos, d, base=10000.0):
    """Reuses a 4096-row table cyclically (position p mod 4096): rows repeat."""
    table = sinusoidal(min(n_pos, 4096), d, base, dtype=torch.float64)
    return table[torch.arange(n_pos) % table.shape[0]]


def sinusoidal_odd_ok(n_pos, d, base=10000.0):
    """Accepts odd d by silently dropping the last column."""
    return sinusoidal(n_pos, d + (d % 2), base, dtype=torch.float64)[:, :d]


def offset_matrix_transposed(k, d, base=10000.0):
    """Blocks [[cos, −sin], [sin, cos]]: the rotation the other way, i.e. M_{−k}."""
    return offset_matrix(k, d, base).T


def offset_matrix_scaled(k, d, base=10000.0):
    """Uses kω_i/2: a rotation, but by the wrong angle."""
    m = torch.zeros(d, d, dtype=torch.float64)
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    for i in range(d // 2):
        c, s = math.cos(k * omega[i] / 2), math.sin(k * omega[i] / 2)
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    return m


# --- positional-encoding.learned -------------------------------------------------------------------


class LearnedClamped(nn.Module):
    """Clamps positions past the table to its last row instead of raising."""

    def __init__(self, max_len, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d) * 0.02)

    def forward(self, x, offset=0):
        pos = torch.arange(offset, offset + x.shape[1]).clamp(max=self.weight.shape[0] - 1)
        return x + self.weight[pos]


class LearnedIgnoresOffset(nn.Module):
    """Always starts at row 0."""

    def __init__(self, max_len, d):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d) * 0.02)

    def forward(self, x, offset=0):
        if offset + x.shape[1] > self.max_len:
            raise ValueError("too long")
        return x + self.weight[: x.shape[1]]


class LearnedMultiplies(nn.Module):
    """Multiplies the token vectors by the position rows instead of adding them."""

    def __init__(self, max_len, d):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d) * 0.02)

    def forward(self, x, offset=0):
        if offset + x.shape[1] > self.max_len:
            raise ValueError("too long")
        return x * self.weight[offset : offset + x.shape[1]]


class LearnedExtraRow(nn.Module):
    """A table with one row too many "to be safe": T = max_len + 1 no longer raises."""

    def __init__(self, max_len, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len + 1, d) * 0.02)

    def forward(self, x, offset=0):
        if offset + x.shape[1] > self.weight.shape[0]:
            raise ValueError("too long")
        return x + self.weight[offset : offset + x.shape[1]]


# --- positional-encoding.t5-buckets ----------------------------------------------------------------


def t5_unidirectional_abs(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Unidirectional but with |rel|: the future is bucketed like the past instead of going to 0."""
    if bidirectional:
        return t5_relative_bucket(rel, True, num_buckets, max_distance)
    return t5_relative_bucket(-rel.abs(), False, num_buckets, max_distance)


def t5_sign_swapped(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Adds the upper half of the buckets for rel < 0 instead of rel > 0."""
    return t5_relative_bucket(-rel, bidirectional, num_buckets, max_distance)


def t5_no_saturation(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Forgets the cap at num_buckets − 1: far distances overflow into the other side's buckets."""
    rel = rel.long()
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    exact = num_buckets // 2
    large = (
        exact
        + (
            torch.log(n.clamp(min=1).double() / exact)
            / math.log(max_distance / exact)
            * (num_buckets - exact)
        ).long()
    )
    return buckets + torch.where(n < exact, n, large)


def t5_all_exact(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Exact buckets all the way, clamped at the last: no logarithmic bins."""
    rel = rel.long()
    if bidirectional:
        half = num_buckets // 2
        return (rel > 0).long() * half + rel.abs().clamp(max=half - 1)
    return (-rel).clamp(min=0, max=num_buckets - 1)


# --- positional-encoding.rope ----------------------------------------------------------------------


def rope_clockwise(x, positions, base=10000.0, layout="interleaved"):
    """Rotates by −mθ: still relative and norm-preserving, but the wrong direction."""
    return _rope_angle(x, -positions, base, layout)


def _rope_angle(x, positions, base, layout):
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = positions.double()[:, None] * theta
    c, s = ang.cos(), ang.sin()
    xf = x.double()
    if layout == "interleaved":
        a, b = xf[..., 0::2], xf[..., 1::2]
        return torch.stack((a * c - b * s, a * s + b * c), -1).flatten(-2).to(x.dtype)
    a, b = xf[..., : d // 2], xf[..., d // 2 :]
    return torch.cat((a * c - b * s, a * s + b * c), -1).to(x.dtype)


def rope_exponent_i_over_d(x, positions, base=10000.0, layout="interleaved"):
    """θ_i = base^(−i/D) = (√base)^(−2i/D): the frequencies fall too slowly."""
    return _rope_angle(x, positions, base**0.5, layout)


def rope_ignores_layout(x, positions, base=10000.0, layout="interleaved"):
    """Always pairs neighbours, so 'half' checkpoints (Hugging Face Llama) come out wrong."""
    return rope(x, positions, base, "interleaved")


def rope_positions_from_one(x, positions, base=10000.0, layout="interleaved"):
    """Counts positions from 1: the first token is rotated too."""
    return rope(x, positions + 1, base, layout)


def rope_adds_sinusoid(x, positions, base=10000.0, layout="interleaved"):
    """Adds a sinusoid to x like an absolute encoding instead of rotating it."""
    pe = sinusoidal(int(positions.max()) + 1, x.shape[-1], base, dtype=torch.float64)[positions]
    return (x.double() + pe).to(x.dtype)


def rope_float32_angles_dtype_lost(x, positions, base=10000.0, layout="interleaved"):
    """Returns float64 whatever the input dtype."""
    return rope(x.double(), positions, base, layout)


# --- positional-encoding.alibi ---------------------------------------------------------------------


def _ok_bias(n_heads, L):
    return alibi_bias(n_heads, L, dtype=torch.float64)


def _ok_slopes(n_heads):
    return alibi_slopes(n_heads, dtype=torch.float64)


def slopes_naive_formula(n_heads):
    """2^(−8h/H) for every H, also when H is not a power of two."""
    return torch.tensor([2.0 ** (-8.0 * h / n_heads) for h in range(1, n_heads + 1)], dtype=torch.float64)


def slopes_from_h0(n_heads):
    """Starts at h = 0: the first head gets slope 1."""
    p = 2 ** math.floor(math.log2(n_heads))
    base = [2.0 ** (-8.0 * h / p) for h in range(p)]
    extra = [2.0 ** (-8.0 * h / (2 * p)) for h in range(2 * p)][0::2][: n_heads - p]
    return torch.tensor(base + extra, dtype=torch.float64)


def slopes_odd_ones(n_heads):
    """Non-power-of-two rule with the wrong interleave ([1::2]: the 2nd, 4th, … slopes)."""
    p = 2 ** math.floor(math.log2(n_heads))
    base = [2.0 ** (-8.0 * h / p) for h in range(1, p + 1)]
    extra = [2.0 ** (-8.0 * h / (2 * p)) for h in range(1, 2 * p + 1)][1::2][: n_heads - p]
    return torch.tensor(base + extra, dtype=torch.float64)


def bias_positive(n_heads, L):
    """+m·(i − j): rewards distant keys instead of penalizing them."""
    return -alibi_bias(n_heads, L, dtype=torch.float64)


def bias_multiplicative(n_heads, L):
    """A multiplicative 'bias' exp(−m(i − j)) returned where an additive one is expected."""
    return alibi_bias(n_heads, L, dtype=torch.float64).exp()


def bias_slopes_reversed(n_heads, L):
    """Slopes assigned to the heads in reverse order."""
    return alibi_bias(n_heads, L, dtype=torch.float64).flip(0)


# --- positional-encoding.extrapolation -------------------------------------------------------------


@torch.no_grad()
def _eval_windows(model, ids, L, shift=1):
    n = (ids.numel() - shift) // L
    inputs = ids[: n * L].reshape(n, L)
    targets = ids[shift : n * L + shift].reshape(n, L)
    return model(inputs), targets


def extrapolation_no_shift(model, ids, eval_lens):
    """Targets are the inputs themselves (no shift by one)."""
    model.eval()
    out = {}
    for L in eval_lens:
        try:
            logits, targets = _eval_windows(model, ids, L, shift=0)
        except ValueError:
            out[L] = None
            continue
        out[L] = math.exp(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1)).item()
        )
    return out


def extrapolation_crashes(model, ids, eval_lens):
    """Does not catch the model's ValueError for unsupported lengths."""
    model.eval()
    out = {}
    for L in eval_lens:
        logits, targets = _eval_windows(model, ids, L)
        out[L] = math.exp(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1)).item()
        )
    return out


def extrapolation_mean_of_window_ppl(model, ids, eval_lens):
    """Averages the per-window perplexities instead of taking exp of the mean loss."""
    model.eval()
    out = {}
    for L in eval_lens:
        try:
            logits, targets = _eval_windows(model, ids, L)
        except ValueError:
            out[L] = None
            continue
        per_window = F.cross_entropy(logits.double().transpose(1, 2), targets, reduction="none").mean(1)
        out[L] = per_window.exp().mean().item()
    return out


def extrapolation_returns_loss(model, ids, eval_lens):
    """Returns the mean cross-entropy (nats), not the perplexity."""
    ppl = length_extrapolation(model, ids, eval_lens)
    return {L: None if p is None else math.log(p) for L, p in ppl.items()}


def extrapolation_train_mode(model, ids, eval_lens):
    """Evaluates in training mode (dropout on): not repeatable."""
    model.train()
    out = {}
    for L in eval_lens:
        try:
            logits, targets = _eval_windows(model, ids, L)
        except ValueError:
            out[L] = None
            continue
        out[L] = math.exp(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1)).item()
        )
    return out


MUTANTS = {
    "positional-encoding.sinusoidal": [
        (sinusoidal_exponent_i_over_d, _ok_offset),
        (sinusoidal_concatenated, _ok_offset),
        (sinusoidal_float32, _ok_offset),
        (sinusoidal_periodic, _ok_offset),
        (sinusoidal_odd_ok, _ok_offset),
        (_ok_sinusoidal, offset_matrix_transposed),
        (_ok_sinusoidal, offset_matrix_scaled),
    ],
    "positional-encoding.learned": [LearnedClamped, LearnedIgnoresOffset, LearnedMultiplies, LearnedExtraRow],
    "positional-encoding.t5-buckets": [
        t5_unidirectional_abs,
        t5_sign_swapped,
        t5_no_saturation,
        t5_all_exact,
    ],
    "positional-encoding.rope": [
        rope_clockwise,
        rope_exponent_i_over_d,
        rope_ignores_layout,
        rope_positions_from_one,
        rope_adds_sinusoid,
        rope_float32_angles_dtype_lost,
    ],
    "positional-encoding.alibi": [
        (slopes_naive_formula, _ok_bias),
        (slopes_from_h0, _ok_bias),
        (slopes_odd_ones, _ok_bias),
        (_ok_slopes, bias_positive),
        (_ok_slopes, bias_multiplicative),
        (_ok_slopes, bias_slopes_reversed),
    ],
    "positional-encoding.extrapolation": [
        extrapolation_no_shift,
        extrapolation_crashes,
        extrapolation_mean_of_window_ppl,
        extrapolation_returns_loss,
        extrapolation_train_mode,
    ],
}
