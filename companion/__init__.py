"""Companion package of *LLM Foundations* (大模型基础).

The chapters of the book build each idea from scratch; this package holds the tested, efficient
versions they verify against and that learners can reuse. One module per idea:

* helpers — ``device`` (devices, seeding, ``reproducible``), ``files`` (atomic writes, results and
  provenance), ``notebook`` (``show_source``, ``check_close``), ``testing``, ``env``;
* data and weights — ``data`` (tiny Shakespeare, augmentation), ``hub`` (pinned pretrained assets),
  ``gguf`` (the GGUF reader);
* learning — ``losses`` (every loss, the LM loss and perplexity included), ``metrics``,
  ``generalization``, ``regularization``, ``optim`` (optimizers and the warm-up + cosine schedule);
* language models — ``tokenizers`` (one interface: character, BPE, WordPiece, Unigram; chat
  templates), ``nn`` (the one attention module, positions, norms, FFNs, the one Transformer block,
  efficient attention), ``models`` (GPT, the Llama family with its GGUF loader, BERT and T5/BART,
  built from ``nn``; ``models.configs``, the architecture registry), ``quantize`` (weight-only
  int8 and Q4_1 layers), ``train`` (the ``Trainer``, data, checkpoints, distributed and
  mixed-precision pieces, a model trained for a token budget), ``sampling`` (logit processors and
  the draw), ``generate`` (search and generation with a model), ``scaling`` (scaling laws);
* ``grading`` — the exercise grader (``python -m companion.grading``).

Layering: ``nn`` imports no model; ``models`` are built from ``nn``; ``train`` uses ``models`` for its
presets and command line, while its ``Trainer`` takes any module; nothing imports ``notebooks/`` or
``tests/``. The chapters' long experiments (the scaling grid, length extrapolation) are scripts in
``experiments/`` on these modules, with their committed results.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
