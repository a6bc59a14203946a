"""Application service: what a user asks of an application and what it returns.

The *user* is whatever sits on top of a node's application entity: a script,
the scenario runner, a notebook. It sends an application request down and gets
results back up. Two applications so far:

* ``TeleportRequest``: teleport single-qubit states from this node to
  ``remote_node``; each teleported state yields a ``TeleportResult`` (at the
  receiving node) with the *oracle* fidelity of the received state;
* ``PairsRequest``: make end-to-end pairs and report each one's oracle
  fidelity and the network's goodness in a ``PairResult``.

Every request carries a ``request_id`` chosen by its user, and every response
names it, so a user with several requests open at once (even to the same node)
tells the answers apart without relying on their order. ``AppDone`` or
``AppError`` closes a request at the node that made it. This module is the only
part of ``application`` other code may rely on.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field

from qnetstack.entity import Entity
from qnetstack.entity.message import Message as _Message
from qnetstack.link.service import PRIORITY_LEVELS
from qnetstack.network.service import PairId
from qnetstack.physical.service import Probability

__all__ = [
    "BlochState",
    "CARDINAL_STATES",
    "TeleportRequest",
    "PairsRequest",
    "AppRequest",
    "TeleportResult",
    "PairResult",
    "AppDone",
    "AppError",
    "AppErrorCode",
    "AppResponse",
    "ApplicationService",
    "CAP_APP_TELEPORT",
    "CAP_APP_PAIRS",
]

CAP_APP_TELEPORT = "application:teleport"
CAP_APP_PAIRS = "application:pairs"


# Left out in code, a request is request 0; a scenario file numbers the
# requests it leaves unnamed itself (stack.scenario.AppSpec).
_REQUEST_ID = Field(
    0,
    ge=0,
    description="the user's name for the request, unique among the node's open requests; every response names it",
)


class BlochState(_Message):
    """``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>``."""

    theta_rad: float = Field(ge=0.0, le=math.pi)
    phi_rad: float = Field(0.0, allow_inf_nan=False)


# The six eigenstates of X, Y and Z: a spherical 2-design, so the mean of any
# fidelity over them equals its average over the whole Bloch sphere.
CARDINAL_STATES: tuple[BlochState, ...] = (
    BlochState(theta_rad=0.0),
    BlochState(theta_rad=math.pi),
    BlochState(theta_rad=math.pi / 2, phi_rad=0.0),
    BlochState(theta_rad=math.pi / 2, phi_rad=math.pi),
    BlochState(theta_rad=math.pi / 2, phi_rad=math.pi / 2),
    BlochState(theta_rad=math.pi / 2, phi_rad=3 * math.pi / 2),
)


class TeleportRequest(_Message):
    """Teleport ``number`` states to ``remote_node``, cycling through ``states``.

    Leave ``states`` out to cycle through the six cardinal states.
    """

    kind: Literal["teleport"] = "teleport"
    request_id: int = _REQUEST_ID
    remote_node: str = Field(min_length=1)
    number: int = Field(1, ge=1)
    states: list[BlochState] | None = Field(None, min_length=1)
    min_fidelity: Probability = 0.0
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)  # passed on to the network (NetRequest.priority)


class PairsRequest(_Message):
    """Make ``number`` end-to-end pairs with ``remote_node`` and report each."""

    kind: Literal["pairs"] = "pairs"
    request_id: int = _REQUEST_ID
    remote_node: str = Field(min_length=1)
    number: int = Field(1, ge=1)
    min_fidelity: Probability = 0.0
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)  # passed on to the network (NetRequest.priority)


AppRequest = Annotated[TeleportRequest | PairsRequest, Field(discriminator="kind")]


class TeleportResult(_Message):
    """One teleported state, reported by the receiving node.

    ``request_id`` is the sender's: (``sender``, ``request_id``, ``index``)
    names the state.
    """

    kind: Literal["teleport_result"] = "teleport_result"
    request_id: int = Field(ge=0)
    sender: str
    index: int = Field(ge=0)
    state: BlochState
    oracle_fidelity: Probability
    pair_goodness: Probability
    received_time_ns: int = Field(ge=0)


class PairResult(_Message):
    """One end-to-end pair, reported by its tail node once both halves are known.

    ``request_id`` is the head's (``pair_id.head``) request the pair was made
    for; ``reported_time_ns`` is when both halves were read and this result
    sent, which is after the network delivered the pair at either end.
    """

    kind: Literal["pair_result"] = "pair_result"
    request_id: int = Field(ge=0)
    pair_id: PairId
    oracle_fidelity: Probability
    goodness: Probability
    reported_time_ns: int = Field(ge=0)


class AppDone(_Message):
    """Closes request ``request_id`` of this node: all ``number`` items done."""

    kind: Literal["app_done"] = "app_done"
    request_id: int = Field(ge=0)
    request_kind: str
    remote_node: str
    completed: int = Field(ge=0)
    time_ns: int = Field(ge=0)


class AppErrorCode(str, enum.Enum):
    """Why a request ended without being done."""

    DUPLICATE_ID = "DUPLICATE_ID"  # refused: the node has an open request with this id (that one goes on)
    REJECTED = "REJECTED"  # the network refused the request (NetRejected)
    ABORTED = "ABORTED"  # the network gave up on it before its last pair (NetError)
    NO_QUBIT = "NO_QUBIT"  # the device had no qubit for a state to teleport
    REMOTE_LOST = "REMOTE_LOST"  # the request's other end was lost (crashed, or cut off: the network's NetError END_LOST)


class AppError(_Message):
    """Ends request ``request_id`` of this node without it being done.

    With ``code`` ``DUPLICATE_ID`` it answers a request that was refused and
    never opened; the open request with that id is not affected.
    """

    kind: Literal["app_error"] = "app_error"
    request_id: int = Field(ge=0)
    request_kind: str
    code: AppErrorCode
    detail: str


AppResponse = Annotated[TeleportResult | PairResult | AppDone | AppError, Field(discriminator="kind")]


@runtime_checkable
class ApplicationService(Entity, Protocol):
    """An application entity: takes ``AppRequest`` from its user, answers ``AppResponse``."""
