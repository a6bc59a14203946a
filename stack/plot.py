"""Figures from sweeps and runs, with matplotlib (the ``plots`` extra).

Every function returns a ``matplotlib.figure.Figure`` (nothing is shown or
written; ``fig.savefig("x.png")`` does that). Figures of a sweep take its
rows (:func:`qnetstack.stack.sweep.run_sweep` or a results file read with
:func:`~qnetstack.stack.sweep.read_results`) and plot, per x, the mean over
the runs that ended ``done`` with the standard error of that mean as error
bar (sample standard deviation over √n; none for a single run). A failed or
stalled run's figures are partial and are left out; the legend says how many
runs each curve rests on.

* :func:`xy`: any figure against any column, one curve per value of ``by``;
* :func:`fidelity_vs_distance`: mean oracle fidelity of the delivered pairs
  against link length, with an analytic curve if one is given;
* :func:`rate_vs_fidelity`: rate against fidelity per point, the trade-off a
  single-click link's bright-state population α sets (Humphreys et al.,
  Nature 558, 268 (2018));
* :func:`topology`: the network of a run, each link drawn with the rate it
  heralded at (successes per simulated second) and the fidelity of its
  heralded state as its physical model announces it;
* :func:`key_rate_vs_distance`: secret key bits per channel use (per pulse)
  against link length, on a log scale, under the repeaterless PLOB bound
  −log2(1 − η) of a pure-loss channel of transmittance η (Pirandola,
  Laurenza, Ottaviani & Banchi, Nat. Commun. 8, 15043 (2017)), η = 10^(−a L / 10)
  with the fibre loss a = 0.2 dB/km of standard single-mode fibre (ITU-T
  G.652) unless another is given. :func:`xy` draws the bound too whenever its
  y column is a key rate per channel use and its x column a length in km, so
  ``qnetstack plot RESULTS --x pulse_links.0.length_km --y "key[alice/bb84-decoy0].key_rate_per_pulse"``
  shows it.

matplotlib is imported inside the functions, with the non-interactive Agg
backend, so importing this module costs nothing and no display is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qnetstack.stack.messages import listing, shown

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from matplotlib.figure import Figure

    from qnetstack.stack.assembler import Simulation
    from qnetstack.stack.report import RunResult

__all__ = [
    "FIBRE_DB_PER_KM",
    "PlotError",
    "fidelity_vs_distance",
    "key_rate_vs_distance",
    "mean_and_se",
    "plob_curve",
    "rate_text",
    "rate_vs_fidelity",
    "topology",
    "xy",
]

# Loss of standard single-mode fibre at 1550 nm (ITU-T G.652; the physical layer's
# FibreParams default): the transmittance the PLOB bound is drawn for.
FIBRE_DB_PER_KM = 0.2
# Columns that hold secret key bits per channel use, and those that hold a distance.
KEY_RATE_PER_USE_SUFFIX = "key_rate_per_pulse"
DISTANCE_SUFFIX = "length_km"
PLOB_GID = "plob-bound"  # the bound's line in a figure, found by this id


class PlotError(ValueError):
    """A plot that cannot be drawn: ``field`` names the column or argument, ``problem`` says what."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def _figure() -> Figure:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and the same pixels everywhere
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.4), layout="constrained")


def _column(frame: pandas.DataFrame, name: str | None, flag: str, *, numeric: bool = True) -> None:
    import pandas as pd

    if name is None:
        return
    if name not in frame.columns:
        raise PlotError(flag, f"no column {shown(name)} in the results (columns: {listing(frame.columns, 150)})")
    if numeric and not pd.api.types.is_numeric_dtype(frame[name]):
        raise PlotError(flag, f"column {shown(name)} is not numeric")


def mean_and_se(frame: pandas.DataFrame, x: str, y: str, by: str | None = None) -> pandas.DataFrame:
    """Per (``by``, ``x``): the runs that ended done with a value of ``y`` (``n``), the mean
    of ``y`` and its standard error (``se``; NaN for a single run)."""
    import pandas as pd

    if "status" in frame.columns:
        frame = frame[frame["status"] == "done"]
    keys = [k for k in (by, x) if k is not None]
    rows = []
    for key, group in frame.dropna(subset=[y]).groupby(keys, sort=True):
        values = group[y].astype(float)
        n = len(values)
        named = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rows.append({**named, "n": n, "mean": float(values.mean()), "se": float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan})
    return pd.DataFrame.from_records(rows, columns=[*keys, "n", "mean", "se"])


def xy(
    frame: pandas.DataFrame,
    x: str,
    y: str,
    *,
    by: str | None = None,
    title: str | None = None,
    plob: bool | None = None,
    db_per_km: float = FIBRE_DB_PER_KM,
) -> Figure:
    """``y`` against ``x``: mean ± standard error per x over the runs that ended done,
    one curve per value of ``by``.

    ``plob``: draw the PLOB bound for fibre of ``db_per_km`` (see
    :func:`key_rate_vs_distance`); left ``None``, it is drawn when ``y`` is a key
    rate per channel use (``...key_rate_per_pulse``) and ``x`` a length (``...length_km``)."""
    if plob is None:
        plob = y.endswith(KEY_RATE_PER_USE_SUFFIX) and x.endswith(DISTANCE_SUFFIX)
    if plob:
        return key_rate_vs_distance(frame, distance=x, rate=y, by=by, db_per_km=db_per_km, title=title)
    _column(frame, x, "--x", numeric=False)
    _column(frame, y, "--y")
    _column(frame, by, "--by", numeric=False)
    table = mean_and_se(frame, x, y, by)
    if table.empty:
        raise PlotError("--y", f"no run that ended done has a value of {shown(y)}")
    fig = _figure()
    ax = fig.add_subplot()
    groups = [(None, table)] if by is None else list(table.groupby(by, sort=True))
    for value, curve in groups:
        runs = int(curve["n"].sum())
        label = f"{runs} runs" if by is None else f"{by} = {value} ({runs} runs)"
        ax.errorbar(curve[x], curve["mean"], yerr=curve["se"].fillna(0.0), marker="o", capsize=3, label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (mean ± s.e.)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def fidelity_vs_distance(
    frame: pandas.DataFrame,
    *,
    distance: str = "links.0.length_km",
    fidelity: str = "pairs.mean_oracle_fidelity",
    by: str | None = None,
    analytic: Callable[[float], float] | None = None,
    analytic_label: str = "analytic",
) -> Figure:
    """Mean oracle fidelity of the delivered pairs against link length (mean ± s.e. over
    seeds); ``analytic`` (a function of the distance) is drawn as a line over the same range."""
    fig = xy(frame, distance, fidelity, by=by)
    ax = fig.axes[0]
    if analytic is not None:
        low, high = float(frame[distance].min()), float(frame[distance].max())
        xs = [low + (high - low) * i / 200 for i in range(201)]
        ax.plot(xs, [analytic(x) for x in xs], color="black", linewidth=1, linestyle="--", label=analytic_label)
        ax.legend(fontsize="small")
    ax.set_xlabel(f"{distance} (km)")
    ax.set_ylabel("oracle fidelity of delivered pairs (mean ± s.e.)")
    return fig


def plob_curve(distances_km: Sequence[float], db_per_km: float = FIBRE_DB_PER_KM) -> list[float]:
    """The PLOB bound at each distance: −log2(1 − η) secret bits per channel use, η = 10^(−a L / 10)
    the transmittance of L km of fibre of loss a dB/km (Pirandola et al., Nat. Commun. 8, 15043 (2017))."""
    from qnetstack.application.qkd.key_length import plob_bound

    if not (math.isfinite(db_per_km) and db_per_km > 0):
        raise PlotError("db_per_km", f"must be a positive number of dB per km, got {db_per_km!r}")
    out = []
    for km in distances_km:
        if not (math.isfinite(km) and km >= 0):
            raise PlotError("distance", f"a distance is a finite number of km >= 0, got {km!r}")
        out.append(plob_bound(10.0 ** (-db_per_km * km / 10.0)))
    return out


def key_rate_vs_distance(
    frame: pandas.DataFrame,
    *,
    distance: str = "pulse_links.0.length_km",
    rate: str | None = None,
    by: str | None = None,
    db_per_km: float = FIBRE_DB_PER_KM,
    title: str | None = None,
) -> Figure:
    """Secret key bits per channel use against distance (mean ± s.e. over seeds, log scale),
    with the PLOB bound −log2(1 − η) over the same range of distances (:func:`plob_curve`):
    no protocol without a repeater exceeds it on a pure-loss channel. The bound is the line
    with gid ``"plob-bound"``; it is drawn from just above 0 km (where it is infinite) to the
    longest distance, so that its shape shows even for one distance. A point at 0 (no key) cannot be shown on a log scale and is left out by matplotlib.
    ``rate`` left out: the one column of the results named ``key[...].key_rate_per_pulse``."""
    if rate is None:
        rates = [c for c in frame.columns if c.startswith("key[") and c.endswith(f".{KEY_RATE_PER_USE_SUFFIX}")]
        if len(rates) != 1:
            raise PlotError("rate", f"name the key-rate column: the results have {len(rates)} ({listing(rates, 150)})")
        rate = rates[0]
    _column(frame, distance, "--x")  # the bound needs distances as numbers
    fig = xy(frame, distance, rate, by=by, title=title, plob=False)
    ax = fig.axes[0]
    high = float(frame[distance].max())
    xs = [high * i / 200 for i in range(1, 201)]  # from just above 0 km: the bound is infinite at 0
    ax.plot(
        xs,
        plob_curve(xs, db_per_km),
        color="black",
        linewidth=1,
        linestyle="--",
        gid=PLOB_GID,
        label=f"PLOB bound −log2(1−η), fibre {db_per_km:g} dB/km",
    )
    ax.set_yscale("log")
    ax.set_xlabel(f"{distance} (km)")
    ax.set_ylabel("secret key bits per channel use (mean ± s.e.)")
    ax.legend(fontsize="small")
    return fig


def rate_vs_fidelity(
    frame: pandas.DataFrame,
    *,
    rate: str = "pairs.rate_hz",
    fidelity: str = "pairs.mean_oracle_fidelity",
    by: str | None = None,
    point: str = "point",
    log_rate: bool = True,
) -> Figure:
    """Rate against fidelity, one marker per sweep point (mean ± s.e. on both axes over its
    seeds), joined into one curve per value of ``by``."""
    import pandas as pd

    for name, flag in ((rate, "rate"), (fidelity, "fidelity"), (point, "point")):
        _column(frame, name, flag)
    _column(frame, by, "by", numeric=False)
    f = mean_and_se(frame, point, fidelity)
    r = mean_and_se(frame, point, rate)
    table = f.merge(r, on=point, suffixes=("_f", "_r"))
    if table.empty:
        raise PlotError("rate", "no run that ended done has both a rate and a fidelity")
    if by is not None:
        table = table.merge(frame[[point, by]].drop_duplicates(point), on=point)
    fig = _figure()
    ax = fig.add_subplot()
    groups: Sequence[tuple[Any, pd.DataFrame]] = [(None, table)] if by is None else list(table.groupby(by, sort=True))
    for value, curve in groups:
        curve = curve.sort_values("mean_f")
        ax.errorbar(
            curve["mean_f"],
            curve["mean_r"],
            xerr=curve["se_f"].fillna(0.0),
            yerr=curve["se_r"].fillna(0.0),
            marker="o",
            capsize=3,
            label=None if by is None else f"{by} = {value}",
        )
    ax.set_xlabel(f"{fidelity} (mean ± s.e.)")
    ax.set_ylabel(f"{rate} (mean ± s.e.)")
    if log_rate:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if by is not None:
        ax.legend(fontsize="small")
    return fig


def topology(simulation: Simulation, result: RunResult | None = None) -> Figure:
    """The network of a run: nodes, and each link labelled with the rate it heralded at
    (successes per simulated second, from the run report) and the fidelity of its heralded
    state (the figure its physical model announces; ``F ?`` when the model announces none).
    Line width grows with the rate. ``result``: the report of ``simulation``'s run
    (left out: the link figures only, no rates)."""
    import networkx as nx

    graph = simulation.network.topology
    rates: dict[frozenset[str], float] = {}
    if result is not None and result.sim_time_ns > 0:
        for stats in result.links:
            ends = _link_ends(stats.link, graph)
            if ends is not None:
                rates[ends] = stats.successes / (result.sim_time_ns * 1e-9)
    fig = _figure()
    ax = fig.add_subplot()
    positions = nx.kamada_kawai_layout(graph) if graph.number_of_nodes() > 2 else nx.spring_layout(graph, seed=1)
    top = max(rates.values(), default=0.0)
    widths = [1.0 + 5.0 * (rates.get(frozenset((u, v)), 0.0) / top if top > 0 else 0.0) for u, v in graph.edges]
    nx.draw_networkx_edges(graph, positions, ax=ax, width=widths, edge_color="tab:blue")
    nx.draw_networkx_nodes(graph, positions, ax=ax, node_color="white", edgecolors="black", node_size=700)
    nx.draw_networkx_labels(graph, positions, ax=ax, font_size=9)
    labels = {}
    for u, v, data in graph.edges(data=True):
        rate = rates.get(frozenset((u, v)))
        fid = data.get("fidelity")
        parts = [f"{data.get('length_km', 0):g} km"]
        if result is not None:
            parts.append("no attempts" if rate is None else rate_text(rate))
        parts.append("F ?" if fid is None else f"F {fid:.3f}")
        labels[(u, v)] = "\n".join(parts)
    nx.draw_networkx_edge_labels(graph, positions, edge_labels=labels, ax=ax, font_size=7)
    ax.set_axis_off()
    title = "links: length, heralded rate (per simulated second), heralded fidelity"
    if result is not None:
        title = f"{result.scenario}, seed {result.seed}: {result.status}\n{title}"
    ax.set_title(title, fontsize=9)
    return fig


def rate_text(per_second: float) -> str:
    """A rate as a link label shows it: whole numbers from 100 up, three significant digits below."""
    return f"{per_second:,.0f} /s" if per_second >= 100 else f"{per_second:.3g} /s"


def _link_ends(name: str, graph: Any) -> frozenset[str] | None:
    """The two nodes of a link named ``A-B`` in the run report (node names may hold ``-``)."""
    for u, v in graph.edges:
        if name in (f"{u}-{v}", f"{v}-{u}"):
            return frozenset((u, v))
    return None
