"""Stand-ins for the upper layers, for benchmarks and tests that drive the link
layer directly inside a fully assembled stack.

:class:`LinkClient` takes the network layer's place on a node: it sends the
CREATEs it is given at start and hands every other link message to
:meth:`LinkClient.on_link`, which a subclass overrides. :class:`NoApplication`
fills the application layer's place above it. Both refuse anything they do not
expect with an :class:`~entity.EntityError`, so a surprise fails loudly.

Use with :func:`qnetstack.stack.assemble`::

    class Client(LinkClient):
        creates = {"alice": [LinkCreate(remote_node="bob", number=10)]}

        def on_link(self, msg):
            ...

    assemble(scenario_without_applications, {"network": Client, "application": NoApplication}).run()
"""

from __future__ import annotations

from typing import Any, ClassVar

from qnetstack.entity import EntityError
from qnetstack.entity.refusing import Refusing
from qnetstack.link.service import CAP_LINK_K, LinkAck, LinkCreate
from qnetstack.physical.service import CAP_DEVICE

__all__ = ["LinkClient", "NoApplication"]


class _Refuses(Refusing):
    """Refuses every input a subclass does not take, with an
    :class:`~entity.EntityError` naming the stand-in and its node."""

    ctx: Any

    def _who(self) -> str:
        return f"{type(self).__name__} at {self.ctx.node}"


class LinkClient(_Refuses):
    """In the network layer's place: sends ``creates[node]`` at start; ACKs are
    ignored, every other message from the link layer goes to :meth:`on_link`."""

    PROVIDES: ClassVar[frozenset[str]] = frozenset()
    REQUIRES: ClassVar[frozenset[str]] = frozenset({CAP_LINK_K, CAP_DEVICE})
    creates: ClassVar[dict[str, list[LinkCreate]]] = {}

    def __init__(self, ctx: Any, topology: Any) -> None:
        self.ctx = ctx

    def start(self) -> None:
        for create in self.creates.get(self.ctx.node, []):
            self.ctx.send_down(create)

    def handle_below(self, msg: Any) -> None:
        if not isinstance(msg, LinkAck):
            self.on_link(msg)

    def on_link(self, msg: Any) -> None:
        raise EntityError(f"{self._who()}: unexpected from the link layer: {msg!r}")


class NoApplication(_Refuses):
    """An empty application layer: takes no requests and expects nothing."""

    PROVIDES: ClassVar[frozenset[str]] = frozenset()
    REQUIRES: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
