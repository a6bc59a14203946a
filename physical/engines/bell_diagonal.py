"""A fast state engine for two-qubit pairs under Pauli noise: Bell-diagonal states.

Theory of operation
-------------------
A two-qubit state is *Bell-diagonal* when it is a mixture of the four Bell
states, ``ρ = Σ_b w_b |B_b><B_b|`` with ``w`` a probability vector (Bennett,
DiVincenzo, Smolin, Wootters, PRA 54, 3824 (1996), Sec. III: the "Bell-diagonal"
states; the Werner state is the special case ``w = (F, (1-F)/3, (1-F)/3,
(1-F)/3)``). Such a state is four numbers instead of a 4x4 complex matrix, and
everything a repeater chain does to its pairs maps four numbers onto four
numbers:

* **Frame convention** (the project's, see :class:`qnetstack.physical.service.BellState`
  and :func:`qnetstack.physical.engines.world.bell_ket`): ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>``. The
  weights are stored in the order of the enum, PHI_PLUS (0,0), PHI_MINUS (0,1),
  PSI_PLUS (1,0), PSI_MINUS (1,1), so the index of a Bell state is ``2x + z``
  and composing frames (XOR of the bits) is XOR of the indices.
* **Pauli channels** (Nielsen & Chuang, *Quantum Computation and Quantum
  Information*, 2000, §8.3.3-8.3.4): ``ρ -> Σ_P p_P (P ρ P)`` on one qubit.
  A Pauli on the second qubit shifts the frame, ``(I ⊗ P_(a,c)) |B(x,z)> ∝
  |B(x⊕a, z⊕c)>``; a Pauli on the first qubit does the same, because
  ``(P ⊗ I)|Φ+> = (I ⊗ P^T)|Φ+>`` and ``X^T = X, Z^T = Z, Y^T = -Y`` differ
  from P by a global phase at most. So a Pauli channel on either qubit is the
  XOR-convolution ``w'_k = Σ_P p_P w_(k ⊕ P)`` — a Bell-diagonal state stays
  Bell-diagonal, and the qubit it acts on does not matter.
* **Entanglement swapping** (Dür, Briegel, Cirac, Zoller, PRA 59, 169 (1999),
  Sec. III; Bowen & Bose, PRL 87, 267901 (2001)): pairs (A, B) and (C, D), a
  Bell measurement on (B, C) with outcome ``m``. For Bell inputs ``b1``, ``b2``
  every outcome has probability 1/4 and leaves (A, D) in ``b1 ⊕ m ⊕ b2`` (the
  frame composition of :meth:`BellState.compose`, the same bookkeeping as the
  network layer's). By linearity, Bell-diagonal inputs give
  ``w'_k = Σ_b w1_b w2_(k ⊕ m ⊕ b)``: the XOR-convolution of the weights,
  relabelled by the outcome. For Werner inputs this is the textbook
  ``F = F1 F2 + (1-F1)(1-F2)/3`` (Dür et al. 1999, Sec. III, with perfect
  operations).
* **Memory dephasing** (Nielsen & Chuang 2000, §8.3.6): phase damping with
  coherence factor ``c = exp(-t/T2)`` (what :func:`qnetstack.physical.components.memory_noise.memory_kraus`
  does with ``t1_ns=None``) equals the phase-flip channel with ``p_Z = (1-c)/2``.

What it cannot do: **amplitude damping** (finite T1). It moves population from
|1> to |0> on one qubit, which unbalances ``<00|ρ|00>`` against ``<11|ρ|11>``
and ``<01|ρ|01>`` against ``<10|ρ|10>``, i.e. creates the Bell-basis
coherences ``<Φ+|ρ|Φ->`` and ``<Ψ+|ρ|Ψ->`` — the state leaves the
Bell-diagonal set (likewise a single-click post-herald state with its |11>
term, or any non-Pauli gate).
This engine refuses such channels (:class:`NotBellDiagonalError`), and
:func:`choose_engine` sends those cases to the QuTiP density-matrix reference
(:mod:`qnetstack.physical.engines.world`). Forcing such a state into Bell-diagonal form
(twirling, Bennett et al. 1996) would change its physics, so it is never done
silently: :meth:`BellDiagonal.from_density_matrix` refuses instead.

**Why no backend runs on it.** Both backends keep every state of a run in
the QuTiP :class:`~qnetstack.physical.engines.world.QuantumWorld`, and this
engine stays off that path (it serves analyses, benchmarks and the
:class:`~qnetstack.physical.engines.pair_state.PairState` tests) because the
run path needs four things it cannot represent:

1. *Single qubits and states of more than two qubits.* The device service
   (:mod:`qnetstack.physical.service`) addresses memory qubits one by one:
   ``InitQubit`` prepares a lone qubit in any Bloch state, ``Measure``
   of one half of a pair leaves its partner as a lone qubit, and
   teleportation Bell-measures a lone qubit with half of a pair, so three
   qubits share one state for a while. Four Bell weights describe exactly
   one pair, nothing else.
2. *Non-Pauli gates.* ``ApplyGate`` offers H and S. ``(H ⊗ I)|Φ+>`` is
   not a Bell state, so the first H on a pair's qubit leaves the set.
3. *Amplitude damping.* A memory with a finite T1 (``MemoryParams.t1_ns``;
   e.g. the NV-electron and SiV presets of
   :mod:`qnetstack.physical.components.memories`) relaxes with a channel
   that is not a Pauli channel (above).
4. *The heralded states themselves.* The single-click post-herald state has
   weight on |11> (both nodes bright, one photon lost) and none on |00>, so
   it has Bell-basis coherences (Humphreys et al., Nature 558, 268 (2018),
   Methods; :func:`qnetstack.physical.schemes.single_click.unnormalised_herald_state`),
   and the QuTiP backend keeps the photons themselves (0/1-photon modes) in
   the world until the station measures them.

Serving a run from this engine would therefore need every pair's history to
avoid all four — no T1, no H or S, no lone qubit, a Bell-diagonal herald —
and a second store for everything else, with states moving between them; a
:class:`PairState` does that for one pair, but a backend would have to do it
for every qubit of a network. Until a backend needs that speed, the one
world is the simpler and always exact choice.

Cost: every operation is one or two numpy calls on 4-element arrays
(no QuTiP inside operations), a few microseconds; conversions to and from
density matrices are the only place QuTiP appears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from qnetstack.physical.engines.world import bell_vector
from qnetstack.physical.lazy_qutip import as_qobj, is_qobj
from qnetstack.physical.service import BellState

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = [
    "BellDiagonal",
    "Engine",
    "NotBellDiagonalError",
    "Qubit",
    "choose_engine",
    "as_pair_matrix",
    "check_qubit",
]

Engine = Literal["bell-diagonal", "density-matrix"]
Qubit = Literal["A", "B"]

_ORDER: tuple[BellState, ...] = tuple(BellState)  # PHI_PLUS, PHI_MINUS, PSI_PLUS, PSI_MINUS
_INDEX = {b: 2 * b.pauli_bits[0] + b.pauli_bits[1] for b in _ORDER}
assert [_INDEX[b] for b in _ORDER] == [0, 1, 2, 3], "BellState order must be (x, z) = 00, 01, 10, 11"
_QUBITS = ("A", "B")

_NEG_TOL = 1e-12  # a weight this far below 0 is rounding and is clipped
_SUM_TOL = 1e-9  # weights must sum to 1 within this

# Columns are the Bell kets in enum order, taken from the engine so the two cannot drift apart.
_BELL_BASIS = np.column_stack([bell_vector(b) for b in _ORDER])
_BELL_BASIS_H = _BELL_BASIS.conj().T

# _XOR[m][k, i] = k ⊕ i ⊕ m, so (v.take(_XOR[m]) @ u)_k = Σ_i u_i v_(k ⊕ m ⊕ i) = Σ_(i ⊕ j = k ⊕ m) u_i v_j:
# the XOR-convolution of u and v, relabelled by m.
_XOR = tuple(np.array([[k ^ i ^ m for i in range(4)] for k in range(4)]) for m in range(4))
# _PERM[f] is the index permutation k -> k ⊕ f (a Pauli frame shift)
_PERM = tuple(np.array([k ^ f for k in range(4)]) for f in range(4))
for _table in (*_XOR, *_PERM):
    _table.setflags(write=False)


class NotBellDiagonalError(ValueError):
    """A state or channel this engine cannot represent; use the density-matrix engine."""


def choose_engine(t1_ns: float | None, needs_non_pauli: bool) -> Engine:
    """Which state engine a two-qubit pair needs.

    The rule: ``"bell-diagonal"`` when the pair only ever sees Pauli channels
    (depolarising, dephasing, T2 pure dephasing), Bell measurements (swaps)
    and Pauli frame corrections — the operations under which Bell-diagonal
    states are closed (see the module docstring) — that is, when its memories
    have no amplitude damping (``t1_ns`` is ``None`` or infinite) and the
    caller needs no non-Pauli operation (``needs_non_pauli=False``: no
    arbitrary gates, no non-Bell-diagonal initial state such as a single-click
    post-herald state). Otherwise ``"density-matrix"``: the QuTiP reference
    (:mod:`qnetstack.physical.engines.world`), which represents everything exactly.
    :class:`qnetstack.physical.engines.pair_state.PairState` asks this before every operation
    and converts itself when the answer changes.
    """
    if t1_ns is not None and not math.isinf(t1_ns):
        if t1_ns <= 0 or math.isnan(t1_ns):
            raise ValueError(f"t1_ns must be positive (or None for no amplitude damping), got {t1_ns}")
        return "density-matrix"
    return "density-matrix" if needs_non_pauli else "bell-diagonal"


class BellDiagonal:
    """An immutable Bell-diagonal two-qubit state: four weights in BellState order.

    Build one with :meth:`pure`, :meth:`werner`, :meth:`from_weights` or
    :meth:`from_density_matrix`. Every operation returns a new value. The
    first qubit is "A", the second "B", in the tensor order of
    :mod:`qnetstack.physical.engines.world` (``|a b>`` with A the most significant bit).
    """

    __slots__ = ("_w",)
    _w: np.ndarray

    def __init__(self, weights: Sequence[float] | np.ndarray) -> None:
        object.__setattr__(self, "_w", _validated(weights))

    @classmethod
    def _make(cls, w: np.ndarray) -> BellDiagonal:
        # trusted constructor for operation results: no validation on the hot path
        out = object.__new__(cls)
        w.setflags(write=False)
        object.__setattr__(out, "_w", w)
        return out

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # ---------------------------------------------------------- constructors

    @classmethod
    def pure(cls, bell_state: BellState = BellState.PHI_PLUS) -> BellDiagonal:
        """The pure Bell state ``|B><B|``."""
        w = np.zeros(4)
        w[_INDEX[BellState(bell_state)]] = 1.0
        return cls._make(w)

    @classmethod
    def werner(cls, fidelity: float, bell_state: BellState = BellState.PHI_PLUS) -> BellDiagonal:
        """The Werner state of the given fidelity to ``bell_state``: weight F on it,
        (1-F)/3 on each other Bell state (Bennett et al., PRA 54, 3824 (1996), Sec. III,
        written there for the singlet; any Bell state by a local Pauli frame)."""
        f = float(fidelity)
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {fidelity}")
        w = np.full(4, (1.0 - f) / 3.0)
        w[_INDEX[BellState(bell_state)]] = f
        return cls._make(w)

    @classmethod
    def from_weights(cls, weights: Sequence[float] | np.ndarray | Mapping[BellState, float]) -> BellDiagonal:
        """From 4 weights ordered PHI_PLUS, PHI_MINUS, PSI_PLUS, PSI_MINUS, or a
        mapping ``{BellState: weight}`` (missing states weigh 0).

        Weights must be ≥ 0 (within 1e-12, then clipped) and sum to 1 (within
        1e-9, then renormalised)."""
        if isinstance(weights, Mapping):
            vec = [0.0] * 4
            for key, value in weights.items():
                vec[_INDEX[BellState(key)]] = value
            weights = vec
        return cls(weights)

    @classmethod
    def from_density_matrix(cls, rho: np.ndarray | Qobj, atol: float = 1e-9) -> BellDiagonal:
        """The Bell-diagonal state equal to ``rho`` (4x4 array or QuTiP ``Qobj``
        with dims [[2, 2], [2, 2]], qubit order A, B).

        ``rho`` is written in the Bell basis, ``M = B† ρ B``; its diagonal is
        the weights. Raises :class:`NotBellDiagonalError` (a ``ValueError``)
        naming the largest off-diagonal element ``<B_i|ρ|B_j>`` if it exceeds
        ``atol``, or if the diagonal is not a probability vector within ``atol``.
        """
        mat = as_pair_matrix(rho, "rho")
        m = _BELL_BASIS_H @ mat @ _BELL_BASIS
        off = np.abs(m - np.diag(np.diag(m)))
        i, j = np.unravel_index(int(np.argmax(off)), off.shape)
        if off[i, j] > atol:
            raise NotBellDiagonalError(
                f"rho is not Bell-diagonal: its largest off-diagonal element in the Bell basis is "
                f"<{_ORDER[i].value}|rho|{_ORDER[j].value}> = {complex(m[i, j]):.6g} (|.| = {off[i, j]:.3g} > "
                f"atol {atol:g}); use the density-matrix engine"
            )
        diag = np.diag(m)
        worst = int(np.argmax(np.abs(diag.imag)))
        if abs(diag.imag[worst]) > atol:
            raise NotBellDiagonalError(
                f"rho is not Hermitian: <{_ORDER[worst].value}|rho|{_ORDER[worst].value}> = {complex(diag[worst]):.6g}"
            )
        w = diag.real.copy()
        if w.min() < -atol:
            k = int(np.argmin(w))
            raise NotBellDiagonalError(f"rho is not positive: weight of {_ORDER[k].value} is {w[k]:.6g}")
        if abs(w.sum() - 1.0) > atol:
            raise NotBellDiagonalError(f"rho must have unit trace, got {w.sum():.12g}")
        w = np.clip(w, 0.0, None)
        return cls._make(w / w.sum())

    # ---------------------------------------------------------- conversions

    @property
    def weights(self) -> np.ndarray:
        """The 4 weights in BellState order (a read-only array)."""
        return self._w.view()

    def as_dict(self) -> dict[BellState, float]:
        return {b: float(self._w[k]) for k, b in enumerate(_ORDER)}

    def to_density_matrix(self) -> np.ndarray:
        """``Σ_b w_b |B_b><B_b|`` as a 4x4 complex numpy array (qubit order A, B)."""
        return (_BELL_BASIS * self._w) @ _BELL_BASIS_H

    def to_qobj(self) -> Qobj:
        """The density matrix as a QuTiP ``Qobj`` with dims [[2, 2], [2, 2]], ready for
        :meth:`qnetstack.physical.engines.world.QuantumWorld.new_qubits`."""
        return as_qobj(self.to_density_matrix(), [[2, 2], [2, 2]])

    # ---------------------------------------------------------- reads

    def fidelity(self, bell_state: BellState = BellState.PHI_PLUS) -> float:
        """``<B|ρ|B>``: the weight of ``bell_state`` (in [0, 1])."""
        return float(self._w[_INDEX[bell_state]])

    def dominant(self) -> BellState:
        """The Bell state of largest weight (the first in enum order on a tie)."""
        return _ORDER[int(np.argmax(self._w))]

    def sample_bell_measurement(self, rng: np.random.Generator) -> BellState:
        """Sample the outcome of measuring the pair jointly in the Bell basis
        (Born rule: probability ``w_b``). Non-local; for sampling a delivered
        frame and for tests. Does not change this (immutable) value."""
        k = int(np.searchsorted(np.cumsum(self._w), rng.random() * float(self._w.sum()), side="right"))
        return _ORDER[min(k, 3)]

    # ---------------------------------------------------------- operations

    def pauli_channel(self, p_i: float, p_x: float, p_y: float, p_z: float, qubit: Qubit) -> BellDiagonal:
        """The Pauli channel ``ρ -> p_I ρ + p_X XρX + p_Y YρY + p_Z ZρZ`` on ``qubit``
        ("A" or "B") (Nielsen & Chuang 2000, §8.3.3-8.3.4; as a Kraus set
        ``{√p_I I, √p_X X, √p_Y Y, √p_Z Z}``).

        On Bell-diagonal states it is the XOR-convolution of the weights with
        the channel's probabilities (index I=0, Z=1, X=2, Y=3 in frame bits),
        the same on either qubit (module docstring)."""
        check_qubit(qubit)
        total = p_i + p_x + p_y + p_z
        if not (
            -_NEG_TOL <= p_i <= 1.0 + _NEG_TOL
            and -_NEG_TOL <= p_x <= 1.0 + _NEG_TOL
            and -_NEG_TOL <= p_y <= 1.0 + _NEG_TOL
            and -_NEG_TOL <= p_z <= 1.0 + _NEG_TOL
        ):
            for name, p in (("p_i", p_i), ("p_x", p_x), ("p_y", p_y), ("p_z", p_z)):
                if not -_NEG_TOL <= p <= 1.0 + _NEG_TOL:
                    raise ValueError(f"{name} must be in [0, 1], got {p}")
        if abs(total - 1.0) > _SUM_TOL:
            raise ValueError(f"Pauli channel probabilities must sum to 1, got {total!r}")
        inv = 1.0 / total
        probs = np.array((p_i * inv, p_z * inv, p_x * inv, p_y * inv))  # index 2x + z of the Pauli's frame
        return self._make(self._w.take(_XOR[0]) @ probs)

    def depolarise(self, p: float, qubit: Qubit) -> BellDiagonal:
        """Depolarising channel ``ρ -> (1-p) ρ + p I/2`` on ``qubit`` (Nielsen &
        Chuang 2000, §8.3.4), i.e. the Pauli channel with ``p_I = 1 - 3p/4``
        and ``p_X = p_Y = p_Z = p/4`` (ibid., the same channel written in Paulis)."""
        check_qubit(qubit)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"depolarising probability must be in [0, 1], got {p}")
        # Σ_P w_(k ⊕ P) = 1, so the XOR-convolution is w' = (1-p) w + p/4
        return self._make((1.0 - p) * self._w + 0.25 * p)

    def dephase(self, p: float, qubit: Qubit) -> BellDiagonal:
        """Phase-flip channel ``ρ -> (1-p) ρ + p ZρZ`` on ``qubit`` (Nielsen &
        Chuang 2000, §8.3.3): off-diagonals shrink by ``1 - 2p``."""
        check_qubit(qubit)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dephasing probability must be in [0, 1], got {p}")
        # Z flips the z bit: w'_k = (1-p) w_k + p w_(k ⊕ 1)
        return self._make((1.0 - p) * self._w + p * self._w.take(_PERM[1]))

    @staticmethod
    def supports_memory(t1_ns: float | None) -> bool:
        """Whether memory noise with this T1 keeps a pair Bell-diagonal: only
        without amplitude damping (``t1_ns`` None or infinite)."""
        return t1_ns is None or math.isinf(t1_ns)

    def memory_noise(self, elapsed_ns: float, t1_ns: float | None, t2_ns: float | None, qubit: Qubit) -> BellDiagonal:
        """A memory qubit left alone for ``elapsed_ns``; arguments as
        :func:`qnetstack.physical.components.memory_noise.memory_kraus`.

        Only the pure-dephasing part is supported: with ``t1_ns=None`` the
        engine's channel is phase damping with coherence factor
        ``c = exp(-t/T2)`` (Nielsen & Chuang 2000, §8.3.6), which equals the
        phase flip with ``p_Z = (1-c)/2``. T1 amplitude damping does not keep a
        state Bell-diagonal (module docstring), so a finite ``t1_ns`` raises
        :class:`NotBellDiagonalError`; :func:`choose_engine` picks density
        matrices for such memories.
        """
        check_qubit(qubit)
        if elapsed_ns < 0:
            raise ValueError(f"elapsed time must be >= 0, got {elapsed_ns}")
        if not self.supports_memory(t1_ns):
            raise NotBellDiagonalError(
                f"T1 amplitude damping (t1_ns={t1_ns}) does not keep a pair Bell-diagonal; "
                "use the density-matrix engine (choose_engine() -> 'density-matrix')"
            )
        if t2_ns is None or math.isinf(t2_ns) or elapsed_ns == 0:
            return self
        if not t2_ns > 0:
            raise ValueError(f"t2_ns must be positive, got {t2_ns}")
        return self.dephase(-0.5 * math.expm1(-elapsed_ns / t2_ns), qubit)

    def swap(self, other: BellDiagonal, outcome: BellState) -> BellDiagonal:
        """Entanglement swapping: this pair is (A, B), ``other`` is (C, D), a Bell
        measurement of (B, C) — B as the measurement's first qubit — gave
        ``outcome``. Returns the state of (A, D) post-selected on that outcome
        (each outcome has probability 1/4 for Bell-diagonal inputs).

        ``w'_k = Σ_b w_b v_(k ⊕ m ⊕ b)`` with index XOR = frame composition
        (Dür, Briegel, Cirac, Zoller, PRA 59, 169 (1999); Bowen & Bose, PRL 87,
        267901 (2001)): pure inputs b1, b2 give
        ``b1.compose(outcome).compose(b2)``, as tracked by the network layer."""
        if not isinstance(other, BellDiagonal):
            raise TypeError(f"can only swap with another BellDiagonal, got {type(other).__name__}")
        return self._make(other._w.take(_XOR[_INDEX[outcome]]) @ self._w)

    def relabel(self, frame: BellState) -> BellDiagonal:
        """Apply the Pauli frame correction ``I ⊗ X^x Z^z`` for ``frame`` = (x, z):
        weight on ``b`` moves to ``b.compose(frame)``. E.g. a PSI_MINUS-dominated
        pair relabelled by PSI_MINUS is PHI_PLUS-dominated."""
        return self._make(self._w.take(_PERM[_INDEX[frame]]))

    # ---------------------------------------------------------- value semantics

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BellDiagonal):
            return NotImplemented
        return bool(np.array_equal(self._w, other._w))

    def __hash__(self) -> int:
        return hash(tuple(self._w.tolist()))

    def __repr__(self) -> str:
        parts = ", ".join(f"{b.value}={self._w[k]:.6g}" for k, b in enumerate(_ORDER))
        return f"BellDiagonal({parts})"

    def __reduce__(self):  # pickling / copy without going through __setattr__
        return (type(self), (self._w.tolist(),))


def check_qubit(qubit: str) -> None:
    """Refuse a qubit name other than ``"A"`` or ``"B"``."""
    if qubit not in _QUBITS:
        raise ValueError(f"qubit must be 'A' or 'B', got {qubit!r}")


def as_pair_matrix(rho: np.ndarray | Qobj, name: str) -> np.ndarray:
    """``rho`` (a 4x4 array, or a ``Qobj`` with dims [[2, 2], [2, 2]]) as a new
    complex 4x4 array; ``ValueError`` naming ``name`` if it is not one or has
    non-finite entries."""
    if is_qobj(rho):
        if rho.dims != [[2, 2], [2, 2]]:
            raise ValueError(f"{name} must have dims [[2, 2], [2, 2]], got {rho.dims}")
        mat = rho.full()
    else:
        mat = np.array(rho, dtype=complex)
    if mat.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} has non-finite entries")
    return mat


def _validated(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        w = np.array(weights, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights must be 4 numbers, got {weights!r}") from exc
    if w.shape != (4,):
        raise ValueError(f"weights must be 4 numbers ordered {[b.value for b in _ORDER]}, got {w.size}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, got {w.tolist()}")
    k = int(np.argmin(w))
    if w[k] < -_NEG_TOL:
        raise ValueError(f"weight of {_ORDER[k].value} is {w[k]!r} < 0")
    total = float(w.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise ValueError(f"weights must sum to 1, got {total!r}")
    w = np.clip(w, 0.0, None)
    w /= w.sum()
    w.setflags(write=False)
    return w
