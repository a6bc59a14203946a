"""Properties of the state engines: physical states, ownership, and agreement.

* physical.engines.world.QuantumWorld (the density-matrix reference): random operation
  sequences keep every state a density matrix and every fidelity a probability;
  measured, discarded and moved qubit ids are unusable, with a message saying
  what happened when.
* physical.engines.pair_state.PairState: in Bell-diagonal mode and after converting to a
  density matrix it gives the same states as QuantumWorld running the same
  physics with its own (independently built) Kraus operators.

Agreement tolerance 1e-9: both sides are exact linear algebra on at most 16x16
matrices, so they differ by rounding (~1e-15 per operation, a few dozen
operations); 1e-9 is far above that and far below any physical effect.
Hypothesis runs derandomised with small max_examples so the file stays fast.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import qutip
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.physical.engines.bell_diagonal import BellDiagonal
from qnetstack.physical.engines.pair_state import PairConsumedError, PairState
from qnetstack.physical.engines.world import QuantumWorld, RetiredQubitError, UnknownQubitError, WorldError, basis_projectors, bell_ket
from qnetstack.physical.service import Basis, BellState

ATOL = 1e-9
BELLS = list(BellState)
I2 = np.eye(2, dtype=complex)
PAULI = {
    "I": I2,
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
BELL_PROJECTORS = {b: qutip.ket2dm(bell_ket(b)) for b in BELLS}
PROPERTY = settings(derandomize=True, deadline=None, max_examples=100)


def assert_density_matrix(m: np.ndarray, where: str = "") -> None:
    """Hermitian, positive semidefinite (eigenvalues >= -1e-9), unit trace (N&C 2000, §2.4.1)."""
    assert np.abs(m - m.conj().T).max() <= 1e-10, f"not Hermitian {where}"
    assert np.linalg.eigvalsh(m).min() >= -1e-9, f"not positive semidefinite {where}"
    assert abs(np.trace(m) - 1) <= 1e-9, f"trace is not 1 {where}"


def bell_vec(b: BellState) -> np.ndarray:
    return bell_ket(b).full().ravel()


def qobj(op: np.ndarray) -> qutip.Qobj:
    return qutip.Qobj(op, dims=[[2], [2]])


# ------------------------------------------------------------------ QuantumWorld: random sequences

_ACTIONS = ["new", "pair", "unitary", "kraus", "wait", "measure", "povm", "postselect", "discard", "move", "read"]


def _random_memory(pick: np.random.Generator) -> tuple[float | None, float | None]:
    """No noise, pure dephasing, or T1 in [1, 20] µs with T2 in (0, 2·T1]."""
    kind = pick.integers(3)
    if kind == 0:
        return None, None
    t1 = float(pick.uniform(1_000, 20_000))
    t2 = float(2 * t1 * pick.uniform(0.05, 1.0))
    return (None, t2) if kind == 1 else (t1, t2)


def _random_channel(dims: list[int], seed: int, n_kraus: int = 3) -> list[qutip.Qobj]:
    """A random CPTP map from the environment model (N&C 2000, §8.2.3): the first
    d columns of a random unitary on d·n are an isometry V, and its d x d row
    blocks K_i satisfy Σ K_i† K_i = V† V = I. (qutip.rand_kraus_map gives d²
    operators, too many to lift quickly onto a 6-qubit group.)"""
    d = math.prod(dims)
    iso = qutip.rand_unitary(d * n_kraus, seed=seed).full()[:, :d]
    return [qutip.Qobj(iso[i * d : (i + 1) * d], dims=[dims, dims]) for i in range(n_kraus)]


def _check_world(world: QuantumWorld, now: int, pick: np.random.Generator) -> None:
    for qids, _ in world.groups():
        rho = world.reduced_state(qids, now).full()  # brings pending memory noise up to date
        assert_density_matrix(rho, f"group {qids}")
    live = [q for qids, _ in world.groups() for q in qids]
    if not live:
        return
    k = int(pick.integers(1, min(2, len(live)) + 1))
    qids = [live[i] for i in pick.choice(len(live), size=k, replace=False)]
    target = qutip.rand_ket([world.dim(q) for q in qids], seed=int(pick.integers(2**31)))
    vec = target.full().ravel()
    raw = float(np.real(vec.conj() @ world.reduced_state(qids, now).full() @ vec))
    # fidelity_to_pure clips into [0, 1], so check the unclipped overlap too
    assert -ATOL <= raw <= 1 + ATOL
    f = world.fidelity_to_pure(qids, target, now)
    assert 0.0 <= f <= 1.0 and abs(f - raw) <= ATOL


def _assert_retired(world: QuantumWorld, qid: int, event: str, now: int, pick: np.random.Generator) -> None:
    """Using a retired id, whichever operation, raises RetiredQubitError naming it."""
    use = [
        lambda: world.apply_unitary([qid], qutip.sigmax(), now),
        lambda: world.measure(qid, Basis.Z, pick, now),
        lambda: world.discard(qid),
        lambda: world.move(qid, now),
        lambda: world.reduced_state([qid], now),
    ][int(pick.integers(5))]
    with pytest.raises(RetiredQubitError) as info:
        use()
    assert info.value.qid == qid and info.value.event.startswith(event)
    assert f"qubit {qid} does not exist any more" in str(info.value)


_step = st.tuples(st.sampled_from(_ACTIONS), st.integers(0, 2**31 - 1))


@PROPERTY
@given(st.lists(_step, min_size=1, max_size=20), st.integers(0, 2**31 - 1))
def test_random_world_operations_keep_states_physical_and_retire_ids(steps, seed):
    """Random unitaries, CPTP maps (random Stinespring isometries), memory noise with random
    T1 and T2 <= 2·T1 (amplitude then phase damping, Nielsen & Chuang 2000,
    §8.3.5-8.3.6), Pauli measurements, POVMs, post-selection on an element of
    nonzero probability, discards (partial traces) and moves: every group stays
    a density matrix and every fidelity <ψ|ρ|ψ> a probability (N&C 2000, §2.4
    and §8.2: CPTP maps and normalised measurement updates preserve both).
    A post-selection returns the Born probability Tr(E ρ) (N&C §2.2.6); each
    retired id then raises RetiredQubitError saying what happened to it."""
    rng = np.random.default_rng(seed)
    world = QuantumWorld()
    now = 0
    live: list[int] = [world.new_qubit(0, *_random_memory(rng)), world.new_qubit(0, dim=3)]
    for action, s in steps:
        pick = np.random.default_rng(s)
        if action in ("new", "pair") and len(live) >= 6:
            action = "discard"  # at most 6-7 live subsystems keep every matrix small and the test fast
        if action == "new" or not live:
            live.append(world.new_qubit(now, *_random_memory(pick)))
            continue
        if action == "pair":
            live += world.new_qubits(qutip.rand_dm([2, 2], seed=s), now, [_random_memory(pick), _random_memory(pick)])
            continue
        k = int(pick.integers(1, min(3, len(live)) + 1))
        targets = [live[i] for i in pick.choice(len(live), size=k, replace=False)]
        dims = [world.dim(q) for q in targets]
        retired: list[tuple[int, str]] = []
        if action == "unitary":
            world.apply_unitary(targets, qutip.rand_unitary(dims, seed=s), now)
        elif action == "kraus":
            world.apply_kraus(targets, _random_channel(dims, s), now)
        elif action == "wait":
            now += int(pick.integers(0, 5_000))
        elif action == "read":
            world.reduced_state(targets, now)
        elif action == "measure":
            q = next((q for q in targets if world.dim(q) == 2), None)
            if q is not None:
                basis = Basis(str(pick.choice(["Z", "X", "Y"])))
                world.measure(q, basis, rng, now)
                retired.append((q, f"measured in the {basis.value} basis"))
        elif action in ("povm", "postselect"):
            a = qutip.rand_dm(dims, seed=s)
            a = a / (a.eigenenergies().max() + 1e-3)  # 0 <= a < I
            if action == "povm":
                world.measure_povm(targets, [a, qutip.qeye(dims) - a], rng, now)
            else:
                marginal = world.reduced_state(targets, now)
                p_a = float(np.real((a * marginal).tr()))
                element = a if p_a > 1e-6 else qutip.qeye(dims) - a  # p_a + p_(I-a) = 1
                expected = p_a if element is a else 1 - p_a
                assert world.postselect(targets, element, now) == pytest.approx(expected, abs=ATOL)
            retired += [(q, "measured" if action == "povm" else "post-selected") for q in targets]
        elif action == "discard":
            world.discard(targets[0], now)
            retired.append((targets[0], "discarded"))
        elif action == "move":
            t2 = float(pick.uniform(1e3, 1e5)) if dims[0] == 2 else None  # T1/T2 are for qubits only
            new = world.move(targets[0], now, t1_ns=None, t2_ns=t2)
            live.append(new)
            retired.append((targets[0], f"moved to qubit {new}"))
        for q, event in retired:
            live.remove(q)
            _assert_retired(world, q, event, now, pick)
        _check_world(world, now, pick)
    assert sorted(live) == sorted(q for qids, _ in world.groups() for q in qids)


# ------------------------------------------------------------------ ownership (no-cloning)


def test_a_measured_qubit_cannot_be_used_and_the_error_says_how_and_when():
    world = QuantumWorld()
    a, b = world.new_qubits(bell_ket(BellState.PHI_PLUS), 0)
    outcome = world.measure(a, Basis.X, np.random.default_rng(1), 50)
    expected = rf"qubit {a} .*measured in the X basis \(outcome {outcome}\) at t=50 ns"
    with pytest.raises(RetiredQubitError, match=expected):
        world.apply_unitary([a], qutip.sigmax(), 60)
    with pytest.raises(KeyError):  # still a KeyError / UnknownQubitError, as callers expect
        world.measure(a, Basis.Z, np.random.default_rng(1), 60)
    world.postselect([b], basis_projectors(Basis.X)[outcome], 70)
    with pytest.raises(RetiredQubitError, match=rf"qubit {b} .*post-selected \(probability 1\) at t=70 ns") as info:
        world.reduced_state([b], 80)
    assert (info.value.qid, info.value.time_ns) == (b, 70)


def test_discarded_and_povm_measured_qubits_are_retired():
    world = QuantumWorld()
    a, b, c = world.new_qubit(0), world.new_qubit(0), world.new_qubit(5)
    world.discard(a, 30)
    with pytest.raises(RetiredQubitError, match=rf"qubit {a} does not exist any more: it was discarded at t=30 ns"):
        world.discard(a, 40)
    world.discard(b)  # without a time: the record says when it was last touched
    with pytest.raises(RetiredQubitError, match=r"discarded \(time not given; last touched at t=0 ns\)"):
        world.apply_unitary([b], qutip.sigmax(), 40)
    with pytest.raises(WorldError, match="backwards"):
        world.discard(c, 1)
    d = world.new_qubit(5)
    zz = [qutip.tensor(p, q) for p in basis_projectors(Basis.Z) for q in basis_projectors(Basis.Z)]
    world.measure_povm([c, d], zz, np.random.default_rng(0), 9)
    with pytest.raises(RetiredQubitError, match=rf"joint POVM on qubits \[{c}, {d}\] \(outcome 0\) at t=9 ns"):
        world.reduced_state([d], 9)


def test_never_created_and_forgotten_ids():
    world = QuantumWorld()
    world.RETIRED_DETAIL_LIMIT = 2  # keep details of the last two retirements only
    with pytest.raises(UnknownQubitError, match="never created") as info:
        world.apply_unitary([3], qutip.sigmax(), 0)
    assert not isinstance(info.value, RetiredQubitError)
    qids = [world.new_qubit(0) for _ in range(3)]
    for q in qids:
        world.discard(q, 1)
    with pytest.raises(RetiredQubitError, match="measured, discarded or moved earlier") as info:
        world.discard(qids[0])
    assert info.value.event == "retired" and info.value.time_ns is None
    with pytest.raises(RetiredQubitError, match="discarded at t=1 ns"):
        world.discard(qids[2])
    with pytest.raises(UnknownQubitError, match="never created"):
        world.discard(10)


@pytest.mark.parametrize("t_comm_ns, t_store_ns", [(0, 0), (300, 0), (0, 5_000), (700, 12_000)])
def test_move_keeps_entanglement_and_switches_to_the_storage_memory(t_comm_ns, t_store_ns):
    """Φ+ with one half dephasing for t1 in a memory of coherence time T2c, then
    moved to one with T2s for t2: phase damping multiplies the coherence
    <00|ρ|11> by exp(-t/T2) (Nielsen & Chuang 2000, §8.3.6), so
    F = (1 + exp(-t1/T2c) exp(-t2/T2s)) / 2. The source id is retired."""
    t2_comm, t2_store = 1_000.0, 20_000.0
    world = QuantumWorld()
    a, comm = world.new_qubits(bell_ket(BellState.PHI_PLUS), 0, [(None, None), (None, t2_comm)])
    store = world.move(comm, t_comm_ns, t2_ns=t2_store)
    assert store not in (a, comm) and comm not in world and world.group_of(a) == [a, store]
    with pytest.raises(RetiredQubitError, match=rf"qubit {comm} .*moved to qubit {store} at t={t_comm_ns} ns"):
        world.apply_unitary([comm], qutip.sigmax(), t_comm_ns)
    f = world.fidelity_to_pure([a, store], bell_ket(BellState.PHI_PLUS), t_comm_ns + t_store_ns)
    expected = (1 + math.exp(-t_comm_ns / t2_comm) * math.exp(-t_store_ns / t2_store)) / 2
    assert f == pytest.approx(expected, abs=1e-12)
    with pytest.raises(WorldError, match="2\\*T1"):
        world.move(store, t_comm_ns + t_store_ns, t1_ns=100, t2_ns=300)
    assert store in world  # a refused move leaves the qubit where it was


# ------------------------------------------------------------------ PairState against QuantumWorld

_unit = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
_weights = st.lists(_unit, min_size=4, max_size=4).filter(lambda v: sum(v) > 1e-3).map(lambda v: [x / sum(v) for x in v])
_qubit = st.sampled_from(["A", "B"])
_pauli_probs = _weights  # (p_I, p_X, p_Y, p_Z)
_op = st.one_of(
    st.tuples(st.just("pauli"), st.integers(0, 3), _qubit, _pauli_probs),
    st.tuples(st.just("depolarise"), st.integers(0, 3), _qubit, _unit),
    st.tuples(st.just("dephase"), st.integers(0, 3), _qubit, _unit),
    st.tuples(st.just("correct"), st.integers(0, 3), st.sampled_from(BELLS)),
    st.tuples(st.just("wait"), st.integers(0, 2_000)),
    st.tuples(st.just("swap"), st.integers(0, 3), st.one_of(st.none(), st.sampled_from(BELLS))),
)


def _world_kraus(op: tuple) -> list[np.ndarray]:
    """Kraus sets written out from N&C 2000, §8.3.3-8.3.4, independently of PairState."""
    kind = op[0]
    if kind == "pauli":
        return [math.sqrt(p) * PAULI[name] for p, name in zip(op[3], "IXYZ")]
    if kind == "depolarise":
        p = op[3]
        return [math.sqrt(1 - 3 * p / 4) * I2] + [math.sqrt(p / 4) * PAULI[n] for n in "XYZ"]
    p = op[3]  # dephase
    return [math.sqrt(1 - p) * I2, math.sqrt(p) * PAULI["Z"]]


def _run_both(weights, memories, ops, seed):
    """Run ``ops`` on a chain of pairs held as PairStates and as QuantumWorld qubits.

    ``memories[k]`` is ((T1, T2) of A, (T1, T2) of B) of pair k. Returns the
    (PairState, [qa, qb], world, now) after each step for comparison."""
    rng = np.random.default_rng(seed)
    world = QuantumWorld()
    pairs: list[PairState] = []
    qubits: list[list[int]] = []
    mems: list[tuple] = []
    for w, mem in zip(weights, memories):
        pairs.append(PairState(BellDiagonal.from_weights(w)))
        qubits.append(world.new_qubits(pairs[-1].to_qobj(), 0, list(mem)))
        mems.append(mem)
    now = 0
    yield pairs, qubits, world, now
    for op in ops:
        kind = op[0]
        if kind == "wait":
            now += op[1]
            for pair, mem in zip(pairs, mems):
                for side, (t1, t2) in zip("AB", mem):
                    pair.memory_noise(op[1], t1, t2, side)
        elif kind == "swap":
            if len(pairs) < 2:
                continue
            i = op[1] % (len(pairs) - 1)
            left, right = pairs[i], pairs[i + 1]
            result = left.swap(right, op[2]) if op[2] is not None else left.swap(right, rng=rng)
            p_world = world.postselect([qubits[i][1], qubits[i + 1][0]], BELL_PROJECTORS[result.outcome], now)
            assert result.probability == pytest.approx(p_world, abs=ATOL)
            pairs[i : i + 2] = [result.pair]
            qubits[i : i + 2] = [[qubits[i][0], qubits[i + 1][1]]]
            mems[i : i + 2] = [(mems[i][0], mems[i + 1][1])]
            for gone in (left, right):
                with pytest.raises(PairConsumedError, match="entanglement swap"):
                    gone.fidelity()
        else:
            k = op[1] % len(pairs)
            if kind == "correct":
                pairs[k].correct_frame(op[2])
                x, z = op[2].pauli_bits
                frame = np.linalg.matrix_power(PAULI["X"], x) @ np.linalg.matrix_power(PAULI["Z"], z)
                world.apply_unitary([qubits[k][1]], qobj(frame), now)
            else:
                qa, qb = qubits[k]
                getattr(pairs[k], "pauli_channel" if kind == "pauli" else kind)(*(op[3] if kind == "pauli" else (op[3],)), op[2])
                world.apply_kraus([qa if op[2] == "A" else qb], [qobj(m) for m in _world_kraus(op)], now)
        yield pairs, qubits, world, now


def _assert_same(pairs, qubits, world, now):
    for pair, (qa, qb) in zip(pairs, qubits):
        ref = world.reduced_state([qa, qb], now).full()
        mine = pair.to_density_matrix()
        assert_density_matrix(mine, f"({pair.engine})")
        for b in BELLS:
            f = pair.fidelity(b)
            assert 0.0 <= f <= 1.0
            assert f == pytest.approx(float(np.real(bell_vec(b).conj() @ ref @ bell_vec(b))), abs=ATOL)
        assert np.abs(mine - ref).max() <= ATOL


_t2 = st.one_of(st.none(), st.floats(500.0, 1e5))


@PROPERTY
@given(
    st.lists(_weights, min_size=2, max_size=3),
    st.lists(st.tuples(_t2, _t2), min_size=3, max_size=3),
    st.lists(_op, max_size=12),
    st.integers(0, 2**31 - 1),
)
def test_bell_diagonal_pairs_agree_with_the_density_matrix_world(weights, t2s, ops, seed):
    """Random Bell-diagonal pairs under random Pauli channels, depolarising and
    phase-flip noise (N&C 2000, §8.3.3-8.3.4), T2-only memory dephasing (§8.3.6),
    frame corrections and swaps (given or sampled outcomes; Dür, Briegel, Cirac,
    Zoller, PRA 59, 169 (1999)): PairState stays Bell-diagonal and gives, after
    every step, the same fidelities to all four Bell states and the same density
    matrix as QuantumWorld doing the same physics with Kraus operators and Bell
    projectors; each swap outcome has the world's Born probability (1/4)."""
    memories = [((None, a), (None, b)) for a, b in t2s][: len(weights)]
    for pairs, qubits, world, now in _run_both(weights, memories, ops, seed):
        assert all(p.engine == "bell-diagonal" and p.conversion_reason is None for p in pairs)
        _assert_same(pairs, qubits, world, now)


_t1_memory = st.floats(20_000.0, 1e5).flatmap(lambda t1: st.tuples(st.just(t1), st.floats(0.05 * t1, 2 * t1)))


@PROPERTY
@given(
    st.lists(_weights, min_size=2, max_size=3),
    st.lists(st.tuples(_t1_memory, st.one_of(st.just((None, None)), _t1_memory)), min_size=3, max_size=3),
    st.lists(_op, max_size=12).map(lambda ops: [("wait", 1_000)] + ops),
    st.integers(0, 2**31 - 1),
)
def test_pairs_forced_to_convert_by_finite_t1_agree_with_the_world(weights, memories, ops, seed):
    """Memories with finite T1 (amplitude damping, γ = 1 - exp(-t/T1), then phase
    damping to T2 <= 2·T1; Nielsen & Chuang 2000, §8.3.5-8.3.6) take every pair
    out of the Bell-diagonal set; the first wait converts each PairState, once,
    recording why, and from then on it matches QuantumWorld step by step —
    including swaps, whose outcome probabilities are then no longer 1/4.
    (T1 >= 20 µs and waits of at most ~26 µs keep every swap outcome's
    probability >= ~1e-2, so the post-selected states are well conditioned.)"""
    memories = memories[: len(weights)]
    for pairs, qubits, world, now in _run_both(weights, memories, ops, seed):
        for pair in pairs:
            assert pair.engine == ("density-matrix" if now > 0 else "bell-diagonal")
            assert now == 0 or "finite T1" in pair.conversion_reason
        _assert_same(pairs, qubits, world, now)


# ------------------------------------------------------------------ PairState: conversion and ownership


def test_conversion_happens_once_and_keeps_the_first_reason():
    pair = PairState.werner(0.9)
    pair.memory_noise(0, 1e4, 1e4, "A")  # waiting 0 ns is the identity: nothing converts
    pair.memory_noise(500, None, 1e4, "A")  # pure dephasing keeps it Bell-diagonal
    assert pair.engine == "bell-diagonal" and pair.conversion_reason is None
    before = pair.to_density_matrix()
    hadamard = qutip.Qobj(np.array([[1, 1], [1, -1]]) / math.sqrt(2))
    pair.apply_unitary(hadamard, ["A"])
    assert pair.engine == "density-matrix" and pair.conversion_reason == "arbitrary gate on qubit(s) A"
    h = np.kron(hadamard.full(), I2)
    assert np.abs(pair.to_density_matrix() - h @ before @ h.conj().T).max() <= 1e-12
    pair.memory_noise(100, 1e4, 1e4, "B")
    assert pair.conversion_reason == "arbitrary gate on qubit(s) A"


def test_a_single_click_like_herald_state_starts_as_a_density_matrix():
    """(1-ε)|Ψ+><Ψ+| + ε|11><11| has Bell-basis coherence <Φ+|ρ|Φ-> = -ε/2 (the |11>
    term of a single-click herald; Humphreys et al., Nature 558, 268 (2018))."""
    eps = 0.1
    psi = bell_vec(BellState.PSI_PLUS)
    rho = (1 - eps) * np.outer(psi, psi.conj()) + eps * np.diag([0, 0, 0, 1.0])
    pair = PairState.from_density_matrix(rho)
    assert pair.engine == "density-matrix" and "not Bell-diagonal" in pair.conversion_reason
    assert pair.fidelity(BellState.PSI_PLUS) == pytest.approx(1 - eps, abs=1e-12)
    werner = PairState.from_density_matrix(BellDiagonal.werner(0.8).to_qobj())
    assert werner.engine == "bell-diagonal" and werner.fidelity() == pytest.approx(0.8, abs=1e-12)


def test_a_pair_is_consumed_by_measurement_swap_and_move_and_cannot_be_copied():
    rng = np.random.default_rng(3)
    a = PairState.bell(BellState.PSI_MINUS)
    assert a.measure_bell(rng) == BellState.PSI_MINUS
    with pytest.raises(PairConsumedError, match=r"Bell-measured \(outcome PSI_MINUS\)"):
        a.depolarise(0.1, "A")
    b = PairState.werner(0.9)
    world = QuantumWorld()
    qa, qb = b.move_into(world, 0, [(None, 1e4), (None, 1e4)])
    assert world.fidelity_to_pure([qa, qb], bell_ket(BellState.PHI_PLUS), 0) == pytest.approx(0.9, abs=1e-12)
    with pytest.raises(PairConsumedError, match=rf"moved into a QuantumWorld as qubits \[{qa}, {qb}\]"):
        b.to_density_matrix()
    c = PairState.werner(0.9)
    with pytest.raises(ValueError, match="itself"):
        c.swap(c, BellState.PHI_PLUS)
    for clone in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="no-cloning"):
            clone(c)
    assert c.fidelity() == pytest.approx(0.9)  # refused copies leave it intact


def test_bad_pair_inputs_are_refused_with_the_name_of_the_culprit():
    pair = PairState.werner(0.9)
    with pytest.raises(ValueError, match="sum to 1"):
        pair.pauli_channel(0.5, 0.1, 0.1, 0.1, "A")
    with pytest.raises(ValueError, match="p_x must be in"):
        pair.pauli_channel(1.0, -0.2, 0.1, 0.1, "A")
    with pytest.raises(ValueError, match="qubit must be 'A' or 'B'"):
        pair.depolarise(0.1, "C")
    with pytest.raises(ValueError, match="elapsed_ns"):
        pair.memory_noise(-1, None, 1e3, "A")
    with pytest.raises(WorldError, match="2\\*T1"):
        pair.memory_noise(10, 100, 300, "A")
    with pytest.raises(ValueError, match="exactly one"):
        pair.swap(PairState.werner(0.8))
    with pytest.raises(ValueError, match="not unitary"):
        pair.apply_unitary(np.diag([1.0, 0.5]), ["A"])
    with pytest.raises(ValueError, match="not a density matrix"):
        PairState.from_density_matrix(np.diag([1.2, -0.2, 0, 0]))
    assert pair.engine == "bell-diagonal" and pair.fidelity() == pytest.approx(0.9)
