"""Network-layer service: end-to-end entanglement between any two nodes.

Connection-oriented, after RFC 9340 §7 and the Quantum Network Protocol
(Kozlowski, Dahlberg & Wehner, CoNEXT 2020):

* the application at the *head* node sends ``NetRequest`` (its own
  ``request_id``, the *tail* node, how many pairs, K or M);
* the network entity answers ``NetAccepted`` (with the path) or
  ``NetRejected``;
* for every end-to-end pair it sends ``PairDelivered`` at **both** ends, with the
  same ``pair_id``, the local qubit handle (K) or outcome (M), the pair's Bell
  state (its Pauli frame, tracked rather than corrected) and a goodness;
* ``PairLost`` follows a ``PairDelivered`` at one end whose other half will
  never be delivered (the request moved to another path, or ended, between the
  two ends' deliveries): the user frees that half; the pair does not count;
* ``NetError`` ends a request that can no longer be served; with code
  ``END_LOST`` it says that the request's other end is lost (crashed, or cut
  off from every link), so nothing more will come from it.

This module is the only part of ``network`` that other layers may import.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field

from qnetstack.entity import Entity
from qnetstack.entity.message import Message as _Message
from qnetstack.link.service import PRIORITY_LEVELS, Basis, BellState, RequestType
from qnetstack.physical.service import Probability, QubitHandle

__all__ = [
    "BellState",
    "Basis",
    "RequestType",
    "NetRequest",
    "NetAccepted",
    "NetRejected",
    "PairId",
    "PairDelivered",
    "PairLost",
    "NetErrorCode",
    "NetError",
    "NetResponse",
    "NetworkService",
    "CAP_NET_K",
    "CAP_NET_M",
]

CAP_NET_K = "network:K"
CAP_NET_M = "network:M"


class NetRequest(_Message):
    """Ask for ``number`` end-to-end pairs between this node and ``remote_node``.

    ``request_id`` is chosen by the caller and unique among its requests; every
    response names it. ``min_fidelity`` is the end-to-end fidelity wanted; the
    network turns it into per-link fidelities. ``max_time_ns`` bounds the whole
    request (``None``: no limit). ``priority`` 0 is served first (up to
    ``PRIORITY_LEVELS - 1``, the link service's levels): a circuit of a smaller
    value goes ahead of larger ones waiting for memory at a node of its path,
    and its link requests carry it to a link layer that serves priorities
    (``link:priority``; specs/network.md §1.2). ``head_qubits`` is how many
    memory qubits the caller will itself hold at the head while the request
    runs, besides the halves of the pairs delivered to it (a teleport sender's
    input state): the network sets them aside at the head with what the
    circuit holds there, so no other circuit counts on them, and refuses a
    request whose head can never hold both.
    """

    kind: Literal["net_request"] = "net_request"
    request_id: int = Field(ge=0)
    remote_node: str = Field(min_length=1)
    min_fidelity: Probability = 0.0
    number: int = Field(1, ge=1)
    type: RequestType = RequestType.K
    basis: Basis = Basis.Z
    max_time_ns: int | None = Field(None, gt=0)
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)
    head_qubits: int = Field(0, ge=0)


class NetAccepted(_Message):
    kind: Literal["net_accepted"] = "net_accepted"
    request_id: int = Field(ge=0)
    path: list[str] = Field(min_length=2)


class NetRejected(_Message):
    """The request is refused; ``reason`` says why. ``best_fidelity`` is set when the request's
    ``min_fidelity`` is out of reach: the best end-to-end fidelity the network expects it could
    deliver (``None``: the refusal is not about fidelity, or the network cannot tell)."""

    kind: Literal["net_rejected"] = "net_rejected"
    request_id: int = Field(ge=0)
    reason: str
    best_fidelity: Probability | None = None


class PairId(_Message):
    """Network-unique name of an end-to-end pair."""

    head: str
    tail: str
    request_id: int = Field(ge=0)
    index: int = Field(ge=0)


class PairDelivered(_Message):
    """One end-to-end pair, delivered at each of its two ends.

    ``bell_state`` is the state the pair is in (no correction was applied: the
    user applies or tracks it). ``goodness`` estimates the fidelity to it at
    ``goodness_time_ns``.
    """

    kind: Literal["pair_delivered"] = "pair_delivered"
    pair_id: PairId
    remote_node: str
    bell_state: BellState
    goodness: Probability
    goodness_time_ns: int = Field(ge=0)
    handle: QubitHandle | None = None  # type K
    outcome: Literal[0, 1] | None = None  # type M
    basis: Basis | None = None  # type M


class PairLost(_Message):
    """Pair ``pair_id``, delivered at this end, has no other half that will ever be delivered:
    free this half; the pair is not one of the request's ``number``.

    The role of the link service's EXPIRE (and QNP's "expire", Kozlowski, Dahlberg & Wehner,
    CoNEXT 2020) one layer up. It is sent when a request moves to another path, or ends,
    after one end delivered the pair and the other did not (specs/network.md NET-PAIR-6).
    A request that goes on makes another pair, under a new index, in its place.
    """

    kind: Literal["pair_lost"] = "pair_lost"
    pair_id: PairId
    reason: str = ""


class NetErrorCode(str, enum.Enum):
    NO_PATH = "NO_PATH"
    UNSUPP = "UNSUPP"
    LINK_FAILURE = "LINK_FAILURE"
    TIMEOUT = "TIMEOUT"
    NORES = "NORES"  # a node of the path had no resources for the circuit (no free label on a link)
    # the other end of the request is lost (it crashed, or is cut off from every link): it will send
    # nothing more about the request, so the layer above waits for nothing from it (specs/network.md NET-FAULT-3)
    END_LOST = "END_LOST"
    OTHER = "OTHER"


class NetError(_Message):
    kind: Literal["net_error"] = "net_error"
    request_id: int = Field(ge=0)
    head: str
    code: NetErrorCode
    detail: str = ""


NetResponse = Annotated[NetAccepted | NetRejected | PairDelivered | PairLost | NetError, Field(discriminator="kind")]


@runtime_checkable
class NetworkService(Entity, Protocol):
    """A network-layer entity: takes ``NetRequest`` from above, answers ``NetResponse``.

    Built as ``Impl(ctx, config)``; uses the link service and the device
    service below it. ``PROVIDES``/``REQUIRES`` class attributes as for links.
    """
