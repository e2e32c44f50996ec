"""Tokenizers (分词器): one interface, four kinds, and their pre-tokenizers.

* :class:`Tokenizer` (:mod:`companion.tokenizers.base`) — the interface every kind implements:
  ``encode``, ``decode``, ``vocab_size``, ``train`` (a classmethod), ``to_dict``/``from_dict``, ``save``
  and ``load`` (``Tokenizer.load`` reads a file of any kind).
* :class:`CharTokenizer` — one id per character (nanoGPT's ``shakespeare_char``).
* :class:`BPETokenizer` — byte-level BPE as in GPT-2/GPT-4/SmolLM2: fast incremental training,
  cached encoding, special tokens, streaming, JSON files, pretrained vocabularies from GGUF; its
  training is :mod:`companion.tokenizers.bpe_trainer`.
* :class:`WordPieceTokenizer` — BERT's WordPiece: basic tokenization, greedy longest-match-first with
  ``##`` continuations and ``[UNK]``; likelihood-scored training; BERT ``vocab.txt`` files as well as
  the interface's JSON.
* :class:`UnigramTokenizer` — the Unigram language-model tokenizer of SentencePiece: EM training
  with pruning, Viterbi segmentation, sampling (subword regularization); pieces and scores
  read from SentencePiece, saved and loaded exactly; its training is
  :mod:`companion.tokenizers.unigram_trainer`.
* :mod:`companion.tokenizers.pretokenize` — regex, BERT and SentencePiece pre-tokenization.
* :mod:`companion.tokenizers.naive` — the short teaching versions the chapter derives.
"""

from companion.tokenizers.base import Tokenizer
from companion.tokenizers.bpe import BPETokenizer
from companion.tokenizers.char import CharTokenizer
from companion.tokenizers.unigram import UnigramTokenizer
from companion.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["BPETokenizer", "CharTokenizer", "Tokenizer", "UnigramTokenizer", "WordPieceTokenizer"]
