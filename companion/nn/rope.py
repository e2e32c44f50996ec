"""Rotary position embedding (RoPE, 旋转位置编码; Su et al., "RoFormer: Enhanced Transformer with
Rotary Position Embedding", 2021).

:class:`RotaryEmbedding` rotates queries and keys pair by pair by angles ``m θ_i``, so that the score
``q_m · k_n`` depends only on the offset ``m − n``. Both memory layouts are supported — interleaved
pairs ``(x_0, x_1), (x_2, x_3), …`` (the paper, Meta's Llama code) and half-split
``(x_i, x_{i + D/2})`` (Hugging Face's Llama) — and the two context-extension rescalings: position
interpolation (``"linear"``) and NTK-aware scaling (``"ntk"``). Derived in the Positional encoding
chapter; the absolute encodings are in :mod:`companion.nn.positional`, ALiBi and T5's bias in
:mod:`companion.nn.relative_bias`.

Shapes: ``B`` batch, ``H`` heads, ``T`` positions, ``D`` head width. Positions count from 0.
"""

from __future__ import annotations

import torch
from torch import nn

from companion._validate import (
    check_above_one,
    check_even_width,
    check_nonnegative_int,
    check_positive_int,
    check_tensor,
)

__all__ = ["RotaryEmbedding", "apply_rotary", "rope", "rope_frequencies"]


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
    check_even_width("head_dim", head_dim)
    base = check_above_one("base", base)
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
        check_nonnegative_int("offset", positions)
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
    check_even_width("x.shape[-1]", x.shape[-1])
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
        self.head_dim = check_even_width("head_dim", head_dim)
        self.base = check_above_one("base", base)
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
