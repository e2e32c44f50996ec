"""Exercise grader (DESIGN §5): one mechanism for the notebook, the command line and CI.

In a notebook::

    from companion.grading import grade
    grade("attention.sdpa", my_sdpa)

On the command line::

    python -m companion.grading list
    python -m companion.grading check attention.sdpa my_solutions.py   # exit code 0 / 1
    python -m companion.grading progress                               # what passes, per chapter

A solution file is graded in child processes (:mod:`companion.grading.worker`): exiting, hanging or
patching the grader there cannot make ``check`` report success. Every candidate function receives
copies of its inputs (modifying one is a failed check of its own), and handing in only the companion's
own code is named as such instead of graded (:mod:`companion.grading.report`).
"""

from companion.grading.progress import progress
from companion.grading.registry import Check, Exercise, all_exercises, get_exercise, register
from companion.grading.report import CheckResult, GradeReport, grade, run_checks

__all__ = [
    "Check",
    "CheckResult",
    "Exercise",
    "GradeReport",
    "all_exercises",
    "get_exercise",
    "grade",
    "progress",
    "register",
    "run_checks",
]
