"""Proof that the grader works (DESIGN §5): for every exercise the reference passes every check, every
mutant (a plausible wrong answer) fails at least one, and an unfilled stub reports "not attempted"."""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from companion.grading import all_exercises, get_exercise, grade, run_checks

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = all_exercises()
IDS = [e.id for e in EXERCISES]


def _mutants(exercise_id: str) -> list[tuple]:
    chapter = exercise_id.split(".")[0].replace("-", "_")
    module = importlib.import_module(f"tests.mutants.{chapter}")
    return [m if isinstance(m, tuple) else (m,) for m in module.MUTANTS.get(exercise_id, [])]


def _stub(*args, **kwargs):
    raise NotImplementedError


def _graded_in_notebooks() -> set[str]:
    """The exercise ids the chapters call ``grade("…")`` on."""
    ids: set[str] = set()
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                ids |= set(re.findall(r'grade\("([\w.-]+)"', "".join(cell["source"])))
    return ids


def test_registry_is_exactly_the_chapters_exercises():
    # The real count, not a floor: an exercise lost from the registry, or added to a chapter without
    # a grader, fails here.
    assert len(EXERCISES) == len(set(IDS)) == 73
    assert set(IDS) == _graded_in_notebooks()
    assert all(len(e.checks) >= 3 for e in EXERCISES), {e.id: len(e.checks) for e in EXERCISES}


@pytest.mark.parametrize("exercise_id", IDS)
def test_reference_passes_every_check(exercise_id):
    ex = get_exercise(exercise_id)
    report = run_checks(ex, *ex.references, allow_reference=True)
    assert report.ok, str(report)
    assert report.passed == len(ex.checks)


def _proof(ex, mutants: list[tuple]) -> tuple[dict[str, list[str]], list[str]]:
    """For each mutant, the checks whose assertion rejected it, and what is wrong with the proof.

    A mutant counts only when a check's assertion rejects it: one that merely crashes (a shape error,
    a missing attribute) proves nothing about the checks.
    """
    caught_by, problems = {}, []
    for i, mutant in enumerate(mutants, 1):
        name = f"{i}: " + " + ".join(m.__name__ for m in mutant)  # numbered: lambdas share a name
        report = run_checks(ex, *mutant, allow_reference=True)
        caught_by[name] = [r.name for r in report.results if r.status == "failed"]
        if not report.attempted:
            problems.append(f"{name}: reported as not attempted")
        elif report.ok:
            problems.append(f"{name}: passed every check")
        elif not caught_by[name]:
            crashes = "; ".join(f"{r.name}: {r.message}" for r in report.results if r.status == "error")
            problems.append(f"{name}: no check rejected it, it only crashed ({crashes})")
    return caught_by, problems


@pytest.mark.parametrize("exercise_id", IDS)
def test_at_least_three_mutants_each_rejected_by_a_check(exercise_id, record_property):
    """Which checks caught each mutant is recorded for the terminal summary (``-v`` lists them)."""
    mutants = _mutants(exercise_id)
    assert len(mutants) >= 3, f"{exercise_id} has {len(mutants)} mutants; at least 3 are required"
    caught_by, problems = _proof(get_exercise(exercise_id), mutants)
    record_property("mutants_caught_by", caught_by)
    assert not problems, f"{exercise_id}:\n  " + "\n  ".join(problems)


def test_a_mutant_that_only_crashes_does_not_count():
    from companion.grading.checks import expect
    from companion.grading.registry import Exercise

    toy = Exercise("toy.double", "double a number", ("double",), (lambda x: 2 * x,), "def double(x): ...")

    @toy.check("double(3) == 6")
    def _six(fn):
        expect(fn(3) == 6, f"double(3): expected 6, got {fn(3)}")

    def wrong(x):
        return x + 2

    def crashes(x):
        raise TypeError("unsupported operand")

    def right(x):
        return x * 2

    def stub(x):
        raise NotImplementedError

    caught_by, problems = _proof(toy, [(wrong,), (crashes,), (right,), (stub,)])
    assert caught_by == {"1: wrong": ["double(3) == 6"], "2: crashes": [], "3: right": [], "4: stub": []}
    line = crashes.__code__.co_firstlineno + 1  # the error names the learner's line that raised
    where = f'test_grading.py, line {line}: raise TypeError("unsupported operand")'
    assert problems == [
        f"2: crashes: no check rejected it, it only crashed (double(3) == 6: TypeError: unsupported operand "
        f"({where}))",
        "3: right: passed every check",
        "4: stub: reported as not attempted",
    ]


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_reports_not_attempted(exercise_id):
    ex = get_exercise(exercise_id)
    report = run_checks(ex, *([_stub] * len(ex.names)))
    assert not report.attempted and not report.ok
    assert "not attempted" in str(report)


def test_report_is_deterministic_and_leaves_global_rng_alone():
    import torch

    from tests.mutants.attention import sdpa_no_scaling

    _ = torch.manual_seed(123)
    before = torch.rand(1)
    _ = torch.manual_seed(123)
    first = str(grade("attention.sdpa", sdpa_no_scaling))
    after = torch.rand(1)
    assert torch.equal(before, after), "grading consumed the learner's random stream"
    assert first == str(grade("attention.sdpa", sdpa_no_scaling))
    assert "✗" in first and "expected" in first


def test_reports_are_deterministic_for_candidates_that_draw_from_global_generators():
    import random

    import numpy as np

    from tests.mutants.regularization import eda_global_random  # seeds itself from random.random()

    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    before = (random.random(), np.random.rand())  # noqa: NPY002
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    first = str(grade("regularization.text-augment", eda_global_random))
    assert (random.random(), np.random.rand()) == before, "grading moved the learner's random streams"  # noqa: NPY002
    random.random()  # a different global state must not change the report
    assert str(grade("regularization.text-augment", eda_global_random)) == first


def test_report_text_for_a_passing_solution():
    from companion.nn.masks import combine, padding

    ex = get_exercise("attention.padding-mask")
    text = str(run_checks(ex, padding, combine, allow_reference=True))
    n = len(ex.checks)
    assert text.splitlines()[0].endswith(f"{n}/{n} checks passed (all checks passed ✓)")


def test_handing_in_the_companion_code_is_named_not_graded():
    from companion.nn.masks import combine, padding
    from companion.nn.sdpa import scaled_dot_product_attention
    from companion.sampling import apply_temperature, sample, top_p_filter

    report = grade("attention.padding-mask", padding, combine)
    assert not report.ok and report.total == 1
    assert "padding_mask is companion.nn.masks.padding from the companion package" in str(report)
    report = grade("attention.sdpa", scaled_dot_product_attention)
    assert not report.ok and "companion.nn.sdpa.scaled_dot_product_attention" in str(report)
    # companion code for some names and the learner's own for the others is graded (the chapters
    # grade one part at a time that way)
    from tests.mutants.decoding import top_k_breaking_ties as own_top_k

    report = grade("decoding.sampling-filters", apply_temperature, own_top_k, top_p_filter, sample)
    assert report.total == len(get_exercise("decoding.sampling-filters").checks) and not report.ok
    assert "from the companion package" not in str(report)


def _sdpa_ok(q, k, v, mask=None, is_causal=False):
    import torch

    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool)
    allowed = torch.tril(allowed) if is_causal else allowed
    allowed = allowed if mask is None else allowed & mask
    weights = torch.nan_to_num(torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1))
    return weights @ v, weights


def test_a_solution_that_modifies_its_inputs_fails_with_its_own_finding():
    """Before: a wrong sdpa that zeroes v passed 7/7 (the check's reference then saw the zeros too),
    and a right one that scales q in place failed 5/7 with mismatch messages."""

    def zeroes_v(q, k, v, mask=None, is_causal=False):
        v.zero_()
        return _sdpa_ok(q, k, v, mask, is_causal)

    def scales_q(q, k, v, mask=None, is_causal=False):
        q.mul_(0.5)
        return _sdpa_ok(q * 2, k, v, mask, is_causal)

    assert grade("attention.sdpa", _sdpa_ok).ok
    for candidate, name in ((zeroes_v, "v"), (scales_q, "q")):
        report = grade("attention.sdpa", candidate)
        assert report.passed == 0, str(report)
        assert all(f"modified its input `{name}` in place" in r.message for r in report.results)

    from companion.sampling import apply_temperature as reference

    def temperature_in_place(logits, temperature):
        return logits.div_(temperature)

    def temperature_right(logits, temperature):
        return logits / temperature

    from companion.sampling import sample, top_k_filter, top_p_filter

    ex = get_exercise("decoding.sampling-filters")
    others = (top_k_filter, top_p_filter, sample)
    wrong = run_checks(ex, temperature_in_place, *others, allow_reference=True)
    assert any("modified its input `logits` in place" in r.message for r in wrong.results)
    right = run_checks(ex, temperature_right, *others, allow_reference=True)
    assert right.ok, str(right)
    assert run_checks(ex, reference, *others, allow_reference=True).ok


def test_exiting_or_interrupting_in_a_check_is_never_success():
    def exits(q, k, v, mask=None, is_causal=False):
        raise SystemExit(0)

    report = grade("attention.sdpa", exits)
    assert not report.ok and report.passed == 0
    assert "called sys.exit(0)" in report.results[0].message

    calls = []

    def interrupted(q, k, v, mask=None, is_causal=False):
        calls.append(1)
        raise KeyboardInterrupt

    report = grade("attention.sdpa", interrupted)
    assert not report.ok and len(calls) == 1  # the first interrupt stops the grading
    assert "interrupted" in report.results[0].message
    assert all(r.message == "not run: grading was interrupted" for r in report.results[1:])


def test_wrong_number_of_candidates_is_a_clear_error():
    with pytest.raises(TypeError, match="expected 2 candidate"):
        grade("attention.padding-mask", _stub)


def test_unknown_exercise_suggests_close_ids():
    with pytest.raises(KeyError, match=r"did you mean attention\.sdpa"):
        grade("attention.spda", _stub)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "companion.grading", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_list_and_show():
    out = _cli("list")
    assert out.returncode == 0
    for exercise_id in IDS:
        assert exercise_id in out.stdout
    show = _cli("show", "attention.sdpa")
    assert show.returncode == 0 and "def sdpa(" in show.stdout
    assert f"Hint: {get_exercise('attention.sdpa').hint}" in show.stdout


def test_exercises_are_listed_in_the_books_order():
    """Chapters in _toc.yml's order (CHAPTERS is kept equal to it), and within a chapter in the order
    its notebook poses them; `list` prints them so, under one heading per chapter."""
    from companion.grading.registry import CHAPTERS

    toc = [line.split("file: ")[1].strip() for line in (ROOT / "_toc.yml").read_text().splitlines()
           if "file: notebooks/" in line]  # fmt: skip
    assert CHAPTERS == tuple(Path(t).name for t in toc)
    in_notebooks: list[str] = []
    for t in toc:
        for cell in json.loads((ROOT / f"{t}.ipynb").read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                for i in re.findall(r'grade\("([\w.-]+)"', "".join(cell["source"])):
                    if i not in in_notebooks:
                        in_notebooks.append(i)
    assert [e.id for e in all_exercises()] == in_notebooks
    listed = re.findall(r"^  (\S+)", _cli("list").stdout, flags=re.M)
    assert listed == in_notebooks
    headings = [line for line in _cli("list").stdout.splitlines() if line and not line.startswith(" ")]
    assert headings == [c for c in CHAPTERS if any(i.startswith(c + ".") for i in in_notebooks)]


def test_cli_check_exit_codes(tmp_path: Path):
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent(
            """
            from companion.nn.sdpa import scaled_dot_product_attention

            def sdpa(q, k, v, mask=None, is_causal=False):
                return scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
            """
        )
    )
    bad = tmp_path / "bad.py"
    bad.write_text("from tests.mutants.attention import sdpa_no_scaling as sdpa\n")
    missing = tmp_path / "missing.py"
    missing.write_text("x = 1\n")
    ok = _cli("check", "attention.sdpa", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "checks passed (all checks passed ✓)" in ok.stdout
    fail = subprocess.run(
        [sys.executable, "-m", "companion.grading", "check", "attention.sdpa", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert fail.returncode == 1, fail.stdout + fail.stderr
    assert "✗" in fail.stdout
    absent = _cli("check", "attention.sdpa", str(missing))
    assert absent.returncode == 2 and "does not define sdpa" in absent.stderr
    unknown = _cli("check", "attention.nope", str(good))
    assert unknown.returncode == 2


def _check_file(tmp_path: Path, code: str, *extra: str, exercise: str = "attention.sdpa") -> tuple:
    path = tmp_path / "solution.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "companion.grading", "check", exercise, str(path), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    return out.returncode, out.stdout + out.stderr


GOOD = """
from tests.test_grading import _sdpa_ok

def sdpa(q, k, v, mask=None, is_causal=False):
    return _sdpa_ok(q, k, v, mask, is_causal)
"""


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        ("import sys\nsys.exit(0)\n", 2, "called sys.exit(0) while being imported; no check ran"),
        ("import os\nos._exit(0)\n", 2, "ended the grading process (exit code 0) while being imported"),
        (GOOD + "\ndef sdpa(*args, **kwargs):\n    import sys; sys.exit(0)\n", 1, "called sys.exit(0)"),
        (GOOD + "\ndef sdpa(*args, **kwargs):\n    import os; os._exit(0)\n", 1, "ended the grading process"),
        (
            "from companion.nn.sdpa import scaled_dot_product_attention as sdpa\n",
            1,
            "from the companion package",
        ),
        (
            "import companion.grading.exercises.attention as a\na.expect_close = lambda *x, **k: None\n"
            + GOOD,
            1,
            "replaced companion.grading.exercises.attention.expect_close while being imported",
        ),
        (
            "import torch\ntorch.allclose = lambda *a, **k: True\n" + GOOD,
            1,
            "replaced torch.allclose",
        ),
        ("raise RuntimeError('boom')\n", 2, "could not import"),
    ],
    ids=[
        "exit-at-import",
        "os-exit-at-import",
        "exit-in-check",
        "os-exit-in-check",
        "the-reference",
        "patch-the-grader",
        "patch-torch",
        "crash-at-import",
    ],
)
def test_cli_only_a_completed_report_exits_0(tmp_path: Path, code: str, status: int, says: str):
    """Before: each of these made `check` exit 0 (sys.exit, os._exit), or pass every check (the
    reference, a patched grader)."""
    returncode, text = _check_file(tmp_path, code)
    assert returncode == status, text
    assert says in text, text


def test_cli_times_out_a_check_and_goes_on(tmp_path: Path):
    """Before: an infinite loop hung `check` forever. Only the first call loops; the child is killed
    after the timeout and the remaining checks run in a fresh process and pass."""
    code = GOOD.replace(
        "def sdpa(",
        "import os\nMARK = os.path.join(os.path.dirname(__file__), 'looped')\n\ndef sdpa(",
    ).replace(
        "    return _sdpa_ok",
        "    if not os.path.exists(MARK):\n        open(MARK, 'w').close()\n"
        "        while True:\n            pass\n    return _sdpa_ok",
    )
    returncode, text = _check_file(tmp_path, code, "--timeout", "3")
    n = len(get_exercise("attention.sdpa").checks)
    assert returncode == 1, text
    assert f"{n - 1}/{n} checks passed" in text and "did not finish within 3 s" in text


def test_cli_bounds_what_the_solution_prints(tmp_path: Path):
    code = GOOD.replace("    return _sdpa_ok", "    print('x' * 100_000)\n    return _sdpa_ok")
    returncode, text = _check_file(tmp_path, code)
    assert returncode == 0, text[:2000]
    assert "Your solution printed (4,000 characters, " in text and "more not shown" in text
    assert len(text) < 8000


def test_cli_stops_after_two_checks_in_a_row_hang(tmp_path: Path):
    import time

    start = time.monotonic()
    returncode, text = _check_file(
        tmp_path, "def sdpa(*args, **kwargs):\n    while True:\n        pass\n", "--timeout", "2"
    )
    n = len(get_exercise("attention.sdpa").checks)
    assert returncode == 1 and text.count("did not finish within 2 s") == 2, text
    assert text.count("not run: two checks in a row") == n - 2
    assert time.monotonic() - start < 60


def test_progress_records_the_learners_attempts_and_not_the_books_solutions(tmp_path, monkeypatch, capsys):
    import torch

    from companion.grading import progress
    from companion.grading.cli import main

    monkeypatch.setenv("LLMF_PROGRESS", str(tmp_path / "progress.json"))
    assert "0 of" in str(progress()) and not (tmp_path / "progress.json").exists()

    def bidirectional_mask(t):
        return torch.ones(t, t, dtype=torch.bool)

    def causal_mask(t):
        return torch.ones(t, t, dtype=torch.bool).tril()

    def prefix_lm_mask(t, prefix_len):
        i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
        return (j < prefix_len) | (j <= i)

    def wrong_prefix_lm_mask(t, prefix_len):
        return causal_mask(t)

    wrong_prefix_lm_mask.__name__ = "prefix_lm_mask"
    assert not grade("architectures.masks", bidirectional_mask, causal_mask, wrong_prefix_lm_mask).ok
    assert not progress().done("architectures.masks")
    assert grade("architectures.masks", bidirectional_mask, causal_mask, prefix_lm_mask).ok
    assert progress().done("architectures.masks")
    # The book's collapsed solution cell (names ending in _solution) is not the learner's attempt
    prefix_lm_mask_solution = wrong_prefix_lm_mask
    for f, name in (
        (bidirectional_mask, "bidirectional_mask_solution"),
        (causal_mask, "causal_mask_solution"),
    ):
        f.__name__ = name
    prefix_lm_mask_solution.__name__ = "prefix_lm_mask_solution"
    grade("architectures.masks", bidirectional_mask, causal_mask, prefix_lm_mask_solution)
    assert progress().done("architectures.masks")

    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "1 of 73 exercises pass" in out and "✓ architectures.masks" in out
    assert out.index("\nlosses:") < out.index("\nattention:") < out.index("\narchitectures:")  # book order
    (tmp_path / "progress.json").write_text("{not json")  # a damaged record starts afresh, never crashes
    assert "0 of 73" in str(progress())


def test_a_solution_that_raises_is_reported_with_its_file_and_line(tmp_path):
    from companion.grading.worker import grade_file

    solution = tmp_path / "my_solution.py"
    solution.write_text("import torch\n\n\ndef sdpa(q, k, v, mask=None):\n    return q + undefined\n")
    result = grade_file("attention.sdpa", solution)
    assert result.status == 1
    assert "NameError: name 'undefined' is not defined (my_solution.py, line 5: return q + undefined)" in str(
        result
    )


def _as_strings(value):
    """Every number in ``value`` (float, 0-d tensor or array, inside dicts, tuples and lists) as a str."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return str(value.detach().reshape(()).item())
    if isinstance(value, np.ndarray) and value.size == 1:
        return str(value.reshape(()).item())
    if isinstance(value, float | np.floating):
        return str(value)
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_as_strings(v) for v in value)
    return value


@pytest.mark.parametrize(
    "exercise_id",
    ["generalization.bias-variance", "metrics.regression", "metrics.classification", "metrics.mrr",
     "metrics.ndcg", "metrics.roc-auc", "attention.scaling-stats", "positional-encoding.extrapolation",
     "gpt.lm-loss", "distributed-training.grad-accum"],
)  # fmt: skip
def test_a_number_handed_back_as_a_string_is_not_accepted(exercise_id):
    # float("0.5") == 0.5, so a check that converts with float() would pass a solution that returns text
    ex = get_exercise(exercise_id)

    def stringify(ref):
        @functools.wraps(ref)
        def candidate(*args, **kwargs):
            return _as_strings(ref(*args, **kwargs))

        candidate.__module__ = "learner"
        return candidate

    report = run_checks(ex, *(stringify(r) for r in ex.references), allow_reference=True)
    assert not report.ok and report.passed < report.total, str(report)
