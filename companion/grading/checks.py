"""Assertion helpers for writing checks: every failure says what was expected and what came back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["expect", "expect_close", "expect_no_error", "expect_raises", "expect_tensor"]

T = TypeVar("T")


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def as_number(value: Any, what: str) -> float:
    """A candidate's number as a Python float — an int or float, a NumPy number or a one-element tensor
    or array. Anything else fails the check, naming what came back: a string such as ``"0.5"`` is not
    0.5 (``float("0.5")`` would quietly accept it), and neither is a bool, ``None`` or a list."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
    if isinstance(value, np.ndarray):
        shape = tuple(value.shape)
        expect(value.size == 1, f"{what}: expected one number, got an array of shape {shape}")
        expect(value.dtype.kind in "iuf", f"{what}: expected a number, got an array of dtype {value.dtype}")
        return float(value.reshape(()))
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    expect(ok, f"{what}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def expect_tensor(
    value: Any, what: str, *, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Check that ``value`` is a tensor (of the given shape and dtype) and return it."""
    expect(isinstance(value, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(value).__name__}")
    if shape is not None:
        expect(
            tuple(value.shape) == tuple(shape),
            f"{what}: expected shape {tuple(shape)}, got {tuple(value.shape)}",
        )
    if dtype is not None:
        expect(value.dtype == dtype, f"{what}: expected dtype {dtype}, got {value.dtype}")
    return value


def expect_close(actual: Any, expected: torch.Tensor, what: str, *, atol: float, rtol: float = 0.0) -> None:
    """Check ``|actual - expected| <= atol + rtol·|expected|`` element-wise, with a helpful message."""
    expect_tensor(actual, what, shape=tuple(expected.shape))
    actual = actual.detach().to(expected.dtype)
    expected = expected.detach()
    if not torch.isfinite(actual).all():
        bad = (~torch.isfinite(actual)).sum().item()
        raise AssertionError(f"{what}: {bad} non-finite value(s) (NaN or inf) in the output")
    diff = (actual - expected).abs()
    tol = atol + rtol * expected.abs()
    if not bool((diff <= tol).all()):
        idx = tuple(int(i) for i in torch.nonzero(diff > tol)[0])
        raise AssertionError(
            f"{what}: max |difference| {diff.max().item():.3g} exceeds tolerance "
            f"(atol={atol:g}, rtol={rtol:g}); first mismatch at index {idx}: "
            f"expected {expected[idx].item():.6g}, got {actual[idx].item():.6g}"
        )


def expect_raises(exc_type: type[BaseException], fn: Callable[[], Any], what: str) -> None:
    """Check that calling ``fn()`` raises ``exc_type`` (``NotImplementedError`` propagates untouched)."""
    try:
        fn()
    except NotImplementedError:
        raise
    except exc_type:
        return
    except Exception as exc:
        raise AssertionError(
            f"{what}: expected {exc_type.__name__}, got {type(exc).__name__}: {exc}"
        ) from None
    raise AssertionError(f"{what}: expected {exc_type.__name__}, but nothing was raised")


def expect_no_error(fn: Callable[[], T], what: str) -> T:
    """Call ``fn()`` and return its result; an exception fails the check, naming ``what`` was expected.

    For checks whose point is that an edge case must not crash (an empty input, a length the model
    cannot run): the crash is then the wrong answer, reported as a failed check with the exception,
    not as an error in the check. ``NotImplementedError`` propagates untouched (an unfilled stub).
    """
    try:
        return fn()
    except NotImplementedError:
        raise
    except Exception as exc:
        raise AssertionError(f"{what}; instead it raised {type(exc).__name__}: {exc}") from None
