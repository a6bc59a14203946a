"""Several attempts in flight per link (multiplexing) in the reference EGP.

What is checked, and against what:

* **no cross-talk** (qnetstack issue 5, item 3): with several requests of
  several purposes and priorities, from both ends, interleaved on one link
  with four attempts in flight, every pair reported is the pair the herald of
  *its own* attempt made. Through the whole stack (``model-heralding``
  backend, memories without noise): the oracle fidelity of the two qubits the
  two ends' OKs name equals the OK's goodness (PHY-HERALD-5 makes the herald's
  estimate exact), and, because each request runs at its own single-click
  operating point, equals the fidelity of that request's α; for single-click
  both herald branches have F = (1 − α)/(1 − αη/2) for equal η and no dark
  counts (Humphreys et al., Nature 558, 268, 2018), so a herald credited to
  another request's attempt would show up as a pair of the wrong fidelity.
  And the link conformance suite, run on the multiplexing EGP, checks
  LINK-OK-4/OK-5 (and every other clause) against the fake physical layer.
* **rate**: attempts are i.i.d. Bernoulli(p) (e.g. Rozpędek et al., PRA 99,
  052330, 2019, Sec. III); with k attempts in flight, each slot restarted
  when its result arrives, B attempt periods hold kB attempts, so the
  successes are Binomial(kB, p): k times the one-in-flight rate. Tolerance:
  5 standard errors of that binomial count.
* **regression**: with one attempt in flight the EGP gives exactly the OKs,
  errors, attempts and times of the EGP before multiplexing (commit 1c63546,
  read from git).
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qnetstack.link.conformance import SUITE as LINK_SUITE
from qnetstack.link.conformance.harness import LinkConditions, ScriptedCreate, run_link
from qnetstack.link.egp import FastForwardEgp, MultiplexedEgp, PeerMultiplex, SingleClickEgp
from qnetstack.link.service import LinkAck, LinkCreate, LinkOkKeep, RequestType
from qnetstack.physical.service import Basis, FreeQubit, OracleFidelity, QubitRef
from qnetstack.stack import assemble
from qnetstack.stack.probes import LinkClient, NoApplication
from qnetstack.stack.scenario import parse_scenario

SIGMAS = 5
ROUNDING = 1e-9
REPO = Path(__file__).resolve().parent.parent
BEFORE_MULTIPLEXING = "1c63546"  # the last commit whose EGP kept one attempt in flight


# ------------------------------------------------------------ (a) no cross-talk, whole stack


class _Client(LinkClient):
    """In the network layer's place. Alice and bob each send their CREATEs at
    start; every pair, once both halves are reported, is checked by oracle
    and freed."""

    shared: dict[str, Any]  # set per test: creates per node, and where results go

    @property
    def creates(self) -> dict[str, list[LinkCreate]]:  # type: ignore[override]
        return self.shared["creates"]  # filled in after assembly, before the run

    def on_link(self, msg: Any) -> None:
        if not isinstance(msg, LinkOkKeep):
            super().on_link(msg)
        halves = self.shared["waiting"].setdefault(msg.ent_id, {})
        halves[self.ctx.node] = msg
        if len(halves) < 2:
            return
        del self.shared["waiting"][msg.ent_id]
        a, b = halves["alice"], halves["bob"]
        oracle = self.ctx.device.execute(
            OracleFidelity(qubits=[QubitRef(node="alice", handle=a.handle), QubitRef(node="bob", handle=b.handle)], bell_state=a.bell_state)
        )
        self.shared["pairs"].append((a, b, oracle.fidelity))
        for node, ok in halves.items():
            device = self.ctx.device if node == self.ctx.node else self.shared["devices"][node]
            device.execute(FreeQubit(handle=ok.handle))


def _two_nodes(num_qubits: int, seed: int) -> Any:
    hardware = {"memory": {"num_qubits": num_qubits, "t1_ns": None, "t2_ns": None}, "emission_efficiency": 0.75}
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": "alice", "hardware": hardware}, {"name": "bob", "hardware": hardware}],
            "links": [
                {
                    "a": "alice",
                    "b": "bob",
                    "length_km": 2.0,
                    "scheme": "single-click",
                    "bright_state_population": 0.3,
                    "detector": {"efficiency": 0.8},
                }
            ],
            "stop": {"max_events": None},
        }
    )


@pytest.mark.parametrize("link", [MultiplexedEgp, FastForwardEgp], ids=["per-attempt", "fast-forward"])
def test_no_cross_talk_through_the_stack(link):
    """Six requests (purposes 1-6, priorities 0 and 1, from both ends, three
    operating points) on one link with four attempts in flight: every pair's
    oracle fidelity equals its goodness and its request's operating-point
    fidelity (to rounding), both ends name the same pair, every request gets
    all its pairs, and attempts for different requests really were in flight
    together."""
    seen = {"in_flight": 0, "requests_in_flight": 0}

    class Watched(link):  # type: ignore[misc, valid-type]
        """Notes how many attempts, and for how many requests, were in flight at once."""

        def __init__(self, ctx: Any) -> None:
            if link is FastForwardEgp:
                FastForwardEgp.__init__(self, ctx, max_in_flight=None)
            else:
                MultiplexedEgp.__init__(self, ctx)

        def _advance(self, link: Any) -> None:
            super()._advance(link)
            flights = link.flights.values()
            seen["in_flight"] = max(seen["in_flight"], len(flights))
            seen["requests_in_flight"] = max(seen["requests_in_flight"], len({f.key for f in flights}))

    scenario = _two_nodes(num_qubits=4, seed=5)
    shared: dict[str, Any] = {"waiting": {}, "pairs": [], "devices": {}}
    client = type("Client", (_Client,), {"shared": shared})
    sim = assemble(scenario, {"physical": "model-heralding", "link": Watched, "network": client, "application": NoApplication})
    caps = sim.backend.nodes["alice"].capabilities().links["bob"]
    shared["devices"] = dict(sim.backend.nodes)
    # three operating points, far enough apart that their fidelities differ by > 0.01
    settings = sorted(caps.alpha_settings, key=lambda s: s.fidelity)
    chosen = [settings[0], settings[len(settings) // 2], settings[-1]]
    assert min(b.fidelity - a.fidelity for a, b in zip(chosen, chosen[1:])) > 0.01
    plan = [  # (origin, purpose, priority, setting, pairs)
        ("alice", 1, 1, chosen[0], 6),
        ("bob", 2, 1, chosen[1], 5),
        ("alice", 3, 1, chosen[2], 4),
        ("alice", 4, 0, chosen[0], 3),
        ("bob", 5, 0, chosen[2], 4),
        ("bob", 6, 1, chosen[0], 5),
    ]
    shared["creates"] = {}
    for origin, purpose, priority, setting, number in plan:
        other = "bob" if origin == "alice" else "alice"
        create = LinkCreate(remote_node=other, purpose_id=purpose, priority=priority, number=number, min_fidelity=setting.fidelity)
        shared["creates"].setdefault(origin, []).append(create)
    sim.run()
    by_purpose: dict[int, int] = {}
    for a, b, oracle in shared["pairs"]:
        assert (a.purpose_id, a.create_id, a.origin_node, a.bell_state) == (b.purpose_id, b.create_id, b.origin_node, b.bell_state)
        assert a.goodness == pytest.approx(oracle, abs=ROUNDING) and b.goodness == pytest.approx(oracle, abs=ROUNDING)
        expected = next(s for o, p, _, s, _ in plan if p == a.purpose_id).fidelity
        assert oracle == pytest.approx(expected, abs=ROUNDING), (a.purpose_id, oracle, expected)
        by_purpose[a.purpose_id] = by_purpose.get(a.purpose_id, 0) + 1
    assert shared["waiting"] == {}
    assert by_purpose == {p: n for _, p, _, _, n in plan}
    # four attempts were in flight at once, some for different requests
    assert seen == {"in_flight": 4, "requests_in_flight": seen["requests_in_flight"]} and seen["requests_in_flight"] >= 2, seen


@pytest.mark.slow
@pytest.mark.conformance
def test_the_link_suite_passes_with_several_attempts_in_flight():
    """Every clause of specs/link.md (LINK-OK-4: a herald is never credited to
    another attempt or request; OK-5: goodness honest; PRIO/FAIR/CONSEC/ATOMIC;
    LINK-MUX-1: attempts in step), on the EGP that keeps as many attempts in
    flight as the memory can spare (the suite's nodes have 1 to 4 qubits)."""
    report = LINK_SUITE.run(MultiplexedEgp, name="multiplexed-egp")
    assert report.passed, report.to_text()
    assert all(c.status == "pass" for c in report.clauses)


class _OwnLimitOnly(SingleClickEgp):
    """Broken on purpose: ignores the other end's number of attempts in flight."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, max_in_flight=None)

    @staticmethod
    def _in_flight_limit(link: Any) -> int:
        return link.own_limit


@pytest.mark.slow
@pytest.mark.conformance
def test_ends_that_do_not_agree_on_the_number_in_flight_fail_link_mux_1():
    """LINK-MUX-1 can fail: with 1 qubit at alice and 3 at bob, an EGP that
    ignores the other end's number sends attempts at bob that alice never sends."""
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.3, num_qubits=(1, 3))
    creates = [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=5))]
    sent = run_link(_OwnLimitOnly, conditions, creates, until_ns=200_000).attempts
    assert sum(node == "bob" for _, node, _ in sent) > sum(node == "alice" for _, node, _ in sent)
    report = LINK_SUITE.run(_OwnLimitOnly, select=["LINK-MUX-1"])
    assert report.failed_clauses() == ["LINK-MUX-1"]


# ------------------------------------------------------------ (b) rate


def _successes(impl: Any, conditions: LinkConditions, horizon_ns: int, seed: int) -> int:
    creates = [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=100_000))]
    run = run_link(impl, conditions, creates, until_ns=horizon_ns, seed=seed)
    assert run.crashed is None and run.misuse == []
    return len(run.oks("alice"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["per-attempt", "fast-forward"])
def test_k_attempts_in_flight_make_k_times_the_pairs(mode):
    """k = 4 attempts in flight against 1, p = 0.1, 2000 attempt periods, memory
    to spare (8 qubits, freed by the layer above at once). The request starts
    2 delays + 1 ns after its CREATE; the results of the attempts of B full
    periods arrive by the horizon, so the OKs are Binomial(kB, p): mean kBp,
    checked within 5 standard errors sqrt(kBp(1-p)) for k = 1 and k = 4."""
    delay, p, periods = 1_000, 0.1, 2_000
    conditions = LinkConditions(delay_ns=delay, success_probability=p, num_qubits=(8, 8))
    start = 2 * delay + 1
    horizon = start + periods * delay
    counts = {}
    for k in (1, 4):
        impl = type(
            f"Egp{k}",
            (SingleClickEgp,),
            {"__init__": lambda self, ctx, k=k: SingleClickEgp.__init__(self, ctx, mode=mode, max_in_flight=k)},
        )
        counts[k] = _successes(impl, conditions, horizon, seed=7)
        n = k * periods
        assert abs(counts[k] - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)), (k, counts[k], n * p)
    assert counts[4] > 3 * counts[1]  # the ~4x gain itself (4 ± 0.6 at 5 s.e.)


# ------------------------------------------------------------ (c) regression at k = 1


def _egp_before_multiplexing() -> Any:
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_MULTIPLEXING}:link/egp.py"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the git history with the EGP before multiplexing is not available")
    # that commit predates the qnetstack namespace: its imports name the bare layer packages
    source = re.sub(r"^(from|import) (entity|physical|link|network|application|stack)\b", r"\1 qnetstack.\2", source, flags=re.M)
    spec = importlib.util.spec_from_loader("egp_before_multiplexing", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["egp_before_multiplexing"] = module
    exec(compile(source, "egp_before_multiplexing.py", "exec"), module.__dict__)
    return module


def _regression_script() -> list[ScriptedCreate]:
    """Priorities, fairness, a consecutive and an atomic request, deadlines (some
    met, some not), types K, M and R, from both ends."""
    return [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=6, purpose_id=1)),
        ScriptedCreate(0, "bob", LinkCreate(remote_node="alice", number=4, purpose_id=2, type=RequestType.M, basis=Basis.X)),
        ScriptedCreate(3_000, "alice", LinkCreate(remote_node="bob", number=3, purpose_id=3, priority=0, consecutive=True)),
        ScriptedCreate(5_000, "bob", LinkCreate(remote_node="alice", number=2, purpose_id=4, atomic=True)),
        ScriptedCreate(7_000, "alice", LinkCreate(remote_node="bob", number=50, purpose_id=5, max_time_ns=40_000, priority=2)),
        ScriptedCreate(9_000, "alice", LinkCreate(remote_node="bob", number=3, purpose_id=6, type=RequestType.R, priority=1)),
        ScriptedCreate(20_000, "bob", LinkCreate(remote_node="alice", number=2, purpose_id=7, min_fidelity=0.85)),
    ]


@pytest.mark.parametrize("mode", ["per-attempt", "fast-forward"])
def test_one_attempt_in_flight_reproduces_the_egp_before_multiplexing(mode):
    """Same script, same seed: the messages sent up (with times) and the attempts
    sent down (with times) are identical, for the default and for
    max_in_flight=1 given explicitly; also on nodes with one qubit, where the
    memory can spare one attempt (max_in_flight=None)."""
    before = _egp_before_multiplexing()
    for num_qubits in ((4, 4), (1, 1)):
        conditions = LinkConditions(
            delay_ns=1_000, success_probability=0.3, herald_fidelities=(0.9, 0.8), num_qubits=num_qubits, upper_hold_ns=2_000
        )
        old_impl = lambda ctx: before.SingleClickEgp(ctx, mode=mode)  # noqa: E731
        new_impls = [
            lambda ctx: SingleClickEgp(ctx, mode=mode),
            lambda ctx: SingleClickEgp(ctx, mode=mode, max_in_flight=1),
            lambda ctx, n=num_qubits: SingleClickEgp(ctx, mode=mode, max_in_flight=None if n == (1, 1) else 1),
        ]
        for seed in (1, 2):
            old = run_link(old_impl, conditions, _regression_script(), until_ns=400_000, seed=seed)
            assert old.crashed is None and len(old.oks()) > 20
            for new_impl in new_impls:
                new = run_link(new_impl, conditions, _regression_script(), until_ns=400_000, seed=seed)
                assert new.crashed is None
                # the EGP before multiplexing predates LinkCancel: its ACKs cannot say cancellable
                assert [(u.time_ns, u.node, _as_before_cancel(u.msg)) for u in new.up] == [(u.time_ns, u.node, u.msg) for u in old.up]
                assert new.attempts == old.attempts


def _as_before_cancel(msg: Any) -> Any:
    return msg.model_copy(update={"cancellable": False}) if isinstance(msg, LinkAck) else msg


# ------------------------------------------------------------ bad input


def test_bad_max_in_flight_is_refused():
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        SingleClickEgp(object(), max_in_flight=0)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="max_in_flight"):
        PeerMultiplex(max_in_flight=1)
