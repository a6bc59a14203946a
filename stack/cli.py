"""The ``qnetstack`` command line.

``qnetstack run SCENARIO [--seed N] [--json] [--trace FILE] [--impl LAYER=IMPL ...]
[--allow-import] [--wall-limit S]`` runs a scenario file and prints its summary:
the links, each request (state, path, results, fidelity) and a last line saying
how the run ended. A scenario file names registered implementations only;
``--impl LAYER=module:Class`` (the user's own request) and ``--allow-import``
(the file's ``module:Class`` paths are the user's too) may import Python
modules, from the current folder as well. Exit code 0 when every request is
done, 1 when one failed or was still open when the run stopped (stalled: no
progress, a stop limit or ``--wall-limit``) or an entity raised (its node,
layer, simulated time and message are shown), 2 for bad input: a scenario,
assembly or command-line error, reported in one line naming the field or flag
and the problem, before the run starts. On a terminal, a progress line is kept
on stderr.

``qnetstack conform LAYER [IMPL] [--json] [--junit FILE] [--clause ID ...]
[--clause-timeout SECONDS]`` runs the layer's conformance suite against IMPL
(``module:Class`` or a registered name; left out, the project's reference
implementation) and prints a clause-by-clause report as it goes (``--json``:
one JSON object at the end). Each distinct exception of the implementation is
shown once, with the clauses it broke. A clause that runs longer than
SECONDS (default 120) fails, naming the handler that was running, and the
suite goes on. Exit codes: 0 when every mandatory (MUST) clause passes, 1
when one fails, 2 for bad input (unknown layer or clause, an import path that
does not resolve, an object that is not an implementation of the service, an
unwritable ``--junit`` file, a time limit that is not a positive number),
checked before the suite runs; 130 when interrupted with Ctrl-C (no verdict).

With ``--score`` the report ends with a grade: one verdict per clause and the
clauses passed out of those that apply (``qnetstack.stack.conform.score``).

``qnetstack exercise LAYER DIR`` writes a graded exercise into DIR (new or
empty; written whole or not at all): a stub of the layer with TODOs naming the
spec clauses, a student README and visible tests (``qnetstack.stack.exercise``).

``qnetstack presets [--json]`` lists the hardware presets a scenario node may
name (``hardware: {preset: NAME}``), with their key figures and sources
(``qnetstack.stack.presets_cli``).

``qnetstack schema --out DIR`` writes the JSON Schemas of every service message
and of the scenario file.

``qnetstack diagrams [--out FILE]`` writes the state diagrams of every protocol
session, rendered from the transition tables in the code.

``qnetstack sweep SWEEP.yaml -o RESULTS [--workers N] [--scheduler ADDRESS]
[--summary FILE]`` runs a scenario over a grid or list of parameter values and
seeds, in local processes or on a dask.distributed cluster, one row per run
(``qnetstack.stack.sweep``). ``qnetstack plot RESULTS --x FIELD --y FIELD
[--by FIELD] -o FIGURE`` draws mean ± standard error per x (``qnetstack.stack.plot``).

``qnetstack chart TRACE -o FILE.svg|FILE.html [--from-ns A] [--to-ns B]
[--layers L1,L2]`` draws a sequence chart of a trace file written by ``run
--trace`` (format and chart: docs/trace-format.md). A trace that is truncated,
of another version or not JSON is bad input (the line is named); nothing is
written then.

Exit codes: 0 all done (``run``: every request done); 1 some requests failed or
stalled (``conform``: a mandatory clause failed); 2 bad input. Bad input is a
malformed command line, scenario file or implementation, or an output that
cannot be written; it is found before anything runs or is written, and told
in one line of at most 300 characters on stderr, ``qnetstack: error: WHERE:
PROBLEM``, naming the flag or the scenario field.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from qnetstack.stack import registry
from qnetstack.stack.assembler import Simulation, assemble
from qnetstack.stack.messages import cut, listing, one_line, shown, tail
from qnetstack.stack.registry import LAYERS, import_path_problem, is_import_path
from qnetstack.stack.runner import RunProgress, run_traced
from qnetstack.stack.scenario import MAX_INT, ScenarioError, load_scenario

__all__ = ["UsageError", "check_writable", "main"]


class UsageError(ValueError):
    """A bad command line or an output that cannot be written: ``flag`` says which."""

    def __init__(self, flag: str, problem: str) -> None:
        self.flag = flag
        self.problem = problem
        super().__init__(f"{flag}: {problem}" if flag else problem)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (:func:`main` prints it), not usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("", message)


def _seed(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", text) or int(text) > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63-1, got {shown(text)}")
    return int(text)


def _impl_choice(text: str) -> tuple[str, str]:
    layer, sep, impl = text.partition("=")
    if not sep or not layer or not impl:
        raise argparse.ArgumentTypeError(f"expected LAYER=IMPL, got {shown(text)}")
    if layer not in LAYERS:
        raise argparse.ArgumentTypeError(f"unknown layer {shown(layer)} (layers: {', '.join(LAYERS)})")
    if is_import_path(impl) and (problem := import_path_problem(impl)) is not None:
        raise argparse.ArgumentTypeError(f"{layer}: {problem}")
    return layer, impl


def _layer(text: str) -> str:
    if text not in LAYERS:
        raise argparse.ArgumentTypeError(f"unknown layer {shown(text)} (layers: {', '.join(LAYERS)})")
    return text


def _layer_list(text: str) -> list[str]:
    from qnetstack.stack.chart import LANE_LAYERS

    layers = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in layers if name not in LANE_LAYERS]
    if not layers or unknown:
        raise argparse.ArgumentTypeError(f"unknown layer {shown(unknown[0] if unknown else text)} (layers: {', '.join(LANE_LAYERS)})")
    return layers


def _conform_impl(text: str) -> str:
    if is_import_path(text) and (problem := import_path_problem(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


RUN_EXIT_CODES = """exit codes:
  0  every request is done
  1  a request failed or was still open when the run stopped (stalled, a stop
     limit, --wall-limit), or an entity raised an exception, or the --trace
     file could not be written during the run
  2  bad input, before the run starts (the scenario, --impl, --seed,
     --wall-limit, an unwritable --trace or output)"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qnetstack",
        description="A layered quantum-network protocol stack in simulated time.",
        epilog="qnetstack run: " + RUN_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run a scenario file and print its summary",
        epilog=RUN_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("scenario", help="path to a YAML or JSON scenario file")
    run.add_argument("--seed", type=_seed, default=None, help="override the scenario's seed (0 to 2**63-1)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="stream the trace (every service and peer message, transition and event) as JSON lines to FILE",
    )
    run.add_argument(
        "--impl",
        action="append",
        type=_impl_choice,
        default=[],
        metavar="LAYER=IMPL",
        help="run LAYER with IMPL (module:Class or a registered name) instead of the scenario's choice; repeatable",
    )
    run.add_argument(
        "--allow-import",
        action="store_true",
        help="let the scenario file name implementations as module:Class (importing those modules runs their code)",
    )
    run.add_argument(
        "--wall-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end the run as stalled after SECONDS of wall-clock time (overrides the scenario's stop.wall_limit_s)",
    )
    conform = sub.add_parser(
        "conform",
        help="check an implementation of a layer against its spec, clause by clause",
        description="Check an implementation of a layer against its spec (specs/LAYER.md), clause by clause.",
        epilog=CONFORM_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conform.add_argument("layer", type=_layer, help="physical, link, network or application")
    conform.add_argument(
        "impl",
        nargs="?",
        type=_conform_impl,
        default=None,
        help="module:Class or a registered name (default: the reference implementation)",
    )
    conform.add_argument("--json", action="store_true", help="print the report as one JSON object, at the end")
    conform.add_argument("--junit", metavar="FILE", default=None, help="also write the report as JUnit XML to FILE")
    conform.add_argument("--clause", action="append", default=None, metavar="ID", help="check only this clause (repeatable)")
    conform.add_argument(
        "--clause-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a clause that takes longer than SECONDS, naming the handler that was running (default: 120)",
    )
    conform.add_argument(
        "--score",
        action="store_true",
        help="end with a grade: one verdict per clause and the clauses passed out of those that apply",
    )
    schema = sub.add_parser("schema", help="write the JSON Schemas of all service messages and the scenario file")
    schema.add_argument("--out", default="specs/schemas", help="folder to write into (default: specs/schemas)")
    diagrams = sub.add_parser("diagrams", help="write the state diagrams of every protocol session (from the code's tables)")
    diagrams.add_argument("--out", default="docs/state-machines.md", help="file to write (default: docs/state-machines.md)")
    sweep = sub.add_parser(
        "sweep",
        help="run a scenario over a grid or list of parameter values and seeds, one row per run",
        description="Run a sweep file (a base scenario, seeds, and a grid or list of overrides by scenario field path; see docs/sweeps.md).",
        epilog=SWEEP_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("sweep", help="path to a YAML sweep file")
    sweep.add_argument("-o", "--out", required=True, metavar="RESULTS", help="write one row per run to RESULTS (.csv or .parquet)")
    sweep.add_argument("--workers", type=int, default=None, metavar="N", help="local worker processes (default: the machine's cores)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS", help="run on the dask.distributed scheduler at ADDRESS instead")
    sweep.add_argument(
        "--summary",
        default=None,
        metavar="FILE",
        help="also write the mean and standard error of every figure per point to FILE (.csv or .parquet)",
    )
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar (shown on stderr when it is a terminal)")
    plot = sub.add_parser(
        "plot",
        help="plot a figure of a sweep's results against a parameter (mean ± standard error per x)",
        description="Plot the mean ± standard error of FIELD --y per value of FIELD --x over a sweep's runs that ended done.",
    )
    plot.add_argument("results", help="a results file written by qnetstack sweep (.csv or .parquet)")
    plot.add_argument("--x", required=True, metavar="FIELD", help="column for the x axis (e.g. links.0.length_km)")
    plot.add_argument("--y", required=True, metavar="FIELD", help="column for the y axis (e.g. pairs.mean_oracle_fidelity)")
    plot.add_argument("--by", default=None, metavar="FIELD", help="one curve per value of this column")
    plot.add_argument("-o", "--out", required=True, metavar="FIGURE", help="image to write (.png or .svg)")
    chart = sub.add_parser(
        "chart",
        help="draw a sequence chart of a trace file (qnetstack run --trace) as SVG or HTML",
        description="Draw a sequence chart of a trace file: one lane per node and layer, one arrow per message.",
    )
    chart.add_argument("trace", help="a trace file written by qnetstack run --trace")
    chart.add_argument("-o", "--out", required=True, metavar="FILE", help="the chart to write: FILE.svg or FILE.html")
    chart.add_argument("--from-ns", type=_seed, default=None, metavar="A", help="only records at or after simulated time A (ns)")
    chart.add_argument("--to-ns", type=_seed, default=None, metavar="B", help="only records at or before simulated time B (ns)")
    chart.add_argument(
        "--layers", type=_layer_list, default=None, metavar="L1,L2", help="only these layers (user is the layer above application)"
    )
    exercise = sub.add_parser(
        "exercise",
        help="write a graded exercise: a stub of a layer, a student README and visible tests",
        description="Write a layer for students to build into DIR (new or empty): the stub, a README and visible tests; "
        "grade it with qnetstack conform LAYER module:Class --score.",
    )
    exercise.add_argument("layer", type=_exercise_layer, help="the layer to build (link or network)")
    exercise.add_argument("dir", metavar="DIR", help="folder to write (must not exist, or be empty)")
    presets = sub.add_parser("presets", help="list the hardware presets a scenario node may name, with their sources")
    presets.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def _exercise_layer(text: str) -> str:
    from qnetstack.stack.exercise import EXERCISES

    if text not in EXERCISES:
        raise argparse.ArgumentTypeError(f"no exercise for layer {shown(text)} (exercises: {', '.join(EXERCISES)})")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "conform":
            _check_conform_input(args)
    except UsageError as exc:
        return _fail(exc)
    if _imports_asked_for(args):
        # Like ``python -m``: a module:Class the user gave may name a module in the current folder.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
    if args.command == "run":
        return _run(args)
    if args.command == "conform":
        return _conform(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "diagrams":
        return _diagrams(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "plot":
        return _plot(args)
    if args.command == "chart":
        return _chart(args)
    if args.command == "exercise":
        return _exercise(args)
    if args.command == "presets":
        from qnetstack.stack.presets_cli import render_presets

        print(render_presets(as_json=args.json))
        return 0
    return 2  # argparse already rejects unknown commands


def _fail(exc: Exception | str) -> int:
    """Bad input: one bounded line on stderr, exit code 2."""
    print(one_line(f"qnetstack: error: {exc}"), file=sys.stderr)
    return 2


def _check_conform_input(args: argparse.Namespace) -> None:
    """What ``conform`` can check before the suite runs: the clauses exist, the
    time limit is a positive number, the report can be written."""
    if args.clause:
        from qnetstack.stack.conform import suite_for

        suite = suite_for(args.layer)
        unknown = sorted(set(args.clause) - suite.clause_ids)
        if unknown:
            raise UsageError("--clause", f"no clause {listing(unknown)} in the {args.layer} suite (see {suite.spec})")
    timeout = args.clause_timeout
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError("--clause-timeout", f"must be a positive number of seconds, got {timeout}")
    if args.junit is not None:
        check_writable(args.junit, "--junit")  # creates nothing: bad input leaves no empty report behind


def _imports_asked_for(args: argparse.Namespace) -> bool:
    """Whether the command line itself names a module:Class (or allows the file to)."""
    if args.command == "run":
        return args.allow_import or any(is_import_path(impl) for _, impl in args.impl)
    if args.command == "conform":
        return args.impl is not None and is_import_path(args.impl)
    return False


def check_writable(path: str, flag: str, *, folder: bool = False) -> None:
    """Raise :class:`UsageError` naming ``flag`` unless ``path`` can be written:
    an existing file, or a new one in an existing folder (``folder``: a folder,
    existing or to be made under an existing one). Creates nothing, so a check
    that fails leaves no trace; call it before the work whose result goes there."""
    if not path:
        raise UsageError(flag, "needs a path, got an empty one")
    if "\0" in path:  # (pathlib answers "does not exist" for these, and open() raises)
        raise UsageError(flag, "a path cannot contain a NUL character")
    shown_path = tail(path)
    try:
        target = Path(path)
        if target.exists():
            if folder != target.is_dir():
                raise UsageError(flag, f"{shown_path} is {'not ' if folder else ''}a folder")
            if not os.access(target, os.W_OK | (os.X_OK if folder else 0)):
                raise UsageError(flag, f"{shown_path} is not writable")
            return
        parent = target.parent
        while folder and not parent.exists() and parent != parent.parent:
            parent = parent.parent  # the schema writer makes the missing folders
        if not parent.is_dir():
            where = "does not exist" if not parent.exists() else "is not a folder"
            raise UsageError(flag, f"cannot write {shown_path}: {tail(str(parent))} {where}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(flag, f"cannot write {shown_path}: folder {tail(str(parent))} is not writable")
    except UsageError:
        raise
    except OSError as exc:  # e.g. a name longer than the file system takes
        raise UsageError(flag, f"cannot write {shown_path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:  # a path the operating system cannot represent
        raise UsageError(flag, f"cannot write {shown_path}: {cut(str(exc), 60)}") from None


def _prepare_run(args: argparse.Namespace) -> Simulation:
    """Everything a run checks before it starts: outputs, scenario, implementations."""
    if args.wall_limit is not None and not 0 < args.wall_limit < float("inf"):
        raise UsageError("--wall-limit", "must be a positive number of seconds")
    if args.trace is not None:
        check_writable(args.trace, "--trace")
    scenario = load_scenario(args.scenario, allow_import=args.allow_import)
    if args.seed is not None:
        scenario = scenario.model_copy(update={"seed": args.seed})
    if args.trace:
        scenario = scenario.model_copy(update={"keep_trace": True})
    overrides: dict[str, str] = {}
    for layer, impl in args.impl:
        if layer in overrides:
            raise UsageError("--impl", f"{layer} given twice ({shown(overrides[layer], 40)} and {shown(impl, 40)})")
        try:
            registry.resolve(layer, impl)  # so that a failure names the flag; the module is imported once
        except registry.RegistryError as exc:
            raise UsageError(f"--impl {layer}", str(exc)) from None
        overrides[layer] = impl
    return assemble(scenario, implementations=overrides)


def _run(args: argparse.Namespace) -> int:
    try:
        simulation = _prepare_run(args)
    except (ScenarioError, UsageError) as exc:
        return _fail(exc)
    progress = _ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        if args.trace:
            try:  # streamed as the run goes (format: docs/trace-format.md)
                result = run_traced(simulation, args.trace, wall_limit_s=args.wall_limit, on_progress=progress)
            except OSError as exc:  # checked before the run, but a disk can fill or a folder go
                problem = f"--trace: cannot write {tail(args.trace)}: {exc.strerror or type(exc).__name__}"
                print(one_line(f"qnetstack: error: {problem}"), file=sys.stderr)
                return 1
        else:
            result = simulation.run(wall_limit_s=args.wall_limit, on_progress=progress)
    finally:
        if progress is not None:
            progress.clear()
    if args.json:
        print(result.to_json())
        if result.end.error is not None:  # the JSON has it too; a person reading the terminal sees it here
            print(f"qnetstack: {result.end.error.to_text()}", file=sys.stderr)
    else:
        print(result.to_table())
    return result.exit_code


class _ProgressLine:
    """One status line on a terminal, redrawn at most every ``every_s`` seconds."""

    def __init__(self, stream: TextIO, every_s: float = 0.2) -> None:
        self.stream = stream
        self.every_s = every_s
        self.shown_at = -every_s
        self.width = 0

    def __call__(self, where: RunProgress) -> None:
        if where.wall_s - self.shown_at < self.every_s:
            return
        self.shown_at = where.wall_s
        text = (
            f"{where.events:,} events  simulated {where.sim_time_ns / 1e6:.3f} ms  "
            f"requests {where.requests_done}/{where.requests} done  results {where.results}  wall {where.wall_s:.1f} s"
        )
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _schema(args: argparse.Namespace) -> int:
    from qnetstack.stack.schemas import write

    try:
        check_writable(args.out, "--out", folder=True)
        written = write(Path(args.out))
    except UsageError as exc:
        return _fail(exc)
    except OSError as exc:  # e.g. a file where a subfolder of schemas belongs
        return _fail(f"--out: cannot write {tail(args.out)}: {exc.strerror or type(exc).__name__}")
    print(f"wrote {len(written)} schemas to {args.out}")
    return 0


def _diagrams(args: argparse.Namespace) -> int:
    from qnetstack.stack.diagrams import render

    try:
        check_writable(args.out, "--out")
    except UsageError as exc:
        return _fail(exc)
    page = render()
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(page)
    except OSError as exc:
        return _fail(f"--out: cannot write {tail(args.out)}: {exc.strerror or type(exc).__name__}")
    print(f"wrote {args.out}")
    return 0


def _chart(args: argparse.Namespace) -> int:
    from qnetstack.stack.chart import build_chart, render_html, render_svg
    from qnetstack.stack.trace import TraceError, read_trace

    try:
        suffix = Path(args.out).suffix.lower()
        if suffix not in (".svg", ".html", ".htm"):
            raise UsageError("--out", f"the chart is written as .svg or .html, got {shown(suffix or args.out)}")
        if args.from_ns is not None and args.to_ns is not None and args.from_ns > args.to_ns:
            raise UsageError("--from-ns", f"{args.from_ns} is after --to-ns {args.to_ns}")
        check_writable(args.out, "--out")
        try:
            header, records, _ = read_trace(args.trace)
        except TraceError as exc:
            raise UsageError(tail(args.trace), str(exc)) from None
        except OSError as exc:
            raise UsageError(tail(args.trace), f"cannot read: {exc.strerror or type(exc).__name__}") from None
        chart = build_chart(header, records, from_ns=args.from_ns, to_ns=args.to_ns, layers=args.layers)
        if not chart.lanes:
            raise UsageError("--from-ns/--to-ns/--layers", "no record of the trace is in the window and layers chosen")
    except UsageError as exc:
        return _fail(exc)
    page = render_svg(chart) if suffix == ".svg" else render_html(chart)
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(page)
    except OSError as exc:
        return _fail(f"--out: cannot write {tail(args.out)}: {exc.strerror or type(exc).__name__}")
    print(f"wrote {args.out}: {len(chart.lanes)} lanes, {len(chart.arrows)} messages, {len(chart.marks)} marks")
    return 0


CONFORM_EXIT_CODES = """exit codes:
  0    every mandatory (MUST) clause passes
  1    a mandatory clause fails
  2    bad input: unknown layer or clause, an IMPL that does not resolve or is not an
       implementation of the service, an unwritable --junit FILE, a bad --clause-timeout
       (checked before the suite runs; one line on stderr)
  130  interrupted (Ctrl-C): no verdict"""


def _conform(args: argparse.Namespace) -> int:
    from qnetstack.entity.conformance import TextReport
    from qnetstack.stack.conform import DEFAULT_CLAUSE_TIMEOUT, ConformError, run_conformance, score

    timeout = DEFAULT_CLAUSE_TIMEOUT if args.clause_timeout is None else args.clause_timeout
    text = None if args.json else TextReport(lambda line: print(line, flush=True))
    try:
        report = run_conformance(args.layer, args.impl, select=args.clause, clause_timeout=timeout, progress=text)
    except ConformError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print("qnetstack: interrupted: the suite did not finish, no verdict", file=sys.stderr)
        return 130
    if args.junit is not None:
        with open(args.junit, "w", encoding="utf-8") as out:
            out.write(report.to_junit())
    if text is None:
        if args.score:
            data = json.loads(report.to_json())
            data["score"] = score(report).model_dump()
            print(json.dumps(data, indent=2))
        else:
            print(report.to_json())
    else:
        text.finish(report)
        if args.score:
            print()
            print(score(report).to_text())
    return 0 if report.passed else 1


SWEEP_EXIT_CODES = """exit codes:
  0    every run is done; RESULTS written
  1    some runs failed or stalled (each is a row with its error; RESULTS written),
       or some runs got no row (a worker died: RESULTS not written, run again to resume)
  2    bad input: the sweep file, a point that is not a valid scenario, an unwritable
       RESULTS or --summary, a --scheduler nobody answers at (nothing written)
  130  interrupted (Ctrl-C): the finished rows are kept in RESULTS.partial.jsonl;
       the same command again resumes"""


def _sweep(args: argparse.Namespace) -> int:
    try:
        from qnetstack.stack.sweep import SweepError, SweepIncomplete, load_sweep, run_sweep, summarise
    except ImportError as exc:
        return _fail(f"sweep: needs the sweep extra (pip install 'qnetstack[sweep]'): {exc}")
    try:
        check_writable(args.out, "-o")
        for path, flag in ((args.out, "-o"), (args.summary, "--summary")):
            if path is not None and Path(path).suffix.lower() not in (".csv", ".parquet"):
                raise UsageError(flag, f"results go to a .csv or .parquet file, got {shown(path)}")
        if args.summary is not None:
            check_writable(args.summary, "--summary")
        if args.workers is not None and args.workers < 1:
            raise UsageError("--workers", f"must be at least 1, got {args.workers}")
        sweep = load_sweep(args.sweep)
    except (UsageError, SweepError) as exc:
        return _fail(exc)
    try:
        frame = run_sweep(
            sweep, args.out, workers=args.workers, scheduler=args.scheduler, progress=sys.stderr.isatty() and not args.no_progress
        )
    except SweepError as exc:
        return _fail(exc)
    except SweepIncomplete as exc:
        print(one_line(f"qnetstack: sweep incomplete: {exc}", 400), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"qnetstack: interrupted: the finished runs are kept in {tail(args.out)}.partial.jsonl; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    counts = frame["status"].value_counts()
    tally = ", ".join(f"{int(counts.get(state, 0))} {state}" for state in ("done", "failed", "stalled"))
    print(f"wrote {args.out}: {len(frame)} runs ({tally}) over {frame['point'].nunique()} points")
    if args.summary is not None:
        summary = summarise(frame)
        try:
            if args.summary.lower().endswith(".csv"):
                summary.to_csv(args.summary, index=False)
            else:
                summary.to_parquet(args.summary, index=False)
        except OSError as exc:
            return _fail(f"--summary: cannot write {tail(args.summary)}: {exc.strerror or type(exc).__name__}")
        print(f"wrote {args.summary}: mean and standard error per point")
    return 0 if counts.get("done", 0) == len(frame) else 1


def _plot(args: argparse.Namespace) -> int:
    try:
        from qnetstack.stack.plot import PlotError, xy
        from qnetstack.stack.sweep import SweepError, read_results
    except ImportError as exc:
        return _fail(f"plot: needs the sweep and plots extras (pip install 'qnetstack[sweep,plots]'): {exc}")
    try:
        if Path(args.out).suffix.lower() not in (".png", ".svg"):
            raise UsageError("-o", f"a figure is written as .png or .svg, got {shown(args.out)}")
        check_writable(args.out, "-o")
        if not Path(args.results).is_file():
            raise UsageError("results", f"no such file: {tail(args.results)}")
        try:
            frame = read_results(args.results)
        except SweepError:
            raise UsageError("results", f"a results file is .csv or .parquet, got {shown(args.results)}") from None
        except Exception as exc:  # pandas' and pyarrow's parse errors
            raise UsageError(
                "results", f"cannot read {tail(args.results)}: {cut(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)}"
            ) from None
        figure = xy(frame, args.x, args.y, by=args.by)
    except (UsageError, PlotError) as exc:
        return _fail(exc)
    temporary = Path(args.out).with_name(f".{Path(args.out).name}.{os.getpid()}.tmp{Path(args.out).suffix}")
    try:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
        os.replace(temporary, args.out)
    except OSError as exc:
        return _fail(f"-o: cannot write {tail(args.out)}: {exc.strerror or type(exc).__name__}")
    finally:
        temporary.unlink(missing_ok=True)
    print(f"wrote {args.out}")
    return 0


def _exercise(args: argparse.Namespace) -> int:
    from qnetstack.stack.exercise import EXERCISES, ExerciseError, write_exercise

    try:
        written = write_exercise(args.layer, args.dir)
    except ExerciseError as exc:
        return _fail(exc)
    module_class = EXERCISES[args.layer]
    print(f"wrote the {args.layer} exercise to {args.dir}: {', '.join(path.name for path in written)}")
    print(f"grade it with: cd {args.dir} && qnetstack conform {args.layer} {module_class} --score")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
