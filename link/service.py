"""Link-layer service: heralded entanglement between two neighbouring nodes.

The shape follows the QuTech link-layer design (Dahlberg et al., SIGCOMM 2019;
draft-dahlberg-ll-quantum-03, 2019), with typed units:

* the layer above sends ``LinkCreate`` down;
* the link entity answers at once with ``LinkAck`` (request accepted, with its
  ``create_id``) or ``LinkError`` (UNSUPP, CREATE, ...);
* for every pair it then sends ``LinkOkKeep`` (type K: the qubit is kept in
  memory, the handle is given) or ``LinkOkMeasure`` (type M: the qubit was
  measured at once, the outcome and basis are given) **at both ends**;
* it ends with ``LinkError`` TIMEOUT if ``max_time_ns`` runs out first.

The full service (``specs/link.md`` §2) adds request type R (remote state
preparation), random measurement bases for type M and R, priority, the atomic
and consecutive flags, and consent at the responder: the layer above there
sends ``LinkRecv`` / ``LinkStopRecv``. The origin may withdraw a CREATE with
``LinkCancel`` (capability ``link:cancel``): the request then ends at both ends
with ``LinkError`` CANCELLED (``specs/link.md`` §2.6). Every new field has a default that gives
the behaviour of the first version, and bad values cannot be constructed
(pydantic raises ``ValidationError`` naming the field and its range).

ACKs and immediate errors come in the order the CREATEs were sent, and echo
the CREATE's ``tag`` so that a caller need not rely on that order. An OK never
precedes its ACK at the creating node. This module is the only part of ``link``
that other layers may import.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field, model_validator

from qnetstack.entity import Entity
from qnetstack.entity.message import Message as _Message
from qnetstack.physical.service import Basis, BellDiagonalWeights, BellState, Probability, QubitHandle

__all__ = [
    "BellState",
    "Basis",
    "RequestType",
    "RandomBasis",
    "LinkCreate",
    "LinkRecv",
    "LinkStopRecv",
    "LinkCancel",
    "LinkRequest",
    "LinkAck",
    "EntanglementId",
    "LinkOkKeep",
    "LinkOkMeasure",
    "LinkErrorCode",
    "LinkError",
    "LinkResponse",
    "LinkState",
    "LinkService",
    "CAP_LINK_K",
    "CAP_LINK_M",
    "CAP_LINK_R",
    "CAP_LINK_RECV",
    "CAP_LINK_PRIORITY",
    "CAP_LINK_ATOMIC",
    "CAP_LINK_ALPHA",
    "CAP_LINK_CANCEL",
    "PRIORITY_LEVELS",
]

CAP_LINK_K = "link:K"
CAP_LINK_M = "link:M"
# The parts of the full service an implementation may offer (its PROVIDES says
# which); the conformance suite marks the clauses of the others not applicable.
CAP_LINK_R = "link:R"  # type R: remote state preparation
CAP_LINK_RECV = "link:recv"  # consent at the responder with LinkRecv / LinkStopRecv
CAP_LINK_PRIORITY = "link:priority"  # priority, fair sharing and the consecutive flag
CAP_LINK_ATOMIC = "link:atomic"  # the atomic flag
CAP_LINK_ALPHA = "link:alpha"  # picks the single-click operating point from HeraldingLink.alpha_settings
CAP_LINK_CANCEL = "link:cancel"  # the origin withdraws a CREATE with LinkCancel; its ACKs say cancellable

PRIORITY_LEVELS = 4  # priorities 0 (served first) .. 3


class RequestType(str, enum.Enum):
    """K: create and keep in memory. M: measure directly on creation, at both
    ends. R: remote state preparation, the origin measures at once and the
    responder keeps its qubit (which the origin's outcome and basis prepare)."""

    K = "K"
    M = "M"
    R = "R"


class RandomBasis(str, enum.Enum):
    """Draw the measurement basis per pair (draft-dahlberg-ll-quantum-03 §4.1.1, RL/RR).

    NONE: use the fixed basis. XZ: X or Z with probability 1/2 each (BB84,
    Bennett & Brassard 1984). XYZ: X, Y or Z, 1/3 each (six-state protocol,
    Bruss, PRL 81, 3018, 1998). CHSH: the settings of the CHSH test (Clauser,
    Horne, Shimony & Holt, PRL 23, 880, 1969), which differ by end: the
    origin draws Z or X, the responder ZX_PLUS or ZX_MINUS ((Z ± X)/√2, Z
    rotated by ±π/4 about Y), 1/2 each. On Φ+ these give
    ``S = E(Z,ZX_PLUS) + E(Z,ZX_MINUS) + E(X,ZX_PLUS) − E(X,ZX_MINUS) = 2√2``.
    """

    NONE = "NONE"
    XZ = "XZ"
    XYZ = "XYZ"
    CHSH = "CHSH"

    def bases(self, at_origin: bool) -> tuple[Basis, ...]:
        """The set drawn from, uniformly, at the origin (``at_origin``) or the
        responder; empty for NONE (the fixed basis is used)."""
        if self is RandomBasis.CHSH:
            return _CHSH_ORIGIN if at_origin else _CHSH_RESPONDER
        return _RANDOM_BASES[self]


_RANDOM_BASES: dict[RandomBasis, tuple[Basis, ...]] = {
    RandomBasis.NONE: (),
    RandomBasis.XZ: (Basis.X, Basis.Z),
    RandomBasis.XYZ: (Basis.X, Basis.Y, Basis.Z),
}
_CHSH_ORIGIN = (Basis.Z, Basis.X)
_CHSH_RESPONDER = (Basis.ZX_PLUS, Basis.ZX_MINUS)


class LinkCreate(_Message):
    """Ask for ``number`` pairs with ``remote_node``.

    ``min_fidelity`` is the lowest fidelity the caller accepts; a request the
    link can never meet is refused with UNSUPP. ``max_time_ns`` is the longest
    the caller will wait for the whole request (``None``: no limit).
    ``purpose_id`` tags the pairs for the layer above at both ends (like a
    port number). For type M and R, ``basis`` is the origin's measurement
    basis, or ``random_basis`` names a set the origin draws from per pair; for
    type M the responder measures in ``remote_basis`` (``None``: the same as
    ``basis``) or draws from ``remote_random_basis``, independently. The OK at
    each end reports the basis used there.

    ``priority`` 0 is served first. ``atomic``: all ``number`` pairs must
    exist at the same time; their OKs come together once the last is made,
    and if that cannot happen in time none is delivered. ``consecutive``: once
    the request's first attempt starts, the link serves it alone until it
    ends, so its pairs are made back to back with no other request's attempts
    in between.

    ``tag`` is the caller's own name for this request (``None``: no tag). The
    link echoes it in the ``LinkAck`` and in every ``LinkError`` that answers
    this request at the origin, so a caller with several requests in flight
    matches each answer to its request by tag, not by arrival order. The tag
    stays at the origin: the responder's upper layer sees ``tag=None``.
    """

    kind: Literal["create"] = "create"
    remote_node: str = Field(min_length=1)
    min_fidelity: Probability = 0.0
    max_time_ns: int | None = Field(None, gt=0)
    purpose_id: int = Field(0, ge=0, le=65535)
    number: int = Field(1, ge=1)
    type: RequestType = RequestType.K
    basis: Basis = Basis.Z
    remote_basis: Basis | None = None
    random_basis: RandomBasis = RandomBasis.NONE
    remote_random_basis: RandomBasis = RandomBasis.NONE
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)
    atomic: bool = False
    consecutive: bool = False
    tag: int | None = Field(None, ge=0)


class LinkRecv(_Message):
    """At the responder: consent to serve CREATEs for ``purpose_id`` from
    ``remote_node`` (``None``: from any neighbour). See ``specs/link.md`` §2.5."""

    kind: Literal["recv"] = "recv"
    remote_node: str | None = Field(None, min_length=1)
    purpose_id: int = Field(0, ge=0, le=65535)


class LinkStopRecv(_Message):
    """Withdraw a consent given by ``LinkRecv`` with the same fields."""

    kind: Literal["stop_recv"] = "stop_recv"
    remote_node: str | None = Field(None, min_length=1)
    purpose_id: int = Field(0, ge=0, le=65535)


class LinkCancel(_Message):
    """At the origin: withdraw a CREATE of this node that is still open, named by
    ``create_id`` (from its ACK) or by ``tag`` (every open request of this node
    with that tag; give one of the two).

    Not answered at once. The request ends at both ends with ``LinkError``
    CANCELLED (the tag echoed at the origin) once both ends have stopped
    attempting for it, at an instant they agree on (``specs/link.md`` §2.6);
    a pair made before then is reported as usual. A cancel that names no open
    request of this node (unknown, already ended, or the responder's) changes
    nothing. Served by links that provide ``link:cancel``; their ACKs say so
    (``LinkAck.cancellable``), so a caller sends it only for such requests."""

    kind: Literal["cancel"] = "cancel"
    create_id: int | None = Field(None, ge=0)
    tag: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _names_one(self) -> LinkCancel:
        if (self.create_id is None) == (self.tag is None):
            raise ValueError("give exactly one of create_id and tag")
        return self


LinkRequest = Annotated[LinkCreate | LinkRecv | LinkStopRecv | LinkCancel, Field(discriminator="kind")]


class LinkAck(_Message):
    """The CREATE tagged ``tag`` was accepted; its OKs and errors name ``create_id``.
    ``cancellable``: the link serves a ``LinkCancel`` for this request."""

    kind: Literal["ack"] = "ack"
    create_id: int = Field(ge=0)
    remote_node: str
    purpose_id: int = Field(ge=0, le=65535)
    tag: int | None = Field(None, ge=0)
    cancellable: bool = False


class EntanglementId(_Message):
    """Network-unique name of a pair: (creator node, peer node, sequence)."""

    creator: str
    peer: str
    sequence: int = Field(ge=0)


class _LinkOk(_Message):
    """What both OKs say of the pair: the request it was made for, its name and
    its state. Each OK narrows ``kind`` (its place among the fields stays first)."""

    kind: str
    create_id: int = Field(ge=0)
    origin_node: str
    ent_id: EntanglementId
    purpose_id: int = Field(ge=0, le=65535)
    remote_node: str
    bell_state: BellState
    goodness: Probability


class LinkOkKeep(_LinkOk):
    """A pair was made and its local half is kept in memory as ``handle``.

    ``origin_node`` is the node that sent the CREATE (with ``create_id`` it
    names the request). ``goodness`` is the link's estimate of the pair's
    fidelity to ``bell_state`` at ``goodness_time_ns``.

    ``bell_diagonal`` (optional; ``None``: not known) is the link's estimate of
    the pair's Bell-basis diagonal at ``goodness_time_ns``, relative to
    ``bell_state``: the weight of ``bell_state.compose(b)`` for each ``b`` in
    the order of :class:`BellState`, its first entry ``goodness``
    (specs/link.md §2).
    """

    kind: Literal["ok_keep"] = "ok_keep"
    goodness_time_ns: int = Field(ge=0)
    handle: QubitHandle
    bell_diagonal: BellDiagonalWeights | None = None


class LinkOkMeasure(_LinkOk):
    """A pair was made and the local half measured at once (type M at both
    ends, type R at the origin); ``basis`` is the basis used at this end."""

    kind: Literal["ok_measure"] = "ok_measure"
    outcome: Literal[0, 1]
    basis: Basis


class LinkErrorCode(str, enum.Enum):
    UNSUPP = "UNSUPP"  # can never be served (e.g. fidelity out of reach, K without memory)
    CREATE = "CREATE"  # malformed request (e.g. unknown or non-neighbour remote node)
    REJECTED = "REJECTED"  # refused by this or the remote node
    TIMEOUT = "TIMEOUT"  # max_time_ns ran out before all pairs were made
    NORES = "NORES"  # not enough memory free now for an atomic request
    EXPIRE = "EXPIRE"  # a pair already reported is no longer valid
    DOWN = "DOWN"  # the link is cut (the physical layer reported it down): no pair can be made
    CANCELLED = "CANCELLED"  # the origin's layer above withdrew the request (LinkCancel)
    OTHER = "OTHER"


class LinkError(_Message):
    """The request ends (every code but EXPIRE), or, for EXPIRE, the pair
    ``ent_id`` reported earlier in an OK is revoked and the request goes on.
    At the origin ``tag`` echoes the CREATE's tag (an immediate refusal has a
    ``create_id`` no other answer will use); at the responder it is ``None``."""

    kind: Literal["error"] = "error"
    create_id: int = Field(ge=0)
    origin_node: str
    code: LinkErrorCode
    detail: str = ""
    ent_id: EntanglementId | None = None  # EXPIRE only: the pair revoked
    tag: int | None = Field(None, ge=0)


class LinkState(_Message):
    """A notice sent up, unasked, when the link to ``remote_node`` goes down (``up``
    false: its requests have just ended with ERR DOWN, and new ones will end so too)
    or comes back up. Only a run with faults produces it (specs/link.md §3, "A link
    that goes down"); a layer above that ignores it still learns of a cut from the
    ERR DOWN of its requests."""

    kind: Literal["link_state"] = "link_state"
    remote_node: str
    up: bool


LinkResponse = Annotated[LinkAck | LinkOkKeep | LinkOkMeasure | LinkError, Field(discriminator="kind")]


@runtime_checkable
class LinkService(Entity, Protocol):
    """A link-layer entity: takes ``LinkRequest`` from above, answers ``LinkResponse``.

    Built as ``Impl(ctx, config)``; uses the physical heralding and device
    services below it. Class attributes ``PROVIDES`` and ``REQUIRES`` (sets of
    capability names) let the assembler check the stack before running it.
    """
