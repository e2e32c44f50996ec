"""companion.notebook: the chapters' helpers for showing code and checking it in print."""

from __future__ import annotations

import pytest
import torch

from companion.notebook import check_close, show_source


def _documented(x: int) -> int:
    """Double x.

    A longer explanation that the chapter does not show.
    """
    y = 2 * x  # the code stays
    return y


def _bare(x):
    return x + 1


class _Thing:
    """A class.

    More text.
    """

    def method(self) -> int:
        """One line only."""
        return 3


def test_show_source_cuts_the_docstring_to_its_first_line(capsys):
    show_source(_documented)
    out = capsys.readouterr().out
    assert '"""Double x. (…)"""' in out and "longer explanation" not in out
    assert "y = 2 * x  # the code stays" in out and out.startswith("def _documented(x: int) -> int:")
    show_source(_Thing.method)
    assert '"""One line only. (…)"""' in capsys.readouterr().out
    show_source(_Thing)
    out = capsys.readouterr().out
    assert '"""A class. (…)"""' in out and "def method" in out and "More text" not in out


def test_show_source_prints_undocumented_code_unchanged(capsys):
    show_source(_bare)
    assert capsys.readouterr().out == "def _bare(x):\n    return x + 1\n"


def test_show_source_rejects_what_has_no_source():
    with pytest.raises(TypeError, match="fn: expected a function, method or class with source code"):
        show_source(len)


def test_check_close_prints_the_bound_not_the_noise(capsys):
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    check_close("a vs a + a tiny shift", a, a + 1e-13, 1e-12)
    out = capsys.readouterr().out
    assert out.rstrip().endswith("max |diff| <= 1e-12") and "e-13" not in out
    assert out.index("max") == 59  # names padded to one column
    with pytest.raises(AssertionError, match=r"a vs a \+ 1: max \|difference\| 1 exceeds 0.5"):
        check_close("a vs a + 1", a, a + 1, 0.5)
    with pytest.raises(ValueError, match=r"shapes differ, \(2,\) vs \(3,\)"):
        check_close("shapes", a, torch.zeros(3, dtype=torch.float64), 1.0)
    check_close("mixed dtypes", a.float(), a, 1e-6)  # torch promotes float32 against float64
