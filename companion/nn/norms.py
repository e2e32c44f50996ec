"""Normalization layers: LayerNorm (层归一化), RMSNorm (均方根归一化) and DeepNorm's constants.

Both layers normalize **each token's feature vector** — the last axis of a ``(B, T, C)`` tensor — with
statistics computed over its ``C`` features only (never over the batch or the sequence)::

    LayerNorm(x) = g ⊙ (x − μ) / sqrt(σ² + ε) + b,   μ = mean(x),  σ² = mean((x − μ)²)  (biased)
    RMSNorm(x)   = g ⊙ x / sqrt(mean(x²) + ε)

RMSNorm drops the re-centring (the ``− μ``) and the bias ``b``: with ``b = 0``,
``LayerNorm(x) = RMSNorm(x − μ)``. Both are invariant to rescaling ``x`` by ``c > 0`` (as ``ε → 0``);
only LayerNorm is invariant to adding a constant to every feature.

DeepNorm (Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022) is *not* another
normalization layer: it is Post-LN with an up-weighted residual, ``LN(α·x + G(x))``, plus an
initialization that scales some weights by ``β``. :func:`deepnorm_constants` gives the paper's α and β.

Low-precision inputs (float16, bfloat16) are normalized in float32 and cast back, as PyTorch's fused
kernels do, so the statistics do not lose precision. With ``fused=True`` the layers compute the same
formula with PyTorch's fused kernels (``F.layer_norm``, ``F.rms_norm``): one kernel forward and backward
instead of several element-wise ones, which matters for CPU training throughput (the tests compare the
two).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_tensor

__all__ = [
    "DeepNormResidual",
    "LayerNorm",
    "RMSNorm",
    "deepnorm_alpha_beta",
    "deepnorm_constants",
    "layer_norm",
    "make_norm",
    "rms_norm",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0 or math.isinf(eps):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")
    return float(eps)


def _check_affine(name: str, p: torch.Tensor | None, x: torch.Tensor) -> None:
    if p is None:
        return
    check_tensor(name, p, ndim=1)
    if p.shape[0] != x.shape[-1]:
        raise ValueError(
            f"{name}: expected shape ({x.shape[-1]},) to match the last dimension of x, got {tuple(p.shape)}"
        )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalization over the last axis: ``g ⊙ (x − μ)/sqrt(σ² + ε) + b``.

    Args:
        x: input ``(..., C)``, e.g. ``(B, T, C)``; each length-``C`` vector is normalized on its own.
        weight: gain ``g`` of shape ``(C,)``, or None for 1.
        bias: bias ``b`` of shape ``(C,)``, or None for 0.
        eps: added to the (biased) variance inside the square root, as in ``torch.nn.LayerNorm``.

    Returns:
        Tensor of the same shape and dtype as ``x``. An all-zero (or constant) row gives ``b``, not NaN.
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    _check_affine("weight", weight, x)
    _check_affine("bias", bias, x)
    eps = _check_eps(eps)
    xf = x.float() if x.dtype in _LOW_PRECISION else x
    mu = xf.mean(dim=-1, keepdim=True)
    centred = xf - mu
    var = (centred * centred).mean(dim=-1, keepdim=True)  # biased: divide by C, not C − 1
    y = centred * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(y.dtype)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Root-mean-square normalization over the last axis: ``g ⊙ x / sqrt(mean(x²) + ε)``.

    Args:
        x: input ``(..., C)``; the statistic is per row (token), exactly the axis of LayerNorm.
        weight: gain ``g`` of shape ``(C,)``, or None for 1.
        eps: added to the mean square inside the square root, as in ``torch.nn.RMSNorm``.

    Returns:
        Tensor of the same shape and dtype as ``x``. An all-zero row gives zeros, not NaN.
    """
    check_tensor("x", x, min_ndim=1, floating=True)
    _check_affine("weight", weight, x)
    eps = _check_eps(eps)
    xf = x.float() if x.dtype in _LOW_PRECISION else x
    y = xf * torch.rsqrt((xf * xf).mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.to(y.dtype)
    return y.to(x.dtype)


def _init_norm(
    norm: nn.Module,
    d: int,
    eps: float,
    elementwise_affine: bool,
    fused: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> None:
    """The attributes both norm layers share: width, epsilon, flags and the gain ``weight`` (ones)."""
    norm.d = check_positive_int("d", d)
    norm.eps = _check_eps(eps)
    norm.elementwise_affine = elementwise_affine
    norm.fused = fused
    norm.weight = nn.Parameter(torch.ones(d, device=device, dtype=dtype)) if elementwise_affine else None


class LayerNorm(nn.Module):
    """Layer normalization 层归一化, a drop-in for ``torch.nn.LayerNorm(d)`` over the last axis.

    The parameters are called ``weight`` and ``bias`` like PyTorch's, so state dicts load either way.

    Args:
        d: feature width ``C`` (the normalized axis is the last one).
        eps: added to the variance; PyTorch's default is 1e-5 (BERT checkpoints use 1e-12).
        bias: learn the bias ``b`` (False: ``b = 0``, as in some recent models).
        elementwise_affine: learn ``g`` (and ``b``); False gives the plain standardization.
        fused: compute with PyTorch's fused ``F.layer_norm`` instead of :func:`layer_norm`.
        device, dtype: where and how to allocate the parameters.
    """

    def __init__(
        self,
        d: int,
        eps: float = 1e-5,
        bias: bool = True,
        elementwise_affine: bool = True,
        *,
        fused: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _init_norm(self, d, eps, elementwise_affine, fused, device, dtype)
        with_bias = elementwise_affine and bias
        self.bias = nn.Parameter(torch.zeros(d, device=device, dtype=dtype)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` of shape ``(..., d)``; returns the same shape."""
        if self.fused:  # the fast path: F.layer_norm checks the shape itself
            return F.layer_norm(x, (self.d,), self.weight, self.bias, self.eps)
        if x.shape[-1:] != (self.d,):
            raise ValueError(f"x: expected last dimension d={self.d}, got shape {tuple(x.shape)}")
        return layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        affine = f"bias={self.bias is not None}, affine={self.elementwise_affine}"
        return f"{self.d}, eps={self.eps:g}, {affine}" + (", fused=True" if self.fused else "")


class RMSNorm(nn.Module):
    """RMSNorm 均方根归一化 (Zhang & Sennrich, 2019): LayerNorm without re-centring and bias.

    Matches ``torch.nn.RMSNorm(d, eps=eps)``; pass ``eps`` explicitly to PyTorch's layer, whose default
    (``None``) means ``torch.finfo(dtype).eps``. Llama uses 1e-5 or 1e-6.

    Args:
        d: feature width ``C``.
        eps: added to the mean square.
        elementwise_affine: learn the gain ``g`` (called ``weight``, as in PyTorch).
        fused: compute with PyTorch's fused ``F.rms_norm`` instead of :func:`rms_norm`.
        device, dtype: where and how to allocate the parameter.
    """

    def __init__(
        self,
        d: int,
        eps: float = 1e-6,
        elementwise_affine: bool = True,
        *,
        fused: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _init_norm(self, d, eps, elementwise_affine, fused, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` of shape ``(..., d)``; returns the same shape."""
        if self.fused:  # the fast path: F.rms_norm checks the shape itself
            return F.rms_norm(x, (self.d,), self.weight, self.eps)
        if x.shape[-1:] != (self.d,):
            raise ValueError(f"x: expected last dimension d={self.d}, got shape {tuple(x.shape)}")
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        fused = ", fused=True" if self.fused else ""
        return f"{self.d}, eps={self.eps:g}, affine={self.elementwise_affine}{fused}"


_NORMS = {"layernorm": LayerNorm, "rmsnorm": RMSNorm}


def make_norm(kind: str, d: int, eps: float | None = None, **kwargs: object) -> nn.Module:
    """Build a normalization layer by name.

    Args:
        kind: ``"layernorm"`` or ``"rmsnorm"``.
        d: feature width.
        eps: epsilon; None keeps the class default (1e-5 for LayerNorm, 1e-6 for RMSNorm).
        **kwargs: passed on (``bias`` for LayerNorm, ``elementwise_affine``, ``fused``, ``device``,
            ``dtype``).
    """
    if kind not in _NORMS:
        raise ValueError(f"kind: expected one of {sorted(_NORMS)}, got {kind!r}")
    if eps is not None:
        kwargs["eps"] = eps
    return _NORMS[kind](d, **kwargs)


# --------------------------------------------------------------------------------------------------
# DeepNorm
# --------------------------------------------------------------------------------------------------

_DEEPNORM_ARCHS = ("encoder-only", "decoder-only", "encoder", "decoder")


def deepnorm_constants(arch: str, N: int, M: int | None = None) -> tuple[float, float]:
    """DeepNorm's residual weight α and initialization gain β (DeepNet, Wang et al., 2022).

    The paper's table (one α, β per stack):

    ================================  ===========================  ============================
    architecture                      α                            β
    ================================  ===========================  ============================
    encoder-only (N layers)           (2N)^(1/4)                   (8N)^(−1/4)
    decoder-only (N layers)           (2N)^(1/4)                   (8N)^(−1/4)
    encoder of an encoder–decoder     0.81·(N⁴M)^(1/16)            0.87·(N⁴M)^(−1/16)
    decoder of an encoder–decoder     (3M)^(1/4)                   (12M)^(−1/4)
    ================================  ===========================  ============================

    Args:
        arch: ``"encoder-only"``, ``"decoder-only"``, or ``"encoder"`` / ``"decoder"`` for the two
            stacks of an encoder–decoder model.
        N: number of layers of the (encoder-only, decoder-only) model, or of the encoder.
        M: number of decoder layers of an encoder–decoder model; required for ``"encoder"`` and
            ``"decoder"``, not allowed otherwise.

    Returns:
        ``(alpha, beta)`` as floats.
    """
    if arch not in _DEEPNORM_ARCHS:
        raise ValueError(f"arch: expected one of {list(_DEEPNORM_ARCHS)}, got {arch!r}")
    check_positive_int("N", N)
    if arch in ("encoder-only", "decoder-only"):
        if M is not None:
            raise ValueError(f"M: only the encoder–decoder stacks take M; arch={arch!r} got M={M!r}")
        return (2 * N) ** 0.25, (8 * N) ** -0.25
    if M is None:
        raise ValueError(
            f"M: arch={arch!r} is one stack of an encoder–decoder model; pass its decoder depth M"
        )
    check_positive_int("M", M)
    if arch == "encoder":
        return 0.81 * (N**4 * M) ** (1 / 16), 0.87 * (N**4 * M) ** (-1 / 16)
    return (3 * M) ** 0.25, (12 * M) ** -0.25


def deepnorm_alpha_beta(n_layers: int, kind: str = "decoder") -> tuple[float, float]:
    """Shorthand for :func:`deepnorm_constants` of an encoder-only or decoder-only stack.

    Args:
        n_layers: number of layers ``N``.
        kind: ``"decoder"`` (GPT-like) or ``"encoder"`` (BERT-like); both give ``(2N)^¼, (8N)^−¼``.
    """
    if kind not in ("decoder", "encoder"):
        raise ValueError(f"kind: expected 'decoder' or 'encoder', got {kind!r}")
    return deepnorm_constants(f"{kind}-only", n_layers)


class DeepNormResidual(nn.Module):
    """One DeepNorm residual connection: ``x ↦ LN(α·x + sublayer(x))``.

    Args:
        sublayer: the module ``G`` (attention or FFN); if it returns a tuple, its first item is used.
        alpha: residual weight α (see :func:`deepnorm_constants`).
        d: feature width of the LayerNorm.
        eps: LayerNorm epsilon.
    """

    def __init__(self, sublayer: torch.nn.Module, alpha: float, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
            raise ValueError(f"alpha: expected a number > 0, got {alpha!r}")
        self.sublayer = sublayer
        self.alpha = float(alpha)
        self.norm = LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        """``x``: ``(..., d)``; extra arguments go to the sublayer. Returns ``(..., d)``."""
        out = self.sublayer(x, *args, **kwargs)
        if isinstance(out, tuple):
            out = out[0]
        return self.norm(self.alpha * x + out)
