"""The benchmark scripts keep the interface the issues ask for (small runs)."""

import contextlib
import functools
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

# the scripts run as scripts in a subprocess (seconds each), or their main() in this process
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("--km", "10", "--pairs", "30", "--seed", "3", "--json")


def _script_json(script: str, *args: str) -> dict:
    """What ``python benchmarks/<script> ARGS`` prints, run as a user runs it."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


@functools.cache
def _link_json(*args: str) -> dict:
    """The link benchmark's JSON for a small run, from its main() in this process; each
    distinct run is made once (a run is a function of its arguments: same seed)."""
    spec = importlib.util.spec_from_file_location("link_benchmark", ROOT / "benchmarks" / "link.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert module.main([*SMALL, *args]) == 0
    return json.loads(printed.getvalue())


def test_link_benchmark_prints_one_json_object_with_the_issue_fields():
    data = _script_json("link.py", *SMALL, "--scheme", "barrett-kok", "--mode", "fast-forward")
    for key in ("pairs", "attempts", "success_probability", "mean_goodness", "mean_oracle_fidelity", "sim_time_ns", "wall_s"):
        assert key in data, key
    assert data["pairs"] == 30 and data["attempts"] >= 30
    assert abs(data["mean_goodness"] - data["mean_oracle_fidelity"]) < 0.01


def test_link_and_stack_clients_see_the_same_link():
    """The client only changes who asks: the physical and link layers draw
    from the same seeded streams, so the attempts are identical."""
    link = _link_json("--scheme", "barrett-kok", "--mode", "fast-forward", "--client", "link")
    stack = _link_json("--scheme", "barrett-kok", "--mode", "fast-forward", "--client", "stack")
    assert link["attempts"] == stack["attempts"] and link["pairs"] == stack["pairs"] == 30


def test_link_layer_option_runs_the_named_link_layer():
    """--link-layer swaps the EGP; with several qubits per node the multiplexed
    one keeps attempts in flight side by side, so the same pairs take less
    simulated time than one attempt at a time."""
    plain = _link_json("--scheme", "single-click", "--alpha", "0.3", "--mode", "per-attempt")
    muxed = _link_json("--scheme", "single-click", "--alpha", "0.3", "--mode", "per-attempt", "--link-layer", "multiplexed-egp")
    assert (plain["link_layer"], muxed["link_layer"]) == ("single-click-egp", "multiplexed-egp")
    assert plain["pairs"] == muxed["pairs"] == 30
    assert muxed["sim_time_ns"] < plain["sim_time_ns"]


def test_link_floor_benchmark_reports_messages_and_events_per_pair():
    data = _script_json("link_floor.py", "--pairs", "20", "--repeat", "1", "--json")
    assert data["validated_messages_per_pair"] == 10 and data["kernel_events_per_pair"] == 12
    assert data["us_per_pair_floor"] == data["us_per_pair_messages"] + data["us_per_pair_events"] > 0
    # the floor's event count is the real fast-forward path's (a few events per run are set-up)
    real = _link_json("--scheme", "barrett-kok", "--mode", "fast-forward", "--client", "link")
    assert abs(real["events"] / real["pairs"] - data["kernel_events_per_pair"]) < 0.5


def test_instruction_count_sizes_must_grow():
    """benchmarks/link_instructions.py refuses sizes whose difference gives no per-pair figure
    (its measurement itself needs valgrind and a C compiler; docs/link.md quotes a run)."""
    spec = importlib.util.spec_from_file_location("link_instructions", ROOT / "benchmarks" / "link_instructions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--sizes", "300", "100"])
    assert exit_info.value.code == 2
