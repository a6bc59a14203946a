"""BBM92 and E91 end to end: the QKD application over the assembled stack.

Predictions come from the delivered states. A probe (a subclass of the
application's QKD part, test code only) reads, just before the first of the
two ends measures a pair, the pair's fidelity to each of the four Bell states
from the quantum world. Z⊗Z and X⊗X are diagonal in the Bell basis
(ZZ = +1 on Φ±, −1 on Ψ±; XX = +1 on Φ+ and Ψ+, −1 on Φ− and Ψ−), so

    <ZZ> = p(Φ+) + p(Φ−) − p(Ψ+) − p(Ψ−),   <XX> = p(Φ+) − p(Φ−) + p(Ψ+) − p(Ψ−)

hold for every two-qubit state, not only Bell-diagonal ones. With the head's
frame correction (Z outcome flipped when the frame's x = 1, X when z = 1;
tests/test_chsh.py) the corrected correlators are (−1)^x <ZZ> and (−1)^z <XX>;
a Z or X round errs with probability (1 − E)/2, and the CHSH value of the
settings used is S = √2 (E_ZZ + E_XX) (Horodecki, Horodecki & Horodecki, PLA
200, 340, 1995). The memories do not decohere and readout is perfect here, so
the state read before the first measurement is the state both ends measure.

Statistics: the measured QBER over n sifted rounds has standard error
sqrt(Q(1 − Q)/n); S has the standard error of its four correlators,
sqrt(Σ (1 − E²)/n_ab) (``sifting.chsh_estimate``). Checks allow 5 standard
errors (two-sided p ≈ 6e-7 for a correct stack). Seeds are fixed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pydantic
import pytest

from qnetstack.application import qkd_apps
from qnetstack.application.apps import BasicApps
from qnetstack.application.qkd.sifting import chsh_estimate
from qnetstack.application.qkd.types import RawRecords
from qnetstack.application.qkd_apps import E91_CHSH, QkdApps
from qnetstack.application.service import AppDone, AppError, AppErrorCode, KeyDelivered, QkdRequest
from qnetstack.physical.engines.world import bell_vector
from qnetstack.physical.service import BellState
from qnetstack.stack import assemble
from qnetstack.stack.scenario import ScenarioError, parse_scenario

SIGMAS = 5
FAST = {"physical": "model-heralding", "link": "fast-forward-egp"}


class _Probe:
    """What the probe saw in one run: per pair, the frame-corrected <ZZ> and <XX>; the post-processing's inputs."""

    def __init__(self) -> None:
        self.correlators: dict[tuple[str, int, int], tuple[float, float]] = {}
        self.records: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []


def probed_apps(probe: _Probe) -> type:
    """An application class whose QKD part reads each pair's Bell fidelities before its first measurement."""

    class ProbeQkd(QkdApps):
        def _head_pair(self, pair: Any) -> None:
            self._read(pair.pair_id, pair.handle, pair.bell_state)
            super()._head_pair(pair)

        def _tail_pair(self, pair: Any) -> None:
            self._read(pair.pair_id, pair.handle, pair.bell_state)
            super()._tail_pair(pair)

        def _read(self, pair_id: Any, handle: int, frame: BellState) -> None:
            key = (pair_id.head, pair_id.request_id, pair_id.index)
            if key in probe.correlators:
                return
            device = self.ctx.device
            world, qid = device._world, device.qubit_id(handle)
            group = world.group_of(qid)
            assert len(group) == 2, group  # the pair alone: neither half measured yet
            now = self.ctx.now_ns
            p = {b: world.fidelity_to_pure(group, bell_vector(b), now) for b in BellState}
            zz = p[BellState.PHI_PLUS] + p[BellState.PHI_MINUS] - p[BellState.PSI_PLUS] - p[BellState.PSI_MINUS]
            xx = p[BellState.PHI_PLUS] - p[BellState.PHI_MINUS] + p[BellState.PSI_PLUS] - p[BellState.PSI_MINUS]
            x, z = frame.pauli_bits
            probe.correlators[key] = ((-1) ** x * zz, (-1) ** z * xx)

    class ProbeApps(BasicApps):
        def __init__(self, ctx: Any) -> None:
            super().__init__(ctx)
            self._qkd = ProbeQkd(ctx)

    return ProbeApps


def chain(nodes: int, km: float, alpha: float, seed: int, request: dict[str, Any], memory: dict[str, Any] | None = None) -> Any:
    """``nodes`` nodes in a line, single-click links of ``km`` each; memories that do not decohere."""
    names = ["alice", "bob", "carol"][:nodes] if nodes <= 3 else [f"n{i}" for i in range(nodes)]
    hardware = {"memory": {"num_qubits": 4, "t1_ns": None, "t2_ns": None, **(memory or {})}, "emission_efficiency": 0.75}
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": hardware} for n in names],
            "links": [
                {"a": a, "b": b, "length_km": km, "detector": {"efficiency": 0.8}, "bright_state_population": alpha}
                for a, b in zip(names, names[1:], strict=False)
            ],
            "applications": [{"node": names[0], "request": {"kind": "qkd", "remote_node": names[-1], **request}}],
        }
    )


def run(sc: Any, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[Any, list[tuple[str, Any]], _Probe]:
    """Run ``sc`` with the probe; returns the report, the user messages (node, message) and the probe."""
    probe = _Probe()
    if monkeypatch is not None:
        original = qkd_apps.post_process

        def recording(protocol: str, head_bases: Any, head_bits: Any, tail_bases: Any, tail_bits: Any, *rest: Any) -> Any:
            probe.records.append((head_bases.copy(), head_bits.copy(), tail_bases.copy(), tail_bits.copy()))
            return original(protocol, head_bases, head_bits, tail_bases, tail_bits, *rest)

        monkeypatch.setattr(qkd_apps, "post_process", recording)
    sim = assemble(sc, {**FAST, "application": probed_apps(probe)})
    report = sim.run()
    return report, [(node, msg) for _, node, msg in sim.network.user_messages], probe


def keys_of(messages: list[tuple[str, Any]]) -> dict[str, KeyDelivered]:
    return {node: msg for node, msg in messages if isinstance(msg, KeyDelivered)}


def test_bbm92_over_one_link_delivers_equal_keys_and_its_qber_matches_the_delivered_states(monkeypatch):
    """3000 pairs over one 2 km link (α = 0.02, F ≈ 0.98; seed 3): a key at both ends, equal (same
    SHA-256 and bits), within the finite-key bound; the QBER over all ~1500 sifted rounds matches
    the prediction from the delivered states within 5 SE (≈ 5·sqrt(0.015·0.985/1500) ≈ 0.016)."""
    sc = chain(2, 2.0, 0.02, 3, {"protocol": "bbm92", "pairs": 3000, "epsilon": 0.1, "sample_fraction": 0.35})
    report, messages, probe = run(sc, monkeypatch)
    assert report.status == "done", report.applications
    keys = keys_of(messages)
    assert set(keys) == {"alice", "bob"}
    head, tail = keys["alice"], keys["bob"]
    assert head.key_hex == tail.key_hex and head.key_sha256 == tail.key_sha256
    assert head.key_sha256 == hashlib.sha256(bytes.fromhex(head.key_hex)).hexdigest()
    assert head.key_id == tail.key_id and head.length == tail.length > 0
    assert head.epsilon_sec + head.epsilon_cor == pytest.approx(0.1)
    assert any(isinstance(m, AppDone) for _, m in messages)

    (head_bases, head_bits, tail_bases, tail_bits) = probe.records[0]
    assert len(head_bits) == 3000
    sifted = head_bases == tail_bases
    n = int(sifted.sum())
    measured = float(np.mean(head_bits[sifted] != tail_bits[sifted]))
    zz, xx = np.array(list(probe.correlators.values())).T
    predicted = float(np.mean((1 - zz) / 2 + (1 - xx) / 2) / 2)
    se = math.sqrt(predicted * (1 - predicted) / n)
    assert abs(measured - predicted) <= SIGMAS * se, (measured, predicted, se)
    assert 0.005 < predicted < 0.05  # the link is good but not perfect: the check can fail both ways
    assert head.sifted_bits == n


def e91_s(probe: _Probe) -> tuple[float, float, float]:
    """(measured S, its SE, predicted S) of a run's records and delivered states."""
    head_bases, head_bits, tail_bases, tail_bits = probe.records[0]
    records = RawRecords(
        alice_basis=head_bases, alice_bit=head_bits, bob_basis=tail_bases, bob_bit=tail_bits, detected=np.ones(len(head_bits), bool)
    )
    estimate = chsh_estimate(records, E91_CHSH.chsh_terms)
    zz, xx = np.array(list(probe.correlators.values())).T
    return estimate.s, estimate.standard_error, float(np.mean(math.sqrt(2) * (zz + xx)))


@pytest.mark.parametrize(
    "nodes, alpha, seed",
    [(2, 0.05, 5), (3, 0.03, 6)],
    ids=["one-link", "two-link-chain"],
)
def test_e91_chsh_value_matches_the_delivered_states(monkeypatch, nodes, alpha, seed):
    """E91 over one link and over a three-node repeater chain (swap-asap), 2400 pairs each
    (≈ 300 per CHSH setting pair, SE of S ≈ 0.1): the measured S over all CHSH rounds is within
    5 SE of √2(E_ZZ + E_XX) averaged over the delivered states; the prediction is above 2 by
    more than the tolerance, so the run shows a violation and S > 2 is checked too."""
    sc = chain(nodes, 2.0, alpha, seed, {"protocol": "e91", "pairs": 2400, "epsilon": 0.1, "sample_fraction": 0.35})
    report, messages, probe = run(sc, monkeypatch)
    measured, se, predicted = e91_s(probe)
    assert len(probe.correlators) >= 2400
    assert abs(measured - predicted) <= SIGMAS * se, (measured, predicted, se)
    assert predicted - 2 > SIGMAS * se and measured > 2
    keys = keys_of(messages)
    outcome = next(m for _, m in messages if isinstance(m, (AppDone, AppError)))
    if isinstance(outcome, AppDone):
        assert keys["alice"].key_hex == keys[sc.nodes[-1].name].key_hex
        assert keys["alice"].chsh_s == pytest.approx(measured)
    else:  # an abort: no key anywhere
        assert not keys and outcome.code is not AppErrorCode.CHSH_TOO_LOW, outcome


def test_e91_aborts_when_the_pairs_violate_no_bell_inequality(monkeypatch):
    """α = 0.4 heralds F ≈ 0.69, below (1 + √2)/3 (tests/test_chsh.py): S' ≈ 1.46 < 2, and the
    run ends with CHSH_TOO_LOW and no key at either end (1600 pairs, seed 7)."""
    sc = chain(2, 2.0, 0.4, 7, {"protocol": "e91", "pairs": 1600, "epsilon": 0.1})
    report, messages, probe = run(sc, monkeypatch)
    errors = [m for _, m in messages if isinstance(m, AppError)]
    assert [e.code for e in errors] == [AppErrorCode.CHSH_TOO_LOW]
    assert not keys_of(messages)
    measured, se, predicted = e91_s(probe)
    assert abs(measured - predicted) <= SIGMAS * se and predicted < 2
    assert report.status == "failed"


def test_noisy_link_aborts_with_qber_too_high_and_no_key_at_either_end():
    """α = 0.3 (F ≈ 0.75, QBER ≈ 0.25 over both bases; seed 8, 1200 BBM92 pairs): QBER_TOO_HIGH
    at the head, no KeyDelivered anywhere, and the tail's session is gone."""
    sc = chain(2, 2.0, 0.3, 8, {"protocol": "bbm92", "pairs": 1200, "epsilon": 0.1})
    report, messages, _ = run(sc)
    assert not keys_of(messages)
    errors = [(node, m) for node, m in messages if isinstance(m, AppError)]
    assert [(node, e.code) for node, e in errors] == [("alice", AppErrorCode.QBER_TOO_HIGH)]
    (outcome,) = report.applications
    assert outcome.state == "failed" and outcome.error_code == "QBER_TOO_HIGH"


def test_authentication_pool_too_small_aborts_without_a_key():
    """A pool of 150 bits pays the hash key and one pad (122 bits), not the second message's:
    the tail's records fail their check and the run ends with AUTH_FAILED, no key."""
    sc = chain(2, 2.0, 0.02, 9, {"protocol": "bbm92", "pairs": 400, "epsilon": 0.1, "auth_pool_bits": 150})
    report, messages, _ = run(sc)
    assert not keys_of(messages)
    assert [m.code for _, m in messages if isinstance(m, AppError)] == [AppErrorCode.AUTH_FAILED]


SEEDED_RUNS = 12


@pytest.mark.parametrize("half", [0, 1])
def test_seeded_runs_give_equal_keys_whenever_a_key_is_output(half):
    """12 seeded BBM92 runs of 2000 pairs (ε = 0.1, QBER ≈ 1.5 %; seeds 100–111, as two items of 6
    so that two workers share them): in every run either both ends hold the same key or neither
    holds one; most runs give one (the bound leaves ≈ 150 bits): at least half of each item's 6."""
    outputs = 0
    half_runs = SEEDED_RUNS // 2
    for seed in range(half * half_runs, (half + 1) * half_runs):
        sc = chain(2, 2.0, 0.02, 100 + seed, {"protocol": "bbm92", "pairs": 2000, "epsilon": 0.1, "sample_fraction": 0.35})
        report, messages, _ = run(sc)
        keys = keys_of(messages)
        assert set(keys) in (set(), {"alice", "bob"}), (seed, keys)
        if keys:
            outputs += 1
            assert keys["alice"].key_hex == keys["bob"].key_hex, seed
            assert report.status == "done"
        else:
            assert report.status == "failed"
    assert outputs >= half_runs // 2


def test_same_seed_same_key():
    sc = chain(2, 2.0, 0.02, 11, {"protocol": "bbm92", "pairs": 2000, "epsilon": 0.1, "sample_fraction": 0.35})
    first = keys_of(run(sc)[1])
    second = keys_of(run(sc)[1])
    assert first and first["alice"].key_hex == second["alice"].key_hex


@pytest.mark.parametrize(
    "change, field",
    [
        ({"protocol": "bb84"}, "protocol"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"pairs": 10}, "pairs"),
        ({"ec": "turbo"}, "ec"),
        ({"sample_fraction": 1.0}, "sample_fraction"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(change, field):
    with pytest.raises(pydantic.ValidationError, match=field):
        QkdRequest(**{"remote_node": "bob", "pairs": 1000, **change})
    request = {"protocol": "bbm92", "pairs": 1000, **change}
    with pytest.raises(ScenarioError) as caught:
        chain(2, 2.0, 0.02, 1, request)
    message = str(caught.value)
    assert field in message and "\n" not in message.strip(), message


SLOW_CHUNKS, SLOW_RUNS_PER_CHUNK = 4, 12


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(SLOW_CHUNKS))
def test_many_seeded_runs_give_equal_keys_whenever_a_key_is_output(chunk):
    """48 more seeded BBM92 runs (4 chunks of 12, seeds 1000–1047, 2000 pairs, ε = 0.1): both ends'
    keys equal, or no key at either end, in every run; at least half of each chunk outputs one.
    (The issue's 1,000 runs take about 13 minutes of CPU (0.8 s each); they were run outside the suite, see
    docs/qkd.md. Since the runs confirm their keys (about 1.2 s each now), 48 in chunks of 12 keep this
    part of the suite near a minute of CPU, spread over the workers.)"""
    outputs = 0
    for seed in range(1000 + chunk * SLOW_RUNS_PER_CHUNK, 1000 + (chunk + 1) * SLOW_RUNS_PER_CHUNK):
        sc = chain(2, 2.0, 0.02, seed, {"protocol": "bbm92", "pairs": 2000, "epsilon": 0.1, "sample_fraction": 0.35})
        _, messages, _ = run(sc)
        keys = keys_of(messages)
        assert set(keys) in (set(), {"alice", "bob"}), (seed, keys)
        if keys:
            outputs += 1
            assert keys["alice"].key_hex == keys["bob"].key_hex, seed
    assert outputs >= SLOW_RUNS_PER_CHUNK // 2
