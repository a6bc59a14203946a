"""Keys through trusted relays (application/key_relay.py) over the assembled stack.

Each hop is a BBM92 session of its own; the relays announce the XOR of their
two hop keys and the destination recovers the first hop's key. The checks:
both ends hold the same key, it is the first hop's key cut to the shortest hop
key, every announcement is the XOR of the relay's two keys, a hop that ends
without a key ends the request at both ends with the hop's code, and a relay
path that does not follow the links is refused naming the field. Seeds are
fixed; ε = 0.3 (0.1 a hop) keeps the hops short (2000 pairs each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic
import pytest

from qnetstack.application.key_relay import KeyRelayApps, RelayEvent, end_key, xor_announcement
from qnetstack.application.service import AppError, AppErrorCode, KeyAborted, KeyDelivered, QkdRelayRequest, RelayAborted, RelayKeyInfo
from qnetstack.stack import assemble
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import ScenarioError, parse_scenario

FAST = {"physical": "model-heralding", "link": "fast-forward-egp"}
NAMES = ["alice", "bob", "carol", "dave"]


def line(alphas: list[float], request: dict[str, Any], seed: int, links: list[tuple[str, str]] | None = None) -> Any:
    """Nodes in a line, one 2 km link per α; alice asks dave (the last node) for a relayed key."""
    names = NAMES[: len(alphas) + 1]
    hardware = {"memory": {"num_qubits": 4, "t1_ns": None, "t2_ns": None}, "emission_efficiency": 0.75}
    pairs = links if links is not None else list(zip(names, names[1:], strict=False))
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": hardware} for n in names],
            "links": [
                {"a": a, "b": b, "length_km": 2.0, "detector": {"efficiency": 0.8}, "bright_state_population": alpha}
                for (a, b), alpha in zip(pairs, alphas, strict=True)
            ],
            "implementations": {"application": "key-relay-apps"},
            "applications": [
                {
                    "node": "alice",
                    "request": {
                        "kind": "qkd-relay",
                        "remote_node": names[-1],
                        "relays": names[1:-1],
                        "pairs": 2000,
                        "epsilon": 0.3,
                        "sample_fraction": 0.35,
                        **request,
                    },
                }
            ],
        }
    )


def run(sc: Any) -> tuple[Any, list[tuple[str, Any]], list[tuple[str, np.ndarray, np.ndarray, Any]]]:
    """Run ``sc`` with relays that record their two hop keys next to each announcement (test code only)."""
    seen: list[tuple[str, np.ndarray, np.ndarray, Any]] = []

    class Recording(KeyRelayApps):
        def _announce(self, session: Any) -> None:
            i = session.position
            key_in, key_out = session.keys[i - 1], session.keys[i]
            unpack = lambda k: np.unpackbits(np.frombuffer(bytes.fromhex(k.key_hex), dtype=np.uint8))[: k.length]  # noqa: E731
            sent: list[Any] = []
            send = self.ctx.send_peer

            def capture(node: str, msg: Any) -> None:
                sent.append(msg)
                send(node, msg)

            self.ctx.send_peer = capture  # type: ignore[method-assign]
            try:
                super()._announce(session)
            finally:
                del self.ctx.send_peer
            seen.append((self.ctx.node, unpack(key_in), unpack(key_out), sent[-1].announcement))

    sim = assemble(sc, {**FAST, "application": Recording})
    report = sim.run()
    return report, [(node, msg) for _, node, msg in sim.network.user_messages], seen


def test_two_relays_give_both_ends_the_first_hops_key_and_announce_the_xor_of_their_keys():
    """alice–bob–carol–dave, bob and carol trusted (seed 5): equal keys at alice and dave; the key is
    alice's hop key cut to the shortest hop key; each announcement is k_in ⊕ k_out; the results name
    the relays."""
    report, messages, seen = run(line([0.02, 0.02, 0.02], {}, seed=5))
    keys = {node: m for node, m in messages if isinstance(m, KeyDelivered)}
    infos = {node: m for node, m in messages if isinstance(m, RelayKeyInfo)}
    assert set(keys) == {"alice", "dave"} == set(infos), messages
    assert keys["alice"].key_hex == keys["dave"].key_hex and keys["alice"].key_id == keys["dave"].key_id == "alice/relay0"
    info = infos["dave"]
    assert info == infos["alice"]
    assert info.trusted_relays == ["bob", "carol"] and info.path == NAMES
    assert keys["alice"].length == info.length == min(info.hop_lengths)
    assert len(set(info.hop_key_ids)) == 3
    assert [node for node, *_ in seen] == ["bob", "carol"] or [node for node, *_ in seen] == ["carol", "bob"]
    first_hop = None
    for node, key_in, key_out, announcement in seen:
        shorter = min(len(key_in), len(key_out))
        xor = np.unpackbits(np.frombuffer(bytes.fromhex(announcement.xor_hex), dtype=np.uint8))[: announcement.length]
        assert announcement.relay == node and announcement.length == shorter
        assert np.array_equal(xor, key_in[:shorter] ^ key_out[:shorter])
        if node == "bob":
            first_hop = key_in
    assert first_hop is not None
    end = np.unpackbits(np.frombuffer(bytes.fromhex(keys["alice"].key_hex), dtype=np.uint8))[: keys["alice"].length]
    assert np.array_equal(end, first_hop[: len(end)])
    assert report.status == "done"
    (key_report,) = report.keys
    assert key_report.equal and key_report.trusted_relays == ["bob", "carol"]


def test_a_hop_without_a_key_aborts_both_ends_with_its_code():
    """alice–bob–carol, the second link noisy (α = 0.3, QBER ≈ 0.25; seed 6): hop 1 (bob–carol) ends
    QBER_TOO_HIGH at bob; alice gets AppError QBER_TOO_HIGH naming the hop, carol gets RelayAborted,
    nobody a key. The hop's own ending (KeyAborted at carol, the hop's tail) stays inside the relay
    application: carol's user hears of the relay request only."""
    report, messages, _ = run(line([0.02, 0.3], {}, seed=6))
    assert not [m for _, m in messages if isinstance(m, (KeyDelivered, RelayKeyInfo))]
    assert not [(node, m) for node, m in messages if isinstance(m, KeyAborted)]
    errors = [(node, m) for node, m in messages if isinstance(m, AppError)]
    assert [(node, e.code) for node, e in errors] == [("alice", AppErrorCode.QBER_TOO_HIGH)]
    assert "hop 1 (bob–carol)" in errors[0][1].detail
    aborted = [(node, m) for node, m in messages if isinstance(m, RelayAborted)]
    assert [(node, m.hop, m.code) for node, m in aborted] == [("carol", 1, AppErrorCode.QBER_TOO_HIGH)]
    assert report.status == "failed"


def test_announcements_telescope_to_the_first_key_for_hop_keys_of_any_lengths():
    """Pure function check: random hop keys of lengths 90..130, three relays."""
    rng = np.random.default_rng(1)
    hops = [rng.integers(0, 2, int(n), dtype=np.uint8) for n in rng.integers(90, 131, 4)]
    announcements = [xor_announcement(a, b) for a, b in zip(hops, hops[1:], strict=False)]
    key = end_key(hops[-1], announcements)
    assert len(key) == min(len(h) for h in hops)
    assert np.array_equal(key, hops[0][: len(key)])


@pytest.mark.parametrize(
    "relays, links, field, words",
    [
        (["bob", "zed"], None, "relays.1", "unknown node"),
        (["bob", "alice"], None, "relays.1", "an end of the request"),
        (["carol", "bob"], None, "relays", "no link joins 'alice' and 'carol'"),
        (["bob", "carol"], [("alice", "bob"), ("bob", "dave"), ("carol", "dave")], "relays", "no link joins 'bob' and 'carol'"),
        (["bob", "bob"], None, "relays", "appears twice"),
        ([], None, "relays", "at least 1"),
    ],
)
def test_a_relay_path_off_the_links_is_refused_naming_the_field(relays, links, field, words):
    with pytest.raises(ScenarioError) as caught:
        line([0.02, 0.02, 0.02], {"relays": relays}, seed=1, links=links)
    message = str(caught.value)
    assert f"applications.0.request.{field}" in message and words in message and "\n" not in message.strip(), message


def test_bad_request_fields_name_the_field():
    with pytest.raises(pydantic.ValidationError, match="epsilon"):
        QkdRelayRequest(remote_node="dave", relays=["bob"], pairs=1000, epsilon=1.0)
    with pytest.raises(pydantic.ValidationError, match="pairs"):
        QkdRelayRequest(remote_node="dave", relays=["bob"], pairs=10)


def test_basic_apps_refuse_a_relay_request_before_the_run():
    sc = line([0.02, 0.02, 0.02], {}, seed=1)
    with pytest.raises(ScenarioError, match="applications.0.request.kind"):
        assemble(sc, {**FAST, "application": "basic-apps"})


# ------------------------------------------------------------ the conformance clauses

RELAY_CLAUSES = ["APP-RELAY-1", "APP-RELAY-2", "APP-RELAY-3", "APP-RELAY-4", "APP-RELAY-5"]


class _DestinationFlipsABit(KeyRelayApps):
    """Broken on purpose (test code only): the destination's copy of the end key has its first bit flipped."""

    def _deliver(self, session: Any, key: np.ndarray, *rest: Any) -> None:
        if session.position == len(session.path) - 1:
            key = key.copy()
            key[0] ^= 1
        super()._deliver(session, key, *rest)


class _NoWordToTheDestination(KeyRelayApps):
    """Broken on purpose: a failed hop is reported at the head only."""

    def _aborted(self, session: Any, hop: int, code: Any, detail: str) -> None:
        if session.position == len(session.path) - 1:
            session.fire(RelayEvent.ABORT)
            self._close_relay(session)
            return
        super()._aborted(session, hop, code, detail)


@pytest.mark.slow
@pytest.mark.parametrize(
    "impl, failing",
    [(KeyRelayApps, set()), (_DestinationFlipsABit, {"APP-RELAY-1"}), (_NoWordToTheDestination, {"APP-RELAY-4"})],
    ids=["reference", "destination-flips-a-bit", "no-word-to-the-destination"],
)
def test_the_relay_clauses_pass_the_relay_application_and_fail_broken_ones(impl, failing):
    """The suite's two relay runs (3000 pairs a hop) against the reference and two broken relays,
    one test item each so that the workers share them: the reference passes every relay clause,
    each broken relay fails exactly the clause it breaks."""
    report = run_conformance("application", impl, select=RELAY_CLAUSES)
    assert set(report.failed_clauses()) == failing, report.to_text()
    assert {c.clause for c in report.clauses if c.status == "pass"} == set(RELAY_CLAUSES) - failing, report.to_text()


def test_the_relay_clauses_do_not_apply_to_basic_apps():
    basic = run_conformance("application", "basic-apps", select=RELAY_CLAUSES)
    assert {c.status for c in basic.clauses} == {"not_applicable"}, basic.to_text()


def test_the_relay_application_still_serves_the_other_requests():
    """key-relay-apps is basic-apps plus relay keys: a pairs request on it ends done, with every pair reported."""
    data = line([0.02, 0.02], {}, seed=4).model_dump()
    data["applications"] = [{"node": "alice", "request": {"kind": "pairs", "remote_node": "carol", "number": 5}}]
    report = assemble(parse_scenario(data), FAST).run()
    assert report.status == "done", report.status_line()
    (outcome,) = report.applications
    assert outcome.results == 5
