"""Link-layer benchmark: the whole stack making pairs over one heralded link.

Usage::

    python benchmarks/link.py --km 50 --pairs 1000 --scheme barrett-kok --mode fast-forward \\
        --memory-efficiency 0.75 --detector-efficiency 0.8 --db-per-km 0.2 --seed 1 --json

What runs: a two-node scenario (``alice`` - ``bob``, the station at the
midpoint) built here and assembled by :func:`qnetstack.stack.assemble` with the real
physical and link layers: the ``model-heralding`` physical backend (outcomes
drawn from the scheme's analytic model, :mod:`qnetstack.physical.backends.heralding_backend`) and
the reference EGP (``single-click-egp`` attempt by attempt for ``--mode
per-attempt``, ``fast-forward-egp`` for ``--mode fast-forward``,
:mod:`qnetstack.link.egp`; ``--link-layer`` runs another, e.g. ``multiplexed-egp``). Who asks for the pairs is ``--client``:

* ``link`` (default): :class:`_LinkClient`, in the network layer's place, asks
  for all ``--pairs`` in one type-K CREATE and, when both halves of a pair are
  reported, reads its oracle fidelity from the simulated state and frees both
  qubits: the link layer's own cost;
* ``stack``: the ``swap-asap`` network layer and the ``basic-apps``
  application, asked for ``--pairs`` pairs (a ``PairsRequest``), which reads
  each pair's oracle fidelity once both halves are known: the whole stack.

Schemes and their settings: ``single-click`` (``--alpha``, the bright-state
population; Humphreys et al., Nature 558, 268 (2018)), ``barrett-kok``
(``--visibility``, the two-photon visibility; Barrett & Kok, PRA 71,
060310(R) (2005)), ``midpoint-source`` (the default SPDC source of
:class:`qnetstack.physical.schemes.midpoint_source.MidpointSourceLinkParams`; Jones et al.,
New J. Phys. 18, 083015 (2016)). ``--memory-efficiency`` is each node's
``emission_efficiency``; memories hold ``--qubits`` qubits with
``--t2-ns`` (default 1 s) and optional ``--t1-ns``.

Reported (``--json``: one object on stdout):

* ``pairs``, ``attempts``, ``success_probability`` (pairs per attempt, from the
  run's trace) and ``analytic_success_probability`` (the scheme model's
  ``success_probability()``);
* ``mean_goodness`` (the link's fidelity estimate, delivered with each pair)
  and ``mean_oracle_fidelity`` (the simulated state's fidelity, read by the
  application);
* ``sim_time_ns`` (simulated time at the end of the run), ``wall_s``
  (``time.perf_counter`` around assembly and run, imports excluded; with
  ``--repeat N`` the fastest of N identical runs),
  ``us_per_attempt`` and ``us_per_pair`` (``wall_s`` divided by each).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from qnetstack.link.service import LinkCreate, LinkError, LinkOkKeep
from qnetstack.physical.schemes.barrett_kok import BarrettKokModel
from qnetstack.physical.schemes.midpoint_source import MidpointSourceModel
from qnetstack.physical.schemes.single_click import SingleClickModel
from qnetstack.physical.service import FreeQubit, OracleFidelity
from qnetstack.stack import assemble
from qnetstack.stack.probes import LinkClient, NoApplication
from qnetstack.stack.scenario import Scenario, parse_scenario

__all__ = ["SCHEMES", "MODES", "CLIENTS", "build_scenario", "analytic_success_probability", "run", "main"]

SCHEMES = ("single-click", "barrett-kok", "midpoint-source")
MODES = {"per-attempt": "single-click-egp", "fast-forward": "fast-forward-egp"}
CLIENTS = ("link", "stack")
_MODELS = {"single-click": SingleClickModel, "barrett-kok": BarrettKokModel, "midpoint-source": MidpointSourceModel}


def build_scenario(
    *,
    km: float,
    pairs: int,
    scheme: str = "barrett-kok",
    mode: str = "fast-forward",
    memory_efficiency: float = 0.75,
    detector_efficiency: float = 0.8,
    dark_count_probability: float = 0.0,
    db_per_km: float = 0.2,
    alpha: float | None = None,
    visibility: float | None = None,
    qubits: int = 4,
    t1_ns: int | None = None,
    t2_ns: int | None = 1_000_000_000,
    seed: int = 1,
    link_layer: str | None = None,
) -> Scenario:
    """The two-node scenario the benchmark runs (validated like a scenario file).

    ``link_layer``: the link layer's registry name (or ``module:Class``);
    default the reference EGP of ``mode`` (:data:`MODES`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if alpha is not None and scheme != "single-click":
        raise ValueError("--alpha is the single-click bright-state population; other schemes have none")
    if visibility is not None and scheme != "barrett-kok":
        raise ValueError("--visibility is the Barrett-Kok two-photon visibility")
    hardware = {
        "memory": {"num_qubits": qubits, "t1_ns": t1_ns, "t2_ns": t2_ns},
        "emission_efficiency": memory_efficiency,
    }
    link: dict[str, Any] = {
        "a": "alice",
        "b": "bob",
        "length_km": km,
        "fibre": {"db_per_km": db_per_km},
        "detector": {"efficiency": detector_efficiency, "dark_count_probability": dark_count_probability},
        "scheme": scheme,
    }
    if alpha is not None:
        link["bright_state_population"] = alpha
    if visibility is not None:
        link["scheme_params"] = {"two_photon_visibility": visibility}
    return parse_scenario(
        {
            "name": f"link-benchmark-{scheme}-{km:g}km",
            "seed": seed,
            "nodes": [{"name": "alice", "hardware": hardware}, {"name": "bob", "hardware": hardware}],
            "links": [link],
            "implementations": {"physical": "model-heralding", "link": link_layer or MODES[mode]},
            "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": pairs}}],
            "stop": {"max_events": None},
        }
    )


class _PairLedger:
    """What the link-level client saw: one entry per delivered pair."""

    def __init__(self, pairs: int) -> None:
        self.pairs = pairs
        self.clients: dict[str, _LinkClient] = {}
        self.halves: dict[Any, tuple[str, LinkOkKeep]] = {}
        self.goodness: list[float] = []
        self.oracle: list[float] = []
        self.errors: list[str] = []


class _LinkClient(LinkClient):
    """The link-level client: alice asks for all pairs in one CREATE (type K).

    When both halves of a pair are reported (both OKs come at the herald's
    arrival, the same instant at the two ends of a symmetric link), the second
    end reads the pair's oracle fidelity from the simulated state, then both
    ends free their qubit. The ends share a ledger instead of sending each
    other messages: this is a measuring harness, not a protocol.
    """

    ledger: _PairLedger  # set per run on a subclass, see run()

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(ctx, topology)
        self.ledger.clients[ctx.node] = self
        self.creates = {"alice": [LinkCreate(remote_node="bob", number=self.ledger.pairs)]}

    def on_link(self, msg: Any) -> None:
        if isinstance(msg, LinkError):
            self.ledger.errors.append(f"{msg.code.value} {msg.detail}")
            return
        if not isinstance(msg, LinkOkKeep):
            super().on_link(msg)
        other = self.ledger.halves.pop(msg.ent_id, None)
        if other is None:
            self.ledger.halves[msg.ent_id] = (self.ctx.node, msg)
            return
        other_node, other_ok = other
        # the references as fields: validated inside OracleFidelity's own validation (one pass)
        refs = [{"node": self.ctx.node, "handle": msg.handle}, {"node": other_node, "handle": other_ok.handle}]
        read = self.ctx.device.execute(OracleFidelity(qubits=refs, bell_state=msg.bell_state))
        self.ledger.oracle.append(read.fidelity)
        self.ledger.goodness.append(msg.goodness)
        self.free(msg.handle)
        self.ledger.clients[other_node].free(other_ok.handle)

    def free(self, handle: int) -> None:
        self.ctx.device.execute(FreeQubit(handle=handle))


def analytic_success_probability(scenario: Scenario) -> float:
    """Per-attempt success probability of the scenario's link from the scheme's model."""
    (link,) = scenario.links
    hardware = {n.name: n.hardware for n in scenario.nodes}
    model = _MODELS[link.scheme](link.physics(), hardware[link.a], hardware[link.b])
    return float(model.success_probability())


def run(scenario: Scenario, mode: str, repeat: int = 1, client: str = "link") -> dict[str, Any]:
    """Assemble and run ``scenario`` ``repeat`` times (the runs are identical: same
    seed); the figures listed in the module docstring, with the fastest wall time
    (the minimum filters out time taken by other processes).

    ``client="link"``: the link-level client (:class:`_LinkClient`) asks the
    link layer for the pairs directly; ``client="stack"``: the scenario's own
    network and application layers (``swap-asap``, ``basic-apps``) do.
    """
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
    (app,) = scenario.applications
    wall = math.inf
    for _ in range(max(1, repeat)):
        ledger = _PairLedger(app.request.number)
        if client == "link":
            impls = {"network": type("LinkClient", (_LinkClient,), {"ledger": ledger}), "application": NoApplication}
            to_run = scenario.model_copy(update={"applications": []})  # the client asks, not an application
        else:
            impls, to_run = {}, scenario
        start = time.perf_counter()
        result = assemble(to_run, impls).run()
        wall = min(wall, time.perf_counter() - start)
    (link,) = scenario.links
    stats = result.links[0] if result.links else None
    attempts = stats.attempts if stats else 0
    if client == "link":
        pairs = len(ledger.oracle)
        goodness = sum(ledger.goodness) / pairs if pairs else None
        oracle = sum(ledger.oracle) / pairs if pairs else None
        spread = math.sqrt(sum((f - oracle) ** 2 for f in ledger.oracle) / (pairs - 1) / pairs) if pairs > 1 else None
    else:
        pairs = result.pairs.count if result.pairs else 0
        goodness = result.pairs.mean_goodness if result.pairs else None
        oracle = result.pairs.mean_oracle_fidelity if result.pairs else None
        spread = result.pairs.stderr_oracle_fidelity if result.pairs else None
    return {
        "scheme": link.scheme,
        "mode": mode,
        "link_layer": scenario.implementations.link,
        "client": client,
        "km": link.length_km,
        "seed": scenario.seed,
        "pairs": pairs,
        "attempts": attempts,
        "success_probability": stats.success_probability if stats else None,
        "success_probability_stderr": stats.success_probability_stderr if stats else None,
        "analytic_success_probability": analytic_success_probability(scenario),
        "mean_goodness": goodness,
        "mean_oracle_fidelity": oracle,
        "stderr_oracle_fidelity": spread,
        "sim_time_ns": result.sim_time_ns,
        "events": result.events,
        "wall_s": wall,
        "us_per_attempt": wall * 1e6 / attempts if attempts else None,
        "us_per_pair": wall * 1e6 / pairs if pairs else None,
    }


def _summary(r: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return "\n".join(
        [
            f"{r['scheme']} over {r['km']:g} km, {r['mode']}, {r['link_layer']}, client {r['client']} (seed {r['seed']})",
            f"  pairs                 {r['pairs']}",
            f"  attempts              {r['attempts']}",
            f"  success probability   {fmt(r['success_probability'], '.5g')} ± {fmt(r['success_probability_stderr'], '.2g')}"
            f"   (model {r['analytic_success_probability']:.5g})",
            f"  mean goodness         {fmt(r['mean_goodness'], '.5f')}",
            f"  mean oracle fidelity  {fmt(r['mean_oracle_fidelity'], '.5f')} ± {fmt(r['stderr_oracle_fidelity'], '.2g')}",
            f"  simulated time        {r['sim_time_ns'] / 1e6:.3f} ms   ({r['events']} events)",
            f"  wall time             {r['wall_s']:.4f} s   {fmt(r['us_per_attempt'], '.2f')} µs/attempt"
            f"   {fmt(r['us_per_pair'], '.1f')} µs/pair",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--km", type=float, default=50.0, help="link length (km)")
    parser.add_argument("--pairs", type=int, default=1000, help="pairs the application asks for")
    parser.add_argument("--scheme", choices=SCHEMES, default="barrett-kok")
    parser.add_argument("--mode", choices=tuple(MODES), default="fast-forward")
    parser.add_argument("--memory-efficiency", type=float, default=0.75, help="each node's emission_efficiency")
    parser.add_argument("--detector-efficiency", type=float, default=0.8)
    parser.add_argument("--dark-count-probability", type=float, default=0.0)
    parser.add_argument("--db-per-km", type=float, default=0.2)
    parser.add_argument("--alpha", type=float, default=None, help="single-click bright-state population")
    parser.add_argument("--visibility", type=float, default=None, help="Barrett-Kok two-photon visibility")
    parser.add_argument("--qubits", type=int, default=4, help="memory qubits per node")
    parser.add_argument("--t1-ns", type=int, default=None)
    parser.add_argument("--t2-ns", type=int, default=1_000_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="run this many times, report the fastest wall time")
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="link",
        help="who asks for the pairs: 'link' a client directly on the link layer (default), 'stack' the network and application layers",
    )
    parser.add_argument(
        "--link-layer",
        default=None,
        help="link layer to run (registry name or module:Class), e.g. multiplexed-egp; "
        "default: single-click-egp for per-attempt, fast-forward-egp for fast-forward",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    args = parser.parse_args(argv)
    try:
        scenario = build_scenario(
            km=args.km,
            pairs=args.pairs,
            scheme=args.scheme,
            mode=args.mode,
            memory_efficiency=args.memory_efficiency,
            detector_efficiency=args.detector_efficiency,
            dark_count_probability=args.dark_count_probability,
            db_per_km=args.db_per_km,
            alpha=args.alpha,
            visibility=args.visibility,
            qubits=args.qubits,
            t1_ns=args.t1_ns,
            t2_ns=args.t2_ns,
            seed=args.seed,
            link_layer=args.link_layer,
        )
    except ValueError as exc:  # ScenarioError is a ValueError
        parser.error(str(exc))
    result = run(scenario, args.mode, args.repeat, args.client)
    print(json.dumps(result, sort_keys=True) if args.json else _summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
