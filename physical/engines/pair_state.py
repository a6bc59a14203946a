"""One entangled pair, held in the cheapest exact representation: Bell-diagonal
while it can be, a density matrix once it cannot.

Theory of operation
-------------------
A :class:`PairState` is the state of two qubits "A" and "B" (tensor order A, B,
as in :mod:`qnetstack.physical.engines.world`). It starts in one of two representations and
can change once, one way:

* **Bell-diagonal** (:class:`qnetstack.physical.engines.bell_diagonal.BellDiagonal`): four
  weights on the Bell states (Bennett, DiVincenzo, Smolin, Wootters, PRA 54,
  3824 (1996), Sec. III). The set is closed under Pauli channels on either
  qubit — depolarising, bit/phase flip (Nielsen & Chuang, *Quantum Computation
  and Quantum Information*, 2000, §8.3.3-8.3.4) —, under pure-dephasing
  memory noise (phase damping with coherence factor ``exp(-t/T2)`` is the
  phase flip with ``p_Z = (1 - exp(-t/T2))/2``, ibid. §8.3.6), under Pauli
  frame corrections and under entanglement swapping, whose outcomes are
  uniform and whose output weights are the XOR-convolution of the input
  weights (Dür, Briegel, Cirac, Zoller, PRA 59, 169 (1999), Sec. III; Bowen &
  Bose, PRL 87, 267901 (2001)). The derivations are in the
  :mod:`qnetstack.physical.engines.bell_diagonal` docstring.
* **Density matrix**: a 4x4 complex array, the same physics as the reference
  engine :class:`qnetstack.physical.engines.world.QuantumWorld` — Kraus operators
  ``ρ -> Σ K ρ K†`` lifted onto the pair with a Kronecker product; memory
  noise uses :func:`qnetstack.physical.components.memory_noise.memory_kraus` (amplitude damping with
  ``γ = 1 - exp(-t/T1)`` then phase damping, N&C 2000, §8.3.5-8.3.6); a
  swap projects the middle qubits of ``ρ_AB ⊗ ρ_CD`` on the outcome's Bell
  state and renormalises by the Born probability (N&C 2000, §2.2.3).

**When it converts.** Every operation asks :func:`qnetstack.physical.engines.bell_diagonal.choose_engine`
whether it keeps the pair Bell-diagonal. Memory noise with a finite T1 does
not (amplitude damping unbalances ``<00|ρ|00>`` against ``<11|ρ|11>``,
creating Bell-basis coherences), nor does an arbitrary gate or channel, nor
an initial state with Bell-basis coherences (e.g. the single-click
post-herald state with its ``|11>`` term; Humphreys et al., Nature 558, 268
(2018)), nor a swap with a pair that is already a density matrix. Then, and
only then, the pair converts itself to the density matrix ``Σ_b w_b |B_b><B_b|``
— an exact change of representation, nothing is approximated — and records
why in :attr:`PairState.conversion_reason`. It never converts back: turning
a state with coherences into Bell-diagonal form would be a twirl (Bennett et
al. 1996), which changes the physics. An operation that is the identity
(waiting 0 ns) converts nothing.

**Ownership.** A pair is a physical object, not a value: operations change it
in place, it cannot be copied (``copy``/``deepcopy``/``pickle`` raise), and a
Bell measurement, a swap (which Bell-measures one qubit of each input) or
:meth:`PairState.move_into` a :class:`~qnetstack.physical.engines.world.QuantumWorld` *consumes*
it: any later use raises :class:`PairConsumedError` saying what consumed it.
That is the no-cloning theorem (Wootters & Zurek, Nature 299, 802 (1982))
enforced by the API, as :mod:`qnetstack.physical.engines.world` does for qubit ids.

Reads (:meth:`PairState.fidelity`, :meth:`PairState.to_density_matrix`) are
simulation oracles: they do not disturb the pair.

Cost: Bell-diagonal operations are a few microseconds (four-element arrays);
density-matrix ones are 4x4 matrix products, a swap a 16x16 contraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from qnetstack.physical.components.memory_noise import memory_kraus_arrays
from qnetstack.physical.engines.bell_diagonal import (
    BellDiagonal,
    Engine,
    NotBellDiagonalError,
    Qubit,
    as_pair_matrix,
    check_qubit,
    choose_engine,
)
from qnetstack.physical.engines.world import NoiseTimes, QuantumWorld, WorldError, bell_vector, check_memory_noise
from qnetstack.physical.lazy_qutip import as_qobj, is_qobj
from qnetstack.physical.service import BellState

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = ["PairState", "PairConsumedError", "SwapResult"]

_ATOL = 1e-9
_BELLS: tuple[BellState, ...] = tuple(BellState)
_BELL_VECS = {b: bell_vector(b) for b in _BELLS}
_I2 = np.eye(2, dtype=complex)
_PAULIS = {
    "I": _I2,
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
_SWAP_AB = np.eye(4, dtype=complex)[[0, 2, 1, 3]]  # exchanges the two qubits


class PairConsumedError(WorldError):
    """A pair that was Bell-measured, swapped or moved into a world, used again."""


class SwapResult(NamedTuple):
    """The outcome of :meth:`PairState.swap`: the new (A, D) pair, the Bell
    measurement's outcome, and that outcome's probability."""

    pair: PairState
    outcome: BellState
    probability: float


class PairState:
    """A two-qubit pair (A, B): Bell-diagonal while only Pauli physics touches it,
    a density matrix after the first operation that is not (module docstring)."""

    __slots__ = ("_bd", "_rho", "_reason", "_consumed_by")

    def __init__(self, state: BellDiagonal) -> None:
        if not isinstance(state, BellDiagonal):
            raise TypeError(f"PairState() takes a BellDiagonal; use PairState.from_density_matrix for a {type(state).__name__}")
        self._bd: BellDiagonal | None = state
        self._rho: np.ndarray | None = None
        self._reason: str | None = None
        self._consumed_by: str | None = None

    # ---------------------------------------------------------- constructors

    @classmethod
    def bell(cls, bell_state: BellState = BellState.PHI_PLUS) -> PairState:
        """A perfect Bell pair."""
        return cls(BellDiagonal.pure(bell_state))

    @classmethod
    def werner(cls, fidelity: float, bell_state: BellState = BellState.PHI_PLUS) -> PairState:
        """A Werner pair (Bennett et al., PRA 54, 3824 (1996)); see :meth:`BellDiagonal.werner`."""
        return cls(BellDiagonal.werner(fidelity, bell_state))

    @classmethod
    def from_density_matrix(cls, rho: np.ndarray | Qobj, atol: float = _ATOL) -> PairState:
        """A pair in the state ``rho`` (4x4, qubit order A, B): Bell-diagonal if
        ``rho`` is (within ``atol``), else a density matrix, the reason recorded
        (e.g. a single-click herald state)."""
        mat = as_pair_matrix(rho, "rho")
        if not np.allclose(mat, mat.conj().T, atol=atol, rtol=0) or np.linalg.eigvalsh(mat).min() < -atol:
            raise ValueError("rho is not a density matrix (Hermitian, positive semidefinite)")
        if abs(np.trace(mat) - 1) > atol:
            raise ValueError(f"rho must have unit trace, got {np.trace(mat).real:.12g}")
        try:
            return cls(BellDiagonal.from_density_matrix(mat, atol=atol))
        except NotBellDiagonalError as exc:
            return cls._dense(_hermitian(mat), f"initial state is not Bell-diagonal ({exc})")

    @classmethod
    def _dense(cls, rho: np.ndarray, reason: str) -> PairState:
        pair = cls(BellDiagonal.pure())
        pair._bd, pair._rho, pair._reason = None, rho, reason
        return pair

    # ---------------------------------------------------------- inspection

    @property
    def engine(self) -> Engine:
        """The representation in use: "bell-diagonal" or "density-matrix"."""
        return "bell-diagonal" if self._bd is not None else "density-matrix"

    @property
    def conversion_reason(self) -> str | None:
        """Why the pair is a density matrix (None while Bell-diagonal)."""
        return self._reason

    @property
    def bell_diagonal(self) -> BellDiagonal | None:
        """The Bell-diagonal value while in that representation, else None."""
        self._check_live()
        return self._bd

    @property
    def consumed(self) -> bool:
        return self._consumed_by is not None

    def fidelity(self, bell_state: BellState = BellState.PHI_PLUS) -> float:
        """Oracle: ``<B|ρ|B>`` for the Bell state ``bell_state``."""
        self._check_live()
        if self._bd is not None:
            return self._bd.fidelity(bell_state)
        vec = _BELL_VECS[BellState(bell_state)]
        return _probability(float(np.real(vec.conj() @ self._rho @ vec)), f"fidelity to {bell_state.value}")

    def to_density_matrix(self) -> np.ndarray:
        """Oracle: the 4x4 density matrix (a fresh array; qubit order A, B)."""
        self._check_live()
        if self._bd is not None:
            return self._bd.to_density_matrix()
        assert self._rho is not None  # a live pair holds exactly one of the two forms
        return self._rho.copy()

    def to_qobj(self) -> Qobj:
        """Oracle: the density matrix as a QuTiP ``Qobj`` with dims [[2, 2], [2, 2]]."""
        return as_qobj(self.to_density_matrix(), [[2, 2], [2, 2]])

    # ---------------------------------------------------------- conversion

    def convert_to_density_matrix(self, reason: str) -> None:
        """Switch to the density-matrix representation, recording ``reason``.

        Exact (the density matrix of the Bell-diagonal state). Does nothing if
        already converted: the first reason is the one kept."""
        self._check_live()
        if self._bd is None:
            return
        if not reason:
            raise ValueError("give the reason for converting to a density matrix")
        self._rho = self._bd.to_density_matrix()
        self._bd = None
        self._reason = reason

    def _convert_if(self, t1_ns: float | None, needs_non_pauli: bool, reason: str) -> None:
        if self._bd is not None and choose_engine(t1_ns, needs_non_pauli) == "density-matrix":
            self.convert_to_density_matrix(reason)

    # ---------------------------------------------------------- Pauli physics

    def pauli_channel(self, p_i: float, p_x: float, p_y: float, p_z: float, qubit: Qubit) -> None:
        """``ρ -> p_I ρ + p_X XρX + p_Y YρY + p_Z ZρZ`` on ``qubit`` (N&C 2000, §8.3.3-8.3.4)."""
        self._check_live()
        probs = _pauli_probabilities(p_i, p_x, p_y, p_z)
        check_qubit(qubit)
        if self._bd is not None:
            self._bd = self._bd.pauli_channel(*probs, qubit)
        else:
            kraus = [math.sqrt(p) * _PAULIS[name] for p, name in zip(probs, "IXYZ") if p > 0]
            self._apply_local(kraus, qubit)

    def depolarise(self, p: float, qubit: Qubit) -> None:
        """``ρ -> (1-p) ρ + p I/2`` on ``qubit`` (N&C 2000, §8.3.4): the Pauli
        channel with ``p_I = 1 - 3p/4``, ``p_X = p_Y = p_Z = p/4``."""
        _check_probability("p", p)
        self.pauli_channel(1 - 0.75 * p, 0.25 * p, 0.25 * p, 0.25 * p, qubit)

    def dephase(self, p: float, qubit: Qubit) -> None:
        """Phase flip ``ρ -> (1-p) ρ + p ZρZ`` on ``qubit`` (N&C 2000, §8.3.3)."""
        _check_probability("p", p)
        self.pauli_channel(1 - p, 0.0, 0.0, p, qubit)

    def correct_frame(self, frame: BellState) -> None:
        """Apply the Pauli correction ``X^x Z^z`` for ``frame`` = (x, z) to qubit B
        (as after a swap with that outcome): weight on ``b`` moves to
        ``b.compose(frame)`` (:meth:`BellDiagonal.relabel`)."""
        self._check_live()
        frame = BellState(frame)
        if self._bd is not None:
            self._bd = self._bd.relabel(frame)
            return
        x, z = frame.pauli_bits
        op = np.linalg.matrix_power(_PAULIS["X"], x) @ np.linalg.matrix_power(_PAULIS["Z"], z)
        self._apply_local([op], "B")

    def memory_noise(self, elapsed_ns: float, t1_ns: float | None, t2_ns: float | None, qubit: Qubit) -> None:
        """``qubit`` waits ``elapsed_ns`` in a memory with ``(t1_ns, t2_ns)``
        (None: no decay of that kind; T2 <= 2·T1), the channel of
        :func:`qnetstack.physical.components.memory_noise.memory_kraus` (N&C 2000, §8.3.5-8.3.6).

        T2 alone is a phase flip and keeps the pair Bell-diagonal; a finite T1
        (amplitude damping) converts it to a density matrix first."""
        self._check_live()
        check_qubit(qubit)
        if not elapsed_ns >= 0:
            raise ValueError(f"elapsed_ns must be >= 0, got {elapsed_ns}")
        check_memory_noise(t1_ns, t2_ns)
        if elapsed_ns == 0 or (t1_ns is None and t2_ns is None):
            return  # the identity channel
        self._convert_if(t1_ns, False, f"memory noise with finite T1 = {t1_ns} ns (amplitude damping) on qubit {qubit}")
        if self._bd is not None:
            self._bd = self._bd.memory_noise(elapsed_ns, None, t2_ns, qubit)
        else:
            self._apply_local(memory_kraus_arrays(elapsed_ns, t1_ns, t2_ns), qubit)

    # ---------------------------------------------------------- general physics (converts)

    def apply_unitary(self, unitary: Qobj | np.ndarray, qubits: Sequence[Qubit]) -> None:
        """An arbitrary gate on ``qubits`` (["A"], ["B"], ["A", "B"] or ["B", "A"],
        the gate's subsystems in that order). Converts to a density matrix."""
        self._apply_general([unitary], qubits, "gate")

    def apply_kraus(self, kraus: Sequence[Qobj | np.ndarray], qubits: Sequence[Qubit]) -> None:
        """An arbitrary trace-preserving channel ``ρ -> Σ K ρ K†`` on ``qubits``
        (as :meth:`apply_unitary`). Converts to a density matrix."""
        self._apply_general(kraus, qubits, "channel")

    def _apply_general(self, kraus: Sequence[Qobj | np.ndarray], qubits: Sequence[Qubit], _what: str) -> None:
        self._check_live()
        qubits = list(qubits)
        if qubits not in (["A"], ["B"], ["A", "B"], ["B", "A"]):
            raise ValueError(f"qubits must be ['A'], ['B'], ['A', 'B'] or ['B', 'A'], got {qubits}")
        size = 2 ** len(qubits)
        arrays = []
        for k in kraus:
            a = k.full() if is_qobj(k) else np.asarray(k, dtype=complex)
            if a.shape != (size, size):
                raise ValueError(f"a {_what} on {len(qubits)} qubit(s) needs {size}x{size} operators, got {a.shape}")
            arrays.append(a)
        if not arrays:
            raise ValueError("a channel needs at least one Kraus operator")
        if not np.allclose(sum(a.conj().T @ a for a in arrays), np.eye(size), atol=_ATOL, rtol=0):
            raise ValueError("operator is not unitary" if _what == "gate" else "Kraus operators do not satisfy Σ K†K = I")
        self._convert_if(None, True, f"arbitrary {_what} on qubit(s) {', '.join(qubits)}")
        if len(qubits) == 1:
            self._apply_local(arrays, qubits[0])
            return
        if qubits == ["B", "A"]:
            arrays = [_SWAP_AB @ a @ _SWAP_AB for a in arrays]
        self._rho = _hermitian(sum(a @ self._rho @ a.conj().T for a in arrays))

    # ---------------------------------------------------------- measurements (consume)

    def swap(
        self,
        other: PairState,
        outcome: BellState | None = None,
        rng: np.random.Generator | None = None,
    ) -> SwapResult:
        """Entanglement swapping. This pair is (A, B), ``other`` is (C, D); a Bell
        measurement of (B, C) — B first, outcome convention of
        :meth:`BellDiagonal.swap` — leaves (A, D), returned as a new pair.

        Give ``outcome`` to post-select it, or ``rng`` to sample it (Born
        rule). Both inputs are consumed. Bell-diagonal inputs give a
        Bell-diagonal output, each outcome with probability 1/4 (Dür et al.
        1999); otherwise the output is a density matrix. Raises
        :class:`WorldError` if a given outcome has probability 0."""
        if not isinstance(other, PairState):
            raise TypeError(f"can only swap with another PairState, got {type(other).__name__}")
        if other is self:
            raise ValueError("cannot swap a pair with itself")
        self._check_live()
        other._check_live()
        if (outcome is None) == (rng is None):
            raise ValueError("give exactly one of outcome (post-select) and rng (sample)")
        if self._bd is not None and other._bd is not None:
            probs = np.full(4, 0.25)
        else:
            rho = np.kron(self.to_density_matrix(), other.to_density_matrix()).reshape([2] * 8)
            # <m|_(BC) ρ |m>_(BC); indices a b c d of the kets, e f g h of the bras
            post = {
                b: np.einsum("bc,abcdefgh,fg->adeh", _BELL_VECS[b].reshape(2, 2).conj(), rho, _BELL_VECS[b].reshape(2, 2)).reshape(4, 4)
                for b in _BELLS
            }
            probs = np.array([max(0.0, float(np.real(np.trace(post[b])))) for b in _BELLS])
        if outcome is None:
            assert rng is not None  # exactly one of the two was given (checked above)
            outcome = _BELLS[_sample(probs, rng)]
        outcome = BellState(outcome)
        p = float(probs[_BELLS.index(outcome)])
        if p <= 1e-15:
            raise WorldError(f"swap outcome {outcome.value} has probability 0")
        if self._bd is not None and other._bd is not None:
            result = PairState(self._bd.swap(other._bd, outcome))
        else:
            reasons = "; ".join(r for r in (self._reason, other._reason) if r)
            result = PairState._dense(_hermitian(post[outcome]) / p, f"swapped with a density-matrix pair ({reasons})")
        event = f"consumed by an entanglement swap (outcome {outcome.value})"
        self._consumed_by = other._consumed_by = event
        return SwapResult(result, outcome, p)

    def measure_bell(self, rng: np.random.Generator) -> BellState:
        """Measure the pair in the Bell basis (Born rule); consumes the pair."""
        self._check_live()
        probs = np.array([self.fidelity(b) for b in _BELLS])
        outcome = _BELLS[_sample(probs, rng)]
        self._consumed_by = f"Bell-measured (outcome {outcome.value})"
        return outcome

    def move_into(self, world: QuantumWorld, now_ns: int, noise: NoiseTimes | None = None) -> list[int]:
        """Hand the pair to ``world`` as two new qubits ``[A, B]`` (``noise`` as in
        :meth:`QuantumWorld.new_qubits`); consumes the pair."""
        self._check_live()
        qids = world.new_qubits(self.to_density_matrix(), now_ns, noise)
        self._consumed_by = f"moved into a QuantumWorld as qubits {qids}"
        return qids

    # ---------------------------------------------------------- internals

    def _apply_local(self, kraus: Sequence[np.ndarray], qubit: Qubit) -> None:
        lifted = [np.kron(k, _I2) if qubit == "A" else np.kron(_I2, k) for k in kraus]
        self._rho = _hermitian(sum(k @ self._rho @ k.conj().T for k in lifted))

    def _check_live(self) -> None:
        if self._consumed_by is not None:
            raise PairConsumedError(
                f"this pair was {self._consumed_by}; a measured, swapped or moved pair cannot be used again "
                "(no-cloning: a pair is never copied)"
            )

    def __copy__(self) -> PairState:
        raise TypeError("a PairState cannot be copied (no-cloning); read it with to_density_matrix()")

    def __deepcopy__(self, memo: dict) -> PairState:
        return self.__copy__()

    def __reduce__(self):
        return self.__copy__()

    def __repr__(self) -> str:
        if self._consumed_by is not None:
            return f"PairState(<{self._consumed_by}>)"
        if self._bd is not None:
            return f"PairState({self._bd!r})"
        return f"PairState(density matrix, F(PHI_PLUS)={self.fidelity():.6g}; converted: {self._reason})"


def _hermitian(mat: np.ndarray) -> np.ndarray:
    return (mat + mat.conj().T) * 0.5


def _probability(value: float, what: str) -> float:
    # rounding may leave a probability 1e-16 outside [0, 1]; anything more is a bug, not rounding
    if not -_ATOL <= value <= 1 + _ATOL:
        raise WorldError(f"internal error: {what} = {value!r} is not a probability")
    return min(1.0, max(0.0, value))


def _sample(probs: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(probs)
    k = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(k, len(probs) - 1)


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def _pauli_probabilities(p_i: float, p_x: float, p_y: float, p_z: float) -> tuple[float, float, float, float]:
    for name, p in (("p_i", p_i), ("p_x", p_x), ("p_y", p_y), ("p_z", p_z)):
        if not -1e-12 <= p <= 1.0 + 1e-12:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    total = p_i + p_x + p_y + p_z
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"Pauli channel probabilities must sum to 1, got {total!r}")
    probs = [min(1.0, max(0.0, p)) / total for p in (p_i, p_x, p_y, p_z)]
    return probs[0], probs[1], probs[2], probs[3]
