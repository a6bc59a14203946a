"""Reference applications: teleportation and pair reporting, as sessions.

Theory of operation
-------------------
One ``BasicApps`` entity runs on every node and serves both applications. The
node that receives the user's request is the *sender* (head); the remote node
is the *receiver* (tail).

Every piece of work is a :class:`~qnetstack.entity.machine.Session` with an
explicit state machine (``MACHINES`` below; the spec's diagrams are rendered
from them):

* at the head, one session per user request, ``TeleportSender`` or
  ``PairsHead``. The user names it (``request_id``, unique among the node's
  open requests; a second request with an open id is refused with
  ``AppError`` ``DUPLICATE_ID``). Its ``NetRequest`` gets an id of the
  entity's own, never reused, because the network's ids must stay new at a
  node while a user may reuse an id once its request is closed; network
  messages (``NetAccepted``, ``NetRejected``, ``NetError``, ``PairDelivered``
  at the head) and the tail's ``Release`` reach the session through that
  network id (in ``PairId.request_id``).
* at the tail, one ``Receiver`` session per pair, keyed by the network's
  ``PairId``, opened by whichever comes first of the pair's ``PairDelivered``
  and the head's peer message about it (``TeleportBits`` or ``HeldPair``,
  which carry the head's ``request_id`` so the results can name it).

A message from a peer or from the network that names a session this entity
does not hold (never opened, or already ended) is dropped and traced as
``unknown_session`` (APP-SESS-1). The tail remembers which pairs of each head
request it has reported (compactly: a low-water mark and the indices above
it), so a late or repeated message about a reported pair is recognised rather
than opening a session that would wait for ever. The tail's copy of a
``NetError`` names the head's request, which is never a session here, so it
is dropped too.

Teleportation (Bennett et al., PRL 70, 1895, 1993), per end-to-end pair k:

1. the sender asks the network for ``number`` type-K pairs;
2. on pair k it prepares the k-th input state in a fresh qubit, Bell-measures
   that qubit with its half of the pair and sends the outcome to the receiver
   (``TeleportBits``);
3. the receiver, holding pair k (delivered with its Bell state, i.e. its Pauli
   frame) and the outcome, applies ``X^x Z^z`` with ``(x, z)`` the XOR of the
   outcome's and the pair's frame bits, reads the oracle fidelity of its qubit
   to the input state, frees it and reports ``TeleportResult``.

On a device whose operations take time (durations in the node's hardware)
the sender's Bell measurement and the receiver's correction gates go through
the device's request path (``ctx.request_device``): the outcome is sent when
the measurement is done and the state is read when the last gate is, so
every qubit involved waits, and decoheres, for those durations. The sender's
request ends only when no measurement is under way any more.

If the device has no qubit for an input state, the request ends with
``AppError`` ``NO_QUBIT`` and the session frees the halves of the pairs the
network still delivers for it, telling the receiver of each
(``TeleportSkipped``) so that it frees its half too.

Pairs: the sender tells the receiver which qubit holds its half
(``HeldPair``); the receiver reads the oracle fidelity of the two-qubit state to
the delivered Bell state, reports ``PairResult`` and tells the sender to free
its half (``Release``). The oracle read happens when both halves are known, so
it includes the decoherence of the wait — what a user of the pair would get.
After a ``NetError`` the head still frees the halves the tail reports.

Lost pairs: the network may follow a ``PairDelivered`` with ``PairLost`` at one
end (the request moved to another path, or ended, between the two ends'
deliveries: the other half will never be delivered; specs/network.md
NET-PAIR-6). That end frees its half and the pair does not count:

* at the head, the session frees the half it keeps (pairs) or, for
  teleportation, counts the state sent over it as not teleported (its outcome
  may be out already; the receiver never reports that index), and tells the
  tail's application (``PairLostAtHead``), whose session for the pair (it may
  hold the head's ``HeldPair`` or ``TeleportBits``) ends without a report. The
  network makes another pair in its place, under a new index, so the request
  still ends with ``number`` pairs (or states) at both ends;
* at the tail, the session for the pair (the head never had it) frees the
  half and ends without a report.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import Any, Literal, NamedTuple, cast

from qnetstack.application.qkd_apps import QKD_MACHINES, QKD_MESSAGES, QKD_NET_IDS, QkdApps
from qnetstack.application.service import (
    CAP_APP_PAIRS,
    CAP_APP_QKD,
    CAP_APP_TELEPORT,
    CARDINAL_STATES,
    AppDone,
    AppError,
    AppErrorCode,
    BlochState,
    PairResult,
    PairsRequest,
    QkdRequest,
    TeleportRequest,
    TeleportResult,
)
from qnetstack.entity import Context, EntityError, Wait
from qnetstack.entity.machine import Machine, Session, drop_unknown, transition_trace
from qnetstack.network.service import (
    CAP_NET_K,
    NetAccepted,
    NetError,
    NetErrorCode,
    NetRejected,
    NetRequest,
    PairDelivered,
    PairId,
    PairLost,
)
from qnetstack.physical.service import (
    CAP_DEVICE,
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    DeviceError,
    FreeQubit,
    Gate,
    InitQubit,
    OracleFidelity,
    OracleFidelityResult,
    QubitAllocated,
)

__all__ = [
    "BasicApps",
    "TeleportBits",
    "TeleportSkipped",
    "HeldPair",
    "PairLostAtHead",
    "Release",
    "teleport_correction",
    "HeadState",
    "HeadEvent",
    "TailState",
    "TailEvent",
    "TeleportSender",
    "PairsHead",
    "Receiver",
    "TELEPORT_SENDER",
    "PAIRS_HEAD",
    "RECEIVER",
    "MACHINES",
]


# The peer messages are private to this implementation (specs/application.md) and built
# only by its own code from validated values, so they are named tuples, not validated
# models: immutable like every message, and several times cheaper to build (two go between
# head and tail for every pair).


class TeleportBits(NamedTuple):
    """Sender -> receiver: the Bell-measurement outcome for pair ``pair_id``.

    ``request_id`` is the sender's user's id of the request, for the result.
    ``oracle_state`` is the input state, carried only so the receiver can
    score the result; a real receiver would not know it.
    """

    request_id: int
    pair_id: PairId
    outcome: BellState
    oracle_state: BlochState
    goodness: float
    kind: Literal["teleport_bits"] = "teleport_bits"


class TeleportSkipped(NamedTuple):
    """Sender -> receiver: no state is teleported over pair ``pair_id`` (the request
    was closed with ``NO_QUBIT``); the sender freed its half, free yours."""

    request_id: int
    pair_id: PairId
    kind: Literal["teleport_skipped"] = "teleport_skipped"


class HeldPair(NamedTuple):
    """Head -> tail: the head holds its half of ``pair_id`` in qubit ``handle``."""

    request_id: int
    pair_id: PairId
    handle: int
    kind: Literal["held_pair"] = "held_pair"


class PairLostAtHead(NamedTuple):
    """Head -> tail: the network declared ``pair_id`` lost at the head (``PairLost``); the head
    freed its half, or counts the state sent over it as lost. The pair is never reported."""

    request_id: int
    pair_id: PairId
    kind: Literal["pair_lost_at_head"] = "pair_lost_at_head"


class Release(NamedTuple):
    """Tail -> head: ``pair_id`` is reported; free your half."""

    pair_id: PairId
    kind: Literal["release"] = "release"


def teleport_correction(outcome: BellState, pair_state: BellState) -> list[Gate]:
    """Gates the receiver applies: X^x then Z^z for the combined frame (x, z)."""
    x, z = outcome.compose(pair_state).pauli_bits
    return [gate for gate, bit in ((Gate.X, x), (Gate.Z, z)) if bit]


# ------------------------------------------------------------ state machines


class HeadState(str, enum.Enum):
    ASKED = "asked"  # NetRequest sent, no answer yet
    RUNNING = "running"  # the network took it on
    ABANDONED = "abandoned"  # teleport: closed with NO_QUBIT; freeing the pairs still coming
    DRAINING = "draining"  # pairs: closed by NetError; freeing the halves the tail still reports
    DONE = "done"
    FAILED = "failed"


class HeadEvent(str, enum.Enum):
    ACCEPTED = "net_accepted"
    REJECTED = "net_rejected"
    ABORTED = "net_error"
    PAIR = "pair"  # a pair delivered here that is not the request's last
    LAST_PAIR = "last_pair"  # the request's number-th pair delivered here
    NO_QUBIT = "no_qubit"  # the device had no qubit for the state to teleport
    RELEASED = "released"  # the tail reported a pair and its half here is freed
    REMOTE_LOST = "end_lost"  # the network says the tail is lost (NetError END_LOST)
    LAST_RELEASED = "last_released"  # ... and it was the request's number-th
    DRAINED = "drained"  # no half of an aborted request is held any more
    MEASURED = "measured"  # teleport: a Bell measurement that took the device's time is done
    LAST_MEASURED = "last_measured"  # ... and no other is under way and every pair was delivered
    LOST = "pair_lost"  # the network declared a pair delivered here lost (PairLost)


_H, _E = HeadState, HeadEvent

TELEPORT_SENDER = Machine(
    name="app-teleport-sender",
    initial=_H.ASKED,
    transitions={
        (_H.ASKED, _E.ACCEPTED): _H.RUNNING,
        (_H.ASKED, _E.REJECTED): _H.FAILED,
        (_H.RUNNING, _E.PAIR): _H.RUNNING,
        (_H.RUNNING, _E.LAST_PAIR): _H.DONE,
        (_H.RUNNING, _E.ABORTED): _H.FAILED,
        (_H.RUNNING, _E.NO_QUBIT): _H.ABANDONED,
        (_H.ABANDONED, _E.PAIR): _H.ABANDONED,
        (_H.ABANDONED, _E.LAST_PAIR): _H.FAILED,
        (_H.ABANDONED, _E.ABORTED): _H.FAILED,
        (_H.RUNNING, _E.MEASURED): _H.RUNNING,
        (_H.RUNNING, _E.LAST_MEASURED): _H.DONE,
        (_H.ABANDONED, _E.MEASURED): _H.ABANDONED,
        (_H.ABANDONED, _E.LAST_MEASURED): _H.FAILED,
        (_H.RUNNING, _E.LOST): _H.RUNNING,
        (_H.ABANDONED, _E.LOST): _H.ABANDONED,
        (_H.RUNNING, _E.REMOTE_LOST): _H.FAILED,
        (_H.ABANDONED, _E.REMOTE_LOST): _H.FAILED,
    },
    final=frozenset({_H.DONE, _H.FAILED}),
    doc=(
        "One teleport request at its sender, keyed by the user's `request_id`. On each pair it Bell-measures "
        "the next input state with its half and sends the outcome to the receiver; `AppDone` on entering "
        "`done`, `AppError` on entering `failed` from `asked` or `running` and on entering `abandoned`. "
        "On a device whose Bell measurement takes time the outcome is sent when the measurement is done "
        "(`measured`), and the last pair's delivery ends the request only once no measurement is under way "
        "(else the last measurement does, `last_measured`). A pair the network declares lost (`pair_lost`) "
        "does not count: the state sent over it is not teleported, and the receiver is told. When the network "
        "says the receiver is lost (`end_lost`) the request ends with `AppError` `REMOTE_LOST` (if still open)."
    ),
)

PAIRS_HEAD = Machine(
    name="app-pairs-head",
    initial=_H.ASKED,
    transitions={
        (_H.ASKED, _E.ACCEPTED): _H.RUNNING,
        (_H.ASKED, _E.REJECTED): _H.FAILED,
        (_H.RUNNING, _E.PAIR): _H.RUNNING,
        (_H.RUNNING, _E.RELEASED): _H.RUNNING,
        (_H.RUNNING, _E.LAST_RELEASED): _H.DONE,
        (_H.RUNNING, _E.ABORTED): _H.DRAINING,
        (_H.DRAINING, _E.RELEASED): _H.DRAINING,
        (_H.DRAINING, _E.DRAINED): _H.FAILED,
        (_H.RUNNING, _E.LOST): _H.RUNNING,
        (_H.DRAINING, _E.LOST): _H.DRAINING,
        (_H.RUNNING, _E.REMOTE_LOST): _H.FAILED,
    },
    final=frozenset({_H.DONE, _H.FAILED}),
    doc=(
        "One pairs request at its head, keyed by the user's `request_id`. It keeps each delivered half and "
        "tells the tail which qubit holds it; it frees the half when the tail has reported the pair. "
        "`AppDone` on entering `done`; `AppError` on entering `draining` or on `net_rejected`. A pair the "
        "network declares lost (`pair_lost`) is freed at once and does not count; the tail is told. When the "
        "network says the tail is lost (`end_lost`) it frees every half it keeps at once (no report will come) "
        "and ends with `AppError` `REMOTE_LOST`."
    ),
)


class TailState(str, enum.Enum):
    NEW = "new"
    HAS_PAIR = "has_pair"  # the network delivered the pair here; the head's message is awaited
    HAS_BITS = "has_bits"  # the sender's outcome came first; the pair is awaited
    HAS_HELD = "has_held"  # the head's HeldPair came first; the pair is awaited
    HAS_SKIP = "has_skip"  # the sender's TeleportSkipped came first; the pair is awaited
    REPORTED = "reported"
    FREED = "freed"  # the pair's half was freed unused: the sender skipped it
    LOST = "lost"  # the pair was declared lost at one end: never reported


class TailEvent(str, enum.Enum):
    PAIR = "pair_delivered"
    BITS = "teleport_bits"
    HELD = "held_pair"
    SKIPPED = "teleport_skipped"
    LOST = "pair_lost"  # the network declared the pair, delivered here, lost (PairLost)
    LOST_AT_HEAD = "pair_lost_at_head"  # the head's application says it was lost there
    HEAD_LOST = "head_lost"  # the network says the pair's head is lost (NetError END_LOST)


_T, _TE = TailState, TailEvent

RECEIVER = Machine(
    name="app-receiver",
    initial=_T.NEW,
    transitions={
        (_T.NEW, _TE.PAIR): _T.HAS_PAIR,
        (_T.NEW, _TE.BITS): _T.HAS_BITS,
        (_T.NEW, _TE.HELD): _T.HAS_HELD,
        (_T.HAS_PAIR, _TE.BITS): _T.REPORTED,
        (_T.HAS_PAIR, _TE.HELD): _T.REPORTED,
        (_T.HAS_BITS, _TE.PAIR): _T.REPORTED,
        (_T.HAS_HELD, _TE.PAIR): _T.REPORTED,
        (_T.NEW, _TE.SKIPPED): _T.HAS_SKIP,
        (_T.HAS_PAIR, _TE.SKIPPED): _T.FREED,
        (_T.HAS_SKIP, _TE.PAIR): _T.FREED,
        (_T.HAS_PAIR, _TE.LOST): _T.LOST,
        (_T.NEW, _TE.LOST_AT_HEAD): _T.LOST,
        (_T.HAS_HELD, _TE.LOST_AT_HEAD): _T.LOST,
        (_T.HAS_BITS, _TE.LOST_AT_HEAD): _T.LOST,
        (_T.HAS_SKIP, _TE.LOST_AT_HEAD): _T.LOST,
        (_T.HAS_PAIR, _TE.HEAD_LOST): _T.LOST,
        (_T.HAS_BITS, _TE.HEAD_LOST): _T.LOST,
        (_T.HAS_HELD, _TE.HEAD_LOST): _T.LOST,
        (_T.HAS_SKIP, _TE.HEAD_LOST): _T.LOST,
    },
    final=frozenset({_T.REPORTED, _T.FREED, _T.LOST}),
    doc=(
        "One end-to-end pair at its tail, keyed by the network's `PairId`, opened by whichever comes first "
        "of the pair's `PairDelivered` and the head's message about it. On entering `reported` it corrects "
        "and scores a teleported state (`TeleportResult`) or scores the pair, tells the head to free its "
        "half and sends `PairResult`. On entering `freed` (the sender closed its request with `NO_QUBIT` "
        "and skipped the pair) it frees its half and reports nothing. On entering `lost` (the network "
        "declared the pair lost here, or the head's application says it was lost there) it frees the half "
        "it holds, if any, and reports nothing; a later message about the pair is dropped. The network's word "
        "that the pair's head is lost (`head_lost`) ends it the same way."
    ),
)

MACHINES = (TELEPORT_SENDER, PAIRS_HEAD, RECEIVER, *QKD_MACHINES)

# The members read for every pair, as module constants: looking a member up on its enum class
# goes through the enum metaclass and costs about ten times a global read.
_PAIR, _LAST_PAIR, _RELEASED, _LAST_RELEASED = _E.PAIR, _E.LAST_PAIR, _E.RELEASED, _E.LAST_RELEASED
_ABANDONED, _DRAINING, _DONE = _H.ABANDONED, _H.DRAINING, _H.DONE
_PAIR_DELIVERED, _BITS, _HELD, _REPORTED = _TE.PAIR, _TE.BITS, _TE.HELD, _T.REPORTED
_SKIPPED, _FREED = _TE.SKIPPED, _T.FREED


class _HeadSession(Session):
    """A user request at the node that made it."""

    __slots__ = ("request", "net_id", "delivered", "finished", "held", "states", "measuring", "lost_measuring")

    def __init__(self, request: TeleportRequest | PairsRequest, net_id: int, trace: Any) -> None:
        super().__init__(request.request_id, trace)
        self.request = request
        self.net_id = net_id  # the id of its NetRequest, which network messages name
        self.delivered = 0  # pairs the network delivered here
        self.finished = 0  # teleport: outcomes sent; pairs: pairs reported and freed here
        self.held: dict[int, int] = {}  # pairs: index -> handle of a half awaiting the tail's report
        self.states: tuple[BlochState, ...] = ()
        self.measuring = 0  # teleport: Bell measurements under way at the device
        self.lost_measuring: set[int] = set()  # teleport: indices lost while their measurement is under way


class TeleportSender(_HeadSession):
    machine = TELEPORT_SENDER
    __slots__ = ()


class PairsHead(_HeadSession):
    machine = PAIRS_HEAD
    __slots__ = ()


class Receiver(Session):
    """One pair at its tail, waiting for the delivery and the head's message."""

    machine = RECEIVER
    __slots__ = ("pair", "message")

    def __init__(self, pair_id: PairId, trace: Any) -> None:
        super().__init__(pair_id, trace)
        self.pair: PairDelivered | None = None
        self.message: TeleportBits | HeldPair | TeleportSkipped | PairLostAtHead | None = None


class _Reported:
    """Indices of one head request's pairs already reported here: all below
    ``below``, and those in ``above``. Pairs mostly end in order, so ``above``
    stays small."""

    __slots__ = ("below", "above")

    def __init__(self) -> None:
        self.below = 0
        self.above: set[int] = set()

    def add(self, index: int) -> None:
        self.above.add(index)
        while self.below in self.above:
            self.above.remove(self.below)
            self.below += 1

    def __contains__(self, index: int) -> bool:
        return index < self.below or index in self.above


class BasicApps:
    """Reference application entity (teleportation, pairs, and QKD through :class:`QkdApps`)."""

    PROVIDES = frozenset({CAP_APP_TELEPORT, CAP_APP_PAIRS, CAP_APP_QKD})
    REQUIRES = frozenset({CAP_NET_K, CAP_DEVICE})

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._next_net_id = 0
        self._open: dict[int, _HeadSession] = {}  # user's request_id -> request not yet closed to the user
        self._heads: dict[int, _HeadSession] = {}  # NetRequest id -> head session not yet ended
        # by the PairId's fields: a tuple of them hashes in C, a frozen model in Python (4 lookups a pair)
        self._tails: dict[tuple[str, str, int, int], Receiver] = {}
        self._reported: dict[tuple[str, int], _Reported] = {}  # (head, NetRequest id) -> pairs reported here
        self._lost_heads: set[tuple[str, int]] = set()  # (head, NetRequest id) of requests whose head is lost
        self._session_trace = transition_trace(ctx)  # what every session here traces with
        # work handed to the device (operations that take its time), by the tag's number:
        # a sender's Bell measurement, a receiver's correction gates
        self._next_device_tag = 0
        self._measuring: dict[int, tuple[_HeadSession, PairDelivered, BlochState]] = {}
        self._correcting: dict[int, tuple[PairDelivered, TeleportBits, list[Gate]]] = {}
        self._qkd = QkdApps(ctx)  # QKD requests, told apart by their network ids (qkd_apps.QKD_NET_IDS)

    def start(self) -> None:
        pass

    # ------------------------------------------------------------ entity API

    def handle_above(self, msg: Any) -> None:
        if not isinstance(msg, (TeleportRequest, PairsRequest, QkdRequest)):
            raise EntityError(f"application got {type(msg).__name__} from its user; it serves TeleportRequest, PairsRequest, QkdRequest")
        if msg.request_id in self._open or self._qkd.is_open(msg.request_id):
            self.ctx.send_up(
                AppError(
                    request_id=msg.request_id,
                    request_kind=msg.kind,
                    code=AppErrorCode.DUPLICATE_ID,
                    detail=f"request_id {msg.request_id} is already open at {self.ctx.node}; this request is refused, that one goes on",
                )
            )
            return
        if isinstance(msg, QkdRequest):
            self._qkd.handle_above(msg)
            return
        session: _HeadSession
        if isinstance(msg, TeleportRequest):
            session = TeleportSender(msg, self._next_net_id, self._session_trace)
            session.states = tuple(msg.states) if msg.states else CARDINAL_STATES
        else:
            session = PairsHead(msg, self._next_net_id, self._session_trace)
        self._next_net_id += 1
        self._open[msg.request_id] = session
        self._heads[session.net_id] = session
        self.ctx.send_down(
            NetRequest(
                request_id=session.net_id,
                remote_node=msg.remote_node,
                number=msg.number,
                min_fidelity=msg.min_fidelity,
                priority=msg.priority,
                # a sender holds its input state's qubit next to its half of each pair: the network sets it aside
                head_qubits=1 if isinstance(msg, TeleportRequest) else 0,
            )
        )

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, (PairDelivered, PairLost)):
            if msg.pair_id.request_id >= QKD_NET_IDS:
                self._qkd.handle_below(msg)
                return
        elif isinstance(msg, (NetAccepted, NetRejected, NetError)) and msg.request_id >= QKD_NET_IDS:
            self._qkd.handle_below(msg)
            return
        if isinstance(msg, PairDelivered):
            if msg.pair_id.head == self.ctx.node:
                self._head_got_pair(msg)
            else:
                self._tail_event(msg.pair_id, _PAIR_DELIVERED, msg)
            return
        if isinstance(msg, PairLost):
            if msg.pair_id.head == self.ctx.node:
                self._head_lost(msg.pair_id)
            else:
                self._tail_lost(msg)
            return
        if not isinstance(msg, (NetAccepted, NetRejected, NetError)):
            raise EntityError(f"application got {type(msg).__name__} from below")
        if isinstance(msg, NetError) and msg.code is NetErrorCode.END_LOST:
            if msg.head == self.ctx.node:
                self._tail_is_lost(msg)
            else:
                self._head_is_lost(msg)
            return
        head = msg.head if isinstance(msg, NetError) else self.ctx.node
        session = self._heads.get(msg.request_id) if head == self.ctx.node else None
        if session is None:
            drop_unknown(self.ctx.trace, type(msg).__name__, (head, msg.request_id))
            return
        if isinstance(msg, NetAccepted):
            session.fire(HeadEvent.ACCEPTED)
        elif isinstance(msg, NetRejected):
            session.fire(HeadEvent.REJECTED)
            self._close(session, AppErrorCode.REJECTED, msg.reason)
            self._end(session)
        else:
            was = session.state
            session.fire(HeadEvent.ABORTED)
            if was is HeadState.RUNNING:
                self._close(session, AppErrorCode.ABORTED, f"{msg.code.value}: {msg.detail}")
            if session.state is HeadState.DRAINING and not session.held:
                session.fire(HeadEvent.DRAINED)
            if session.ended:
                self._end(session)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, QKD_MESSAGES):
            self._qkd.handle_peer(sender, msg)
        elif isinstance(msg, TeleportBits):
            self._tail_event(msg.pair_id, _BITS, msg)
        elif isinstance(msg, HeldPair):
            self._tail_event(msg.pair_id, _HELD, msg)
        elif isinstance(msg, Release):
            self._head_release(msg)
        elif isinstance(msg, TeleportSkipped):
            self._tail_event(msg.pair_id, _SKIPPED, msg)
        elif isinstance(msg, PairLostAtHead):
            self._tail_event(msg.pair_id, TailEvent.LOST_AT_HEAD, msg)
        else:
            raise EntityError(f"application got {type(msg).__name__} from peer {sender!r}")

    def handle_timer(self, tag: Hashable) -> None:
        self._qkd.handle_timer(tag)  # the only timers here are QKD's

    # ------------------------------------------------------------ introspection

    def describe_waits(self) -> list[Wait]:
        """What each request and each pair at this node waits for (``qnetstack.entity``'s
        optional ``describe_waits``): computed when asked, changes nothing."""
        me = self.ctx.node
        waits = []
        for net_id, head in self._heads.items():
            request = head.request
            waits.append(
                Wait(
                    session=f"{request.kind} request {me}#{request.request_id}",
                    waiting_for=_head_waits_for(head),
                    request=(me, request.request_id),
                    below=((me, net_id),),
                    peer=request.remote_node,
                    holds=len(head.held),
                )
            )
        for tail in self._tails.values():
            pair_id = tail.key
            name = f"pair {pair_id.head}/{pair_id.request_id}#{pair_id.index}"
            if tail.pair is None:
                waiting, holds = f"the network's delivery of {name}", 0
            else:
                waiting, holds = f"{pair_id.head}'s message about {name}", 1
            waits.append(
                Wait(
                    session=f"{name} at its tail {me}",
                    waiting_for=waiting,
                    request=None if tail.message is None else (pair_id.head, tail.message.request_id),
                    below=((pair_id.head, pair_id.request_id),),
                    peer=pair_id.head,
                    holds=holds,
                )
            )
        for pair, bits, _ in self._correcting.values():
            pair_id = pair.pair_id
            waits.append(
                Wait(
                    session=f"pair {pair_id.head}/{pair_id.request_id}#{pair_id.index} at its tail {me}",
                    waiting_for="the device's correction gate",
                    request=(pair_id.head, bits.request_id),
                    below=((pair_id.head, pair_id.request_id),),
                    peer=None,
                    holds=1,
                )
            )
        return waits + self._qkd.describe_waits()

    # ------------------------------------------------------------ head side

    def _close(self, session: _HeadSession, code: AppErrorCode | None = None, detail: str = "") -> None:
        """Tell the user the request is over (AppDone, or AppError with ``code``); its id is free again."""
        request = session.request
        del self._open[request.request_id]
        if code is None:
            self.ctx.send_up(
                AppDone(
                    request_id=request.request_id,
                    request_kind=request.kind,
                    remote_node=request.remote_node,
                    completed=session.finished,
                    time_ns=self.ctx.now_ns,
                )
            )
        else:
            self.ctx.send_up(AppError(request_id=request.request_id, request_kind=request.kind, code=code, detail=detail))

    def _end(self, session: _HeadSession) -> None:
        del self._heads[session.net_id]

    def _head_got_pair(self, pair: PairDelivered) -> None:
        session = self._heads.get(pair.pair_id.request_id)
        if session is None:
            drop_unknown(self.ctx.trace, "PairDelivered", pair.pair_id)
            return
        if pair.handle is None:
            raise EntityError(f"pair {pair.pair_id} delivered without a qubit; the application asks for type K")
        session.delivered += 1
        if isinstance(session, PairsHead):
            session.fire(_PAIR)
            session.held[pair.pair_id.index] = pair.handle
            self.ctx.send_peer(
                session.request.remote_node,
                HeldPair(request_id=session.request.request_id, pair_id=pair.pair_id, handle=pair.handle),
            )
            return
        device = self.ctx.device
        last = _LAST_PAIR if session.delivered >= session.request.number else _PAIR
        if session.state is _ABANDONED:
            self._skip(session, pair)
        else:
            state = session.states[pair.pair_id.index % len(session.states)]
            allocated = device.execute(InitQubit(theta_rad=state.theta_rad, phi_rad=state.phi_rad))
            if not isinstance(allocated, QubitAllocated):
                self._skip(session, pair)
                session.fire(HeadEvent.NO_QUBIT)
                self._close(session, AppErrorCode.NO_QUBIT, f"no qubit for the input state: {allocated}")
            else:
                measure = BellMeasure(handle_a=allocated.handle, handle_b=pair.handle)
                if self._takes_time(measure):
                    # the outcome goes out when the measurement is done; the request ends no earlier
                    session.measuring += 1
                    self._measuring[self._device_tag(measure)] = (session, pair, state)
                    if last is _LAST_PAIR:
                        last = _PAIR
                else:
                    self._send_bits(session, pair, state, device.execute(measure))
        session.fire(last)
        self._after(session)

    def _after(self, session: _HeadSession) -> None:
        if session.state is _DONE:
            self._close(session)
        if session.ended:
            self._end(session)

    def _takes_time(self, op: Any) -> bool:
        """Whether ``op`` takes the device's time (then it goes through ``request_device``).
        A device without durations does everything at once, as it always did."""
        duration = getattr(self.ctx.device, "duration_ns", None)
        return duration is not None and duration(op) > 0

    def _device_tag(self, op: Any) -> int:
        number = self._next_device_tag
        self._next_device_tag += 1
        self.ctx.request_device(op, ("app", number))
        return number

    def _send_bits(self, session: _HeadSession, pair: PairDelivered, state: BlochState, result: Any) -> None:
        if not isinstance(result, BellMeasureResult):
            raise EntityError(f"teleportation Bell measurement failed: {result}")
        self.ctx.send_peer(
            session.request.remote_node,
            TeleportBits(
                request_id=session.request.request_id,
                pair_id=pair.pair_id,
                outcome=result.bell_state,
                oracle_state=state,
                goodness=pair.goodness,
            ),
        )
        session.finished += 1

    def handle_device(self, tag: Hashable, result: Any) -> None:
        """The device finished an operation handed to it with ``request_device``: a sender's Bell
        measurement (its outcome goes to the receiver even if the request ended meanwhile,
        since the receiver holds its half of the pair and waits for it) or a receiver's
        correction gate (the next one, or the report)."""
        if cast("tuple[str, int]", tag)[0] == "qkd":
            self._qkd.handle_device(tag, result)
            return
        number = cast("tuple[str, int]", tag)[1]
        measured = self._measuring.pop(number, None)
        if measured is not None:
            session, pair, state = measured
            if pair.pair_id.index in session.lost_measuring:  # lost meanwhile: the receiver was told
                session.lost_measuring.remove(pair.pair_id.index)
                if not isinstance(result, BellMeasureResult):
                    raise EntityError(f"teleportation Bell measurement failed: {result}")
            else:
                self._send_bits(session, pair, state, result)
            session.measuring -= 1
            if session.ended:
                return
            done = session.measuring == 0 and session.delivered >= session.request.number
            session.fire(HeadEvent.LAST_MEASURED if done else HeadEvent.MEASURED)
            self._after(session)
            return
        pair, bits, gates = self._correcting.pop(number)
        if isinstance(result, DeviceError):
            raise EntityError(f"teleportation correction failed: {result}")
        self._correct(pair, bits, gates)

    def _skip(self, session: _HeadSession, pair: PairDelivered) -> None:
        """Free the sender's half of a pair no state is teleported over, and tell the
        receiver to free its half (else the receiver's memory fills with halves that
        wait for an outcome that never comes)."""
        assert pair.handle is not None
        self.ctx.device.execute(FreeQubit(handle=pair.handle))
        self.ctx.send_peer(session.request.remote_node, TeleportSkipped(request_id=session.request.request_id, pair_id=pair.pair_id))

    def _head_release(self, msg: Release) -> None:
        pair_id = msg.pair_id
        session = self._heads.get(pair_id.request_id) if pair_id.head == self.ctx.node else None
        if session is None or pair_id.index not in session.held:
            drop_unknown(self.ctx.trace, "Release", pair_id)
            return
        self.ctx.device.execute(FreeQubit(handle=session.held.pop(pair_id.index)))
        session.finished += 1
        if session.state is _DRAINING:
            session.fire(_RELEASED)
            if not session.held:
                session.fire(HeadEvent.DRAINED)
        elif session.finished >= session.request.number:
            session.fire(_LAST_RELEASED)
            self._close(session)
        else:
            session.fire(_RELEASED)
        if session.ended:
            self._end(session)

    def _head_lost(self, pair_id: PairId) -> None:
        """The network declared a pair delivered here lost: it does not count; free what is held
        for it and tell the tail's application, which may hold the head's message about it."""
        session = self._heads.get(pair_id.request_id)
        index = pair_id.index
        if session is None:
            drop_unknown(self.ctx.trace, "PairLost", pair_id)
            return
        if isinstance(session, PairsHead):
            handle = session.held.pop(index, None)
            if handle is None:  # not held here: never delivered, or reported already
                drop_unknown(self.ctx.trace, "PairLost", pair_id)
                return
            self.ctx.device.execute(FreeQubit(handle=handle))
        elif any(p.pair_id == pair_id for s, p, _ in self._measuring.values() if s is session):
            session.lost_measuring.add(index)  # its outcome will not be sent
        elif session.state is HeadState.RUNNING:
            session.finished -= 1  # its outcome was sent: that state is not teleported
        # (abandoned: the half was freed when the pair was skipped)
        session.delivered -= 1
        session.fire(HeadEvent.LOST)
        self.ctx.send_peer(session.request.remote_node, PairLostAtHead(request_id=session.request.request_id, pair_id=pair_id))
        if session.state is _DRAINING and not session.held:
            session.fire(HeadEvent.DRAINED)
        if session.ended:
            self._end(session)

    def _tail_is_lost(self, msg: NetError) -> None:
        """The network says the tail of a request made here is lost: nothing more will come from
        it (no report, no ``Release``), so every half kept for it is freed now and the request ends."""
        session = self._heads.get(msg.request_id)
        if session is None:
            drop_unknown(self.ctx.trace, msg.kind, (msg.head, msg.request_id))
            return
        device = self.ctx.device
        for handle in session.held.values():
            device.execute(FreeQubit(handle=handle))
        session.held.clear()
        still_open = self._open.get(session.request.request_id) is session
        session.fire(HeadEvent.REMOTE_LOST)
        if still_open:
            self._close(session, AppErrorCode.REMOTE_LOST, f"{msg.code.value}: {msg.detail}")
        self._end(session)

    # ------------------------------------------------------------ tail side

    def _head_is_lost(self, msg: NetError) -> None:
        """The network says the head of a request this node is the tail of is lost: its messages
        about the pairs will never come, so every pair of the request waiting here ends without a
        report and its half is freed; later messages about the request are dropped."""
        key = (msg.head, msg.request_id)
        if key in self._lost_heads:
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        self._lost_heads.add(key)
        device = self.ctx.device
        for tail_key in [k for k in self._tails if k[0] == msg.head and k[2] == msg.request_id]:
            session = self._tails.pop(tail_key)
            session.fire(TailEvent.HEAD_LOST)
            if session.pair is not None and session.pair.handle is not None:
                device.execute(FreeQubit(handle=session.pair.handle))

    def _tail_lost(self, msg: PairLost) -> None:
        """The network declared a pair delivered here lost (the head never had it)."""
        pair_id = msg.pair_id
        if (pair_id.head, pair_id.tail, pair_id.request_id, pair_id.index) not in self._tails:
            drop_unknown(self.ctx.trace, "PairLost", pair_id)
            return
        self._tail_event(pair_id, TailEvent.LOST, msg)

    def _tail_event(self, pair_id: PairId, event: TailEvent, msg: Any) -> None:
        tails = self._tails
        tail_key = (pair_id.head, pair_id.tail, pair_id.request_id, pair_id.index)
        session = tails.get(tail_key)
        if session is None:
            reported = self._reported.get((pair_id.head, pair_id.request_id))
            if reported is not None and pair_id.index in reported:
                drop_unknown(self.ctx.trace, type(msg).__name__, pair_id)
                return
            if self._lost_heads and (pair_id.head, pair_id.request_id) in self._lost_heads:
                # the request ended here when its head was lost: nothing about it opens a session
                if event is _PAIR_DELIVERED and msg.handle is not None:
                    self.ctx.device.execute(FreeQubit(handle=msg.handle))
                drop_unknown(self.ctx.trace, type(msg).__name__, pair_id)
                return
            session = tails[tail_key] = Receiver(pair_id, self._session_trace)
        session.fire(event)
        if event is _PAIR_DELIVERED:
            session.pair = msg
        elif event is not TailEvent.LOST:
            session.message = msg
        if not session.ended:
            return
        del tails[tail_key]
        key = (pair_id.head, pair_id.request_id)
        reported = self._reported.get(key)
        if reported is None:
            reported = self._reported[key] = _Reported()
        reported.add(pair_id.index)
        if session.state is _FREED:
            assert session.pair is not None and session.pair.handle is not None
            self.ctx.device.execute(FreeQubit(handle=session.pair.handle))
            return
        if session.state is TailState.LOST:
            if session.pair is not None and session.pair.handle is not None:
                self.ctx.device.execute(FreeQubit(handle=session.pair.handle))
            return
        self._report(session)

    def _report(self, session: Receiver) -> None:
        pair, msg = session.pair, session.message
        # a skipped pair ends in `freed`, a lost one in `lost`, never here
        assert pair is not None and isinstance(msg, (TeleportBits, HeldPair)) and pair.handle is not None
        if isinstance(msg, TeleportBits):
            self._correct(pair, msg, teleport_correction(msg.outcome, pair.bell_state))
            return
        pair_id = pair.pair_id
        device = self.ctx.device
        # the references as fields: validated inside OracleFidelity's own validation (one pass, not three)
        fidelity = device.execute(
            OracleFidelity(
                qubits=[{"node": pair_id.head, "handle": msg.handle}, {"node": self.ctx.node, "handle": pair.handle}],
                bell_state=pair.bell_state,
            )
        )
        device.execute(FreeQubit(handle=pair.handle))
        self.ctx.send_peer(pair_id.head, Release(pair_id=pair_id))
        self.ctx.send_up(
            PairResult(
                request_id=msg.request_id,
                pair_id=pair_id,
                oracle_fidelity=_fidelity(fidelity),
                goodness=pair.goodness,
                reported_time_ns=self.ctx.now_ns,
            )
        )

    def _correct(self, pair: PairDelivered, bits: TeleportBits, gates: list[Gate]) -> None:
        """Apply the receiver's correction ``gates`` one after the other, then score the teleported
        state and report it. A gate that takes the device's time is handed to it; the rest
        continues when it is done (:meth:`handle_device`), so the qubit waits, and decoheres,
        for every gate's duration before it is read."""
        assert pair.handle is not None
        device = self.ctx.device
        while gates:
            gate = ApplyGate(gate=gates[0], handle=pair.handle)
            if self._takes_time(gate):
                self._correcting[self._device_tag(gate)] = (pair, bits, gates[1:])
                return
            device.execute(gate)
            gates = gates[1:]
        state = bits.oracle_state
        fidelity = device.execute(
            OracleFidelity(
                qubits=[{"node": self.ctx.node, "handle": pair.handle}],
                theta_rad=state.theta_rad,
                phi_rad=state.phi_rad,
            )
        )
        device.execute(FreeQubit(handle=pair.handle))
        self.ctx.send_up(
            TeleportResult(
                request_id=bits.request_id,
                sender=pair.pair_id.head,
                index=pair.pair_id.index,
                state=state,
                oracle_fidelity=_fidelity(fidelity),
                pair_goodness=bits.goodness,
                received_time_ns=self.ctx.now_ns,
            )
        )


def _head_waits_for(session: _HeadSession) -> str:
    request = session.request
    remote = request.remote_node
    if session.state is HeadState.ASKED:
        return f"the network's answer to its request for pairs with {remote}"
    if session.state is HeadState.ABANDONED:
        return f"the rest of its pairs with {remote}, to free them (closed with {AppErrorCode.NO_QUBIT.value})"
    if session.state is HeadState.DRAINING:
        return f"{remote}'s reports on {len(session.held)} held half(s), to free them (closed by a network error)"
    done = f"{session.delivered}/{request.number} pairs delivered"
    if isinstance(session, PairsHead):
        done += f", {session.finished} reported by {remote}"
    if session.measuring:
        done += f", {session.measuring} Bell measurement(s) at the device"
    return f"end-to-end pairs with {remote} ({done})"


def _fidelity(result: Any) -> float:
    if not isinstance(result, OracleFidelityResult):
        raise EntityError(f"oracle fidelity read failed: {result}")
    return result.fidelity
