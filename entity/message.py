"""The base of every message an entity sends: up, down, or to its peers.

A message is a value. It is frozen, so a message handed on cannot change under
its sender or its receiver, and it is strict about its fields: a field it does
not declare is an error, not ignored, so a misspelt field fails where it is
written. Every layer's service messages and the reference implementations'
peer messages derive from :class:`Message`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Message"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
