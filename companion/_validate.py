"""Argument checks shared across the package: each error names the argument, the expectation and
what was actually passed, so a learner can fix the call without reading our source."""

from __future__ import annotations

import math

import torch

__all__ = [
    "check_above_one",
    "check_even_width",
    "check_finite_number",
    "check_nonnegative_int",
    "check_positive_int",
    "check_probability",
    "check_temperature",
    "check_tensor",
    "check_unit_fraction",
]


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_ndim: int | None = None,
    floating: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the expected rank (and a floating dtype if asked); return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name}: expected a {want}-D tensor, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def check_positive_int(name: str, value: object) -> int:
    """Check that ``value`` is a positive ``int`` (not a bool); return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def check_probability(name: str, value: float, *, allow_one: bool = False) -> float:
    """Check ``0 <= value < 1`` (or ``<= 1`` with ``allow_one``); return it as a float."""
    hi_ok = value <= 1.0 if allow_one else value < 1.0
    if not (isinstance(value, (int, float)) and 0.0 <= value and hi_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name}: expected a number in {bound}, got {value!r}")
    return float(value)


def check_nonnegative_int(name: str, value: object) -> int:
    """Check that ``value`` is an ``int`` (not a bool) ``>= 0``; return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    return value


def check_even_width(name: str, value: object) -> int:
    """Check that a width is a positive even ``int`` (dimensions that come in (sin, cos) or rotation
    pairs); return it."""
    check_positive_int(name, value)
    if value % 2:  # type: ignore[operator]
        raise ValueError(
            f"{name}: expected an even number (dimensions come in (sin, cos) pairs), got {value}"
        )
    return value  # type: ignore[return-value]


def check_above_one(name: str, value: object) -> float:
    """Check that ``value`` is a real number (not a bool) ``> 1``, e.g. the base of a geometric
    series; return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1:
        raise ValueError(f"{name}: expected a number > 1, got {value!r}")
    return float(value)


def check_finite_number(name: str, value: object) -> float:
    """Check that ``value`` is a finite real number (not a bool); return it as a float (a
    ``TypeError`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_unit_fraction(name: str, value: object) -> float:
    """Check ``0 < value <= 1`` (a probability mass such as top-p's); return it as a float."""
    v = check_finite_number(name, value)
    if not 0.0 < v <= 1.0:
        raise ValueError(f"{name}: expected a probability in (0, 1], got {value!r}")
    return v


def check_temperature(temperature: object, *, allow_zero: bool = False) -> float:
    """Check a sampling temperature: ``> 0``, or ``>= 0`` with ``allow_zero`` (0 means greedy)."""
    t = check_finite_number("temperature", temperature)
    if t < 0 or (t == 0 and not allow_zero):
        bound = ">= 0 (0 means greedy)" if allow_zero else "> 0"
        raise ValueError(f"temperature: expected a number {bound}, got {temperature!r}")
    return t
