"""Models built from :mod:`companion.nn` modules and configured by dataclasses: the GPT
(:mod:`~companion.models.gpt`), the Llama family with its GGUF loader (:mod:`~companion.models.llama`)
the BERT encoder with its loader (:mod:`~companion.models.bert`) and the T5/BART encoder–decoder
(:mod:`~companion.models.seq2seq`)."""

from companion.models.bert import BertConfig, BertModel, load_bert
from companion.models.gpt import GPT, GPTConfig, incremental_logits, param_count
from companion.models.llama import Llama, LlamaConfig, load_llama_gguf
from companion.models.seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = [
    "GPT",
    "BertConfig",
    "BertModel",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "Seq2Seq",
    "Seq2SeqConfig",
    "incremental_logits",
    "load_bert",
    "load_llama_gguf",
    "param_count",
]
