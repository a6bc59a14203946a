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

Before the ``Forward`` of a circuit over repeaters, the head reserves memory
qubits at every node of the path, one node at a time in the order of their
names (specs/network.md §1.2):

* ``Reserve`` goes from the head to one node of the path and asks it to set
  ``qubits`` memory qubits aside for the circuit; the node answers
  ``Reserved`` once it has (at once, or when enough is freed: the set-up waits
  there), or at once with ``refused`` set if it never can.
* ``Release`` goes from the head to every other node of the path when the
  circuit ends before its ``Forward`` was sent (deadline, refusal): each node
  drops the reservation or the waiting set-up; the tail, which has heard
  nothing else of the request, reports it with a ``NetError``. It travels on
  the same channel as any ``Reserve`` the head sent that node, so it never
  overtakes it.
* ``HopFreed`` goes from a node to its upstream neighbour on the path when it
  has used (swapped or delivered) a link pair of the hop between them: the
  upstream node, which issues the hop's CREATEs, asks for the next pair only
  when both ends of the hop hold none, so neither end ever holds more link
  pairs of the circuit than it reserved.

When a link of a running circuit goes down (:mod:`qnetstack.network.reroute`):

* ``TailDelivered`` goes from the tail to the head: how many pairs of the
  request the tail has delivered, so the head numbers the pairs of the
  circuit that takes the request over (``Forward.first_index``) after every
  index either end has used, and which pairs the tail delivered that the
  head did not. A ``Release`` with ``rerouting`` set tells the tail of a
  circuit that ended before its set-up that the request moves on. The
  ``Forward`` of the next circuit (or the ``Release`` that ends the request)
  names the pairs the tail delivered alone (``lost_at_tail``): the tail
  declares them lost (``PairLost``).

With a cutoff (:mod:`qnetstack.network.cutoff`):

* ``PairDiscarded`` goes from a node whose half of a link pair is gone
  without making an end-to-end pair (cut off: it waited too long; or a swap
  it joined is void) to the other end of the pair's hop, naming the pair by
  ``ent_id``: that end frees its half, or, if it swapped that half already,
  voids the swap and passes the notice on along the chain; the node that
  issues the hop's CREATEs asks for a new pair.
* ``CircuitDone`` goes from the tail to every repeater once it has all its
  pairs, when a repeater's swaps could still be voided (longer paths with a
  cutoff, or a per-circuit cutoff): until then a repeater keeps the circuit.

With nested swapping (:mod:`qnetstack.network.nested`):

* ``SegmentReady`` goes from a repeater that joined the two halves of its
  segment of the path to the repeater that joins that segment with its
  neighbour (the *parent*, at one end of the segment): it names the parent's
  link pair whose half now spans the segment, and the link pair at the
  segment's other end, by ``ent_id``.

With the reliable channel (:mod:`qnetstack.network.reliable`, opt-in for a lossy
classical network):

* ``Sequenced`` carries any of the messages above to one node under a sequence
  number of its own per sender and receiver; the receiver hands the message on once,
  in sequence order, and answers ``Ack`` at once, however often it arrives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qnetstack.entity.message import Message as _Peer
from qnetstack.entity.reliable import Ack, Sequenced  # the reliable channel's envelope, shared with the link layer
from qnetstack.link.service import EntanglementId, RequestType
from qnetstack.network.service import NetErrorCode
from qnetstack.physical.service import Basis, BellDiagonalWeights, BellState, MemoryDecoherence

__all__ = [
    "Ack",
    "CircuitDone",
    "CircuitFailed",
    "Forward",
    "HopFreed",
    "PairDiscarded",
    "PairEstimate",
    "PeerMessage",
    "Probe",
    "ProbeAnswer",
    "Release",
    "Reserve",
    "Reserved",
    "SegmentReady",
    "Sequenced",
    "SwapRecord",
    "TailDelivered",
    "LABELS",
]

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
    priority: int = 0  # the request's (NetRequest.priority)
    # set when a node upstream could not take the circuit on (no free label): every node
    # downstream ends it at once, and the tail reports it, instead of setting it up
    refused: NetErrorCode | None = None
    detail: str = ""
    # a circuit that takes over a request from one that ended on a link going down
    # (qnetstack.network.reroute): its pairs are numbered on from here, so this many are
    # counted as made already at every node of the path
    first_index: int = Field(0, ge=0)
    # the indices the tail delivered on the request's last circuit that the head did not:
    # the tail declares them lost (PairLost) when the Forward reaches it
    lost_at_tail: tuple[int, ...] = ()


class PairEstimate(_Peer):
    """What a repeater knew of a link pair it swapped: the link's Bell-diagonal
    estimate ``weights`` (relative to the pair's Bell state) at ``time_ns``, and how
    the memory that holds the pair's other half decoheres (``None``: not known)."""

    weights: BellDiagonalWeights
    time_ns: int = Field(ge=0)
    far_memory: MemoryDecoherence | None = None


class SwapRecord(_Peer):
    """Repeater -> both ends: link pairs ``upstream_ent_id`` and ``downstream_ent_id`` were swapped.

    ``swap_index`` counts this repeater's swaps for the circuit from 0; the
    first repeater's count is the index of the end-to-end pair (both ends hear
    from it).

    For the goodness (specs/network.md NET-GOOD): ``upstream_estimate`` and
    ``downstream_estimate`` are the two pairs as their links estimated them
    (``None`` when a link gave no Bell-diagonal estimate; the ends then fall
    back to the Werner composition of the ``*_goodness`` fields), and
    ``swap_decay`` the decay exponents ``(X, Y, Z)`` of the two halves this
    repeater measured, each held from its pair's ``time_ns`` until the swap at
    ``swap_time_ns`` (:mod:`~qnetstack.network.bell_diagonal`)."""

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
    upstream_estimate: PairEstimate | None = None
    downstream_estimate: PairEstimate | None = None
    swap_decay: tuple[float, float, float] | None = None
    swap_time_ns: int | None = Field(None, ge=0)
    # when the two link pairs were heralded (their goodness_time_ns) and when they were
    # swapped, whatever the links estimated: the ends judge a per-circuit cutoff from these
    herald_ns: tuple[int, int] | None = None
    swapped_ns: int | None = Field(None, ge=0)


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
    # the link whose going down ended the circuit (its two nodes), so the nodes told avoid it
    down_link: tuple[str, str] | None = None


class Reserve(_Peer):
    """Head -> a node of the path: set ``qubits`` memory qubits aside for this circuit."""

    kind: Literal["reserve"] = "reserve"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    path: tuple[str, ...]
    qubits: int = Field(ge=1)
    priority: int = 0  # the request's: a set-up of a smaller value waits ahead of larger ones


class Reserved(_Peer):
    """A node -> the head: the qubits ``Reserve`` asked for are set aside (or, with
    ``refused``, never can be: the node has fewer memory qubits than that)."""

    kind: Literal["reserved"] = "reserved"
    head: str
    circuit: int = Field(ge=0)
    node: str
    refused: str | None = None


class Release(_Peer):
    """Head -> every other node of the path: the circuit ended before it was set up;
    drop its reservation or its waiting set-up (the tail reports the ``NetError``)."""

    kind: Literal["release"] = "release"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    path: tuple[str, ...]
    code: NetErrorCode
    detail: str
    down_link: tuple[str, str] | None = None  # as in CircuitFailed
    # the head is moving the request to another path: the tail waits for it (no NetError)
    rerouting: bool = False
    # as Forward.lost_at_tail, when the head ends the request instead of moving it
    lost_at_tail: tuple[int, ...] = ()


class HopFreed(_Peer):
    """A node -> its upstream neighbour on the circuit's path: it has used the link pair
    of the hop between them that it held, so the next one may be asked for."""

    kind: Literal["hop_freed"] = "hop_freed"
    head: str
    circuit: int = Field(ge=0)


class PairDiscarded(_Peer):
    """A node -> the other end of a hop: link pair ``ent_id`` of this circuit is dead (cut off,
    or part of a chain that was); the sender's half is gone. Free your half, or void the swap
    that used it and pass the notice on; ask for a new pair if you create the hop's.

    ``hop_freed_void``: the sender had swapped its half and said so with ``HopFreed``; that
    ``HopFreed`` no longer counts (the receiver, the hop's creator, takes it back)."""

    kind: Literal["pair_discarded"] = "pair_discarded"
    head: str
    circuit: int = Field(ge=0)
    ent_id: EntanglementId
    hop_freed_void: bool = False


class SegmentReady(_Peer):
    """Nested swapping, a repeater -> its parent: the parent's half of link pair ``near_ent_id``
    now spans positions ``first``..``last`` of the path, whose other end holds a half of
    ``far_ent_id`` (the same pair when the segment is one link)."""

    kind: Literal["segment_ready"] = "segment_ready"
    head: str
    circuit: int = Field(ge=0)
    first: int = Field(ge=0)
    last: int = Field(ge=1)
    near_ent_id: EntanglementId
    far_ent_id: EntanglementId


class TailDelivered(_Peer):
    """Tail -> head: circuit ``circuit`` ended here on a link going down after ``delivered``
    pairs of the request (counted from index 0); the head moves the request to another path
    from there, or ends it (qnetstack.network.reroute)."""

    kind: Literal["tail_delivered"] = "tail_delivered"
    head: str
    circuit: int = Field(ge=0)
    request_id: int
    delivered: int = Field(ge=0)
    # the indices of the pairs the circuit delivered at the tail (from its first index on), so the
    # head can tell which pairs only one end delivered
    indices: tuple[int, ...] = ()


class Probe(_Peer):
    """An end -> a node it waits for and suspects lost (it crashed, or is cut off): do you still
    hold circuit ``circuit`` of ``head`` (a set-up, the circuit, or, at the head, its request
    ``request_id``)? A node that does answers ``ProbeAnswer``; one that does not (a node that
    restarted has forgotten everything) stays silent, and so does a crashed one
    (qnetstack.network.reroute, "An end that is lost")."""

    kind: Literal["probe"] = "probe"
    head: str
    circuit: int = Field(ge=0)
    request_id: int


class ProbeAnswer(_Peer):
    """The answer to a ``Probe``: this node still holds what it asked about."""

    kind: Literal["probe_answer"] = "probe_answer"
    head: str
    circuit: int = Field(ge=0)
    request_id: int


class CircuitDone(_Peer):
    """Tail -> each repeater of the path: every pair was delivered, so no swap made for them
    can be voided any more; end the circuit (specs/network.md, NET-CUT-4)."""

    kind: Literal["circuit_done"] = "circuit_done"
    head: str
    circuit: int = Field(ge=0)


PeerMessage = (
    Forward
    | SwapRecord
    | CircuitFailed
    | Reserve
    | Reserved
    | Release
    | HopFreed
    | PairDiscarded
    | SegmentReady
    | TailDelivered
    | CircuitDone
    | Probe
    | ProbeAnswer
)
