"""Messages built without validation (``Message.trusted``) are the messages validation builds.

The reference layers build their hot messages with ``trusted``; with
``verifying_trusted`` on, each is built the validating way too and the two are
compared field by field, exact types included. The runs here turn it on for
whole scenarios, so every trusted call site they reach is checked against
validation, and show the results equal those of a run with it off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.entity.message import TrustedMismatch, verifying_trusted
from qnetstack.link.service import EntanglementId, LinkCancel, LinkOkKeep
from qnetstack.physical.service import BellState, HeraldAttempt, HeraldResult
from qnetstack.stack import assemble, load_scenario

ROOT = Path(__file__).resolve().parents[1]


def test_a_trusted_message_equals_the_validated_one_field_for_field():
    fields = dict(neighbour="b", attempt_id=7, success=True, handle=2, bell_state=BellState.PSI_PLUS, bell_diagonal=(0.7, 0.1, 0.1, 0.1))
    trusted, validated = HeraldResult.trusted(**fields), HeraldResult(**fields)
    assert trusted == validated and type(trusted) is HeraldResult
    assert list(trusted.__dict__) == list(validated.__dict__)  # defaults in place, fields in the class's order
    assert trusted.model_fields_set == validated.model_fields_set == set(fields)
    assert trusted.model_dump_json() == validated.model_dump_json()
    with pytest.raises(ValidationError):
        trusted.attempt_id = 8  # type: ignore[misc]  # still frozen


def test_verifying_catches_what_validation_would_change_or_refuse():
    with verifying_trusted():
        HeraldAttempt.trusted(neighbour="b", attempt_id=3, max_attempts=5)
        with pytest.raises(TrustedMismatch, match="attempt_id: int64"):
            HeraldAttempt.trusted(neighbour="b", attempt_id=np.int64(3))  # validation would make it an int
        ent = {"creator": "a", "peer": "b", "sequence": 1}
        ok = dict(create_id=0, origin_node="a", purpose_id=0, remote_node="b", bell_state=BellState.PHI_PLUS, goodness=0.9)
        ok |= dict(goodness_time_ns=5, handle=0)
        LinkOkKeep.trusted(ent_id=EntanglementId.trusted(**ent), **ok)
        with pytest.raises(TrustedMismatch, match="ent_id: dict"):
            LinkOkKeep.trusted(ent_id=ent, **ok)
        with pytest.raises(ValidationError):
            HeraldAttempt.trusted(neighbour="b", attempt_id=-1)  # out of range
        with pytest.raises(ValidationError):
            HeraldAttempt.trusted(attempt_id=1)  # a required field missing


def test_a_message_with_validators_of_its_own_must_be_validated():
    with pytest.raises(TypeError, match="validators"):
        LinkCancel.trusted(create_id=1)


def _chain_benchmark() -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import network as bench  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    scenario = bench.build_scenario(topology="chain", nodes=5, km=10, circuits=1, pairs=20, sim_time_s=10, endpoints="ends", seed=3)
    result = bench.run(scenario)
    return {k: v for k, v in result.items() if k not in ("wall_s", "run_s", "assembly_s", "peak_rss_mb")}


def _example(name: str) -> dict:
    result = assemble(load_scenario(ROOT / "examples" / name)).run()
    return json.loads(result.model_dump_json())


@pytest.mark.parametrize("run", [_chain_benchmark, lambda: _example("grid-faults.yaml"), lambda: _example("teleport-chain.yaml")])
def test_runs_checked_message_by_message_give_the_results_of_unchecked_runs(run):
    with verifying_trusted():
        checked = run()
    assert checked == run()
