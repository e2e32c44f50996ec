"""Positional encodings (位置编码): the absolute ones — sinusoidal and learned.

Self-attention without positions is permutation-equivariant: it sees a set of tokens, not a sequence.
The Positional encoding chapter derives the ways of telling it the order; each has its module:

* **absolute** encodings added to the token embeddings, here: :class:`SinusoidalPositionalEncoding`
  (正余弦位置编码; Vaswani et al., 2017, §3.5) and :class:`LearnedPositionalEmbedding` (可训练位置嵌入;
  GPT, BERT);
* **rotary** position embedding (RoPE): :mod:`companion.nn.rope`;
* **additive attention biases**, ALiBi and T5's relative bias: :mod:`companion.nn.relative_bias`.

Shapes: ``B`` batch, ``T`` positions, ``C``/``d_model`` model width. Positions count from 0.
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

__all__ = [
    "LearnedPositionalEmbedding",
    "PositionOutOfRangeError",
    "SinusoidalPositionalEncoding",
    "offset_matrix",
    "sinusoidal",
]


class PositionOutOfRangeError(ValueError):
    """A sequence reaches positions a model has no representation for: a learned position table
    (GPT's, BERT's) has no row past its length, so it cannot extrapolate. A ``ValueError``, so callers
    that catch those keep working; :func:`companion.losses.length_extrapolation` catches only this."""


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
    check_even_width("d", d)
    base = check_above_one("base", base)
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
    check_even_width("d", d)
    base = check_above_one("base", base)
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
        self.d_model = check_even_width("d_model", d_model)
        check_positive_int("max_len", max_len)
        self.base = check_above_one("base", base)
        self.register_buffer("pe", sinusoidal(max_len, d_model, self.base), persistent=False)

    def encoding(self, T: int, offset: int = 0) -> torch.Tensor:
        """The encodings of positions ``offset … offset + T − 1``, shape ``(T, d_model)``, float32."""
        check_positive_int("T", T)
        check_nonnegative_int("offset", offset)
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
        check_nonnegative_int("offset", offset)
        t = x.shape[1]
        if offset + t > self.max_len:
            raise PositionOutOfRangeError(
                f"x: positions {offset}…{offset + t - 1} need {offset + t} rows but the learned table has "
                f"max_len={self.max_len}; a learned positional embedding cannot extrapolate beyond it"
            )
        return x + self.weight[offset : offset + t]
