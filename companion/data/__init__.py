"""Packaged corpora, available offline after ``pip install`` (also on Colab)."""

from __future__ import annotations

from importlib import resources

__all__ = ["tiny_shakespeare"]


def tiny_shakespeare() -> str:
    """The tiny Shakespeare corpus (about 1.1 MB of public-domain text) as one string."""
    return resources.files(__package__).joinpath("tinyshakespeare.txt").read_text(encoding="utf-8")
