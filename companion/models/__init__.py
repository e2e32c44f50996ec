"""Models built from :mod:`companion.nn` modules and configured by dataclasses."""

from companion.models.gpt import GPT, GPTConfig, incremental_logits, param_count

__all__ = ["GPT", "GPTConfig", "incremental_logits", "param_count"]
