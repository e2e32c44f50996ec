"""Models built from :mod:`companion.nn` modules and configured by dataclasses: the GPT
(:mod:`~companion.models.gpt`) and the Llama family with its GGUF loader (:mod:`~companion.models.llama`)."""

from companion.models.gpt import GPT, GPTConfig, incremental_logits, param_count
from companion.models.llama import Llama, LlamaConfig, load_llama_gguf

__all__ = ["GPT", "GPTConfig", "Llama", "LlamaConfig", "incremental_logits", "load_llama_gguf", "param_count"]
