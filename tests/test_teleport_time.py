"""Teleportation on devices whose operations take time, through the whole stack.

The sender's Bell measurement (duration d: the Bell measurement's parts, carried here by the
two-qubit gate's duration) and the receiver's correction gates (g each) go through the device's
request path, so the outcome leaves d later, the state is read k·g after the outcome arrives
(k = number of correction gates, 0–2) and every qubit involved decoheres meanwhile.

Closed form for the |+> state under pure dephasing (no T1): teleportation over a pair turns the
pair's errors into a Pauli channel on the teleported qubit (Bennett et al., PRL 70, 1895, 1993),
and dephasing for a time t multiplies a qubit's coherence by exp(-t/T2) (Nielsen & Chuang 2000,
§8.3.6); a Z error on the input qubit, on either half of the pair, or on the output is the same Z
on the output. During d three qubits wait (the input, the sender's half, the receiver's half),
during the gates one (the receiver's half), so the output's coherence c = 2F - 1 is multiplied by
exactly exp(-(3d + k·g)/T2) against the same seed without durations (the pair is the same: the
link draws the same numbers, and nothing draws between the pair's delivery and the measurement).
"""

from __future__ import annotations

import math

import pytest

from qnetstack.application.apps import BasicApps
from qnetstack.application.service import AppDone, TeleportResult
from qnetstack.stack import assemble
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import parse_scenario

T2_NS = 20_000_000
PLUS = {"theta_rad": math.pi / 2, "phi_rad": 0.0}


def link(seed: int, measure_ns: int, gate_ns: int, t2_ns: int | None = T2_NS, number: int = 1) -> dict:
    # with many states, room for the pairs the network delivers while measurements are under way
    # (the sender takes a qubit for each input state; a full memory ends the request with NO_QUBIT)
    memory = {"num_qubits": 2 if number == 1 else 16, "t2_ns": t2_ns}
    return {
        "name": "teleport-in-time",
        "seed": seed,
        "nodes": [
            {"name": "alice", "hardware": {"memory": {**memory, "two_qubit_gate_duration_ns": measure_ns}}},
            {"name": "bob", "hardware": {"memory": {**memory, "single_qubit_gate_duration_ns": gate_ns}}},
        ],
        "links": [{"a": "alice", "b": "bob", "length_km": 2}],
        "applications": [{"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "number": number, "states": [PLUS]}}],
    }


def teleport(seed: int, measure_ns: int, gate_ns: int, t2_ns: int | None = T2_NS, number: int = 1):  # type: ignore[no-untyped-def]
    sim = assemble(parse_scenario(link(seed, measure_ns, gate_ns, t2_ns, number)))
    result = sim.run()
    assert result.status == "done", result.status
    messages = [m for _, _, m in sim.network.user_messages]
    results = [m for m in messages if isinstance(m, TeleportResult)]
    (done,) = [m for m in messages if isinstance(m, AppDone)]
    held = {n: sim.network.entities[n]["physical"].held_handles() for n in ("alice", "bob")}
    assert not any(held.values()), f"qubits still held: {held}"
    return results, done


@pytest.mark.parametrize("seed", range(1, 9))
def test_the_teleported_coherence_decays_by_the_closed_form_over_the_durations(seed):
    """Eight seeds; the factor is exact per seed (no sampling: the same pair with and without the
    durations), so the tolerance is rounding only."""
    d, g = 2_000_000, 500_000
    (quick,), quick_done = teleport(seed, 0, 0)
    (slow,), slow_done = teleport(seed, d, g)
    late = slow.received_time_ns - quick.received_time_ns
    gates, rest = divmod(late - d, g)
    assert rest == 0 and 0 <= gates <= 2, late
    factor = math.exp(-(3 * d + gates * g) / T2_NS)
    coherence_quick, coherence_slow = 2 * quick.oracle_fidelity - 1, 2 * slow.oracle_fidelity - 1
    assert coherence_quick > 0.3  # a pair worth the name: there is coherence to lose
    assert coherence_slow == pytest.approx(factor * coherence_quick, rel=1e-9, abs=1e-12)
    # the sender's request ends when its measurement is done, not when the pair arrived
    assert slow_done.time_ns - quick_done.time_ns == d


def test_without_decoherence_the_durations_only_delay():
    (quick,), _ = teleport(4, 0, 0, t2_ns=None)
    (slow,), _ = teleport(4, 1_000_000, 300_000, t2_ns=None)
    assert slow.received_time_ns > quick.received_time_ns
    assert slow.oracle_fidelity == pytest.approx(quick.oracle_fidelity, abs=1e-12)


def test_many_states_with_measurements_under_way_all_arrive_and_nothing_stays_held():
    """Six states, each measurement d long: every state is reported once, the request ends no
    earlier than d after it would without durations (its last measurement), and no qubit is held
    at the end (checked in ``teleport``)."""
    d = 5_000_000
    quick, quick_done = teleport(2, 0, 0, number=6)
    results, done = teleport(2, d, 100_000, number=6)
    assert sorted(r.index for r in results) == list(range(6)) == sorted(r.index for r in quick)
    assert done.completed == 6
    assert done.time_ns - quick_done.time_ns >= d


class MeasuresAtOnce(BasicApps):
    """The reference before device time: every operation executed at once."""

    def _takes_time(self, op):  # type: ignore[no-untyped-def]
        return False


def test_an_application_that_ignores_device_time_fails_app_dev_1():
    assert run_conformance("application", BasicApps, select=["APP-DEV-1"]).failed_clauses() == []
    assert run_conformance("application", MeasuresAtOnce, select=["APP-DEV-1"]).failed_clauses() == ["APP-DEV-1"]
