"""The peer messages of the reference network layer (private to it, specs/network.md §1).

Theory of operation
-------------------
A circuit is named network-wide by ``(head, circuit)``: a serial number the
head never reuses (request ids may be reused once a request has ended). Link pairs are named
per hop by a *label* (the link service's ``purpose_id``), after the per-hop
labels of MPLS and QNP (Kozlowski, Dahlberg & Wehner, CoNEXT 2020):

* ``Forward`` sets a circuit up. It travels hop by hop from the head to the
  tail; each sender puts in it the label it chose for the hop to the receiver
  (the sender issues that hop's CREATEs), so both ends of every hop know which
  circuit the hop's link pairs belong to. A node that has no free label
  passes the ``Forward`` on marked ``refused``, so the nodes after it end the
  circuit (the tail with a ``NetError``) instead of setting it up.
* ``SwapRecord`` goes from a repeater to both ends after a swap. It names the
  two link pairs it joined by their ``ent_id``, so an end assembles a chain by
  following ids from its own link pair, never by the order of arrival.
* ``CircuitFailed`` ends a circuit at every node of its path: straight to
  the nodes before the sender, hop by hop to the nodes after it, so on every
  hop it follows the ``Forward`` (channels between two nodes keep order) and
  never reaches a node before the circuit's set-up does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qnetstack.entity.message import Message as _Peer
from qnetstack.link.service import EntanglementId, RequestType
from qnetstack.network.service import NetErrorCode
from qnetstack.physical.service import Basis, BellState

__all__ = ["CircuitFailed", "Forward", "PeerMessage", "SwapRecord", "LABELS"]

LABELS = 65536  # the link service's purpose_id is an int in [0, 65535]


class Forward(_Peer):
    """Set up this circuit; ``label`` names the hop from the sender to the receiver."""

    kind: Literal["forward"] = "forward"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    path: list[str]
    number: int = Field(ge=1)
    type: RequestType
    basis: Basis
    link_min_fidelity: float
    label: int = Field(ge=0, lt=LABELS)
    # set when a node upstream could not take the circuit on (no free label): every node
    # downstream ends it at once, and the tail reports it, instead of setting it up
    refused: NetErrorCode | None = None
    detail: str = ""


class SwapRecord(_Peer):
    """Repeater -> both ends: link pairs ``upstream_ent_id`` and ``downstream_ent_id`` were swapped.

    ``swap_index`` counts this repeater's swaps for the circuit from 0; the
    first repeater's count is the index of the end-to-end pair (both ends hear
    from it)."""

    kind: Literal["swap_record"] = "swap_record"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    position: int  # index of the repeater in the path
    swap_index: int = Field(ge=0)
    outcome: BellState
    upstream_ent_id: EntanglementId
    downstream_ent_id: EntanglementId
    upstream_bell_state: BellState
    downstream_bell_state: BellState
    upstream_goodness: float
    downstream_goodness: float


class CircuitFailed(_Peer):
    """End this circuit. Sent straight to the nodes upstream of the sender (all set up before
    it) and hop by hop along ``path`` to those downstream, behind the ``Forward`` it must not
    overtake; a node passes it on downstream even when it holds no session for the circuit
    (one that has finished its swaps), since nodes further on may still be running it."""

    kind: Literal["circuit_failed"] = "circuit_failed"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    detail: str
    code: NetErrorCode = NetErrorCode.LINK_FAILURE
    path: tuple[str, ...] = ()


PeerMessage = Forward | SwapRecord | CircuitFailed
