"""A man in the middle on the classical channel (``faults: tamper``) against the QKD applications.

The adversary alters the protocol's authenticated messages between alice and bob
(an announced basis, the tail's bases, an outcome's length or code; the messages
say what can be rewritten). Without the Wegman–Carter key it cannot make a tag
that checks except with probability ≈ (L + 1)/2^61 per message (qkd.auth), so
every altered run must end AUTH_FAILED at both ends with no key
(specs/application.md APP-QKD-5). An application that skips the tag checks
(tests/broken_apps.py) is caught by the same check.
"""

from __future__ import annotations

from typing import Any

import pytest

from qnetstack.application.service import AppDone, AppError, AppErrorCode, KeyAborted, KeyDelivered
from qnetstack.stack import assemble
from qnetstack.stack.scenario import ScenarioError
from tests.broken_apps import KeysWithoutAuthentication
from tests.test_qkd_lossy import FAST, check_symmetric, lossy_pair

REQUEST = {"protocol": "bbm92", "pairs": 400, "epsilon": 0.1, "sample_fraction": 0.35}


def tampered_run(seed: int, probability: float, application: Any = None) -> tuple[Any, Any, list[tuple[str, Any]]]:
    faults = {"tamper": [{"link": ["bob", "alice"], "probability": probability}]}
    impls = FAST if application is None else {**FAST, "application": application}
    sim = assemble(lossy_pair(seed, REQUEST, faults=faults), impls)
    report = sim.run()
    return sim, report, [(node, msg) for _, node, msg in sim.network.user_messages]


def app_qkd_5_problem(tampered: int, messages: list[tuple[str, Any]]) -> str | None:
    """What breaks APP-QKD-5 in a run where ``tampered`` messages were altered, or None."""
    if not tampered:
        return None
    keys = [node for node, m in messages if isinstance(m, KeyDelivered)]
    if keys:
        return f"{tampered} messages altered, yet a key was delivered at {keys}"
    ends = sorted((node, m.code.value) for node, m in messages if isinstance(m, (AppError, KeyAborted)))
    if ends != [("alice", "AUTH_FAILED"), ("bob", "AUTH_FAILED")]:
        return f"{tampered} messages altered, yet the ends closed with {ends}, not AUTH_FAILED at both"
    return None


def test_every_altered_run_ends_auth_failed_at_both_ends():
    """Every message altered (p = 1): the first altered announcement fails its check at the tail."""
    sim, report, messages = tampered_run(21, 1.0)
    assert sim.network.faults.tampered >= 1
    assert app_qkd_5_problem(sim.network.faults.tampered, messages) is None
    assert check_symmetric(report, messages) == AppErrorCode.AUTH_FAILED.value


def test_partly_altered_runs_end_alike_and_never_with_a_key():
    """p = 0.5 over 6 seeds: each run either was altered (AUTH_FAILED at both ends) or not (its usual end,
    TOO_FEW_PAIRS for 400 pairs at ε = 0.1)."""
    altered = 0
    for seed in range(30, 36):
        sim, report, messages = tampered_run(seed, 0.5)
        code = check_symmetric(report, messages)
        assert app_qkd_5_problem(sim.network.faults.tampered, messages) is None
        if sim.network.faults.tampered:
            altered += 1
            assert code == "AUTH_FAILED"
        else:
            assert code == "TOO_FEW_PAIRS"
    assert altered >= 1


def test_an_application_that_skips_tag_checks_is_caught():
    sim, _, messages = tampered_run(21, 1.0, KeysWithoutAuthentication)
    assert sim.network.faults.tampered >= 1
    problem = app_qkd_5_problem(sim.network.faults.tampered, messages)
    assert problem is not None and "not AUTH_FAILED" in problem, problem


def test_without_a_tamperer_the_clause_check_passes_on_any_end():
    assert app_qkd_5_problem(0, [("alice", AppDone(request_id=0, request_kind="qkd", remote_node="bob", completed=1, time_ns=0))]) is None


@pytest.mark.parametrize(
    "tamper, field",
    [
        ({"link": ["alice", "carol"]}, "faults.tamper.0.link.1"),
        ({"link": ["alice", "bob"], "probability": 1.5}, "faults.tamper.0.probability"),
    ],
)
def test_a_tamperer_on_a_link_that_does_not_exist_is_refused_naming_the_field(tamper, field):
    with pytest.raises(ScenarioError) as caught:
        lossy_pair(1, REQUEST, faults={"tamper": [tamper]})
    assert field in str(caught.value) and "\n" not in str(caught.value).strip(), str(caught.value)
