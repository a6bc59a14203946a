"""Prepare-and-measure BB84 with decoy states, over a pulse link, as an application.

Theory of operation
-------------------
A ``QkdRequest`` with ``protocol="bb84-decoy"`` reaches the application entity
of the *head* (Alice, the sender); its ``remote_node`` is the *tail* (Bob, the
receiver). There is no entanglement to share, so the link and network layers
have nothing to add: the application speaks to its node's physical pulse
service (``SendPulses`` / ``PulseRecords`` / ``PulseError`` in
``qnetstack.physical.service``) through a port the assembler hands it, as a
QKD layer sits directly on its QKD link in ITU-T Y.3800 (2019). The port
delivers every block to both ends when its last detection is known; each end
reads only its own half of the block (the head: intensity class, basis and bit
sent; the tail: click, basis and bit measured). The head asks for the
clicks-only form (``ClickRecords``, specs/physical.md §8.5): the protocol
reads the clicked pulses and the per-class counts only, so a block costs its
clicks, not its pulses. ``PulseRecords`` blocks are read as well.

1. The head sends the tail ``DecoyStart`` (the session, and the pre-shared
   authentication key, see below), then asks its port for the train.
2. For every block the tail announces its clicks: the pulse indices that
   clicked and its basis for each (``DecoyClicks``). The head joins each
   announcement with its own half of the block and keeps only the pulses that
   clicked, so a train of 10^8 pulses never sits in memory: one or two blocks
   at a time, plus the clicked pulses.
3. After the last block the head announces its bases and intensity classes
   of the clicked pulses (``DecoySift``); the tail answers (``DecoyConfirm``),
   disclosing its bits of the rounds that do not make the key.
4. The head runs the post-processing (:func:`decoy_post_process`) and sends
   the tail its result (``DecoyOutcome``). Both ends deliver ``KeyDelivered``
   with the same key id and key, or, on an abort, the head ends the request
   with an ``AppError`` naming the reason and the tail's user gets
   ``KeyAborted`` with the same code (the outcome carries it, signed).

Ending early. When the head ends a request before its outcome (the pulse
service refused the train, its pool cannot sign, the tail's confirmation
fails its check) it stops the train (no further block is drawn) and sends the
tail a signed ``DecoyCancel`` with the code; the tail's user gets
``KeyAborted`` with that code, or ``AUTH_FAILED`` when the cancel's tag does
not check. When the tail finds the head's announcement forged it tells its
user ``KeyAborted`` ``AUTH_FAILED`` and the head (``DecoyRefused``), which
ends with ``AppError`` ``AUTH_FAILED``.

Lost messages. The classical messages can be lost (a scenario's
``faults.classical``); they are not sent again. So that the tail never waits
for ever, from the first block on it ends with ``KeyAborted`` ``TIMEOUT``
after a silence from the head of ``_PATIENCE_ROUND_TRIPS`` round trips of
the classical channel (the one-way delay as ``DecoyStart`` measured it; at
least ``_MIN_PATIENCE_NS``), plus twice a block's span while blocks are
still due. The post-processing's messages are modelled as round trips the
tail waits out, so the patience is set far above the few hundred of a
Cascade run. A tail that lost ``DecoyStart`` cannot name the request to its
user: it ends as well, telling its user nothing, and traces why. A head whose
tail's messages are lost waits; the run's stall watch reports what it waits
for.

Key and bound. Without ``finite_key`` (asymptotic, Gottesman, Lo, Lütkenhaus
& Preskill 2004 with the vacuum + weak decoy estimates of Ma, Qi, Zhao & Lo,
PRA 72, 012326, 2005): the key is the signal-class rounds with agreeing bases
(both bases, so the sifting factor is the chance the bases agree, 1/2 for a
symmetric choice, as in Ma et al.); the decoy and vacuum rounds are disclosed
to estimate the single-photon gain Q1 and error e1; the length is

    ℓ = ⌊ n_key (Q1_L / Q_μ) (1 − h(e1_U)) − leak_EC − verify ⌋,

the GLLP rate q{Q1[1 − h(e1)] − Q_μ f h(E_μ)} times the signal pulses, with
f h(E_μ) n_key replaced by what error correction actually disclosed. This is
not a composable finite-key bound. With ``finite_key``: the key is the Z-basis
rounds of every class, the X-basis rounds are disclosed, and the length is Lim,
Curty, Walenta, Xu & Zbinden's (PRA 89, 022307, 2014), at ε_sec = ε_cor = ε/2.
Either way the key is verified with a ⌈log2(1/ε_cor)⌉-bit Toeplitz tag and
amplified by Toeplitz hashing.

Simplifications, stated. As for BBM92 and E91 (``qkd_apps``), the
post-processing is computed in one place, at the head, over both ends'
arrays: ``DecoyClicks`` carries the tail's bits of its clicks too, which a real
receiver would keep to itself, and the head counts, per class, the pulses
whose bases agree from the block's counts (a real sender would be told the
receiver's basis of the clicked pulses only; the count of the others is a
binomial with known mean). What the protocol discloses is still what the
length accounts for. The tail's final key is its own corrected key hashed
with the same public seed, so equal keys are a result, not a copy.

Authentication: ``DecoySift``, ``DecoyConfirm`` and ``DecoyOutcome`` are
signed with Wegman–Carter (Wegman & Carter 1981) from a pool of
``auth_pool_bits`` pre-shared bits, sent in ``DecoyStart`` (it stands for a key
the two ends shared before the run). The per-block click announcements are
not signed in this model.

Time: the train takes its pulses × the source's period, plus the fibre delay;
the classical messages take the classical channel's delay; the
post-processing's round trips (the error correction's ``channel_uses``, one for
verification, one for the amplification seed) each take twice the one-way
delay ``DecoyConfirm`` took. The computation itself takes no simulated time.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np

from qnetstack.application.qkd.auth import (
    AuthTag,
    KeyPool,
    WegmanCarter,
    authenticator_or_none,
    check_or_false,
    sign_or_none,
)
from qnetstack.application.qkd.estimation import decoy_estimate
from qnetstack.application.qkd.key_length import binary_entropy, finite_key_decoy_bb84
from qnetstack.application.qkd.privacy import amplify, toeplitz_hash
from qnetstack.application.qkd.reconcile import ReconciliationFailed, efficiency, reconciler
from qnetstack.application.qkd.types import AbortReason, BasisCounts, DecoyCounts
from qnetstack.application.qkd.verify import verify
from qnetstack.application.qkd_apps import pack_key, split_epsilon
from qnetstack.application.service import AppDone, AppError, AppErrorCode, KeyAborted, KeyDelivered, QkdRequest
from qnetstack.entity import Context, EntityError, Wait
from qnetstack.entity.machine import Machine, Session, drop_unknown, transition_trace
from qnetstack.physical.service import ClickRecords, PulseError, PulseRecords, SendPulses

__all__ = [
    "PROTOCOL",
    "PulseService",
    "PulseQkdApplication",
    "DecoyBb84",
    "DecoyResult",
    "DecoyRounds",
    "decoy_post_process",
    "DecoyStart",
    "DecoyClicks",
    "DecoySift",
    "DecoyConfirm",
    "DecoyOutcome",
    "DecoyCancel",
    "DecoyRefused",
    "DECOY_MESSAGES",
    "DecoyHeadState",
    "DecoyHeadEvent",
    "DecoyTailState",
    "DecoyTailEvent",
    "DECOY_HEAD",
    "DECOY_TAIL",
    "MACHINES",
]

PROTOCOL = "bb84-decoy"
_TIMER = "bb84-decoy"  # the first item of every timer tag of this module
_MIN_EC_QBER = 0.005  # a code sized for no errors discloses nothing and finds none
_DEFAULT_EC_QBER = 0.05  # when no disclosed round says more
_AUTH_BITS_PER_MESSAGE = 61
_PATIENCE_ROUND_TRIPS = 10_000  # of the classical channel: the tail's wait for the head (module docstring)
_MIN_PATIENCE_NS = 1_000_000  # 1 ms, for nodes whose classical channel has (almost) no delay


class PulseService(Protocol):
    """The node's pulse-train service, as the assembler hands it to the application.

    ``send`` starts a train; its ``PulseRecords`` blocks (or one ``PulseError``)
    come back to the sender's application entity through ``handle_below``, and
    each block reaches the receiver's through ``handle_received(sender,
    block)``, when the block's last detection is known (specs/physical.md §8).
    """

    def neighbours(self) -> frozenset[str]:
        """The nodes this node has a pulse link to (as the sender)."""
        ...

    def send(self, request: SendPulses) -> None: ...

    def stop(self, request_id: int) -> None:
        """Draw no further block of the train ``request_id`` (its request ended early)."""
        ...


# ------------------------------------------------------------ peer messages


class DecoyStart(NamedTuple):
    """Head -> tail: a train for session ``session`` starts."""

    request_id: int
    session: int
    pool: bytes  # the pre-shared authentication key, one bit per byte
    sent_ns: int  # lets the tail measure the classical channel's one-way delay
    kind: Literal["decoy_start"] = "decoy_start"


class DecoyClicks(NamedTuple):
    """Tail -> head: the pulses of block ``block`` that clicked (indices within the block, int32)
    and the tail's basis of each; ``bits`` only for the one-place post-processing."""

    session: int
    block: int
    indices: bytes
    bases: bytes
    bits: bytes
    kind: Literal["decoy_clicks"] = "decoy_clicks"


class DecoySift(NamedTuple):
    """Head -> tail: the head's basis and intensity class of every clicked pulse (public)."""

    session: int
    bases: bytes
    classes: bytes
    tag: AuthTag | None
    kind: Literal["decoy_sift"] = "decoy_sift"


class DecoyConfirm(NamedTuple):
    """Tail -> head: the announcement is in; the tail discloses its bits of the rounds outside the key."""

    session: int
    sent_ns: int
    tag: AuthTag | None
    kind: Literal["decoy_confirm"] = "decoy_confirm"


class DecoyOutcome(NamedTuple):
    """Head -> tail: the tail's final key (``key``), or the abort ``code``."""

    session: int
    code: str | None
    key: bytes
    figures: tuple[tuple[str, Any], ...]
    tag: AuthTag | None
    kind: Literal["decoy_outcome"] = "decoy_outcome"


class DecoyCancel(NamedTuple):
    """Head -> tail: the request ended early with ``code`` (signed); forget the session."""

    session: int
    code: str
    detail: str
    tag: AuthTag | None
    kind: Literal["decoy_cancel"] = "decoy_cancel"


class DecoyRefused(NamedTuple):
    """Tail -> head: the head's announcement failed its check at the tail; the tail has ended."""

    session: int
    detail: str
    kind: Literal["decoy_refused"] = "decoy_refused"


DECOY_MESSAGES = (DecoyStart, DecoyClicks, DecoySift, DecoyConfirm, DecoyOutcome, DecoyCancel, DecoyRefused)


# ------------------------------------------------------------ post-processing


@dataclass(frozen=True)
class DecoyRounds:
    """The clicked pulses of a whole train, both ends' halves, and per class the pulses sent with bases agreeing."""

    alice_basis: np.ndarray
    alice_bit: np.ndarray
    intensity_class: np.ndarray
    bob_basis: np.ndarray
    bob_bit: np.ndarray
    sent_agreeing: tuple[int, ...]
    pulses: int


@dataclass(frozen=True)
class DecoyResult:
    """What :func:`decoy_post_process` found: both final keys, or the abort ``code`` (and no key)."""

    code: AppErrorCode | None
    detail: str
    head_key: np.ndarray | None
    tail_key: np.ndarray | None
    round_trips: int
    figures: dict[str, Any] = field(default_factory=dict)


def _class_counts(rounds: DecoyRounds, chosen: np.ndarray, classes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(detections, errors) per intensity class among the ``chosen`` rounds."""
    wrong = rounds.alice_bit != rounds.bob_bit
    detections = tuple(int(np.count_nonzero(chosen & (rounds.intensity_class == k))) for k in range(classes))
    errors = tuple(int(np.count_nonzero(chosen & wrong & (rounds.intensity_class == k))) for k in range(classes))
    return detections, errors


def decoy_post_process(rounds: DecoyRounds, request: QkdRequest, rng: np.random.Generator) -> DecoyResult:
    """Sift, reconcile, verify, bound and amplify (module docstring); a key only if every stage passed."""
    epsilon_sec, epsilon_cor = split_epsilon(request.epsilon)
    mus = tuple(c.mean_photon_number for c in request.intensities)
    probabilities = tuple(c.probability for c in request.intensities)
    classes = len(mus)
    agree = rounds.alice_basis == rounds.bob_basis
    figures: dict[str, Any] = {"pulses": rounds.pulses, "epsilon_sec": epsilon_sec, "epsilon_cor": epsilon_cor, "pairs": 0}

    def abort(code: AppErrorCode, detail: str, trips: int) -> DecoyResult:
        return DecoyResult(code, detail, None, None, trips, figures)

    if request.finite_key:
        key_rounds = agree & (rounds.alice_basis == 0)
        disclosed = agree & (rounds.alice_basis == 1)
    else:
        key_rounds = agree & (rounds.intensity_class == 0)
        disclosed = agree & (rounds.intensity_class != 0)
    wrong = rounds.alice_bit != rounds.bob_bit
    sample_bits = int(np.count_nonzero(disclosed))
    sample_errors = int(np.count_nonzero(disclosed & wrong))
    keep = np.flatnonzero(key_rounds)
    figures.update(sifted_bits=len(keep), sample_bits=sample_bits, sample_errors=sample_errors)
    if len(keep) < 2:
        return abort(AppErrorCode.KEY_TOO_SHORT, f"{len(keep)} sifted bits: nothing to correct", 1)
    # The disclosed rounds with light in them (a vacuum round's click is a dark count, wrong half the
    # time) give the error rate that sizes the error correction and is the early abort test.
    lit = disclosed & (np.asarray(mus)[rounds.intensity_class] > 0.0)
    lit_bits = int(np.count_nonzero(lit))
    sample_qber = int(np.count_nonzero(lit & wrong)) / lit_bits if lit_bits else _DEFAULT_EC_QBER
    if lit_bits and sample_qber > request.qber_threshold:
        figures.update(qber=sample_qber, qber_upper=sample_qber)
        detail = f"QBER {sample_qber:.4f} of the {lit_bits} disclosed rounds with light is above {request.qber_threshold}"
        return abort(AppErrorCode.QBER_TOO_HIGH, detail, 1)
    # The code is sized for the estimate plus two of its standard errors: a few hundred disclosed
    # rounds estimate a 3 % QBER to ±1 %, and a code sized below the key's QBER fails to decode.
    ec_qber = sample_qber + 2.0 * math.sqrt(max(sample_qber, 1.0 / max(lit_bits, 1)) * (1.0 - sample_qber) / max(lit_bits, 1))
    alice, bob = rounds.alice_bit[keep], rounds.bob_bit[keep]
    corrected = reconciler(request.ec).reconcile(alice, bob, min(max(ec_qber, _MIN_EC_QBER), 0.49), rng)
    figures["leaked_ec_bits"] = corrected.leaked_bits
    trips = 1 + corrected.channel_uses
    if isinstance(corrected, ReconciliationFailed):
        return abort(AppErrorCode.EC_FAILED, f"{request.ec}: {corrected.reason}", trips)
    # after the correction both ends know where the key bits differed: the key's QBER is exact
    key_errors = int(np.count_nonzero(alice != bob))
    qber = key_errors / len(keep)
    figures.update(qber=qber, qber_upper=qber, ec_efficiency=efficiency(corrected.leaked_bits, len(keep), qber) if key_errors else None)
    tag_bits = max(1, math.ceil(-math.log2(epsilon_cor)))
    checked = verify(alice, np.asarray(corrected.key), rng, tag_bits=tag_bits)
    figures["verify_bits"] = checked.disclosed_bits
    trips += 1
    if not checked.passed:
        return abort(AppErrorCode.VERIFY_FAILED, f"the {tag_bits}-bit verification tags differ after {request.ec}", trips)
    if request.finite_key:
        z_counts = _class_counts(rounds, key_rounds, classes)
        x_counts = _class_counts(rounds, disclosed, classes)
        bound = finite_key_decoy_bb84(
            (mus[0], mus[1], mus[2]),
            (probabilities[0], probabilities[1], probabilities[2]),
            BasisCounts(*z_counts),
            BasisCounts(*x_counts),
            corrected.leaked_bits,
            epsilon_sec,
            epsilon_cor,
        )
        if bound.abort is not None:
            code = AppErrorCode.QBER_TOO_HIGH if bound.abort is AbortReason.QBER_ABOVE_THRESHOLD else AppErrorCode.KEY_TOO_SHORT
            return abort(code, f"finite-key bound (Lim et al. 2014) on {len(keep)} bits: {bound.abort.value}", trips)
        length = bound.length
    else:
        detected, errors = _class_counts(rounds, agree, classes)
        counts = DecoyCounts(mus, rounds.sent_agreeing, detected, errors)
        try:
            estimate = decoy_estimate(counts, signal=0, decoy=1, vacuum=2)
        except ValueError as error:
            return abort(AppErrorCode.KEY_TOO_SHORT, f"no decoy estimate: {error}", trips)
        figures.update(
            gain_signal=estimate.gain_signal, single_photon_gain_lower=estimate.q1_lower, single_photon_error_upper=estimate.e1_upper
        )
        single = 0.0 if estimate.gain_signal == 0.0 else estimate.q1_lower / estimate.gain_signal
        value = len(keep) * single * (1.0 - binary_entropy(min(estimate.e1_upper, 0.5))) - corrected.leaked_bits - checked.disclosed_bits
        figures["key_length_bound"] = value
        if value < 1.0:
            return abort(
                AppErrorCode.KEY_TOO_SHORT, f"the asymptotic decoy length (GLLP; Ma et al. 2005) on {len(keep)} bits is {value:.1f}", trips
            )
        length = math.floor(value)
    if request.key_bits is not None and length < request.key_bits:
        return abort(AppErrorCode.KEY_TOO_SHORT, f"{length} secret bits, fewer than the {request.key_bits} asked for", trips)
    amplified = amplify(alice, length, rng)
    tail_key = toeplitz_hash(np.asarray(corrected.key), amplified.seed, length)
    return DecoyResult(None, "", amplified.key, tail_key, trips + 1, figures)


# ------------------------------------------------------------ state machines


class DecoyHeadState(str, enum.Enum):
    PULSING = "pulsing"  # the train is under way; blocks and click announcements come in
    SIFTING = "sifting"  # bases and classes announced; the tail's confirmation is awaited
    PROCESSING = "processing"  # post-processing: its classical round trips are under way
    DONE = "done"
    FAILED = "failed"


class DecoyHeadEvent(str, enum.Enum):
    BLOCK = "block"  # a block is joined with the tail's clicks, more are to come
    LAST_BLOCK = "last_block"  # the last block is joined: the announcement goes out
    REFUSED = "pulse_error"  # the pulse service refused the train
    CONFIRMED = "confirmed"  # the tail's confirmation arrived and checked
    KEY = "key"
    ABORT = "abort"


class DecoyTailState(str, enum.Enum):
    LISTENING = "listening"  # announcing the clicks of each block
    ANNOUNCED = "announced"  # every block's clicks announced; the head's sift is awaited
    CONFIRMED = "confirmed"  # confirmation sent; the outcome is awaited
    KEYED = "keyed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"


class DecoyTailEvent(str, enum.Enum):
    BLOCK = "block"
    LAST_BLOCK = "last_block"
    SIFT = "sift"
    KEY = "key"
    ABORT = "abort"
    CANCEL = "cancel"
    TIMEOUT = "timeout"  # nothing from the head for the tail's patience


_HS, _HE, _TS, _TE = DecoyHeadState, DecoyHeadEvent, DecoyTailState, DecoyTailEvent

DECOY_HEAD = Machine(
    name="app-bb84-decoy-head",
    initial=_HS.PULSING,
    transitions={
        (_HS.PULSING, _HE.BLOCK): _HS.PULSING,
        (_HS.PULSING, _HE.LAST_BLOCK): _HS.SIFTING,
        (_HS.PULSING, _HE.REFUSED): _HS.FAILED,
        (_HS.SIFTING, _HE.CONFIRMED): _HS.PROCESSING,
        (_HS.SIFTING, _HE.ABORT): _HS.FAILED,
        (_HS.PROCESSING, _HE.KEY): _HS.DONE,
        (_HS.PROCESSING, _HE.ABORT): _HS.FAILED,
    },
    final=frozenset({_HS.DONE, _HS.FAILED}),
    doc=(
        "One decoy-BB84 request at its head (the sender), keyed by its session number. It joins each block of "
        "the train with the tail's clicks; after the last (`last_block`) it announces its bases and classes; "
        "with the tail's confirmation it post-processes, and after the round trips delivers `KeyDelivered` and "
        "`AppDone` on entering `done`, or `AppError` on entering `failed` (`abort`: the reason's code, also "
        "AUTH_FAILED when the tail refused the announcement; `pulse_error`: REJECTED). Ending early it stops "
        "the train and sends the tail a signed cancel with the code."
    ),
)

DECOY_TAIL = Machine(
    name="app-bb84-decoy-tail",
    initial=_TS.LISTENING,
    transitions={
        (_TS.LISTENING, _TE.BLOCK): _TS.LISTENING,
        (_TS.LISTENING, _TE.LAST_BLOCK): _TS.ANNOUNCED,
        (_TS.ANNOUNCED, _TE.SIFT): _TS.CONFIRMED,
        (_TS.ANNOUNCED, _TE.ABORT): _TS.ABORTED,
        (_TS.CONFIRMED, _TE.KEY): _TS.KEYED,
        (_TS.CONFIRMED, _TE.ABORT): _TS.ABORTED,
        (_TS.LISTENING, _TE.CANCEL): _TS.CANCELLED,
        (_TS.ANNOUNCED, _TE.CANCEL): _TS.CANCELLED,
        (_TS.CONFIRMED, _TE.CANCEL): _TS.CANCELLED,
        (_TS.LISTENING, _TE.TIMEOUT): _TS.ABORTED,
        (_TS.ANNOUNCED, _TE.TIMEOUT): _TS.ABORTED,
        (_TS.CONFIRMED, _TE.TIMEOUT): _TS.ABORTED,
    },
    final=frozenset({_TS.KEYED, _TS.ABORTED, _TS.CANCELLED}),
    doc=(
        "One decoy-BB84 request at its tail (the receiver), keyed by (head, session), opened by the head's "
        "`DecoyStart` or the first block. It announces each block's clicks; after the last it awaits the "
        "head's sift, confirms it, and delivers `KeyDelivered` on entering `keyed`, or `KeyAborted` on entering "
        "`aborted` (the head's abort in its outcome, with its code; a failed authentication check, AUTH_FAILED, "
        "and the head is told; `timeout`: no word from the head for its patience, TIMEOUT) or `cancelled` (the "
        "head ended the request early: its cancel's code, or AUTH_FAILED if the cancel does not check)."
    ),
)

MACHINES = (DECOY_HEAD, DECOY_TAIL)


class _Head(Session):
    machine = DECOY_HEAD
    __slots__ = ("request", "pool", "auth", "rng", "blocks", "clicks", "joined", "sent_agreeing", "blocks_total", "result")

    def __init__(self, request: QkdRequest, session: int, pool: KeyPool, rng: np.random.Generator, trace: Any) -> None:
        super().__init__(session, trace)
        self.request = request
        self.pool = pool
        self.auth = authenticator_or_none(pool)
        self.rng = rng
        self.blocks: dict[int, PulseRecords | ClickRecords] = {}  # blocks arrived whose clicks have not
        self.clicks: dict[int, DecoyClicks] = {}  # clicks arrived whose blocks have not
        self.joined: list[tuple[np.ndarray, ...]] = []  # per block: the clicked pulses' five columns
        self.sent_agreeing = np.zeros(len(request.intensities), dtype=np.int64)
        self.blocks_total = -(-(request.pulses or 0) // request.block_size)
        self.result: DecoyResult | None = None


class _Tail(Session):
    machine = DECOY_TAIL
    __slots__ = ("head", "number", "request_id", "auth", "announced", "blocks_total", "delay_ns", "timer", "block_span_ns")

    def __init__(self, head: str, number: int, trace: Any) -> None:
        super().__init__((head, number), trace)
        self.head = head
        self.number = number
        self.request_id: int | None = None
        self.auth: WegmanCarter | None = None
        self.announced = 0
        self.delay_ns = 0  # the classical channel's one-way delay from the head, as DecoyStart measured it
        self.timer: int | None = None  # the patience timer's id
        self.block_span_ns = 0  # emission to delivery of the last block: bounds the wait for the next


def _sift_bytes(session: int, bases: bytes, classes: bytes) -> bytes:
    return b"decoy-sift" + session.to_bytes(8, "big") + hashlib.sha256(bases + classes).digest()


def _confirm_bytes(session: int) -> bytes:
    return b"decoy-confirm" + session.to_bytes(8, "big")


def _cancel_bytes(session: int, code: str) -> bytes:
    return b"decoy-cancel" + session.to_bytes(8, "big") + code.encode()


def _outcome_bytes(session: int, code: str | None, length: int) -> bytes:
    return b"decoy-outcome" + session.to_bytes(8, "big") + (code or "key").encode() + length.to_bytes(8, "big")


class DecoyBb84:
    """The decoy-BB84 sessions of one node, at either end (module docstring)."""

    def __init__(self, ctx: Context, pulses: PulseService) -> None:
        self.ctx = ctx
        self.pulses = pulses
        self._next_session = 0
        self._open: dict[int, _Head] = {}  # user's request_id -> head session not yet ended
        self._heads: dict[int, _Head] = {}  # session number -> head session
        self._tails: dict[tuple[str, int], _Tail] = {}
        self._ended_tails: set[tuple[str, int]] = set()
        self._trace = transition_trace(ctx)

    def is_open(self, request_id: int) -> bool:
        return request_id in self._open

    # ------------------------------------------------------------ head

    def handle_above(self, request: QkdRequest) -> None:
        ctx = self.ctx
        if request.remote_node not in self.pulses.neighbours():
            detail = f"remote_node: no pulse link from {ctx.node!r} to {request.remote_node!r}"
            ctx.send_up(AppError(request_id=request.request_id, request_kind=request.kind, code=AppErrorCode.REJECTED, detail=detail))
            return
        number = self._next_session
        self._next_session += 1
        pool_bits = ctx.rng.integers(0, 2, request.auth_pool_bits, dtype=np.uint8)
        rng = np.random.default_rng(int(ctx.rng.integers(0, 2**63)))
        session = _Head(request, number, KeyPool(pool_bits), rng, self._trace)
        self._open[request.request_id] = session
        self._heads[number] = session
        ctx.send_peer(request.remote_node, DecoyStart(request.request_id, number, pool_bits.tobytes(), ctx.now_ns))
        self.pulses.send(
            SendPulses(
                request_id=number,
                neighbour=request.remote_node,
                pulses=request.pulses or 0,
                intensities=request.intensities,
                sender_z_probability=request.z_probability,
                receiver_z_probability=request.z_probability,
                block_size=request.block_size,
                record_format="clicks",  # this protocol reads the clicked pulses and the counts only
            )
        )

    def handle_below(self, msg: PulseRecords | ClickRecords | PulseError) -> None:
        if isinstance(msg, PulseError):
            session = self._heads.get(msg.request_id)
            if session is None:
                drop_unknown(self.ctx.trace, msg.kind, msg.request_id)
                return
            session.fire(_HE.REFUSED)
            self._fail(session, AppErrorCode.REJECTED, f"the pulse service refused the train: {msg.code.value} {msg.detail}")
        else:
            session = self._heads.get(msg.request_id)
            if session is None or session.state is not _HS.PULSING:
                self.pulses.stop(msg.request_id)  # e.g. a session this entity does not know after a restart
                drop_unknown(self.ctx.trace, msg.kind, msg.request_id)
                return
            session.blocks[msg.block] = msg
            self._join(session, msg.block)

    def _head_clicks(self, msg: DecoyClicks) -> None:
        session = self._heads.get(msg.session)
        if session is None or session.state is not _HS.PULSING:
            drop_unknown(self.ctx.trace, msg.kind, msg.session)
            return
        session.clicks[msg.block] = msg
        self._join(session, msg.block)

    def _join(self, session: _Head, block_number: int) -> None:
        """Keep the clicked pulses of a block once both its halves are here (module docstring, step 2)."""
        if block_number not in session.blocks or block_number not in session.clicks:
            return
        block = session.blocks.pop(block_number)
        clicks = session.clicks.pop(block_number)
        indices = np.frombuffer(clicks.indices, dtype=np.int32)
        if isinstance(block, ClickRecords):
            # the head's half holds only the clicked pulses: find the announced ones among them
            at: np.ndarray = np.searchsorted(block.clicked, indices)
            sent = block.sent_counts
            session.sent_agreeing += sent[:, 0, 0] + sent[:, 1, 1]
        else:
            at = indices
            agree = block.alice_basis == block.bob_basis
            session.sent_agreeing += np.bincount(block.intensity_class[agree], minlength=len(session.sent_agreeing))
        session.joined.append(
            (
                block.alice_basis[at],
                block.alice_bit[at],
                block.intensity_class[at],
                np.frombuffer(clicks.bases, dtype=np.uint8),
                np.frombuffer(clicks.bits, dtype=np.uint8),
            )
        )
        if len(session.joined) < session.blocks_total:
            session.fire(_HE.BLOCK)
            return
        session.fire(_HE.LAST_BLOCK)
        bases = np.concatenate([j[0] for j in session.joined]).tobytes()
        classes_bytes = np.concatenate([j[2] for j in session.joined]).tobytes()
        tag = sign_or_none(session.auth, _sift_bytes(session.key, bases, classes_bytes))
        request = session.request
        self.ctx.send_peer(request.remote_node, DecoySift(session.key, bases, classes_bytes, tag))
        if tag is None:
            session.fire(_HE.ABORT)
            self._fail(
                session,
                AppErrorCode.AUTH_FAILED,
                f"the authentication pool of {request.auth_pool_bits} bits cannot sign the bases",
                tell_tail=False,
            )

    def _head_confirm(self, msg: DecoyConfirm) -> None:
        session = self._heads.get(msg.session)
        if session is None or session.state is not _HS.SIFTING:
            drop_unknown(self.ctx.trace, msg.kind, msg.session)
            return
        if not check_or_false(session.auth, _confirm_bytes(msg.session), msg.tag):
            session.fire(_HE.ABORT)
            self._fail(session, AppErrorCode.AUTH_FAILED, "the tail's confirmation failed authentication")
            return
        session.fire(_HE.CONFIRMED)
        alice_basis, alice_bit, classes, bob_basis, bob_bit = (np.concatenate([j[c] for j in session.joined]) for c in range(5))
        session.joined = []
        sent_agreeing = tuple(int(n) for n in session.sent_agreeing)
        rounds = DecoyRounds(alice_basis, alice_bit, classes, bob_basis, bob_bit, sent_agreeing, session.request.pulses or 0)
        session.result = result = decoy_post_process(rounds, session.request, session.rng)
        # the figures also when there is no key (an abort's AppError carries a detail only)
        self.ctx.trace(
            "bb84_decoy.post_processed", session=session.key, code=None if result.code is None else result.code.value, **result.figures
        )
        one_way = max(0, self.ctx.now_ns - msg.sent_ns)
        self.ctx.set_timer(2 * one_way * session.result.round_trips, (_TIMER, session.key))

    def handle_timer(self, tag: Hashable) -> None:
        if tag[1] == "tail":  # type: ignore[index]
            head: str = tag[2]  # type: ignore[index]
            number: int = tag[3]  # type: ignore[index]
            tail = self._tails.get((head, number))
            if tail is not None:
                tail.timer = None
                patience = self._patience(tail)
                self._tail_abort(tail, _TE.TIMEOUT, AppErrorCode.TIMEOUT, f"no word from {head} for {patience} ns ({tail.state.value})")
            return
        session = self._heads.get(tag[1])  # type: ignore[index]
        if session is None or session.result is None:
            return
        self._finish(session)

    def _finish(self, session: _Head) -> None:
        result = session.result
        assert result is not None
        request = session.request
        length = 0 if result.head_key is None else len(result.head_key)
        code = None if result.code is None else result.code.value
        tag = sign_or_none(session.auth, _outcome_bytes(session.key, code, length))
        if tag is None and result.code is None:
            result = DecoyResult(AppErrorCode.AUTH_FAILED, "the authentication pool cannot sign the outcome", None, None, 0, result.figures)
            code, length = AppErrorCode.AUTH_FAILED.value, 0
        tail_key = b"" if result.tail_key is None else pack_key(result.tail_key)
        figures = {**result.figures, "length": length, "epsilon": request.epsilon, "ec": request.ec, "tail": request.remote_node}
        if result.code is not None:
            figures["detail"] = result.detail
        self.ctx.send_peer(request.remote_node, DecoyOutcome(session.key, code, tail_key, tuple(figures.items()), tag))
        if result.code is not None:
            session.fire(_HE.ABORT)
            self._fail(session, result.code, result.detail, tell_tail=False)
            return
        assert result.head_key is not None
        session.fire(_HE.KEY)
        self.ctx.send_up(self._key_delivered(request.request_id, self.ctx.node, session.key, result.head_key, figures, session.pool))
        del self._open[request.request_id]
        del self._heads[session.key]
        self.ctx.send_up(
            AppDone(
                request_id=request.request_id,
                request_kind=request.kind,
                remote_node=request.remote_node,
                completed=1,
                time_ns=self.ctx.now_ns,
            )
        )

    def _fail(self, session: _Head, code: AppErrorCode, detail: str, tell_tail: bool = True) -> None:
        request = session.request
        self.pulses.stop(session.key)
        if tell_tail:
            tag = sign_or_none(session.auth, _cancel_bytes(session.key, code.value))
            self.ctx.send_peer(request.remote_node, DecoyCancel(session.key, code.value, detail, tag))
        self._open.pop(request.request_id, None)
        self._heads.pop(session.key, None)
        session.blocks.clear()
        session.joined = []
        self.ctx.send_up(AppError(request_id=request.request_id, request_kind=request.kind, code=code, detail=detail))

    def _key_delivered(
        self, request_id: int, head: str, number: int, key: np.ndarray, figures: dict[str, Any], pool: KeyPool
    ) -> KeyDelivered:
        packed = pack_key(key)
        return KeyDelivered(
            request_id=request_id,
            head=head,
            remote_node=figures["tail"] if head == self.ctx.node else head,
            protocol=PROTOCOL,
            key_id=f"{head}/bb84-decoy{number}",
            length=len(key),
            key_hex=packed.hex(),
            key_sha256=hashlib.sha256(packed).hexdigest(),
            epsilon=figures["epsilon"],
            epsilon_sec=figures["epsilon_sec"],
            epsilon_cor=figures["epsilon_cor"],
            pairs=0,
            sifted_bits=figures["sifted_bits"],
            sample_bits=figures["sample_bits"],
            sample_errors=figures["sample_errors"],
            qber=figures["qber"],
            qber_upper=figures["qber_upper"],
            leaked_ec_bits=figures["leaked_ec_bits"],
            verify_bits=figures["verify_bits"],
            ec=figures["ec"],
            auth_bits_used=pool.consumed,
            time_ns=self.ctx.now_ns,
            pulses=figures["pulses"],
            gain_signal=figures.get("gain_signal"),
            single_photon_gain_lower=figures.get("single_photon_gain_lower"),
            single_photon_error_upper=figures.get("single_photon_error_upper"),
            ec_efficiency=figures.get("ec_efficiency"),
        )

    # ------------------------------------------------------------ tail

    def _tail(self, head: str, number: int, kind: str) -> _Tail | None:
        key = (head, number)
        tail = self._tails.get(key)
        if tail is None:
            if key in self._ended_tails:
                drop_unknown(self.ctx.trace, kind, key)
                return None
            tail = self._tails[key] = _Tail(head, number, self._trace)
        return tail

    def _end_tail(self, tail: _Tail) -> None:
        key = (tail.head, tail.number)
        del self._tails[key]
        self._ended_tails.add(key)
        if tail.timer is not None:
            self.ctx.cancel_timer(tail.timer)
            tail.timer = None

    def _patience(self, tail: _Tail) -> int:
        """How long the tail waits for the head's next word (module docstring, "Lost messages")."""
        patience = max(_MIN_PATIENCE_NS, _PATIENCE_ROUND_TRIPS * 2 * tail.delay_ns)
        if tail.state is _TS.LISTENING:
            patience += 2 * tail.block_span_ns
        return patience

    def _arm(self, tail: _Tail) -> None:
        """(Re)start the tail's patience: the head's word just came."""
        if tail.timer is not None:
            self.ctx.cancel_timer(tail.timer)
        tail.timer = self.ctx.set_timer(self._patience(tail), (_TIMER, "tail", tail.head, tail.number))

    def _tail_abort(self, tail: _Tail, event: DecoyTailEvent, code: AppErrorCode, detail: str) -> None:
        """End the tail's session without a key and tell its user why (``KeyAborted``, the head's code)."""
        tail.fire(event)
        self._end_tail(tail)
        if tail.request_id is None:  # DecoyStart never came: the user cannot be told which request
            self.ctx.trace("bb84_decoy.tail_ended_unnamed", head=tail.head, session=tail.number, code=code.value, detail=detail)
            return
        self.ctx.send_up(
            KeyAborted(
                request_id=tail.request_id,
                head=tail.head,
                remote_node=tail.head,
                key_id=f"{tail.head}/bb84-decoy{tail.number}",
                code=code,
                detail=detail,
                time_ns=self.ctx.now_ns,
            )
        )

    def _tail_start(self, head: str, msg: DecoyStart) -> None:
        tail = self._tail(head, msg.session, msg.kind)
        if tail is None:
            return
        tail.request_id = msg.request_id
        tail.auth = authenticator_or_none(KeyPool(np.frombuffer(msg.pool, dtype=np.uint8).copy()))
        tail.delay_ns = max(0, self.ctx.now_ns - msg.sent_ns)

    def handle_received(self, head: str, block: PulseRecords | ClickRecords) -> None:
        """A block of ``head``'s train has reached this node's receiver: announce its clicks."""
        tail = self._tail(head, block.request_id, block.kind)
        if tail is None or tail.state is not _TS.LISTENING:
            return
        if isinstance(block, ClickRecords):
            detected = block.clicked.astype(np.int32)
            bases, bits = block.bob_basis, block.bob_bit
        else:
            detected = np.flatnonzero(block.detected).astype(np.int32)
            bases = block.bob_basis[detected]
            bits = block.bob_bit[detected]
        self.ctx.send_peer(head, DecoyClicks(tail.number, block.block, detected.tobytes(), bases.tobytes(), bits.tobytes()))
        tail.fire(_TE.LAST_BLOCK if block.last else _TE.BLOCK)
        tail.block_span_ns = max(tail.block_span_ns, block.delivered_ns - block.emitted_ns)
        self._arm(tail)

    def _tail_sift(self, head: str, msg: DecoySift) -> None:
        tail = self._tails.get((head, msg.session))
        if tail is None or tail.state is not _TS.ANNOUNCED:
            drop_unknown(self.ctx.trace, msg.kind, (head, msg.session))
            return
        if not check_or_false(tail.auth, _sift_bytes(msg.session, msg.bases, msg.classes), msg.tag):
            detail = f"{head}'s announcement of bases and classes failed authentication"
            self._tail_abort(tail, _TE.ABORT, AppErrorCode.AUTH_FAILED, detail)
            self.ctx.send_peer(head, DecoyRefused(msg.session, detail))
            return
        tail.fire(_TE.SIFT)
        tag = sign_or_none(tail.auth, _confirm_bytes(msg.session))
        self.ctx.send_peer(head, DecoyConfirm(msg.session, self.ctx.now_ns, tag))
        self._arm(tail)

    def _tail_outcome(self, head: str, msg: DecoyOutcome) -> None:
        tail = self._tails.get((head, msg.session))
        if tail is None or tail.state is not _TS.CONFIRMED:
            drop_unknown(self.ctx.trace, msg.kind, (head, msg.session))
            return
        figures = dict(msg.figures)
        length = int(figures["length"]) if msg.code is None else 0
        authentic = check_or_false(tail.auth, _outcome_bytes(msg.session, msg.code, length), msg.tag)
        if not authentic or tail.request_id is None or tail.auth is None:
            self._tail_abort(tail, _TE.ABORT, AppErrorCode.AUTH_FAILED, f"{head}'s outcome failed authentication")
            return
        if msg.code is not None:
            self._tail_abort(tail, _TE.ABORT, AppErrorCode(msg.code), str(figures.get("detail", "")))
            return
        key = np.unpackbits(np.frombuffer(msg.key, dtype=np.uint8), bitorder="big")[:length]
        tail.fire(_TE.KEY)
        self.ctx.send_up(self._key_delivered(tail.request_id, head, msg.session, key, figures, tail.auth.pool))
        self._end_tail(tail)

    # ------------------------------------------------------------ peers

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, DecoyStart):
            self._tail_start(sender, msg)
        elif isinstance(msg, DecoyClicks):
            self._head_clicks(msg)
        elif isinstance(msg, DecoySift):
            self._tail_sift(sender, msg)
        elif isinstance(msg, DecoyConfirm):
            self._head_confirm(msg)
        elif isinstance(msg, DecoyOutcome):
            self._tail_outcome(sender, msg)
        elif isinstance(msg, DecoyCancel):
            tail = self._tails.get((sender, msg.session))
            if tail is None:
                drop_unknown(self.ctx.trace, msg.kind, (sender, msg.session))
                return
            if check_or_false(tail.auth, _cancel_bytes(msg.session, msg.code), msg.tag):
                self._tail_abort(tail, _TE.CANCEL, AppErrorCode(msg.code), msg.detail)
            else:
                detail = f"{sender}'s cancel ({msg.code}: {msg.detail}) failed authentication"
                self._tail_abort(tail, _TE.CANCEL, AppErrorCode.AUTH_FAILED, detail)
        elif isinstance(msg, DecoyRefused):
            session = self._heads.get(msg.session)
            if session is None or session.state is not _HS.SIFTING:
                drop_unknown(self.ctx.trace, msg.kind, msg.session)
                return
            session.fire(_HE.ABORT)
            self._fail(session, AppErrorCode.AUTH_FAILED, f"{sender} refused the announcement: {msg.detail}", tell_tail=False)
        else:
            raise EntityError(f"application got {type(msg).__name__} from peer {sender!r}")

    def describe_waits(self) -> list[Wait]:
        me = self.ctx.node
        waits = []
        for head in self._heads.values():
            request = head.request
            what = {
                _HS.PULSING: f"the pulse train to {request.remote_node} and its clicks ({len(head.joined)}/{head.blocks_total} blocks)",
                _HS.SIFTING: f"{request.remote_node}'s confirmation of the announced bases",
                _HS.PROCESSING: "the post-processing's classical round trips",
            }.get(head.state, head.state.value)
            waits.append(
                Wait(
                    session=f"bb84-decoy request {me}#{request.request_id}",
                    waiting_for=what,
                    request=(me, request.request_id),
                    peer=request.remote_node,
                )
            )
        for (head_node, number), tail in self._tails.items():
            waits.append(
                Wait(
                    session=f"bb84-decoy train {head_node}/{number} at its receiver {me}",
                    waiting_for=f"{head_node}'s pulses and messages ({tail.state.value})",
                    request=None if tail.request_id is None else (head_node, tail.request_id),
                    peer=head_node,
                )
            )
        return waits


class PulseQkdApplication:
    """An application entity for a node with pulse links: decoy-BB84 requests and their
    messages go to :class:`DecoyBb84`, everything else to ``inner`` (the node's other
    application entity, built on the same context)."""

    PROVIDES = frozenset({"application:qkd"})

    def __init__(self, ctx: Context, inner: Any, pulses: PulseService) -> None:
        self.ctx = ctx
        self.inner = inner
        self.decoy = DecoyBb84(ctx, pulses)

    def start(self) -> None:
        self.inner.start()

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, QkdRequest) and msg.protocol == PROTOCOL:
            if self.decoy.is_open(msg.request_id):
                detail = f"request_id {msg.request_id} is open here"
                self.ctx.send_up(AppError(request_id=msg.request_id, request_kind=msg.kind, code=AppErrorCode.DUPLICATE_ID, detail=detail))
                return
            self.decoy.handle_above(msg)
        else:
            self.inner.handle_above(msg)

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, (PulseRecords, ClickRecords, PulseError)):
            self.decoy.handle_below(msg)
        else:
            self.inner.handle_below(msg)

    def handle_received(self, sender: str, block: PulseRecords | ClickRecords) -> None:
        self.decoy.handle_received(sender, block)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, DECOY_MESSAGES):
            self.decoy.handle_peer(sender, msg)
        else:
            self.inner.handle_peer(sender, msg)

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and tag and tag[0] == _TIMER:
            self.decoy.handle_timer(tag)
        else:
            self.inner.handle_timer(tag)

    def handle_device(self, tag: Hashable, result: Any) -> None:
        self.inner.handle_device(tag, result)

    def describe_waits(self) -> list[Wait]:
        describe = getattr(self.inner, "describe_waits", None)
        return (describe() if describe is not None else []) + self.decoy.describe_waits()

    def __getattr__(self, name: str) -> Any:
        # what the node's other application offers besides the entity methods (e.g. its PROVIDES)
        inner = self.__dict__.get("inner")
        if inner is None:  # not built yet (a copy, an unpickling)
            raise AttributeError(name)
        return getattr(inner, name)
