"""Looking a preset up by name, with an error that lists the names there are.

Detectors, memories and whole platforms each keep their presets in a
``{name: preset}`` table; :func:`preset_lookup` turns such a table into the
lookup function each module exports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, TypeAdapter

__all__ = ["preset_lookup"]

Preset = TypeVar("Preset")


def preset_lookup(table: Mapping[str, Preset], title: str, *, fold_case: bool = False) -> Callable[[str], Preset]:
    """A function from a name to its preset in ``table``.

    An unknown name raises a pydantic ``ValidationError`` (a ``ValueError``)
    titled ``title`` that lists the known names: the names are validated as a
    ``Literal`` of the table's keys, so the two cannot drift apart.
    ``fold_case``: names are matched in lower case (the table's keys must be).
    """
    # A Literal built at run time: a type checker cannot read it as a type, so it is typed as the value it is.
    known_names: Any = Literal[tuple(table)]
    names: TypeAdapter[str] = TypeAdapter(known_names, config=ConfigDict(title=title))

    def lookup(name: str) -> Preset:
        key = name.lower() if fold_case and isinstance(name, str) else name
        return table[names.validate_python(key)]

    return lookup
