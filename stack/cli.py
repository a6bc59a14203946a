"""The ``qnetstack`` command line.

``qnetstack run SCENARIO [--seed N] [--json] [--trace FILE]`` runs a scenario file and
prints its summary. A scenario or assembly error ends the command with exit
code 2 and one line naming the field and the problem.

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

from qnetstack.stack.assembler import assemble
from qnetstack.stack.scenario import ScenarioError, load_scenario

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qnetstack", description="A layered quantum-network protocol stack in simulated time.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario file and print its summary")
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
    conform = sub.add_parser(
        "conform",
        help="check an implementation of a layer against its spec, clause by clause",
        description="Check an implementation of a layer against its spec (specs/LAYER.md), clause by clause.",
        epilog=CONFORM_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conform.add_argument("layer", help="physical, link, network or application")
    conform.add_argument("impl", nargs="?", default=None, help="module:Class or a registered name (default: the reference implementation)")
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
        if args.trace:
            scenario = scenario.model_copy(update={"keep_trace": True})
        simulation = assemble(scenario, implementations=_impl_overrides(args.impl))
    except ScenarioError as exc:
        print(f"qnetstack: error: {exc}", file=sys.stderr)
        return 2
    result = simulation.run()
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as out:
            for record in simulation.network.trace.records:
                out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    print(result.to_json() if args.json else result.to_table())
    return 0


def _impl_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        layer, sep, impl = pair.partition("=")
        if not sep or not layer or not impl:
            raise ScenarioError("--impl", f"expected LAYER=IMPL, got {pair!r}")
        overrides[layer] = impl
    return overrides


CONFORM_EXIT_CODES = """exit codes:
  0    every mandatory (MUST) clause passes
  1    a mandatory clause fails
  2    bad input: unknown layer or clause, an IMPL that does not resolve or is not an
       implementation of the service, an unwritable --junit FILE, a bad --clause-timeout
       (checked before the suite runs; one line on stderr)
  130  interrupted (Ctrl-C): no verdict"""


def _conform(args: argparse.Namespace) -> int:
    from qnetstack.entity.conformance import TextReport
    from qnetstack.stack.conform import DEFAULT_CLAUSE_TIMEOUT, ConformError, run_conformance

    def error(text: str) -> int:
        print(f"qnetstack: error: {text}", file=sys.stderr)
        return 2

    timeout = DEFAULT_CLAUSE_TIMEOUT if args.clause_timeout is None else args.clause_timeout
    if not timeout > 0 or timeout == float("inf"):
        return error(f"--clause-timeout: must be a positive number of seconds, got {args.clause_timeout}")
    # An unwritable report file is bad input: say so now, not after the suite has run.
    junit_existed = args.junit is not None and os.path.exists(args.junit)
    if args.junit is not None:
        try:
            with open(args.junit, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            return error(f"--junit {args.junit}: {exc.strerror or exc}")

    def drop_junit() -> None:  # the run gave no report: leave no empty file behind
        if args.junit is not None and not junit_existed:
            try:
                os.remove(args.junit)
            except OSError:
                pass

    text = None if args.json else TextReport(lambda line: print(line, flush=True))
    try:
        report = run_conformance(args.layer, args.impl, select=args.clause, clause_timeout=timeout, progress=text)
    except ConformError as exc:
        drop_junit()
        return error(str(exc))
    except KeyboardInterrupt:
        drop_junit()
        print("qnetstack: interrupted: the suite did not finish, no verdict", file=sys.stderr)
        return 130
    if args.junit is not None:
        with open(args.junit, "w", encoding="utf-8") as out:
            out.write(report.to_junit())
    if text is None:
        print(report.to_json())
    else:
        text.finish(report)
    return 0 if report.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
