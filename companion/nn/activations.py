"""Activation functions (激活函数) of Transformer feed-forward networks, written from their formulas.

* ReLU: ``max(0, x)``; Leaky ReLU: ``x`` if ``x > 0`` else ``a·x``.
* GELU (高斯误差线性单元, Hendrycks & Gimpel, 2016): ``x·Φ(x) = ½x(1 + erf(x/√2))``. The tanh form
  ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))`` used by BERT and GPT-2 is an *approximation* of it (max
  abs error ≈ 4.7e-4, near x ≈ ±2.7).
* Swish (Ramachandran et al., 2017): ``x·σ(βx)``. β = 1 is SiLU (Elfwing et al., 2018), β = 0 gives
  ``x/2`` and β → ∞ gives ReLU.

The functions here follow the formulas line by line and are checked against PyTorch's fused kernels
(``torch.nn.functional.gelu``, ``silu``, …) in the tests. :func:`get_activation` returns the fused
kernels by default, because they are the fast path the modules use; ``fused=False`` returns the
formulas.

One fast path is our own: on a CPU, the tanh GELU is computed through the identity
``½(1 + tanh u) = σ(2u)`` as ``x·σ(2u)`` with a hand-written backward, because PyTorch's vectorized
sigmoid is several times faster there than its tanh (:func:`gelu_tanh_fast`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from companion._validate import check_tensor

__all__ = [
    "ACTIVATIONS",
    "gelu",
    "gelu_exact",
    "gelu_tanh",
    "gelu_tanh_fast",
    "get_activation",
    "leaky_relu",
    "relu",
    "sigmoid",
    "silu",
    "swish",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(0, x)`` element-wise; any shape."""
    check_tensor("x", x, floating=True)
    return torch.clamp_min(x, 0.0)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``x`` where ``x > 0``, else ``negative_slope·x``; any shape."""
    check_tensor("x", x, floating=True)
    return torch.where(x > 0, x, negative_slope * x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid ``σ(x) = 1/(1 + e^{−x})`` (the gate of the original GLU)."""
    check_tensor("x", x, floating=True)
    return torch.sigmoid(x)  # stable for large |x|, unlike 1/(1 + exp(-x)) in autograd


def gelu_exact(x: torch.Tensor) -> torch.Tensor:
    """GELU ``x·Φ(x) = ½x(1 + erf(x/√2))``, with Φ the standard normal CDF; any shape."""
    check_tensor("x", x, floating=True)
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))``; any shape."""
    check_tensor("x", x, floating=True)
    # For huge |x| the cube overflows to ±inf; tanh(±inf) = ±1 still gives the right limit (x or 0).
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


# 2u = 2·√(2/π)·(x + 0.044715x³) = x·(K1 + K2·x²)
_K1 = 2.0 * _SQRT_2_OVER_PI
_K2 = 0.044715 * _K1


def _sigmoid_2u(x: torch.Tensor) -> torch.Tensor:
    """``σ(2u) = σ(x(K1 + K2x²))`` in one new tensor (no autograd graph)."""
    # addcmul with a 0-d K1 makes K1 + K2·x·x in one pass over x (mul, mul_, add_ took three).
    k1 = torch.tensor(_K1, dtype=x.dtype)
    return torch.addcmul(k1, x, x, value=_K2).mul_(x).sigmoid_()


class _GELUTanhViaSigmoid(torch.autograd.Function):
    """``x·σ(2u)``, ``2u = x(K1 + K2x²)``: the tanh GELU, since ``½(1 + tanh u) = σ(2u)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        # Only x is saved, as F.gelu saves only its input: σ(2u) is recomputed in the backward pass
        # (about 1.6 ms per million floats on one CPU thread) rather than kept, which would add a
        # tensor the size of the MLP's hidden layer to every block's saved activations.
        ctx.save_for_backward(x)
        return _sigmoid_2u(x).mul_(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        # d/dx x·σ(2u) = σ + x·σ(1 − σ)·(K1 + 3K2x²) = s + K1·q + 3K2·x·(x·q), with q = x·σ(1 − σ),
        # which is exactly 0 wherever σ has saturated, so x² is only ever multiplied by it: no
        # inf·0 for huge |x|.
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward (Hessians)
            s = torch.sigmoid(x * (_K1 + _K2 * x * x))
            q = x * (s - s * s)
            return grad * (s + _K1 * q + 3 * _K2 * x * (x * q))
        # Nine passes over memory and two new tensors; the rest is done in place.
        s = _sigmoid_2u(x)
        q = torch.addcmul(s, s, s, value=-1).mul_(x)
        s.add_(q, alpha=_K1)
        s.addcmul_(q.mul_(x), x, value=3 * _K2)
        return s.mul_(grad)


def gelu_tanh_fast(x: torch.Tensor) -> torch.Tensor:
    """The tanh GELU, fast on every device: ``F.gelu(x, approximate="tanh")`` up to rounding.

    On a CPU with float32/float64 input it computes ``x·σ(2u)`` (the identity
    ``½(1 + tanh u) = σ(2u)``) with a hand-written backward: PyTorch's CPU sigmoid is vectorized
    and several times faster than its tanh, so forward and backward together take 55–75% of
    ``F.gelu``'s time (1.7–2.4 vs 3.1–3.3 ms for 768 × 512 floats on one thread of the build
    machine), saving only the input, as ``F.gelu`` does. The tests hold it to ``F.gelu`` within a
    few float32 ulps, and its gradient stays finite (0 or 1) where ``F.gelu``'s overflows to NaN
    (float32 ``|x| ≳ 1e13``).
    Elsewhere (CUDA, MPS, bf16/fp16) it is ``F.gelu(x, approximate="tanh")``, a fused kernel.

    Args:
        x: any shape.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return _GELUTanhViaSigmoid.apply(x)
    return F.gelu(x, approximate="tanh")


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU with the argument convention of ``torch.nn.functional.gelu``.

    Args:
        x: any shape.
        approximate: ``"none"`` for the exact erf form, ``"tanh"`` for the approximation.
    """
    if approximate == "none":
        return gelu_exact(x)
    if approximate == "tanh":
        return gelu_tanh(x)
    raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")


def swish(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Swish ``x·σ(βx)``; ``beta=1`` is SiLU, ``beta=0`` gives ``x/2``, large β approaches ReLU.

    Uses ``torch.sigmoid``, whose gradient stays finite for large ``|βx|`` (the naive
    ``x / (1 + exp(−βx))`` overflows to ``inf/inf = NaN`` in the backward pass).
    """
    check_tensor("x", x, floating=True)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta):
        raise ValueError(f"beta: expected a finite number, got {beta!r}")
    return x * torch.sigmoid(beta * x)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU ``x·σ(x)``, i.e. Swish with β = 1 (the activation of SwiGLU)."""
    return swish(x, 1.0)


#: name -> (formula, fused PyTorch kernel)
ACTIVATIONS: dict[
    str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]
] = {
    "relu": (relu, F.relu),
    "leaky_relu": (leaky_relu, F.leaky_relu),
    "gelu": (gelu_exact, F.gelu),
    "gelu_tanh": (gelu_tanh, gelu_tanh_fast),
    "silu": (silu, F.silu),
    "swish": (silu, F.silu),
    "sigmoid": (sigmoid, torch.sigmoid),
    "identity": (lambda x: x, lambda x: x),
}
_ALIASES = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "linear": "identity"}


def get_activation(name: str, *, fused: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look an activation up by name.

    Args:
        name: one of ``relu``, ``leaky_relu``, ``gelu`` (exact), ``gelu_tanh`` (alias ``gelu_new``,
            ``gelu_pytorch_tanh``, as Hugging Face spells them), ``silu``/``swish``, ``sigmoid``,
            ``identity``.
        fused: return PyTorch's fused kernel (fast; default) rather than this module's formula.

    Returns:
        A function of one tensor.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected an activation name (str), got {type(name).__name__}")
    key = _ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        known = sorted([*ACTIVATIONS, *_ALIASES])
        raise ValueError(f"name: unknown activation {name!r}; expected one of {known}")
    formula, kernel = ACTIVATIONS[key]
    return kernel if fused else formula
