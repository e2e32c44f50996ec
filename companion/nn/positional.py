"""Positional encodings (位置编码): sinusoidal, learned, RoPE, ALiBi and T5's relative bias.

Self-attention without positions is permutation-equivariant: it sees a set of tokens, not a sequence.
This module holds the ways of telling it the order, derived in the Positional encoding chapter:

* **absolute** encodings added to the token embeddings: :class:`SinusoidalPositionalEncoding`
  (Vaswani et al., 2017, §3.5) and :class:`LearnedPositionalEmbedding` (GPT, BERT);
* **rotary** position embedding (RoPE, Su et al., 2021): :class:`RotaryEmbedding` rotates queries and
  keys pair by pair, so that ``q_m · k_n`` depends only on ``m − n``; both memory layouts
  (interleaved pairs and half-split) and position interpolation / NTK-aware scaling;
* **additive attention biases**: :class:`ALiBi` (Press et al., 2022) and :class:`T5RelativeBias`
  (Raffel et al., 2020), added to the pre-softmax scores.

Shapes: ``B`` batch, ``H`` heads, ``T`` positions, ``C``/``d_model`` model width, ``D`` head width.
Positions count from 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from companion._validate import check_positive_int, check_tensor

__all__ = [
    "ALiBi",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "T5RelativeBias",
    "alibi_bias",
    "alibi_slopes",
    "apply_rotary",
    "offset_matrix",
    "rope",
    "rope_frequencies",
    "sinusoidal",
    "t5_relative_bucket",
]


def _check_even(name: str, value: object) -> int:
    check_positive_int(name, value)
    if value % 2:  # type: ignore[operator]
        raise ValueError(
            f"{name}: expected an even number (dimensions come in (sin, cos) pairs), got {value}"
        )
    return value  # type: ignore[return-value]


def _check_base(base: object) -> float:
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
        raise ValueError(f"base: expected a number > 1, got {base!r}")
    return float(base)


def _check_offset(offset: object) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset: expected a non-negative int, got {offset!r}")
    return offset


# --------------------------------------------------------------------------------------------------
# Sinusoidal (正余弦位置编码) and learned (可训练位置嵌入) absolute encodings
# --------------------------------------------------------------------------------------------------


def sinusoidal(
    n_pos: int,
    d: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The sinusoidal table of "Attention Is All You Need" (§3.5), shape ``(n_pos, d)``.

    ``PE[p, 2i] = sin(p·ω_i)`` and ``PE[p, 2i+1] = cos(p·ω_i)`` with ``ω_i = base^(−2i/d)``, so the
    wavelengths ``2π/ω_i`` run from ``2π`` (``i = 0``) to ``2π·base^((d−2)/d)`` (just under
    ``2π·base``). The angles are computed in float64 and then cast to ``dtype``.

    Args:
        n_pos: number of positions (rows), ``p = 0 … n_pos − 1``.
        d: width; must be even.
        base: the constant 10 000 of the paper.
        dtype, device: of the returned table.

    Raises:
        ValueError: if ``d`` is odd or not positive, ``n_pos`` is not positive, or ``base <= 1``.
    """
    check_positive_int("n_pos", n_pos)
    _check_even("d", d)
    base = _check_base(base)
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=device) / d)  # (d/2,)
    angles = torch.arange(n_pos, dtype=torch.float64, device=device)[:, None] * omega  # (n_pos, d/2)
    # Interleave: column 2i holds sin, column 2i+1 holds cos of the same frequency.
    return torch.stack((angles.sin(), angles.cos()), dim=-1).reshape(n_pos, d).to(dtype)


def offset_matrix(
    k: int, d: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The ``(d, d)`` matrix ``M_k`` with ``PE[p + k] = M_k · PE[p]`` for every position ``p``.

    Block-diagonal with one 2×2 rotation per frequency, ``[[cos kω_i, sin kω_i], [−sin kω_i,
    cos kω_i]]``, acting on the pair ``(sin pω_i, cos pω_i)`` (column-vector convention; for a
    table of row vectors, ``PE[k:] = PE[:−k] @ M_k.T``). It is orthogonal and does not depend on ``p``:
    a fixed linear map shifts every position by ``k``.

    Args:
        k: the offset (any integer, negative allowed).
        d: width; must be even.
        base: as in :func:`sinusoidal`.
        dtype: of the returned matrix.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k: expected an int offset, got {k!r}")
    _check_even("d", d)
    base = _check_base(base)
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    m = torch.zeros(d, d, dtype=torch.float64)
    idx = torch.arange(0, d, 2)
    m[idx, idx], m[idx, idx + 1] = c, s  # new sin = sin·cos kω + cos·sin kω
    m[idx + 1, idx], m[idx + 1, idx + 1] = -s, c  # new cos = cos·cos kω − sin·sin kω
    return m.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding to its input: ``x + PE[offset : offset + T]``.

    No parameters. The table is a non-persistent buffer (not saved in ``state_dict``) that is
    recomputed and grows on demand, so any length works.

    Args:
        d_model: model width ``C`` (even).
        max_len: number of positions precomputed at construction.
        base: the constant 10 000 of the paper.
    """

    def __init__(self, d_model: int, max_len: int = 4096, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model = _check_even("d_model", d_model)
        check_positive_int("max_len", max_len)
        self.base = _check_base(base)
        self.register_buffer("pe", sinusoidal(max_len, d_model, self.base), persistent=False)

    def encoding(self, T: int, offset: int = 0) -> torch.Tensor:
        """The encodings of positions ``offset … offset + T − 1``, shape ``(T, d_model)``, float32."""
        check_positive_int("T", T)
        _check_offset(offset)
        if offset + T > self.pe.shape[0]:  # grow (doubling) instead of failing: the formula has no limit
            n = max(offset + T, 2 * self.pe.shape[0])
            self.pe = sinusoidal(n, self.d_model, self.base, device=self.pe.device)
        return self.pe[offset : offset + T]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Add the encodings of positions ``offset … offset + T − 1``.

        Args:
            x: ``(B, T, d_model)``.
            offset: the position of ``x[:, 0]`` (the number of cached tokens when decoding).

        Returns:
            ``(B, T, d_model)``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        return x + self.encoding(x.shape[1], offset).to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """A learned absolute position table (GPT, BERT): ``x + E[offset : offset + T]``.

    ``E`` is a ``(max_len, d_model)`` parameter initialised from ``N(0, init_std²)`` (GPT-2 uses
    0.02). Position ``max_len`` and beyond have no row, so longer inputs raise a ``ValueError``:
    a learned table cannot extrapolate (BERT and RoBERTa stop at 512 positions).

    Args:
        max_len: number of positions with a row.
        d_model: model width ``C``.
        init_std: standard deviation of the initial values.
        device, dtype: of the parameter.
    """

    def __init__(
        self,
        max_len: int,
        d_model: int,
        *,
        init_std: float = 0.02,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.max_len = check_positive_int("max_len", max_len)
        self.d_model = check_positive_int("d_model", d_model)
        self.weight = nn.Parameter(torch.empty(max_len, d_model, device=device, dtype=dtype))
        nn.init.normal_(self.weight, std=init_std)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Add the rows for positions ``offset … offset + T − 1``.

        Args:
            x: ``(B, T, d_model)``.
            offset: the position of ``x[:, 0]``.

        Returns:
            ``(B, T, d_model)``.

        Raises:
            ValueError: if ``offset + T > max_len``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        _check_offset(offset)
        t = x.shape[1]
        if offset + t > self.max_len:
            raise ValueError(
                f"x: positions {offset}…{offset + t - 1} need {offset + t} rows but the learned table has "
                f"max_len={self.max_len}; a learned positional embedding cannot extrapolate beyond it"
            )
        return x + self.weight[offset : offset + t]


# --------------------------------------------------------------------------------------------------
# Rotary position embedding (RoPE, 旋转位置编码)
# --------------------------------------------------------------------------------------------------

_SCALINGS = (None, "linear", "ntk")


def rope_frequencies(
    head_dim: int,
    base: float = 10000.0,
    *,
    scaling: str | None = None,
    scaling_factor: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """RoPE's angular frequencies ``θ_i = base^(−2i/D)``, ``i = 0 … D/2 − 1``, shape ``(D/2,)``.

    Args:
        head_dim: the rotated width ``D`` (even).
        base: ``θ`` in the literature's ``base`` sense: 10 000 (RoFORMER, LLaMA), 100 000 (SmolLM2),
            500 000 (LLaMA 3).
        scaling: None; ``"linear"`` — position interpolation (Chen et al., 2023), every angle divided
            by ``s``, i.e. position ``m`` is read as ``m / s``; or ``"ntk"`` — NTK-aware scaling, the
            base raised to ``base·s^(D/(D−2))``, which stretches the low frequencies by about ``s`` and
            leaves the highest one unchanged.
        scaling_factor: ``s`` (≥ 1), typically the target length over the training length.
        dtype: of the result.
    """
    _check_even("head_dim", head_dim)
    base = _check_base(base)
    if scaling not in _SCALINGS:
        raise ValueError(f"scaling: expected None, 'linear' or 'ntk', got {scaling!r}")
    if isinstance(scaling_factor, bool) or not isinstance(scaling_factor, (int, float)) or scaling_factor < 1:
        raise ValueError(f"scaling_factor: expected a number >= 1, got {scaling_factor!r}")
    s = float(scaling_factor)
    if scaling == "ntk":
        base = base * s ** (head_dim / (head_dim - 2))
    theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if scaling == "linear":
        theta = theta / s
    return theta.to(dtype)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (bf16, fp16, float32) is rotated in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = False
) -> torch.Tensor:
    """Rotate each 2-D pair of ``x`` by the angles whose cosines and sines are given.

    Pair ``i`` is ``(x[2i], x[2i+1])`` when ``interleaved`` (the RoFormer paper, Meta's original
    LLaMA code, GGUF files) and ``(x[i], x[i + D/2])`` otherwise (the half-split layout of GPT-NeoX
    and Hugging Face's Llama). Each pair becomes ``(a cos − b sin, a sin + b cos)``.

    Args:
        x: ``(..., T, D)`` with ``D`` even.
        cos, sin: ``(..., T, D/2)``, broadcastable against ``x[..., : D/2]``: one angle per pair.
        interleaved: the memory layout of the pairs.

    Returns:
        The rotated tensor, same shape and dtype as ``x`` (computed in float32, or float64 for float64
        inputs, so bf16/fp16 inputs lose no accuracy in the rotation itself).
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    check_tensor("cos", cos, floating=True)
    check_tensor("sin", sin, floating=True)
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"x: the last dimension must be even to form pairs, got shape {tuple(x.shape)}")
    if cos.shape != sin.shape or cos.shape[-1] != d // 2:
        raise ValueError(
            f"cos, sin: expected equal shapes ending in D/2={d // 2} (one angle per pair), "
            f"got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    ct = _compute_dtype(x)
    xf, c, s = x.to(ct), cos.to(ct), sin.to(ct)
    if interleaved:
        a, b = xf[..., 0::2], xf[..., 1::2]
        out = torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)
    else:
        a, b = xf[..., : d // 2], xf[..., d // 2 :]
        out = torch.cat((a * c - b * s, a * s + b * c), dim=-1)
    return out.to(x.dtype)


def _positions_tensor(positions: torch.Tensor | int, t: int, device: torch.device) -> torch.Tensor:
    if isinstance(positions, bool):
        raise TypeError("positions: expected an int offset or an integer tensor, got a bool")
    if isinstance(positions, int):
        _check_offset(positions)
        return torch.arange(positions, positions + t, device=device)
    check_tensor("positions", positions, ndim=(1, 2))
    if positions.is_floating_point() or positions.dtype == torch.bool:
        raise TypeError(f"positions: expected an integer tensor, got dtype {positions.dtype}")
    if positions.shape[-1] != t:
        raise ValueError(
            f"positions: expected {t} positions (x.shape[-2]) in the last dimension, got shape "
            f"{tuple(positions.shape)}"
        )
    if positions.numel() and int(positions.min()) < 0:
        raise ValueError("positions: expected non-negative positions")
    return positions.to(device)


def _broadcast_angles(c: torch.Tensor, x: torch.Tensor, positions_ndim: int) -> torch.Tensor:
    """(B, T, D/2) angles from (B, T) positions get a head axis when x is (B, H, T, D)."""
    if positions_ndim == 2 and x.ndim == 4:
        return c.unsqueeze(1)
    if positions_ndim == 2 and x.ndim != 3:
        raise ValueError(
            f"positions: (B, T) positions need x of shape (B, T, D) or (B, H, T, D), got {tuple(x.shape)}"
        )
    return c


def rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    base: float = 10000.0,
    layout: str = "interleaved",
) -> torch.Tensor:
    """Rotary position embedding, functional form: rotate ``x`` at the given positions.

    At position ``m``, pair ``i`` is rotated by the angle ``m·θ_i`` with ``θ_i = base^(−2i/D)``.
    Angles are computed in float64.

    Args:
        x: ``(..., T, D)``, ``D`` even.
        positions: integer positions, ``(T,)`` or ``(B, T)`` (see :class:`RotaryEmbedding`).
        base: the RoPE base.
        layout: ``"interleaved"`` (pairs ``(2i, 2i+1)``) or ``"half"`` (pairs ``(i, i + D/2)``).

    Returns:
        The rotated tensor, same shape and dtype as ``x``.
    """
    check_tensor("x", x, min_ndim=2, floating=True)
    if layout not in ("interleaved", "half"):
        raise ValueError(f"layout: expected 'interleaved' or 'half', got {layout!r}")
    _check_even("x.shape[-1]", x.shape[-1])
    pos = _positions_tensor(positions, x.shape[-2], x.device)
    theta = rope_frequencies(x.shape[-1], base).to(x.device)
    angles = _broadcast_angles(pos.to(torch.float64)[..., None] * theta, x, pos.ndim)
    return apply_rotary(x, angles.cos(), angles.sin(), interleaved=layout == "interleaved")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) for queries and keys, with a lazily grown cos/sin cache.

    Apply it to the queries *and* the keys of every attention layer (never to the values): the score
    ``(R_m q)·(R_n k) = q·R_(n−m) k`` then depends on the positions only through ``n − m``.

    Args:
        head_dim: the width ``D`` of a head (even); every pair of it is rotated.
        base: the RoPE base ``θ`` (10 000 classically).
        interleaved: pair layout: ``True`` for ``(2i, 2i+1)`` (RoFormer, Meta's LLaMA code, GGUF),
            ``False`` for ``(i, i + D/2)`` (GPT-NeoX, Hugging Face Llama).
        scaling: None, ``"linear"`` (position interpolation) or ``"ntk"`` (NTK-aware base scaling);
            see :func:`rope_frequencies`.
        scaling_factor: ``s ≥ 1`` for the scaling.
        max_positions: number of positions cached at first use; the cache doubles when a larger
            position arrives.

    The cache holds float32 cosines and sines (computed from float64 angles). ``forward`` rotates in
    float32 and returns the input's dtype, so bf16/fp16 on CUDA are supported; float64 inputs are
    rotated in float64 without the cache.
    """

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        interleaved: bool = False,
        scaling: str | None = None,
        scaling_factor: float = 1.0,
        max_positions: int = 2048,
    ) -> None:
        super().__init__()
        self.head_dim = _check_even("head_dim", head_dim)
        self.base = _check_base(base)
        self.interleaved = bool(interleaved)
        self.scaling = scaling
        self.scaling_factor = float(scaling_factor)
        self.max_positions = check_positive_int("max_positions", max_positions)
        theta = rope_frequencies(head_dim, base, scaling=scaling, scaling_factor=scaling_factor)
        self.register_buffer("inv_freq", theta, persistent=False)  # float64: angles stay exact
        self.register_buffer("cos_cached", torch.empty(0, head_dim // 2), persistent=False)
        self.register_buffer("sin_cached", torch.empty(0, head_dim // 2), persistent=False)

    def extra_repr(self) -> str:
        layout = "interleaved" if self.interleaved else "half-split"
        scaling = "" if self.scaling is None else f", scaling={self.scaling!r} ×{self.scaling_factor:g}"
        return f"head_dim={self.head_dim}, base={self.base:g}, layout={layout}{scaling}"

    def _grow(self, n: int, device: torch.device) -> None:
        size = max(self.max_positions, n)
        if self.cos_cached.shape[0] >= n and self.cos_cached.device == device:
            return
        if self.cos_cached.shape[0] and self.cos_cached.shape[0] < n:
            size = max(size, 2 * self.cos_cached.shape[0])  # amortized growth
        # Ordinary tensors even when the cache grows during decoding under torch.inference_mode: an
        # inference-mode buffer left in the module would break a later training step.
        with torch.inference_mode(False):
            positions = torch.arange(size, dtype=torch.float64, device=device)
            angles = positions[:, None] * self.inv_freq.to(device)
            self.cos_cached = angles.cos().float()
            self.sin_cached = angles.sin().float()

    def cos_sin(
        self, positions: torch.Tensor | int, t: int | None = None, *, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 ``(cos, sin)`` of the angles at ``positions``: shape ``positions.shape + (D/2,)``.

        ``positions`` is an int offset (then ``t`` positions from it) or an integer tensor.
        """
        device = self.inv_freq.device if device is None else torch.device(device)
        if isinstance(positions, int) and not isinstance(positions, bool):
            if t is None:
                raise ValueError("t: the number of positions is needed when positions is an int offset")
            pos = _positions_tensor(positions, t, device)
        else:
            pos = _positions_tensor(positions, positions.shape[-1], device)  # type: ignore[union-attr]
        n = int(pos.max()) + 1 if pos.numel() else 0
        self._grow(n, device)
        return self.cos_cached[pos], self.sin_cached[pos]

    def forward(self, x: torch.Tensor, positions: torch.Tensor | int = 0) -> torch.Tensor:
        """Rotate ``x`` at ``positions``.

        Args:
            x: ``(B, H, T, D)`` or any ``(..., T, D)`` with ``D = head_dim``.
            positions: an int offset (positions ``offset … offset + T − 1``, the usual case, and with a
                KV cache the number of cached tokens), a ``(T,)`` tensor, or a ``(B, T)`` tensor of
                per-sequence positions (left padding, packed sequences).

        Returns:
            The rotated tensor, same shape and dtype as ``x``.
        """
        check_tensor("x", x, min_ndim=2, floating=True)
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"x: expected last dimension head_dim={self.head_dim}, got shape {tuple(x.shape)}"
            )
        t = x.shape[-2]
        pos = _positions_tensor(positions, t, x.device)
        if x.dtype == torch.float64:  # exact path for tests and derivations
            angles = pos.to(torch.float64)[..., None] * self.inv_freq.to(x.device)
            cos, sin = angles.cos(), angles.sin()
        else:
            n = int(pos.max()) + 1 if pos.numel() else 0
            self._grow(n, x.device)
            cos, sin = self.cos_cached[pos], self.sin_cached[pos]
        cos = _broadcast_angles(cos, x, pos.ndim)
        sin = _broadcast_angles(sin, x, pos.ndim)
        return apply_rotary(x, cos, sin, interleaved=self.interleaved)


# --------------------------------------------------------------------------------------------------
# ALiBi (线性偏置注意力) and T5's bucketed relative bias
# --------------------------------------------------------------------------------------------------


def alibi_slopes(n_heads: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ALiBi's head slopes ``m_h``, shape ``(n_heads,)``.

    For ``H`` a power of two, ``m_h = 2^(−8h/H)``, ``h = 1 … H`` (8 heads: 1/2, 1/4, …, 1/256).
    Otherwise, as in the reference code of Press et al. (``get_slopes``): the ``2^⌊log₂H⌋`` slopes of
    the nearest smaller power of two, followed by every other slope (the 1st, 3rd, …) of the sequence
    for twice that power, until there are ``H`` (12 heads: 2^−1 … 2^−8, then 2^−0.5, 2^−1.5, 2^−2.5,
    2^−3.5). Computed in float64, then cast to ``dtype``.
    """
    check_positive_int("n_heads", n_heads)

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    p = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(p)
    if p < n_heads:
        slopes += power_of_two(2 * p)[0::2][: n_heads - p]
    return torch.tensor(slopes, dtype=torch.float64).to(dtype)


def alibi_bias(
    n_heads: int, L: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The ALiBi bias ``−m_h·(i − j)`` for ``L`` queries and keys, shape ``(n_heads, L, L)``.

    Entries above the diagonal (``j > i``) follow the same formula; the causal mask, applied
    separately, removes them.
    """
    check_positive_int("L", L)
    return ALiBi(n_heads).bias(L, L, device=device, dtype=dtype)


class ALiBi(nn.Module):
    """Attention with Linear Biases: add ``−m_h·(i − j)`` to the pre-softmax score of head ``h``.

    No parameters: the slopes are a fixed (non-persistent) buffer, and there is no position embedding
    anywhere else in the model. Adding the bias to the logits multiplies the *unnormalized* weights
    ``exp(s_ij)`` by ``exp(−m_h (i − j))``: a recency prior that decays geometrically with distance.

    Args:
        n_heads: number of heads ``H``; slopes from :func:`alibi_slopes`.
    """

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def bias(
        self,
        t_q: int,
        t_k: int,
        *,
        offset: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """The additive bias, shape ``(H, t_q, t_k)``: entry ``(h, i, j)`` is ``−m_h·(offset + i − j)``.

        Args:
            t_q, t_k: numbers of queries and keys.
            offset: position of the first query (``t_k − t_q`` when decoding with a KV cache).
            device, dtype: of the result (defaults: the slopes' device, float32).
        """
        check_positive_int("t_q", t_q)
        check_positive_int("t_k", t_k)
        _check_offset(offset)
        device = self.slopes.device if device is None else device
        i = torch.arange(offset, offset + t_q, device=device, dtype=torch.float32)[:, None]
        j = torch.arange(t_k, device=device, dtype=torch.float32)[None, :]
        bias = -self.slopes.to(device)[:, None, None] * (i - j)
        return bias if dtype is None else bias.to(dtype)

    def forward(self, t_q: int, t_k: int | None = None, offset: int = 0) -> torch.Tensor:
        """Same as :meth:`bias` (``t_k`` defaults to ``t_q``)."""
        return self.bias(t_q, t_q if t_k is None else t_k, offset=offset)


def t5_relative_bucket(
    rel: torch.Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5's bucket of each relative position ``rel = key position − query position``.

    Bidirectional: half the buckets per sign (``num_buckets/2`` added for ``rel > 0``). Within a side
    of ``n_b`` buckets, distances ``n < n_b/2`` get their own bucket and larger ones share
    logarithmically wider buckets, ``n_b/2 + ⌊log(n / (n_b/2)) / log(max_distance / (n_b/2)) ·
    n_b/2⌋``, capped at ``n_b − 1`` (so everything from ``max_distance`` on shares the last bucket).
    Unidirectional (causal): future offsets (``rel > 0``) all go to bucket 0 and all ``num_buckets``
    serve the past.

    Args:
        rel: integer tensor of relative positions, any shape.
        bidirectional: encoder (True) or causal decoder (False).
        num_buckets, max_distance: T5's defaults are 32 and 128.

    Returns:
        Long tensor of bucket ids in ``[0, num_buckets)``, same shape as ``rel``.
    """
    check_tensor("rel", rel)
    if rel.is_floating_point():
        raise TypeError(f"rel: expected an integer tensor, got dtype {rel.dtype}")
    check_positive_int("num_buckets", num_buckets)
    check_positive_int("max_distance", max_distance)
    rel = rel.long()
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    if max_distance <= max_exact:  # the log formula would divide by log(max_distance / max_exact) <= 0
        raise ValueError(
            f"max_distance: must exceed the {max_exact} exact buckets per side "
            f"(num_buckets={2 * num_buckets if bidirectional else num_buckets}), got {max_distance}"
        )
    is_small = n < max_exact
    # log(0) is avoided by clamping; those entries take the "small" branch anyway.
    large = (
        max_exact
        + (
            torch.log(n.clamp(min=1).double() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class T5RelativeBias(nn.Module):
    """T5's learned relative position bias: one scalar per (bucket, head), added to the scores.

    The table starts at zero (no preference for any distance) and is learned with the model. Buckets
    for distances never seen in training keep their initial value, so choose ``max_distance`` no
    larger than the training length if the model must run on longer inputs.

    Args:
        n_heads: number of heads ``H``.
        num_buckets, max_distance: bucketing of :func:`t5_relative_bucket`.
        bidirectional: False for a causal decoder.
    """

    def __init__(
        self, n_heads: int, *, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.num_buckets = check_positive_int("num_buckets", num_buckets)
        self.max_distance = check_positive_int("max_distance", max_distance)
        self.bidirectional = bool(bidirectional)
        self.embedding = nn.Embedding(num_buckets, n_heads)
        nn.init.zeros_(self.embedding.weight)

    def bias(self, t_q: int, t_k: int, *, offset: int = 0) -> torch.Tensor:
        """The learned bias, shape ``(H, t_q, t_k)``, for queries at positions ``offset …``."""
        check_positive_int("t_q", t_q)
        check_positive_int("t_k", t_k)
        _check_offset(offset)
        device = self.embedding.weight.device
        i = torch.arange(offset, offset + t_q, device=device)[:, None]
        j = torch.arange(t_k, device=device)[None, :]
        buckets = t5_relative_bucket(j - i, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1)  # (t_q, t_k, H) -> (H, t_q, t_k)

    def forward(self, t_q: int, t_k: int | None = None, offset: int = 0) -> torch.Tensor:
        """Same as :meth:`bias` (``t_k`` defaults to ``t_q``)."""
        return self.bias(t_q, t_q if t_k is None else t_k, offset=offset)
