"""Keys between non-neighbours through trusted relays: one QKD session per hop, joined by one-time pads.

Theory of operation
-------------------
A ``QkdRelayRequest`` at node S names the trusted relays R1 .. Rm on a path
of links to the destination D: ``path = (S, R1, .., Rm, D)``, h = m + 1 hops.
Hop i runs between ``path[i]`` (its head) and ``path[i + 1]`` as an ordinary
QKD request (``QkdRequest``, BBM92 or E91 at ε/h), made by the head of that
hop through the same entry point a user uses; its ``KeyDelivered`` and
``AppError`` come back to this entity, not to the user. Then, in the
trusted-node scheme of the SECOQC network (Peev et al., New J. Phys. 11,
075001, 2009; Elliott, New J. Phys. 4, 46, 2002):

1. S sends ``RelayStart`` to every other node of the path and starts hop 0.
   Each relay starts its outgoing hop when the start reaches it. Every hop
   head tells its hop's tail which QKD request is the hop (``RelayHop``).
2. Relay Ri, holding k_in = k_(i-1) and k_out = k_i, announces to D
   ``x_i = k_in ⊕ k_out`` over their first ``min(len k_in, len k_out)`` bits
   (``RelayXor``). An announcement is a one-time-pad encryption of one hop
   key under the other, so it is public.
3. D, holding k_m and x_1 .. x_m, cuts everything to L, the shortest hop key
   (the minimum of the announcements' lengths and of k_m's), and recovers
   ``k_m ⊕ x_m ⊕ .. ⊕ x_1 = k_0`` (the sum telescopes). It delivers the key
   and tells S the length (``RelayFinal``); S delivers ``k_0[:L]``.

Both ends deliver ``KeyDelivered`` (key id ``S/relayN``, the n-th relay
request S opened) and ``RelayKeyInfo``, which names the trusted relays, the
hop keys and every announcement. Each relay holds two hop keys and the
announcements are public, so each relay can compute the end key: that is the
trust the request states. A hop that ends without a key makes its head send
``RelayAbort`` to every other node of the path; S closes the request with
``AppError`` (the hop's code, the detail naming the hop) and D delivers
``RelayAborted``. The other hops' sessions cannot be cancelled through the
application service: they run to their end and their keys are discarded.

Figures of the end key: ``length`` L, ``epsilon`` the request's (each hop
ran at ε/h, and security parameters add under composition), ``pairs`` the
pairs spent on all hops, and the sifting, QBER and leakage figures of hop 0,
whose key (cut to L) is the end key.

Simplifications, stated: the announcements and the final message are not
authenticated (each hop's QKD messages are, with its own pre-shared pool); a
real network would authenticate them with key from the hops.

Every relay session runs the machine ``RELAY`` below; a message naming a
relay session this node has ended is dropped (APP-SESS-1), and one that comes
before the session's ``RelayStart`` is held until the start comes.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any, Literal, NamedTuple

import numpy as np

from qnetstack.application.apps import BasicApps
from qnetstack.application.service import (
    CAP_APP_QKD_RELAY,
    AppDone,
    AppError,
    AppErrorCode,
    KeyAborted,
    KeyDelivered,
    QkdRelayRequest,
    QkdRequest,
    RelayAborted,
    RelayAnnouncement,
    RelayKeyInfo,
)
from qnetstack.entity import Context
from qnetstack.entity.machine import Machine, Session, drop_unknown, transition_trace

__all__ = [
    "RELAY_HOP_IDS",
    "KeyRelayApps",
    "RelayStart",
    "RelayHop",
    "RelayXor",
    "RelayFinal",
    "RelayAbort",
    "RELAY_MESSAGES",
    "RelayState",
    "RelayEvent",
    "RELAY",
    "MACHINES",
    "xor_announcement",
    "end_key",
]

# The user request ids of the hops' QKD requests start here; a user's own ids stay below it.
RELAY_HOP_IDS = 1 << 48

HOP_FIGURES = (
    "sifted_bits",
    "sample_bits",
    "sample_errors",
    "qber",
    "qber_upper",
    "leaked_ec_bits",
    "verify_bits",
    "ec",
    "chsh_s",
    "chsh_standard_error",
)


# ------------------------------------------------------------ peer messages
# Private to this implementation and built from validated values only (as the other
# applications' peer messages): named tuples. A session is named by (S, n): S's n-th relay request.


class RelayStart(NamedTuple):
    """S -> every other node of the path: a relay request starts."""

    head: str
    number: int
    request: QkdRelayRequest
    path: tuple[str, ...]
    kind: Literal["relay_start"] = "relay_start"


class RelayHop(NamedTuple):
    """Head of hop ``hop`` -> its tail: that hop's key is the QKD request ``hop_request_id`` of the sender."""

    head: str
    number: int
    hop: int
    hop_request_id: int
    kind: Literal["relay_hop"] = "relay_hop"


class RelayXor(NamedTuple):
    """Relay at ``position`` -> D: its public announcement; the relay at position 1 adds hop 0's figures."""

    head: str
    number: int
    position: int
    announcement: RelayAnnouncement
    length_in: int
    length_out: int
    hop0_figures: tuple[tuple[str, Any], ...]
    kind: Literal["relay_xor"] = "relay_xor"


class RelayFinal(NamedTuple):
    """D -> S: the end key's length and how it was made (every field of ``RelayKeyInfo`` S cannot know)."""

    head: str
    number: int
    length: int
    hop_key_ids: tuple[str, ...]
    hop_lengths: tuple[int, ...]
    announcements: tuple[RelayAnnouncement, ...]
    kind: Literal["relay_final"] = "relay_final"


class RelayAbort(NamedTuple):
    """Head of hop ``hop`` -> every other node of the path: that hop ended without a key."""

    head: str
    number: int
    hop: int
    code: AppErrorCode
    detail: str
    kind: Literal["relay_abort"] = "relay_abort"


RELAY_MESSAGES = (RelayStart, RelayHop, RelayXor, RelayFinal, RelayAbort)


# ------------------------------------------------------------ the one-time pads


def xor_announcement(key_in: np.ndarray, key_out: np.ndarray) -> np.ndarray:
    """A relay's announcement: ``key_in ⊕ key_out`` over the shorter key's length."""
    length = min(len(key_in), len(key_out))
    return np.bitwise_xor(key_in[:length], key_out[:length])


def end_key(last_hop_key: np.ndarray, announcements: list[np.ndarray]) -> np.ndarray:
    """D's copy of hop 0's key: ``k_m ⊕ x_m ⊕ .. ⊕ x_1``, every term cut to the shortest."""
    length = min([len(last_hop_key), *(len(x) for x in announcements)])
    key = last_hop_key[:length].copy()
    for x in announcements:
        key ^= x[:length]
    return key


def _bits(hex_key: str, length: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_key), dtype=np.uint8), bitorder="big")[:length]


def _packed(key: np.ndarray) -> bytes:
    return np.packbits(key.astype(np.uint8), bitorder="big").tobytes()


# ------------------------------------------------------------ the state machine


class RelayState(str, enum.Enum):
    KEYING = "keying"  # hop keys (and, at D, announcements; at S, D's final word) awaited
    DONE = "done"  # S and D: the end key delivered; a relay: its announcement sent
    FAILED = "failed"  # a hop ended without a key


class RelayEvent(str, enum.Enum):
    HOP_KEY = "hop_key"  # a hop key this node needs arrived, more is awaited
    ANNOUNCEMENT = "announcement"  # D: a relay's announcement arrived, more is awaited
    COMPLETE = "complete"  # all this node needs is in: it delivers (S, D) or announces (relay)
    ABORT = "abort"  # a hop failed (here, or a hop head says so)


_S, _E = RelayState, RelayEvent

RELAY = Machine(
    name="app-qkd-relay",
    initial=_S.KEYING,
    transitions={
        (_S.KEYING, _E.HOP_KEY): _S.KEYING,
        (_S.KEYING, _E.ANNOUNCEMENT): _S.KEYING,
        (_S.KEYING, _E.COMPLETE): _S.DONE,
        (_S.KEYING, _E.ABORT): _S.FAILED,
    },
    final=frozenset({_S.DONE, _S.FAILED}),
    doc=(
        "One trusted-relay request at one node of its path, keyed by (head, n). A relay collects its two hop "
        "keys and on `complete` announces their XOR to the destination; the destination collects its hop key "
        "and every announcement and on `complete` delivers the end key and tells the head its length; the "
        "head, with its hop key and that word, delivers on `complete`. A hop that ends without a key "
        "(`abort`) ends the session at every node of the path: `AppError` at the head, `RelayAborted` at the "
        "destination."
    ),
)

MACHINES = (RELAY,)


class _RelaySession(Session):
    machine = RELAY
    __slots__ = ("request", "path", "position", "keys", "xors", "final")

    def __init__(self, key: tuple[str, int], request: QkdRelayRequest, path: tuple[str, ...], position: int, trace: Any) -> None:
        super().__init__(key, trace)
        self.request = request
        self.path = path
        self.position = position
        self.keys: dict[int, KeyDelivered] = {}  # hop index -> this node's copy of that hop's key
        self.xors: dict[int, RelayXor] = {}  # D: relay position -> its announcement
        self.final: RelayFinal | None = None  # S: D's word, if it came before S's own hop key


class _HopContext:
    """The context the QKD part of this entity sees: the same, except that what the hop
    requests tell their user goes to :meth:`KeyRelayApps.hop_message` instead."""

    def __init__(self, ctx: Context, relay: KeyRelayApps) -> None:
        self._ctx = ctx
        self._relay = relay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def send_up(self, msg: Any) -> None:
        if not self._relay.hop_message(msg):
            self._ctx.send_up(msg)


class KeyRelayApps(BasicApps):
    """The reference applications plus keys through trusted relays (module docstring)."""

    PROVIDES = BasicApps.PROVIDES | {CAP_APP_QKD_RELAY}

    def __init__(self, ctx: Context) -> None:
        super().__init__(_HopContext(ctx, self))
        self._user = ctx
        self._trace_moves = transition_trace(ctx)
        self._next_number = 0
        self._next_hop_id = RELAY_HOP_IDS
        self._sessions: dict[tuple[str, int], _RelaySession] = {}
        self._ended: set[tuple[str, int]] = set()
        self._early: dict[tuple[str, int], list[tuple[str, Any]]] = {}  # messages that came before their RelayStart
        self._open_ids: dict[int, tuple[str, int]] = {}  # user's request_id -> session (at S)
        self._hop_heads: dict[int, tuple[tuple[str, int], int]] = {}  # own hop request id -> (session, hop)
        self._hop_tails: dict[tuple[str, int], tuple[tuple[str, int], int]] = {}  # (hop head, its id) -> (session, hop)
        self._unclaimed: dict[tuple[str, int], KeyDelivered] = {}  # hop keys received here before their RelayHop

    # ------------------------------------------------------------ entity API

    def handle_above(self, msg: Any) -> None:
        request_id = getattr(msg, "request_id", None)
        if request_id in self._open_ids or (
            isinstance(msg, QkdRelayRequest) and (msg.request_id in self._open or self._qkd.is_open(msg.request_id))
        ):
            self._user.send_up(
                AppError(
                    request_id=msg.request_id,
                    request_kind=msg.kind,
                    code=AppErrorCode.DUPLICATE_ID,
                    detail=f"request_id {msg.request_id} is already open at {self.ctx.node}; this request is refused, that one goes on",
                )
            )
            return
        if not isinstance(msg, QkdRelayRequest):
            super().handle_above(msg)
            return
        node = self.ctx.node
        key = (node, self._next_number)
        self._next_number += 1
        path = (node, *msg.relays, msg.remote_node)
        session = _RelaySession(key, msg, path, 0, self._trace_moves)
        self._sessions[key] = session
        self._open_ids[msg.request_id] = key
        for other in path[1:]:
            self.ctx.send_peer(other, RelayStart(node, key[1], msg, path))
        self._start_hop(session)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if not isinstance(msg, RELAY_MESSAGES):
            super().handle_peer(sender, msg)
            return
        key = (msg.head, msg.number)
        if key in self._ended:
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        if isinstance(msg, RelayStart):
            self._started(msg)
            return
        session = self._sessions.get(key)
        if session is None:  # the start is still on its way from S
            self._early.setdefault(key, []).append((sender, msg))
            return
        if isinstance(msg, RelayHop):
            self._hop_tails[(sender, msg.hop_request_id)] = (key, msg.hop)
            known = self._unclaimed.pop((sender, msg.hop_request_id), None)
            if known is not None:
                self._hop_key(session, msg.hop, known)
        elif isinstance(msg, RelayXor):
            self._announced(session, msg)
        elif isinstance(msg, RelayFinal):
            session.final = msg
            self._head_maybe_deliver(session)
        else:
            self._aborted(session, msg.hop, msg.code, msg.detail)

    # ------------------------------------------------------------ the hops' QKD requests

    def hop_message(self, msg: Any) -> bool:
        """Take what a hop's QKD request tells its user; False for everything else (it goes up)."""
        request_id = getattr(msg, "request_id", -1)
        if request_id < RELAY_HOP_IDS or not isinstance(msg, (KeyDelivered, AppDone, AppError, KeyAborted)):
            return False
        node = self.ctx.node
        if isinstance(msg, KeyAborted):
            # the hop's tail side of an abort: the hop's head gets the AppError and ends the relay session
            self._hop_tails.pop((msg.head, request_id), None)
            return True
        if isinstance(msg, KeyDelivered):
            if msg.head == node:
                found = self._hop_heads.pop(request_id, None)
            else:
                found = self._hop_tails.pop((msg.head, request_id), None)
                if found is None:  # the hop head's RelayHop is still on its way
                    self._unclaimed[(msg.head, request_id)] = msg
                    return True
            if found is not None and found[0] in self._sessions:
                self._hop_key(self._sessions[found[0]], found[1], msg)
            return True
        if isinstance(msg, AppError):
            found = self._hop_heads.pop(request_id, None)
            if found is not None and found[0] in self._sessions:
                session = self._sessions[found[0]]
                hop = found[1]
                for other in session.path:
                    if other != node:
                        self.ctx.send_peer(other, RelayAbort(session.key[0], session.key[1], hop, msg.code, msg.detail))
                self._aborted(session, hop, msg.code, msg.detail)
        return True  # AppDone of a hop: its key came already

    def _start_hop(self, session: _RelaySession) -> None:
        """Make this node's outgoing hop: a QKD request to the next node of the path."""
        request = session.request
        hop = session.position
        hop_id = self._next_hop_id
        self._next_hop_id += 1
        self._hop_heads[hop_id] = (session.key, hop)
        tail = session.path[hop + 1]
        self.ctx.send_peer(tail, RelayHop(session.key[0], session.key[1], hop, hop_id))
        super().handle_above(
            QkdRequest(
                request_id=hop_id,
                remote_node=tail,
                protocol=request.protocol,
                pairs=request.pairs,
                epsilon=request.epsilon / request.hops,
                ec=request.ec,
                sample_fraction=request.sample_fraction,
                qber_threshold=request.qber_threshold,
                auth_pool_bits=request.auth_pool_bits,
                min_fidelity=request.min_fidelity,
                priority=request.priority,
            )
        )

    # ------------------------------------------------------------ sessions

    def _started(self, msg: RelayStart) -> None:
        key = (msg.head, msg.number)
        if key in self._sessions:
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        position = msg.path.index(self.ctx.node)
        session = self._sessions[key] = _RelaySession(key, msg.request, msg.path, position, self._trace_moves)
        if position < len(msg.path) - 1:
            self._start_hop(session)
        for sender, early in self._early.pop(key, []):
            if not session.ended:
                self.handle_peer(sender, early)

    def _hop_key(self, session: _RelaySession, hop: int, key: KeyDelivered) -> None:
        session.keys[hop] = key
        last = len(session.path) - 1
        if session.position == 0:
            session.fire(_E.HOP_KEY)
            self._head_maybe_deliver(session)
        elif session.position == last:
            self._dest_maybe_deliver(session, _E.HOP_KEY)
        elif len(session.keys) < 2:
            session.fire(_E.HOP_KEY)
        else:
            self._announce(session)

    def _announce(self, session: _RelaySession) -> None:
        """A relay with both hop keys: announce their XOR to D (module docstring, step 2)."""
        i = session.position
        key_in, key_out = session.keys[i - 1], session.keys[i]
        x = xor_announcement(_bits(key_in.key_hex, key_in.length), _bits(key_out.key_hex, key_out.length))
        announcement = RelayAnnouncement(
            relay=self.ctx.node, key_in=key_in.key_id, key_out=key_out.key_id, length=len(x), xor_hex=_packed(x).hex()
        )
        figures = tuple((name, getattr(key_in, name)) for name in HOP_FIGURES) if i == 1 else ()
        self.ctx.send_peer(
            session.path[-1], RelayXor(session.key[0], session.key[1], i, announcement, key_in.length, key_out.length, figures)
        )
        session.fire(_E.COMPLETE)
        self._close_relay(session)

    def _announced(self, session: _RelaySession, msg: RelayXor) -> None:
        if session.position != len(session.path) - 1 or msg.position in session.xors:
            drop_unknown(self.ctx.trace, msg.kind, session.key)
            return
        session.xors[msg.position] = msg
        self._dest_maybe_deliver(session, _E.ANNOUNCEMENT)

    def _dest_maybe_deliver(self, session: _RelaySession, event: RelayEvent) -> None:
        """D: with its hop key and every relay's announcement, recover hop 0's key (step 3)."""
        m = len(session.path) - 2
        last_hop = m
        if last_hop not in session.keys or len(session.xors) < m:
            session.fire(event)
            return
        own = session.keys[last_hop]
        announcements = [session.xors[i].announcement for i in range(1, m + 1)]
        key = end_key(_bits(own.key_hex, own.length), [_bits(a.xor_hex, a.length) for a in announcements])
        hop_key_ids = tuple([a.key_in for a in announcements] + [own.key_id])
        hop_lengths = tuple([session.xors[i].length_in for i in range(1, m + 1)] + [own.length])
        figures = dict(session.xors[1].hop0_figures)
        session.fire(_E.COMPLETE)
        self.ctx.send_peer(
            session.path[0], RelayFinal(session.key[0], session.key[1], len(key), hop_key_ids, hop_lengths, tuple(announcements))
        )
        self._deliver(session, key, figures, hop_key_ids, hop_lengths, announcements)

    def _head_maybe_deliver(self, session: _RelaySession) -> None:
        final = session.final
        if final is None or 0 not in session.keys or session.ended:
            return
        own = session.keys[0]
        key = _bits(own.key_hex, own.length)[: final.length]
        figures = {name: getattr(own, name) for name in HOP_FIGURES}
        session.fire(_E.COMPLETE)
        self._deliver(session, key, figures, final.hop_key_ids, final.hop_lengths, list(final.announcements))

    def _deliver(
        self,
        session: _RelaySession,
        key: np.ndarray,
        figures: dict[str, Any],
        hop_key_ids: tuple[str, ...],
        hop_lengths: tuple[int, ...],
        announcements: list[RelayAnnouncement],
    ) -> None:
        """Both ends: the end key and how it was made, from the same figures."""
        request = session.request
        head, number = session.key
        path = session.path
        at_head = session.position == 0
        key_id = f"{head}/relay{number}"
        packed = _packed(key)
        epsilon = request.epsilon
        self._user.send_up(
            KeyDelivered(
                request_id=request.request_id,
                head=head,
                remote_node=path[-1] if at_head else head,
                protocol=request.protocol,
                key_id=key_id,
                length=len(key),
                key_hex=packed.hex(),
                key_sha256=hashlib.sha256(packed).hexdigest(),
                epsilon=epsilon,
                epsilon_sec=epsilon / 2,
                epsilon_cor=epsilon / 2,
                pairs=request.pairs * request.hops,
                auth_bits_used=0,
                time_ns=self.ctx.now_ns,
                **figures,
            )
        )
        self._user.send_up(
            RelayKeyInfo(
                request_id=request.request_id,
                head=head,
                remote_node=path[-1],
                key_id=key_id,
                length=len(key),
                path=list(path),
                trusted_relays=list(path[1:-1]),
                hop_key_ids=list(hop_key_ids),
                hop_lengths=list(hop_lengths),
                announcements=announcements,
                knowledge=(
                    f"each trusted relay ({', '.join(path[1:-1])}) holds two hop keys and can compute this key "
                    "from them and the public announcements"
                ),
            )
        )
        if at_head:
            del self._open_ids[request.request_id]
            self._user.send_up(
                AppDone(
                    request_id=request.request_id, request_kind=request.kind, remote_node=path[-1], completed=1, time_ns=self.ctx.now_ns
                )
            )
        self._close_relay(session)

    def _aborted(self, session: _RelaySession, hop: int, code: AppErrorCode, detail: str) -> None:
        if session.ended:
            return
        session.fire(_E.ABORT)
        request = session.request
        path = session.path
        why = f"hop {hop} ({path[hop]}–{path[hop + 1]}): {detail}"
        if session.position == 0:
            del self._open_ids[request.request_id]
            self._user.send_up(AppError(request_id=request.request_id, request_kind=request.kind, code=code, detail=why))
        elif session.position == len(path) - 1:
            self._user.send_up(
                RelayAborted(request_id=request.request_id, head=session.key[0], hop=hop, path=list(path), code=code, detail=why)
            )
        self._close_relay(session)

    def _close_relay(self, session: _RelaySession) -> None:
        del self._sessions[session.key]
        self._ended.add(session.key)
