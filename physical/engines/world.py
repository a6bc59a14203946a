"""The quantum-state engine: one shared store of every quantum state in a network.

Theory of operation
-------------------
A :class:`QuantumWorld` owns every qubit of a simulated network. A qubit is an
integer id; a photon travelling in a fibre is also a "qubit" (a 0/1-photon Fock
mode of dimension 2). Qubits that have never interacted have independent
states, so the world keeps a *partition* of the live qubits into **groups**: a
group is an ordered list of qubit ids plus one density matrix (a complex
numpy array) over their tensor product, in that order.

* An operation that touches qubits of several groups first **merges** them
  (tensor product of their states, concatenating the id lists). The operator is
  then lifted onto the whole group (identity on the other subsystems, its own
  subsystems put where the targets sit), so callers list target qubits in any
  order.
* A measurement or a discard **removes** qubits: the rest of the group keeps the
  partial trace (a discard) or the normalised post-measurement state
  ``Tr_m[(E_k ⊗ I) ρ] / p_k`` (a POVM outcome ``k``). A group with no qubit left
  disappears.
* A **move** (:meth:`QuantumWorld.move`) hands a qubit's state, entanglement
  included, to a new id — an ideal SWAP into a fresh storage qubit, e.g. from
  an NV centre's electron spin to a nuclear spin (the "communication" and
  "storage" qubits of Humphreys et al., Nature 558, 268 (2018)); the storage
  qubit gets its own ``(T1, T2)``. The source id is retired.

Ownership (no-cloning by construction). A qubit id names one subsystem of one
state; no operation duplicates a state (there is no copy, only move), so the
no-cloning theorem (Wootters & Zurek, Nature 299, 802 (1982)) cannot be broken
by a caller. Ids are never reused: once a qubit is measured, post-selected,
discarded or moved, using its id raises :class:`RetiredQubitError` (an
:class:`UnknownQubitError`, itself a ``KeyError``) naming the qubit, what
happened to it and when (details kept for the last
``QuantumWorld.RETIRED_DETAIL_LIMIT`` retirements, so a long run's memory stays
bounded; older ids still raise, with a shorter message).

Memory noise is **lazy**. Each qubit carries optional ``(T1, T2)`` and the time
its state was last brought up to date. Before any operation or oracle read that
touches a qubit, the world applies, for the elapsed time ``t``, amplitude
damping with ``γ = 1 - exp(-t/T1)`` followed by phase damping chosen so that the
off-diagonal element decays by ``exp(-t/T2)`` in total (Nielsen & Chuang,
*Quantum Computation and Quantum Information*, 2000, §8.3.5-8.3.6). Deferring
is exact: the channel acts on that qubit alone, so it commutes with anything
done to the other qubits of its group, including their measurement and
post-selection (it is trace preserving, so outcome probabilities are unchanged).

All randomness comes from a ``numpy.random.Generator`` passed by the caller;
the world itself is deterministic.

Representation and cost. The world computes with numpy alone: states,
operators and POVM elements go in as numpy arrays or as QuTiP ``Qobj`` (read
with ``.full()``), and the oracle reads that hand a state to a user
(:meth:`QuantumWorld.reduced_state`, :meth:`QuantumWorld.groups`) return
``Qobj``, QuTiP being imported then and not before (importing it costs about a
second; :mod:`qnetstack.physical.lazy_qutip`). Operators are lifted onto a group
by :func:`_expand` (cached per operator object, group shape and target
positions, so a link's constant operators are lifted once); tensor product
and partial trace are :func:`_kron` and :func:`_ptrace`. Tests cross-check
the three against ``qutip.expand_operator``, ``qutip.tensor`` and
``Qobj.ptrace``. Done with QuTiP's own routines each cost ~40-60 µs on a
few-qubit state, mostly spent re-parsing dimensions. What the world derives
from an input (its checks, its lifted form, a ket's vector) is cached by the
object only for a ``Qobj`` or a read-only array (the backends' constants); a
writable array may change between calls, so it is read afresh each time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qnetstack.physical.components.memory_noise import memory_factors
from qnetstack.physical.lazy_qutip import as_qobj, is_qobj
from qnetstack.physical.lazy_qutip import qutip as load_qutip
from qnetstack.physical.service import Basis, BellState

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = [
    "QuantumWorld",
    "WorldError",
    "UnknownQubitError",
    "RetiredQubitError",
    "check_memory_noise",
    "bell_ket",
    "bell_vector",
    "bloch_ket",
    "bloch_vector",
    "basis_projectors",
]

_ATOL = 1e-9

# (t1_ns, t2_ns) of each subsystem of a state, None: no decay of that kind
NoiseTimes = Sequence[tuple[float | None, float | None]]


class WorldError(ValueError):
    """An operation the quantum world cannot perform as asked."""


class UnknownQubitError(KeyError):
    """A qubit id that does not exist or no longer exists (measured/discarded)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else "unknown qubit"


class RetiredQubitError(UnknownQubitError):
    """A qubit id that was measured, post-selected, discarded or moved.

    ``qid``, ``event`` (e.g. "discarded", "moved to qubit 7", or "retired" when
    the details are no longer kept) and ``time_ns`` (None if not known) say
    which qubit, what happened and when."""

    def __init__(self, message: str, qid: int, event: str, time_ns: int | None) -> None:
        super().__init__(message)
        self.qid = qid
        self.event = event
        self.time_ns = time_ns


# ------------------------------------------------------------------ helpers


def _scaled(mat: np.ndarray, scale: np.ndarray, gamma: float, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``Σ K ρ K†`` for :func:`~qnetstack.physical.components.memory_noise.memory_kraus`'s operators on one qubit, as a new array.

    The three operators are diagonal or |0><1|, so the sum acts elementwise on
    that qubit's 2x2 blocks: ρ00 + γ ρ11, coherence·ρ01, coherence·ρ10,
    (coherence² + dephase)·ρ11 — the same numbers as the Kraus sum, without
    lifting operators onto the group and multiplying matrices. ``scale`` holds
    the factors (:func:`_memory_channel`), ``source``/``target`` the flat
    indices of the ρ11 elements and of their ρ00 partners."""
    out = mat * scale
    if gamma:
        out.reshape(-1)[target] += gamma * mat.reshape(-1)[source]
    return out


_CHANNELS: dict[tuple, tuple[np.ndarray, float, np.ndarray, np.ndarray]] = {}


def _memory_channel(
    dims: tuple[int, ...], pos: int, elapsed_ns: int, t1_ns: float | None, t2_ns: float | None
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """:func:`_scaled`'s elementwise scale (complex, like the
    states), γ and γ's index pairs for a wait of ``elapsed_ns``, cached: a
    link's qubits wait the same times again and again (the herald's flight,
    the classical delays), so most catch-ups find theirs."""
    key = (dims, pos, elapsed_ns, t1_ns, t2_ns)
    found = _CHANNELS.get(key)
    if found is None:
        gamma, coherence, dephase = memory_factors(elapsed_ns, t1_ns, t2_ns)
        same0, same1, differ, source, target = _channel_masks(dims, pos)
        scale = (same0 + (coherence * coherence + dephase) * same1 + coherence * differ).astype(complex)
        scale.setflags(write=False)
        found = (scale, gamma, source, target)
        if len(_CHANNELS) > 1024:
            _CHANNELS.clear()
        _CHANNELS[key] = found
    return found


_MASKS: dict[tuple[tuple[int, ...], int], tuple[np.ndarray, ...]] = {}


def _channel_masks(dims: tuple[int, ...], pos: int) -> tuple[np.ndarray, ...]:
    """For the qubit at ``pos`` of a group with ``dims``: 0/1 masks of the matrix
    elements whose row and column have that qubit in |0>|0>, |1>|1> or differ, and
    the flat indices of the |1>|1> elements with those of their |0>|0> partners."""
    key = (dims, pos)
    found = _MASKS.get(key)
    if found is None:
        size = math.prod(dims)
        stride = math.prod(dims[pos + 1 :])
        bit = (np.arange(size) // stride) % 2
        row, col = bit[:, None], bit[None, :]
        source = np.flatnonzero((row == 1) & (col == 1))
        found = (
            ((row == 0) & (col == 0)).astype(float),
            ((row == 1) & (col == 1)).astype(float),
            (row != col).astype(float),
            source,
            source - stride * (size + 1),  # one step down in both the row's and the column's bit
        )
        if len(_MASKS) > 256:
            _MASKS.clear()
        _MASKS[key] = found
    return found


def _make_bell_vectors() -> dict[BellState, np.ndarray]:
    s = 1 / math.sqrt(2)
    x_gate = np.array([[0, 1], [1, 0]], dtype=complex)
    z_gate = np.array([[1, 0], [0, -1]], dtype=complex)
    phi_plus = np.array([s, 0, 0, s], dtype=complex)
    vectors = {}
    for bell in BellState:
        x, z = bell.pauli_bits
        frame = np.linalg.matrix_power(x_gate, x) @ np.linalg.matrix_power(z_gate, z)
        vec = np.kron(np.eye(2), frame) @ phi_plus
        vec.setflags(write=False)
        vectors[bell] = vec
    return vectors


_BELL_VECTORS = _make_bell_vectors()
_BELL_KETS: dict[BellState, Qobj] = {}


def bell_vector(state: BellState) -> np.ndarray:
    """``(I ⊗ X^x Z^z)|Φ+>`` for the Pauli bits (x, z) of ``state`` (see BellState),
    as a read-only array over |00>, |01>, |10>, |11>."""
    return _BELL_VECTORS[state]


def bell_ket(state: BellState) -> Qobj:
    """:func:`bell_vector` as a QuTiP ket (the same object for the same state)."""
    ket = _BELL_KETS.get(state)
    if ket is None:
        ket = _BELL_KETS[state] = as_qobj(_BELL_VECTORS[state].reshape(4, 1), [[2, 2], [1, 1]])
    return ket


def bloch_vector(theta_rad: float, phi_rad: float) -> np.ndarray:
    """``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>``."""
    return np.array([math.cos(theta_rad / 2), np.exp(1j * phi_rad) * math.sin(theta_rad / 2)], dtype=complex)


def bloch_ket(theta_rad: float, phi_rad: float) -> Qobj:
    """:func:`bloch_vector` as a QuTiP ket."""
    return as_qobj(bloch_vector(theta_rad, phi_rad).reshape(2, 1), [[2], [1]])


def _make_projectors() -> dict[Basis, tuple[np.ndarray, np.ndarray]]:
    s = 1 / math.sqrt(2)
    # (Z ± X)/√2: +1 eigenstate cos(π/8)|0> ± sin(π/8)|1> (Bloch θ = π/4, φ = 0 or π)
    c8, s8 = math.cos(math.pi / 8), math.sin(math.pi / 8)
    kets: dict[Basis, tuple[list[complex], list[complex]]] = {
        Basis.Z: ([1, 0], [0, 1]),
        Basis.X: ([s, s], [s, -s]),
        Basis.Y: ([s, 1j * s], [s, -1j * s]),
        Basis.ZX_PLUS: ([c8, s8], [s8, -c8]),
        Basis.ZX_MINUS: ([c8, -s8], [s8, c8]),
    }
    out = {}
    for basis, (k0, k1) in kets.items():
        p0, p1 = (np.outer(k, np.conj(k)).astype(complex) for k in (k0, k1))
        p0.setflags(write=False)
        p1.setflags(write=False)
        out[basis] = (p0, p1)
    return out


_PROJECTORS = _make_projectors()
_PROJECTOR_QOBJS: dict[Basis, list[Qobj]] = {}


def basis_projectors(basis: Basis) -> list[Qobj]:
    """Projectors ``[P0, P1]`` on the +1 and -1 eigenstates of ``basis``'s
    observable (a Pauli, or (Z ± X)/√2 for ZX_PLUS / ZX_MINUS; see :class:`Basis`),
    as QuTiP operators (the same list object for the same basis)."""
    basis = Basis(basis)
    found = _PROJECTOR_QOBJS.get(basis)
    if found is None:
        found = _PROJECTOR_QOBJS[basis] = [as_qobj(p, [[2], [2]]) for p in _PROJECTORS[basis]]
    return found


# ------------------------------------------------------------------ numpy plumbing


_DIMS_CACHE: dict[tuple[int, ...], object] = {}


def _oper(mat: np.ndarray, dims: Sequence[int]) -> Qobj:
    """Wrap a density-matrix array (not copied) as a QuTiP operator over
    subsystems ``dims``, for the oracle reads that return one (QuTiP is imported
    on the first). QuTiP's dims object is built once per shape: parsing it costs
    ~40 µs, more than the algebra on a few qubits."""
    qutip = load_qutip()
    key = tuple(dims)
    parsed = _DIMS_CACHE.get(key)
    if parsed is None:
        parsed = _DIMS_CACHE[key] = qutip.core.dimensions.Dimensions([list(key), list(key)])
    return qutip.Qobj(qutip.data.Dense(mat, copy=False), dims=parsed, copy=False)


def _expand(op: np.ndarray, dims: Sequence[int], pos: Sequence[int]) -> np.ndarray:
    """``op``, acting on the subsystems at ``pos`` (its first subsystem at
    ``pos[0]``, ...), as an operator on all of ``dims``: the identity on the
    others. The same matrix as ``qutip.expand_operator`` (a test checks it); the
    entries of ``op`` are copied, not multiplied, so they carry over exactly."""
    n = len(dims)
    rest = [i for i in range(n) if i not in pos]
    rest_size = math.prod(dims[i] for i in rest)
    op_size = op.shape[0]
    # rows and columns ordered (op's subsystems, the others): op ⊗ I
    block = np.zeros((op_size, rest_size, op_size, rest_size), dtype=complex)
    for j in range(rest_size):
        block[:, j, :, j] = op
    order = list(pos) + rest
    shape = [dims[i] for i in order]
    back = [order.index(i) for i in range(n)]
    tensor = block.reshape(shape + shape).transpose(back + [n + i for i in back])
    size = math.prod(dims)
    return np.ascontiguousarray(tensor).reshape(size, size)


def _kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, m = a.shape[0], b.shape[0]
    return (a[:, None, :, None] * b[None, :, None, :]).reshape(n * m, n * m)


def _ptrace(mat: np.ndarray, dims: Sequence[int], keep: Sequence[int]) -> np.ndarray:
    """Partial trace keeping subsystems ``keep`` *in the order listed* (so it
    also permutes). Same result as ``Qobj.ptrace`` + ``Qobj.permute`` (a test
    checks it) at a fraction of the cost: one ``np.trace`` per subsystem traced
    out (~3 µs each; ``np.einsum`` on the same labels costs ~14 µs to set up)."""
    n = len(dims)
    keep = list(keep)
    kept = set(keep)
    tensor = mat.reshape(list(dims) * 2)  # row axes 0..n-1, column axes n..2n-1
    rows = n
    # from the last subsystem down, so the axes of those still to trace keep their numbers
    for i in range(n - 1, -1, -1):
        if i not in kept:
            tensor = np.trace(tensor, axis1=i, axis2=i + rows)
            rows -= 1
    in_order = sorted(keep)
    if keep != in_order:
        perm = [in_order.index(k) for k in keep]
        tensor = tensor.transpose(perm + [rows + p for p in perm])
    size = math.prod(dims[k] for k in keep)
    return np.array(tensor.reshape(size, size), dtype=complex)  # a fresh array, as before


def _trace_out_one_of_two(mat: np.ndarray, dims: Sequence[int], pos: int) -> np.ndarray:
    """The state of the other subsystem of a two-subsystem group when the one
    at ``pos`` is traced out: a sum of diagonal blocks (the common case of a
    link pair losing one half; a few times cheaper than :func:`_ptrace`)."""
    d0, d1 = dims
    tensor = mat.reshape(d0, d1, d0, d1)
    if pos == 0:
        out = tensor[0, :, 0, :].copy()
        for k in range(1, d0):
            out += tensor[k, :, k, :]
    else:
        out = tensor[:, 0, :, 0].copy()
        for k in range(1, d1):
            out += tensor[:, k, :, k]
    return out


def _outcome_rows(u: np.ndarray) -> np.ndarray:
    """``V`` of :meth:`QuantumWorld.measure_two_after`: for each outcome ``k`` of the two middle
    qubits, the four rows ``<outer_a, outer_b| (I ⊗ <k|U ⊗ I)`` over (outer_a, a, b, outer_b)."""
    rows = np.zeros((4, 2, 2, 2, 2, 2, 2), dtype=complex)  # (k, row outer_a, row outer_b, outer_a, a, b, outer_b)
    amplitudes = u.reshape(4, 2, 2)  # <k|U|a b>
    for x in range(2):
        for y in range(2):
            rows[:, x, y, x, :, :, y] = amplitudes
    return rows.reshape(16, 16)


def _draw(probs: Sequence[float], rng: np.random.Generator) -> int:
    """One sample from the two (unnormalised) weights ``probs``, with one ``rng.random()`` call,
    as :meth:`QuantumWorld._measure` draws (the first index whose running sum exceeds the draw
    times the total, so the two give the same outcome for the same draw)."""
    first, second = probs
    return 0 if rng.random() * (first + second) < first else 1


def _hermitian(mat: np.ndarray) -> np.ndarray:
    # products and partial traces of E·ρ drift off Hermitian at 1e-16; keep them exact
    return (mat + mat.conj().T) * 0.5


# ------------------------------------------------------------------ the world


@dataclass(eq=False, slots=True)
class _Group:
    qids: list[int]
    dims: list[int]
    mat: np.ndarray  # density matrix over qids, in that order

    @property
    def rho(self) -> Qobj:
        return _oper(self.mat.copy(), self.dims)  # a copy: callers must not reach into the world


@dataclass(eq=False, slots=True)
class _Qubit:
    group: _Group
    dim: int
    t1_ns: float | None
    t2_ns: float | None
    updated_ns: int


class QuantumWorld:
    """Every qubit of a network, its state, and the operations on it."""

    _CACHE_SIZE = 512
    RETIRED_DETAIL_LIMIT = 100_000

    def __init__(self) -> None:
        self._qubits: dict[int, _Qubit] = {}
        self._next_id = 0
        # retired id -> (what happened, time in ns or None), oldest first
        self._retired: OrderedDict[int, tuple[str, int | None]] = OrderedDict()
        # (id(op), dims, positions) -> (op, lifted array); holding op keeps its id unique
        self._lifted: OrderedDict[tuple, tuple[object, np.ndarray]] = OrderedDict()
        # id(elements) -> elements, for POVMs already checked to be complete
        self._checked_povms: OrderedDict[int, Sequence[object]] = OrderedDict()
        # (id(state), dims given) -> (state, dims, matrix) for states given to new_qubits(), validated once
        self._checked_states: OrderedDict[tuple, tuple[object, list[int], np.ndarray]] = OrderedDict()
        # (id(ket), subsystem order) -> (ket, flat array) for oracle targets
        self._ket_arrays: OrderedDict[tuple, tuple[object, np.ndarray]] = OrderedDict()
        # (t1_ns, t2_ns, dim) already checked by check_memory_noise
        self._checked_noise: set[tuple[float | None, float | None, int]] = set()

    # ---------------------------------------------------------- inspection

    def __contains__(self, qid: object) -> bool:
        return qid in self._qubits

    def __len__(self) -> int:
        return len(self._qubits)

    def dim(self, qid: int) -> int:
        return self._qubit(qid).dim

    def group_of(self, qid: int) -> list[int]:
        """The qubits that share one state with ``qid`` (itself included), in state order."""
        return list(self._qubit(qid).group.qids)

    def groups(self) -> list[tuple[list[int], Qobj]]:
        """Every group as (qubit ids, density matrix), for checks and debugging.

        A raw view: pending memory noise is *not* applied."""
        seen: dict[int, _Group] = {}
        for q in self._qubits.values():
            seen.setdefault(id(q.group), q.group)
        return [(list(g.qids), g.rho) for g in seen.values()]

    # ---------------------------------------------------------- creation

    def new_qubit(self, now_ns: int, t1_ns: float | None = None, t2_ns: float | None = None, dim: int = 2) -> int:
        """A fresh qubit (or ``dim``-level mode) in ``|0>``, alone in its group."""
        if dim < 2:
            raise WorldError(f"a subsystem needs dimension >= 2, got {dim}")
        check_memory_noise(t1_ns, t2_ns, dim)
        mat = np.zeros((dim, dim), dtype=complex)
        mat[0, 0] = 1.0
        return self._add([dim], mat, [(t1_ns, t2_ns)], now_ns)[0]

    def new_qubits(
        self, state: Qobj | np.ndarray, now_ns: int, noise: NoiseTimes | None = None, dims: Sequence[int] | None = None
    ) -> list[int]:
        """Fresh qubits jointly in ``state`` (a density matrix or ket over them).

        ``state`` is a ``Qobj``, whose dims give the subsystem dimensions, or a
        numpy array (a square density matrix, or a ket as a vector or column)
        over subsystems of dimensions ``dims`` (default: qubits). ``noise``
        gives ``(t1_ns, t2_ns)`` per subsystem (default: noiseless). Used to
        emit a spin-photon pair prepared elsewhere in one step.
        """
        key = (id(state), None if dims is None else tuple(dims))
        known = self._checked_states.get(key)
        if known is not None and known[0] is state:
            dims, mat = known[1], known[2]
        else:
            dims, mat = self._check_state(state, dims)
            if _constant(state):
                self._checked_states[key] = (state, dims, mat)
                if len(self._checked_states) > self._CACHE_SIZE:
                    self._checked_states.popitem(last=False)
        if noise is None:
            noise = [(None, None)] * len(dims)
        if len(noise) != len(dims):
            raise WorldError(f"noise given for {len(noise)} subsystems, state has {len(dims)}")
        checked = self._checked_noise
        for (t1, t2), d in zip(noise, dims):
            if (t1, t2, d) not in checked:
                check_memory_noise(t1, t2, d)
                if len(checked) > self._CACHE_SIZE:
                    checked.clear()
                checked.add((t1, t2, d))
        return self._add(list(dims), mat, noise, now_ns)

    @staticmethod
    def _check_state(state: Qobj | np.ndarray, given_dims: Sequence[int] | None) -> tuple[list[int], np.ndarray]:
        """The subsystem dims and density matrix of a state given to :meth:`new_qubits`."""
        if is_qobj(state):
            if given_dims is not None:
                raise WorldError("dims are given by the Qobj itself; pass dims only with a numpy array")
            if state.isket:
                is_ket = True
            elif state.isoper and state.dims[0] == state.dims[1]:
                is_ket = False
            else:
                raise WorldError(f"state must be a ket or a square density matrix, got dims {state.dims}")
            dims = list(state.dims[0])
            array = state.full()
        elif isinstance(state, np.ndarray):
            if state.ndim == 1 or (state.ndim == 2 and state.shape[1] == 1):
                is_ket = True
            elif state.ndim == 2 and state.shape[0] == state.shape[1]:
                is_ket = False
            else:
                raise WorldError(f"state must be a ket or a square density matrix, got an array of shape {state.shape}")
            dims = _array_dims(state.shape[0], given_dims)
            array = state.reshape(-1, 1) if is_ket else state
        else:
            raise WorldError(f"state must be a numpy array or a Qobj, got {type(state).__name__}")
        if is_ket:
            vec = np.asarray(array, dtype=complex)
            mat = vec @ vec.conj().T
        else:
            mat = np.array(array, dtype=complex)
            if not _close(mat, mat.conj().T, atol=_ATOL) or np.linalg.eigvalsh(mat).min() < -_ATOL:
                raise WorldError("state is not a density matrix (Hermitian, positive semidefinite)")
        if abs(np.trace(mat) - 1) > _ATOL:
            raise WorldError(f"state must have unit trace, got {np.trace(mat).real:.12g}")
        # states are immutable here (groups replace their matrix, never write into it)
        mat.setflags(write=False)
        return dims, mat

    def _add(self, dims: list[int], mat: np.ndarray, noise: NoiseTimes, now_ns: int) -> list[int]:
        qids = list(range(self._next_id, self._next_id + len(dims)))
        self._next_id += len(dims)
        group = _Group(qids, dims, mat)
        for qid, d, (t1, t2) in zip(qids, dims, noise):
            self._qubits[qid] = _Qubit(group, d, t1, t2, int(now_ns))
        return qids

    # ---------------------------------------------------------- evolution

    def apply_unitary(self, qids: Sequence[int], unitary: Qobj | np.ndarray, now_ns: int) -> None:
        """Apply ``unitary`` to ``qids`` (its subsystems in the order listed)."""
        dims = self._dims_of(qids)
        u = _as_array(unitary, dims, "unitary")
        if not _close(u.conj().T @ u, np.eye(u.shape[0]), atol=_ATOL):
            raise WorldError("operator is not unitary")
        group, pos = self._gather(qids, now_ns)
        full = self._lift(unitary, u, dims, group, pos)
        group.mat = full @ group.mat @ full.conj().T

    def apply_kraus(self, qids: Sequence[int], kraus: Sequence[Qobj | np.ndarray], now_ns: int) -> None:
        """Apply the channel ``ρ -> Σ K ρ K†`` to ``qids``; it must be trace preserving."""
        if len(kraus) == 0:
            raise WorldError("a channel needs at least one Kraus operator")
        dims = self._dims_of(qids)
        arrays = [_as_array(k, dims, "Kraus operator") for k in kraus]
        if not _close(sum(k.conj().T @ k for k in arrays), np.eye(arrays[0].shape[0]), atol=_ATOL):
            raise WorldError("Kraus operators do not satisfy Σ K†K = I (channel not trace preserving)")
        group, pos = self._gather(qids, now_ns)
        lifted = [self._lift(k, a, dims, group, pos) for k, a in zip(kraus, arrays)]
        group.mat = sum(k @ group.mat @ k.conj().T for k in lifted)

    # ---------------------------------------------------------- measurement

    def measure(self, qid: int, basis: Basis, rng: np.random.Generator, now_ns: int) -> int:
        """Destructive projective measurement in ``basis`` (a Pauli, or a CHSH basis): 0 for the +1
        eigenstate (|0>, |+>, |+i>), 1 for the -1 eigenstate. The qubit is removed."""
        if self._qubit(qid).dim != 2:
            raise WorldError(f"a basis measurement needs a qubit; {qid} has dim {self._qubits[qid].dim}")
        label = f"measured in the {Basis(basis).value} basis"
        return self._measure([qid], _PROJECTORS[Basis(basis)], now_ns, rng, label)[0]

    def measure_two_after(
        self, qid_a: int, qid_b: int, unitary: Qobj | np.ndarray, rng: np.random.Generator, now_ns: int
    ) -> tuple[int, int]:
        """Apply the two-qubit ``unitary`` to (``qid_a``, ``qid_b``), then measure ``qid_a`` and
        then ``qid_b`` in the Z basis; the two outcomes. Both qubits are removed.

        The same as :meth:`apply_unitary` followed by two :meth:`measure` calls (the same
        random draws, one per outcome, so the same outcomes), and the form a Bell measurement
        takes. When each qubit is half of its own two-qubit group (a repeater swapping two
        link pairs) it works on the two 4x4 matrices directly: every outcome's state of the
        two outer qubits is one block of ``V (ρ1 ⊗ ρ2) V†`` (``V`` stacks the four rows
        ``<k|U`` on the middle qubits), instead of lifting the unitary and two projectors to
        16x16 and tracing out twice."""
        first, second = self._qubit(qid_a), self._qubit(qid_b)
        group_a, group_b = first.group, second.group
        if group_a is group_b or group_a.dims != [2, 2] or group_b.dims != [2, 2] or first.dim != 2 or second.dim != 2:
            self.apply_unitary([qid_a, qid_b], unitary, now_ns)
            return self.measure(qid_a, Basis.Z, rng, now_ns), self.measure(qid_b, Basis.Z, rng, now_ns)
        rows = self._outcome_rows(unitary)
        self._catch_up(qid_a, now_ns)
        self._catch_up(qid_b, now_ns)
        pos_a, pos_b = group_a.qids.index(qid_a), group_b.qids.index(qid_b)
        # order the subsystems (outer_a, a) and (b, outer_b), so their product is (outer_a, a, b, outer_b)
        rho_a = group_a.mat if pos_a == 1 else group_a.mat.reshape(2, 2, 2, 2).transpose(1, 0, 3, 2).reshape(4, 4)
        rho_b = group_b.mat if pos_b == 0 else group_b.mat.reshape(2, 2, 2, 2).transpose(1, 0, 3, 2).reshape(4, 4)
        blocks = rows @ _kron(rho_a, rho_b) @ rows.conj().T
        probs = [max(0.0, p) for p in np.real(np.diagonal(blocks)).reshape(4, 4).sum(axis=1).tolist()]
        outcome_a = _draw([probs[0] + probs[1], probs[2] + probs[3]], rng)
        outcome_b = _draw(probs[2 * outcome_a : 2 * outcome_a + 2], rng)
        k = 2 * outcome_a + outcome_b
        if probs[k] <= 1e-15:
            raise WorldError("post-selected outcome has probability 0")
        outer_a, outer_b = group_a.qids[1 - pos_a], group_b.qids[1 - pos_b]
        group_a.qids, group_a.mat = [outer_a, outer_b], _hermitian(blocks[4 * k : 4 * k + 4, 4 * k : 4 * k + 4]) / probs[k]
        self._qubits[outer_b].group = group_a
        for qid, outcome in ((qid_a, outcome_a), (qid_b, outcome_b)):
            del self._qubits[qid]
            self._retire(qid, f"measured in the Z basis (outcome {outcome})", now_ns)
        return outcome_a, outcome_b

    def _outcome_rows(self, unitary: Qobj | np.ndarray) -> np.ndarray:
        """:func:`_outcome_rows` of a checked unitary, cached per constant operator object."""
        key = ("outcome rows", id(unitary))
        hit = self._lifted.get(key)
        if hit is not None and hit[0] is unitary:
            return hit[1]
        u = _as_array(unitary, [2, 2], "unitary")
        if not _close(u.conj().T @ u, np.eye(4), atol=_ATOL):
            raise WorldError("operator is not unitary")
        rows = _outcome_rows(u)
        if _constant(unitary):
            self._lifted[key] = (unitary, rows)
            if len(self._lifted) > self._CACHE_SIZE:
                self._lifted.popitem(last=False)
        return rows

    def measure_povm(self, qids: Sequence[int], elements: Sequence[Qobj | np.ndarray], rng: np.random.Generator, now_ns: int) -> int:
        """Destructive POVM on ``qids``; returns the index of the sampled element.

        The other qubits of the group keep ``Tr_qids[(E_k ⊗ I) ρ] / p_k``.
        The elements must be positive and sum to the identity (checked the
        first time a given list object is used).
        """
        self._check_povm(qids, elements)
        label = "measured by a POVM" if len(qids) == 1 else f"measured by a joint POVM on qubits {list(qids)}"
        return self._measure(qids, elements, now_ns, rng, label)[0]

    def postselect(self, qids: Sequence[int], element: Qobj | np.ndarray, now_ns: int) -> float:
        """Remove ``qids`` as if the POVM element ``element`` had been observed.

        Returns that outcome's probability; the rest of the group keeps the
        normalised conditional state. For analysis and tests (no sampling).
        Raises :class:`WorldError` if the outcome has probability 0.
        """
        label = "post-selected" if len(qids) == 1 else f"post-selected jointly with qubits {list(qids)}"
        return self._measure(qids, [element], now_ns, None, label)[1]

    def discard(self, qid: int, now_ns: int | None = None) -> None:
        """Remove a qubit, tracing it out (the others' reduced states do not change).

        ``now_ns`` is only recorded (for the error raised if the id is used
        again); without it the record says when the qubit was last touched. Its
        pending memory noise is not applied: a channel on a qubit that is traced
        out does not change the rest (it is local and trace preserving)."""
        qubit = self._qubit(qid)
        if now_ns is not None and now_ns < qubit.updated_ns:
            raise WorldError(f"time went backwards: qubit {qid} last updated at {qubit.updated_ns} ns, now {now_ns} ns")
        group = qubit.group
        del self._qubits[qid]
        if now_ns is None:
            self._retire(qid, f"discarded (time not given; last touched at t={qubit.updated_ns} ns)", None)
        else:
            self._retire(qid, "discarded", now_ns)
        if len(group.qids) == 1:
            return
        pos = group.qids.index(qid)
        if len(group.qids) == 2:
            group.mat = _trace_out_one_of_two(group.mat, group.dims, pos)
        else:
            keep = [i for i in range(len(group.qids)) if i != pos]
            group.mat = _ptrace(group.mat, group.dims, keep)
        del group.qids[pos]
        del group.dims[pos]

    def move(self, qid: int, now_ns: int, *, t1_ns: float | None = None, t2_ns: float | None = None) -> int:
        """Move the state of ``qid`` to a new qubit id and retire ``qid``.

        An ideal SWAP into a fresh storage qubit (communication -> storage
        qubit): the new id takes ``qid``'s place in its group, so its
        entanglement with other qubits is kept, and from ``now_ns`` on it decays
        with its own ``(t1_ns, t2_ns)`` (None: no decay of that kind). The old
        memory's noise is applied up to ``now_ns`` first. The state is moved,
        never copied; gate noise of a real SWAP is the caller's to add
        (:meth:`apply_kraus` on the new id). Returns the new id."""
        qubit = self._qubit(qid)
        check_memory_noise(t1_ns, t2_ns, qubit.dim)
        self._catch_up(qid, now_ns)
        new = self._next_id
        self._next_id += 1
        group = qubit.group
        group.qids[group.qids.index(qid)] = new
        self._qubits[new] = _Qubit(group, qubit.dim, t1_ns, t2_ns, int(now_ns))
        del self._qubits[qid]
        self._retire(qid, f"moved to qubit {new}", now_ns)
        return new

    # ---------------------------------------------------------- oracle reads

    def reduced_state(self, qids: Sequence[int], now_ns: int) -> Qobj:
        """Oracle: the true reduced density matrix of ``qids``, in the order listed."""
        return _oper(self._reduced(qids, now_ns), self._dims_of(qids))

    def fidelity_to_pure(self, qids: Sequence[int], ket: Qobj | np.ndarray, now_ns: int) -> float:
        """Oracle: ``<ψ|ρ|ψ>`` of the reduced state of ``qids``, clipped into [0, 1].

        ``ket``: a QuTiP ket, or a numpy vector (or column) over the subsystems of ``qids``."""
        dims = self._dims_of(qids)
        size = math.prod(dims)
        if is_qobj(ket):
            is_ket = ket.isket and ket.shape[0] == size
        else:
            is_ket = isinstance(ket, np.ndarray) and ket.shape in ((size,), (size, 1))
        if not is_ket:
            raise WorldError(f"target must be a ket of dimension {size}, got {getattr(ket, 'shape', ket)}")
        whole = self._qubits[qids[0]].group
        if len(whole.qids) == len(qids) and all(self._qubits[q].group is whole for q in qids):
            # exactly one group (a link pair): <ψ|ρ|ψ> on the group's own matrix, with ψ's
            # subsystems put in the group's order instead of permuting (and copying) ρ
            for q in qids:
                self._catch_up(q, now_ns)
            order = list(qids)
            axes = None if whole.qids == order else tuple(order.index(g) for g in whole.qids)
            vec = self._ket_vector(ket, dims, axes)
            rho = whole.mat
        else:
            vec = self._ket_vector(ket, dims, None)
            rho = self._reduced(qids, now_ns)
        # Re<ψ|ρ|ψ> is the same for ρ and its Hermitian part (ρ+ρ†)/2, so no symmetrising
        value = float(np.vdot(vec, rho @ vec).real)
        return min(1.0, max(0.0, value))

    def _ket_vector(self, ket: Qobj | np.ndarray, dims: list[int], axes: tuple[int, ...] | None) -> np.ndarray:
        """``ket`` (over subsystems of ``dims``) as a flat array, its subsystems
        reordered by ``axes`` if given; cached per ket object and order (the
        Bell kets are module constants)."""
        key = (id(ket), axes)
        known = self._ket_arrays.get(key)
        if known is not None and known[0] is ket:
            return known[1]
        vec = ket.full().ravel() if is_qobj(ket) else np.array(ket, dtype=complex).ravel()
        if axes is not None:
            vec = vec.reshape(dims).transpose(axes).reshape(-1)
        vec.setflags(write=False)
        if _constant(ket):
            self._ket_arrays[key] = (ket, vec)
            if len(self._ket_arrays) > self._CACHE_SIZE:
                self._ket_arrays.popitem(last=False)
        return vec

    # ---------------------------------------------------------- internals

    def _qubit(self, qid: int) -> _Qubit:
        try:
            return self._qubits[qid]
        except (KeyError, TypeError):
            raise self._unknown(qid) from None

    def _retire(self, qid: int, event: str, now_ns: int | None) -> None:
        self._retired[qid] = (event, None if now_ns is None else int(now_ns))
        if len(self._retired) > self.RETIRED_DETAIL_LIMIT:
            self._retired.popitem(last=False)

    def _unknown(self, qid: object) -> UnknownQubitError:
        rule = "a measured, discarded or moved qubit cannot be used again (the world never copies a state)"
        if isinstance(qid, (int, np.integer)) and not isinstance(qid, bool):
            record = self._retired.get(int(qid))
            if record is not None:
                event, when = record
                at = "" if when is None else f" at t={when} ns"
                message = f"qubit {qid} does not exist any more: it was {event}{at}; {rule}"
                return RetiredQubitError(message, int(qid), event, when)
            if 0 <= qid < self._next_id:  # ids are handed out in order and never reused
                return RetiredQubitError(
                    f"qubit {qid} does not exist any more: it was measured, discarded or moved earlier "
                    f"(details are kept for the last {self.RETIRED_DETAIL_LIMIT} only); {rule}",
                    int(qid),
                    "retired",
                    None,
                )
        return UnknownQubitError(f"qubit {qid!r} does not exist (never created in this world)")

    def _dims_of(self, qids: Sequence[int]) -> list[int]:
        if len(qids) == 0:
            raise WorldError("no qubits given")
        dims = [self._qubit(q).dim for q in qids]
        if len(set(qids)) != len(qids):
            raise WorldError(f"a qubit is listed twice in {list(qids)}")
        return dims

    def _catch_up(self, qid: int, now_ns: int) -> None:
        qubit = self._qubits[qid]
        elapsed = now_ns - qubit.updated_ns
        if elapsed < 0:
            raise WorldError(f"time went backwards: qubit {qid} last updated at {qubit.updated_ns} ns, now {now_ns} ns")
        if elapsed == 0:
            return
        qubit.updated_ns = now_ns
        if qubit.t1_ns is None and qubit.t2_ns is None:
            return
        group = qubit.group
        scale, gamma, source, target = _memory_channel(tuple(group.dims), group.qids.index(qid), elapsed, qubit.t1_ns, qubit.t2_ns)
        group.mat = _scaled(group.mat, scale, gamma, source, target)

    def _gather(self, qids: Sequence[int], now_ns: int) -> tuple[_Group, list[int]]:
        """Bring ``qids`` up to date and into one group; their positions in it."""
        groups: list[_Group] = []
        for q in qids:
            self._catch_up(q, now_ns)
            g = self._qubits[q].group
            if not any(g is h for h in groups):
                groups.append(g)
        group = groups[0]
        if len(groups) > 1:
            mat = groups[0].mat
            for g in groups[1:]:
                mat = _kron(mat, g.mat)
            group = _Group([q for g in groups for q in g.qids], [d for g in groups for d in g.dims], mat)
            for q in group.qids:
                self._qubits[q].group = group
        return group, [group.qids.index(q) for q in qids]

    def _lift(self, owner: object, op: np.ndarray, op_dims: list[int], group: _Group, pos: list[int]) -> np.ndarray:
        """``op`` (on the subsystems at ``pos``) as an operator on the whole group.

        Lifted by :func:`_expand` (any target order) and cached per
        (operator object, group dims, positions)."""
        if len(pos) == len(group.qids) and pos == list(range(len(pos))):
            return op
        key = (id(owner), tuple(group.dims), tuple(pos))
        hit = self._lifted.get(key)
        if hit is not None and hit[0] is owner:
            self._lifted.move_to_end(key)
            return hit[1]
        full = _expand(op, group.dims, pos)
        if _constant(owner):
            self._lifted[key] = (owner, full)
            if len(self._lifted) > self._CACHE_SIZE:
                self._lifted.popitem(last=False)
        return full

    def _check_povm(self, qids: Sequence[int], elements: Sequence[Qobj | np.ndarray]) -> None:
        if self._checked_povms.get(id(elements)) is elements:
            return
        dims = self._dims_of(qids)
        arrays = [_as_array(e, dims, "POVM element") for e in elements]
        if not arrays:
            raise WorldError("a POVM needs at least one element")
        if not _close(sum(arrays[1:], arrays[0]), np.eye(arrays[0].shape[0]), atol=_ATOL):
            raise WorldError("POVM elements do not sum to the identity")
        for m in arrays:
            if not _close(m, m.conj().T, atol=_ATOL) or np.linalg.eigvalsh(m).min() < -_ATOL:
                raise WorldError("POVM element is not Hermitian positive semidefinite")
        if all(_constant(e) for e in elements):
            self._checked_povms[id(elements)] = elements
            if len(self._checked_povms) > self._CACHE_SIZE:
                self._checked_povms.popitem(last=False)

    def _measure(
        self,
        qids: Sequence[int],
        elements: Sequence[Qobj | np.ndarray],
        now_ns: int,
        rng: np.random.Generator | None,
        label: str,
    ) -> tuple[int, float]:
        dims = self._dims_of(qids)
        arrays = [_as_array(e, dims, "POVM element") for e in elements]
        group, pos = self._gather(qids, now_ns)
        marginal = _ptrace(group.mat, group.dims, pos)
        probs = [max(0.0, float(np.real(np.sum(e.T * marginal)))) for e in arrays]  # Tr(E ρ)
        if rng is None:
            k = 0
        else:
            cumulative = np.cumsum(probs)
            k = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(arrays) - 1)
        p = probs[k]
        if p <= 1e-15:  # post-selection on an impossible outcome (sampling cannot pick one)
            raise WorldError("post-selected outcome has probability 0")
        rest = [i for i in range(len(group.qids)) if i not in pos]
        if rest:
            full = self._lift(elements[k], arrays[k], dims, group, pos)
            group.mat = _hermitian(_ptrace(full @ group.mat, group.dims, rest)) / p
            group.qids = [group.qids[i] for i in rest]
            group.dims = [group.dims[i] for i in rest]
        event = f"{label} (outcome {k})" if rng is not None else f"{label} (probability {p:.6g})"
        for q in qids:
            del self._qubits[q]
            self._retire(q, event, now_ns)
        return k, p

    def _reduced(self, qids: Sequence[int], now_ns: int) -> np.ndarray:
        self._dims_of(qids)
        for q in qids:
            self._catch_up(q, now_ns)
        whole = self._qubits[qids[0]].group
        if whole.qids == list(qids):
            # the qubits are exactly one group, in its order (a link pair): nothing to trace out
            return _hermitian(whole.mat)
        if len(whole.qids) == len(qids) and set(whole.qids) == set(qids):
            # exactly one group in another order: permute the subsystems, no trace needed
            order = [whole.qids.index(q) for q in qids]
            n = len(order)
            tensor = whole.mat.reshape(whole.dims + whole.dims)
            tensor = tensor.transpose(order + [n + i for i in order])
            size = whole.mat.shape[0]
            return _hermitian(np.ascontiguousarray(tensor).reshape(size, size))
        wanted = set(qids)
        mat: np.ndarray | None = None
        dims: list[int] = []
        order = []
        done: list[_Group] = []
        for q in qids:
            group = self._qubits[q].group
            if any(group is g for g in done):
                continue
            done.append(group)
            mine = [i for i, g in enumerate(group.qids) if g in wanted]
            part = _ptrace(group.mat, group.dims, mine)
            mat = part if mat is None else _kron(mat, part)
            dims.extend(group.dims[i] for i in mine)
            order.extend(group.qids[i] for i in mine)
        assert mat is not None  # qids is not empty, so the loop took at least one group
        if order != list(qids):
            mat = _ptrace(mat, dims, [order.index(q) for q in qids])
        return _hermitian(mat)


def _constant(value: object) -> bool:
    """Whether the world may cache what it derives from ``value`` (a state, an
    operator, a ket) by the object's identity: a ``Qobj`` (treated as immutable,
    as QuTiP does) or a read-only array. A writable array may change between
    calls, so it is read afresh each time."""
    return not isinstance(value, np.ndarray) or not value.flags.writeable


def _close(a: np.ndarray, b: np.ndarray, atol: float = _ATOL) -> bool:
    # np.allclose costs ~60 µs on tiny matrices; this is the same test (rtol=0) for ~3 µs
    return bool(np.abs(a - b).max() <= atol)


def _as_array(op: Qobj | np.ndarray, dims: list[int], what: str) -> np.ndarray:
    size = math.prod(dims)
    if (is_qobj(op) or isinstance(op, np.ndarray)) and op.shape == (size, size):
        return op.full() if is_qobj(op) else np.asarray(op, dtype=complex)
    got = getattr(op, "shape", op)
    raise WorldError(f"{what} must be a {size}x{size} array or Qobj for subsystem dims {dims}, got {got!r}")


def _array_dims(size: int, given: Sequence[int] | None) -> list[int]:
    """The subsystem dims of a state array of dimension ``size``: ``given``
    (checked against ``size``), or qubits."""
    if given is not None:
        dims = [int(d) for d in given]
        if not dims or min(dims) < 2 or math.prod(dims) != size:
            raise WorldError(f"dims {list(given)} do not fit a state of dimension {size}")
        return dims
    count = size.bit_length() - 1
    if count < 1 or 2**count != size:
        raise WorldError(f"a state of dimension {size} is not over qubits; give its dims")
    return [2] * count


def check_memory_noise(t1_ns: float | None, t2_ns: float | None, dim: int = 2) -> None:
    """Raise :class:`WorldError` unless ``(t1_ns, t2_ns)`` is a physical memory:
    positive times, T2 <= 2·T1 (Nielsen & Chuang 2000, §8.3.6: dephasing can
    only add to the T1 decay of coherence), finite T1 only with a T2, and a
    2-level subsystem. ``None`` means no decay of that kind."""
    if t1_ns is None and t2_ns is None:
        return
    if dim != 2:
        raise WorldError(f"memory noise (T1/T2) is defined for 2-level subsystems, not dim {dim}")
    if (t1_ns is not None and t1_ns <= 0) or (t2_ns is not None and t2_ns <= 0):
        raise WorldError(f"T1/T2 must be positive, got t1_ns={t1_ns}, t2_ns={t2_ns}")
    if t1_ns is not None and t2_ns is None:
        raise WorldError("finite T1 with no dephasing (t2_ns=None) is unphysical; give t2_ns <= 2*t1_ns")
    if t1_ns is not None and t2_ns is not None and t2_ns > 2 * t1_ns:
        raise WorldError(f"t2_ns={t2_ns} exceeds 2*t1_ns={2 * t1_ns}; physics requires T2 <= 2*T1")
