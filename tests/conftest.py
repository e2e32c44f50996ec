"""Shared pytest configuration: single-threaded torch, deterministic algorithms, GPU and browser markers."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Oversubscribed OpenMP threads make small CPU ops several times slower on a 2-core machine.
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True, warn_only=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite grades stubs and mutants in-process and in notebook kernels (which inherit this
# environment): record those attempts in a throwaway file, never in the tester's own progress record.
os.environ.setdefault(
    "LLMF_PROGRESS", os.path.join(tempfile.mkdtemp(prefix="llmf-progress-"), "progress.json")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


# --------------------------------------------------------------------------------------------------
# Grader proofs: which check caught each mutant (tests/test_grading.py records it; works under xdist,
# where the reports carry their user_properties to the controlling process).
# --------------------------------------------------------------------------------------------------

_PROOFS: dict[str, dict[str, list[str]]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == "mutants_caught_by":
            _PROOFS[report.nodeid.rsplit("[", 1)[-1].rstrip("]")] = value


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _PROOFS:
        return
    n_mutants = sum(len(m) for m in _PROOFS.values())
    rejected = sum(bool(checks) for m in _PROOFS.values() for checks in m.values())
    terminalreporter.write_sep("-", "grader proofs")
    terminalreporter.write_line(
        f"{rejected} of {n_mutants} mutants of {len(_PROOFS)} exercises rejected by a check's assertion"
        + ("" if config.getoption("verbose") > 0 else " (-v lists the checks that caught each)")
    )
    if config.getoption("verbose") > 0:
        for exercise_id in sorted(_PROOFS):
            for mutant, checks in _PROOFS[exercise_id].items():
                caught = "; ".join(checks) if checks else "NOT CAUGHT"
                terminalreporter.write_line(f"  {exercise_id} · {mutant}: {caught}")
