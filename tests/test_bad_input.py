"""Bad input, tried as an adversary would: every malformed scenario file and command
line ends in ONE line on stderr (at most 300 characters, ``qnetstack: error: ``,
naming the field or flag), exit code 2, no traceback, nothing run and nothing
written.

The scenario files are generated: each field of a scenario that sets every field
of the schema (:data:`FULL`) gets the wrong values for its kind (wrong types,
booleans, NaN and infinities, negatives, huge integers, ...), every mapping an
unknown and a duplicate key, and then come bad encodings, nesting bombs, bad
references, import paths, links that never herald and requests the memories
cannot serve. They run in-process through ``qnetstack.stack.cli.main`` (a few
milliseconds each); a handful run through the installed entry point, marked slow.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from qnetstack.stack import ScenarioError, assemble, load_scenario, parse_scenario
from qnetstack.stack.cli import main
from qnetstack.stack.scenario import MAX_REQUEST_NUMBER

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PREFIX = "qnetstack: error: "
MAX_LINE = 300

# Valid, and sets every field a scenario file can set (three schemes, both request kinds).
FULL: dict[str, Any] = {
    "name": "every-field",
    "description": "a scenario that sets every field of the schema",
    "seed": 3,
    "keep_trace": False,
    "nodes": [
        {
            "name": "alice",
            "hardware": {"emission_efficiency": 0.75, "memory": {"num_qubits": 4, "t1_ns": 10_000_000_000, "t2_ns": 1_000_000_000}},
        },
        {"name": "r", "hardware": {"memory": {"num_qubits": 2}}},
        {"name": "bob"},
        {"name": "carol"},
    ],
    "links": [
        {
            "a": "alice",
            "b": "r",
            "length_km": 10.0,
            "fibre": {"db_per_km": 0.2, "refractive_index": 1.468},
            "detector": {"efficiency": 0.8, "dark_count_probability": 0.0},
            "scheme": "single-click",
            "bright_state_population": 0.1,
        },
        {"a": "r", "b": "bob", "length_km": 10, "scheme": "barrett-kok", "scheme_params": {"two_photon_visibility": 0.9}},
        {
            "a": "bob",
            "b": "carol",
            "length_km": 5.0,
            "scheme": "midpoint-source",
            "scheme_params": {
                "photon_indistinguishability": 0.9,
                "source": {
                    "mean_pair_number": 0.01,
                    "statistics": "thermal",
                    "heralding_efficiency": 0.8,
                    "spectral_purity": 1.0,
                    "repetition_rate_hz": 1.0e8,
                    "wavelength_nm": 1550.0,
                },
            },
        },
    ],
    "implementations": {"physical": "model-heralding", "link": "fast-forward-egp", "network": "swap-asap", "application": "basic-apps"},
    "applications": [
        {
            "node": "alice",
            "at_ns": 0,
            "request": {
                "kind": "teleport",
                "request_id": 1,
                "remote_node": "bob",
                "number": 2,
                "states": [{"theta_rad": 1.0, "phi_rad": 0.5}],
                "min_fidelity": 0.0,
            },
        },
        {
            "node": "carol",
            "at_ns": 10,
            "request": {"kind": "pairs", "request_id": 2, "remote_node": "bob", "number": 2, "min_fidelity": 0.0},
        },
    ],
    "stop": {"max_time_ns": 1_000_000_000_000, "max_events": 1_000_000},
}

DELETE = object()  # a mutation that removes the key
HUGE = 10**400  # more digits than any float holds
NAN, INF = float("nan"), float("inf")

# Wrong values per kind of field. Each is wrong for every field of its kind.
BAD = {
    "probability": [True, "0.5", None, NAN, INF, -0.1, 1.5, HUGE],
    "optional-probability": [True, "0.5", NAN, INF, -0.1, 1.5, HUGE],  # None: the default
    "positive": [True, "1", None, NAN, INF, -INF, -1.0, 0, HUGE],
    "non-negative": [True, "1", None, NAN, INF, -1.0, HUGE],
    "index": [True, NAN, INF, 0.5, None],
    "angle": [True, "1", NAN, INF, -0.5, 4.0],  # theta: [0, pi]
    "phase": [True, "0", NAN, INF, -INF, None],  # phi: any finite number
    "count": [True, "2", 1.5, 2.0, -1, 2**63, 10**30, None],  # integers >= 0
    "positive-count": [True, "2", 2.5, 0, -3, 2**64, None],
    "optional-positive-count": [True, "2", 2.5, 0, -3, 2**64],  # None means "no limit" / "no decay"
    "qubits": [True, "2", 2.0, -1, 65, 2**63],
    "number": [True, "2", 2.0, 0, -1, MAX_REQUEST_NUMBER + 1, 10**18, 2**63],
    "seed": [True, "1", 1.5, -1, 2**63, HUGE],
    "name": [5, True, None, "", "two words", ["alice"]],
    "reference": [5, True, None, "mallory", "m" * 100_000],
    "text": [5, True, None, 1.5, {"a": 1}],
    "flag": [1, "yes", None, 0.0],
    "scheme": ["no-such-scheme", 1, True, None],
    "statistics": ["gaussian", 1, True, None],
    "kind": ["no-such-kind", 3, True, None],
    "implementation": [5, True, "", "no-such-implementation"],
}

FIELDS: list[tuple[str, str]] = [
    ("name", "text"),
    ("description", "text"),
    ("seed", "seed"),
    ("keep_trace", "flag"),
    ("nodes.0.name", "name"),
    ("nodes.0.hardware.emission_efficiency", "probability"),
    ("nodes.0.hardware.memory.num_qubits", "qubits"),
    ("nodes.0.hardware.memory.t1_ns", "optional-positive-count"),
    ("nodes.0.hardware.memory.t2_ns", "optional-positive-count"),
    ("links.0.a", "reference"),
    ("links.0.b", "reference"),
    ("links.0.length_km", "positive"),
    ("links.0.fibre.db_per_km", "non-negative"),
    ("links.0.fibre.refractive_index", "index"),
    ("links.0.detector.efficiency", "probability"),
    ("links.0.detector.dark_count_probability", "probability"),
    ("links.0.scheme", "scheme"),
    ("links.0.bright_state_population", "optional-probability"),
    ("links.1.length_km", "positive"),
    ("links.1.scheme_params.two_photon_visibility", "probability"),
    ("links.2.scheme_params.photon_indistinguishability", "probability"),
    ("links.2.scheme_params.source.mean_pair_number", "non-negative"),
    ("links.2.scheme_params.source.statistics", "statistics"),
    ("links.2.scheme_params.source.heralding_efficiency", "probability"),
    ("links.2.scheme_params.source.repetition_rate_hz", "positive"),
    ("links.2.scheme_params.source.wavelength_nm", "positive"),
    ("implementations.physical", "implementation"),
    ("implementations.link", "implementation"),
    ("implementations.network", "implementation"),
    ("implementations.application", "implementation"),
    ("applications.0.node", "reference"),
    ("applications.0.at_ns", "count"),
    ("applications.0.request.kind", "kind"),
    ("applications.0.request.request_id", "count"),
    ("applications.0.request.remote_node", "reference"),
    ("applications.0.request.number", "number"),
    ("applications.0.request.states.0.theta_rad", "angle"),
    ("applications.0.request.states.0.phi_rad", "phase"),
    ("applications.0.request.min_fidelity", "probability"),
    ("applications.1.request.number", "number"),
    ("stop.max_time_ns", "optional-positive-count"),
    ("stop.max_events", "optional-positive-count"),
]

REQUIRED = {
    "nodes.0.name",
    "links.0.a",
    "links.0.b",
    "links.0.length_km",
    "applications.0.node",
    "applications.0.request.kind",
    "applications.0.request.remote_node",
    "applications.0.request.states.0.theta_rad",
}

# Every mapping of FULL (the root is "").
MAPPINGS = [
    "",
    "nodes.0",
    "nodes.0.hardware",
    "nodes.0.hardware.memory",
    "links.0",
    "links.0.fibre",
    "links.0.detector",
    "links.1.scheme_params",
    "links.2.scheme_params.source",
    "implementations",
    "applications.0",
    "applications.0.request",
    "applications.0.request.states.0",
    "stop",
]


@dataclass(frozen=True)
class Case:
    label: str
    content: bytes
    expect: str  # must appear in the error line: the field, or what is wrong
    suffix: str = ".yaml"


def _parts(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in path.split(".")] if path else []


def mutated(changes: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(FULL)
    for path, value in changes.items():
        *parents, last = _parts(path)
        target = data
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return data


def _scalar(value: Any) -> str:
    """A YAML scalar exactly as the adversary would type it (PyYAML cannot write NaN or 10**400 itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (INF, -INF):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # strings, quoted (JSON strings are YAML strings)


def flow(value: Any, duplicate_at: tuple[Any, ...] | None = None, path: tuple[Any, ...] = ()) -> str:
    """``value`` as one line of flow YAML; the mapping at ``duplicate_at`` repeats its first key."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {flow(v, duplicate_at, (*path, k))}" for k, v in value.items()]
        if path == duplicate_at:
            items.append(items[0])
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v, duplicate_at, (*path, i)) for i, v in enumerate(value)) + "]"
    return _scalar(value)


def _field_cases() -> list[Case]:
    cases = []
    for path, kind in FIELDS:
        for value in BAD[kind]:
            text = flow(mutated({path: value}))
            cases.append(Case(f"{path}={_label(value)}", text.encode(), f"{path}: "))
        if path in REQUIRED:
            cases.append(Case(f"{path} missing", flow(mutated({path: DELETE})).encode(), f"{path}: "))
    return cases


def _label(value: Any) -> str:
    text = "HUGE" if value is HUGE else repr(value)
    return text if len(text) < 20 else text[:17] + "..."


def _mapping_cases() -> list[Case]:
    cases = []
    for path in MAPPINGS:
        where = f"{path}.colour" if path else "colour"
        cases.append(Case(f"unknown key in {path or 'root'}", flow(mutated({where: "red"})).encode(), f"{where}: "))
        duplicated = flow(FULL, duplicate_at=tuple(_parts(path)))
        cases.append(Case(f"duplicate key in {path or 'root'} (yaml)", duplicated.encode(), "appears twice"))
        cases.append(Case(f"duplicate key in {path or 'root'} (json)", duplicated.encode(), "appears twice", ".json"))
    return cases


def _structure_cases() -> list[Case]:
    def case(label: str, changes: dict[str, Any], expect: str) -> Case:
        return Case(label, flow(mutated(changes)).encode(), expect)

    return [
        case("nodes as a mapping", {"nodes": {"alice": {}}}, "nodes: "),
        case("links as text", {"links": "alice-r"}, "links: "),
        case("applications as a number", {"applications": 5}, "applications: "),
        case("hardware as a list", {"nodes.0.hardware": [1]}, "nodes.0.hardware: "),
        case("stop as a number", {"stop": 3}, "stop: "),
        case("request as text", {"applications.0.request": "teleport"}, "applications.0.request: "),
        case("states empty", {"applications.0.request.states": []}, "applications.0.request.states: "),
        case("one node", {"nodes": [{"name": "alice"}], "links": [], "applications": []}, "nodes: "),
        case("no links", {"links": []}, "links: "),
        case("nodes missing", {"nodes": DELETE}, "nodes: "),
        case("links missing", {"links": DELETE}, "links: "),
        case("T2 beyond 2 T1", {"nodes.0.hardware.memory.t1_ns": 10}, "nodes.0.hardware.memory: "),
        case("alpha on barrett-kok", {"links.1.bright_state_population": 0.1}, "links.1.bright_state_population: "),
        case("length in scheme_params", {"links.1.scheme_params.length_km": 3}, "links.1.scheme_params: "),
        case("link of light-years", {"links.0.length_km": 1e308}, "links.0: "),
        case("glass slower than the clock", {"links.0.fibre.refractive_index": 1e300}, "links.0: "),
        # references
        case("link to itself", {"links.0.b": "alice"}, "links.0.b: "),
        case("second link between two nodes", {"links.2.a": "r", "links.2.b": "bob"}, "links.2: "),
        case("duplicate node name", {"nodes.3.name": "alice"}, "nodes.3.name: "),
        case("request to its own node", {"applications.0.request.remote_node": "alice"}, "applications.0.request.remote_node: "),
        case(
            "request id used twice",
            {"applications.1.node": "alice", "applications.1.request.request_id": 1},
            "applications.1.request.request_id: ",
        ),
        # (as JSON: YAML itself refuses a key of more than 1024 characters)
        Case("unknown key of 1 MB", json.dumps(mutated({"nodes.0." + "k" * 1_000_000: 1})).encode(), "nodes.0.kkkkk", ".json"),
    ]


def _import_cases() -> list[Case]:
    cases = []
    for layer in ("physical", "link", "network", "application"):
        for path in ("evil:X", ":", ".egp:X", "os:system", "qnetstack.link.egp:SingleClickEgp"):
            text = flow(mutated({f"implementations.{layer}": path}))
            cases.append(Case(f"{layer}={path}", text.encode(), f"implementations.{layer}: "))
    return cases


def _cannot_run_cases() -> list[Case]:
    def case(label: str, changes: dict[str, Any], expect: str) -> Case:
        return Case(label, flow(mutated(changes)).encode(), expect)

    cases = []
    for i in range(3):
        cases += [
            case(f"links.{i} detector efficiency 0", {f"links.{i}.detector": {"efficiency": 0.0}}, f"links.{i}: "),
            case(f"links.{i} 100000 km", {f"links.{i}.length_km": 100_000.0}, f"links.{i}: "),
            case(f"links.{i} 20000 km (p ~ 1e-200)", {f"links.{i}.length_km": 20_000}, f"links.{i}: "),
            case(f"links.{i} 1e6 dB/km", {f"links.{i}.fibre": {"db_per_km": 1e6}}, f"links.{i}: "),
        ]
    cases += [
        case("bright-state population 0", {"links.0.bright_state_population": 0.0}, "links.0: "),
        case("no emission at r (barrett-kok)", {"nodes.1.hardware.emission_efficiency": 0.0}, "links.1: "),
        case("source makes no pairs", {"links.2.scheme_params.source.mean_pair_number": 0.0}, "links.2: "),
        case("source heralds nothing", {"links.2.scheme_params.source.heralding_efficiency": 0.0}, "links.2: "),
        # memories
        case("repeater with one qubit", {"nodes.1.hardware.memory.num_qubits": 1}, "applications.0: "),
        case("repeater with no qubit", {"nodes.1.hardware.memory.num_qubits": 0}, "applications.0: "),
        case("head without memory", {"nodes.0.hardware.memory.num_qubits": 0}, "applications.0: "),
        case("tail without memory", {"nodes.2.hardware": {"memory": {"num_qubits": 0}}}, "applications.0: "),
        case("requester without memory", {"nodes.3.hardware": {"memory": {"num_qubits": 0}}}, "applications.1: "),
        case("no chain of links", {"links": [FULL["links"][0], FULL["links"][2]]}, "applications.0: "),
    ]
    return cases


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _file_cases() -> list[Case]:
    good = flow(FULL)
    block = yaml.safe_dump(FULL)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    return [
        Case("latin-1", block.replace("every field", "every fiéld").encode("latin-1"), "not UTF-8"),
        Case("UTF-16", good.encode("utf-16"), "not UTF-8"),
        Case("a 0xff byte", b"name: \xff\n" + good.encode(), "not UTF-8"),
        Case("truncated multibyte", good.encode()[:-1] + b"\xc3", "not UTF-8"),
        Case("encoded surrogate", b'description: "\xed\xa0\x80"\n', "not UTF-8"),
        Case("NUL in text", b"name: a\x00b\n", "not valid YAML"),
        Case("bell in text", b"name: a\x07b\n", "not valid YAML"),
        Case("deep flow list", b"[" * 3_000 + b"]" * 3_000, "nested too deeply"),
        Case("deep flow mapping", b"{a: " * 5_000 + b"1" + b"}" * 5_000, "nested too deeply"),
        Case("deep block mapping", "".join(f"{' ' * i}a:\n" for i in range(200)).encode() + b" " * 200 + b"1\n", "nested too deeply"),
        Case("deep JSON", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply", ".json"),
        Case("deep inside description", flow(mutated({"description": _nested(40)})).encode(), "nested too deeply"),
        Case("alias bomb (10**9 values)", bomb.encode(), "values"),
        Case("alias that contains itself", b"nodes: &a [*a]\n", "nested too deeply"),
        Case("integer of 5000 digits", b"seed: " + b"7" * 5000 + b"\n", "cannot read a value"),
        Case("JSON integer of 5000 digits", b'{"seed": ' + b"7" * 5000 + b"}", "cannot read a value", ".json"),
        Case("JSON NaN", json.dumps(mutated({"links.0.length_km": NAN})).encode(), "links.0.length_km: ", ".json"),
        Case("JSON Infinity", json.dumps(mutated({"stop.max_time_ns": INF})).encode(), "stop.max_time_ns: ", ".json"),
        Case("empty file", b"", "mapping at the top level"),
        Case("only a comment", b"# nothing\n", "mapping at the top level"),
        Case("a list at the top", b"- alice\n- bob\n", "mapping at the top level"),
        Case("a number at the top", b"42\n", "mapping at the top level"),
        Case("unclosed bracket", b"nodes: [alice\n", "not valid YAML"),
        Case("tab indentation", b"nodes:\n\t- name: alice\n", "not valid YAML"),
        Case("bad indentation", b"nodes:\n  - name: a\n x: 1\n", "not valid YAML"),
        Case("broken JSON", b'{"nodes": [}', "not valid JSON", ".json"),
        Case("python object tag", b'seed: !!python/object/apply:os.system ["touch PWNED"]\n', "not valid YAML"),
        Case("python name tag", b"seed: !!python/name:os.system\n", "not valid YAML"),
        Case("binary value", b"name: !!binary aGVsbG8=\n" + block.replace("name: every-field\n", "").encode(), "name: "),
        Case(
            "a set",
            b"description: !!set {a, b}\n" + block.replace("description: a scenario that sets every field of the schema\n", "").encode(),
            "description: ",
        ),
        Case(
            "a date",
            b"description: 2024-01-01\n" + block.replace("description: a scenario that sets every field of the schema\n", "").encode(),
            "description: ",
        ),
        Case("a date that does not exist", b"description: 2024-13-45\n", "cannot read a value"),
        Case("a number as a key", b"1: x\n" + block.encode(), "is not text"),
        Case("a boolean as a key (on:)", b"on: 1\n" + block.encode(), "is not text"),
        Case("a file of 5 MiB", b"# " + b"x" * (5 * 2**20) + b"\n" + block.encode(), "MiB"),
    ]


CASES = _field_cases() + _mapping_cases() + _structure_cases() + _import_cases() + _cannot_run_cases() + _file_cases()


def test_the_base_scenario_is_valid_and_the_set_is_large():
    """Each case differs from FULL only where it says, so FULL itself must pass every check."""
    assemble(parse_scenario(FULL))
    assert len(CASES) >= 200, len(CASES)
    assert len({c.label for c in CASES}) == len(CASES)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1, err[:2000]
    line = lines[0]
    assert line.startswith(PREFIX) and len(line) <= MAX_LINE, line
    return line


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_malformed_scenario_is_one_line_and_exit_2_with_nothing_written(case, tmp_path, capsys, monkeypatch):
    scenario = tmp_path / "in" / f"case{case.suffix}"
    scenario.parent.mkdir()
    scenario.write_bytes(case.content)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # anything written to the current folder would show too
    assert main(["run", str(scenario), "--trace", str(out / "trace.jsonl")]) == 2
    stdout, err = capsys.readouterr()
    line = _one_error_line(err)
    assert case.expect in line, line
    assert stdout == ""
    assert list(out.iterdir()) == []


def test_a_scenario_file_cannot_make_the_command_import_a_module(tmp_path, capsys, monkeypatch):
    """``evil.py`` beside the scenario leaves a mark when imported; naming it in the
    file is refused, and so is a YAML tag that would call Python."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "evil_module_for_test.py").write_text("open('IMPORTED', 'w').close()\n")
    (tmp_path / "a.yaml").write_text(flow(mutated({"implementations.link": "evil_module_for_test:X"})))
    (tmp_path / "b.yaml").write_text("seed: !!python/object/apply:os.system ['touch IMPORTED']\n")
    for name in ("a.yaml", "b.yaml"):
        assert main(["run", name]) == 2
        _one_error_line(capsys.readouterr().err)
        assert not (tmp_path / "IMPORTED").exists()
    assert str(tmp_path) not in sys.path  # nothing on the command line asked for imports
    assert main(["run", "a.yaml"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--allow-import" in line and "implementations.link: " in line
    # allowed, the module is imported (and found wanting: it has no X)
    assert main(["run", "a.yaml", "--allow-import"]) == 2
    assert "no attribute 'X'" in _one_error_line(capsys.readouterr().err)
    assert (tmp_path / "IMPORTED").exists()
    sys.modules.pop("evil_module_for_test", None)


def test_load_scenario_refuses_import_paths_unless_allowed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(flow(mutated({"implementations.network": "qnetstack.network.swap_asap:SwapAsap"})))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.field == "implementations.network"
    assert load_scenario(path, allow_import=True).implementations.network == "qnetstack.network.swap_asap:SwapAsap"


def test_python_api_checks_numbers_of_models_built_in_code():
    """A scenario built from models (not a file) gets the same finite-number and range checks."""
    from qnetstack.application.service import BlochState, TeleportRequest
    from qnetstack.stack.scenario import AppSpec

    # a state with an infinite angle cannot even be built (it would crash a run
    # mid-way, whoever hands it to the application layer)
    with pytest.raises(ValidationError, match="phi_rad"):
        BlochState(theta_rad=1.0, phi_rad=INF)
    with pytest.raises(ScenarioError) as info:
        assemble(parse_scenario(FULL), applications=[AppSpec(node="alice", request=TeleportRequest(remote_node="bob", number=10**10))])
    assert info.value.field == "applications.0.request.number"


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path):
    """PyYAML follows YAML 1.1, where ``1e-7`` is text; strict types would then refuse
    the usual way of writing a dark-count probability. It is a number, as in YAML 1.2."""
    path = tmp_path / "s.yaml"
    path.write_text(flow(FULL).replace('"dark_count_probability": 0.0', '"dark_count_probability": 1e-7'))
    assert load_scenario(path).links[0].detector.dark_count_probability == 1e-7


# ------------------------------------------------------------------ command lines

LINK_PAIRS = str(EXAMPLES / "link-pairs.yaml")
MODULES = {
    "raises_on_import_t": "raise RuntimeError('boom at import')\n",
    "bad_syntax_t": "def f(:\n",
    "exits_on_import_t": "import sys\nsys.exit(3)\n",
    "long_error_t": "raise ValueError('x' * 1_000_000)\n",
}


def _cli_cases(folder: Path) -> list[tuple[str, list[str], str]]:
    """(label, argv, what the line must contain); ``folder`` holds a file and a subfolder."""
    a_file, a_dir = str(folder / "a-file"), str(folder / "a-dir")
    run = ["run", LINK_PAIRS]
    return [
        ("nothing", [], "command"),
        ("unknown command", ["bogus"], "invalid choice"),
        ("run without a scenario", ["run"], "scenario"),
        ("run with two scenarios", [*run, LINK_PAIRS], "unrecognized arguments"),
        ("unknown flag", [*run, "--bogus"], "unrecognized arguments"),
        ("unknown flag of 1 MB", [*run, "--" + "x" * 1_000_000], "unrecognized arguments"),
        ("--seed text", [*run, "--seed", "abc"], "--seed"),
        ("--seed negative", [*run, "--seed", "-1"], "--seed"),
        ("--seed decimal", [*run, "--seed", "1.5"], "--seed"),
        ("--seed 2**63", [*run, "--seed", str(2**63)], "--seed"),
        ("--seed of 5000 digits", [*run, "--seed", "9" * 5000], "--seed"),
        ("--seed empty", [*run, "--seed", ""], "--seed"),
        ("--seed without value", [*run, "--seed"], "--seed"),
        ("--impl without =", [*run, "--impl", "link"], "--impl"),
        ("--impl without layer", [*run, "--impl", "=single-click-egp"], "--impl"),
        ("--impl without implementation", [*run, "--impl", "link="], "--impl"),
        ("--impl unknown layer", [*run, "--impl", "transport=x"], "--impl"),
        ("--impl :", [*run, "--impl", "link=:"], "--impl"),
        ("--impl .egp:X", [*run, "--impl", "link=.egp:X"], "--impl"),
        ("--impl a..b:C", [*run, "--impl", "link=a..b:C"], "--impl"),
        ("--impl module:", [*run, "--impl", "link=os:"], "--impl"),
        ("--impl no such module", [*run, "--impl", "link=no_such_module_anywhere:X"], "--impl link"),
        ("--impl module raises", [*run, "--impl", "link=raises_on_import_t:X"], "RuntimeError"),
        ("--impl module has a syntax error", [*run, "--impl", "link=bad_syntax_t:X"], "SyntaxError"),
        ("--impl module exits", [*run, "--impl", "link=exits_on_import_t:X"], "SystemExit"),
        ("--impl module raises at length", [*run, "--impl", "link=long_error_t:X"], "ValueError"),
        ("--impl no such attribute", [*run, "--impl", "link=os:no_such_thing"], "--impl link"),
        ("--impl not an implementation", [*run, "--impl", "link=os:sep"], "implementations.link"),
        ("--impl unknown name", [*run, "--impl", "link=no-such-egp"], "--impl link"),
        ("--impl twice", [*run, "--impl", "link=fast-forward-egp", "--impl", "link=single-click-egp"], "given twice"),
        ("--trace in a missing folder", [*run, "--trace", str(folder / "missing" / "t.jsonl")], "--trace"),
        ("--trace is a folder", [*run, "--trace", a_dir], "--trace"),
        ("--trace under a file", [*run, "--trace", a_file + "/t.jsonl"], "--trace"),
        ("--trace empty", [*run, "--trace", ""], "--trace"),
        ("--trace with NUL", [*run, "--trace", str(folder / "t\0.jsonl")], "--trace"),
        ("--trace name too long", [*run, "--trace", str(folder / ("t" * 300))], "--trace"),
        ("scenario missing", ["run", str(folder / "missing.yaml")], "cannot read"),
        ("scenario is a folder", ["run", a_dir], "cannot read"),
        ("scenario path with NUL", ["run", str(folder / "s\0.yaml")], "cannot read"),
        ("scenario path of 100 kB", ["run", "s" * 100_000 + ".yaml"], "cannot read"),
        ("--allow-import with a value", [*run, "--allow-import=yes"], "--allow-import"),
        ("conform without layer", ["conform"], "layer"),
        ("conform unknown layer", ["conform", "transport"], "unknown layer 'transport'"),
        ("conform layer of 1 MB", ["conform", "l" * 1_000_000], "unknown layer"),
        ("conform :", ["conform", "link", ":"], "module:Class"),
        ("conform .egp:X", ["conform", "link", ".egp:X"], "module:Class"),
        ("conform module raises", ["conform", "link", "raises_on_import_t:X"], "RuntimeError"),
        ("conform unknown name of 1 MB", ["conform", "link", "n" * 1_000_000], "unknown link implementation"),
        ("conform unknown clause", ["conform", "link", "--clause", "NO-SUCH-1"], "--clause"),
        ("conform clause of 1 MB", ["conform", "link", "--clause", "C" * 1_000_000], "--clause"),
        ("conform --junit in a missing folder", ["conform", "link", "--junit", str(folder / "missing" / "r.xml")], "--junit"),
        ("conform --junit is a folder", ["conform", "link", "--junit", a_dir], "--junit"),
        ("conform --clause without value", ["conform", "link", "--clause"], "--clause"),
        ("schema --out is a file", ["schema", "--out", a_file], "--out"),
        ("schema --out under a file", ["schema", "--out", a_file + "/schemas"], "--out"),
        ("diagrams --out is a folder", ["diagrams", "--out", a_dir], "--out"),
        ("diagrams --out in a missing folder", ["diagrams", "--out", str(folder / "missing" / "d.md")], "--out"),
    ]


_CLI_LABELS = [c[0] for c in _cli_cases(Path("/"))]
# These load a conformance suite first (seconds, once per process): out of the inner loop.
_LOADS_A_SUITE = {"conform module raises", "conform unknown name of 1 MB", "conform unknown clause", "conform clause of 1 MB"}


@pytest.mark.parametrize("label", [pytest.param(c, marks=pytest.mark.slow) if c in _LOADS_A_SUITE else c for c in _CLI_LABELS])
def test_bad_command_line_is_one_line_and_exit_2_with_nothing_written(label, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "work"
    (folder / "a-dir").mkdir(parents=True)
    (folder / "a-file").write_text("not a folder\n")
    modules = tmp_path / "modules"
    modules.mkdir()
    for name, text in MODULES.items():
        (modules / f"{name}.py").write_text(text)
    monkeypatch.chdir(modules)  # a module:Class on the command line may name a module here
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv, expect = next((argv, expect) for lbl, argv, expect in _cli_cases(folder) if lbl == label)
    assert main(argv) == 2
    stdout, err = capsys.readouterr()
    line = _one_error_line(err)
    assert expect in line, line
    assert stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_there_are_at_least_40_command_lines():
    assert len(_CLI_LABELS) >= 40 and len(set(_CLI_LABELS)) == len(_CLI_LABELS)


def test_a_bad_trace_path_is_refused_before_the_scenario_is_read(tmp_path, capsys):
    """Checked first: a run that would end unable to write its trace never starts."""
    assert main(["run", str(tmp_path / "missing.yaml"), "--trace", str(tmp_path / "no" / "t.jsonl")]) == 2
    assert "--trace" in _one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------ through the entry point


def _entry_point() -> list[str]:
    script = Path(sys.executable).with_name("qnetstack")
    return [str(script)] if script.exists() else [sys.executable, "-m", "qnetstack.stack.cli"]


ENTRY_POINT_CASES = [
    ("not UTF-8", b"name: \xff\n", []),
    ("boolean length", flow(mutated({"links.0.length_km": True})).encode(), []),
    ("link that never heralds", flow(mutated({"links.0.detector": {"efficiency": 0.0}})).encode(), []),
    ("import path in the file", flow(mutated({"implementations.link": "evil:X"})).encode(), []),
    ("bad --trace", flow(FULL).encode(), ["--trace", "/nonexistent-folder/t.jsonl"]),
]


@pytest.mark.parametrize("label, content, args", ENTRY_POINT_CASES)
def test_the_command_prints_one_line_and_exits_2(label, content, args, tmp_path, monkeypatch, capsys):
    """The command's code path in this process (``main``), from the scenario's folder; the
    installed script itself is run once, in a process of its own, by the test below."""
    scenario = tmp_path / "s.yaml"
    scenario.write_bytes(content)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(scenario), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


@pytest.mark.slow
def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    """The installed script in a process of its own, on the input most likely to take a process
    down (a nesting bomb: deep recursion in the YAML parser)."""
    scenario = tmp_path / "s.yaml"
    scenario.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*_entry_point(), "run", str(scenario)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    _one_error_line(done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize("value", [INF, -INF, float("nan")])
def test_models_built_in_code_refuse_non_finite_angles_and_lengths(value):
    """The same refusals as a scenario file's, for the message and parameter models themselves."""
    from qnetstack.application.service import BlochState
    from qnetstack.physical.params import FibreParams, SingleClickLinkParams
    from qnetstack.physical.service import InitQubit

    with pytest.raises(ValidationError, match="phi_rad"):
        BlochState(theta_rad=0.5, phi_rad=value)
    with pytest.raises(ValidationError, match="phi_rad"):
        InitQubit(phi_rad=value)
    with pytest.raises(ValidationError, match="refractive_index"):
        FibreParams(refractive_index=value)
    with pytest.raises(ValidationError, match="length_km"):
        SingleClickLinkParams(length_km=value)


@pytest.mark.parametrize("field", ["single_qubit_gate_duration_ns", "two_qubit_gate_duration_ns", "measurement_duration_ns"])
def test_a_scenario_takes_operation_durations_and_refuses_negative_ones(field):
    """Runs honour operation durations (the network layer's swaps and measurements wait for the
    device), so a scenario takes them; a negative duration is refused with the field named."""
    data = copy.deepcopy(FULL)
    data["nodes"][0].setdefault("hardware", {}).setdefault("memory", {})[field] = 500
    assert getattr(parse_scenario(data).nodes[0].hardware.memory, field) == 500
    data["nodes"][0]["hardware"]["memory"][field] = -1
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert info.value.field == f"nodes.0.hardware.memory.{field}"


def test_an_unknown_network_policy_is_a_one_line_error_naming_the_field_and_the_policies():
    data = copy.deepcopy(FULL)
    data["network"] = {"policy": "swap-whenever"}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert info.value.field == "network.policy"
    message = str(info.value)
    assert "\n" not in message and "swap-whenever" in message and "swap-asap" in message
