"""Running an exercise's checks on a candidate and reporting the outcome."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from companion.grading.registry import Exercise, get_exercise

__all__ = ["CheckResult", "GradeReport", "grade", "run_checks"]

Status = Literal["passed", "failed", "error", "not attempted"]
_MARK = {"passed": "✓", "failed": "✗", "error": "✗", "not attempted": "·"}
_SEED = 20240601


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    status: Status
    message: str = ""


@dataclass(frozen=True)
class GradeReport:
    """All check outcomes for one exercise; its text form is what ``grade`` shows."""

    exercise: Exercise
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> int:
        """Number of checks passed."""
        return sum(r.status == "passed" for r in self.results)

    @property
    def total(self) -> int:
        """Number of checks run."""
        return len(self.results)

    @property
    def attempted(self) -> bool:
        """False when every check hit ``NotImplementedError`` (the stub was not filled in)."""
        return any(r.status != "not attempted" for r in self.results)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return self.total > 0 and self.passed == self.total

    def __str__(self) -> str:
        ex = self.exercise
        if not self.attempted:
            return (
                f"{ex.id} — {ex.title}: not attempted\n"
                "  The function still raises NotImplementedError: fill in the stub and run this cell again."
            )
        verdict = "all checks passed ✓" if self.ok else "some checks failed"
        lines = [f"{ex.id} — {ex.title}: {self.passed}/{self.total} checks passed ({verdict})"]
        for r in self.results:
            lines.append(f"  {_MARK[r.status]} {r.name}")
            if r.status != "passed" and r.message:
                lines.extend(f"      {line}" for line in r.message.splitlines())
        if not self.ok and ex.hint:
            lines.append(f"  Hint: {ex.hint}")
        return "\n".join(lines)

    __repr__ = __str__


@contextmanager
def _seeded_generators() -> Iterator[None]:
    """Seed torch's, Python's and NumPy's global generators for one check, then restore all three."""
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        random.seed(_SEED)
        np.random.seed(_SEED)  # noqa: NPY002 (a candidate may draw from the legacy global generator)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)  # noqa: NPY002


def _run_one(fn: Callable[..., None], candidates: tuple[Any, ...]) -> tuple[Status, str]:
    # Each check runs on forked, freshly seeded generators (torch's, Python's and NumPy's): the report
    # is deterministic, even for a candidate that draws from a global generator, and the learner's own
    # random streams are left exactly as they were.
    with _seeded_generators():
        try:
            fn(*candidates)
        except NotImplementedError:
            return "not attempted", ""
        except AssertionError as exc:
            return "failed", str(exc) or "assertion failed"
        except Exception as exc:  # a crash in the candidate is a failed check, reported with its type
            return "error", f"{type(exc).__name__}: {exc}"
    return "passed", ""


def run_checks(exercise: Exercise, *candidates: Any) -> GradeReport:
    """Run every check of ``exercise`` on ``candidates`` and collect the results."""
    if len(candidates) != len(exercise.names):
        names = ", ".join(exercise.names)
        raise TypeError(
            f"{exercise.id}: expected {len(exercise.names)} candidate(s) ({names}), got {len(candidates)}"
        )
    results = tuple(CheckResult(c.name, *_run_one(c.fn, candidates)) for c in exercise.checks)
    return GradeReport(exercise, results)


def grade(exercise_id: str, *candidates: Any) -> GradeReport:
    """Grade a learner's solution; the returned report prints as text in a notebook.

    Example:
        >>> grade("attention.sdpa", my_sdpa)  # doctest: +SKIP
        attention.sdpa — Scaled dot-product attention: 8/8 checks passed (all checks passed ✓)

    Args:
        exercise_id: e.g. ``"attention.sdpa"`` (``python -m companion.grading list`` shows all).
        candidates: the function(s) or class(es) the exercise asks for, in the order of its ``names``.
    """
    return run_checks(get_exercise(exercise_id), *candidates)
