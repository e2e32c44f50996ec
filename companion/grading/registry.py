"""The exercise registry: what an exercise is, and how chapters register theirs.

An :class:`Exercise` has an id (``<chapter-slug>.<name>``), the names of the function(s) or class(es)
the learner writes, a reference solution from :mod:`companion`, and a list of checks. A check is a
plain function that receives the candidate(s) and raises ``AssertionError`` with a message saying
what was expected and what came back.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHAPTERS", "Check", "Exercise", "all_exercises", "get_exercise", "register"]

_ID_PATTERN = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+$")


@dataclass(frozen=True)
class Check:
    """One named check: ``fn(*candidates)`` raises ``AssertionError`` if the candidate is wrong."""

    name: str
    fn: Callable[..., None]


@dataclass
class Exercise:
    """A graded exercise.

    Attributes:
        id: ``<chapter-slug>.<short-name>``, e.g. ``attention.sdpa``.
        title: one line shown in reports and ``list``.
        names: the names of what the learner writes, in the order ``grade`` takes them; the command
            line looks these names up in the solution file.
        references: the reference solutions, in the same order (they must pass every check).
        signature: the specification a learner implements (signature and docstring text).
        hint: a nudge printed when a check fails.
        mutates: the arguments the learner's function is *meant* to modify in place (an optimizer
            step's parameters); every other argument is handed over as a copy, and modifying it fails.
        checks: filled by the :meth:`check` decorator.
    """

    id: str
    title: str
    names: tuple[str, ...]
    references: tuple[Any, ...]
    signature: str
    hint: str = ""
    mutates: tuple[str, ...] = ()
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _ID_PATTERN.match(self.id):
            raise ValueError(f"id: expected '<chapter-slug>.<name>' in lower case, got {self.id!r}")
        if len(self.names) != len(self.references) or not self.names:
            raise ValueError(
                f"{self.id}: names {self.names} and references must be non-empty and of equal length"
            )

    @property
    def chapter(self) -> str:
        """The slug of the exercise's chapter, the part of its id before the dot (``attention`` for
        ``attention.sdpa``)."""
        return self.id.split(".", 1)[0]

    def check(self, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        """Decorator registering ``fn`` as a check called ``name``."""

        def decorate(fn: Callable[..., None]) -> Callable[..., None]:
            if any(c.name == name for c in self.checks):
                raise ValueError(f"{self.id}: duplicate check name {name!r}")
            self.checks.append(Check(name, fn))
            return fn

        return decorate


_REGISTRY: dict[str, Exercise] = {}
_loaded = False

#: The chapters in the book's order (``_toc.yml``; ``tests/test_grading.py`` keeps the two equal).
CHAPTERS: tuple[str, ...] = (
    "generalization",
    "losses",
    "optimizers",
    "regularization",
    "metrics",
    "tokenization",
    "attention",
    "positional-encoding",
    "efficient-attention",
    "transformer-block",
    "gpt",
    "decoding",
    "architectures",
    "scaling-laws",
    "distributed-training",
    "modern-llms",
)


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry (ids are unique) and return it."""
    if exercise.id in _REGISTRY and _REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load_all() -> None:
    """Import every module of :mod:`companion.grading.exercises` so that each registers its exercises."""
    global _loaded
    if _loaded:
        return
    from companion.grading import exercises

    for info in pkgutil.iter_modules(exercises.__path__):
        importlib.import_module(f"{exercises.__name__}.{info.name}")
    _loaded = True


def all_exercises() -> list[Exercise]:
    """Every registered exercise in the book's order: by chapter (``CHAPTERS``), and within a
    chapter in the order the chapter poses them (the order its module registers them)."""
    _load_all()
    rank = {chapter: i for i, chapter in enumerate(CHAPTERS)}
    return sorted(_REGISTRY.values(), key=lambda e: rank.get(e.chapter, len(rank)))  # stable sort


def get_exercise(exercise_id: str) -> Exercise:
    """Look an exercise up by id.

    Raises:
        KeyError: with the closest known ids, if ``exercise_id`` is unknown.
    """
    _load_all()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        close = difflib.get_close_matches(exercise_id, list(_REGISTRY), n=3)
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown exercise {exercise_id!r}{suggestion} (`python -m companion.grading list` shows all)"
        ) from None
