"""Grading a solution *file* in a child process, so that only a finished report can say "passed".

``python -m companion.grading check ID FILE`` runs :func:`grade_file`: a child Python process imports
the solution and runs the checks one by one, sending each result to this process over a pipe. The
parent never imports the solution, so nothing the solution does can fake success:

* a solution that calls ``sys.exit`` or ``os._exit`` (at import or inside the graded function), or
  crashes the interpreter, ends the child — the check it was in fails with the exit code, and the
  remaining checks run in a fresh child;
* a check that does not finish within ``timeout`` seconds (an infinite loop) fails, the child is
  killed, and grading goes on with the next check (after two such checks in a row the rest are
  reported as not run, so a function that always hangs costs two timeouts, not one per check);
* a solution that replaces a function of the grader or of a library it relies on (``torch``,
  ``numpy``, ``math``, any ``companion`` module) while being imported or graded is refused;
* what the solution prints is collected, and at most ``max_output`` characters are shown.

The exit status is 0 only when every check of the exercise reported "passed".
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from companion.grading.registry import Exercise, get_exercise
from companion.grading.report import CheckResult, GradeReport, iter_checks, reference_note

__all__ = ["FileGrade", "grade_file"]

#: Libraries whose functions a solution must not replace (nor any ``companion`` module's).
WATCHED = ("torch", "torch.nn", "torch.nn.functional", "torch.testing", "numpy", "math", "builtins")


@dataclass
class FileGrade:
    """The outcome of grading a file: the report (None when no check could run), a message for the
    learner, the exit status and what the solution printed."""

    report: GradeReport | None
    message: str = ""
    status: int = 1
    output: str = ""
    output_chars: int = 0

    def __str__(self) -> str:
        parts = [str(self.report)] if self.report is not None else []
        if self.message:
            parts.append(self.message)
        if self.output:
            shown = len(self.output)
            more = f", {self.output_chars - shown:,} more not shown" if self.output_chars > shown else ""
            parts.append(f"Your solution printed ({shown:,} characters{more}):\n{self.output.rstrip()}")
        return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# The child: import the solution, run the checks, report each result on a pipe
# --------------------------------------------------------------------------------------------------


def _callables_of(module: Any) -> dict[str, int]:
    try:
        items = list(vars(module).items())
    except TypeError:
        return {}
    return {k: id(v) for k, v in items if callable(v)}


def _snapshot() -> dict[str, dict[str, int]]:
    """The identity of every function and class in the watched libraries and ``companion`` modules."""
    names = [m for m in list(sys.modules) if m == "companion" or m.startswith("companion.")]
    return {m: _callables_of(sys.modules[m]) for m in (*WATCHED, *names) if m in sys.modules}


def _changes(before: dict[str, dict[str, int]]) -> list[str]:
    """``module.name`` of each function or class replaced or deleted since ``before``."""
    changed = []
    for module, attrs in before.items():
        now = _callables_of(sys.modules.get(module))
        changed += [f"{module}.{k}" for k, v in attrs.items() if now.get(k) != v]
    return changed


def _send(channel: Any, **event: Any) -> None:
    channel.write(json.dumps(event) + "\n")
    channel.flush()


def _load_solution(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_solution_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(exercise_id: str, path: str, start: int, fd: int) -> int:
    channel = os.fdopen(fd, "w", encoding="utf-8")
    exercise = get_exercise(exercise_id)
    import numpy  # noqa: F401 (watched: load it before the snapshot)
    import torch.testing  # noqa: F401

    before = _snapshot()
    try:
        module = _load_solution(Path(path))
    except SystemExit as exc:
        _send(channel, event="import-exit", code=repr(exc.code))
        return 0
    except BaseException as exc:  # a solution that fails to import: report it, whatever it raised
        _send(channel, event="import-error", message=f"{type(exc).__name__}: {exc}")
        return 0
    if changed := _changes(before):
        _send(channel, event="tampered", names=changed, when="while being imported")
        return 0
    missing = [n for n in exercise.names if not hasattr(module, n)]
    if missing:
        _send(channel, event="missing", names=missing)
        return 0
    candidates = tuple(getattr(module, n) for n in exercise.names)
    if note := reference_note(exercise, candidates):
        _send(channel, event="reference", message=note)
        return 0
    for index, result in iter_checks(
        exercise, candidates, start=start, announce=lambda i: _send(channel, event="start", index=i)
    ):
        if changed := _changes(before):
            _send(channel, event="tampered", names=changed, when=f"during the check {result.name!r}")
            return 0
        _send(channel, event="result", index=index, status=result.status, message=result.message)
    _send(channel, event="done")
    return 0


# --------------------------------------------------------------------------------------------------
# The parent: start children, enforce the timeout, assemble the report
# --------------------------------------------------------------------------------------------------


class _Output:
    """Drain a child's stdout and stderr in a thread, keeping the first ``limit`` characters."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.kept: list[str] = []
        self.total = 0
        self.limit = limit
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream: Any) -> None:
        for chunk in iter(lambda: stream.read(4096), b""):
            text = chunk.decode("utf-8", errors="replace")
            room = self.limit - sum(len(k) for k in self.kept)
            if room > 0:
                self.kept.append(text[:room])
            self.total += len(text)

    def text(self) -> str:
        self.thread.join(timeout=5)
        return "".join(self.kept)


def _read_events(fd: int, proc: subprocess.Popen, timeout: float) -> Any:
    """Yield ``(event, None)`` for each event line, ``(None, "timeout")`` when a started check runs
    past ``timeout``, and ``(None, "eof")`` when the child is gone."""
    buffer = b""
    deadline: float | None = None
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            yield None, "timeout"
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            yield None, "eof"
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            event = json.loads(line)
            deadline = time.monotonic() + timeout if event["event"] == "start" else None
            yield event, None


def grade_file(
    exercise_id: str | Exercise, path: str | Path, *, timeout: float = 60.0, max_output: int = 4000
) -> FileGrade:
    """Grade the solution file ``path`` in child processes (see the module docstring).

    Args:
        exercise_id: an exercise id (``python -m companion.grading list``) or an
            :class:`~companion.grading.registry.Exercise`.
        path: a ``.py`` file that defines the names the exercise asks for.
        timeout: seconds one check may run.
        max_output: characters of the solution's own printout to keep.

    Returns:
        A :class:`FileGrade`; its ``status`` is 0 only if every check passed, 1 if some failed, 2 if
        the file could not be graded at all (missing, not importable, exiting while imported).
    """
    exercise = exercise_id if isinstance(exercise_id, Exercise) else get_exercise(exercise_id)
    path = Path(path)
    if not path.is_file():
        return FileGrade(None, f"error: solution file not found: {path}", status=2)
    if not timeout > 0:
        raise ValueError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
    n = len(exercise.checks)
    results: dict[int, CheckResult] = {}
    outputs: list[_Output] = []
    start = 0
    timeouts = 0  # consecutive checks that ran past the timeout
    while start < n:
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-m", "companion.grading.worker", exercise.id, str(path), str(start)]
        proc = subprocess.Popen(
            [*cmd, str(write_fd)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        out = _Output(proc.stdout, max_output)
        outputs.append(out)
        current: int | None = None
        next_start = n
        try:
            for event, end in _read_events(read_fd, proc, timeout):
                if end == "timeout":
                    proc.kill()
                    results[current] = CheckResult(
                        exercise.checks[current].name,
                        "error",
                        f"did not finish within {timeout:g} s (an infinite loop?); the next checks ran in a "
                        "fresh process",
                    )
                    next_start = current + 1
                    timeouts += 1
                    if timeouts == 2:  # two checks hung in a row: the function hangs, stop here
                        for later in range(next_start, n):
                            results[later] = CheckResult(
                                exercise.checks[later].name,
                                "error",
                                "not run: two checks in a row did not finish within the timeout",
                            )
                        next_start = n
                    break
                timeouts = 0 if end is None and event["event"] == "result" else timeouts
                if end == "eof":
                    code = proc.wait()
                    if current is not None and current not in results:
                        results[current] = CheckResult(
                            exercise.checks[current].name,
                            "error",
                            f"the solution ended the grading process (exit code {code}) during this check: "
                            "a graded function must return or raise, never call sys.exit or os._exit",
                        )
                        next_start = current + 1
                    elif current is None:
                        return FileGrade(
                            None,
                            f"error: {path} ended the grading process (exit code {code}) while being "
                            "imported; no check ran",
                            status=2,
                            output=out.text(),
                            output_chars=out.total,
                        )
                    break
                kind = event["event"]
                if kind == "start":
                    current = int(event["index"])
                elif kind == "result":
                    index = int(event["index"])
                    results[index] = CheckResult(
                        exercise.checks[index].name, event["status"], event["message"]
                    )
                elif kind == "done":
                    next_start = n
                    break
                elif kind in ("import-exit", "import-error", "missing", "reference", "tampered"):
                    status = 1 if kind in ("reference", "tampered") else 2
                    message = _refusal(kind, event, path)
                    return FileGrade(None, message, status=status, output=out.text(), output_chars=out.total)
        finally:
            os.close(read_fd)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        start = next_start
    ordered = tuple(
        results.get(i, CheckResult(c.name, "error", "not run (the grading process ended early)"))
        for i, c in enumerate(exercise.checks)
    )
    report = GradeReport(exercise, ordered)
    text = "".join(o.text() for o in outputs)
    return FileGrade(
        report,
        status=0 if report.ok else 1,
        output=text,
        output_chars=sum(o.total for o in outputs),
    )


def _refusal(kind: str, event: dict[str, Any], path: Path) -> str:
    if kind == "import-exit":
        return (
            f"error: {path} called sys.exit({event['code']}) while being imported; no check ran "
            "(a solution file defines functions, it does not exit)"
        )
    if kind == "import-error":
        return f"error: could not import {path}: {event['message']}"
    if kind == "missing":
        return f"error: {path} does not define {', '.join(event['names'])}"
    if kind == "reference":
        return f"not graded: {event['message']}"
    names = ", ".join(event["names"][:5]) + (" …" if len(event["names"]) > 5 else "")
    return (
        f"not graded: the solution replaced {names} {event['when']}; a solution may not change the "
        "grader or the libraries it checks with"
    )


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
