"""The reference physical entities (physical.backends.qutip_backend) driven alone.

No kernel: each entity gets a tiny fake context that records what it sends,
and the tests carry messages between nodes and station by hand, moving the
clock as the kernel would (one fibre delay of L/2 each way).
Statistical checks state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip

from qnetstack.entity import Entity, EntityError
from qnetstack.physical.backends.qutip_backend import MidpointStation, PhotonReport, QutipSingleClickBackend, StationHerald
from qnetstack.physical.engines.world import bell_ket
from qnetstack.physical.params import DetectorParams, FibreParams, LinkSide, MemoryParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.single_click import arrival_efficiency, herald_fidelity, success_probability
from qnetstack.physical.service import (
    CAP_DEVICE,
    CAP_FAULTS,
    CAP_HERALDING,
    ApplyGate,
    Basis,
    BellMeasure,
    BellMeasureResult,
    BellState,
    DeviceError,
    DeviceErrorCode,
    DeviceService,
    FreeQubit,
    Gate,
    HeraldAttempt,
    HeraldResult,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    QubitAllocated,
    QubitRef,
)
from tests.fakes import FakeContext

CNOT = qutip.Qobj(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]), dims=[[2, 2], [2, 2]])


# a lossless, dark-count-free link with α = 1: both photons always arrive and
# bunch, so every attempt heralds (D+ or D-, p_succ = 2·1·1·(1 - 1/2) = 1)
CERTAIN = SingleClickLinkParams(
    length_km=2.0,
    fibre=FibreParams(db_per_km=0.0),
    detector=DetectorParams(efficiency=1.0),
    bright_state_population=1.0,
)
LOSSLESS_HW = NodeHardware(emission_efficiency=1.0, memory=MemoryParams(num_qubits=2, t2_ns=None))


class Link:
    """Two PhysicalNodes and their station, wired by hand."""

    def __init__(self, params: SingleClickLinkParams, hw_a: NodeHardware, hw_b: NodeHardware | None = None, seed: int = 0) -> None:
        hw_b = hw_b or hw_a
        self.params = params
        self.backend = QutipSingleClickBackend()
        self.ca, self.cb, self.cs = FakeContext("A", seed=seed), FakeContext("B", seed=seed + 1), FakeContext("A~B", seed=seed + 2)
        side_a = LinkSide(station="A~B", params=params, neighbour_hardware=hw_b)
        side_b = LinkSide(station="A~B", params=params, neighbour_hardware=hw_a)
        self.a = self.backend.node_entity(self.ca, hw_a, {"B": side_a})
        self.b = self.backend.node_entity(self.cb, hw_b, {"A": side_b})
        self.s = self.backend.station_entity(self.cs, ("A", "B"), params, {"A": hw_a, "B": hw_b})
        self.ca.device, self.cb.device = self.a, self.b
        self.half_ns = params.fibre.delay_ns(params.length_km / 2)
        self.now = 0

    def set_time(self, t: int) -> None:
        for c in (self.ca, self.cb, self.cs):
            c.now_ns = t

    def emit(self, attempt_id: int, who: str = "AB", alpha: float | None = None) -> None:
        self.set_time(self.now)
        if "A" in who:
            self.a.handle_above(HeraldAttempt(neighbour="B", attempt_id=attempt_id, bright_state_population=alpha))
        if "B" in who:
            self.b.handle_above(HeraldAttempt(neighbour="A", attempt_id=attempt_id, bright_state_population=alpha))

    def to_station(self) -> None:
        """Deliver the reports after L/2, then fire the station's timer(s)."""
        self.set_time(self.now + self.half_ns)
        for ctx in (self.ca, self.cb):
            for dest, msg in ctx.peer:
                assert dest == "A~B"
                self.s.handle_peer(ctx.node, msg)
            ctx.peer.clear()
        self.cs.advance(self.s, self.cs.now_ns)  # fires the zero-delay resolution timer(s)
        assert not self.cs.timers, "the station set a timer with a non-zero delay"
        assert not (self.ca.down or self.cb.down), "the physical layer has nothing below it"

    def to_nodes(self) -> None:
        self.set_time(self.now + 2 * self.half_ns)
        for dest, msg in self.cs.peer:
            (self.a if dest == "A" else self.b).handle_peer("A~B", msg)
        self.cs.peer.clear()

    def attempt(self, attempt_id: int, who: str = "AB") -> tuple[HeraldResult | None, HeraldResult | None]:
        self.emit(attempt_id, who)
        self.to_station()
        self.to_nodes()
        self.now += 2 * self.half_ns
        ra = self.ca.up.pop() if "A" in who else None
        rb = self.cb.up.pop() if "B" in who else None
        return ra, rb


def bell_pair_on(node, backend, bell: BellState) -> tuple[int, int]:
    """Prepare ``bell`` on two fresh qubits of ``node`` (H, CNOT, then the frame X^x Z^z)."""
    ha = node.execute(InitQubit()).handle
    hb = node.execute(InitQubit()).handle
    qa, qb = node.qubit_id(ha), node.qubit_id(hb)
    node.execute(ApplyGate(gate=Gate.H, handle=ha))
    backend.world.apply_unitary([qa, qb], CNOT, 0)  # the device offers no two-qubit gate
    x, z = bell.pauli_bits
    if x:
        node.execute(ApplyGate(gate=Gate.X, handle=hb))
    if z:
        node.execute(ApplyGate(gate=Gate.Z, handle=hb))
    return ha, hb


def lone_node(num_qubits: int = 4, t2_ns: int | None = None):
    backend = QutipSingleClickBackend()
    ctx = FakeContext("A", seed=3)
    node = backend.node_entity(ctx, NodeHardware(memory=MemoryParams(num_qubits=num_qubits, t2_ns=t2_ns)), {})
    ctx.device = node
    return backend, ctx, node


# ------------------------------------------------------------------ contracts


def test_entities_satisfy_the_protocols():
    link = Link(CERTAIN, LOSSLESS_HW)
    assert isinstance(link.a, Entity) and isinstance(link.a, DeviceService)
    assert isinstance(link.s, Entity) and isinstance(link.s, MidpointStation)
    assert QutipSingleClickBackend.PROVIDES == {CAP_DEVICE, CAP_HERALDING, CAP_FAULTS}
    assert QutipSingleClickBackend.name == "qutip-single-click"


# ------------------------------------------------------------------ device


@pytest.mark.parametrize("bell", list(BellState))
def test_bell_measurement_identifies_each_bell_state(bell):
    """CNOT, H, Z-measure both maps |B(x, z)> to |z, x> (Nielsen & Chuang 2000,
    §1.3.7 run backwards), so the result names the prepared state every time."""
    for seed in range(10):
        backend, ctx, node = lone_node()
        ctx.rng = np.random.default_rng(seed)
        ha, hb = bell_pair_on(node, backend, bell)
        refs = [QubitRef(node="A", handle=ha), QubitRef(node="A", handle=hb)]
        assert node.execute(OracleFidelity(qubits=refs, bell_state=bell)).fidelity == pytest.approx(1.0)
        result = node.execute(BellMeasure(handle_a=ha, handle_b=hb))
        assert result == BellMeasureResult(bell_state=bell)
        assert node.held_handles() == []
        assert len(backend.world) == 0


def test_init_gates_and_measure():
    """InitQubit(θ, φ) prepares cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>; X flips, H S map to
    the Y eigenbasis (standard gate definitions, N&C 2000, §4.2)."""
    backend, ctx, node = lone_node()
    theta, phi = 1.2, 0.7
    h = node.execute(InitQubit(theta_rad=theta, phi_rad=phi)).handle
    ref = [QubitRef(node="A", handle=h)]
    assert node.execute(OracleFidelity(qubits=ref, theta_rad=theta, phi_rad=phi)).fidelity == pytest.approx(1.0)
    antipode = OracleFidelity(qubits=ref, theta_rad=math.pi - theta, phi_rad=phi + math.pi)
    assert node.execute(antipode).fidelity == pytest.approx(0.0, abs=1e-12)
    h1 = node.execute(InitQubit(theta_rad=math.pi)).handle
    assert node.execute(Measure(handle=h1)) == MeasureResult(outcome=1, basis=Basis.Z)
    h2 = node.execute(InitQubit()).handle
    node.execute(ApplyGate(gate=Gate.X, handle=h2))
    assert node.execute(Measure(handle=h2)).outcome == 1
    h3 = node.execute(InitQubit()).handle
    node.execute(ApplyGate(gate=Gate.H, handle=h3))
    node.execute(ApplyGate(gate=Gate.S, handle=h3))
    assert node.execute(Measure(handle=h3, basis=Basis.Y)).outcome == 0
    assert node.held_handles() == [h]


def test_memory_slots_run_out_and_come_back():
    backend, ctx, node = lone_node(num_qubits=2)
    assert [node.execute(InitQubit()).handle for _ in range(2)] == [0, 1]
    err = node.execute(InitQubit())
    assert isinstance(err, DeviceError) and err.code is DeviceErrorCode.NORES
    node.execute(FreeQubit(handle=0))
    assert node.execute(InitQubit()) == QubitAllocated(handle=0)


def test_freed_or_measured_handles_are_refused():
    backend, ctx, node = lone_node()
    h = node.execute(InitQubit()).handle
    qid = node.qubit_id(h)
    node.execute(Measure(handle=h))
    for op in (Measure(handle=h), ApplyGate(gate=Gate.X, handle=h), FreeQubit(handle=h), Measure(handle=99)):
        err = node.execute(op)
        assert isinstance(err, DeviceError) and err.code is DeviceErrorCode.UNKNOWN_HANDLE
    assert qid not in backend.world
    h2 = node.execute(InitQubit()).handle
    err = node.execute(BellMeasure(handle_a=h2, handle_b=h2))
    assert isinstance(err, DeviceError) and err.code is DeviceErrorCode.UNSUPPORTED
    err = node.execute(OracleFidelity(qubits=[QubitRef(node="A", handle=h2)], bell_state=BellState.PHI_PLUS))
    assert isinstance(err, DeviceError) and err.code is DeviceErrorCode.UNSUPPORTED
    err = node.execute(OracleFidelity(qubits=[QubitRef(node="Z", handle=0)]))
    assert isinstance(err, DeviceError) and err.code is DeviceErrorCode.UNKNOWN_HANDLE
    assert node.execute(HeraldAttempt(neighbour="B", attempt_id=0)).code is DeviceErrorCode.UNSUPPORTED


def test_oracle_sees_memory_decoherence():
    """|+> stored for t with T2 (T1 = ∞): F = (1 + e^{-t/T2})/2 (N&C 2000, §8.3.6)."""
    backend, ctx, node = lone_node(t2_ns=10_000)
    h = node.execute(InitQubit(theta_rad=math.pi / 2)).handle
    ctx.now_ns = 7_000
    f = node.execute(OracleFidelity(qubits=[QubitRef(node="A", handle=h)], theta_rad=math.pi / 2)).fidelity
    assert f == pytest.approx((1 + math.exp(-0.7)) / 2, abs=1e-12)


# ------------------------------------------------------------------ heralding by hand


def test_one_attempt_step_by_step():
    """Emission -> reports after L/2 -> station timer(0) -> heralds after L/2 -> results up."""
    link = Link(CERTAIN, LOSSLESS_HW)
    link.emit(7)
    (dest_a, rep_a), (dest_b, rep_b) = link.ca.peer[0], link.cb.peer[0]
    assert dest_a == dest_b == "A~B"
    assert isinstance(rep_a, PhotonReport) and rep_a.node == "A" and rep_a.photon is not None
    assert link.a.held_handles() == [0]  # the spin occupies a slot while the photon flies
    link.set_time(link.half_ns)
    link.ca.peer.clear()
    link.cb.peer.clear()
    link.s.handle_peer("A", rep_a)
    assert list(link.cs.timers.values()) == [(link.half_ns, ("resolve", 7))]  # resolution waits for the other report, due at this instant
    link.s.handle_peer("B", rep_b)
    assert list(link.cs.timers.values()) == [(link.half_ns, ("resolve", 7))]
    link.s.handle_timer(("resolve", 7))
    assert link.cs.traces == [("station.attempt", {"link": "A-B", "success": True, "attempt_id": 7})]
    heralds = dict(link.cs.peer)
    assert set(heralds) == {"A", "B"} and heralds["A"] is heralds["B"]
    herald = heralds["A"]
    assert isinstance(herald, StationHerald) and herald.herald_time_ns == link.half_ns
    link.to_nodes()
    ra, rb = link.ca.up[0], link.cb.up[0]
    for r, nb in ((ra, "B"), (rb, "A")):
        assert r.success and r.neighbour == nb and r.attempt_id == 7
        assert r.handle == 0 and r.herald_sequence == 1
        assert r.herald_time_ns == link.half_ns
    assert ra.bell_state == rb.bell_state in (BellState.PSI_PLUS, BellState.PSI_MINUS)
    # α = 1 leaves the spins in |11>: no overlap with either Ψ, as estimated
    assert ra.fidelity_estimate == pytest.approx(0.0, abs=1e-12)
    refs = [QubitRef(node="A", handle=0), QubitRef(node="B", handle=0)]
    oracle = link.a.execute(OracleFidelity(qubits=refs, bell_state=ra.bell_state))
    assert oracle.fidelity == pytest.approx(0.0, abs=1e-12)
    assert link.a.execute(OracleFidelity(qubits=refs[:1], theta_rad=math.pi)).fidelity == pytest.approx(1.0)


def test_both_ends_agree_and_the_state_matches_the_estimate():
    """Over many attempts: each success reaches both ends with the same sequence
    number and Bell state; the sequence counts successes; and the oracle
    fidelity at the herald time equals fidelity_estimate, memory noise during
    the photons' flight included (closed form of physical.schemes.single_click)."""
    params = SingleClickLinkParams(
        length_km=10.0,
        bright_state_population=0.2,
        detector=DetectorParams(efficiency=0.9, dark_count_probability=0.01),
    )
    hw = NodeHardware(memory=MemoryParams(num_qubits=1, t1_ns=400_000, t2_ns=100_000))
    link = Link(params, hw, seed=11)
    successes = 0
    for attempt_id in range(300):
        link.emit(attempt_id)
        link.to_station()
        herald_time = link.now + link.half_ns
        link.to_nodes()
        link.now += 2 * link.half_ns
        ra, rb = link.ca.up.pop(), link.cb.up.pop()
        assert ra.success == rb.success
        if not ra.success:
            assert link.a.held_handles() == [] and link.b.held_handles() == []
            continue
        successes += 1
        assert ra.herald_sequence == rb.herald_sequence == successes
        assert ra.bell_state == rb.bell_state
        assert ra.fidelity_estimate == rb.fidelity_estimate
        qa, qb = link.a.qubit_id(ra.handle), link.b.qubit_id(rb.handle)
        f_herald = link.backend.world.fidelity_to_pure([qa, qb], bell_ket(ra.bell_state), herald_time)
        assert f_herald == pytest.approx(ra.fidelity_estimate, abs=1e-9)
        assert f_herald < herald_fidelity(0.2, *(2 * [arrival_efficiency(params, hw) * 0.9]), 0.01)  # noise is visible
        link.a.execute(FreeQubit(handle=ra.handle))
        link.b.execute(FreeQubit(handle=rb.handle))
    assert successes >= 5
    assert link.s.herald_sequence == successes
    assert len(link.backend.world) == 0  # nothing leaks: every photon and spin is gone


@pytest.mark.slow
def test_sampled_success_fraction_through_the_entities():
    """N = 2000 attempts through nodes and station (seed 5): success fraction
    within 5 s.e. of the analytic p_succ that capabilities() advertises."""
    params = SingleClickLinkParams(
        length_km=5.0, bright_state_population=0.3, detector=DetectorParams(efficiency=0.8, dark_count_probability=0.02)
    )
    hw_a = NodeHardware(emission_efficiency=0.6)
    hw_b = NodeHardware(emission_efficiency=0.9)
    link = Link(params, hw_a, hw_b, seed=5)
    p = link.a.capabilities().links["B"].success_probability
    assert p == pytest.approx(link.b.capabilities().links["A"].success_probability)
    n = 2000
    wins = 0
    for attempt_id in range(n):
        ra, rb = link.attempt(attempt_id)
        wins += ra.success
        if ra.success:
            link.a.execute(FreeQubit(handle=ra.handle))
            link.b.execute(FreeQubit(handle=rb.handle))
    assert abs(wins / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    attempts = [f for e, f in link.cs.traces if e == "station.attempt"]
    assert len(attempts) == n and sum(f["success"] for f in attempts) == wins


def test_capabilities_follow_the_fibre_and_the_closed_form():
    """attempt period = 2 × delay(L/2), classical delay = delay(L) (L/(c/n)),
    p_succ and F from the closed form with η = emission × 10^(-αL/20) × η_d."""
    params = SingleClickLinkParams(
        length_km=30.0,
        bright_state_population=0.15,
        detector=DetectorParams(efficiency=0.7, dark_count_probability=1e-3),
    )
    hw_a = NodeHardware(emission_efficiency=0.5, memory=MemoryParams(num_qubits=3, t2_ns=None))
    hw_b = NodeHardware(emission_efficiency=0.8, memory=MemoryParams(num_qubits=3, t2_ns=None))
    link = Link(params, hw_a, hw_b)
    cap = link.a.capabilities()
    assert cap.node == "A" and cap.num_qubits == 3 and set(cap.links) == {"B"}
    hl = cap.links["B"]
    assert hl.attempt_period_ns == 2 * round(15.0 * 1.468 / 299_792.458 * 1e9)
    assert hl.classical_delay_ns == round(30.0 * 1.468 / 299_792.458 * 1e9)
    eta_a = 0.5 * 10 ** (-0.2 * 15 / 10) * 0.7
    eta_b = 0.8 * 10 ** (-0.2 * 15 / 10) * 0.7
    assert hl.success_probability == pytest.approx(success_probability(0.15, eta_a, eta_b, 1e-3), rel=1e-12)
    assert hl.fidelity == pytest.approx(herald_fidelity(0.15, eta_a, eta_b, 1e-3), rel=1e-12)  # no memory noise here
    assert hl.bright_state_population == 0.15 and hl.scheme == "single-click"


def test_bright_state_population_override():
    """α from HeraldAttempt wins over the link's: α = 0 with no dark counts never heralds."""
    link = Link(CERTAIN, LOSSLESS_HW)
    link.emit(0, alpha=0.0)
    reports = [m for c in (link.ca, link.cb) for _, m in c.peer]
    assert [r.bright_state_population for r in reports] == [0.0, 0.0]
    link.to_station()
    link.to_nodes()
    assert not link.ca.up.pop().success and not link.cb.up.pop().success


# ------------------------------------------------------------------ awkward cases


def test_no_free_memory_still_keeps_both_ends_in_step():
    full = NodeHardware(emission_efficiency=1.0, memory=MemoryParams(num_qubits=0, t2_ns=None))
    link = Link(CERTAIN, full, LOSSLESS_HW)
    ra, rb = link.attempt(0)
    assert ra == HeraldResult(neighbour="B", attempt_id=0, success=False, no_memory=True)
    assert not rb.success and not rb.no_memory
    assert link.b.held_handles() == []
    assert link.cs.traces == [("station.attempt_incomplete", {"link": "A-B", "attempt_id": 0})]
    assert len(link.backend.world) == 0


def test_only_one_end_attempts():
    link = Link(CERTAIN, LOSSLESS_HW)
    ra, _ = link.attempt(3, who="A")
    assert not ra.success and link.a.held_handles() == []
    assert [d for d, _ in link.cs.peer] == []  # B took no part and hears nothing
    assert len(link.backend.world) == 0


def test_herald_for_a_qubit_freed_meanwhile_does_not_crash():
    link = Link(CERTAIN, LOSSLESS_HW)
    link.emit(0)
    link.to_station()
    link.a.execute(FreeQubit(handle=0))  # e.g. the link layer gave the slot up
    link.a.execute(InitQubit())  # and the slot is taken by someone else
    other = link.a.qubit_id(0)
    link.to_nodes()
    ra, rb = link.ca.up.pop(), link.cb.up.pop()
    assert not ra.success and rb.success
    assert ("physical.herald_orphaned", {"neighbour": "B", "attempt_id": 0}) in link.ca.traces
    assert link.a.qubit_id(0) == other  # the newcomer is untouched
    # a failure herald for a freed slot is fine too
    link.now += 2 * link.half_ns
    link.params = CERTAIN
    link.emit(1, alpha=0.0)
    link.to_station()
    link.a.execute(FreeQubit(handle=1))
    link.to_nodes()
    assert not link.ca.up.pop().success


def test_misuse_is_reported_clearly():
    link = Link(CERTAIN, LOSSLESS_HW)
    with pytest.raises(EntityError, match="not a neighbour"):
        link.a.handle_above(HeraldAttempt(neighbour="C", attempt_id=0))
    link.emit(0, who="A")
    with pytest.raises(EntityError, match="still in flight"):
        link.emit(0, who="A")
    _, report = link.ca.peer[0]
    with pytest.raises(EntityError):
        link.s.handle_peer("C", report)  # not an end of this link
    link.s.handle_peer("A", report)
    with pytest.raises(EntityError, match="twice"):
        link.s.handle_peer("A", report)
    with pytest.raises(EntityError, match="unknown attempt"):
        link.b.handle_peer("A~B", StationHerald(attempt_id=5, success=False, herald_time_ns=0))
    with pytest.raises(ValueError, match="already"):
        link.backend.node_entity(FakeContext("A"), LOSSLESS_HW, {})
