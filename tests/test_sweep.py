"""Parameter sweeps (qnetstack.stack.sweep and ``qnetstack sweep``): points, rows, bad input, resuming.

Every run here is the small single-link scenario of examples/sweeps (model
heralding, fast-forward link layer, 100 pairs; about 0.2 s a run), with few
points and seeds, serial in the test's process unless a test is about workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qnetstack.stack import sweep as sweep_module
from qnetstack.stack.cli import main
from qnetstack.stack.sweep import (
    SweepError,
    figure_columns,
    load_sweep,
    parameter_columns,
    parse_sweep,
    read_results,
    run_sweep,
    sidecar_path,
    summarise,
)

BASE = Path(__file__).resolve().parent.parent / "examples" / "sweeps" / "single-link.yaml"


def write_sweep(folder: Path, text: str) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(f"scenario: {BASE}\n{text}", encoding="utf-8")
    return path


def two_by_two(folder: Path) -> Path:
    return write_sweep(folder, "seeds: [1, 2]\ngrid: {links.0.length_km: [5, 20]}\n")


# ------------------------------------------------------------------ points and rows


def test_a_grid_of_two_lengths_and_two_seeds_is_four_rows_with_the_lengths_applied(tmp_path):
    sweep = load_sweep(two_by_two(tmp_path))
    assert [p.scenario.links[0].length_km for p in sweep.points] == [5, 20]
    assert sweep.parameters == ["links.0.length_km"]
    frame = run_sweep(sweep, workers=1)
    assert len(frame) == 4
    assert list(frame.columns[:6]) == ["point", "links.0.length_km", "seed", "status", "reason", "error"]
    assert frame[["point", "links.0.length_km", "seed"]].values.tolist() == [[0, 5, 1], [0, 5, 2], [1, 20, 1], [1, 20, 2]]
    assert (frame["status"] == "done").all() and frame["error"].isna().all()
    assert (frame["pairs.count"] == 100).all()
    # the longer link loses more photons: fewer successes per attempt at every seed
    p = frame["link[alice-bob].success_probability"]
    assert (p[:2].values > p[2:].values).all()
    assert parameter_columns(frame.columns) == ["links.0.length_km"]
    assert "pairs.mean_oracle_fidelity" in figure_columns(frame.columns)
    assert "request[alice#0].state" in figure_columns(frame.columns)


def test_points_a_seed_count_and_the_grid_order(tmp_path):
    points = load_sweep(write_sweep(tmp_path, "seeds: 3\npoints: [{links.0.length_km: 7}, {links.0.bright_state_population: 0.2}]\n"))
    assert points.seeds == (1, 2, 3)
    assert [p.scenario.links[0].length_km for p in points.points] == [7, 20]
    assert [p.scenario.links[0].bright_state_population for p in points.points] == [0.1, 0.2]
    grid = load_sweep(write_sweep(tmp_path, "seeds: [4]\ngrid: {links.0.length_km: [1, 2], links.0.bright_state_population: [0.1, 0.3]}\n"))
    assert [p.overrides for p in grid.points] == [
        {"links.0.length_km": 1, "links.0.bright_state_population": 0.1},
        {"links.0.length_km": 1, "links.0.bright_state_population": 0.3},
        {"links.0.length_km": 2, "links.0.bright_state_population": 0.1},
        {"links.0.length_km": 2, "links.0.bright_state_population": 0.3},
    ]


def test_a_field_left_at_its_default_and_a_mapping_field_can_be_set():
    sweep = parse_sweep(
        {
            "scenario": str(BASE),
            "seeds": [1],
            "points": [{"stop.stall_after_ns": 10**9, "network.policy": "swap-asap", "network.policy_options.cutoff_ns": 5000}],
        }
    )
    scenario = sweep.points[0].scenario
    assert scenario.stop.stall_after_ns == 10**9
    assert scenario.network.policy_options == {"cutoff_ns": 5000}


def test_a_failed_and_a_stalled_point_are_rows_with_their_error_and_the_sweep_goes_on(tmp_path, capsys):
    path = write_sweep(
        tmp_path,
        "seeds: [1]\npoints:\n"
        "  - {faults.link_cuts: [{link: [alice, bob], at_ns: 1000}]}\n"
        "  - {stop.max_events: 50}\n"
        "  - {links.0.length_km: 5}\n",
    )
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1", "--no-progress"]) == 1
    assert "3 runs (1 done, 1 failed, 1 stalled)" in capsys.readouterr().out
    frame = read_results(out)
    assert frame["status"].tolist() == ["failed", "stalled", "done"]
    assert frame["error"][0].startswith("FAILED: alice#0 ABORTED")
    assert "stop.max_events = 50" in frame["error"][1]
    assert frame["reason"][1] == "max_events"
    assert json.loads(frame["faults.link_cuts"][0]) == [{"at_ns": 1000, "link": ["alice", "bob"]}]
    assert not sidecar_path(out).exists()


def test_csv_and_parquet_hold_the_rows_the_function_returns(tmp_path):
    sweep = load_sweep(two_by_two(tmp_path))
    frame = run_sweep(sweep, tmp_path / "r.parquet", workers=1)
    pd.testing.assert_frame_equal(read_results(tmp_path / "r.parquet"), frame)
    run_sweep(sweep, tmp_path / "r.csv", workers=1)
    from_csv = read_results(tmp_path / "r.csv")
    for column in ("pairs.mean_oracle_fidelity", "link[alice-bob].success_probability", "sim_time_ns"):
        assert from_csv[column].tolist() == frame[column].tolist()  # floats written exactly (shortest repr)


@pytest.mark.slow  # starts a pool of worker processes (about 5 s here)
def test_two_local_workers_give_the_rows_of_a_serial_run(tmp_path):
    sweep = load_sweep(two_by_two(tmp_path))
    pd.testing.assert_frame_equal(run_sweep(sweep, workers=2), run_sweep(sweep, workers=1))


# ------------------------------------------------------------------ summary


def test_summarise_gives_mean_and_standard_error_per_point_over_done_runs():
    frame = pd.DataFrame(
        {
            "point": [0, 0, 0, 1, 1],
            "links.0.length_km": [5, 5, 5, 20, 20],
            "seed": [1, 2, 3, 1, 2],
            "status": ["done", "done", "stalled", "done", "done"],
            "reason": ["finished", "finished", "stall", "finished", "finished"],
            "error": [None, None, "STALLED", None, None],
            "pairs.mean_oracle_fidelity": [0.9, 0.8, 0.1, 0.5, 0.5],
        }
    )
    summary = summarise(frame)
    assert summary["links.0.length_km"].tolist() == [5, 20]
    assert summary[["runs", "done", "failed", "stalled"]].values.tolist() == [[3, 2, 0, 1], [2, 2, 0, 0]]
    # point 0 over its two done runs: mean 0.85, sample sd 0.0707..., s.e. = sd / sqrt(2) = 0.05
    assert summary["pairs.mean_oracle_fidelity.mean"].tolist() == pytest.approx([0.85, 0.5])
    assert summary["pairs.mean_oracle_fidelity.se"].tolist() == pytest.approx([0.05, 0.0])
    with_partial = summarise(frame, only_done=False)
    assert with_partial["pairs.mean_oracle_fidelity.mean"][0] == pytest.approx(0.6)


def test_the_cli_writes_a_summary(tmp_path):
    out, summary = tmp_path / "r.csv", tmp_path / "s.csv"
    assert main(["sweep", str(two_by_two(tmp_path)), "-o", str(out), "--summary", str(summary), "--workers", "1", "--no-progress"]) == 0
    table = pd.read_csv(summary)
    assert table["links.0.length_km"].tolist() == [5, 20]
    assert (table["runs"] == 2).all()
    assert table["pairs.count.mean"].tolist() == [100, 100]


# ------------------------------------------------------------------ resuming


def test_an_interrupted_sweep_keeps_its_rows_and_resumes_without_running_them_again(tmp_path, monkeypatch):
    sweep = load_sweep(two_by_two(tmp_path))
    whole = run_sweep(sweep, workers=1)
    out = tmp_path / "r.csv"
    real = sweep_module.run_one
    calls = []

    def stopped_on_the_third(*args):
        calls.append(args[1:3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sweep_module, "run_one", stopped_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out, workers=1)
    assert not out.exists()  # never a half-written results file
    lines = sidecar_path(out).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # the header and two rows
    # a stop while the next row was being written leaves a torn last line: it is dropped
    with sidecar_path(out).open("a", encoding="utf-8") as stream:
        stream.write('{"point": 1, "se')

    calls.clear()
    monkeypatch.setattr(sweep_module, "run_one", lambda *args: calls.append(args[1:3]) or real(*args))
    resumed = run_sweep(sweep, out, workers=1)
    assert calls == [(1, 1), (1, 2)]  # only the runs without a row
    pd.testing.assert_frame_equal(resumed, whole)
    pd.testing.assert_frame_equal(read_results(out), read_results_of(whole, tmp_path))
    assert not sidecar_path(out).exists()


def read_results_of(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    path = folder / "fresh.csv"
    frame.to_csv(path, index=False)
    return pd.read_csv(path)


def test_a_sidecar_of_another_sweep_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "r.csv"
    sidecar_path(out).write_text('{"sweep": "0000"}\n', encoding="utf-8")
    assert main(["sweep", str(two_by_two(tmp_path)), "-o", str(out), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds rows of another sweep" in err and len(err.splitlines()) == 1
    assert not out.exists()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("seeds: [1]\ngrid: {links.3.length_km: [5]}\n", "grid.links.3.length_km.0: scenario links.3: no entry 3 (the list has 1)"),
        ("seeds: [1]\ngrid: {links.0.lenght_km: [5]}\n", "grid.links.0.lenght_km.0: scenario links.0.lenght_km: no such field"),
        (
            "seeds: [1]\ngrid: {links.0.length_km: [5, -5]}\n",
            "grid.links.0.length_km.1: scenario links.0.length_km: Input should be greater than 0",
        ),
        (
            "seeds: [1]\npoints: [{links.0.length_km: 5}, {nodes.1.hardware.memory.t2_ns: 1.0e6}]\n",
            "points.1.nodes.1.hardware.memory.t2_ns: scenario nodes.1.hardware.memory.t2_ns",
        ),
        (
            "seeds: [1]\ngrid: {links.0.detector.efficiency: [0.8, 0.0]}\n",
            "grid.links.0.detector.efficiency.1: scenario links.0: link alice-bob never heralds",
        ),
        (
            "seeds: [1]\npoints: [{nodes.0.hardware.memory.num_qubits: 0}]\n",
            "points.0.nodes.0.hardware.memory.num_qubits: scenario applications.0: request alice#0: node 'alice' has no memory qubit",
        ),
        (
            "seeds: [1]\ngrid: {links.0.length_km.x: [5]}\n",
            "grid.links.0.length_km.x.0: scenario links.0.length_km.x: links.0.length_km is a value",
        ),
        ("seeds: [1]\ngrid: {seed: [5]}\n", "grid.seed: the seed is the sweep's"),
        ("seeds: [1, 1]\n", "seeds: lists a seed twice"),
        ("seeds: []\n", "seeds: must be a non-empty list"),
        ("seeds: [1]\ngrid: {links.0.length_km: []}\n", "grid.links.0.length_km: must be a non-empty list"),
        ("seeds: [1]\ngrid: {}\npoints: []\n", "grid: give a grid or a list of points, not both"),
        ("seeds: [1]\ngird: {}\n", "gird: not a sweep field"),
    ],
)
def test_bad_input_is_one_line_naming_the_sweep_entry_and_the_scenario_field_and_nothing_is_written(tmp_path, capsys, body, expected):
    out = tmp_path / "r.csv"
    assert main(["sweep", str(write_sweep(tmp_path, body)), "-o", str(out), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_a_base_scenario_that_does_not_load_names_the_scenario_entry(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("scenario: missing.yaml\nseeds: [1]\n", encoding="utf-8")
    assert main(["sweep", str(path), "-o", str(tmp_path / "r.csv")]) == 2
    assert "sweep.yaml: scenario: missing.yaml: cannot read scenario file" in capsys.readouterr().err


def test_a_scheduler_nobody_listens_at_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_module, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "r.csv"
    code = main(["sweep", str(two_by_two(tmp_path)), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--scheduler: cannot reach a dask scheduler at 'tcp://127.0.0.1:9'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-o", "r.txt"], "-o: results go to a .csv or .parquet file"),
        (["-o", "r.csv", "--summary", "s.json"], "--summary: results go to a .csv or .parquet file"),
        (["-o", "no/such/folder/r.csv"], "-o: cannot write"),
        (["-o", "r.csv", "--workers", "0"], "--workers: must be at least 1"),
    ],
)
def test_bad_options_are_one_line(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(two_by_two(tmp_path)), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_qnetstack_run_does_not_load_the_sweep_libraries():
    code = "import sys, qnetstack.stack.cli; print(sorted(m for m in ('pandas', 'pyarrow', 'tqdm', 'distributed', 'matplotlib') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_a_sweep_error_names_the_file():
    with pytest.raises(SweepError, match=r"^<sweep>|seeds"):
        parse_sweep({"scenario": str(BASE)}, source="<sweep>")


@pytest.mark.slow  # the 20 runs of the example sweep (about 4 s)
def test_the_docs_quote_what_the_example_sweep_gives():
    """docs/sweeps.md quotes the summary of examples/sweeps/fidelity-vs-length.yaml: every
    number of that table must be what the sweep gives now (to the 6 decimals shown)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "sweeps.md").read_text(encoding="utf-8")
    block = page.split("and of `fvl-summary.csv`")[1].split("```")[1].strip().splitlines()
    header, lines = block[0].split(), [line.split() for line in block[1:]]
    summary = summarise(run_sweep(BASE.parent / "fidelity-vs-length.yaml", workers=1))
    assert len(lines) == len(summary) == 5
    for line, (_, row) in zip(lines, summary.iterrows()):
        for name, quoted in zip(header, line):
            assert float(quoted) == pytest.approx(row[name], abs=1e-6), name


def test_a_scheduler_without_workers_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(sweep_module, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "r.csv"
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        code = main(["sweep", str(two_by_two(tmp_path)), "-o", str(out), "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no workers (waited 1 s)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]
