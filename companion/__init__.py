"""Companion package of *LLM Foundations* (大模型基础).

The chapters of the book build each idea from scratch; this package holds the tested, efficient
versions they verify against and that learners can reuse: attention and masks (``companion.nn``),
device helpers (``companion.device``), analysis helpers (``companion.analysis``), testing helpers
(``companion.testing``) and the exercise grader (``companion.grading``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
