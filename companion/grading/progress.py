"""A learner's progress: the latest result of every exercise they graded, kept in a file they own.

``grade(...)`` in a notebook and ``python -m companion.grading check`` on the command line record each
attempt; ``python -m companion.grading progress`` (or :func:`progress` in a notebook) shows them
chapter by chapter, in the book's order. The record is a small JSON file, by default
``~/.llm-foundations/progress.json`` (set ``LLMF_PROGRESS`` to keep it elsewhere, e.g. next to your
solutions); delete it to start again.

A collapsed solution cell grades the book's solution, not yours: it defines its functions under other
names (``sdpa_solution``), and such a run is not recorded, so "Run all" never marks an exercise done.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from companion.files import atomic_open
from companion.grading.registry import CHAPTERS, all_exercises

__all__ = ["Progress", "is_book_solution", "progress", "progress_path", "record"]

_SOLUTION_SUFFIXES = ("_solution", "Solution")


def progress_path() -> Path:
    """Where the record lives: ``$LLMF_PROGRESS``, else ``~/.llm-foundations/progress.json``."""
    override = os.environ.get("LLMF_PROGRESS")
    return Path(override).expanduser() if override else Path.home() / ".llm-foundations" / "progress.json"


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # an unreadable record is started afresh rather than stopping the grader
    return data.get("exercises", {}) if isinstance(data, dict) else {}


def is_book_solution(candidates: tuple[Any, ...]) -> bool:
    """Whether the candidates are the book's collapsed solutions (named ``…_solution``/``…Solution``)."""
    names = [getattr(c, "__name__", "") for c in candidates]
    return bool(names) and all(n.endswith(_SOLUTION_SUFFIXES) for n in names)


def record(exercise_id: str, passed: int, total: int, attempted: bool) -> None:
    """Store one attempt's outcome (the latest wins; a pass is remembered as ``ever_passed``).

    Never raises: a read-only home folder must not stop a learner from grading.
    """
    path = progress_path()
    try:
        exercises = _load(path)
        previous = exercises.get(exercise_id, {})
        exercises[exercise_id] = {
            "passed": passed,
            "total": total,
            "attempted": attempted,
            "ever_passed": bool(previous.get("ever_passed")) or (attempted and passed == total),
            "date": date.today().isoformat(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            json.dump({"version": 1, "exercises": exercises}, f, indent=1, sort_keys=True)
    except OSError:
        pass


@dataclass(frozen=True)
class Progress:
    """The record read back; prints as a per-chapter table."""

    exercises: dict[str, dict[str, Any]]
    path: Path

    def done(self, exercise_id: str) -> bool:
        """Whether the latest attempt at ``exercise_id`` passed every check."""
        e = self.exercises.get(exercise_id)
        return bool(e and e["attempted"] and e["passed"] == e["total"])

    def __str__(self) -> str:
        by_chapter: dict[str, list] = {c: [] for c in CHAPTERS}
        for ex in all_exercises():
            by_chapter.setdefault(ex.chapter, []).append(ex)
        total = sum(len(v) for v in by_chapter.values())
        done = sum(self.done(ex.id) for v in by_chapter.values() for ex in v)
        lines = [f"{done} of {total} exercises pass (record: {self.path})"]
        for chapter, exercises in by_chapter.items():
            if not exercises:
                continue
            n = sum(self.done(ex.id) for ex in exercises)
            lines.append(f"\n{chapter}: {n}/{len(exercises)}")
            for ex in exercises:
                e = self.exercises.get(ex.id)
                if e is None:
                    mark, note = "·", "not graded yet"
                elif not e["attempted"]:
                    mark, note = "·", f"not attempted ({e['date']})"
                elif e["passed"] == e["total"]:
                    mark, note = "✓", f"{e['passed']}/{e['total']} checks ({e['date']})"
                else:
                    again = "; passed before" if e.get("ever_passed") else ""
                    mark, note = "✗", f"{e['passed']}/{e['total']} checks ({e['date']}{again})"
                lines.append(f"  {mark} {ex.id:<36} {note}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython shows the table, not a repr
        p.text(str(self))


def progress() -> Progress:
    """Your progress, chapter by chapter (in a notebook: the cell shows the table)."""
    path = progress_path()
    return Progress(_load(path), path)
