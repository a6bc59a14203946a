"""The world's one-step Bell measurement of two link-pair halves (QuantumWorld.measure_two_after).

It must be the same operation as a unitary followed by two Z measurements: the same outcome for
the same random draws and the same post-measurement state of the outer qubits, whichever half of
each pair is measured and with memory noise pending on the measured qubits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.physical.engines.world import QuantumWorld, RetiredQubitError, WorldError

BELL_ROTATION = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, -1], [0, 1, -1, 0]], dtype=complex) / math.sqrt(2)


def random_density_matrix(rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    rho = a @ a.conj().T
    return rho / np.trace(rho)


def random_unitary(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


def two_pairs(rho1: np.ndarray, rho2: np.ndarray, middle_first: tuple[bool, bool]) -> tuple[QuantumWorld, list[int], list[int], int, int]:
    """A world with two pairs (with T1/T2 noise): the world, the pairs' ids, and the two to measure."""
    world = QuantumWorld()
    noise = [(5_000.0, 4_000.0), (7_000.0, 3_000.0)]
    p1 = world.new_qubits(rho1, 0, noise)
    p2 = world.new_qubits(rho2, 0, noise)
    a = p1[0] if middle_first[0] else p1[1]
    b = p2[0] if middle_first[1] else p2[1]
    return world, p1, p2, a, b


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    middle_first=st.tuples(st.booleans(), st.booleans()),
    bell=st.booleans(),
    elapsed=st.integers(0, 3_000),
)
def test_one_step_bell_measurement_is_the_unitary_then_two_measurements(seed, middle_first, bell, elapsed):
    rng = np.random.default_rng(seed)
    rho1, rho2 = random_density_matrix(rng), random_density_matrix(rng)
    unitary = BELL_ROTATION if bell else random_unitary(rng)
    fast, p1, p2, a, b = two_pairs(rho1, rho2, middle_first)
    slow, *_ = two_pairs(rho1, rho2, middle_first)
    draws_fast, draws_slow = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)

    outcomes = fast.measure_two_after(a, b, unitary, draws_fast, elapsed)
    slow.apply_unitary([a, b], unitary, elapsed)
    expected = (slow.measure(a, "Z", draws_slow, elapsed), slow.measure(b, "Z", draws_slow, elapsed))

    assert outcomes == expected
    assert draws_fast.random() == draws_slow.random()  # the same number of draws was used
    outer = [q for q in p1 + p2 if q not in (a, b)]
    assert fast.group_of(outer[0]) == slow.group_of(outer[0]) == outer
    later = elapsed + 1_000  # pending noise on the outer qubits is applied alike
    assert np.allclose(fast.reduced_state(outer, later).full(), slow.reduced_state(outer, later).full(), atol=1e-12)
    for q in (a, b):
        with pytest.raises(RetiredQubitError, match="measured in the Z basis"):
            fast.dim(q)


def test_halves_of_one_pair_take_the_general_path():
    """Two qubits of one group (not a swap) are measured as the unitary and two measurements."""
    world = QuantumWorld()
    phi_plus = np.zeros((4, 4), dtype=complex)
    phi_plus[0, 0] = phi_plus[0, 3] = phi_plus[3, 0] = phi_plus[3, 3] = 0.5
    a, b = world.new_qubits(phi_plus, 0)
    # Φ+ rotated by CNOT then H is |00>: outcome (0, 0) with certainty
    assert world.measure_two_after(a, b, BELL_ROTATION, np.random.default_rng(3), 0) == (0, 0)
    assert len(world) == 0


def test_a_non_unitary_is_refused():
    world, _, _, a, b = two_pairs(np.eye(4) / 4, np.eye(4) / 4, (False, True))
    with pytest.raises(WorldError, match="not unitary"):
        world.measure_two_after(a, b, 2 * np.eye(4), np.random.default_rng(0), 0)
