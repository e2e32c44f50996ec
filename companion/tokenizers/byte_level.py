"""GPT-2's reversible map between the 256 byte values and 256 printable Unicode characters.

Byte-level BPE works on bytes, but vocabulary files are text. GPT-2 (Radford et al., 2019) writes each
byte as one printable character: the 188 printable Latin-1 bytes stand for themselves, and the other
68 (control characters, space, ...) are shifted to U+0100 and above, so a space becomes ``Ġ`` (U+0120)
and a newline ``Ċ`` (U+010A). The map is a bijection, so any byte string has exactly one spelling.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["bytes_to_unicode", "token_from_unicode", "token_to_unicode", "unicode_to_bytes"]


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 map: byte value (0–255) → one printable character."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    shifted = 0
    for b in range(256):
        if b not in printable:  # not printable: move it past Latin-1, in byte order
            printable.append(b)
            chars.append(256 + shifted)
            shifted += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse map: printable character → byte value."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_unicode(token: bytes) -> str:
    """Spell a byte string in GPT-2's byte alphabet, e.g. ``b" the"`` → ``"Ġthe"``."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def token_from_unicode(text: str) -> bytes:
    """Inverse of :func:`token_to_unicode`.

    Raises:
        ValueError: if ``text`` contains a character outside the byte alphabet.
    """
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in text)
    except KeyError as exc:
        raise ValueError(
            f"text: {text!r} contains {exc.args[0]!r}, which is not in the byte alphabet"
        ) from None
