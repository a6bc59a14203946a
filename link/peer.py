"""The messages the reference EGP sends to the EGP at the other end of a link.

Theory of operation
-------------------
The link service (``specs/link.md``) leaves the talk between the two ends of a
link to the implementation. The reference keeps it to four messages, because
almost everything the two ends must agree on they learn from events both see
at the same instant (heralds, agreed start times, deadlines):

* :class:`PeerCreate` (origin to responder, once per accepted CREATE): the
  request, the start time both ends use (two one-way delays + 1 ns after the
  CREATE, so the responder knows it in time and a refusal gets back before
  it) and the operating point both ends attempt at.
* :class:`PeerRefuse` (responder to origin): the responder will not serve the
  request (no consent, no memory); it arrives 1 ns before the start.
* :class:`PeerLost` (either way): this end freed its half of a heralded pair,
  because the request it was for had ended here (or the pair was a surplus);
  the other end revokes the pair with ERR EXPIRE if it reported it.
* :class:`PeerMultiplex` (either way, once at start): how many attempts in
  flight this end would keep on the link; the link uses the smaller number.
* :class:`PeerCancel` (origin to responder): the origin's layer above withdrew
  the request; both ends stop attempting for it at ``stop_ns`` (one delay +
  1 ns after the cancel, so the responder knows it in time) and end it there.

A request is named by ``(origin node, create_id)``: the key the EGP routes
every message and timer of the request by (:mod:`qnetstack.link.request`).
A message naming a request this end does not hold is dropped (LINK-SESS-1).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qnetstack.entity.message import Message as _PeerMessage
from qnetstack.link.service import LinkCreate, LinkErrorCode, RandomBasis, RequestType
from qnetstack.physical.service import Basis

__all__ = ["PeerCreate", "PeerRefuse", "PeerLost", "PeerMultiplex", "PeerCancel", "PeerMessage", "CREATE_TERMS"]

# The terms of a ``LinkCreate`` that travel in the ``PeerCreate`` and are kept in
# the request at both ends as they are, under the same names: all its fields but
# those the origin answers itself (the neighbour it names, the time limit it turns
# into an absolute deadline, the caller's tag it keeps).
CREATE_TERMS = tuple(name for name in LinkCreate.model_fields if name not in ("kind", "remote_node", "max_time_ns", "tag"))


class PeerCreate(_PeerMessage):
    """EGP-to-EGP: a CREATE the other end accepted, with the agreed start."""

    kind: Literal["peer_create"] = "peer_create"
    create_id: int = Field(ge=0)
    origin_node: str
    purpose_id: int
    number: int = Field(ge=1)
    min_fidelity: float = Field(ge=0.0, le=1.0)
    type: RequestType
    basis: Basis
    start_ns: int = Field(ge=0)
    deadline_ns: int | None
    remote_basis: Basis | None = None
    random_basis: RandomBasis = RandomBasis.NONE
    remote_random_basis: RandomBasis = RandomBasis.NONE
    priority: int = 0
    atomic: bool = False
    consecutive: bool = False
    bright_state_population: float | None = Field(None, ge=0.0, le=1.0)


class PeerRefuse(_PeerMessage):
    """Responder-to-origin: the responder will not serve this request."""

    kind: Literal["peer_refuse"] = "peer_refuse"
    create_id: int = Field(ge=0)
    code: LinkErrorCode
    detail: str = ""


class PeerLost(_PeerMessage):
    """A success heralded for a request that had already ended at the sender:
    the sender freed its half of pair ``sequence``."""

    kind: Literal["peer_lost"] = "peer_lost"
    sequence: int = Field(ge=0)


class PeerMultiplex(_PeerMessage):
    """Sent once per link at start when this end would keep more than one
    attempt in flight: the most it will keep (the link uses the smaller of the
    two ends' numbers; an end that never sends one keeps one)."""

    kind: Literal["peer_multiplex"] = "peer_multiplex"
    max_in_flight: int = Field(ge=2)


class PeerCancel(_PeerMessage):
    """Origin-to-responder: the request is withdrawn; both ends give it no attempt
    from ``stop_ns`` on and end it then with ERR CANCELLED."""

    kind: Literal["peer_cancel"] = "peer_cancel"
    create_id: int = Field(ge=0)
    stop_ns: int = Field(ge=0)


PeerMessage = PeerCreate | PeerRefuse | PeerLost | PeerMultiplex | PeerCancel
