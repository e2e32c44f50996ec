"""What the chapters use to show code and to verify it in print.

* :func:`show_source` prints a function's source with its docstring cut to the first line, so that a
  chapter shows the code it explains without the reference text around it;
* :func:`check_close` asserts that two tensors agree within a tolerance and prints one line with the
  *bound* that held — never the difference itself, whose last digits are rounding noise that differs
  between machines (CONTRIBUTING.md, "The numerics contract").

Both work outside a notebook too: they print to standard output.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import torch

from companion._validate import check_tensor

__all__ = ["check_close", "show_source"]

NAME_WIDTH = 58
"""The column :func:`check_close` pads its names to, so that a chapter's checks line up."""


def show_source(fn: Callable[..., Any]) -> None:
    """Print the source of ``fn`` (a function, method or class), its docstring shortened to one line.

    The first line of the docstring is kept and ``(…)`` marks what was cut; code without a docstring
    is printed as it is.

    Raises:
        TypeError: if the source of ``fn`` cannot be found (a built-in, or code typed at a prompt).
    """
    try:
        lines = inspect.getsource(fn).splitlines()
    except (OSError, TypeError) as exc:
        raise TypeError(f"fn: expected a function, method or class with source code, got {fn!r}") from exc
    node = ast.parse(textwrap.dedent("\n".join(lines))).body[0]
    documented = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    doc = ast.get_docstring(node) if documented else None
    if not doc:
        print("\n".join(lines))
        return
    first = node.body[0]  # the docstring expression
    line = lines[first.lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    summary = f'{indent}"""{doc.splitlines()[0]} (…)"""'
    print("\n".join([*lines[: first.lineno - 1], summary, *lines[first.end_lineno :]]))


def check_close(name: str, ours: torch.Tensor, reference: torch.Tensor, tol: float) -> None:
    """Assert ``max |ours − reference| <= tol`` and print the check with the bound that held.

    Args:
        name: what is compared, e.g. ``"scratch vs torch SDPA"``.
        ours, reference: tensors of the same shape (of any floating dtypes: torch promotes them).
        tol: the absolute tolerance, chosen from the spread measured across machines.

    Raises:
        AssertionError: naming the check, the largest difference and the tolerance.
        ValueError: on tensors of different shapes.
    """
    check_tensor("ours", ours)
    check_tensor("reference", reference)
    if ours.shape != reference.shape:
        raise ValueError(f"{name}: shapes differ, {tuple(ours.shape)} vs {tuple(reference.shape)}")
    err = (ours - reference).abs().max().item() if ours.numel() else 0.0
    assert err <= tol, f"{name}: max |difference| {err:.3g} exceeds {tol:g}"
    print(f"{name:<{NAME_WIDTH}} max |diff| <= {tol:.0e}")
