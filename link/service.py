"""Link-layer service: heralded entanglement between two neighbouring nodes.

The shape follows the QuTech link-layer design (Dahlberg et al., SIGCOMM 2019;
draft-dahlberg-ll-quantum-03, 2019; summary in
``shared/reference/protocol-specs.md`` §2), with typed units:

* the layer above sends ``LinkCreate`` down;
* the link entity answers at once with ``LinkAck`` (request accepted, with its
  ``create_id``) or ``LinkError`` (UNSUPP, CREATE, ...);
* for every pair it then sends ``LinkOkKeep`` (type K: the qubit is kept in
  memory, the handle is given) or ``LinkOkMeasure`` (type M: the qubit was
  measured at once, the outcome and basis are given) **at both ends**;
* it ends with ``LinkError`` TIMEOUT if ``max_time_ns`` runs out first.

ACKs and immediate errors come in the order the CREATEs were sent. An OK never
precedes its ACK at the creating node. This module is the only part of ``link``
that other layers may import.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from entity import Entity
from physical.service import Basis, BellState, Probability, QubitHandle

__all__ = [
    "BellState",
    "Basis",
    "RequestType",
    "LinkCreate",
    "LinkRequest",
    "LinkAck",
    "EntanglementId",
    "LinkOkKeep",
    "LinkOkMeasure",
    "LinkErrorCode",
    "LinkError",
    "LinkResponse",
    "LinkService",
    "CAP_LINK_K",
    "CAP_LINK_M",
]

CAP_LINK_K = "link:K"
CAP_LINK_M = "link:M"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestType(str, enum.Enum):
    """K: create and keep in memory. M: measure directly on creation."""

    K = "K"
    M = "M"


class LinkCreate(_Message):
    """Ask for ``number`` pairs with ``remote_node``.

    ``min_fidelity`` is the lowest fidelity the caller accepts; a request the
    link can never meet is refused with UNSUPP. ``max_time_ns`` is the longest
    the caller will wait for the whole request (``None``: no limit).
    ``purpose_id`` tags the pairs for the layer above at both ends (like a
    port number). For type M, ``basis`` is the local measurement basis.
    """

    kind: Literal["create"] = "create"
    remote_node: str = Field(min_length=1)
    min_fidelity: Probability = 0.0
    max_time_ns: int | None = Field(None, gt=0)
    purpose_id: int = Field(0, ge=0, le=65535)
    number: int = Field(1, ge=1)
    type: RequestType = RequestType.K
    basis: Basis = Basis.Z


LinkRequest = Annotated[LinkCreate, Field(discriminator="kind")]


class LinkAck(_Message):
    kind: Literal["ack"] = "ack"
    create_id: int = Field(ge=0)
    remote_node: str
    purpose_id: int = Field(ge=0, le=65535)


class EntanglementId(_Message):
    """Network-unique name of a pair: (creator node, peer node, sequence)."""

    creator: str
    peer: str
    sequence: int = Field(ge=0)


class LinkOkKeep(_Message):
    """A pair was made and its local half is kept in memory as ``handle``.

    ``origin_node`` is the node that sent the CREATE (with ``create_id`` it
    names the request). ``goodness`` is the link's estimate of the pair's
    fidelity to ``bell_state`` at ``goodness_time_ns``.
    """

    kind: Literal["ok_keep"] = "ok_keep"
    create_id: int = Field(ge=0)
    origin_node: str
    ent_id: EntanglementId
    purpose_id: int = Field(ge=0, le=65535)
    remote_node: str
    bell_state: BellState
    goodness: Probability
    goodness_time_ns: int = Field(ge=0)
    handle: QubitHandle


class LinkOkMeasure(_Message):
    """A pair was made and the local half measured at once."""

    kind: Literal["ok_measure"] = "ok_measure"
    create_id: int = Field(ge=0)
    origin_node: str
    ent_id: EntanglementId
    purpose_id: int = Field(ge=0, le=65535)
    remote_node: str
    bell_state: BellState
    goodness: Probability
    outcome: Literal[0, 1]
    basis: Basis


class LinkErrorCode(str, enum.Enum):
    UNSUPP = "UNSUPP"  # can never be served (e.g. fidelity out of reach, K without memory)
    CREATE = "CREATE"  # malformed request (e.g. unknown or non-neighbour remote node)
    REJECTED = "REJECTED"  # refused by this or the remote node
    TIMEOUT = "TIMEOUT"  # max_time_ns ran out before all pairs were made
    NORES = "NORES"  # no memory to serve it now
    EXPIRE = "EXPIRE"  # pairs already reported are no longer valid
    OTHER = "OTHER"


class LinkError(_Message):
    kind: Literal["error"] = "error"
    create_id: int = Field(ge=0)
    origin_node: str
    code: LinkErrorCode
    detail: str = ""


LinkResponse = Annotated[
    LinkAck | LinkOkKeep | LinkOkMeasure | LinkError, Field(discriminator="kind")
]


@runtime_checkable
class LinkService(Entity, Protocol):
    """A link-layer entity: takes ``LinkRequest`` from above, answers ``LinkResponse``.

    Built as ``Impl(ctx, config)``; uses the physical heralding and device
    services below it. Class attributes ``PROVIDES`` and ``REQUIRES`` (sets of
    capability names) let the assembler check the stack before running it.
    """
