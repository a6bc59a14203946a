"""Key rate against distance under the PLOB bound (qnetstack.stack.plot.key_rate_vs_distance,
and ``qnetstack plot`` when the results hold a key rate per channel use against a length).

The bound is −log2(1 − η) secret bits per channel use for a pure-loss channel of
transmittance η (Pirandola, Laurenza, Ottaviani & Banchi, Nat. Commun. 8, 15043
(2017)); for L km of fibre of a dB/km, η = 10^(−a L / 10). The expected values
below are computed here from that formula, not with the package's function."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qnetstack.stack.cli import main
from qnetstack.stack.plot import PLOB_GID, PlotError, key_rate_vs_distance, plob_curve, xy

RATE = "key[alice/bb84-decoy0].key_rate_per_pulse"  # a decoy-BB84 key's column in a sweep's rows
DISTANCE = "pulse_links.0.length_km"


def bound(km: float, db_per_km: float = 0.2) -> float:
    return -math.log2(1 - 10 ** (-db_per_km * km / 10))


def rows() -> pd.DataFrame:
    """Key rates per pulse at three distances, two seeds each (well under the bound, as a protocol's are)."""
    records = []
    for km, rate in ((10, 2e-3), (50, 2e-4), (100, 1e-5)):
        for seed, spread in ((1, 0.9), (2, 1.1)):
            records.append({"point": km, DISTANCE: km, "seed": seed, "status": "done", RATE: rate * spread})
    return pd.DataFrame.from_records(records)


def plotted_bound(fig):
    (ax,) = fig.axes
    (line,) = [line for line in ax.get_lines() if line.get_gid() == PLOB_GID]
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


@pytest.mark.parametrize("db_per_km", [0.2, 0.16])
def test_the_plotted_bound_is_minus_log2_of_one_minus_the_fibre_transmittance(db_per_km):
    xs, ys = plotted_bound(key_rate_vs_distance(rows(), distance=DISTANCE, rate=RATE, db_per_km=db_per_km))
    assert xs.min() > 0 and xs.max() == 100  # over the results' range of distance
    for km in (10.0, 50.0, 100.0):
        i = int(np.argmin(abs(xs - km)))
        assert xs[i] == pytest.approx(km)
        assert ys[i] == pytest.approx(bound(km, db_per_km), rel=1e-12)


def test_the_check_tells_a_wrong_bound_apart():
    """What the test above would see if the curve were drawn for the wrong loss or with the
    small-η approximation η / ln 2 (1.44 η): both differ from the formula by far more than its tolerance."""
    xs, ys = plotted_bound(key_rate_vs_distance(rows(), distance=DISTANCE, rate=RATE))
    i = int(np.argmin(abs(xs - 10.0)))
    assert ys[i] != pytest.approx(bound(10.0, 0.21), rel=1e-3)
    assert ys[i] != pytest.approx(10 ** (-0.2) / math.log(2), rel=1e-3)
    assert plob_curve([10.0], 0.21)[0] != pytest.approx(ys[i], rel=1e-3)


def test_the_key_rates_lie_under_the_bound_and_are_drawn_with_their_error_bars():
    fig = key_rate_vs_distance(rows(), distance=DISTANCE, rate=RATE)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    (container,) = ax.containers
    data = container.lines[0]
    assert list(data.get_xdata()) == [10, 50, 100]
    assert list(data.get_ydata()) == pytest.approx([2e-3, 2e-4, 1e-5])
    assert all(y < bound(x) for x, y in zip(data.get_xdata(), data.get_ydata()))
    assert any("PLOB" in t.get_text() for t in ax.get_legend().get_texts())


def test_xy_draws_the_bound_for_a_key_rate_against_a_length_and_not_otherwise():
    assert plotted_bound(xy(rows(), DISTANCE, RATE))[0].size > 0
    frame = rows().assign(**{"pairs.rate_hz": 1.0})
    (ax,) = xy(frame, DISTANCE, "pairs.rate_hz").axes
    assert [line for line in ax.get_lines() if line.get_gid() == PLOB_GID] == []
    (ax,) = xy(rows(), DISTANCE, RATE, plob=False).axes
    assert [line for line in ax.get_lines() if line.get_gid() == PLOB_GID] == []


def test_the_key_rate_column_is_found_when_there_is_one_and_must_be_named_otherwise():
    assert plotted_bound(key_rate_vs_distance(rows(), distance=DISTANCE))[0].size > 0
    two = rows().assign(**{"key[bob/bb84-decoy0].key_rate_per_pulse": 1e-4})
    with pytest.raises(PlotError, match="^rate: name the key-rate column: the results have 2"):
        key_rate_vs_distance(two, distance=DISTANCE)


def test_a_bad_loss_or_distance_names_its_field():
    with pytest.raises(PlotError, match="^db_per_km: "):
        plob_curve([10.0], db_per_km=0.0)
    with pytest.raises(PlotError, match="^distance: "):
        plob_curve([-1.0])


def test_qnetstack_plot_draws_the_bound_from_a_results_file(tmp_path, capsys):
    results = tmp_path / "keys.csv"
    rows().to_csv(results, index=False)
    out = tmp_path / "keys.svg"
    assert main(["plot", str(results), "--x", DISTANCE, "--y", RATE, "-o", str(out)]) == 0
    assert "PLOB bound" in out.read_text(encoding="utf-8")
