"""What one delivered pair costs before any protocol logic or physics runs.

Usage::

    python benchmarks/link_floor.py [--pairs 1000] [--repeat 5] [--json]

Per pair, the fast-forward link path of ``benchmarks/link.py`` (link-level
client, one link, a success in each run of attempts) builds these validated
service messages (pydantic models, the layers' typed interfaces) and runs
these kernel events; this script builds the same messages with the same field
values and runs the same number of empty events, with nothing else:

* at each of the two ends: ``HeraldAttempt`` (link -> physical),
  ``HeraldResult`` (physical -> link), ``LinkOkKeep`` with its
  ``EntanglementId`` (link -> client), ``FreeQubit`` (client -> device; the
  device answers with a ``QubitFreed`` built once per memory slot, so none is
  built per pair);
* once per pair: ``OracleFidelity`` with two ``QubitRef`` s and its
  ``OracleFidelityResult`` (the client reading the pair's fidelity);
* 12 kernel events: at each end the attempt going down, the report to the
  station, the station's outcome coming back, the result going up and the OK
  going to the client (10), and the station's two timers (resolve, herald).

Nested models (the id, the references) are given as fields, as the link
layer and the client do, so each message is one validation pass: 10 per pair.

The station's own messages (``AttemptReport``, ``StationOutcome``) are plain
dataclasses and not counted. Reported: microseconds per pair for the messages,
for the events and for both (the fastest of ``--repeat`` runs), which is the
least a pair can cost on this machine while the layers talk through validated
messages and kernel events. Compare with ``us_per_pair`` of
``benchmarks/link.py --mode fast-forward``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from qnetstack.entity.kernel import Kernel
from qnetstack.link.service import LinkOkKeep
from qnetstack.physical.service import (
    BellState,
    FreeQubit,
    HeraldAttempt,
    HeraldResult,
    OracleFidelity,
    OracleFidelityResult,
)

EVENTS_PER_PAIR = 12
ENDS = ("alice", "bob")


def _messages(sequence: int) -> int:
    """Build one pair's validated messages; returns how many were built."""
    for _end, other in (ENDS, ENDS[::-1]):
        HeraldAttempt(neighbour=other, attempt_id=sequence, max_attempts=100_000)
        HeraldResult(
            neighbour=other,
            attempt_id=sequence,
            success=True,
            handle=0,
            bell_state=BellState.PSI_PLUS,
            herald_sequence=sequence,
            fidelity_estimate=0.95,
            herald_time_ns=1_000,
            attempts=50,
        )
        LinkOkKeep(
            create_id=0,
            origin_node="alice",
            ent_id={"creator": "alice", "peer": "bob", "sequence": sequence},
            purpose_id=0,
            remote_node=other,
            bell_state=BellState.PSI_PLUS,
            goodness=0.95,
            goodness_time_ns=1_000,
            handle=0,
        )
        FreeQubit(handle=0)
    refs = [{"node": "alice", "handle": 0}, {"node": "bob", "handle": 0}]
    OracleFidelity(qubits=refs, bell_state=BellState.PSI_PLUS)
    OracleFidelityResult(fidelity=0.95)
    return 2 * 4 + 2


def _noop(_: int) -> None:
    pass


def measure(pairs: int) -> dict[str, float]:
    start = time.perf_counter()
    built = 0
    for sequence in range(pairs):
        built += _messages(sequence)
    messages_s = time.perf_counter() - start
    kernel = Kernel()
    start = time.perf_counter()
    for sequence in range(pairs):
        for k in range(EVENTS_PER_PAIR):
            kernel.schedule(sequence * EVENTS_PER_PAIR + k, _noop, k)
    kernel.run()
    events_s = time.perf_counter() - start
    return {"messages_per_pair": built / pairs, "messages_s": messages_s, "events_s": events_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="report the fastest of this many runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeat < 1:
        parser.error("--pairs and --repeat must be at least 1")
    runs = [measure(args.pairs) for _ in range(args.repeat)]
    messages = min(r["messages_s"] for r in runs) * 1e6 / args.pairs
    events = min(r["events_s"] for r in runs) * 1e6 / args.pairs
    result = {
        "pairs": args.pairs,
        "validated_messages_per_pair": runs[0]["messages_per_pair"],
        "kernel_events_per_pair": EVENTS_PER_PAIR,
        "us_per_pair_messages": messages,
        "us_per_pair_events": events,
        "us_per_pair_floor": messages + events,
        "wall_s_floor_for_pairs": (messages + events) * args.pairs / 1e6,
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"per pair, before any protocol logic or physics ({args.pairs} pairs, fastest of {args.repeat}):")
        rows = [
            (f"{result['validated_messages_per_pair']:.0f} validated messages", messages),
            (f"{EVENTS_PER_PAIR} kernel events", events),
            ("together", messages + events),
        ]
        for label, value in rows:
            print(f"  {label:24s}{value:8.1f} µs")
        print(f"  ({result['wall_s_floor_for_pairs']:.3f} s for {args.pairs} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
