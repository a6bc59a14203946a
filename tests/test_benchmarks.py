"""The benchmark scripts keep the interface the issues ask for (small runs)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _link_json(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "link.py"), "--km", "10", "--pairs", "30", "--seed", "3", "--json", *args],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(out.stdout)


def test_link_benchmark_prints_one_json_object_with_the_issue_fields():
    data = _link_json("--scheme", "barrett-kok", "--mode", "fast-forward")
    for key in ("pairs", "attempts", "success_probability", "mean_goodness", "mean_oracle_fidelity", "sim_time_ns", "wall_s"):
        assert key in data, key
    assert data["pairs"] == 30 and data["attempts"] >= 30
    assert abs(data["mean_goodness"] - data["mean_oracle_fidelity"]) < 0.01


def test_link_and_stack_clients_see_the_same_link():
    """The client only changes who asks: the physical and link layers draw
    from the same seeded streams, so the attempts are identical."""
    link = _link_json("--client", "link")
    stack = _link_json("--client", "stack")
    assert link["attempts"] == stack["attempts"] and link["pairs"] == stack["pairs"] == 30
