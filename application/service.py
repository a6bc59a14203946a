"""Application service: what a user asks of an application and what it returns.

The *user* is whatever sits on top of a node's application entity: a script,
the scenario runner, a notebook. It sends an application request down and gets
results back up. Two applications so far:

* ``TeleportRequest``: teleport single-qubit states from this node to
  ``remote_node``; each teleported state yields a ``TeleportResult`` (at the
  receiving node) with the *oracle* fidelity of the received state;
* ``PairsRequest``: make end-to-end pairs and report each one's oracle
  fidelity and the network's goodness in a ``PairResult``.

``AppDone`` closes a request at the node that made it. This module is the only
part of ``application`` other code may rely on.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from qnetstack.entity import Entity
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
    "AppResponse",
    "ApplicationService",
    "CAP_APP_TELEPORT",
    "CAP_APP_PAIRS",
]

CAP_APP_TELEPORT = "application:teleport"
CAP_APP_PAIRS = "application:pairs"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlochState(_Message):
    """``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>``."""

    theta_rad: float = Field(ge=0.0, le=math.pi)
    phi_rad: float = 0.0


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
    remote_node: str = Field(min_length=1)
    number: int = Field(1, ge=1)
    states: list[BlochState] | None = Field(None, min_length=1)
    min_fidelity: Probability = 0.0


class PairsRequest(_Message):
    """Make ``number`` end-to-end pairs with ``remote_node`` and report each."""

    kind: Literal["pairs"] = "pairs"
    remote_node: str = Field(min_length=1)
    number: int = Field(1, ge=1)
    min_fidelity: Probability = 0.0


AppRequest = Annotated[TeleportRequest | PairsRequest, Field(discriminator="kind")]


class TeleportResult(_Message):
    """One teleported state, reported by the receiving node."""

    kind: Literal["teleport_result"] = "teleport_result"
    sender: str
    index: int = Field(ge=0)
    state: BlochState
    oracle_fidelity: Probability
    pair_goodness: Probability
    received_time_ns: int = Field(ge=0)


class PairResult(_Message):
    """One end-to-end pair, reported by its tail node once both halves are known."""

    kind: Literal["pair_result"] = "pair_result"
    pair_id: PairId
    oracle_fidelity: Probability
    goodness: Probability
    delivered_time_ns: int = Field(ge=0)


class AppDone(_Message):
    kind: Literal["app_done"] = "app_done"
    request_kind: str
    remote_node: str
    completed: int = Field(ge=0)
    time_ns: int = Field(ge=0)


class AppError(_Message):
    kind: Literal["app_error"] = "app_error"
    request_kind: str
    detail: str


AppResponse = Annotated[
    TeleportResult | PairResult | AppDone | AppError, Field(discriminator="kind")
]


@runtime_checkable
class ApplicationService(Entity, Protocol):
    """An application entity: takes ``AppRequest`` from its user, answers ``AppResponse``."""
