"""Models built from :mod:`companion.nn` modules and configured by dataclasses: the GPT
(:mod:`~companion.models.gpt`), the Llama family with its GGUF loader (:mod:`~companion.models.llama`)
and the BERT encoder with its loader (:mod:`~companion.models.bert`)."""

from companion.models.bert import BertConfig, BertModel, load_bert
from companion.models.gpt import GPT, GPTConfig, incremental_logits, param_count
from companion.models.llama import Llama, LlamaConfig, load_llama_gguf

__all__ = [
    "GPT",
    "BertConfig",
    "BertModel",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "incremental_logits",
    "load_bert",
    "load_llama_gguf",
    "param_count",
]
