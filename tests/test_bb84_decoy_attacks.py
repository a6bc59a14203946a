"""Attacks on decoy-state BB84 put on a pulse link by the scenario, through the assembled stack.

Fixed seeds. Each statistical claim names its sample and why its margin is
wide enough; the physics of the attacks is in docs/qkd-attacks.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qnetstack.application.service import AppError, AppErrorCode, KeyAborted, KeyDelivered
from qnetstack.stack import assemble, load_scenario, parse_scenario
from qnetstack.stack.scenario import ScenarioError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "qkd-bb84-intercept.yaml"


def run(scenario: Any) -> tuple[Any, list[tuple[str, Any]]]:
    simulation = assemble(scenario)
    result = simulation.run()
    return result, [(node, msg) for _, node, msg in simulation.network.user_messages]


def attacked(km: float, pulses: int, adversary: dict[str, Any] | None, seed: int) -> Any:
    """The settings of docs/qkd-attacks.md's PNS and beam-splitting figures: a 50 % receiver,
    p_d = 10⁻⁶ per gate, e_d = 1 %, μ = 0.5 / ν = 0.1 / vacuum with probabilities 0.5 / 0.4 / 0.1."""
    link: dict[str, Any] = {
        "sender": "alice",
        "receiver": "bob",
        "length_km": km,
        "detector": {"efficiency": 0.5, "dark_count_rate_hz": 1000.0},
        "misalignment": 0.01,
    }
    if adversary is not None:
        link["adversary"] = adversary
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": "alice"}, {"name": "bob"}],
            "links": [{"a": "alice", "b": "bob", "length_km": km}],
            "implementations": {"physical": "model-heralding"},
            "pulse_links": [link],
            "applications": [
                {
                    "node": "alice",
                    "request": {
                        "kind": "qkd",
                        "remote_node": "bob",
                        "protocol": "bb84-decoy",
                        "pulses": pulses,
                        "block_size": 500_000,
                        "intensities": [
                            {"mean_photon_number": 0.5, "probability": 0.5},
                            {"mean_photon_number": 0.1, "probability": 0.4},
                            {"mean_photon_number": 0.0, "probability": 0.1},
                        ],
                        "epsilon": 1e-6,
                    },
                }
            ],
        }
    )


def test_intercept_resend_example_aborts_at_both_ends_with_no_key():
    """examples/qkd-bb84-intercept.yaml: Eve on every pulse makes the QBER about 0.27 (docs/qkd-attacks.md,
    E_μ with f = 1, e_d = 3.3 %); its 10^7 pulses disclose about 200 decoy rounds with light, a standard
    error of 0.031, so the 11 % threshold is 5 standard errors below the expected QBER."""
    result, messages = run(load_scenario(EXAMPLE))
    assert not [m for _, m in messages if isinstance(m, KeyDelivered)]
    head = [m for n, m in messages if n == "alice" and isinstance(m, AppError)]
    tail = [m for n, m in messages if n == "bob" and isinstance(m, KeyAborted)]
    assert [m.code for m in head] == [AppErrorCode.QBER_TOO_HIGH]
    assert [(m.code, m.head, m.request_id, m.key_id) for m in tail] == [(AppErrorCode.QBER_TOO_HIGH, "alice", 0, "alice/bb84-decoy0")]
    assert result.status == "failed"
    outcome = result.applications[0]
    assert outcome.error_code == "QBER_TOO_HIGH" and outcome.tail_aborted == "QBER_TOO_HIGH"
    [link] = result.pulse_links
    assert link.link == "alice>bob" and link.adversary["kind"] == "intercept_resend"
    # Eve measured in the sender's basis on half the pulses: she knows half the sifted bits (binomial,
    # n ≈ 7 600, s.e. 0.006; 5 s.e. is 0.03)
    assert link.oracle_sifted_bits is not None and link.oracle_sifted_bits > 5000
    assert link.eve_known_bits is not None and abs(link.eve_known_bits / link.oracle_sifted_bits - 0.5) < 0.03
    text = result.to_table()
    assert "adversary intercept_resend" in text and "bob told: KeyAborted QBER_TOO_HIGH" in text


def test_photon_number_splitting_takes_the_key_the_honest_link_gives():
    """At 50 km the honest link gives a key from 2·10^6 pulses, and under PNS the decoy bound on the
    single-photon yield collapses to 0 (docs/qkd-attacks.md: Y1_L = 0.049 honest against 0 under
    PNS; at 4·10^6 pulses the raw PNS bound is about 6 standard errors below 0, so about 4 at half the
    pulses): no key, and both ends are told KEY_TOO_SHORT. Eve knows nearly every sifted bit."""
    _, honest = run(attacked(50.0, 2_000_000, None, seed=61))
    keys = [m for _, m in honest if isinstance(m, KeyDelivered)]
    assert len(keys) == 2 and keys[0].length > 0
    result, messages = run(attacked(50.0, 2_000_000, {"kind": "photon_number_splitting"}, seed=61))
    assert not [m for _, m in messages if isinstance(m, KeyDelivered)]
    assert [m.code for n, m in messages if n == "alice" and isinstance(m, AppError)] == [AppErrorCode.KEY_TOO_SHORT]
    assert [m.code for n, m in messages if n == "bob" and isinstance(m, KeyAborted)] == [AppErrorCode.KEY_TOO_SHORT]
    [link] = result.pulse_links
    assert link.eve_known_bits is not None and link.oracle_sifted_bits
    assert link.eve_known_bits / link.oracle_sifted_bits > 0.95  # docs/qkd-attacks.md: 100 % at 50 km


def test_beam_splitting_leaves_a_key_shorter_than_what_eve_does_not_know():
    """Beam splitting is the honest loss, so a key comes out; its length must stay below the sifted
    bits less those Eve knows exactly (the oracle's count) less what error correction and
    verification disclosed. 10^6 pulses at 25 km: over seeds 1..8 the gap between that limit and ℓ
    was 2 192..3 310 bits (mean 2 753, standard deviation 327), so the limit is about 8 standard
    deviations above the key; seed 62 gives ℓ = 9 352 against 11 928."""
    result, messages = run(attacked(25.0, 1_000_000, {"kind": "beam_splitting"}, seed=62))
    keys = {n: m for n, m in messages if isinstance(m, KeyDelivered)}
    assert set(keys) == {"alice", "bob"} and keys["alice"].key_hex == keys["bob"].key_hex
    key = keys["alice"]
    [link] = result.pulse_links
    assert link.oracle_sifted_bits == key.sifted_bits  # the oracle counts the key's own rounds
    assert link.eve_known_bits is not None and link.eve_known_bits > 0
    assert 0 < key.length <= key.sifted_bits - link.eve_known_bits - key.leaked_ec_bits - key.verify_bits


def test_a_bad_adversary_is_refused_in_one_line_naming_the_field():
    data = {
        "nodes": [{"name": "alice"}, {"name": "bob"}],
        "links": [{"a": "alice", "b": "bob", "length_km": 1}],
        "implementations": {"physical": "model-heralding"},
        "pulse_links": [{"sender": "alice", "receiver": "bob", "length_km": 1, "adversary": {"kind": "intercept_resend", "fraction": 2}}],
    }
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data)
    assert str(error.value).startswith("pulse_links.0.adversary.fraction: ") and "\n" not in str(error.value)
    data["pulse_links"][0]["adversary"] = {"kind": "listening"}  # type: ignore[index]
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data)
    assert str(error.value).startswith("pulse_links.0.adversary.kind: ")


def test_a_head_that_ends_early_stops_its_train_and_the_tail_ends_with_a_timeout():
    """The head's node crashes 1 ms into a 4 ms train (the stack ends its request ABORTED) and restarts:
    the new application stops the train at its first block, so fewer blocks than the train's 8 are
    drawn; the tail hears nothing more and ends with KeyAborted TIMEOUT after its patience
    (10^4 round trips of 2 × 24.5 µs over 5 km), not waiting for ever."""
    from qnetstack.stack.pulses import ports_of
    from tests.test_bb84_decoy_app import BRIGHT, scenario

    data = scenario(5.0, 400_000, model=BRIGHT, epsilon=1e-3, block_size=50_000)
    data["faults"] = {"node_crashes": [{"node": "alice", "at_ns": 1_000_000, "restart_ns": 1_200_000}]}
    simulation = assemble(parse_scenario(data))
    result = simulation.run()
    messages = [(node, msg) for _, node, msg in simulation.network.user_messages]
    assert [m.code for n, m in messages if n == "alice" and isinstance(m, AppError)] == [AppErrorCode.ABORTED]
    tail = [m for n, m in messages if n == "bob" and isinstance(m, KeyAborted)]
    assert [m.code for m in tail] == [AppErrorCode.TIMEOUT]
    assert not [m for _, m in messages if isinstance(m, KeyDelivered)]
    assert ports_of(simulation.network)["alice"].blocks_delivered < 8
    assert result.status == "failed" and result.end.reason == "finished"


def test_an_announcement_the_tail_cannot_check_ends_both_ends_auth_failed():
    """No pre-shared bits (auth_pool_bits 0): the head cannot sign its announcement, and the tail
    refuses it; both users are told AUTH_FAILED."""
    from tests.test_bb84_decoy_app import BRIGHT, scenario

    _, messages = run(parse_scenario(scenario(5.0, 100_000, model=BRIGHT, epsilon=1e-3, auth_pool_bits=0)))
    assert [m.code for n, m in messages if n == "alice" and isinstance(m, AppError)] == [AppErrorCode.AUTH_FAILED]
    assert [m.code for n, m in messages if n == "bob" and isinstance(m, KeyAborted)] == [AppErrorCode.AUTH_FAILED]
    assert not [m for _, m in messages if isinstance(m, KeyDelivered)]
