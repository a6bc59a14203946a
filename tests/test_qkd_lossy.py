"""QKD over a classical channel that loses application messages: the two ends end alike.

Each run loses every application message between alice and bob with probability
0.3 (``faults: classical``, the run's seeded fault stream); the link and network
layers' messages are left alone. The protocol's retransmissions and confirmation
(qnetstack.application.qkd_apps, "Lost messages") must give, in every run: a key at
both ends (same key_id and hash) or at neither; every abort at the head (AppError)
matched at the tail by a KeyAborted with the same code; and the request closed at
its head (no stall). The chance that 20 tries in a row go unanswered at this loss is
0.51^20 ≈ 1.4e-6 per message, so a correct stack fails none of these runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from qnetstack.application.service import AppDone, AppError, AppErrorCode, KeyAborted, KeyDelivered
from qnetstack.stack import assemble
from qnetstack.stack.scenario import parse_scenario

FAST = {"physical": "model-heralding", "link": "fast-forward-egp"}


def lossy_pair(seed: int, request: dict[str, Any], loss: float = 0.3, alpha: float = 0.02, faults: dict[str, Any] | None = None) -> Any:
    """alice and bob, one 2 km link, memories that do not decohere; application messages lost with ``loss``."""
    hardware = {"memory": {"num_qubits": 4, "t1_ns": None, "t2_ns": None}, "emission_efficiency": 0.75}
    if faults is None:
        faults = {"classical": [{"link": ["alice", "bob"], "layers": ["application"], "loss_probability": loss}]}
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": hardware} for n in ("alice", "bob")],
            "links": [{"a": "alice", "b": "bob", "length_km": 2.0, "detector": {"efficiency": 0.8}, "bright_state_population": alpha}],
            "applications": [{"node": "alice", "request": {"kind": "qkd", "remote_node": "bob", **request}}],
            "faults": faults,
        }
    )


def run(sc: Any) -> tuple[Any, Any, list[tuple[str, Any]]]:
    sim = assemble(sc, FAST)
    report = sim.run()
    return sim, report, [(node, msg) for _, node, msg in sim.network.user_messages]


def check_symmetric(report: Any, messages: list[tuple[str, Any]]) -> str:
    """Assert the two ends ended alike; return "key" or the abort's code."""
    keys = {node: m for node, m in messages if isinstance(m, KeyDelivered)}
    closing = [(node, m) for node, m in messages if isinstance(m, (AppDone, AppError))]
    aborted = [(node, m) for node, m in messages if isinstance(m, KeyAborted)]
    assert [node for node, _ in closing] == ["alice"], closing  # closed once, at the head: no stall
    ((_, close),) = closing
    if isinstance(close, AppDone):
        assert set(keys) == {"alice", "bob"}, keys
        assert keys["alice"].key_id == keys["bob"].key_id and keys["alice"].key_sha256 == keys["bob"].key_sha256
        assert not aborted
        assert report.status == "done"
        return "key"
    assert not keys, keys
    assert [(node, m.code) for node, m in aborted] == [("bob", close.code)], (close, aborted)
    return close.code.value


KEYED = {"protocol": "bbm92", "pairs": 2000, "epsilon": 0.1, "sample_fraction": 0.35}  # ≈ 150-bit keys (tests/test_qkd_app.py)


def lossy_runs(seeds: range, request: dict[str, Any]) -> list[str]:
    outcomes = []
    lost = 0
    for seed in seeds:
        sim, report, messages = run(lossy_pair(seed, request))
        outcomes.append(check_symmetric(report, messages))
        lost += sim.network.faults.lost
    assert lost > len(seeds)  # the fault really lost messages (about a third of ≈ 8 per run)
    return outcomes


def test_lost_application_messages_never_leave_an_abort_at_one_end_only():
    """3 seeded BBM92 runs of 400 pairs (too few for a key at ε = 0.1: each ends TOO_FEW_PAIRS),
    0.3 loss each way on every application message: the abort reaches both ends every time
    (the slow tests below run 30 seeds that give keys)."""
    assert set(lossy_runs(range(500, 503), {**KEYED, "pairs": 400})) == {AppErrorCode.TOO_FEW_PAIRS.value}


@pytest.mark.slow
@pytest.mark.parametrize("first_seed", [1500, 1510, 1520])
def test_many_lossy_runs_never_leave_a_key_at_one_end_only(first_seed):
    """30 seeded runs of 2000 pairs (seeds 1500–1529), as above: keys at both ends or neither,
    and at least half of them give a key. Three items of 10 seeds each so that two workers
    share them; each asks at least 5 keys of its 10 runs (at least as strict as 15 of 30)."""
    outcomes = lossy_runs(range(first_seed, first_seed + 10), KEYED)
    assert outcomes.count("key") >= 5, outcomes


def test_an_abort_reaches_the_tail_with_the_heads_code_under_loss():
    """A noisy link (α = 0.3, QBER ≈ 25 %) aborts QBER_TOO_HIGH; with 0.3 loss the tail still hears it (2 seeds)."""
    for seed in range(2):
        _, report, messages = run(lossy_pair(600 + seed, {"protocol": "bbm92", "pairs": 600, "epsilon": 0.1}, alpha=0.3))
        assert check_symmetric(report, messages) == AppErrorCode.QBER_TOO_HIGH.value


def test_a_tail_that_never_answers_ends_the_request_with_timeout():
    """Every application message lost: the head gives up after its retransmissions (TIMEOUT), the run ends."""
    sim, report, messages = run(lossy_pair(7, {"protocol": "bbm92", "pairs": 200, "epsilon": 0.1}, loss=1.0))
    errors = [(node, m.code) for node, m in messages if isinstance(m, AppError)]
    assert errors == [("alice", AppErrorCode.TIMEOUT)]
    assert not [m for _, m in messages if isinstance(m, (KeyDelivered, KeyAborted))]


@pytest.mark.parametrize("pairs, fraction", [(100, 0.05), (150, 0.2)])
def test_too_few_pairs_is_its_own_code(pairs, fraction):
    """Clean pairs (α = 0.02, QBER ≈ 1.5 %) but too few of them: TOO_FEW_PAIRS at both ends, the detail
    naming the number of pairs; not QBER_TOO_HIGH (the QBER is within the threshold)."""
    faults = {"classical": []}
    _, report, messages = run(
        lossy_pair(3, {"protocol": "bbm92", "pairs": pairs, "epsilon": 1e-10, "sample_fraction": fraction}, faults=faults)
    )
    assert check_symmetric(report, messages) == AppErrorCode.TOO_FEW_PAIRS.value
    (error,) = [m for _, m in messages if isinstance(m, AppError)]
    assert f"{pairs} pairs" in error.detail, error.detail
