"""Reference applications: teleportation and pair reporting.

Theory of operation
-------------------
One ``BasicApps`` entity runs on every node and serves both applications. The
node that receives the user's request is the *sender* (head); the remote node
is the *receiver* (tail).

Teleportation (Bennett et al., PRL 70, 1895, 1993), per end-to-end pair k:

1. the sender asks the network for ``number`` type-K pairs;
2. on pair k it prepares the k-th input state in a fresh qubit, Bell-measures
   that qubit with its half of the pair and sends the outcome to the receiver
   (``TeleportBits``);
3. the receiver, holding pair k (delivered with its Bell state, i.e. its Pauli
   frame) and the outcome, applies ``X^x Z^z`` with ``(x, z)`` the XOR of the
   outcome's and the pair's frame bits, reads the oracle fidelity of its qubit
   to the input state, frees it and reports ``TeleportResult``.

Pairs: the sender tells the receiver which qubit holds its half
(``HeldPair``); the receiver reads the oracle fidelity of the two-qubit state to
the delivered Bell state, reports ``PairResult`` and tells the sender to free
its half (``Release``). The oracle read happens when both halves are known, so
it includes the decoherence of the wait — what a user of the pair would get.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qnetstack.application.service import (
    CAP_APP_PAIRS,
    CAP_APP_TELEPORT,
    CARDINAL_STATES,
    AppDone,
    AppError,
    BlochState,
    PairResult,
    PairsRequest,
    TeleportRequest,
    TeleportResult,
)
from qnetstack.entity import Context, EntityError
from qnetstack.network.service import (
    CAP_NET_K,
    NetAccepted,
    NetError,
    NetRejected,
    NetRequest,
    PairDelivered,
    PairId,
)
from qnetstack.physical.service import (
    CAP_DEVICE,
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    Gate,
    InitQubit,
    OracleFidelity,
    OracleFidelityResult,
    QubitAllocated,
    QubitRef,
)

__all__ = ["BasicApps", "TeleportBits", "HeldPair", "Release", "teleport_correction"]


class _Peer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TeleportBits(_Peer):
    """Sender -> receiver: the Bell-measurement outcome for pair ``pair_id``.

    ``oracle_state`` is the input state, carried only so the receiver can
    score the result; a real receiver would not know it.
    """

    kind: Literal["teleport_bits"] = "teleport_bits"
    pair_id: PairId
    outcome: BellState
    oracle_state: BlochState
    goodness: float


class HeldPair(_Peer):
    kind: Literal["held_pair"] = "held_pair"
    pair_id: PairId
    handle: int


class Release(_Peer):
    kind: Literal["release"] = "release"
    pair_id: PairId


def teleport_correction(outcome: BellState, pair_state: BellState) -> list[Gate]:
    """Gates the receiver applies: X^x then Z^z for the combined frame (x, z)."""
    x, z = outcome.compose(pair_state).pauli_bits
    return [gate for gate, bit in ((Gate.X, x), (Gate.Z, z)) if bit]


@dataclass
class _Job:
    kind: Literal["teleport", "pairs"]
    request_id: int
    remote: str
    number: int
    states: tuple[BlochState, ...] = ()
    done: int = 0
    failed: bool = False
    held: dict[int, int] = field(default_factory=dict)  # pair index -> handle (pairs, sender side)


class BasicApps:
    """Reference application entity (teleportation and pairs)."""

    PROVIDES = frozenset({CAP_APP_TELEPORT, CAP_APP_PAIRS})
    REQUIRES = frozenset({CAP_NET_K, CAP_DEVICE})

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._next_request_id = 0
        self._jobs: dict[int, _Job] = {}  # request_id -> job, at the sender
        # at the receiver: pairs delivered and sender messages, each waiting for the other
        self._delivered: dict[PairId, PairDelivered] = {}
        self._messages: dict[PairId, TeleportBits | HeldPair] = {}

    def start(self) -> None:
        pass

    # ------------------------------------------------------------ entity API

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, TeleportRequest):
            states = tuple(msg.states) if msg.states else CARDINAL_STATES
            job = _Job("teleport", self._next_request_id, msg.remote_node, msg.number, states)
        elif isinstance(msg, PairsRequest):
            job = _Job("pairs", self._next_request_id, msg.remote_node, msg.number)
        else:
            raise EntityError(f"application got {type(msg).__name__} from its user; it serves TeleportRequest, PairsRequest")
        self._next_request_id += 1
        self._jobs[job.request_id] = job
        self.ctx.send_down(
            NetRequest(request_id=job.request_id, remote_node=msg.remote_node, number=msg.number, min_fidelity=msg.min_fidelity)
        )

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, NetAccepted):
            return
        if isinstance(msg, NetError) and msg.head != self.ctx.node:
            # The tail's copy of an abort: request ids are the head's, so this
            # one may equal an id of our own requests. Pairs already delivered
            # here are still finished when the head's message comes.
            return
        if isinstance(msg, (NetRejected, NetError)):
            job = self._jobs.get(msg.request_id)
            if job is not None and not job.failed:
                job.failed = True
                detail = msg.reason if isinstance(msg, NetRejected) else f"{msg.code.value}: {msg.detail}"
                self.ctx.send_up(AppError(request_kind=job.kind, detail=detail))
            return
        if not isinstance(msg, PairDelivered):
            raise EntityError(f"application got {type(msg).__name__} from below")
        if msg.pair_id.head == self.ctx.node:
            self._sender_got_pair(msg)
        else:
            self._delivered[msg.pair_id] = msg
            self._receiver_try(msg.pair_id)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, (TeleportBits, HeldPair)):
            self._messages[msg.pair_id] = msg
            self._receiver_try(msg.pair_id)
        elif isinstance(msg, Release):
            job = self._jobs.get(msg.pair_id.request_id)
            if job is None:
                return
            handle = job.held.pop(msg.pair_id.index, None)
            if handle is not None:
                self.ctx.device.execute(FreeQubit(handle=handle))
            job.done += 1
            self._maybe_done(job)
        else:
            raise EntityError(f"application got {type(msg).__name__} from peer {sender!r}")

    def handle_timer(self, tag: Hashable) -> None:
        pass

    # ------------------------------------------------------------ sender side

    def _sender_got_pair(self, pair: PairDelivered) -> None:
        job = self._jobs.get(pair.pair_id.request_id)
        if job is None or pair.handle is None:
            raise EntityError(f"pair {pair.pair_id} delivered for no request of this node")
        device = self.ctx.device
        if job.kind == "pairs":
            job.held[pair.pair_id.index] = pair.handle
            self.ctx.send_peer(job.remote, HeldPair(pair_id=pair.pair_id, handle=pair.handle))
            return
        state = job.states[pair.pair_id.index % len(job.states)]
        allocated = device.execute(InitQubit(theta_rad=state.theta_rad, phi_rad=state.phi_rad))
        if not isinstance(allocated, QubitAllocated):
            device.execute(FreeQubit(handle=pair.handle))
            self.ctx.send_up(AppError(request_kind="teleport", detail=f"no qubit for the input state: {allocated}"))
            return
        result = device.execute(BellMeasure(handle_a=allocated.handle, handle_b=pair.handle))
        if not isinstance(result, BellMeasureResult):
            raise EntityError(f"teleportation Bell measurement failed: {result}")
        self.ctx.send_peer(
            job.remote,
            TeleportBits(pair_id=pair.pair_id, outcome=result.bell_state, oracle_state=state, goodness=pair.goodness),
        )
        job.done += 1
        self._maybe_done(job)

    def _maybe_done(self, job: _Job) -> None:
        if job.done >= job.number:
            del self._jobs[job.request_id]
            self.ctx.send_up(AppDone(request_kind=job.kind, remote_node=job.remote, completed=job.done, time_ns=self.ctx.now_ns))

    # ------------------------------------------------------------ receiver side

    def _receiver_try(self, pair_id: PairId) -> None:
        pair = self._delivered.get(pair_id)
        msg = self._messages.get(pair_id)
        if pair is None or msg is None:
            return
        del self._delivered[pair_id], self._messages[pair_id]
        device = self.ctx.device
        assert pair.handle is not None
        if isinstance(msg, TeleportBits):
            for gate in teleport_correction(msg.outcome, pair.bell_state):
                device.execute(ApplyGate(gate=gate, handle=pair.handle))
            state = msg.oracle_state
            fidelity = device.execute(
                OracleFidelity(
                    qubits=[QubitRef(node=self.ctx.node, handle=pair.handle)],
                    theta_rad=state.theta_rad,
                    phi_rad=state.phi_rad,
                )
            )
            device.execute(FreeQubit(handle=pair.handle))
            self.ctx.send_up(
                TeleportResult(
                    sender=pair_id.head,
                    index=pair_id.index,
                    state=state,
                    oracle_fidelity=_fidelity(fidelity),
                    pair_goodness=msg.goodness,
                    received_time_ns=self.ctx.now_ns,
                )
            )
        else:
            fidelity = device.execute(
                OracleFidelity(
                    qubits=[
                        QubitRef(node=pair_id.head, handle=msg.handle),
                        QubitRef(node=self.ctx.node, handle=pair.handle),
                    ],
                    bell_state=pair.bell_state,
                )
            )
            device.execute(FreeQubit(handle=pair.handle))
            self.ctx.send_peer(pair_id.head, Release(pair_id=pair_id))
            self.ctx.send_up(
                PairResult(
                    pair_id=pair_id,
                    oracle_fidelity=_fidelity(fidelity),
                    goodness=pair.goodness,
                    delivered_time_ns=self.ctx.now_ns,
                )
            )


def _fidelity(result: Any) -> float:
    if not isinstance(result, OracleFidelityResult):
        raise EntityError(f"oracle fidelity read failed: {result}")
    return result.fidelity
