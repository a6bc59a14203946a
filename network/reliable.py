"""The network layer's reliable channel: the protocol of :mod:`qnetstack.entity.reliable`
bound to the network's topology (the ``Sequenced`` and ``Ack`` envelopes are the
channel's own, shared with the link layer).

A lost ``Forward`` leaves a circuit without its next step, a lost ``Release`` leaves
memory reserved, a delayed message can be overtaken: with ``network: {reliable: true}``
every peer message of the layer is numbered, acknowledged and sent again until it
arrives, and handed on once and in order (specs/network.md §1.7). A message to a node
that is not a neighbour travels the topology's shortest path, so the channel waits a
round trip along it (the links' ``classical_delay_ns``, else their fibre delay). After
``max_tries`` sendings it gives up on the message (``network.reliable_gave_up``), and the
circuit it belonged to ends by its deadline, if it has one.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from qnetstack.entity import Context
from qnetstack.entity import reliable as _channel
from qnetstack.entity.reliable import MAX_TRIES, RETRANSMIT, RETRANSMIT_MARGIN_NS
from qnetstack.network.peer import Ack, Sequenced
from qnetstack.physical.params import fibre_delay_ns

__all__ = ["MAX_TRIES", "RETRANSMIT", "RETRANSMIT_MARGIN_NS", "ReliableContext"]


class ReliableContext(_channel.ReliableContext):
    """The network entity's context with ``send_peer`` made reliable along ``topology``."""

    def __init__(self, ctx: Context, topology: nx.Graph, max_tries: int = MAX_TRIES) -> None:
        def path_delay_ns(node: str) -> float:
            return float(nx.shortest_path_length(topology, ctx.node, node, weight=_link_delay_ns))

        super().__init__(ctx, path_delay_ns, "network", max_tries=max_tries, sequenced=Sequenced, ack=Ack)


def _link_delay_ns(u: str, v: str, data: dict[str, Any]) -> float:
    """One link's classical delay: as the physical layer announced it, else its fibre's."""
    delay = data.get("classical_delay_ns")
    return float(delay) if delay is not None else float(fibre_delay_ns(float(data["length_km"])))
