"""The ``qnetstack`` command line.

``qnetstack run SCENARIO [--seed N] [--json] [--trace FILE]`` runs a scenario file and
prints its summary. A scenario or assembly error ends the command with exit
code 2 and one line naming the field and the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

# QuTiP warns at import when matplotlib is missing; the CLI plots nothing.
warnings.filterwarnings("ignore", message="matplotlib not found")

from stack.assembler import assemble
from stack.scenario import ScenarioError, load_scenario

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qnetstack", description="A layered quantum-network protocol stack in simulated time.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario file and print its summary")
    run.add_argument("scenario", help="path to a YAML or JSON scenario file")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--trace", metavar="FILE", default=None, help="write every traced event as JSON lines to FILE")
    schema = sub.add_parser("schema", help="write the JSON Schemas of all service messages and the scenario file")
    schema.add_argument("--out", default="specs/schemas", help="folder to write into (default: specs/schemas)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "schema":
        from pathlib import Path

        from stack.schemas import write

        written = write(Path(args.out))
        print(f"wrote {len(written)} schemas to {args.out}")
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
        simulation = assemble(scenario)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
