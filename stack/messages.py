"""Bounded error messages: what a user typed is echoed, but never at length.

A scenario file or a command line may hold a megabyte where a name belongs;
the one-line error about it must still be one short line. :func:`shown`
quotes a value cut to a fixed length, :func:`one_line` makes any text a
single printable line of bounded length.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ECHO_CHARS", "LINE_CHARS", "cut", "listing", "one_line", "shown", "tail"]

ECHO_CHARS = 60  # an echoed value: enough to recognise it
LINE_CHARS = 300  # a whole error line, prefix included

ELLIPSIS = "…"


def cut(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` unchanged if it fits in ``limit`` characters, else cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def tail(text: str, limit: int = 80) -> str:
    """``text`` cut from the left (the end of a path says the most), with an ellipsis."""
    return text if len(text) <= limit else ELLIPSIS + text[len(text) - limit + 1 :]


def shown(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (a huge int is not converted to text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return cut(repr(value), limit)


def listing(names: Iterable[Any], limit: int = ECHO_CHARS) -> str:
    """Names joined by commas, cut to ``limit`` characters."""
    return cut(", ".join(str(name) for name in names), limit)


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """``text`` as one printable line of at most ``limit`` characters: line breaks
    and tabs become spaces, other control characters ``?``."""
    flat = "".join(ch if ch.isprintable() else (" " if ch in "\t\n\r\v\f" else "?") for ch in text[: limit * 4])
    return cut(flat, limit)
