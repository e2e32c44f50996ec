"""Command line: ``python -m companion.grading list | show ID | check ID FILE``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from companion.grading.registry import all_exercises, get_exercise
from companion.grading.report import run_checks

__all__ = ["main"]


def _load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"solution file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_solution_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0: all checks passed)."""
    parser = argparse.ArgumentParser(
        prog="python -m companion.grading", description="Grade LLM Foundations exercises."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every exercise id and title")
    show = sub.add_parser("show", help="print an exercise's specification")
    show.add_argument("exercise_id")
    check = sub.add_parser("check", help="grade the solution in FILE")
    check.add_argument("exercise_id")
    check.add_argument("file", type=Path, help="a .py file defining the names the exercise asks for")
    args = parser.parse_args(argv)

    if args.command == "list":
        exercises = all_exercises()
        width = max(len(e.id) for e in exercises)
        for e in exercises:
            print(f"{e.id:<{width}}  {e.title}  [{', '.join(e.names)}; {len(e.checks)} checks]")
        return 0

    try:
        exercise = get_exercise(args.exercise_id)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.command == "show":
        print(f"{exercise.id} — {exercise.title}\n\n{exercise.signature}")
        return 0

    try:
        module = _load_module(args.file)
    except Exception as exc:
        print(f"error: could not import {args.file}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    missing = [n for n in exercise.names if not hasattr(module, n)]
    if missing:
        print(f"error: {args.file} does not define {', '.join(missing)}", file=sys.stderr)
        return 2
    report = run_checks(exercise, *(getattr(module, n) for n in exercise.names))
    print(report)
    return 0 if report.ok else 1
