"""Application service: what a user asks of an application and what it returns.

The *user* is whatever sits on top of a node's application entity: a script,
the scenario runner, a notebook. It sends an application request down and gets
results back up. Two applications so far:

* ``TeleportRequest``: teleport single-qubit states from this node to
  ``remote_node``; each teleported state yields a ``TeleportResult`` (at the
  receiving node) with the *oracle* fidelity of the received state;
* ``PairsRequest``: make end-to-end pairs and report each one's oracle
  fidelity and the network's goodness in a ``PairResult``;
* ``QkdRequest``: distil a secret key with ``remote_node`` from end-to-end
  pairs (BBM92 or E91), or from a train of weak coherent pulses over a pulse
  link (prepare-and-measure BB84 with decoy states, ``bb84-decoy``), and
  deliver it as ``KeyDelivered`` at both ends, or end with an ``AppError``
  whose code says why no key was made (docs/qkd.md, docs/qkd-bb84.md).

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

from pydantic import Field, ValidationInfo, field_validator

from qnetstack.entity import Entity
from qnetstack.entity.message import Message as _Message
from qnetstack.link.service import PRIORITY_LEVELS
from qnetstack.network.service import PairId
from qnetstack.physical.service import IntensityClass, Probability

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
    "CAP_APP_QKD",
    "QkdRequest",
    "KeyDelivered",
    "MIN_QKD_PAIRS",
    "MIN_QKD_PULSES",
    "MAX_QKD_PULSES",
    "DEFAULT_DECOY_INTENSITIES",
    "KeyAborted",
]

CAP_APP_TELEPORT = "application:teleport"
CAP_APP_PAIRS = "application:pairs"
CAP_APP_QKD = "application:qkd"


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


# Fewer pairs than this cannot give a sample and a key with the finite-key bound at any ε in (0, 1):
# with 50 sifted bits the sampling term alone is above 0.3 (docs/qkd.md).
MIN_QKD_PAIRS = 100

# A decoy-BB84 request sends at least this many pulses: fewer leave some intensity class
# without a detection even at 0 km, and the decoy bounds undefined (docs/qkd-bb84.md).
MIN_QKD_PULSES = 10_000
# At most this many pulses a request: 10**8 pulses take about half a minute end to
# end here (docs/qkd-bb84.md), so 10**11 are already about ten hours of CPU; a
# larger count is a typo, and the finite-key curves beyond it come from the
# closed forms (qnetstack.application.qkd.key_length), not from simulation.
MAX_QKD_PULSES = 10**11

# Signal μ = 0.48, weak decoy ν = 0.1 and vacuum: the settings Ma, Qi, Zhao & Lo (PRA 72,
# 012326, 2005) find near-optimal for the GYS experiment; 80 % of the pulses are signals.
DEFAULT_DECOY_INTENSITIES = (
    IntensityClass(mean_photon_number=0.48, probability=0.8),
    IntensityClass(mean_photon_number=0.1, probability=0.1),
    IntensityClass(mean_photon_number=0.0, probability=0.1),
)


class QkdRequest(_Message):
    """Distil a secret key with ``remote_node`` from ``pairs`` end-to-end pairs.

    ``protocol`` is ``bbm92`` (Bennett, Brassard & Mermin, PRL 68, 557, 1992)
    or ``e91`` (Ekert, PRL 67, 661, 1991, in its CHSH form). ``epsilon`` is the
    total security parameter, split evenly into ε_sec and ε_cor (ε = ε_sec +
    ε_cor, Tomamichel, Lim, Gisin & Renner 2012). ``ec`` names the error
    correction (a reconciler registered in ``qnetstack.application.qkd.reconcile``).
    ``sample_fraction`` of the sifted key is disclosed to estimate the QBER.
    The run aborts (``AppError``) when the QBER bound exceeds
    ``qber_threshold``, when E91's S is at most ``chsh_threshold``, or when the
    finite-key length is not positive. ``auth_pool_bits`` is the size of the
    pre-shared key that authenticates the classical messages (Wegman–Carter).

    ``bb84-decoy`` is prepare-and-measure BB84 with decoy states (Hwang, PRL
    91, 057901, 2003; Lo, Ma & Chen, PRL 94, 230504, 2005) over a pulse link
    from this node to ``remote_node``: it spends ``pulses`` (not ``pairs``) in
    the ``intensities`` classes (signal, weak decoy, vacuum, in that order),
    each end choosing Z with ``z_probability``. With ``finite_key`` the key
    length is Lim, Curty, Walenta, Xu & Zbinden's bound (PRA 89, 022307,
    2014) and the key comes from the Z basis of every class; without it, the
    asymptotic GLLP length with the vacuum + weak decoy estimates of Ma, Qi,
    Zhao & Lo (2005), the key from the signal class in both bases.
    ``key_bits``, when given, is the shortest key the user accepts: a shorter
    one ends in ``KEY_TOO_SHORT``, and one longer than the pulses could ever
    give (one bit a pulse) is refused.
    """

    kind: Literal["qkd"] = "qkd"
    request_id: int = _REQUEST_ID
    remote_node: str = Field(min_length=1)
    protocol: Literal["bbm92", "e91", "bb84-decoy"] = "bbm92"
    pairs: int = Field(0, ge=0, validate_default=True, description=f"end-to-end pairs to spend (bbm92, e91: at least {MIN_QKD_PAIRS})")
    pulses: int | None = Field(
        None, ge=MIN_QKD_PULSES, le=MAX_QKD_PULSES, validate_default=True, description="weak coherent pulses to send (bb84-decoy)"
    )
    intensities: list[IntensityClass] = Field(default_factory=lambda: list(DEFAULT_DECOY_INTENSITIES), min_length=3, max_length=3)
    z_probability: float = Field(0.5, gt=0.0, lt=1.0)
    finite_key: bool = False
    key_bits: int | None = Field(None, ge=1)
    block_size: int = Field(1_000_000, ge=1_000, le=10_000_000)
    epsilon: float = Field(1e-10, gt=0.0, lt=1.0)
    ec: str = Field("cascade", min_length=1)
    sample_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    qber_threshold: float = Field(0.11, gt=0.0, le=0.5)
    chsh_threshold: float = Field(2.0, ge=2.0, lt=2 * math.sqrt(2))
    auth_pool_bits: int = Field(4096, ge=0)
    min_fidelity: Probability = 0.0
    max_time_ns: int | None = Field(None, gt=0)
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)  # passed on to the network (NetRequest.priority)

    @property
    def number(self) -> int:
        """The pairs asked of the network: the ``number`` of the other requests, read by the scenario's checks and the report
        (1 for ``bb84-decoy``, which asks the network for nothing and delivers one key)."""
        return 1 if self.protocol == "bb84-decoy" else self.pairs

    # Field validators, so that an error names its field; each runs also on the default
    # (validate_default) and reads the fields before it (info.data: protocol first).
    @field_validator("pairs")
    @classmethod
    def _pairs_fit_protocol(cls, pairs: int, info: ValidationInfo) -> int:
        protocol = info.data.get("protocol")
        if protocol == "bb84-decoy" and pairs:
            raise ValueError("bb84-decoy spends pulses, not pairs; leave pairs out")
        if protocol in ("bbm92", "e91") and pairs < MIN_QKD_PAIRS:
            raise ValueError(f"{protocol} needs at least {MIN_QKD_PAIRS} end-to-end pairs, got {pairs}")
        return pairs

    @field_validator("pulses")
    @classmethod
    def _pulses_fit_protocol(cls, pulses: int | None, info: ValidationInfo) -> int | None:
        protocol = info.data.get("protocol")
        if protocol == "bb84-decoy" and pulses is None:
            raise ValueError("bb84-decoy needs the number of pulses to send")
        if protocol in ("bbm92", "e91") and pulses is not None:
            raise ValueError(f"{protocol} spends pairs, not pulses; leave pulses out")
        return pulses

    @field_validator("intensities")
    @classmethod
    def _signal_decoy_vacuum(cls, intensities: list[IntensityClass]) -> list[IntensityClass]:
        mus = [c.mean_photon_number for c in intensities]
        if not (mus[0] > mus[1] > 0.0 and mus[2] == 0.0):
            raise ValueError(f"need signal > weak decoy > 0 and a vacuum third, got {mus}")
        total = math.fsum(c.probability for c in intensities)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the probabilities sum to {total}, not 1")
        return intensities

    @field_validator("key_bits")
    @classmethod
    def _key_within_pulses(cls, key_bits: int | None, info: ValidationInfo) -> int | None:
        pulses = info.data.get("pulses")
        if key_bits is not None and pulses is not None and key_bits > pulses:
            raise ValueError(f"{key_bits} bits is more than {pulses} pulses can ever give (one bit a pulse)")
        return key_bits

    @field_validator("ec")
    @classmethod
    def _known_reconciler(cls, name: str) -> str:
        # imported here: the error-correction codes pull in scipy and ldpc, which a
        # user of the other applications should not pay for at import
        from qnetstack.application.qkd.reconcile import reconciler_names

        known = reconciler_names()
        if name not in known:
            raise ValueError(f"unknown error correction {name!r}; known: {', '.join(known)}")
        return name


# ------------------------------------------------------------ trusted-relay keys

CAP_APP_QKD_RELAY = "application:qkd-relay"


class QkdRelayRequest(_Message):
    """A key with ``remote_node`` through the trusted relays ``relays``, in path order.

    Every consecutive pair of ``[this node, *relays, remote_node]`` must share a
    link. Each link of that path runs its own QKD session (``protocol``, with
    ``pairs`` pairs per hop); each relay then announces the XOR of its two hop
    keys, so that ``remote_node`` recovers the first hop's key and both ends hold
    it (a one-time pad per relay: the trusted-node scheme of the SECOQC network,
    Peev et al., New J. Phys. 11, 075001, 2009). Every relay named here can
    compute the end key: they are trusted, and the results say so.
    ``epsilon`` is the end key's total security parameter; each of the h hops
    runs at ε/h, so by composability (Ben-Or et al. 2005; Renner 2005) the end
    key is ε-secure. The other fields are passed to every hop's ``QkdRequest``.
    """

    kind: Literal["qkd-relay"] = "qkd-relay"
    request_id: int = _REQUEST_ID
    remote_node: str = Field(min_length=1)
    relays: list[str] = Field(min_length=1, description="the trusted relays, in path order from this node to remote_node")
    protocol: Literal["bbm92", "e91"] = "bbm92"
    pairs: int = Field(ge=MIN_QKD_PAIRS, description="end-to-end pairs to spend on each hop")
    epsilon: float = Field(1e-10, gt=0.0, lt=1.0)
    ec: str = Field("cascade", min_length=1)
    sample_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    qber_threshold: float = Field(0.11, gt=0.0, le=0.5)
    auth_pool_bits: int = Field(4096, ge=0)
    min_fidelity: Probability = 0.0
    priority: int = Field(0, ge=0, lt=PRIORITY_LEVELS)

    @property
    def number(self) -> int:
        """The scenario's and the report's item count: one end-to-end key."""
        return 1

    @property
    def hops(self) -> int:
        return len(self.relays) + 1

    @field_validator("ec")
    @classmethod
    def _known_reconciler(cls, name: str) -> str:
        from qnetstack.application.qkd.reconcile import reconciler_names  # lazily, as QkdRequest does

        if name not in reconciler_names():
            raise ValueError(f"unknown error correction {name!r}; known: {', '.join(reconciler_names())}")
        return name

    @field_validator("relays")
    @classmethod
    def _distinct_relays(cls, relays: list[str]) -> list[str]:
        for i, name in enumerate(relays):
            if not name:
                raise ValueError(f"relay {i} has an empty name")
            if name in relays[:i]:
                raise ValueError(f"relay {name!r} appears twice; a path passes a relay once")
        return relays


AppRequest = Annotated[TeleportRequest | PairsRequest | QkdRequest | QkdRelayRequest, Field(discriminator="kind")]


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


class KeyDelivered(_Message):
    """A secret key, delivered at both ends of QKD request ``request_id`` of ``head``.

    Both ends get the same ``key_id`` and, whenever a key is delivered, the same
    key (specs/application.md APP-QKD-1). ``key_hex`` holds the key bits,
    packed eight to a byte, first bit the most significant, the last byte
    padded with zeros; ``key_sha256`` is the SHA-256 of those bytes.
    ``epsilon_sec + epsilon_cor = epsilon``. The figures say how the key was
    made: ``sifted_bits`` (bases agreeing, key rounds for E91), of which
    ``sample_bits`` were disclosed with ``sample_errors`` errors (``qber``,
    and ``qber_upper`` its bound at ε_sec), ``leaked_ec_bits`` disclosed by
    error correction and ``verify_bits`` by verification, and the CHSH value
    with its standard error for E91. ``auth_bits_used`` counts the pre-shared
    bits the authentication consumed.
    """

    kind: Literal["key_delivered"] = "key_delivered"
    request_id: int = Field(ge=0)
    head: str
    remote_node: str
    protocol: Literal["bbm92", "e91", "bb84-decoy"]
    key_id: str
    length: int = Field(ge=1)
    key_hex: str
    key_sha256: str
    epsilon: float = Field(gt=0.0, lt=1.0)
    epsilon_sec: float = Field(gt=0.0, lt=1.0)
    epsilon_cor: float = Field(gt=0.0, lt=1.0)
    pairs: int = Field(ge=0)
    sifted_bits: int = Field(ge=0)
    sample_bits: int = Field(ge=0)
    sample_errors: int = Field(ge=0)
    qber: float = Field(ge=0.0, le=1.0)
    qber_upper: float = Field(ge=0.0, le=1.0)
    leaked_ec_bits: int = Field(ge=0)
    verify_bits: int = Field(ge=0)
    ec: str
    chsh_s: float | None = None
    chsh_standard_error: float | None = None
    auth_bits_used: int = Field(ge=0)
    time_ns: int = Field(ge=0)
    # bb84-decoy only: the pulses sent, and the decoy estimates the key length used (Ma, Qi, Zhao & Lo 2005)
    pulses: int | None = Field(None, ge=0)
    gain_signal: float | None = Field(None, ge=0.0, le=1.0)
    single_photon_gain_lower: float | None = Field(None, ge=0.0, le=1.0)
    single_photon_error_upper: float | None = Field(None, ge=0.0, le=1.0)
    ec_efficiency: float | None = Field(None, ge=0.0)


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
    QBER_TOO_HIGH = "QBER_TOO_HIGH"  # QKD: the QBER's upper bound is above the request's threshold
    CHSH_TOO_LOW = "CHSH_TOO_LOW"  # QKD (E91): the CHSH value S is not above the request's threshold
    KEY_TOO_SHORT = "KEY_TOO_SHORT"  # QKD: the finite-key bound leaves no secret bit
    EC_FAILED = "EC_FAILED"  # QKD: error correction gave up (no key)
    VERIFY_FAILED = "VERIFY_FAILED"  # QKD: the keys' hashes differ after error correction (no key)
    AUTH_FAILED = "AUTH_FAILED"  # QKD: a classical message failed authentication, or the pre-shared pool ran out
    TOO_FEW_PAIRS = "TOO_FEW_PAIRS"  # QKD: too few measured pairs for a sample and a key (the detail names the count)
    TIMEOUT = "TIMEOUT"  # QKD: the other end stayed silent (BBM92/E91: after every retransmission; decoy BB84: past its silence bound)


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


class RelayAnnouncement(_Message):
    """Relay ``relay``'s public announcement: the XOR of its two hop keys' first ``length`` bits."""

    relay: str
    key_in: str  # key id of the hop from the previous node
    key_out: str  # key id of the hop to the next node
    length: int = Field(ge=1)
    xor_hex: str


class RelayKeyInfo(_Message):
    """Sent with ``KeyDelivered`` at both ends of a trusted-relay key: how the key ``key_id`` was made.

    ``path`` runs from ``head`` to ``remote_node``; ``hop_key_ids`` and
    ``hop_lengths`` name each hop's key in path order, and the end key is the
    first hop's key cut to the shortest (``length``). ``trusted_relays`` can
    each compute the end key (a relay holds two hop keys, and the
    announcements are public).
    """

    kind: Literal["relay_key_info"] = "relay_key_info"
    request_id: int = Field(ge=0)
    head: str
    remote_node: str
    key_id: str
    length: int = Field(ge=1)
    path: list[str]
    trusted_relays: list[str]
    hop_key_ids: list[str]
    hop_lengths: list[int]
    announcements: list[RelayAnnouncement]
    knowledge: str


class RelayAborted(_Message):
    """At ``remote_node`` of a trusted-relay request: no end key, because hop ``hop`` (from
    ``path[hop]`` to ``path[hop + 1]``) ended with ``code``. The head gets ``AppError``."""

    kind: Literal["relay_aborted"] = "relay_aborted"
    request_id: int = Field(ge=0)
    head: str
    hop: int = Field(ge=0)
    path: list[str]
    code: AppErrorCode
    detail: str


class KeyAborted(_Message):
    """The tail's side of a QKD abort: request ``request_id`` of ``head`` (key ``key_id``) ended
    without a key, for the reason ``code``: the code of the ``AppError`` that closes the request
    at the head (specs/application.md APP-QKD-5). ``remote_node`` is the other end."""

    kind: Literal["key_aborted"] = "key_aborted"
    request_id: int = Field(ge=0)
    head: str
    remote_node: str
    key_id: str
    code: AppErrorCode
    detail: str
    time_ns: int = Field(ge=0)


AppResponse = Annotated[
    TeleportResult | PairResult | KeyDelivered | AppDone | AppError | KeyAborted | RelayKeyInfo | RelayAborted, Field(discriminator="kind")
]


@runtime_checkable
class ApplicationService(Entity, Protocol):
    """An application entity: takes ``AppRequest`` from its user, answers ``AppResponse``."""


__all__ += ["CAP_APP_QKD_RELAY", "QkdRelayRequest", "RelayAnnouncement", "RelayKeyInfo", "RelayAborted"]
