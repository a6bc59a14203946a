"""Figures (qnetstack.stack.plot and ``qnetstack plot``): what they draw, from hand-made rows and a run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qnetstack.stack import assemble, load_scenario
from qnetstack.stack.cli import main
from qnetstack.stack.plot import PlotError, fidelity_vs_distance, mean_and_se, rate_text, rate_vs_fidelity, topology, xy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def rows() -> pd.DataFrame:
    """Two lengths × two alphas × two seeds, and one stalled run whose figures must be left out."""
    records = []
    for km, fidelities in ((5, (0.90, 0.92)), (50, (0.80, 0.84))):
        for alpha in (0.1, 0.2):
            for seed, f in zip((1, 2), fidelities):
                records.append(
                    {
                        "point": (km == 50) * 2 + (alpha == 0.2),
                        "links.0.length_km": km,
                        "links.0.bright_state_population": alpha,
                        "seed": seed,
                        "status": "done",
                        "pairs.mean_oracle_fidelity": f - alpha / 10,
                        "pairs.rate_hz": 1000.0 * alpha / km + seed,
                    }
                )
    records.append({**records[0], "seed": 3, "status": "stalled", "pairs.mean_oracle_fidelity": 0.0})
    return pd.DataFrame.from_records(records)


def test_mean_and_se_per_x_over_done_runs():
    table = mean_and_se(rows(), "links.0.length_km", "pairs.mean_oracle_fidelity", by="links.0.bright_state_population")
    first = table.iloc[0]  # alpha 0.1, 5 km: 0.89 and 0.91 (the stalled run's 0.0 left out)
    assert first["n"] == 2
    assert first["mean"] == pytest.approx(0.90)
    assert first["se"] == pytest.approx(np.std([0.89, 0.91], ddof=1) / math.sqrt(2))


def test_xy_draws_one_curve_per_by_value_with_error_bars():
    fig = xy(rows(), "links.0.length_km", "pairs.mean_oracle_fidelity", by="links.0.bright_state_population")
    (ax,) = fig.axes
    assert len(ax.containers) == 2  # one errorbar container per alpha
    line = ax.containers[0].lines[0]
    assert list(line.get_xdata()) == [5, 50]
    assert list(line.get_ydata()) == pytest.approx([0.90, 0.81])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "links.0.bright_state_population = 0.1 (4 runs)",
        "links.0.bright_state_population = 0.2 (4 runs)",
    ]


def test_fidelity_vs_distance_draws_the_analytic_curve_given():
    fig = fidelity_vs_distance(rows(), analytic=lambda km: 1 - km / 500, by="links.0.bright_state_population")
    (ax,) = fig.axes
    analytic = [line for line in ax.lines if line.get_label() == "analytic"]
    assert len(analytic) == 1
    assert analytic[0].get_xdata()[0] == 5 and analytic[0].get_ydata()[-1] == pytest.approx(0.9)


def test_rate_vs_fidelity_has_one_marker_per_point():
    fig = rate_vs_fidelity(rows(), by="links.0.length_km")
    (ax,) = fig.axes
    xs = sorted(x for container in ax.containers for x in container.lines[0].get_xdata())
    assert xs == pytest.approx(sorted([0.90, 0.89, 0.81, 0.80]))
    assert ax.get_yscale() == "log"


def test_a_missing_column_is_named():
    with pytest.raises(PlotError, match=r"--y: no column 'pairs.nope'"):
        xy(rows(), "links.0.length_km", "pairs.nope")
    with pytest.raises(PlotError, match="--y: column 'status' is not numeric"):
        xy(rows(), "links.0.length_km", "status")


def test_topology_labels_each_link_with_its_rate_and_fidelity():
    scenario = load_scenario(EXAMPLES / "sweeps" / "single-link.yaml")
    simulation = assemble(scenario)
    result = simulation.run()
    fig = topology(simulation, result)
    texts = [t.get_text() for t in fig.axes[0].texts]
    (stats,) = result.links
    rate = stats.successes / (result.sim_time_ns * 1e-9)
    fidelity = simulation.network.topology.edges["alice", "bob"]["fidelity"]
    assert f"20 km\n{rate_text(rate)}\nF {fidelity:.3f}" in texts
    assert rate_text(1037.4) == "1,037 /s" and rate_text(25.94) == "25.9 /s"
    assert abs(fidelity - result.pairs.mean_oracle_fidelity) < 1e-9  # ideal memories: pairs as heralded


def test_the_cli_writes_a_figure_and_refuses_bad_input(tmp_path, capsys):
    results = tmp_path / "r.csv"
    rows().to_csv(results, index=False)
    out = tmp_path / "f.svg"
    assert (
        main(
            [
                "plot",
                str(results),
                "--x",
                "links.0.length_km",
                "--y",
                "pairs.rate_hz",
                "--by",
                "links.0.bright_state_population",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    capsys.readouterr()
    for args, expected in (
        (["--x", "links.0.length_km", "--y", "nope", "-o", str(tmp_path / "g.png")], "--y: no column 'nope'"),
        (["--x", "links.0.length_km", "--y", "pairs.rate_hz", "-o", str(tmp_path / "g.pdf")], "-o: a figure is written as .png or .svg"),
    ):
        assert main(["plot", str(results), *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1
    assert main(["plot", str(tmp_path / "missing.csv"), "--x", "a", "--y", "b", "-o", str(tmp_path / "g.png")]) == 2
    assert "results: no such file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg", "r.csv"]
