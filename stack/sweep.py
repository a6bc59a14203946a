"""Parameter sweeps: one base scenario, many points, several seeds, one row per run.

A sweep file names a base scenario, the seeds and the points::

    scenario: ../link-pairs.yaml      # relative to the sweep file
    seeds: [1, 2]                     # or a count: `seeds: 4` is seeds 1, 2, 3, 4
    grid:                             # the cartesian product of the lists ...
      links.0.length_km: [5, 20]
    # points:                         # ... or a list of points
    #   - {links.0.length_km: 5, links.0.bright_state_population: 0.05}

Each key is a path into the scenario (:class:`~qnetstack.stack.scenario.Scenario`):
field names and list indices joined by dots (``nodes.1.hardware.memory.t2_ns``).
Every point is built and validated as a whole scenario before anything runs,
including what the assembler refuses before a run starts (a link that never
heralds, a request no memory can serve: ``check_servable``); a path that
names no field, or a value the field or the scenario refuses, is a
:class:`SweepError` naming the sweep file's entry and the scenario field.
Values are taken as written, as in a scenario file (an integer field takes
``1000000``, not ``1.0e6``).

:func:`run_sweep` runs every (point, seed) in local processes or on a
dask.distributed cluster and returns a pandas DataFrame, one row per run in
the order (point, seed). Columns (:data:`RUN_COLUMNS` first):

* ``point`` (the point's index), the parameters (one column per path, named by
  it), ``seed``;
* ``status`` (``done``, ``failed`` or ``stalled``, as the run report's
  ``RunResult.status``), ``reason`` (``RunEnd.reason``; ``error`` also when the
  run raised before it started) and ``error`` (what went wrong, one line; empty
  for a run that is done);
* the report's summary figures (``RunResult``), flattened: ``sim_time_ns``,
  ``events``; per link ``link[A-B].attempts``, ``.successes``,
  ``.success_probability``, ``.success_probability_stderr``; the totals
  ``pairs.*`` and ``teleport.*`` (``count``, ``mean_oracle_fidelity``,
  ``stderr_oracle_fidelity``, ``mean_goodness``, ``rate_hz``); per request
  ``request[node#id].*`` (``state``, ``results``, ``mean_oracle_fidelity``,
  ``stderr_oracle_fidelity``, ``mean_goodness``, ``stderr_goodness``,
  ``first_result_ns``, ``last_result_ns``, ``error_code``); per QKD key
  ``key[id].*`` (``length``, ``qber``, ``qber_upper``, ``sifted_bits``,
  ``leaked_ec_bits``, ``epsilon``, ``equal``, ``chsh_s``,
  ``chsh_standard_error``, and for decoy BB84 ``pulses`` and
  ``key_rate_per_pulse``); per trace counter ``counter[name]``.

Rows hold no wall-clock figure, so the same sweep gives identical rows
wherever it runs. A run that fails (a request fails, a layer raises, the
assembly refuses the point) is a row with its error; the sweep goes on.

Written to a file (``out``), every finished row is appended at once to a
sidecar file next to it (``results.csv.partial.jsonl``); the results file
itself is written only when every run has its row, to a temporary file
renamed into place, so it is never half written. A sweep that is stopped
(Ctrl-C, a machine that goes down) starts again from the sidecar: the runs
it holds are not run again.

:func:`summarise` gives the mean and standard error of every figure per point.

pandas, tqdm and dask are imported only here (the ``sweep`` extra), so
``qnetstack run`` does not load them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from qnetstack.stack.assembler import assemble, check_servable
from qnetstack.stack.messages import cut, listing, one_line, shown, tail
from qnetstack.stack.report import RunResult
from qnetstack.stack.scenario import MAX_INT, Scenario, ScenarioError, load_scenario, parse_scenario

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "RUN_COLUMNS",
    "Sweep",
    "SweepError",
    "SweepIncomplete",
    "SweepPoint",
    "figure_columns",
    "load_sweep",
    "parameter_columns",
    "read_results",
    "run_figures",
    "run_one",
    "run_sweep",
    "sidecar_path",
    "summarise",
]

RUN_COLUMNS = ("point", "seed", "status", "reason", "error")
MAX_SWEEP_BYTES = 1 * 2**20  # a sweep file lists points, not data
MAX_RUNS = 1_000_000  # points × seeds: more is a typo (a million runs is days of CPU even at 0.1 s each)
CONNECT_TIMEOUT_S = 10.0  # how long --scheduler waits for the scheduler to answer
# Columns that are figures of a run, by name or by prefix; every other column but RUN_COLUMNS is a parameter.
_FIGURE_NAMES = ("sim_time_ns", "events")
_FIGURE_PREFIXES = ("link[", "request[", "key[", "counter[", "pairs.", "teleport.")


class SweepError(ValueError):
    """A sweep that cannot run: ``field`` names the sweep file's entry (or the option), ``problem`` says what."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        where = f"{tail(source)}: " if source else ""
        super().__init__(f"{where}{field}: {problem}" if field else f"{where}{problem}")


class SweepIncomplete(RuntimeError):
    """Some runs have no row (their worker process died, or the cluster lost them): the
    rows that finished are in the sidecar file, and running the sweep again resumes."""


@dataclass(frozen=True)
class SweepPoint:
    """One point: its index, the overrides (path -> value, as written) and the validated scenario."""

    index: int
    overrides: dict[str, Any]
    scenario: Scenario


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the points (each a whole scenario) and the seeds each runs with."""

    source: str
    base: Scenario
    points: tuple[SweepPoint, ...]
    seeds: tuple[int, ...]

    @property
    def parameters(self) -> list[str]:
        """The override paths, in the order the sweep file first names them."""
        return list(dict.fromkeys(path for point in self.points for path in point.overrides))

    def runs(self) -> list[tuple[SweepPoint, int]]:
        return [(point, seed) for point in self.points for seed in self.seeds]

    def fingerprint(self) -> str:
        """A hash of everything that decides the rows: a sidecar file of another sweep is not resumed."""
        data = {
            "points": [point.scenario.model_dump(mode="json") for point in self.points],
            "overrides": [point.overrides for point in self.points],
            "seeds": list(self.seeds),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------ reading a sweep file


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (YAML) and validate every point as a whole scenario (:class:`SweepError` if not)."""
    source = str(path)
    data = _read_yaml(Path(path), source)
    if not isinstance(data, dict):
        raise SweepError("", "a sweep file must hold a mapping at the top level (scenario, seeds, grid or points)", source)
    return parse_sweep(data, base_folder=Path(path).parent, source=source)


def parse_sweep(data: Mapping[str, Any], *, base_folder: str | Path = ".", source: str | None = None) -> Sweep:
    """A sweep given as plain data; ``scenario`` is read relative to ``base_folder``."""
    unknown = sorted(set(data) - {"scenario", "seeds", "grid", "points"})
    if unknown:
        raise SweepError(str(unknown[0]), "not a sweep field (scenario, seeds, grid, points)", source)
    scenario_path = data.get("scenario")
    if not isinstance(scenario_path, str) or not scenario_path:
        raise SweepError("scenario", "must name the base scenario file (a path relative to the sweep file)", source)
    try:
        base = load_scenario(Path(base_folder) / scenario_path)
    except ScenarioError as exc:
        raise SweepError("scenario", f"{tail(scenario_path, 60)}: {exc.field + ': ' if exc.field else ''}{exc.problem}", source) from None
    seeds = _seeds(data.get("seeds"), source)
    if "grid" in data and "points" in data:
        raise SweepError("grid", "give a grid or a list of points, not both", source)
    if "grid" in data:
        labelled = _grid(data["grid"], source)
    elif "points" in data:
        labelled = _points(data["points"], source)
    else:
        labelled = [({}, {})]  # the base scenario alone, over the seeds
    if len(labelled) * len(seeds) > MAX_RUNS:
        raise SweepError("grid" if "grid" in data else "points", f"{len(labelled) * len(seeds):_} runs; at most {MAX_RUNS:_}", source)
    base_data = base.model_dump(mode="json")
    points = []
    for index, (overrides, labels) in enumerate(labelled):
        points.append(SweepPoint(index, overrides, _point_scenario(base, base_data, overrides, labels, source)))
    return Sweep(source=source or "<sweep>", base=base, points=tuple(points), seeds=tuple(seeds))


def _read_yaml(path: Path, source: str) -> Any:
    # The scenario reader's loader: the same YAML rules for both files (a key named twice is
    # refused, ``1e-7`` is a number as in YAML 1.2, no Python objects).
    from qnetstack.stack.scenario import _StrictLoader

    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SWEEP_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise SweepError("", f"cannot read sweep file: {getattr(exc, 'strerror', None) or cut(str(exc), 80)}", source) from None
    if len(raw) > MAX_SWEEP_BYTES:
        raise SweepError("", f"larger than {MAX_SWEEP_BYTES // 2**20} MiB; a sweep file lists points, it is not a data set", source)
    try:
        return yaml.load(raw.decode("utf-8-sig"), Loader=_StrictLoader)
    except UnicodeDecodeError as exc:
        raise SweepError("", f"not UTF-8 text (offset {exc.start})", source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise SweepError(where, f"not valid YAML: {cut(str(getattr(exc, 'problem', None) or exc), 120)}", source) from None
    except (ValueError, RecursionError) as exc:
        raise SweepError("", f"cannot read a value: {cut(str(exc), 120)}", source) from None


def _seeds(value: Any, source: str | None) -> list[int]:
    if value is None:
        raise SweepError("seeds", "missing: give a list of seeds ([1, 2]) or how many (4: seeds 1 to 4)", source)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_RUNS:
            raise SweepError("seeds", f"a count must be from 1 to {MAX_RUNS:_}, got {shown(value)}", source)
        return list(range(1, value + 1))
    if not isinstance(value, list) or not value:
        raise SweepError("seeds", f"must be a non-empty list of integers or a count, got {shown(value)}", source)
    for i, seed in enumerate(value):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_INT:
            raise SweepError(f"seeds.{i}", f"must be an integer from 0 to 2**63-1, got {shown(seed)}", source)
    if len(set(value)) != len(value):
        raise SweepError("seeds", "lists a seed twice (the runs would be identical)", source)
    return list(value)


def _check_path(path: Any, field: str, source: str | None) -> str:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise SweepError(field, f"a parameter is a scenario field path such as links.0.length_km, got {shown(path)}", source)
    if path == "seed" or path.startswith("seed."):
        raise SweepError(f"{field}.{path}", "the seed is the sweep's: list seeds under `seeds`", source)
    return path


def _grid(grid: Any, source: str | None) -> list[tuple[dict[str, Any], dict[str, str]]]:
    if not isinstance(grid, dict) or not grid:
        raise SweepError("grid", "must map scenario field paths to lists of values, e.g. {links.0.length_km: [5, 20]}", source)
    axes = []
    for path, values in grid.items():
        _check_path(path, "grid", source)
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid.{path}", f"must be a non-empty list of values, got {shown(values)}", source)
        axes.append([(path, value, f"grid.{path}.{i}") for i, value in enumerate(values)])
    out = []
    for combo in itertools.product(*axes):
        out.append(({path: value for path, value, _ in combo}, {path: label for path, _, label in combo}))
    return out


def _points(points: Any, source: str | None) -> list[tuple[dict[str, Any], dict[str, str]]]:
    if not isinstance(points, list) or not points:
        raise SweepError("points", "must be a non-empty list of mappings from scenario field paths to values", source)
    out = []
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise SweepError(f"points.{i}", f"must be a mapping from scenario field paths to values, got {shown(point)}", source)
        for path in point:
            _check_path(path, f"points.{i}", source)
        out.append((dict(point), {path: f"points.{i}.{path}" for path in point}))
    return out


def _point_scenario(
    base: Scenario, base_data: dict[str, Any], overrides: dict[str, Any], labels: dict[str, str], source: str | None
) -> Scenario:
    """The base scenario with ``overrides`` applied, validated as a whole (the sweep's
    entry and the scenario field named on failure)."""
    if not overrides:
        return base
    data = json.loads(json.dumps(base_data))  # a deep copy of plain data
    for path, value in overrides.items():
        problem = _set_path(base, data, path, value)
        if problem is not None:
            raise SweepError(labels[path], f"scenario {problem}", source)
    try:
        scenario = parse_scenario(data)
        check_servable(scenario)  # what a run would refuse before it starts (a link that never heralds, ...)
        return scenario
    except ScenarioError as exc:
        # name the sweep's entry whose path the scenario's complaint is about (else every entry of the point)
        culprits = [labels[p] for p in overrides if exc.field == p or exc.field.startswith(p + ".") or p.startswith(exc.field + ".")]
        entry = culprits[0] if culprits else listing(labels.values(), 120)
        value = overrides.get(exc.field)
        given = f" (given {shown(value, 40)})" if exc.field in overrides else ""
        raise SweepError(entry, f"scenario {exc.field}: {exc.problem}{given}", source) from None


def _set_path(model: Any, data: Any, path: str, value: Any) -> str | None:
    """Set ``path`` (dotted) in ``data``, the plain-data dump of ``model``, walking the model
    to tell a field that does not exist from one left at its default. A mapping field
    (``scheme_params``, ``policy_options``) takes new keys. Returns the problem, or None."""
    parts = path.split(".")
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        key: Any
        if isinstance(model, BaseModel):
            fields = type(model).model_fields
            if part not in fields:
                return f"{here}: no such field (fields here: {listing(fields, 100)})"
            key, model = part, getattr(model, part)
        elif isinstance(model, list | tuple):
            if not part.isdigit():
                return f"{here}: {'.'.join(parts[:depth]) or 'this'} is a list; index it with a number"
            if int(part) >= len(model):
                return f"{here}: no entry {part} (the list has {len(model)})"
            key, model = int(part), model[int(part)]
        elif isinstance(model, dict):
            key, model = part, model.get(part, {})
        else:
            return f"{here}: {'.'.join(parts[:depth])} is a value ({type(model).__name__}), it has no fields"
        if last:
            data[key] = value
        else:
            if isinstance(data, dict) and key not in data:
                data[key] = {}
            data = data[key]
    return None


# ------------------------------------------------------------------ one run


def run_one(scenario: Scenario, point: int, seed: int, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``scenario`` with ``seed`` and return its row (module docstring). Never raises
    for a failure of the run itself: that is the row's ``status`` and ``error``."""
    row: dict[str, Any] = {"point": point, **{name: _cell(value) for name, value in parameters.items()}, "seed": seed}
    try:
        result = assemble(scenario.model_copy(update={"seed": seed})).run()
    except Exception as exc:  # the assembly refused the point, or the stack broke outside any entity
        row.update(status="failed", reason="error", error=one_line(f"{type(exc).__name__}: {exc}"))
        return row
    row.update(status=result.status, reason=result.end.reason, error=None if result.status == "done" else one_line(result.status_line()))
    row.update(run_figures(result))
    return row


def _cell(value: Any) -> Any:
    """A parameter value as a table cell: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


_REQUEST_FIGURES = (
    "state",
    "results",
    "mean_oracle_fidelity",
    "stderr_oracle_fidelity",
    "mean_goodness",
    "stderr_goodness",
    "first_result_ns",
    "last_result_ns",
    "error_code",
)
_KEY_FIGURES = (
    "length",
    "qber",
    "qber_upper",
    "sifted_bits",
    "leaked_ec_bits",
    "epsilon",
    "equal",
    "chsh_s",
    "chsh_standard_error",
    "pulses",
    "key_rate_per_pulse",
)


def run_figures(result: RunResult) -> dict[str, Any]:
    """The summary figures of a run report, flattened (column names in the module docstring)."""
    out: dict[str, Any] = {"sim_time_ns": result.sim_time_ns, "events": result.events}
    for link in result.links:
        for name in ("attempts", "successes", "success_probability", "success_probability_stderr"):
            out[f"link[{link.link}].{name}"] = getattr(link, name)
    for label in ("pairs", "teleport"):
        stats = getattr(result, label)
        if stats is not None:
            for name in type(stats).model_fields:
                out[f"{label}.{name}"] = getattr(stats, name)
    for app in result.applications:
        for name in _REQUEST_FIGURES:
            out[f"request[{app.label}].{name}"] = getattr(app, name)
    for key in result.keys:
        for name in _KEY_FIGURES:
            out[f"key[{key.key_id}].{name}"] = getattr(key, name)
    for name, count in result.counters.items():
        out[f"counter[{name}]"] = count
    return out


def figure_columns(columns: Iterable[str]) -> list[str]:
    """The columns that are figures of a run (not its point, seed, outcome or parameters)."""
    return [c for c in columns if c in _FIGURE_NAMES or c.startswith(_FIGURE_PREFIXES)]


def parameter_columns(columns: Iterable[str]) -> list[str]:
    """The columns that are a sweep's parameters (scenario field paths)."""
    return [c for c in columns if c not in RUN_COLUMNS and c not in _FIGURE_NAMES and not c.startswith(_FIGURE_PREFIXES)]


# ------------------------------------------------------------------ running a sweep


def sidecar_path(out: str | Path) -> Path:
    """Where the rows of a sweep written to ``out`` are kept as they finish."""
    return Path(f"{out}.partial.jsonl")


def run_sweep(
    sweep: Sweep | str | Path,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = False,
) -> pandas.DataFrame:
    """Run every (point, seed) of ``sweep`` (a :class:`Sweep` or a sweep file) and return
    the rows as a DataFrame, in the order (point, seed).

    ``workers``: local processes (default: the machine's cores; 1 runs in this process),
    started from a fork server: a script that calls this belongs under ``if __name__ == "__main__":``.
    ``scheduler``: a dask.distributed scheduler address (or a ``distributed.Client``) to run
    on instead. ``out`` (``.csv`` or ``.parquet``): where to write the rows, resuming from its
    sidecar file (:func:`sidecar_path`) if one is there. ``progress``: a progress bar with an
    ETA on stderr. Raises :class:`SweepError` for bad input (before anything runs or is
    written) and :class:`SweepIncomplete` when some runs got no row."""
    import pandas as pd

    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    fmt = None if out is None else _format(out)
    if workers is not None and workers < 1:
        raise SweepError("--workers", f"must be at least 1, got {workers}")
    fingerprint = sweep.fingerprint()
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    if out is not None:
        rows = _resume(sidecar_path(out), fingerprint)
    todo = [(point, seed) for point, seed in sweep.runs() if (point.index, seed) not in rows]
    parameters = sweep.parameters
    executor = _executor(scheduler, workers, len(todo)) if todo else None  # connects before anything is written
    sidecar = None
    try:
        if out is not None:
            sidecar = _open_sidecar(sidecar_path(out), fingerprint, rows.values())
        bar = _bar(len(sweep.runs()), len(rows), progress)
        missing = []
        try:
            calls = [(point.scenario, point.index, seed, {p: point.overrides.get(p) for p in parameters}) for point, seed in todo]
            for call, row in executor(calls) if executor is not None else ():
                if row is None:
                    missing.append(call)
                    continue
                rows[(row["point"], row["seed"])] = row
                if sidecar is not None:
                    sidecar.write(json.dumps(row) + "\n")
                    sidecar.flush()
                bar.update(1)
        finally:
            bar.close()
    finally:
        if sidecar is not None:
            sidecar.close()
    if missing:
        where = f"; the {len(rows)} that finished are in {sidecar_path(out)}: run again to resume" if out is not None else ""
        raise SweepIncomplete(
            f"{len(missing)} of {len(sweep.runs())} runs got no row (a worker process died or the cluster lost it){where}"
        )
    frame = _frame([rows[(point.index, seed)] for point, seed in sweep.runs()], parameters, pd)
    if out is not None and fmt is not None:
        _write_atomically(frame, Path(out), fmt)
        sidecar_path(out).unlink(missing_ok=True)
    return frame


def _format(out: str | Path) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SweepError("-o", f"results go to a .csv or .parquet file, got {shown(str(out))}")
    return suffix[1:]


def _resume(sidecar: Path, fingerprint: str) -> dict[tuple[int, int], dict[str, Any]]:
    """The rows a sidecar file holds (a last line cut short by a stop is dropped)."""
    if not sidecar.exists():
        return {}
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    with sidecar.open(encoding="utf-8") as stream:
        header = stream.readline()
        try:
            stamp = json.loads(header).get("sweep")
        except (json.JSONDecodeError, AttributeError):
            stamp = None
        if stamp != fingerprint:
            raise SweepError(
                "-o", f"{tail(str(sidecar), 80)} holds rows of another sweep (or is not a sweep's); remove it to start this sweep afresh"
            )
        for line in stream:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # written up to here: the stop came while this line was being written
            rows[(row["point"], row["seed"])] = row
    return rows


def _open_sidecar(sidecar: Path, fingerprint: str, rows: Iterable[dict[str, Any]]) -> Any:
    """A fresh sidecar holding the header and ``rows``, opened for appending (a
    torn last line of the old one is gone; the rewrite replaces it in one step)."""
    temporary = sidecar.with_name(sidecar.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as stream:
        stream.write(json.dumps({"sweep": fingerprint}) + "\n")
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    os.replace(temporary, sidecar)
    return sidecar.open("a", encoding="utf-8")


def _write_atomically(frame: pandas.DataFrame, out: Path, fmt: str) -> None:
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def _frame(rows: list[dict[str, Any]], parameters: list[str], pd: Any) -> pandas.DataFrame:
    head = ["point", *parameters, "seed", "status", "reason", "error"]
    figures = list(dict.fromkeys(name for row in rows for name in row if name not in head))
    frame = pd.DataFrame.from_records(rows, columns=head + figures)
    return frame


class _Bar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _bar(total: int, initial: int, shown_: bool) -> Any:
    if not shown_:
        return _Bar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="run", file=sys.stderr, dynamic_ncols=True, desc="sweep")


Call = tuple[Scenario, int, int, dict[str, Any]]
Executor = Callable[[list[Call]], Iterator[tuple[Call, dict[str, Any] | None]]]


def _executor(scheduler: Any, workers: int | None, runs: int) -> Executor:
    if scheduler is not None:
        return _dask_executor(scheduler)
    count = min(workers or os.cpu_count() or 1, runs)
    if count <= 1:
        return _serial
    return lambda calls: _local(calls, count)


def _serial(calls: list[Call]) -> Iterator[tuple[Call, dict[str, Any] | None]]:
    for call in calls:
        yield call, run_one(*call)


def _local(calls: list[Call], workers: int) -> Iterator[tuple[Call, dict[str, Any] | None]]:
    # forkserver: workers are forked from a clean process that has imported the stack once
    # (cheap to start, and no threads of this process are copied into them)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["qnetstack.stack.sweep"])
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures = {pool.submit(run_one, *call): call for call in calls}
        for future in concurrent.futures.as_completed(futures):
            try:
                row = future.result()
            except Exception:  # the worker process died (BrokenProcessPool): no row, the sweep resumes it
                row = None
            yield futures[future], row
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_executor(scheduler: Any) -> Executor:
    from distributed import Client

    if isinstance(scheduler, Client):
        client, owned = scheduler, False
    else:
        if not isinstance(scheduler, str) or not scheduler:
            raise SweepError("--scheduler", f"needs a scheduler address such as tcp://host:8786, got {shown(scheduler)}")
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            problem = cut(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)
            raise SweepError("--scheduler", f"cannot reach a dask scheduler at {shown(scheduler)}: {problem}") from None
        owned = True
        try:  # a scheduler without workers would leave the sweep waiting for ever
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            client.close()
            raise SweepError(
                "--scheduler", f"the dask scheduler at {shown(scheduler)} has no workers (waited {CONNECT_TIMEOUT_S:g} s)"
            ) from None

    def execute(calls: list[Call]) -> Iterator[tuple[Call, dict[str, Any] | None]]:
        from distributed import as_completed

        try:
            futures = {client.submit(run_one, *call, pure=False): call for call in calls}
            for future in as_completed(futures, loop=client.loop):  # this client's loop: it is not the default client
                try:
                    row = future.result()
                except Exception:  # the cluster lost the task: no row, the sweep resumes it
                    row = None
                yield futures[future], row
        finally:
            if owned:
                client.close()

    return execute


# ------------------------------------------------------------------ results


def read_results(path: str | Path) -> pandas.DataFrame:
    """A results file written by a sweep (``.csv`` or ``.parquet``)."""
    import pandas as pd

    fmt = _format(path)
    return pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)


def summarise(frame: pandas.DataFrame, *, only_done: bool = True) -> pandas.DataFrame:
    """Per point: the parameters, how many runs ended each way (``runs``, ``done``,
    ``failed``, ``stalled``) and, for every numeric figure, its mean over the runs
    (``FIGURE.mean``) and the standard error of that mean (``FIGURE.se``: the sample
    standard deviation over √n; empty for fewer than two runs). ``only_done``: figures
    from runs that ended ``done`` only, since a failed or stalled run's figures are partial."""
    import pandas as pd

    parameters = parameter_columns(frame.columns)
    figures = [
        c for c in figure_columns(frame.columns) if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    out = []
    for point, group in frame.groupby("point", sort=True):
        entry: dict[str, Any] = {"point": point, **{p: group[p].iloc[0] for p in parameters}}
        entry["runs"] = len(group)
        for status in ("done", "failed", "stalled"):
            entry[status] = int((group["status"] == status).sum())
        used = group[group["status"] == "done"] if only_done else group
        for name in figures:
            values = used[name].dropna().astype(float)
            n = len(values)
            entry[f"{name}.mean"] = float(values.mean()) if n else math.nan
            entry[f"{name}.se"] = float(values.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
        out.append(entry)
    return pd.DataFrame.from_records(out)
