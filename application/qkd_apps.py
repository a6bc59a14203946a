"""Entanglement-based QKD over the network service: BBM92 and E91, end to end.

Theory of operation
-------------------
A ``QkdRequest`` reaches the application entity of one node, the *head*
(Alice); its ``remote_node`` is the *tail* (Bob). :class:`QkdApps` serves it
inside ``BasicApps`` (which hands it every message about a QKD request):

1. The head sends the tail ``QkdStart`` (protocol, number of pairs, and the
   pre-shared authentication key, see below), then asks the network for
   ``pairs`` type-K pairs.
2. Each end measures its half of every pair as soon as it is delivered, in a
   basis drawn from the entity's seeded random stream, through the device
   (``ctx.request_device`` when the hardware gives the measurement a
   duration, so the qubit waits and decoheres for it). The head corrects its
   outcome for the pair's Pauli frame (``PairDelivered.bell_state`` =
   ``(I ⊗ X^x Z^z)|Φ+>``, head's qubit first): a Z outcome is flipped when
   x = 1 and an X outcome when z = 1, since ``(I ⊗ X^x Z^z)|Φ+>`` is
   ``(Z^z X^x ⊗ I)|Φ+>`` up to a phase. After it, every pair counts as Φ+.
3. When the head holds the outcomes of ``pairs`` pairs it announces their
   indices and its bases (``QkdSift``); the tail answers with its bases
   (``QkdRecords``) once it has measured every pair named.
4. The head runs the post-processing (:func:`post_process`) and tells the
   tail the result (``QkdOutcome``). The tail delivers ``KeyDelivered`` (or,
   on an abort, ``KeyAborted`` with the abort's code) and confirms
   (``QkdConfirm``); on the confirmation the head delivers the same key and
   ``AppDone``, or closes the request with an ``AppError`` of that code.

Settings. BBM92 (Bennett, Brassard & Mermin, PRL 68, 557, 1992): each end
measures Z or X with probability 1/2; rounds with equal bases are the sifted
key. E91 (Ekert, PRL 67, 661, 1991) in its CHSH form: the head measures Z
(setting 0) or X (1) with probability 1/2; the tail measures ZX_PLUS (0) or
ZX_MINUS (1) with probability 1/4 each and Z (2) with probability 1/2. Head Z
with tail Z is a key round (1/4 of the pairs, correlated on Φ+); head Z or X
with tail ZX_PLUS or ZX_MINUS is a CHSH round (1/2 of the pairs), with

    S = E(Z, ZX+) + E(Z, ZX−) + E(X, ZX+) − E(X, ZX−)

(Clauser, Horne, Shimony & Holt, PRL 23, 880, 1969), 2√2 on Φ+ and at most 2
for local hidden variables; head X with tail Z is discarded. E91 aborts when
S is not above the request's ``chsh_threshold`` (2 by default). The key
length is Tomamichel, Lim, Gisin & Renner's finite-key bound (Nat. Commun. 3,
634, 2012) on the key rounds for both protocols: for E91 it is the same
device-dependent bound as for BBM92, applied to the Z key rounds with their
sampled QBER; the CHSH test is the check of Ekert's protocol on top of it,
not a device-independent bound.

The classical post-processing is computed in one place, at the head, over both
ends' arrays: the tail's ``QkdRecords`` carries its outcomes too, which a real
tail would keep to itself. Only what the protocol discloses is counted: the
sampled bits (removed from the key), what error correction leaks, the
verification tag; the key-length bound subtracts the last two. The stages are
those of :mod:`qnetstack.application.qkd`: sifting, QBER estimation with
Serfling's bound at ε_sec, error correction by the named reconciler, a
Toeplitz verification tag of ⌈log2(1/ε_cor)⌉ bits, the finite-key length and
Toeplitz privacy amplification; the tail's final key is its own corrected key
hashed with the same public seed, so equal keys at both ends are a result,
not a copy.

Authentication. Every classical message of the protocol (``QkdSift``,
``QkdRecords``, ``QkdOutcome``) is signed by its sender and checked by its
receiver with Wegman–Carter (Wegman & Carter 1981, ``qkd.auth``), each end
consuming its copy of a pre-shared pool of ``auth_pool_bits`` bits: 61 bits
of hash key, then 61 bits of pad per message, so a run uses 244. The pool is
drawn at the head and sent in ``QkdStart``, standing for a key the two ends
shared before the run. A pool too small for a message ends the request with
``AUTH_FAILED``, and so does a tag that does not check.

Time. The head sends its outcome after the post-processing's round trips
(one for the estimate, the error correction's ``channel_uses``, one for the
verification and one for the privacy-amplification seed; fewer when it
aborts earlier), each taking twice the one-way classical delay, measured as
the time ``QkdRecords`` took to arrive. The tail delivers when ``QkdOutcome``
reaches it, one delay later, and the head on its confirmation, one more. The
computation itself takes no simulated time.

Lost messages. The head sends again what the tail has not answered: the start
(answered by ``QkdStartAck``), the announcement with the ``QkdPairLost`` sent
after it (answered by the records) and its last message, the outcome or a
``QkdCancel`` (answered by ``QkdConfirm``, or ``QkdRefused`` when the tail ended
the request itself on a failed check). The waits follow :data:`RETRY_FIRST_NS`
and its companions; after :data:`RETRY_TRIES` unanswered sendings the head
gives up (``TIMEOUT``; for a key outcome the tail may hold the key, which no
finite number of messages can rule out). The tail answers each copy the same
way as the first (its records again; after it ended, its last answer), and
copies are identical, so each end checks each authenticated message once and
the pads stay in step. Every abort reaches the tail's user with the head's code
(``KeyAborted``), except when the head is lost (``REMOTE_LOST`` at the tail).

A man in the middle (the scenario's ``faults.tamper``) alters the messages that
offer ``tampered``: the announcement, the records and the outcome, the ones
the authentication protects; an altered one fails its check at the receiver
and the run ends ``AUTH_FAILED`` at both ends.

Net request ids. The tail must know that a delivered pair belongs to a QKD
request before the head's messages about it arrive, so QKD requests take
their network ids from :data:`QKD_NET_IDS` up; the other applications' ids
stay below it.

Limits: a pair the network declares lost at the head after the head announced
its bases is dropped from the announcement (``QkdPairLost``); pairs delivered
after an end stopped measuring are freed unused.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from qnetstack.application.qkd.auth import (
    AuthTag,
    KeyPool,
    WegmanCarter,
    authenticator_or_none,
    check_or_false,
    sign_or_none,
)
from qnetstack.application.qkd.estimation import estimate_qber
from qnetstack.application.qkd.key_length import finite_key_entanglement
from qnetstack.application.qkd.privacy import amplify, toeplitz_hash
from qnetstack.application.qkd.reconcile import ReconciliationFailed, reconciler
from qnetstack.application.qkd.sifting import E91Settings, sift_bb84, sift_e91
from qnetstack.application.qkd.types import AbortReason, RawRecords, SiftedKey
from qnetstack.application.qkd.verify import verify
from qnetstack.application.service import AppDone, AppError, AppErrorCode, KeyAborted, KeyDelivered, QkdRequest
from qnetstack.entity import Context, EntityError, Wait
from qnetstack.entity.machine import Machine, Session, drop_unknown, transition_trace
from qnetstack.network.service import NetAccepted, NetError, NetErrorCode, NetRejected, NetRequest, PairDelivered, PairLost
from qnetstack.physical.service import Basis, FreeQubit, Measure, MeasureResult

__all__ = [
    "QKD_NET_IDS",
    "QkdApps",
    "QkdStart",
    "QkdSift",
    "QkdRecords",
    "QkdOutcome",
    "QkdCancel",
    "QkdPairLost",
    "QkdStartAck",
    "QkdConfirm",
    "QkdRefused",
    "QKD_MESSAGES",
    "RETRY_FIRST_NS",
    "RETRY_CAP",
    "RETRY_TRIES",
    "E91_CHSH",
    "HEAD_BASES",
    "TAIL_BASES",
    "QkdResult",
    "post_process",
    "split_epsilon",
    "pack_key",
    "QkdHeadState",
    "QkdHeadEvent",
    "QkdTailState",
    "QkdTailEvent",
    "QKD_HEAD",
    "QKD_TAIL",
    "QKD_MACHINES",
]

QKD_NET_IDS = 1 << 32  # network request ids of QKD requests start here (module docstring)

# measurement settings by index, per protocol and end (module docstring)
HEAD_BASES: dict[str, tuple[Basis, ...]] = {"bbm92": (Basis.Z, Basis.X), "e91": (Basis.Z, Basis.X)}
TAIL_BASES: dict[str, tuple[Basis, ...]] = {"bbm92": (Basis.Z, Basis.X), "e91": (Basis.ZX_PLUS, Basis.ZX_MINUS, Basis.Z)}
_TAIL_E91_PROBABILITIES = (0.25, 0.25, 0.5)

# E91 over frame-corrected Φ+: key rounds head Z (0) with tail Z (2), correlated;
# S = E(Z, ZX+) + E(Z, ZX−) + E(X, ZX+) − E(X, ZX−).
E91_CHSH = E91Settings(
    key_pairs=((0, 2),),
    chsh_terms=((0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, -1)),
    anticorrelated=False,
)

# The smallest QBER error correction is told: a code sized for no errors discloses nothing and finds none.
_MIN_EC_QBER = 0.005
_AUTH_BITS_PER_MESSAGE = 61

# Retransmission (module docstring, "Lost messages"). The first wait is RETRY_FIRST_NS until the head
# has measured the one-way delay D (from the tail's first answer to a message sent once, Karn's rule),
# then 2D + 1 us; each wait doubles (binary exponential back-off, RFC 6298 §5.5) up to RETRY_CAP times
# the first, so RETRY_TRIES tries span at most (1 + 2 + 4 + 8 × 17) = 143 first waits: 7 ms before D
# is known, well inside the runner's stall span. A try goes unanswered when its message or the answer
# is lost: with loss probability p each way, 1 - (1 - p)^2, 0.51 at p = 0.3, and 20 tries in a row
# with 0.51^20 ≈ 1.4e-6. A wait shorter than the round trip only sends copies, which are harmless.
RETRY_FIRST_NS = 50_000
RETRY_CAP = 8
RETRY_TRIES = 20
_RETRY_MARGIN_NS = 1_000


# ------------------------------------------------------------ peer messages
# Private to this implementation and built only from validated values: named tuples,
# as the other applications' peer messages. Arrays travel as bytes (one uint8 per entry),
# so messages compare and copy like plain values.


class QkdStart(NamedTuple):
    """Head -> tail: a QKD request starts; its pairs carry network id ``net_id``."""

    request_id: int
    net_id: int
    protocol: str
    pairs: int
    pool: bytes  # the pre-shared authentication key, one bit per byte
    kind: Literal["qkd_start"] = "qkd_start"


class QkdSift(NamedTuple):
    """Head -> tail: the pairs the head measured (indices) and its setting for each."""

    net_id: int
    indices: tuple[int, ...]
    bases: bytes
    tag: AuthTag | None
    kind: Literal["qkd_sift"] = "qkd_sift"

    def tampered(self, rng: np.random.Generator) -> QkdSift:
        """A man in the middle's copy (``faults.tamper``): one announced basis changed."""
        return self._replace(bases=_flip_one(self.bases, rng))


class QkdRecords(NamedTuple):
    """Tail -> head: the tail's settings for the announced pairs (authenticated), and its outcomes,
    which only the simulation's one-place post-processing reads (module docstring)."""

    net_id: int
    bases: bytes
    bits: bytes
    sent_ns: int
    tag: AuthTag | None
    kind: Literal["qkd_records"] = "qkd_records"

    def tampered(self, rng: np.random.Generator) -> QkdRecords:
        """A man in the middle's copy: one of the tail's announced bases changed."""
        return self._replace(bases=_flip_one(self.bases, rng))


class QkdOutcome(NamedTuple):
    """Head -> tail: the result: the tail's final key (``key``), or an abort (``code``)."""

    net_id: int
    code: str | None
    key: bytes
    figures: tuple[tuple[str, Any], ...]
    tag: AuthTag | None
    kind: Literal["qkd_outcome"] = "qkd_outcome"

    def tampered(self, rng: np.random.Generator) -> QkdOutcome:
        """A man in the middle's copy: an abort turned into a key outcome, or a key's length changed."""
        figures = dict(self.figures)
        if self.code is not None:
            return self._replace(code=None, figures=tuple({**figures, "length": 1}.items()))
        figures["length"] = max(1, int(figures["length"]) - 1 - int(rng.integers(8)))
        return self._replace(figures=tuple(figures.items()))


class QkdCancel(NamedTuple):
    """Head -> tail: the request ended before the post-processing, for the reason ``code``; free what
    you hold for it, tell your user, and confirm (sent again until confirmed)."""

    net_id: int
    request_id: int
    code: str
    detail: str
    kind: Literal["qkd_cancel"] = "qkd_cancel"


class QkdPairLost(NamedTuple):
    """Head -> tail: pair ``pair_index`` was declared lost at the head after the announcement; leave it out."""

    net_id: int
    pair_index: int
    kind: Literal["qkd_pair_lost"] = "qkd_pair_lost"


class QkdStartAck(NamedTuple):
    """Tail -> head: ``QkdStart`` arrived (the head sends it again until this comes)."""

    net_id: int
    kind: Literal["qkd_start_ack"] = "qkd_start_ack"


class QkdConfirm(NamedTuple):
    """Tail -> head: the tail has ended as the head's last message said (``QkdOutcome`` or
    ``QkdCancel``) and told its user; the head closes the request on it."""

    net_id: int
    kind: Literal["qkd_confirm"] = "qkd_confirm"


class QkdRefused(NamedTuple):
    """Tail -> head: the tail ended the request itself, for the reason ``code`` (a message of the
    head's failed authentication); the head closes the request with the same code."""

    net_id: int
    code: str
    detail: str
    kind: Literal["qkd_refused"] = "qkd_refused"


def _flip_one(values: bytes, rng: np.random.Generator) -> bytes:
    """``values`` (settings 0/1/2, one per byte) with one entry changed."""
    if not values:
        return values
    changed = bytearray(values)
    i = int(rng.integers(len(changed)))
    changed[i] = 1 - changed[i] if changed[i] < 2 else 0
    return bytes(changed)


QKD_MESSAGES = (QkdStart, QkdSift, QkdRecords, QkdOutcome, QkdCancel, QkdPairLost, QkdStartAck, QkdConfirm, QkdRefused)


# ------------------------------------------------------------ post-processing


def split_epsilon(epsilon: float) -> tuple[float, float]:
    """(ε_sec, ε_cor): the request's ε split evenly, so ε_sec + ε_cor = ε."""
    return epsilon / 2.0, epsilon / 2.0


def pack_key(key: np.ndarray) -> bytes:
    """The key bits packed eight to a byte, first bit most significant (``KeyDelivered.key_hex``)."""
    return np.packbits(key.astype(np.uint8), bitorder="big").tobytes()


@dataclass(frozen=True)
class QkdResult:
    """What :func:`post_process` found: both final keys, or the abort ``code`` (and no key).

    ``round_trips`` counts the classical round trips the steps taken need.
    ``figures`` are the numbers ``KeyDelivered`` reports.
    """

    code: AppErrorCode | None
    detail: str
    head_key: np.ndarray | None
    tail_key: np.ndarray | None
    round_trips: int
    figures: dict[str, Any] = field(default_factory=dict)


def post_process(
    protocol: str,
    head_bases: np.ndarray,
    head_bits: np.ndarray,
    tail_bases: np.ndarray,
    tail_bits: np.ndarray,
    request: QkdRequest,
    rng: np.random.Generator,
) -> QkdResult:
    """Sift, estimate, reconcile, verify, bound and amplify, over both ends' arrays (module docstring).

    The head's bits are already frame-corrected. A key comes out only if every
    stage passed; then the two keys are equal except with probability ε_cor.
    """
    epsilon_sec, epsilon_cor = split_epsilon(request.epsilon)
    n = len(head_bits)
    records = RawRecords(
        alice_basis=head_bases, alice_bit=head_bits, bob_basis=tail_bases, bob_bit=tail_bits, detected=np.ones(n, dtype=np.bool_)
    )
    figures: dict[str, Any] = {"pairs": n, "epsilon_sec": epsilon_sec, "epsilon_cor": epsilon_cor}

    def abort(code: AppErrorCode, detail: str, round_trips: int) -> QkdResult:
        return QkdResult(code, detail, None, None, round_trips, figures)

    key: SiftedKey
    if protocol == "e91":
        try:
            sifted = sift_e91(records, E91_CHSH)
        except ValueError as error:  # a CHSH setting pair with no round at all
            return abort(AppErrorCode.CHSH_TOO_LOW, f"no CHSH estimate: {error}", 1)
        key = sifted.key
        figures.update(chsh_s=sifted.chsh.s, chsh_standard_error=sifted.chsh.standard_error)
        if sifted.chsh.s <= request.chsh_threshold:
            return abort(
                AppErrorCode.CHSH_TOO_LOW,
                f"S = {sifted.chsh.s:.3f} ± {sifted.chsh.standard_error:.3f} is not above {request.chsh_threshold}",
                1,
            )
    else:
        key = sift_bb84(records)
    figures["sifted_bits"] = len(key)
    sample = round(request.sample_fraction * len(key))
    if not 0 < sample < len(key):
        return abort(
            AppErrorCode.TOO_FEW_PAIRS,
            f"{n} pairs gave {len(key)} sifted bits: no sample and key at fraction {request.sample_fraction}",
            1,
        )
    estimate = estimate_qber(key, sample, rng, epsilon_sec, request.qber_threshold)
    figures.update(sample_bits=sample, sample_errors=estimate.sample_errors, qber=estimate.qber, qber_upper=estimate.qber_upper)
    if estimate.abort is not None:
        # The bound is the sample's QBER plus a statistical margin: when the QBER itself is within
        # the threshold, the margin (too small a sample, too few pairs) is what crossed it.
        if estimate.qber <= request.qber_threshold:
            return abort(
                AppErrorCode.TOO_FEW_PAIRS,
                f"{n} pairs gave a sample of {sample} bits: QBER {estimate.qber:.4f} is within {request.qber_threshold} "
                f"but its upper bound at ε_sec ({estimate.qber_upper:.4f}) is not",
                2,
            )
        return abort(
            AppErrorCode.QBER_TOO_HIGH,
            f"QBER {estimate.qber:.4f} (upper bound {estimate.qber_upper:.4f} at ε_sec) is above {request.qber_threshold}",
            2,
        )
    alice, bob = np.asarray(estimate.key.alice), np.asarray(estimate.key.bob)
    corrected = reconciler(request.ec).reconcile(alice, bob, min(max(estimate.qber, _MIN_EC_QBER), 0.49), rng)
    figures["leaked_ec_bits"] = corrected.leaked_bits
    trips = 2 + corrected.channel_uses
    if isinstance(corrected, ReconciliationFailed):
        return abort(AppErrorCode.EC_FAILED, f"{request.ec}: {corrected.reason}", trips)
    tag_bits = max(1, math.ceil(-math.log2(epsilon_cor)))
    checked = verify(alice, np.asarray(corrected.key), rng, tag_bits=tag_bits)
    figures["verify_bits"] = checked.disclosed_bits
    trips += 1
    if not checked.passed:
        return abort(AppErrorCode.VERIFY_FAILED, f"the {tag_bits}-bit verification tags differ after {request.ec}", trips)
    leak = corrected.leaked_bits + checked.disclosed_bits
    bound = finite_key_entanglement(len(alice), sample, estimate.sample_errors, leak, epsilon_sec, epsilon_cor)
    figures["key_length_bound"] = bound.terms.get("bound", 0.0)
    if bound.abort is not None:
        # Q + μ ≥ 1/2 with Q within the threshold: the statistical term μ, i.e. too few bits, ends it.
        too_few = bound.abort is AbortReason.QBER_ABOVE_THRESHOLD and estimate.qber <= request.qber_threshold
        code = AppErrorCode.TOO_FEW_PAIRS if too_few else AppErrorCode.KEY_TOO_SHORT
        if bound.abort is AbortReason.QBER_ABOVE_THRESHOLD and not too_few:
            code = AppErrorCode.QBER_TOO_HIGH
        return abort(
            code,
            f"finite-key bound (Tomamichel et al. 2012) on {len(alice)} key bits from {n} pairs: {bound.abort.value}",
            trips,
        )
    amplified = amplify(alice, bound.length, rng)
    tail_key = toeplitz_hash(np.asarray(corrected.key), amplified.seed, bound.length)
    return QkdResult(None, "", amplified.key, tail_key, trips + 1, figures)


# ------------------------------------------------------------ state machines


class QkdHeadState(str, enum.Enum):
    ASKED = "asked"  # NetRequest sent, no answer yet
    MEASURING = "measuring"  # measuring pairs as they come
    SIFTING = "sifting"  # bases announced; the tail's records are awaited
    PROCESSING = "processing"  # post-processing: its classical round trips are under way
    CLOSING = "closing"  # the last message (outcome or cancel) is out; the tail's confirmation is awaited
    DONE = "done"
    FAILED = "failed"


class QkdHeadEvent(str, enum.Enum):
    ACCEPTED = "net_accepted"
    REJECTED = "net_rejected"
    ABORTED = "net_error"
    MEASURED = "measured"  # a pair's outcome is in, more are to come
    LAST_MEASURED = "last_measured"  # the request's pairs-th outcome is in: bases announced
    LOST = "pair_lost"  # the network declared a pair delivered here lost
    RECORDS = "records"  # the tail's records arrived and checked
    OUTCOME = "outcome"  # the post-processing's round trips are over: its outcome is sent
    ABORT = "abort"  # the authentication aborted before the post-processing: the tail is told to cancel
    TIMEOUT = "timeout"  # no answer from the tail after every retransmission
    KEY_CONFIRMED = "key_confirmed"  # the tail confirmed the key
    CONFIRMED = "confirmed"  # the tail confirmed the abort or cancel
    REFUSED = "refused"  # the tail ended the request itself (a message failed its authentication)
    REMOTE_LOST = "end_lost"  # the network says the tail is lost


class QkdTailState(str, enum.Enum):
    NEW = "new"
    HOLDING = "holding"  # pairs arrived before the head's QkdStart: held unmeasured
    MEASURING = "measuring"
    AWAITING = "awaiting"  # the head's announcement came; some pairs it names are not measured yet
    SENT = "sent"  # records sent; the outcome is awaited
    KEYED = "keyed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"


class QkdTailEvent(str, enum.Enum):
    START = "qkd_start"
    PAIR = "pair"
    SIFT = "qkd_sift"
    RECORDS = "records_sent"
    KEY = "key"
    ABORT = "abort"  # the head's outcome is an abort, or a head's message failed authentication
    CANCEL = "cancel"  # the head ended the request early (QkdCancel), or the head is lost


_HS, _HE = QkdHeadState, QkdHeadEvent
_TS, _TE = QkdTailState, QkdTailEvent

QKD_HEAD = Machine(
    name="app-qkd-head",
    initial=_HS.ASKED,
    transitions={
        (_HS.ASKED, _HE.ACCEPTED): _HS.MEASURING,
        (_HS.ASKED, _HE.REJECTED): _HS.CLOSING,
        (_HS.ASKED, _HE.TIMEOUT): _HS.CLOSING,
        (_HS.MEASURING, _HE.MEASURED): _HS.MEASURING,
        (_HS.MEASURING, _HE.LOST): _HS.MEASURING,
        (_HS.MEASURING, _HE.LAST_MEASURED): _HS.SIFTING,
        (_HS.MEASURING, _HE.ABORTED): _HS.CLOSING,
        (_HS.MEASURING, _HE.ABORT): _HS.CLOSING,
        (_HS.MEASURING, _HE.TIMEOUT): _HS.CLOSING,
        (_HS.MEASURING, _HE.REMOTE_LOST): _HS.FAILED,
        (_HS.SIFTING, _HE.LOST): _HS.SIFTING,
        (_HS.SIFTING, _HE.RECORDS): _HS.PROCESSING,
        (_HS.SIFTING, _HE.ABORT): _HS.CLOSING,
        (_HS.SIFTING, _HE.TIMEOUT): _HS.CLOSING,
        (_HS.SIFTING, _HE.REFUSED): _HS.FAILED,
        (_HS.SIFTING, _HE.REMOTE_LOST): _HS.FAILED,
        (_HS.PROCESSING, _HE.OUTCOME): _HS.CLOSING,
        (_HS.CLOSING, _HE.KEY_CONFIRMED): _HS.DONE,
        (_HS.CLOSING, _HE.CONFIRMED): _HS.FAILED,
        (_HS.CLOSING, _HE.REFUSED): _HS.FAILED,
        (_HS.CLOSING, _HE.TIMEOUT): _HS.FAILED,
        (_HS.CLOSING, _HE.REMOTE_LOST): _HS.FAILED,
    },
    final=frozenset({_HS.DONE, _HS.FAILED}),
    doc=(
        "One QKD request at its head, keyed by the user's `request_id`. It measures each delivered half in a "
        "random basis (frame-corrected); with the request's number of outcomes in (`last_measured`) it "
        "announces its bases, sent again until the tail's records (`records`) come; it post-processes, and "
        "after the post-processing's round trips sends the outcome (`outcome`: the tail's key or the abort's "
        "code), again until the tail confirms. The request closes on the confirmation: `KeyDelivered` and "
        "`AppDone` on entering `done` (`key_confirmed`), `AppError` with the outcome's code on entering "
        "`failed` (`confirmed`). `net_rejected`, `net_error`, a failed check of the tail's records (`abort`) and "
        "no answer after every retransmission (`timeout`) send the tail a cancel with the code, again until "
        "confirmed (`AppError` REJECTED, ABORTED, AUTH_FAILED, TIMEOUT). `refused` (the tail ended it: a "
        "message failed its check there) and `end_lost` end it at once (`AppError` with the tail's code, "
        "REMOTE_LOST); a `timeout` while `closing` ends it with the outcome's code, or TIMEOUT for a key."
    ),
)

QKD_TAIL = Machine(
    name="app-qkd-tail",
    initial=_TS.NEW,
    transitions={
        (_TS.NEW, _TE.PAIR): _TS.HOLDING,
        (_TS.HOLDING, _TE.PAIR): _TS.HOLDING,
        (_TS.NEW, _TE.START): _TS.MEASURING,
        (_TS.HOLDING, _TE.START): _TS.MEASURING,
        (_TS.MEASURING, _TE.PAIR): _TS.MEASURING,
        (_TS.MEASURING, _TE.SIFT): _TS.AWAITING,
        (_TS.AWAITING, _TE.PAIR): _TS.AWAITING,
        (_TS.MEASURING, _TE.RECORDS): _TS.SENT,
        (_TS.AWAITING, _TE.RECORDS): _TS.SENT,
        (_TS.SENT, _TE.PAIR): _TS.SENT,
        (_TS.SENT, _TE.KEY): _TS.KEYED,
        (_TS.SENT, _TE.ABORT): _TS.ABORTED,
        (_TS.NEW, _TE.CANCEL): _TS.CANCELLED,
        (_TS.HOLDING, _TE.CANCEL): _TS.CANCELLED,
        (_TS.MEASURING, _TE.CANCEL): _TS.CANCELLED,
        (_TS.AWAITING, _TE.CANCEL): _TS.CANCELLED,
        (_TS.SENT, _TE.CANCEL): _TS.CANCELLED,
        (_TS.MEASURING, _TE.ABORT): _TS.ABORTED,
        (_TS.AWAITING, _TE.ABORT): _TS.ABORTED,
    },
    final=frozenset({_TS.KEYED, _TS.ABORTED, _TS.CANCELLED}),
    doc=(
        "One QKD request at its tail, keyed by (head, network request id), opened by the head's `QkdStart` (which "
        "it acknowledges) or by the first pair (held unmeasured until the start says the protocol). It measures "
        "each half in a random basis; when every pair the head's announcement names is measured it sends its "
        "records (`records_sent`), again for each copy of the announcement. The head's outcome delivers "
        "`KeyDelivered` on entering `keyed`, or `KeyAborted` with the outcome's code on entering `aborted`; a "
        "head's message that fails its check aborts too (`KeyAborted` AUTH_FAILED, and the head is told). "
        "`cancel` (the head ended the request early: `KeyAborted` with its code; or the head is lost: REMOTE_LOST) "
        "frees what it holds. After it ends it answers each copy of the head's messages with its last answer."
    ),
)

QKD_MACHINES = (QKD_HEAD, QKD_TAIL)


class _QkdHead(Session):
    machine = QKD_HEAD
    __slots__ = (
        "request",
        "net_id",
        "pool",
        "auth",
        "rng",
        "outcomes",
        "measuring",
        "result",
        "start_msg",
        "start_acked",
        "sift_msg",
        "lost_msgs",
        "final_msg",
        "closing_code",
        "closing_detail",
        "key_figures",
        "one_way_ns",
        "timer",
        "tries",
        "wait_ns",
        "first_wait_ns",
        "start_sent_ns",
    )

    def __init__(self, request: QkdRequest, net_id: int, pool: KeyPool, rng: np.random.Generator, trace: Any) -> None:
        super().__init__(request.request_id, trace)
        self.request = request
        self.net_id = net_id
        self.pool = pool
        self.auth: WegmanCarter | None = None
        self.rng = rng  # the post-processing's stream (samples, shuffles, hash seeds)
        self.outcomes: dict[int, tuple[int, int]] = {}  # pair index -> (setting, frame-corrected bit)
        self.measuring: dict[int, int] = {}  # device tag -> pair index, measurements under way
        self.result: QkdResult | None = None
        self.start_msg: QkdStart | None = None
        self.start_acked = False
        self.sift_msg: QkdSift | None = None
        self.lost_msgs: list[QkdPairLost] = []  # sent after the announcement: sent again with it
        self.final_msg: QkdOutcome | QkdCancel | None = None  # sent again until the tail confirms
        self.closing_code: AppErrorCode | None = None  # the code the request closes with (None: a key)
        self.closing_detail = ""
        self.key_figures: dict[str, Any] = {}
        self.one_way_ns: int | None = None  # the classical delay to the tail, once measured
        self.timer: int | None = None  # the retransmission timer's id
        self.tries = 0
        self.wait_ns = RETRY_FIRST_NS
        self.first_wait_ns = RETRY_FIRST_NS
        self.start_sent_ns = 0


class _QkdTail(Session):
    machine = QKD_TAIL
    __slots__ = ("head", "net_id", "start", "auth", "held", "outcomes", "measuring", "announced", "lost", "records_msg", "request_id")

    def __init__(self, head: str, net_id: int, trace: Any) -> None:
        super().__init__((head, net_id), trace)
        self.head = head
        self.net_id = net_id
        self.start: QkdStart | None = None
        self.auth: WegmanCarter | None = None
        self.held: dict[int, int] = {}  # pair index -> handle, held before the start came
        self.outcomes: dict[int, tuple[int, int]] = {}  # pair index -> (setting, bit)
        self.measuring: dict[int, int] = {}  # device tag -> pair index
        self.announced: QkdSift | None = None
        self.lost: set[int] = set()  # indices declared lost here (never reported)
        self.records_msg: QkdRecords | None = None  # sent again for each copy of the announcement
        self.request_id: int | None = None  # the head's request id, once a message of the head named it


def _sift_bytes(net_id: int, indices: tuple[int, ...], bases: bytes) -> bytes:
    return b"sift" + net_id.to_bytes(8, "big") + np.asarray(indices, dtype=">i8").tobytes() + bases


def _records_bytes(net_id: int, bases: bytes) -> bytes:
    return b"records" + net_id.to_bytes(8, "big") + bases


def _outcome_bytes(net_id: int, code: str | None, length: int) -> bytes:
    return b"outcome" + net_id.to_bytes(8, "big") + (code or "key").encode() + length.to_bytes(8, "big")


class QkdApps:
    """The QKD part of the reference application entity (``BasicApps`` hands it QKD messages)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._next_net_id = QKD_NET_IDS
        self._open: dict[int, _QkdHead] = {}  # user's request_id -> head session not yet closed
        self._heads: dict[int, _QkdHead] = {}  # network id -> head session not yet ended
        self._tails: dict[tuple[str, int], _QkdTail] = {}
        # tails ended here -> their last answer, sent again for each copy of a head's message (None: no answer)
        self._ended_tails: dict[tuple[str, int], QkdConfirm | QkdRefused | None] = {}
        self._trace = transition_trace(ctx)
        self._next_tag = 0
        self._device: dict[int, _QkdHead | _QkdTail] = {}  # device tag -> session measuring

    # ------------------------------------------------------------ routing

    @staticmethod
    def owns(net_id: int) -> bool:
        """Whether a network request id is a QKD request's."""
        return net_id >= QKD_NET_IDS

    def is_open(self, request_id: int) -> bool:
        return request_id in self._open

    def handle_above(self, request: QkdRequest) -> None:
        ctx = self.ctx
        net_id = self._next_net_id
        self._next_net_id += 1
        pool_bits = ctx.rng.integers(0, 2, request.auth_pool_bits, dtype=np.uint8)
        rng = np.random.default_rng(int(ctx.rng.integers(0, 2**63)))
        session = _QkdHead(request, net_id, KeyPool(pool_bits), rng, self._trace)
        session.auth = authenticator_or_none(session.pool)
        self._open[request.request_id] = session
        self._heads[net_id] = session
        session.start_msg = QkdStart(request.request_id, net_id, request.protocol, request.pairs, pool_bits.tobytes())
        ctx.send_peer(request.remote_node, session.start_msg)
        session.start_sent_ns = ctx.now_ns
        self._arm(session, fresh=True)
        ctx.send_down(
            NetRequest(
                request_id=net_id,
                remote_node=request.remote_node,
                number=request.pairs,
                min_fidelity=request.min_fidelity,
                max_time_ns=request.max_time_ns,
                priority=request.priority,
            )
        )

    def handle_below(self, msg: Any) -> None:
        me = self.ctx.node
        if isinstance(msg, PairDelivered):
            if msg.pair_id.head == me:
                self._head_pair(msg)
            else:
                self._tail_pair(msg)
        elif isinstance(msg, PairLost):
            if msg.pair_id.head == me:
                self._head_lost(msg)
            else:
                self._tail_lost(msg)
        elif isinstance(msg, NetError) and msg.code is NetErrorCode.END_LOST and msg.head != me:
            tail = self._tails.get((msg.head, msg.request_id))
            if tail is None:
                drop_unknown(self.ctx.trace, msg.kind, (msg.head, msg.request_id))
                return
            tail.fire(_TE.CANCEL)
            self._end_tail(tail, None, AppErrorCode.REMOTE_LOST, f"{msg.code.value}: {msg.detail}")
        else:
            head = msg.head if isinstance(msg, NetError) else me
            session = self._heads.get(msg.request_id) if head == me else None
            if session is None:
                drop_unknown(self.ctx.trace, type(msg).__name__, (head, msg.request_id))
                return
            if isinstance(msg, NetAccepted):
                session.fire(_HE.ACCEPTED)
            elif isinstance(msg, NetRejected):
                session.fire(_HE.REJECTED)
                self._cancel(session, AppErrorCode.REJECTED, msg.reason)
            elif msg.code is NetErrorCode.END_LOST and session.state in (_HS.MEASURING, _HS.SIFTING, _HS.CLOSING):
                session.fire(_HE.REMOTE_LOST)
                self._close(session, AppErrorCode.REMOTE_LOST, f"{msg.code.value}: {msg.detail}")
            elif session.state is _HS.MEASURING:
                session.fire(_HE.ABORTED)
                self._cancel(session, AppErrorCode.ABORTED, f"{msg.code.value}: {msg.detail}")
            else:  # the pairs are all in: the network's later word changes nothing
                drop_unknown(self.ctx.trace, msg.kind, (head, msg.request_id), state=session.state.value)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, QkdStart):
            self._tail_start(sender, msg)
        elif isinstance(msg, QkdSift):
            self._tail_sift(sender, msg)
        elif isinstance(msg, QkdRecords):
            self._head_records(msg)
        elif isinstance(msg, QkdOutcome):
            self._tail_outcome(sender, msg)
        elif isinstance(msg, QkdCancel):
            self._tail_cancel(sender, msg)
        elif isinstance(msg, QkdPairLost):
            tail = self._tails.get((sender, msg.net_id))
            if tail is None or tail.announced is None:
                drop_unknown(self.ctx.trace, msg.kind, (sender, msg.net_id))
                return
            tail.lost.add(msg.pair_index)
            self._tail_maybe_send(tail)
        elif isinstance(msg, QkdStartAck):
            self._head_start_ack(msg)
        elif isinstance(msg, QkdConfirm):
            self._head_confirm(msg)
        elif isinstance(msg, QkdRefused):
            self._head_refused(msg)
        else:
            raise EntityError(f"application got {type(msg).__name__} from peer {sender!r}")

    def handle_timer(self, tag: Hashable) -> None:
        net_id = tag[1]  # type: ignore[index]
        session = self._heads.get(net_id)
        if session is None:
            return
        if len(tag) > 2:  # type: ignore[arg-type]
            session.timer = None
            self._retry(session)
        elif session.state is _HS.PROCESSING:
            self._finish(session)

    def handle_device(self, tag: Hashable, result: Any) -> None:
        number = tag[1]  # type: ignore[index]
        session = self._device.pop(number)
        index = session.measuring.pop(number)
        if session.ended:
            return
        if isinstance(session, _QkdHead):
            self._head_measured(session, index, result)
        else:
            self._tail_measured(session, index, result)

    def describe_waits(self) -> list[Wait]:
        me = self.ctx.node
        waits = []
        for net_id, head in self._heads.items():
            request = head.request
            what = {
                _HS.ASKED: f"the network's answer to its request for pairs with {request.remote_node}",
                _HS.MEASURING: f"end-to-end pairs with {request.remote_node} ({len(head.outcomes)}/{request.pairs} measured)",
                _HS.SIFTING: f"{request.remote_node}'s bases for the announced pairs (try {head.tries + 1})",
                _HS.PROCESSING: "the post-processing's classical round trips",
                _HS.CLOSING: f"{request.remote_node}'s confirmation of the outcome (try {head.tries + 1})",
            }.get(head.state, head.state.value)
            waits.append(
                Wait(
                    session=f"qkd request {me}#{request.request_id}",
                    waiting_for=what,
                    request=(me, request.request_id),
                    below=((me, net_id),),
                    peer=request.remote_node,
                    holds=len(head.measuring),
                )
            )
        for (head_node, net_id), tail in self._tails.items():
            waits.append(
                Wait(
                    session=f"qkd pairs of {head_node}/{net_id} at its tail {me}",
                    waiting_for=f"{head_node}'s messages and pairs ({tail.state.value})",
                    request=None if tail.start is None else (head_node, tail.start.request_id),
                    below=((head_node, net_id),),
                    peer=head_node,
                    holds=len(tail.held) + len(tail.measuring),
                )
            )
        return waits

    # ------------------------------------------------------------ retransmission (head)

    def _arm(self, session: _QkdHead, fresh: bool) -> None:
        """(Re)start the retransmission timer; ``fresh``: a new message awaits its answer (tries from 0)."""
        if session.timer is not None:
            self.ctx.cancel_timer(session.timer)
        if fresh:
            session.tries = 0
            one_way = session.one_way_ns
            session.wait_ns = session.first_wait_ns = RETRY_FIRST_NS if one_way is None else 2 * one_way + _RETRY_MARGIN_NS
        else:
            session.wait_ns = min(2 * session.wait_ns, RETRY_CAP * session.first_wait_ns)
        session.timer = self.ctx.set_timer(session.wait_ns, ("qkd", session.net_id, "retry"))

    def _disarm(self, session: _QkdHead) -> None:
        if session.timer is not None:
            self.ctx.cancel_timer(session.timer)
            session.timer = None

    def _retry(self, session: _QkdHead) -> None:
        """No answer within the wait: send again what is unanswered, or give up after RETRY_TRIES."""
        state = session.state
        waiting_start = state in (_HS.ASKED, _HS.MEASURING) and not session.start_acked
        if not (waiting_start or state in (_HS.SIFTING, _HS.CLOSING)):
            return
        session.tries += 1
        remote = session.request.remote_node
        if session.tries >= RETRY_TRIES:
            if state is _HS.CLOSING:
                session.fire(_HE.TIMEOUT)
                if session.closing_code is None:  # the tail may hold the key: said in the detail
                    self._close(session, AppErrorCode.TIMEOUT, f"{remote} did not confirm the key after {RETRY_TRIES} sendings")
                else:
                    self._close(session, session.closing_code, session.closing_detail)
                return
            session.fire(_HE.TIMEOUT)
            self._cancel(session, AppErrorCode.TIMEOUT, f"no answer from {remote} after {RETRY_TRIES} sendings ({state.value})")
            return
        if state is _HS.CLOSING:
            assert session.final_msg is not None
            self.ctx.send_peer(remote, session.final_msg)
        else:
            if not session.start_acked:
                assert session.start_msg is not None
                self.ctx.send_peer(remote, session.start_msg)
            if state is _HS.SIFTING:
                assert session.sift_msg is not None
                self.ctx.send_peer(remote, session.sift_msg)
                for lost in session.lost_msgs:
                    self.ctx.send_peer(remote, lost)
        self._arm(session, fresh=False)

    def _head_start_ack(self, msg: QkdStartAck) -> None:
        session = self._heads.get(msg.net_id)
        if session is None:
            drop_unknown(self.ctx.trace, msg.kind, msg.net_id)
            return
        if not session.start_acked and session.tries == 0 and session.state in (_HS.ASKED, _HS.MEASURING):
            session.one_way_ns = (self.ctx.now_ns - session.start_sent_ns) // 2  # the start went once: a true round trip
        session.start_acked = True
        if session.state in (_HS.ASKED, _HS.MEASURING):
            self._disarm(session)

    def _head_confirm(self, msg: QkdConfirm) -> None:
        session = self._heads.get(msg.net_id)
        if session is None or session.state is not _HS.CLOSING:
            drop_unknown(self.ctx.trace, msg.kind, msg.net_id)
            return
        if session.closing_code is not None:
            session.fire(_HE.CONFIRMED)
            self._close(session, session.closing_code, session.closing_detail)
            return
        session.fire(_HE.KEY_CONFIRMED)
        self._disarm(session)
        request = session.request
        result = session.result
        assert result is not None and result.head_key is not None
        self.ctx.send_up(
            self._key_delivered(request.request_id, self.ctx.node, session.net_id, result.head_key, session.key_figures, session.pool)
        )
        del self._open[request.request_id]
        del self._heads[session.net_id]
        self.ctx.send_up(
            AppDone(
                request_id=request.request_id,
                request_kind=request.kind,
                remote_node=request.remote_node,
                completed=1,
                time_ns=self.ctx.now_ns,
            )
        )

    def _head_refused(self, msg: QkdRefused) -> None:
        session = self._heads.get(msg.net_id)
        if session is None or session.state not in (_HS.SIFTING, _HS.CLOSING):
            drop_unknown(self.ctx.trace, msg.kind, msg.net_id)
            return
        session.fire(_HE.REFUSED)
        self._close(session, AppErrorCode(msg.code), f"{session.request.remote_node} ended it: {msg.detail}")

    # ------------------------------------------------------------ measuring

    def _measure(self, session: _QkdHead | _QkdTail, index: int, handle: int, basis: Basis) -> Any | None:
        """Measure the half of pair ``index`` held in ``handle`` in ``basis``: the result now, or None
        when the device takes its time (the result then comes to :meth:`handle_device`)."""
        op = Measure(handle=handle, basis=basis)
        duration = getattr(self.ctx.device, "duration_ns", None)
        if duration is not None and duration(op) > 0:
            number = self._next_tag
            self._next_tag += 1
            self._device[number] = session
            session.measuring[number] = index
            self.ctx.request_device(op, ("qkd", number))
            return None
        return self.ctx.device.execute(op)

    def _free(self, handle: int | None) -> None:
        if handle is not None:
            self.ctx.device.execute(FreeQubit(handle=handle))

    # ------------------------------------------------------------ head side

    def _head_pair(self, pair: PairDelivered) -> None:
        session = self._heads.get(pair.pair_id.request_id)
        if session is None:  # the unknown-session rule: dropped, no qubit touched (specs/application.md APP-SESS-1)
            drop_unknown(self.ctx.trace, "PairDelivered", pair.pair_id)
            return
        if pair.handle is None:
            raise EntityError(f"pair {pair.pair_id} delivered without a qubit; QKD asks for type K")
        if session.state is not _HS.MEASURING:  # the request has its pairs: a replacement comes too late
            self._free(pair.handle)
            return
        setting = int(self.ctx.rng.integers(2))
        basis = HEAD_BASES[session.request.protocol][setting]
        x, z = pair.bell_state.pauli_bits
        flip = x if basis is Basis.Z else z
        session.outcomes[pair.pair_id.index] = (setting, -1 - flip)  # negative: measurement under way
        result = self._measure(session, pair.pair_id.index, pair.handle, basis)
        if result is not None:
            self._head_measured(session, pair.pair_id.index, result)

    def _head_measured(self, session: _QkdHead, index: int, result: Any) -> None:
        if not isinstance(result, MeasureResult):
            raise EntityError(f"QKD measurement failed: {result}")
        if index not in session.outcomes:  # declared lost while it was measured
            return
        setting, pending = session.outcomes[index]
        flip = -1 - pending
        session.outcomes[index] = (setting, result.outcome ^ flip)
        if len(session.outcomes) >= session.request.pairs and not session.measuring:
            session.fire(_HE.LAST_MEASURED)
            self._announce(session)
        else:
            session.fire(_HE.MEASURED)

    def _announce(self, session: _QkdHead) -> None:
        indices = tuple(sorted(session.outcomes))
        bases = bytes(session.outcomes[i][0] for i in indices)
        tag = sign_or_none(session.auth, _sift_bytes(session.net_id, indices, bases))
        if tag is None:
            session.fire(_HE.ABORT)
            self._cancel(
                session, AppErrorCode.AUTH_FAILED, f"the authentication pool of {session.request.auth_pool_bits} bits cannot sign the bases"
            )
            return
        session.sift_msg = QkdSift(session.net_id, indices, bases, tag)
        self.ctx.send_peer(session.request.remote_node, session.sift_msg)
        self._arm(session, fresh=True)

    def _head_lost(self, msg: PairLost) -> None:
        pair_id = msg.pair_id
        session = self._heads.get(pair_id.request_id)
        if session is None or pair_id.index not in session.outcomes or session.state not in (_HS.MEASURING, _HS.SIFTING):
            drop_unknown(self.ctx.trace, "PairLost", pair_id)
            return
        del session.outcomes[pair_id.index]
        session.fire(_HE.LOST)
        if session.state is _HS.SIFTING:
            lost = QkdPairLost(session.net_id, pair_id.index)
            session.lost_msgs.append(lost)
            self.ctx.send_peer(session.request.remote_node, lost)

    def _head_records(self, msg: QkdRecords) -> None:
        session = self._heads.get(msg.net_id)
        if session is None or session.state is not _HS.SIFTING:
            drop_unknown(self.ctx.trace, msg.kind, msg.net_id)
            return
        session.start_acked = True  # the records answer the start too
        if not self.authentic(session.auth, _records_bytes(msg.net_id, msg.bases), msg.tag):
            session.fire(_HE.ABORT)
            self._cancel(session, AppErrorCode.AUTH_FAILED, "the tail's bases failed authentication")
            return
        session.fire(_HE.RECORDS)
        self._disarm(session)
        indices = sorted(session.outcomes)
        head_bases = np.fromiter((session.outcomes[i][0] for i in indices), dtype=np.uint8, count=len(indices))
        head_bits = np.fromiter((session.outcomes[i][1] for i in indices), dtype=np.uint8, count=len(indices))
        tail_bases = np.frombuffer(msg.bases, dtype=np.uint8)
        tail_bits = np.frombuffer(msg.bits, dtype=np.uint8)
        request = session.request
        result = self.post_process(request.protocol, head_bases, head_bits, tail_bases, tail_bits, request, session.rng)
        session.result = result
        # a retransmitted copy of the records left later than the first: the delay measured is never too short
        one_way = max(0, self.ctx.now_ns - msg.sent_ns)
        session.one_way_ns = one_way
        self.ctx.set_timer(2 * one_way * result.round_trips, ("qkd", session.net_id))

    def post_process(self, *arguments: Any) -> QkdResult:
        """The post-processing (:func:`post_process`): one place another implementation may change it."""
        return post_process(*arguments)

    def authentic(self, auth: WegmanCarter | None, message: bytes, tag: AuthTag | None) -> bool:
        """Whether ``tag`` is the Wegman–Carter tag of ``message`` (taking the next pad either way)."""
        return check_or_false(auth, message, tag)

    def _finish(self, session: _QkdHead) -> None:
        """The post-processing's round trips are over: send the tail its outcome (again until it confirms)."""
        result = session.result
        assert result is not None
        request = session.request
        length = 0 if result.head_key is None else len(result.head_key)
        code = None if result.code is None else result.code.value
        tag = sign_or_none(session.auth, _outcome_bytes(session.net_id, code, length))
        if tag is None and result.code is None:
            result = QkdResult(AppErrorCode.AUTH_FAILED, "the authentication pool cannot sign the outcome", None, None, 0, result.figures)
            session.result = result
            code = AppErrorCode.AUTH_FAILED.value
            length = 0
        tail_key = b"" if result.tail_key is None else pack_key(result.tail_key)
        figures = {**result.figures, "length": length, "epsilon": request.epsilon, "ec": request.ec, "protocol": request.protocol}
        figures["tail"] = request.remote_node
        figures["detail"] = result.detail
        session.key_figures = figures
        session.closing_code = result.code
        session.closing_detail = result.detail
        session.final_msg = QkdOutcome(session.net_id, code, tail_key, tuple(figures.items()), tag)
        session.fire(_HE.OUTCOME)
        self.ctx.send_peer(request.remote_node, session.final_msg)
        self._arm(session, fresh=True)

    def _key_delivered(
        self, request_id: int, head: str, net_id: int, key: np.ndarray, figures: dict[str, Any], pool: KeyPool
    ) -> KeyDelivered:
        """The user's message for ``key``; both ends build it from the same ``figures``."""
        packed = pack_key(key)
        return KeyDelivered(
            request_id=request_id,
            head=head,
            remote_node=figures["tail"] if head == self.ctx.node else head,
            protocol=figures["protocol"],
            key_id=_key_id(head, net_id),
            length=len(key),
            key_hex=packed.hex(),
            key_sha256=hashlib.sha256(packed).hexdigest(),
            epsilon=figures["epsilon"],
            epsilon_sec=figures["epsilon_sec"],
            epsilon_cor=figures["epsilon_cor"],
            pairs=figures["pairs"],
            sifted_bits=figures["sifted_bits"],
            sample_bits=figures["sample_bits"],
            sample_errors=figures["sample_errors"],
            qber=figures["qber"],
            qber_upper=figures["qber_upper"],
            leaked_ec_bits=figures["leaked_ec_bits"],
            verify_bits=figures["verify_bits"],
            ec=figures["ec"],
            chsh_s=figures.get("chsh_s"),
            chsh_standard_error=figures.get("chsh_standard_error"),
            auth_bits_used=pool.consumed,
            time_ns=self.ctx.now_ns,
        )

    def _stop_measuring(self, session: _QkdHead) -> None:
        for number in list(session.measuring):
            self._device.pop(number, None)
        session.measuring.clear()

    def _cancel(self, session: _QkdHead, code: AppErrorCode, detail: str) -> None:
        """End the request before its outcome: tell the tail (again until it confirms), then close with ``code``."""
        self._stop_measuring(session)
        session.closing_code = code
        session.closing_detail = detail
        session.final_msg = QkdCancel(session.net_id, session.request.request_id, code.value, detail)
        self.ctx.send_peer(session.request.remote_node, session.final_msg)
        self._arm(session, fresh=True)

    def _close(self, session: _QkdHead, code: AppErrorCode, detail: str) -> None:
        """Close the request at the head with ``AppError`` ``code`` (the session has entered ``failed``)."""
        request = session.request
        self._disarm(session)
        self._stop_measuring(session)
        self._open.pop(request.request_id, None)
        self._heads.pop(session.net_id, None)
        self.ctx.send_up(AppError(request_id=request.request_id, request_kind=request.kind, code=code, detail=detail))

    # ------------------------------------------------------------ tail side

    def _tail(self, head: str, net_id: int, kind: str) -> _QkdTail | None:
        key = (head, net_id)
        tail = self._tails.get(key)
        if tail is None:
            if key in self._ended_tails:
                drop_unknown(self.ctx.trace, kind, key)
                return None
            tail = self._tails[key] = _QkdTail(head, net_id, self._trace)
        return tail

    def _answer_ended(self, head: str, net_id: int, kind: str) -> bool:
        """A head's message for a tail ended here: send its last answer again (the first may be lost)."""
        key = (head, net_id)
        if key not in self._ended_tails:
            return False
        answer = self._ended_tails[key]
        if answer is not None:
            self.ctx.send_peer(head, answer)
        else:
            drop_unknown(self.ctx.trace, kind, key)
        return True

    def _end_tail(self, tail: _QkdTail, answer: QkdConfirm | QkdRefused | None, code: AppErrorCode | None = None, detail: str = "") -> None:
        """Free what the tail holds, tell its user of an abort (``code``), send ``answer`` and keep it for copies."""
        for handle in tail.held.values():
            self._free(handle)
        tail.held.clear()
        for number in list(tail.measuring):
            self._device.pop(number, None)
        tail.measuring.clear()
        key = (tail.head, tail.net_id)
        del self._tails[key]
        self._ended_tails[key] = answer
        if code is not None and tail.request_id is not None:
            self.ctx.send_up(
                KeyAborted(
                    request_id=tail.request_id,
                    head=tail.head,
                    remote_node=tail.head,
                    key_id=_key_id(tail.head, tail.net_id),
                    code=code,
                    detail=detail,
                    time_ns=self.ctx.now_ns,
                )
            )
        if answer is not None:
            self.ctx.send_peer(tail.head, answer)

    def _tail_refuse(self, tail: _QkdTail, code: AppErrorCode, detail: str) -> None:
        tail.fire(_TE.ABORT)
        self._end_tail(tail, QkdRefused(tail.net_id, code.value, detail), code, detail)

    def _tail_start(self, head: str, msg: QkdStart) -> None:
        if self._answer_ended(head, msg.net_id, msg.kind):
            return
        tail = self._tail(head, msg.net_id, msg.kind)
        assert tail is not None
        self.ctx.send_peer(head, QkdStartAck(msg.net_id))
        if tail.start is not None:  # a copy: the first one's ack was lost
            return
        tail.fire(_TE.START)
        tail.start = msg
        tail.request_id = msg.request_id
        tail.auth = authenticator_or_none(KeyPool(np.frombuffer(msg.pool, dtype=np.uint8).copy()))
        held, tail.held = tail.held, {}
        for index, handle in sorted(held.items()):
            self._tail_measure(tail, index, handle)

    def _tail_cancel(self, head: str, msg: QkdCancel) -> None:
        if self._answer_ended(head, msg.net_id, msg.kind):
            return
        tail = self._tails.get((head, msg.net_id))
        if tail is None:  # the cancel came before anything else: nothing to free, the user is still told
            tail = self._tails[(head, msg.net_id)] = _QkdTail(head, msg.net_id, self._trace)
        tail.request_id = msg.request_id
        tail.fire(_TE.CANCEL)
        self._end_tail(tail, QkdConfirm(msg.net_id), AppErrorCode(msg.code), msg.detail)

    def _tail_pair(self, pair: PairDelivered) -> None:
        pair_id = pair.pair_id
        tail = self._tail(pair_id.head, pair_id.request_id, "PairDelivered")
        if tail is None:  # ended here: dropped under the unknown-session rule
            return
        if pair.handle is None:
            raise EntityError(f"pair {pair_id} delivered without a qubit; QKD asks for type K")
        tail.fire(_TE.PAIR)
        if tail.state is _TS.HOLDING:
            tail.held[pair_id.index] = pair.handle
        elif tail.state is _TS.SENT:
            self._free(pair.handle)  # records are out: a late replacement is not used
        else:
            self._tail_measure(tail, pair_id.index, pair.handle)

    def _tail_measure(self, tail: _QkdTail, index: int, handle: int) -> None:
        assert tail.start is not None
        protocol = tail.start.protocol
        rng = self.ctx.rng
        setting = int(rng.choice(3, p=_TAIL_E91_PROBABILITIES)) if protocol == "e91" else int(rng.integers(2))
        tail.outcomes[index] = (setting, -1)
        result = self._measure(tail, index, handle, TAIL_BASES[protocol][setting])
        if result is not None:
            self._tail_measured(tail, index, result)

    def _tail_measured(self, tail: _QkdTail, index: int, result: Any) -> None:
        if not isinstance(result, MeasureResult):
            raise EntityError(f"QKD measurement failed: {result}")
        if index not in tail.outcomes:
            return
        tail.outcomes[index] = (tail.outcomes[index][0], result.outcome)
        self._tail_maybe_send(tail)

    def _tail_lost(self, msg: PairLost) -> None:
        pair_id = msg.pair_id
        tail = self._tails.get((pair_id.head, pair_id.request_id))
        if tail is None:
            drop_unknown(self.ctx.trace, "PairLost", pair_id)
            return
        handle = tail.held.pop(pair_id.index, None)
        self._free(handle)
        tail.outcomes.pop(pair_id.index, None)
        tail.lost.add(pair_id.index)

    def _tail_sift(self, head: str, msg: QkdSift) -> None:
        if self._answer_ended(head, msg.net_id, msg.kind):
            return
        tail = self._tails.get((head, msg.net_id))
        if tail is not None and tail.state is _TS.SENT and tail.records_msg is not None:
            self.ctx.send_peer(head, tail.records_msg)  # a copy of the announcement: the records were lost
            return
        if tail is None or tail.state is not _TS.MEASURING:  # not started yet (the head sends both again), or a copy
            drop_unknown(self.ctx.trace, msg.kind, (head, msg.net_id))
            return
        if not self.authentic(tail.auth, _sift_bytes(msg.net_id, msg.indices, msg.bases), msg.tag):
            self._tail_refuse(tail, AppErrorCode.AUTH_FAILED, "the head's bases failed authentication")
            return
        tail.fire(_TE.SIFT)
        tail.announced = msg
        self._tail_maybe_send(tail)

    def _tail_maybe_send(self, tail: _QkdTail) -> None:
        """Send the records once every announced pair (not declared lost) is measured."""
        announced = tail.announced
        if announced is None or tail.state is not _TS.AWAITING:
            return
        wanted = [i for i in announced.indices if i not in tail.lost]
        outcomes = tail.outcomes
        if any(i not in outcomes or outcomes[i][1] < 0 for i in wanted):
            return
        bases = bytes(outcomes[i][0] for i in wanted)
        bits = bytes(outcomes[i][1] for i in wanted)
        tag = sign_or_none(tail.auth, _records_bytes(tail.net_id, bases))
        tail.records_msg = QkdRecords(tail.net_id, bases, bits, self.ctx.now_ns, tag)
        self.ctx.send_peer(tail.head, tail.records_msg)
        tail.fire(_TE.RECORDS)

    def _tail_outcome(self, head: str, msg: QkdOutcome) -> None:
        if self._answer_ended(head, msg.net_id, msg.kind):
            return
        tail = self._tails.get((head, msg.net_id))
        if tail is None or tail.state is not _TS.SENT:
            drop_unknown(self.ctx.trace, msg.kind, (head, msg.net_id))
            return
        figures = dict(msg.figures)
        length = int(figures["length"]) if msg.code is None else 0
        if not self.authentic(tail.auth, _outcome_bytes(msg.net_id, msg.code, length), msg.tag):
            self._tail_refuse(tail, AppErrorCode.AUTH_FAILED, "the head's outcome failed authentication")
            return
        if msg.code is not None:
            tail.fire(_TE.ABORT)
            self._end_tail(tail, QkdConfirm(msg.net_id), AppErrorCode(msg.code), str(figures.get("detail", "")))
            return
        assert tail.start is not None and tail.auth is not None
        key = np.unpackbits(np.frombuffer(msg.key, dtype=np.uint8), bitorder="big")[:length]
        tail.fire(_TE.KEY)
        self.ctx.send_up(self._key_delivered(tail.start.request_id, head, msg.net_id, key, figures, tail.auth.pool))
        self._end_tail(tail, QkdConfirm(msg.net_id))


def _key_id(head: str, net_id: int) -> str:
    """The key's name: the n-th QKD request the head opened, unique at the head and known at both ends."""
    return f"{head}/qkd{net_id - QKD_NET_IDS}"
