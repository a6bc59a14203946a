"""Handlers for the inputs an entity does not take.

Every entity has the five methods of :class:`~qnetstack.entity.Entity`, but
many take only some kinds of input: a heralding station has no layer above or
below it, a node's device sets no timers, a stand-in for a layer takes only
what its test feeds it. :class:`Refusing` answers each kind of input with an
:class:`~qnetstack.entity.EntityError` that names the entity and what it got,
so a wrong wiring fails loudly instead of being ignored. A subclass overrides
the handlers of what it does take, and ``_who`` to name itself.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from qnetstack.entity import EntityError

__all__ = ["Refusing"]


class Refusing:
    """An entity that takes no input at all until a subclass says what it takes."""

    def _who(self) -> str:
        """The entity as a finding names it (e.g. ``"station a~b"``)."""
        return type(self).__name__

    def start(self) -> None:
        pass

    def handle_above(self, msg: Any) -> None:
        raise EntityError(f"{self._who()}: no layer above sends requests, got {msg!r}")

    def handle_below(self, msg: Any) -> None:
        raise EntityError(f"{self._who()}: got {msg!r} from below")

    def handle_peer(self, sender: str, msg: Any) -> None:
        raise EntityError(f"{self._who()}: sends no peer messages, got one from {sender}")

    def handle_timer(self, tag: Hashable) -> None:
        raise EntityError(f"{self._who()}: sets no timers, got {tag!r}")
