"""Records passed between the QKD post-processing stages.

Bits are one-dimensional numpy ``uint8`` arrays holding only 0 and 1: numpy
because the stages work on whole keys at once (a sample drawn by index, errors
counted by ``!=``), ``uint8`` because it is the smallest integer type and what
the hashing stages read. Every record copies the arrays it is given and makes
the copies read-only, so a record cannot change after a stage returned it.

Bases are small non-negative integers in ``uint8`` arrays: 0 is the Z
(rectilinear, key) basis and 1 the X (diagonal) basis in BB84 and BBM92; in
E91 they are the indices of the measurement settings (see
``qnetstack.application.qkd.sifting.E91Settings``).

The records are frozen dataclasses, not pydantic models: they hold arrays,
which pydantic would have to be told to accept and would not validate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Bits",
    "as_bits",
    "as_small_ints",
    "RawRecords",
    "DecoyRecords",
    "SiftedKey",
    "DecoyCounts",
    "DecoySifted",
    "BasisCounts",
    "ChshEstimate",
    "E91Sifted",
    "ParameterEstimate",
    "DecoyEstimate",
    "AbortReason",
    "KeyLengthResult",
    "check_probability",
    "check_count",
]

Bits = npt.NDArray[np.uint8]


def check_probability(name: str, value: float) -> float:
    """``value`` as a float, refused (naming ``name``) unless it is in the open interval (0, 1)."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name}: must be in (0, 1), got {value}")
    return float(value)


def check_count(name: str, value: float) -> float:
    """``value``, refused (naming ``name``) unless it is a finite number >= 0."""
    if not (value >= 0 and np.isfinite(value)):
        raise ValueError(f"{name}: must be a count >= 0, got {value}")
    return value


def _frozen(array: npt.NDArray) -> npt.NDArray:
    array.setflags(write=False)
    return array


def as_bits(values: npt.ArrayLike, name: str) -> Bits:
    """A read-only 1-D ``uint8`` copy of ``values``, refused unless every entry is 0 or 1."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of bits, got shape {array.shape}")
    if array.size and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: bits must be 0 or 1")
    return _frozen(array.astype(np.uint8, copy=True))


def as_small_ints(values: npt.ArrayLike, name: str) -> npt.NDArray[np.uint8]:
    """A read-only 1-D ``uint8`` copy of ``values`` (bases, settings, intensity classes), refused if any is outside 0..255."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255):
        raise ValueError(f"{name}: entries must be integers in 0..255")
    return _frozen(array.astype(np.uint8, copy=True))


def _as_flags(values: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of flags, got shape {array.shape}")
    if array.size and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: flags must be true/false")
    return _frozen(array.astype(np.bool_, copy=True))


@dataclass(frozen=True, kw_only=True)
class RawRecords:
    """One entry per round (a pulse sent, or a pair delivered), as both ends recorded it.

    ``detected`` says whether Bob registered the round at all (a lost pulse is
    a round with ``detected`` false; its ``bob_bit`` is meaningless); it is
    all true for pairs the network delivered.
    """

    alice_basis: npt.NDArray[np.uint8]
    alice_bit: Bits
    bob_basis: npt.NDArray[np.uint8]
    bob_bit: Bits
    detected: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "alice_basis", as_small_ints(self.alice_basis, "alice_basis"))
        set_(self, "alice_bit", as_bits(self.alice_bit, "alice_bit"))
        set_(self, "bob_basis", as_small_ints(self.bob_basis, "bob_basis"))
        set_(self, "bob_bit", as_bits(self.bob_bit, "bob_bit"))
        rounds = len(self.alice_basis)
        set_(self, "detected", _as_flags(self.detected, "detected"))
        for name in ("alice_bit", "bob_basis", "bob_bit", "detected"):
            if len(getattr(self, name)) != rounds:
                raise ValueError(f"{name}: has {len(getattr(self, name))} rounds, alice_basis has {rounds}")

    def __len__(self) -> int:
        return len(self.alice_basis)


@dataclass(frozen=True, kw_only=True)
class DecoyRecords(RawRecords):
    """Rounds of decoy-state BB84: also the intensity class Alice sent in each.

    ``intensities[c]`` is the mean photon number of class ``c`` and
    ``intensity_class[i]`` the class of round ``i``; ``signal_class`` names the
    class whose rounds make the key (Ma, Qi, Zhao & Lo 2005).
    """

    intensity_class: npt.NDArray[np.uint8]
    intensities: tuple[float, ...]
    signal_class: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        classes = as_small_ints(self.intensity_class, "intensity_class")
        object.__setattr__(self, "intensity_class", classes)
        object.__setattr__(self, "intensities", tuple(float(mu) for mu in self.intensities))
        if len(classes) != len(self):
            raise ValueError(f"intensity_class: has {len(classes)} rounds, alice_basis has {len(self)}")
        if any(not (mu >= 0.0 and np.isfinite(mu)) for mu in self.intensities):
            raise ValueError(f"intensities: mean photon numbers must be finite and >= 0, got {self.intensities}")
        if classes.size and classes.max() >= len(self.intensities):
            raise ValueError(f"intensity_class: class {int(classes.max())} has no entry in intensities")
        if not 0 <= self.signal_class < len(self.intensities):
            raise ValueError(f"signal_class: {self.signal_class} is not a class of intensities")

    @classmethod
    def from_pulses(cls, block: Any, intensities: tuple[float, ...], signal_class: int = 0) -> DecoyRecords:
        """The rounds of one block of the physical layer's pulse records
        (``qnetstack.physical.service.PulseRecords``, read through its accessors)."""
        return cls(
            alice_basis=block.alice_basis,
            alice_bit=block.alice_bit,
            bob_basis=block.bob_basis,
            bob_bit=block.bob_bit,
            detected=block.detected,
            intensity_class=block.intensity_class,
            intensities=intensities,
            signal_class=signal_class,
        )


@dataclass(frozen=True)
class SiftedKey:
    """Alice's and Bob's bits of the rounds kept, and the index of each round in the raw records."""

    alice: Bits
    bob: Bits
    rounds: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "alice", as_bits(self.alice, "alice"))
        object.__setattr__(self, "bob", as_bits(self.bob, "bob"))
        rounds = np.asarray(self.rounds, dtype=np.int64)
        if rounds.size == 0 and len(self.alice):
            rounds = np.arange(len(self.alice), dtype=np.int64)
        object.__setattr__(self, "rounds", _frozen(rounds.copy()))
        if not len(self.alice) == len(self.bob) == len(self.rounds):
            raise ValueError(f"bob: the two ends hold {len(self.alice)} and {len(self.bob)} bits ({len(self.rounds)} rounds)")

    def __len__(self) -> int:
        return len(self.alice)

    @property
    def errors(self) -> int:
        """Positions where the two ends differ (known only to a simulation, which sees both)."""
        return int(np.count_nonzero(self.alice != self.bob))


@dataclass(frozen=True)
class DecoyCounts:
    """Per intensity class, over the rounds whose bases agree: rounds sent, rounds Bob detected, detected rounds in error.

    The gain ``Q_k = detected/sent`` and error rate ``E_k = errors/detected``
    are the observables of Ma, Qi, Zhao & Lo (PRA 72, 012326, 2005).
    """

    intensities: tuple[float, ...]
    sent: tuple[int, ...]
    detected: tuple[int, ...]
    errors: tuple[int, ...]

    def __post_init__(self) -> None:
        size = len(self.intensities)
        for name in ("sent", "detected", "errors"):
            values = getattr(self, name)
            if len(values) != size:
                raise ValueError(f"{name}: {len(values)} entries for {size} intensities")
            if any(v < 0 for v in values):
                raise ValueError(f"{name}: counts must be >= 0, got {values}")
        for k in range(size):
            if self.detected[k] > self.sent[k] or self.errors[k] > self.detected[k]:
                raise ValueError(
                    f"detected: class {k} has errors <= detected <= sent violated ({self.errors[k]}, {self.detected[k]}, {self.sent[k]})"
                )

    def gain(self, k: int) -> float:
        """Q_k: the fraction of class-k rounds Bob detected."""
        return self.detected[k] / self.sent[k] if self.sent[k] else 0.0

    def error_rate(self, k: int) -> float:
        """E_k: the fraction of detected class-k rounds in error."""
        return self.errors[k] / self.detected[k] if self.detected[k] else 0.0


@dataclass(frozen=True)
class DecoySifted:
    """Decoy BB84 after sifting: the key (signal class, bases agree, detected) and the counts of every class."""

    key: SiftedKey
    counts: DecoyCounts
    signal_class: int


@dataclass(frozen=True)
class BasisCounts:
    """In one basis (both ends chose it), per intensity class: detections and detections in error (Lim et al. 2014's n_k and m_k)."""

    detections: tuple[int, ...]
    errors: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.detections) != len(self.errors):
            raise ValueError(f"errors: {len(self.errors)} entries for {len(self.detections)} classes")
        for name in ("detections", "errors"):
            if any(v < 0 for v in getattr(self, name)):
                raise ValueError(f"{name}: counts must be >= 0, got {getattr(self, name)}")
        if any(m > n for n, m in zip(self.detections, self.errors)):
            raise ValueError(f"errors: more errors than detections in a class ({self.errors} > {self.detections})")


@dataclass(frozen=True)
class ChshEstimate:
    """The CHSH value S = sum of sign * E(a, b) over the four setting pairs, and its standard error.

    ``correlators[(a, b)] = (E, rounds)``; E is the mean of (-1)^(x xor y).
    """

    s: float
    standard_error: float
    correlators: dict[tuple[int, int], tuple[float, int]]


@dataclass(frozen=True)
class E91Sifted:
    """E91 after sifting: the key rounds and the CHSH test rounds' estimate."""

    key: SiftedKey
    chsh: ChshEstimate


class AbortReason(str, enum.Enum):
    """Why a stage refuses to go on: no key may be output after one of these."""

    QBER_ABOVE_THRESHOLD = "qber_above_threshold"
    NO_POSITIVE_KEY_LENGTH = "no_positive_key_length"
    SINGLE_PHOTON_BOUND_EMPTY = "single_photon_bound_empty"


@dataclass(frozen=True)
class ParameterEstimate:
    """The QBER estimated on a disclosed random sample, and the key left after removing it.

    ``qber_upper`` bounds the error rate of the remaining key except with
    probability ``epsilon``; ``abort`` is set when it exceeds ``threshold``.
    """

    key: SiftedKey
    sample_size: int
    sample_errors: int
    qber: float
    qber_upper: float
    epsilon: float
    threshold: float
    abort: AbortReason | None


@dataclass(frozen=True)
class DecoyEstimate:
    """Bounds on the single-photon contribution (vacuum + weak decoy, Ma, Qi, Zhao & Lo 2005).

    ``standard_deviations`` is 0 for the estimate from the observed rates as
    they are, or the number u of standard deviations each observed rate was
    moved in the unfavourable direction (Gaussian fluctuations, as Ma et al. 2005 treat them).
    """

    signal: float
    decoy: float
    gain_signal: float
    qber_signal: float
    y0: float
    y1_lower: float
    q1_lower: float
    e1_upper: float
    standard_deviations: float


@dataclass(frozen=True)
class KeyLengthResult:
    """A secret key length ``length >= 0`` bits and the ε's it holds for; ``abort`` set (and length 0) when no key may be made.

    ``terms`` lists the named terms of the bound (bits), for reports.
    """

    length: int
    epsilon_sec: float
    epsilon_cor: float
    abort: AbortReason | None = None
    terms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"length: a key length is never negative, got {self.length}")
        if self.abort is not None and self.length != 0:
            raise ValueError(f"length: an aborted result has length 0, got {self.length}")
