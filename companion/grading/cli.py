"""Command line: ``python -m companion.grading list | show ID | check ID FILE | progress``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from companion.grading.progress import progress, record
from companion.grading.registry import all_exercises, get_exercise
from companion.grading.worker import grade_file

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0: all checks passed)."""
    parser = argparse.ArgumentParser(
        prog="python -m companion.grading", description="Grade LLM Foundations exercises."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every exercise id and title")
    sub.add_parser("progress", help="which exercises your graded attempts pass, chapter by chapter")
    show = sub.add_parser("show", help="print an exercise's specification")
    show.add_argument("exercise_id")
    check = sub.add_parser("check", help="grade the solution in FILE")
    check.add_argument("exercise_id")
    check.add_argument("file", type=Path, help="a .py file defining the names the exercise asks for")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds one check may run (default 60)")
    args = parser.parse_args(argv)

    if args.command == "list":  # in the book's order, chapter by chapter
        exercises = all_exercises()
        width = max(len(e.id) for e in exercises)
        chapter = None
        for e in exercises:
            if e.chapter != chapter:
                chapter = e.chapter
                print(f"{'' if e is exercises[0] else chr(10)}{chapter}")
            print(f"  {e.id:<{width}}  {e.title}  [{', '.join(e.names)}; {len(e.checks)} checks]")
        return 0

    if args.command == "progress":
        print(progress())
        return 0

    try:
        exercise = get_exercise(args.exercise_id)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.command == "show":
        print(f"{exercise.id} — {exercise.title}\n\n{exercise.signature}")
        if exercise.hint:
            print(f"\nHint: {exercise.hint}")
        return 0

    if not args.timeout > 0:
        parser.error(f"--timeout: expected a number of seconds > 0, got {args.timeout}")
    # The solution runs in child processes (companion.grading.worker): exiting, hanging or patching
    # the grader there cannot make this process report success.
    result = grade_file(exercise, args.file, timeout=args.timeout)
    print(result, file=sys.stdout if result.report is not None else sys.stderr)
    if result.report is not None:
        r = result.report
        record(exercise.id, r.passed, r.total, r.attempted)
    return result.status
