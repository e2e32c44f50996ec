"""Running an exercise's checks on a candidate and reporting the outcome.

Two protections hold for every check, in a notebook and on the command line:

* **inputs are read-only**: a candidate function receives copies of its tensor, array, list and dict
  arguments, so a check's own reference computation never sees what the candidate did to them, and a
  candidate that modifies an argument in place fails with "your function modified its input ``q``"
  (an exercise lists the arguments it *should* modify in ``Exercise.mutates``);
* **a candidate that exits or is interrupted fails**: ``SystemExit`` and ``KeyboardInterrupt`` raised
  in a check are reported as errors (an interrupt also stops the remaining checks), never as success.

Handing in the reference solution itself is reported as such and not graded.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import random
import sysconfig
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from companion.grading.progress import is_book_solution, record
from companion.grading.registry import Exercise, get_exercise

__all__ = ["CheckResult", "GradeReport", "grade", "iter_checks", "reference_note", "run_checks"]

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


class _Interrupted(Exception):
    """Raised out of a check when the learner interrupted it (the remaining checks do not run)."""


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
        except SystemExit as exc:  # exiting is never a way to pass
            return "error", (
                f"the solution called sys.exit({exc.code!r}): a graded function must return or raise, "
                "not exit"
            )
        except KeyboardInterrupt:
            raise _Interrupted from None
        except Exception as exc:  # a crash in the candidate is a failed check, reported with its type
            where = _where_it_raised(exc)
            return "error", f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else "")
    return "passed", ""


_GRADER_DIR = Path(__file__).resolve().parent
_LIBRARY_DIRS = tuple(
    Path(p).resolve() for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]}
)


def _where_it_raised(exc: BaseException) -> str:
    """The learner's line that raised (or called what raised): ``solution.py, line 12: return a / b``,
    or ``your notebook cell, line 3: …``; empty when every frame is the grader's or a library's."""
    frame = None
    for tb_frame, line in traceback.walk_tb(exc.__traceback__):
        path = Path(tb_frame.f_code.co_filename)
        if path.name.startswith("<") and "ipython-input" not in path.name:
            continue  # <string>, <frozen …>: nothing a learner wrote
        resolved = path.resolve()
        if resolved.is_relative_to(_GRADER_DIR) or any(resolved.is_relative_to(d) for d in _LIBRARY_DIRS):
            continue
        frame = (path, line)
    if frame is None:
        return ""
    path, line = frame
    source = linecache.getline(str(path), line).strip()
    # A notebook cell is a temporary file (ipykernel_*/…py): name the cell, not a path that changes per run
    place = "your notebook cell" if "ipykernel" in str(path) or "ipython-input" in path.name else path.name
    return f"{place}, line {line}" + (f": {source}" if source else "")


# --------------------------------------------------------------------------------------------------
# Read-only inputs
# --------------------------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A copy of the tensors, arrays, lists, tuples and dicts in ``value`` (other objects shared).
    A tensor that requires grad is cloned inside the graph, so gradients still reach the original."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Whether ``b`` (the candidate's copy) still equals ``a`` (the original), NaNs matching NaNs."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        with torch.no_grad():
            if a.is_floating_point() or a.is_complex():
                return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
            return bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (list, tuple)) and not hasattr(a, "_fields"):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True


def _read_only(fn: Any, mutates: tuple[str, ...]) -> Any:
    """``fn`` called on copies of its arguments; modifying one (not named in ``mutates``) fails."""
    if not (inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, functools.partial)):
        return fn  # classes and other callables are passed as they are
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # let the call itself raise the learner's TypeError
        originals = dict(bound.arguments)
        for name, value in originals.items():
            if name not in mutates:
                bound.arguments[name] = _copy(value)
        out = fn(*bound.args, **bound.kwargs)
        for name, value in originals.items():
            if name not in mutates and not _same(value, bound.arguments[name]):
                raise AssertionError(
                    f"your function modified its input `{name}` in place; compute the result in new "
                    "tensors and leave the arguments as they were given"
                )
        return out

    return guarded


# --------------------------------------------------------------------------------------------------
# The reference handed in
# --------------------------------------------------------------------------------------------------


def _unwrap(obj: Any) -> Any:
    while True:
        if isinstance(obj, functools.partial):
            obj = obj.func
        elif hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        elif inspect.ismethod(obj):
            obj = obj.__func__
        else:
            return obj


def _from_companion(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "") or "").split(".")[0] == "companion"


def _is_reference(candidate: Any, reference: Any) -> bool:
    """``candidate`` is ``reference``, or any function or class of the companion package itself (the
    references adapt companion code, and a learner's code is never defined inside the package)."""
    a, b = _unwrap(candidate), _unwrap(reference)
    if a is b or _from_companion(a):
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is not None and code_a is code_b:
        return True
    if isinstance(a, type) and any(_from_companion(base) or base is b for base in a.__mro__[1:]):
        own = {k for k, v in vars(a).items() if callable(v) and not k.startswith("__")}
        return not own  # a subclass that adds nothing is the reference under another name
    return False


def _qualname(obj: Any) -> str:
    obj = _unwrap(obj)
    if isinstance(obj, type) and not _from_companion(obj):
        obj = next(b for b in obj.__mro__[1:] if _from_companion(b) or b is not object)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def reference_note(exercise: Exercise, candidates: tuple[Any, ...]) -> str:
    """A message if every candidate *is* the exercise's reference solution or other companion code
    (else ``""``). Handing in companion code for some of an exercise's names and your own for the
    others is allowed: the chapters grade one part at a time that way."""
    found = [
        f"{name} is {_qualname(cand)} from the companion package, not your own code"
        for name, cand, ref in zip(exercise.names, candidates, exercise.references, strict=True)
        if _is_reference(cand, ref)
    ]
    if len(found) < len(candidates):
        return ""
    return "; ".join(found) + ": the checks prove the reference, so they say nothing about your solution"


# --------------------------------------------------------------------------------------------------
# Running the checks
# --------------------------------------------------------------------------------------------------


def iter_checks(
    exercise: Exercise,
    candidates: tuple[Any, ...],
    *,
    start: int = 0,
    announce: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, CheckResult]]:
    """Run the checks ``start, start + 1, …`` of ``exercise`` on read-only ``candidates``, yielding
    ``(index, result)`` after each; ``announce(index)`` is called before each check starts. After an
    interrupt the remaining checks are reported as not run."""
    guarded = tuple(_read_only(c, exercise.mutates) for c in candidates)
    interrupted = False
    for index in range(start, len(exercise.checks)):
        check = exercise.checks[index]
        if interrupted:
            yield index, CheckResult(check.name, "error", "not run: grading was interrupted")
            continue
        if announce is not None:
            announce(index)
        try:
            status, message = _run_one(check.fn, guarded)
        except _Interrupted:
            interrupted = True
            status, message = "error", "interrupted (KeyboardInterrupt) before the check finished"
        yield index, CheckResult(check.name, status, message)


def run_checks(exercise: Exercise, *candidates: Any, allow_reference: bool = False) -> GradeReport:
    """Run every check of ``exercise`` on ``candidates`` and collect the results.

    Args:
        exercise: the exercise.
        candidates: what the exercise's ``names`` ask for, in order.
        allow_reference: grade the reference solutions too (the test suite proves them with this);
            otherwise a candidate that *is* a reference gets one failed result saying so.
    """
    if len(candidates) != len(exercise.names):
        names = ", ".join(exercise.names)
        raise TypeError(
            f"{exercise.id}: expected {len(exercise.names)} candidate(s) ({names}), got {len(candidates)}"
        )
    if not allow_reference and (note := reference_note(exercise, candidates)):
        return GradeReport(exercise, (CheckResult("the code handed in is your own", "failed", note),))
    results = tuple(result for _, result in iter_checks(exercise, candidates))
    return GradeReport(exercise, results)


def grade(exercise_id: str, *candidates: Any) -> GradeReport:
    """Grade a learner's solution; the returned report prints as text in a notebook.

    Example:
        >>> grade("attention.sdpa", my_sdpa)  # doctest: +SKIP
        attention.sdpa — Scaled dot-product attention: 8/8 checks passed (all checks passed ✓)

    Args:
        exercise_id: e.g. ``"attention.sdpa"`` (``python -m companion.grading list`` shows all).
        candidates: the function(s) or class(es) the exercise asks for, in the order of its ``names``.

    The outcome is added to your progress record (:mod:`companion.grading.progress`).
    """
    report = run_checks(get_exercise(exercise_id), *candidates)
    if not is_book_solution(candidates):  # the collapsed solution cells are not your attempt
        record(report.exercise.id, report.passed, report.total, report.attempted)
    return report
