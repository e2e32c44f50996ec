"""Pre-tokenization: cutting text into "words" before a subword model sees it.

Three families, one per tokenizer in this package:

* **Regex splitting** for byte-level BPE (GPT-2, GPT-4, SmolLM2): a regular expression (the
  third-party ``regex`` module, for ``\\p{L}`` and friends) cuts the text into letters-with-a-leading-
  space, numbers, punctuation runs and whitespace runs; merges never cross these pieces.
* **BERT's basic tokenizer** for WordPiece: clean control characters, put spaces around CJK
  ideographs, strip accents and lower-case, then split on whitespace and isolate punctuation
  (the same steps as Hugging Face ``BertNormalizer`` + ``BertPreTokenizer``).
* **SentencePiece's whitespace handling** for Unigram: no splitting of the raw stream at all; spaces
  become the visible symbol ``▁`` (U+2581), so detokenization is lossless.

:func:`safe_chunks` cuts a long text (or a stream of lines) into pieces at positions where every
regex here is guaranteed to have a boundary, so pre-tokenizing chunk by chunk gives exactly the
pre-tokens of the whole text. This is what makes streaming training and ``encode_file`` exact.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import regex

__all__ = [
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "PATTERNS",
    "SMOLLM_PATTERN",
    "SPACE_SYMBOL",
    "bert_basic_tokenize",
    "bert_normalize",
    "bert_split",
    "get_pattern",
    "make_splitter",
    "pretokenize",
    "safe_chunks",
    "sp_denormalize",
    "sp_normalize",
    "sp_split",
    "special_token_regex",
]

#: The pre-tokenization regex of GPT-2 (Radford et al., 2019) — contractions, letters with an optional
#: leading space, numbers, other symbols, and whitespace (a run of spaces gives its last space to the
#: next word).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

#: GPT-4's ``cl100k_base`` (tiktoken): case-insensitive contractions, numbers of at most 3 digits,
#: newlines kept apart from other whitespace.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s+"""
)

#: SmolLM2 (llama.cpp's ``smollm`` pre-tokenizer, Hugging Face ``Digits(individual_digits=True)``
#: followed by ``ByteLevel``): every number character is isolated first, then GPT-2's regex runs on
#: each remaining piece. Written as one regex: ``\p{N}`` alone, and a whitespace run also ends
#: before a number character (where the first stage cut the text).
SMOLLM_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

PATTERNS: dict[str, str] = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "smollm": SMOLLM_PATTERN}

#: SentencePiece's visible space, U+2581 LOWER ONE EIGHTH BLOCK.
SPACE_SYMBOL = "\u2581"

# A chunk may end right after a single newline (a non-space character before it) that is followed by
# a letter: in every pattern above such a newline is a token of its own whether a letter or the end
# of the text follows it, and a letter-run cannot start before a newline. (After two whitespace
# characters it would not be safe: GPT-2's "\s+(?!\S)" splits " \n" before a letter but not at the
# end of the text.) Reverse search ((?r)) finds the last such place.
_SAFE_CUT = regex.compile(r"(?r)(?<=\S)\n(?=\p{L})")
_SAFE_CUT_FWD = regex.compile(r"(?<=\S)\n(?=\p{L})")
# Fallback for text without newlines: a space between two letters ("a b" is "a" + " b" everywhere).
_SAFE_CUT_SPACE = regex.compile(r"(?r)(?<=\p{L}) (?=\p{L})")
_SAFE_CUT_SPACE_FWD = regex.compile(r"(?<=\p{L}) (?=\p{L})")


# The same three patterns for pure-ASCII text, for the standard library's `re` (about twice as fast
# as `regex` here). In ASCII, \p{L} is [A-Za-z], \p{N} is [0-9], and the Unicode White_Space
# characters are \t \n \v \f \r and the space (`re`'s own \s would also take \x1c-\x1f).
# GPT-4's possessive ?+ and ++ become plain ? and + (`re` has possessive quantifiers only from
# Python 3.11): giving back the optional non-letter cannot let [A-Za-z]+ match, and [\r\n]* can
# always match nothing, so backtracking never finds another split.
# tests/test_tokenizers.py checks that each gives the same pieces as its Unicode original on every
# string of one or two ASCII characters and on random ASCII text.
_WS = r"\t\n\x0b\x0c\r "
_ASCII_PATTERNS: dict[str, str] = {
    GPT2_PATTERN: (
        rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{_WS}A-Za-z0-9]+|"""
        rf"""[{_WS}]+(?![^{_WS}])|[{_WS}]+"""
    ),
    GPT4_PATTERN: (
        rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{{1,3}}| ?[^{_WS}A-Za-z0-9]+[\r\n]*|"""
        rf"""[{_WS}]*[\r\n]|[{_WS}]+(?![^{_WS}])|[{_WS}]+"""
    ),
    SMOLLM_PATTERN: (
        rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+|[0-9]| ?[^{_WS}A-Za-z0-9]+|"""
        rf"""[{_WS}]+(?![^{_WS}0-9])|[{_WS}]+"""
    ),
}


def make_splitter(pattern: str) -> Callable[[str], list[str]]:
    """A fast ``findall`` for a pattern: ``make_splitter(p)(text) == regex.findall(get_pattern(p), text)``.

    For the named patterns, text that is pure ASCII (checked per call, which is cheap) goes through
    an equivalent standard-library ``re`` pattern, about twice as fast; everything else through
    ``regex``.
    """
    source = get_pattern(pattern)
    full = regex.compile(source).findall
    ascii_source = _ASCII_PATTERNS.get(source)
    if ascii_source is None:
        return full
    fast = re.compile(ascii_source).findall

    def findall(text: str) -> list[str]:
        return fast(text) if text.isascii() else full(text)

    return findall


def get_pattern(pattern: str) -> str:
    """A pattern's regex: ``"gpt2"``, ``"gpt4"``, ``"smollm"`` or a regex string, returned as is."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern: expected one of {sorted(PATTERNS)} or a regex string, got {pattern!r}")
    return PATTERNS.get(pattern, pattern)


def pretokenize(text: str, pattern: str = "gpt4") -> list[str]:
    """Split ``text`` into pre-tokens with a named pattern or a regex; their concatenation is ``text``.

    Example:
        >>> pretokenize("Hello  world!!", "gpt2")
        ['Hello', ' ', ' world', '!!']
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    return regex.findall(get_pattern(pattern), text)


def safe_chunks(text: str | Iterable[str], chunk_chars: int = 1 << 20, protect: Any = None) -> Iterator[str]:
    """Re-cut a text, or a stream of strings (a file's lines), into chunks of about ``chunk_chars``.

    The cuts fall only before a letter that follows a single newline (or, in text without such
    newlines, before a space between two letters), so pre-tokenizing each chunk with any pattern of
    this module gives the same pre-tokens as pre-tokenizing the concatenation. Each cut is the last
    safe place within ``chunk_chars`` (or the first one after it), so memory stays O(``chunk_chars``)
    unless the input has no safe place to cut for a long stretch.

    Args:
        text: one string or an iterable of strings, concatenated in order.
        chunk_chars: target chunk length in characters.
        protect: optional compiled ``regex`` pattern (special tokens) whose matches must not be cut.
    """
    if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars <= 0:
        raise ValueError(f"chunk_chars: expected a positive int, got {chunk_chars!r}")
    if isinstance(text, str):
        text = (text,)
    buffer = ""
    for piece in text:
        if not isinstance(piece, str):
            raise TypeError(
                f"text: expected str or an iterable of str, got an item of {type(piece).__name__}"
            )
        buffer += piece
        while len(buffer) > chunk_chars:
            cut = _find_cut(buffer, chunk_chars, protect)
            if cut <= 0:
                break  # no safe place yet: keep reading
            yield buffer[:cut]
            buffer = buffer[cut:]
    while buffer:
        cut = _find_cut(buffer, chunk_chars, protect) if len(buffer) > chunk_chars else -1
        if cut <= 0:
            yield buffer
            return
        yield buffer[:cut]
        buffer = buffer[cut:]


def _find_cut(buffer: str, limit: int, protect: regex.Pattern | None) -> int:
    """The last safe cut in (0, limit], else the first one after ``limit``, else -1."""
    for backward, forward in ((_SAFE_CUT, _SAFE_CUT_FWD), (_SAFE_CUT_SPACE, _SAFE_CUT_SPACE_FWD)):
        end = min(limit + 1, len(buffer))
        while (m := backward.search(buffer, 0, end)) is not None:
            cut = m.end() if backward is _SAFE_CUT else m.start()
            if 0 < cut <= limit and not (protect is not None and _inside_match(buffer, cut, protect)):
                return cut
            end = m.start()
        start = limit
        while (m := forward.search(buffer, start)) is not None:
            cut = m.end() if forward is _SAFE_CUT_FWD else m.start()
            if cut > 0 and not (protect is not None and _inside_match(buffer, cut, protect)):
                return cut
            start = m.end()
    return -1


def _inside_match(buffer: str, pos: int, protect: regex.Pattern) -> bool:
    return any(m.start() < pos < m.end() for m in protect.finditer(buffer, max(0, pos - 256), pos + 256))


# --------------------------------------------------------------------------------------------------
# BERT basic tokenization (WordPiece's pre-tokenizer)
# --------------------------------------------------------------------------------------------------

# Unicode White_Space (what Rust's char::is_whitespace and Hugging Face tokenizers use); Python's
# str.isspace() would also accept U+001C..U+001F.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_bert_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # BERT counts every non-alphanumeric printable ASCII character as punctuation ("$", "^", "`").
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


# Per-character classes, computed once per distinct character (text is long, alphabets are small).
_KEEP, _DROP, _SPACE, _CJK, _PUNCT = 0, 1, 2, 3, 4
_CLASS_CACHE: dict[str, int] = {}


def _clean_class(ch: str) -> int:
    kind = _CLASS_CACHE.get(ch)
    if kind is None:
        if ch in "\t\n\r":
            kind = _SPACE
        elif ch == "\x00" or ch == "\ufffd" or unicodedata.category(ch).startswith("C"):
            kind = _DROP
        elif ch in _WHITESPACE:
            kind = _SPACE
        elif _is_cjk(ord(ch)):
            kind = _CJK
        elif _is_bert_punctuation(ch):
            kind = _PUNCT
        else:
            kind = _KEEP
        _CLASS_CACHE[ch] = kind
    return kind


def bert_normalize(
    text: str,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    handle_chinese_chars: bool = True,
    clean_text: bool = True,
) -> str:
    """BERT's normalizer (Devlin et al., 2019), in the order of Hugging Face ``BertNormalizer``.

    1. ``clean_text``: drop NUL, U+FFFD and control/format/unassigned characters (category C* except
       tab, newline, carriage return); turn every whitespace character into a space.
    2. ``handle_chinese_chars``: surround each CJK ideograph with spaces, so it becomes its own word.
    3. ``strip_accents`` (default: same as ``lowercase``): NFD-decompose and drop combining marks (Mn).
    4. ``lowercase``: lower-case character by character.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    if clean_text or handle_chinese_chars:
        out = []
        for ch in text:
            kind = _clean_class(ch)
            if kind == _DROP and clean_text:
                continue
            if kind == _SPACE and clean_text:
                out.append(" ")
            elif kind == _CJK and handle_chinese_chars:
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = "".join(out)
    if (lowercase if strip_accents is None else strip_accents) and not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    if lowercase:
        # per character, like Rust's char::to_lowercase (no final-sigma rule)
        text = text.lower() if text.isascii() else "".join(map(str.lower, text))
    return text


def bert_split(text: str) -> list[str]:
    """BERT's pre-tokenizer: split on whitespace (removed) and isolate each punctuation character."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch in _WHITESPACE:
            if current:
                words.append("".join(current))
                current = []
        elif _clean_class(ch) == _PUNCT:
            if current:
                words.append("".join(current))
                current = []
            words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def bert_basic_tokenize(text: str, *, lowercase: bool = True, strip_accents: bool | None = None) -> list[str]:
    """:func:`bert_normalize` then :func:`bert_split`: the words WordPiece segments.

    Example:
        >>> bert_basic_tokenize("Héllo, 世界!")
        ['hello', ',', '世', '界', '!']
    """
    return bert_split(bert_normalize(text, lowercase=lowercase, strip_accents=strip_accents))


# --------------------------------------------------------------------------------------------------
# SentencePiece whitespace handling
# --------------------------------------------------------------------------------------------------


def sp_normalize(text: str, *, add_dummy_prefix: bool = True) -> str:
    """SentencePiece's view of raw text under identity normalization: every space becomes ``▁``.

    With ``add_dummy_prefix`` (SentencePiece's default) one ``▁`` is prepended to a non-empty text, so
    that a word is spelled the same at the start of the text as after a space. Nothing else changes: repeated,
    leading and trailing spaces stay (``remove_extra_whitespaces=False``), so the text can be
    restored exactly by :func:`sp_denormalize` — unless it already contains ``▁``, which comes back
    as a space, as it does in SentencePiece.

    Example:
        >>> sp_normalize("Hello  world")
        '▁Hello▁▁world'
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    text = text.replace(" ", SPACE_SYMBOL)
    return SPACE_SYMBOL + text if add_dummy_prefix and text else text


def sp_denormalize(pieces: Sequence[str] | str, *, add_dummy_prefix: bool = True) -> str:
    """Invert :func:`sp_normalize`: join the pieces, ``▁`` → space, drop the one dummy prefix."""
    text = pieces if isinstance(pieces, str) else "".join(pieces)
    if add_dummy_prefix and text.startswith(SPACE_SYMBOL):
        text = text[1:]
    return text.replace(SPACE_SYMBOL, " ")


def sp_split(normalized: str) -> list[str]:
    """Cut a normalized string before every ``▁`` (SentencePiece's ``split_by_whitespace``).

    Every piece except possibly the first starts with ``▁``; no subword crosses these cuts.

    Example:
        >>> sp_split("▁Hello▁▁world")
        ['▁Hello', '▁', '▁world']
    """
    first, *rest = normalized.split(SPACE_SYMBOL)
    return ([first] if first else []) + [SPACE_SYMBOL + part for part in rest]


def special_token_regex(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex that matches any of ``special_tokens`` (a capturing group, longest first), or None
    when there are none: what cuts special tokens out of a text before pre-tokenization."""
    tokens = sorted(set(special_tokens), key=len, reverse=True)  # longest first: "<|a|b|>" before "<|a"
    if not tokens:
        return None
    return regex.compile("(" + "|".join(regex.escape(t) for t in tokens) + ")")
