"""CHSH measurement bases: the device's rotated bases and the link layer's CHSH sets.

The CHSH test (Clauser, Horne, Shimony & Holt, PRL 23, 880 (1969)) with the
origin measuring A0 = Z or A1 = X and the responder B0 = (Z + X)/√2
(``ZX_PLUS``) or B1 = (Z − X)/√2 (``ZX_MINUS``) uses

    S = E(A0, B0) + E(A0, B1) + E(A1, B0) − E(A1, B1),   E = <A ⊗ B>.

Closed forms used here:

* **Correlations.** Every two-qubit state has ``E(a, b) = a·T·b`` for
  observables ``a·σ``, ``b·σ``, with ``T_ij = Tr(ρ σ_i ⊗ σ_j)`` (Horodecki,
  Horodecki & Horodecki, PLA 200, 340 (1995)). With the settings above
  ``S = √2 (T_zz + T_xx)``. For Φ+ (T = diag(1, −1, 1)) S = 2√2, Tsirelson's
  bound (Cirel'son, Lett. Math. Phys. 4, 93 (1980)).
* **Werner state** of fidelity F to Φ+: ``T = (4F − 1)/3 · diag(1, −1, 1)``, so
  ``S = 2√2 (4F − 1)/3``; S > 2 exactly when F > (1 + 3/√2)/4 ≈ 0.780.
* **Pauli frame.** A pair in ``(I ⊗ X^x Z^z)|Φ+>`` is ``(X^x Z^z ⊗ I)|Φ+>`` up
  to a phase (Pauli transposes are Paulis up to sign), so with the origin's
  Z outcome flipped when x = 1 and its X outcome when z = 1 the statistics are
  those of Φ+: the corrected ``S' = √2 ((−1)^x T_zz + (−1)^z T_xx)``. The link
  reports the frame (``bell_state``), so the tests apply this correction.
* **Single-click pairs** (Humphreys et al., Nature 558, 268 (2018)) are
  ``F|Ψ±><Ψ±| + (1 − F)|11><11|`` to first order, so ``|T_xx| = F`` and
  ``|T_zz| = 2F − 1``, giving ``S' = √2 (3F − 1)``: S' > 2 exactly when
  F > (1 + √2)/3 ≈ 0.805. The end-to-end tests do not rely on this first-order
  form: they predict S' from the heralding model's exact branch states
  (``HeraldingModel.branches()``) with the correlation formula above.

Statistics: each correlator is a mean of ±1 products over n_ab pairs, with
variance (1 − E²)/n_ab, so ``se(S)² = Σ (1 − E_ab²)/n_ab``; checks allow 5
standard errors (two-sided p ≈ 6e-7 for a correct stack). Seeds are fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pydantic
import pytest
import qutip

from qnetstack.link.service import CAP_LINK_M, LinkCreate, LinkOkMeasure, RandomBasis, RequestType
from qnetstack.network.peer import Reserve, Reserved
from qnetstack.network.service import NetRejected, NetRequest
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.physical.engines.world import QuantumWorld, basis_projectors, bell_ket, bloch_ket
from qnetstack.physical.schemes.midpoint_source import MidpointSourceModel
from qnetstack.physical.schemes.model import HeraldingModel
from qnetstack.physical.schemes.single_click import SingleClickModel
from qnetstack.physical.service import Basis, BellState, Measure
from qnetstack.stack import assemble
from qnetstack.stack.probes import LinkClient, NoApplication
from qnetstack.stack.scenario import Scenario, parse_scenario
from tests.fakes import FakeContext, FakeDevice

SIGMAS = 5
EXACT = 1e-12
SQRT2 = math.sqrt(2)

_Z = np.diag([1.0, -1.0]).astype(complex)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
OBSERVABLE = {
    Basis.Z: _Z,
    Basis.X: _X,
    Basis.Y: _Y,
    Basis.ZX_PLUS: (_Z + _X) / SQRT2,
    Basis.ZX_MINUS: (_Z - _X) / SQRT2,
}
ORIGIN = (Basis.Z, Basis.X)
RESPONDER = (Basis.ZX_PLUS, Basis.ZX_MINUS)
SIGN = {(a, b): -1 if (a, b) == (Basis.X, Basis.ZX_MINUS) else 1 for a in ORIGIN for b in RESPONDER}


def frame_sign(bell: BellState, origin_basis: Basis) -> int:
    """−1 when the frame flips the origin's outcome in its basis (module docstring)."""
    x, z = bell.pauli_bits
    return -1 if (x if origin_basis is Basis.Z else z) else 1


def predicted_s(rho: np.ndarray, bell: BellState) -> float:
    """Frame-corrected S' of a 4x4 state (origin's qubit first), from <A ⊗ B>."""
    return sum(
        SIGN[a, b] * frame_sign(bell, a) * float(np.real(np.trace(rho @ np.kron(OBSERVABLE[a], OBSERVABLE[b]))))
        for a in ORIGIN
        for b in RESPONDER
    )


def werner(fidelity: float) -> np.ndarray:
    """F|Φ+><Φ+| + (1 − F)/3 on each other Bell state."""
    rho = np.zeros((4, 4), dtype=complex)
    for bell in BellState:
        ket = bell_ket(bell).full().ravel()
        rho += (fidelity if bell is BellState.PHI_PLUS else (1 - fidelity) / 3) * np.outer(ket, ket.conj())
    return rho


@dataclass
class Chsh:
    """Outcome products per setting, frame-corrected, and the S they give."""

    products: dict[tuple[Basis, Basis], list[int]] = field(default_factory=lambda: {k: [] for k in SIGN})

    def add(self, a: Basis, b: Basis, outcome_a: int, outcome_b: int, bell: BellState = BellState.PHI_PLUS) -> None:
        self.products[a, b].append(frame_sign(bell, a) * (-1) ** (outcome_a ^ outcome_b))

    def correlator(self, a: Basis, b: Basis) -> float:
        values = self.products[a, b]
        return math.fsum(values) / len(values)

    @property
    def s(self) -> float:
        return math.fsum(SIGN[k] * self.correlator(*k) for k in SIGN)

    def standard_error(self, expected: dict[tuple[Basis, Basis], float]) -> float:
        """sqrt(Σ (1 − E²)/n) with the expected correlators (module docstring)."""
        return math.sqrt(math.fsum((1 - expected[k] ** 2) / len(self.products[k]) for k in SIGN))


def expected_correlators(rho: np.ndarray, bell: BellState = BellState.PHI_PLUS) -> dict[tuple[Basis, Basis], float]:
    return {(a, b): frame_sign(bell, a) * float(np.real(np.trace(rho @ np.kron(OBSERVABLE[a], OBSERVABLE[b])))) for a, b in SIGN}


# ------------------------------------------------------------------ (a) the device's rotated bases


@pytest.mark.parametrize("basis", [Basis.ZX_PLUS, Basis.ZX_MINUS])
def test_rotated_basis_projectors_are_the_eigenprojectors_of_z_plus_or_minus_x(basis):
    """P0 + P1 = I, P0 P1 = 0, P_k² = P_k, P0 − P1 = (Z ± X)/√2, and P0 is the
    projector on the Bloch state of ``Basis.bloch_angles`` (exact, 1e-12)."""
    p0, p1 = (p.full() for p in basis_projectors(basis))
    assert np.allclose(p0 + p1, np.eye(2), atol=EXACT, rtol=0)
    assert np.allclose(p0 @ p1, 0, atol=EXACT, rtol=0)
    assert np.allclose(p0 @ p0, p0, atol=EXACT, rtol=0) and np.allclose(p1 @ p1, p1, atol=EXACT, rtol=0)
    assert np.allclose(p0 - p1, OBSERVABLE[basis], atol=EXACT, rtol=0)
    ket = bloch_ket(*basis.bloch_angles).full().ravel()
    assert np.allclose(p0, np.outer(ket, ket.conj()), atol=EXACT, rtol=0)
    assert basis.bloch_angles == (math.pi / 4, 0.0 if basis is Basis.ZX_PLUS else math.pi)
    assert not basis.is_pauli and all(b.is_pauli for b in (Basis.X, Basis.Y, Basis.Z))


STATES = [(0.0, 0.0), (math.pi, 0.0), (math.pi / 2, 0.0), (math.pi / 2, math.pi), (math.pi / 2, math.pi / 2), (0.4, 1.1)]


@pytest.mark.parametrize("basis", [Basis.ZX_PLUS, Basis.ZX_MINUS])
@pytest.mark.parametrize("theta, phi", STATES)
def test_born_rule_in_rotated_bases_is_exact(basis, theta, phi):
    """Tr(P0 ρ) = (1 + m·n)/2 for the state's Bloch vector m and the basis
    direction n = (±1/√2, 0, 1/√2) (Born rule for a spin-1/2 projector,
    Nielsen & Chuang 2000, §2.2.3 and Ex. 2.72), for six known states."""
    m = np.array([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)])
    n = np.array([1 / SQRT2 if basis is Basis.ZX_PLUS else -1 / SQRT2, 0.0, 1 / SQRT2])
    rho = qutip.ket2dm(bloch_ket(theta, phi))
    p0 = float(np.real((basis_projectors(basis)[0] * rho).tr()))
    assert abs(p0 - (1 + m @ n) / 2) < EXACT


def test_measurement_statistics_and_collapse_in_rotated_bases():
    """Sampled: |+> measured 4000 times in ZX_PLUS gives 0 with p = (1 + 1/√2)/2
    ≈ 0.854 (5 s.e. = 5 sqrt(p(1−p)/4000) ≈ 0.028; seed 11). Exact: measuring one
    half of Φ+ in ZX_MINUS leaves the other half in the eigenstate of the same
    outcome, since (A ⊗ I)|Φ+> = (I ⊗ Aᵀ)|Φ+> and A is real symmetric."""
    world = QuantumWorld()
    rng = np.random.default_rng(11)
    n = 4000
    plus = bloch_ket(math.pi / 2, 0.0)
    zeros = sum(world.measure(world.new_qubits(plus, 0)[0], Basis.ZX_PLUS, rng, 0) == 0 for _ in range(n))
    p = (1 + 1 / SQRT2) / 2
    assert abs(zeros / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n)

    for _ in range(20):
        a, b = world.new_qubits(bell_ket(BellState.PHI_PLUS), 0)
        outcome = world.measure(a, Basis.ZX_MINUS, rng, 0)
        theta, phi = Basis.ZX_MINUS.bloch_angles
        target = bloch_ket(theta, phi) if outcome == 0 else bloch_ket(math.pi - theta, phi + math.pi)
        assert abs(world.fidelity_to_pure([b], target, 0) - 1) < EXACT
        world.discard(b)


def test_bad_basis_names_are_refused_naming_the_field():
    with pytest.raises(pydantic.ValidationError, match="basis"):
        Measure(handle=0, basis="ZX")
    with pytest.raises(pydantic.ValidationError, match="remote_basis"):
        LinkCreate(remote_node="bob", type=RequestType.M, remote_basis="Z+X")
    assert Measure(handle=0, basis="ZX_PLUS").basis is Basis.ZX_PLUS


@pytest.mark.slow
@pytest.mark.parametrize("fidelity", [1.0, 0.9, 0.75])
def test_werner_states_give_the_horodecki_chsh_value(fidelity):
    """Werner pairs of fidelity F measured through the engine in the CHSH
    settings (origin Z/X, responder ZX_PLUS/ZX_MINUS, 1500 pairs per setting,
    seed 5): S = 2√2(4F − 1)/3 (Horodecki et al. 1995) within 5 s.e.; the exact
    value from the projectors equals the closed form to 1e-12. F = 0.75 is
    below (1 + 3/√2)/4 ≈ 0.780, so S ≤ 2 there (S ≈ 1.886)."""
    rho = werner(fidelity)
    closed_form = 2 * SQRT2 * (4 * fidelity - 1) / 3
    assert abs(predicted_s(rho, BellState.PHI_PLUS) - closed_form) < EXACT
    assert (closed_form > 2) is (fidelity > (1 + 3 / SQRT2) / 4)

    world = QuantumWorld()
    rng = np.random.default_rng(5)
    state = qutip.Qobj(rho, dims=[[2, 2], [2, 2]])
    chsh = Chsh()
    for a, b in SIGN:
        for _ in range(1500):
            qa, qb = world.new_qubits(state, 0)
            chsh.add(a, b, world.measure(qa, a, rng, 0), world.measure(qb, b, rng, 0))
    se = chsh.standard_error(expected_correlators(rho))
    assert abs(chsh.s - closed_form) <= SIGMAS * se, (chsh.s, closed_form, se)


# ------------------------------------------------------------------ (b), (c) through the stack


@dataclass
class Outcomes:
    """Both ends' type-M OKs, matched by the pair's herald sequence."""

    number: int
    oks: dict[str, dict[int, LinkOkMeasure]] = field(default_factory=lambda: {"alice": {}, "bob": {}})


class ChshClient(LinkClient):
    """In the network layer's place: alice asks bob for ``outcomes.number`` type-M
    pairs with random_basis = remote_random_basis = CHSH in one LinkCreate."""

    REQUIRES = frozenset({CAP_LINK_M})
    outcomes: Outcomes

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(ctx, topology)
        create = LinkCreate(
            remote_node="bob",
            type=RequestType.M,
            number=self.outcomes.number,
            random_basis=RandomBasis.CHSH,
            remote_random_basis=RandomBasis.CHSH,
        )
        self.creates = {"alice": [create]}

    def on_link(self, msg: Any) -> None:
        if not isinstance(msg, LinkOkMeasure):
            super().on_link(msg)
        self.outcomes.oks[self.ctx.node][msg.ent_id.sequence] = msg


def scenario(scheme: str, km: float, seed: int, **link: Any) -> Scenario:
    """Two nodes, memories without decoherence, so a pair is measured in the
    state its herald left it in (the branch state of the scheme's model)."""
    hardware = {"memory": {"num_qubits": 2, "t1_ns": None, "t2_ns": None}, "emission_efficiency": 0.75}
    spec = {"a": "alice", "b": "bob", "length_km": km, "scheme": scheme, "detector": {"efficiency": 0.8}, **link}
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": "alice", "hardware": hardware}, {"name": "bob", "hardware": hardware}],
            "links": [spec],
            "stop": {"max_events": None},
        }
    )


def model_of(sc: Scenario) -> HeraldingModel:
    (link,) = sc.links
    hardware = {node.name: node.hardware for node in sc.nodes}
    model = {"single-click": SingleClickModel, "midpoint-source": MidpointSourceModel}[link.scheme]
    return model(link.physics(), hardware[link.a], hardware[link.b])


def run_chsh(sc: Scenario, n: int) -> tuple[Chsh, dict[str, list[Basis]]]:
    outcomes = Outcomes(number=n)
    client = type("Client", (ChshClient,), {"outcomes": outcomes})
    assemble(sc, {"physical": "model-heralding", "link": "fast-forward-egp", "network": client, "application": NoApplication}).run()
    alice, bob = outcomes.oks["alice"], outcomes.oks["bob"]
    assert len(alice) == len(bob) == n and alice.keys() == bob.keys()
    chsh = Chsh()
    for sequence, mine in alice.items():
        theirs = bob[sequence]
        assert mine.bell_state is theirs.bell_state
        chsh.add(mine.basis, theirs.basis, mine.outcome, theirs.outcome, mine.bell_state)
    bases = {"alice": [ok.basis for ok in alice.values()], "bob": [ok.basis for ok in bob.values()]}
    return chsh, bases


def model_prediction(model: HeraldingModel) -> tuple[float, dict[tuple[Basis, Basis], float]]:
    """S' and the corrected correlators, averaged over the herald branches
    (branch i with probability p_i / p, its exact post-herald state)."""
    p = model.success_probability()
    s = 0.0
    correlators = dict.fromkeys(SIGN, 0.0)
    for branch in model.branches():
        weight = branch.probability / p
        s += weight * predicted_s(branch.state, branch.bell_state)
        for k, e in expected_correlators(branch.state, branch.bell_state).items():
            correlators[k] += weight * e
    return s, correlators


N_PAIRS = 4000
CASES = [
    # (scheme, km, link settings, seed): α = 0.05 heralds F ≈ 0.96 (S' ≈ 2.67, a violation);
    # α = 0.4 heralds F ≈ 0.69 < (1 + √2)/3 (S' ≈ 1.46, none); the midpoint source
    # (μ = 0.02 per process, S' ≈ 2.40) heralds Φ± where single-click heralds Ψ±, so
    # both frame signs are exercised
    ("single-click", 2.0, {"bright_state_population": 0.05}, 21),
    ("single-click", 2.0, {"bright_state_population": 0.4}, 22),
    ("midpoint-source", 2.0, {"scheme_params": {"source": {"mean_pair_number": 0.02}}}, 23),
]


@pytest.mark.slow
@pytest.mark.parametrize("scheme, km, settings, seed", CASES, ids=["single-click-a0.05", "single-click-a0.4", "midpoint-source"])
def test_chsh_value_through_the_link_layer_matches_the_delivered_state(scheme, km, settings, seed):
    """4000 type-M pairs with random_basis = remote_random_basis = CHSH through
    the assembled stack (model-heralding backend, fast-forward EGP): alice draws
    Z/X, bob ZX_PLUS/ZX_MINUS, each setting about 1000 times (binomial, 5 s.e.
    = 5·sqrt(N·3/16) ≈ 137); the frame-corrected S from the outcomes matches
    the S' the model's heralded states predict (correlation formula, module
    docstring) within 5 s.e. (≈ 0.23). Violation: S − 5 s.e. > 2 when the
    prediction exceeds 2, and S ≤ 2 + 5 s.e. when it does not."""
    sc = scenario(scheme, km, seed, **settings)
    predicted, correlators = model_prediction(model_of(sc))
    chsh, bases = run_chsh(sc, N_PAIRS)

    assert set(bases["alice"]) == set(ORIGIN) and set(bases["bob"]) == set(RESPONDER)
    for k, values in chsh.products.items():
        assert abs(len(values) - N_PAIRS / 4) <= SIGMAS * math.sqrt(N_PAIRS * 3 / 16), (k, len(values))

    se = chsh.standard_error(correlators)
    assert abs(chsh.s - predicted) <= SIGMAS * se, (chsh.s, predicted, se)
    if predicted > 2:
        assert chsh.s - SIGMAS * se > 2, (chsh.s, se)
    else:
        assert chsh.s <= 2 + SIGMAS * se, (chsh.s, se)
    # the prediction is on the side of 2 the case is chosen for, by more than the tolerance
    assert abs(predicted - 2) > SIGMAS * se


def test_single_click_threshold_follows_from_the_first_order_state():
    """For F|Ψ±><Ψ±| + (1 − F)|11><11| the corrected S' is √2(3F − 1) (module
    docstring), so S' ≤ 2 exactly for F ≤ (1 + √2)/3; the model's exact branch
    states at α = 0.05 and 0.4 sit on the side of the threshold their fidelity
    says, and within 0.02 of √2(3F − 1) (the first-order form neglects
    two-photon terms of order α·(loss))."""
    threshold = (1 + SQRT2) / 3
    for alpha in (0.05, 0.4):
        model = model_of(scenario("single-click", 2.0, 1, bright_state_population=alpha))
        s, _ = model_prediction(model)
        fidelity = sum(b.probability * b.fidelity for b in model.branches()) / model.success_probability()
        assert (s > 2) is (fidelity > threshold)
        assert abs(s - SQRT2 * (3 * fidelity - 1)) < 0.02, (alpha, s, fidelity)


# ------------------------------------------------------------------ the layers above


def test_network_layer_refuses_type_m_in_rotated_bases():
    """swap-asap corrects a type-M outcome by flipping it; a Pauli frame maps
    (Z ± X)/√2 to ±(Z ∓ X)/√2, which no flip undoes, so such requests are
    rejected at once and nothing is asked of the link layer."""
    device = FakeDevice("alice")
    ctx = FakeContext("alice", device)
    graph = nx.Graph()
    graph.add_edge("alice", "bob", length_km=10.0)
    entity = SwapAsap(ctx, graph)
    entity.start()
    for request_id, basis in enumerate((Basis.ZX_PLUS, Basis.ZX_MINUS)):
        entity.handle_above(NetRequest(request_id=request_id, remote_node="bob", type=RequestType.M, basis=basis))
    rejected = ctx.take(NetRejected)
    assert [r.request_id for r in rejected] == [0, 1]
    assert "ZX_PLUS" in rejected[0].reason and "ZX_MINUS" in rejected[1].reason
    assert not ctx.take(LinkCreate)
    entity.handle_above(NetRequest(request_id=2, remote_node="bob", type=RequestType.K, basis=Basis.ZX_PLUS))
    (reserve,) = ctx.take(Reserve)  # type K has no basis to correct: served, once bob has set memory aside
    entity.handle_peer("bob", Reserved(head="alice", circuit=reserve.circuit, node="bob"))
    assert len(ctx.take(LinkCreate)) == 1


def test_chsh_sets_differ_by_end():
    """CHSH: the origin draws from {Z, X}, the responder from {ZX_PLUS, ZX_MINUS};
    the other sets are the same at both ends (NONE: none, the fixed basis is used)."""
    assert RandomBasis.CHSH.bases(at_origin=True) == ORIGIN
    assert RandomBasis.CHSH.bases(at_origin=False) == RESPONDER
    for choice in (RandomBasis.XZ, RandomBasis.XYZ):
        assert choice.bases(at_origin=True) == choice.bases(at_origin=False)
    assert RandomBasis.NONE.bases(at_origin=True) == ()
