"""The ``qnetstack`` command line.

``qnetstack run SCENARIO [--seed N] [--json] [--trace FILE] [--wall-limit S]`` runs a
scenario file and prints its summary: the links, each request (state, path,
results, fidelity) and a last line saying how the run ended. Exit code 0 when
every request is done, 1 when one failed or was still open when the run
stopped (stalled: no progress, a stop limit or ``--wall-limit``) or an entity
raised (its node, layer, simulated time and message are shown), 2 for bad
input: a scenario or assembly error, reported in one line naming the field
and the problem. On a terminal, a progress line is kept on stderr.

``qnetstack conform LAYER [IMPL] [--json] [--junit FILE] [--clause ID ...]`` runs the
layer's conformance suite against IMPL (``module:Class`` or a registered name;
left out, the project's reference implementation) and prints a clause-by-clause
report. Exit code 0 when every mandatory clause passes, 1 when one fails, 2 for
bad input (unknown layer, an import path that does not resolve, an object that
is not an implementation of the service).

``qnetstack schema --out DIR`` writes the JSON Schemas of every service message
and of the scenario file.

``qnetstack diagrams [--out FILE]`` writes the state diagrams of every protocol
session, rendered from the transition tables in the code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

# (QuTiP's matplotlib warning is filtered by qnetstack.stack, imported before this module.)
from qnetstack.stack.assembler import assemble
from qnetstack.stack.runner import RunProgress
from qnetstack.stack.scenario import ScenarioError, load_scenario

__all__ = ["main"]


RUN_EXIT_CODES = """exit codes:
  0  every request is done
  1  a request failed or was still open when the run stopped (stalled, a stop
     limit, --wall-limit), or an entity raised an exception
  2  bad input (the scenario, --impl, --seed, --wall-limit)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--trace", metavar="FILE", default=None, help="write every traced event as JSON lines to FILE")
    run.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="LAYER=IMPL",
        help="run LAYER with IMPL (module:Class or a registered name) instead of the scenario's choice; repeatable",
    )
    run.add_argument(
        "--wall-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end the run as stalled after SECONDS of wall-clock time (overrides the scenario's stop.wall_limit_s)",
    )
    conform = sub.add_parser("conform", help="check an implementation of a layer against its spec, clause by clause")
    conform.add_argument("layer", help="physical, link, network or application")
    conform.add_argument("impl", nargs="?", default=None, help="module:Class or a registered name (default: the reference implementation)")
    conform.add_argument("--json", action="store_true", help="print the report as one JSON object")
    conform.add_argument("--junit", metavar="FILE", default=None, help="also write the report as JUnit XML to FILE")
    conform.add_argument("--clause", action="append", default=None, metavar="ID", help="check only this clause (repeatable)")
    schema = sub.add_parser("schema", help="write the JSON Schemas of all service messages and the scenario file")
    schema.add_argument("--out", default="specs/schemas", help="folder to write into (default: specs/schemas)")
    diagrams = sub.add_parser("diagrams", help="write the state diagrams of every protocol session (from the code's tables)")
    diagrams.add_argument("--out", default="docs/state-machines.md", help="file to write (default: docs/state-machines.md)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Like ``python -m``: module:Class paths may name modules in the current folder.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if args.command == "run":
        return _run(args)
    if args.command == "conform":
        return _conform(args)
    if args.command == "schema":
        from pathlib import Path

        from qnetstack.stack.schemas import write

        written = write(Path(args.out))
        print(f"wrote {len(written)} schemas to {args.out}")
        return 0
    if args.command == "diagrams":
        from qnetstack.stack.diagrams import render

        page = render()
        try:
            with open(args.out, "w", encoding="utf-8") as out:
                out.write(page)
        except OSError as exc:
            print(f"qnetstack: error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}")
        return 0
    return 2  # argparse already rejects unknown commands


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
        if args.seed is not None:
            if args.seed < 0:
                raise ScenarioError("--seed", "must be a non-negative integer")
            scenario = scenario.model_copy(update={"seed": args.seed})
        if args.wall_limit is not None and not args.wall_limit > 0:
            raise ScenarioError("--wall-limit", "must be a positive number of seconds")
        if args.trace:
            scenario = scenario.model_copy(update={"keep_trace": True})
        simulation = assemble(scenario, implementations=_impl_overrides(args.impl))
    except ScenarioError as exc:
        print(f"qnetstack: error: {exc}", file=sys.stderr)
        return 2
    progress = _ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = simulation.run(wall_limit_s=args.wall_limit, on_progress=progress)
    finally:
        if progress is not None:
            progress.clear()
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as out:
            for record in simulation.network.trace.records:
                out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
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


def _impl_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        layer, sep, impl = pair.partition("=")
        if not sep or not layer or not impl:
            raise ScenarioError("--impl", f"expected LAYER=IMPL, got {pair!r}")
        overrides[layer] = impl
    return overrides


def _conform(args: argparse.Namespace) -> int:
    from qnetstack.stack.conform import ConformError, run_conformance

    try:
        report = run_conformance(args.layer, args.impl, select=args.clause)
    except ConformError as exc:
        print(f"qnetstack: error: {exc}", file=sys.stderr)
        return 2
    if args.junit:
        with open(args.junit, "w", encoding="utf-8") as out:
            out.write(report.to_junit())
    print(report.to_json() if args.json else report.to_text())
    return 0 if report.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
