"""Malformed scenarios: one line naming the field and the problem, exit code 2."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from qnetstack.stack import ScenarioError, assemble, parse_scenario
from qnetstack.stack.assembler import AssemblyError
from qnetstack.stack.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = yaml.safe_load((EXAMPLES / "teleport-chain.yaml").read_text())


def broken(path: str, value=None, delete: bool = False) -> dict:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        last = int(last)
    if delete:
        del target[last]
    else:
        target[last] = value
    return data


CASES = [
    ("unknown node in a link", broken("links.0.b", "mallory"), "links.0.b", "unknown node 'mallory'"),
    ("negative length", broken("links.1.length_km", -3), "links.1.length_km", "greater than 0"),
    ("fidelity above one", broken("applications.0.request.min_fidelity", 1.5), "applications.0.request.min_fidelity", "less than or equal to 1"),
    ("missing field", broken("links.0.length_km", delete=True), "links.0.length_km", "Field required"),
    ("unknown field", broken("links.0.colour", "red"), "links.0.colour", "Extra inputs are not permitted"),
    ("duplicate node", broken("nodes.2.name", "alice"), "nodes.2.name", "duplicate node name"),
    ("app on unknown node", broken("applications.0.node", "eve"), "applications.0.node", "unknown node 'eve'"),
    ("efficiency above one", broken("links.0.detector", {"efficiency": 2}), "links.0.detector.efficiency", "less than or equal to 1"),
    ("T2 beyond 2 T1", broken("nodes.0.hardware", {"memory": {"t1_ns": 10, "t2_ns": 30}}), "nodes.0.hardware.memory", "T2 <= 2*T1"),
    ("negative request id", broken("applications.0.request.request_id", -1), "applications.0.request.request_id", "greater than or equal to 0"),
    ("request id used twice at a node", {**BASE, "applications": [
        {"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "request_id": 4}},
        {"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "request_id": 4}},
    ]}, "applications.1.request.request_id", "request_id 4 is already used by applications.0 at node 'alice'"),
]  # fmt: skip


def test_left_out_request_ids_are_numbered_per_node_around_the_given_ones():
    requests = [("alice", None), ("alice", 0), ("bob", None), ("alice", None), ("bob", 5)]
    apps = [
        {"node": node, "request": {"kind": "pairs", "remote_node": "r", **({} if rid is None else {"request_id": rid})}}
        for node, rid in requests
    ]
    scenario = parse_scenario({**BASE, "applications": apps})
    assert [(a.node, a.request.request_id) for a in scenario.applications] == [
        ("alice", 1),
        ("alice", 0),
        ("bob", 0),
        ("alice", 2),
        ("bob", 5),
    ]
    # the numbered scenario reads back the same (ids given now)
    again = parse_scenario(scenario.model_dump(mode="json"))
    assert again.applications == scenario.applications


def test_assemble_checks_the_request_ids_of_applications_given_in_code():
    from qnetstack.application.service import PairsRequest
    from qnetstack.stack.scenario import AppSpec

    twice = [AppSpec(node="alice", request=PairsRequest(request_id=2, remote_node="bob"))] * 2
    with pytest.raises(ScenarioError) as info:
        assemble(parse_scenario(BASE), applications=twice)
    assert info.value.field == "applications.1.request.request_id"
    sim = assemble(parse_scenario(BASE), applications=[AppSpec(node="alice", request=PairsRequest(remote_node="bob"))] * 2)
    assert [a.request.request_id for a in sim.scenario.applications] == [0, 1]


@pytest.mark.parametrize("label, data, field, problem", CASES, ids=[c[0] for c in CASES])
def test_python_api_raises_a_typed_error_naming_the_field(label, data, field, problem):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert info.value.field == field
    assert problem in info.value.problem


def test_unknown_implementation_is_an_assembly_error():
    scenario = parse_scenario(broken("implementations.link", "no-such-egp"))
    with pytest.raises(AssemblyError) as info:
        assemble(scenario)
    assert info.value.field == "implementations.link"
    assert "no-such-egp" in info.value.problem and "single-click-egp" in info.value.problem


def test_import_path_that_does_not_exist_is_an_assembly_error():
    scenario = parse_scenario(broken("implementations.network", "nowhere.at_all:Thing"), allow_import=True)
    with pytest.raises(AssemblyError, match="cannot import module 'nowhere.at_all'"):
        assemble(scenario)


def test_data_naming_an_import_path_is_refused_unless_imports_are_allowed():
    with pytest.raises(ScenarioError) as info:
        parse_scenario(broken("implementations.network", "nowhere.at_all:Thing"))
    assert info.value.field == "implementations.network" and "allow-import" in info.value.problem


class NeedsMore:
    PROVIDES = frozenset({"link:K"})
    REQUIRES = frozenset({"physical:teleporter"})


def test_a_layer_that_needs_what_the_layer_below_lacks_is_named():
    scenario = parse_scenario(BASE)
    with pytest.raises(AssemblyError) as info:
        assemble(scenario, {"link": NeedsMore})
    assert "physical:teleporter" in info.value.problem and info.value.field == "implementations.link"


@pytest.mark.parametrize(
    "label, data, field, problem",
    CASES
    + [
        ("unknown implementation", broken("implementations.link", "no-such-egp"), "implementations.link", "unknown link implementation"),
    ],
    ids=[c[0] for c in CASES] + ["unknown implementation"],
)
def test_cli_exits_2_with_one_line(tmp_path, capsys, label, data, field, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{field}: " in lines[0] and problem in lines[0] and "Traceback" not in err


def test_cli_reports_unreadable_and_non_yaml_files(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read scenario file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [alice\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and len(err.strip().splitlines()) == 1


def test_a_request_id_given_as_text_a_float_or_a_boolean_is_refused():
    """Scenario values are taken strictly: ``request_id: "0"`` (or 0.0, or true) is
    not request 0 but a mistake, named, and never numbered around."""
    for given in ("0", 0.0, True):
        with pytest.raises(ScenarioError) as info:
            parse_scenario(
                {
                    "nodes": [{"name": "alice"}, {"name": "bob"}],
                    "links": [{"a": "alice", "b": "bob", "length_km": 1}],
                    "applications": [
                        {"node": "alice", "request": {"kind": "pairs", "remote_node": "bob"}},
                        {"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "request_id": given}},
                    ],
                }
            )
        assert info.value.field == "applications.1.request.request_id"
        assert "valid integer" in info.value.problem
