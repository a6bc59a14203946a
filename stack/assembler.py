"""The assembler: topology + one implementation per layer -> a runnable network.

Steps, in order:

1. resolve each layer's implementation (registry name, ``module:Class`` or class);
2. check that every layer gets what it needs from the layer below: each
   implementation declares ``PROVIDES`` and ``REQUIRES`` (sets of capability
   names such as ``"link:K"``); a missing one is reported by name;
3. expand every link ``a - b`` into ``a - station - b`` with the heralding
   station at the midpoint (a node named ``a~b``); the classical delay
   between two nodes is the shortest fibre path, found when they first talk
   (``qnetstack.stack.runtime.FibreDelays``);
4. check that the scenario can be served at all (:func:`check_servable`):
   every link can herald, and every request has memory at its ends and a
   path whose repeaters can hold two qubits;
5. build the entities bottom-up on every node and hand each its context;
6. queue the scenario's application requests.

Constructor conventions (what an implementation must accept):

* physical: a backend object with ``node_entity(ctx, hardware, links)`` and
  ``station_entity(ctx, ends, params, hardware)``; ``params`` is the link's
  parameter model for its scheme, and the backend class may declare
  ``SCHEMES`` (the scheme names it runs; default: single-click only);
* link: ``Impl(ctx)``; a scenario's ``link.reliable`` set is passed as
  ``reliable=True`` (refused, naming the field, by an implementation that takes
  no ``reliable``);
* network: ``Impl(ctx, topology)`` with ``topology`` a networkx graph of the
  end nodes and repeaters: one frozen graph (``networkx.freeze``) shared by
  every node, to read and never change. Every edge (a link) carries
  ``length_km`` and, when the physical device of the link's first end
  describes its links (``capabilities()``, a ``HeraldingLink`` per
  neighbour), what it announces there, so the figures are the backend's
  own, at the link's configured operating point: ``fidelity`` (expected
  fidelity of a heralded pair), ``success_probability`` (per attempt),
  ``attempt_period_ns`` (one attempt, emission to herald) and
  ``classical_delay_ns`` (one way, node to node); a single-click link that
  announces settings of α it may be run at also carries them as
  ``operating_points``, ``(fidelity, success_probability)`` each. Every node whose device
  says how its memory decoheres (``capabilities().memory``) carries ``t1_ns``
  and ``t2_ns`` (each only when known). A scenario's
  ``routing.metric`` other than ``length_km`` is passed as
  ``Impl(ctx, topology, metric=...)`` (an implementation that takes no
  ``metric`` is refused then, naming the field); a scenario's ``network.policy``
  (and ``network.policy_options``) is passed as ``policy=...`` (and
  ``policy_options=...``), likewise only when given and refused, naming the
  field, by an implementation that takes no ``policy``; a scenario's
  ``network.reliable`` set is passed as ``reliable=True``, and refused the same way;
* application: ``Impl(ctx)``.
"""

from __future__ import annotations

import gc
import inspect
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import networkx as nx

from qnetstack.application.bb84_decoy import PulseQkdApplication
from qnetstack.application.service import AppDone, AppError, AppErrorCode
from qnetstack.entity import Entity
from qnetstack.network.routing import DEFAULT_METRIC, EDGE_FIGURES
from qnetstack.physical.params import LinkSide, fibre_delay_ns
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.physical.service import CAP_FAULTS, CAP_PULSES
from qnetstack.stack import registry
from qnetstack.stack.explain import explain_open_requests, memory_capacity
from qnetstack.stack.faults import Faults
from qnetstack.stack.messages import cut, shown
from qnetstack.stack.pulses import NoPulses, PulsePort, remember_ports
from qnetstack.stack.report import RunResult, summarise
from qnetstack.stack.runner import Limits, RunProgress, default_stall_spans, describe_waits, run_network
from qnetstack.stack.runtime import LAYERS, FibreDelays, Network
from qnetstack.stack.scenario import AppSpec, Implementations, LinkSpec, NodeSpec, Scenario, ScenarioError, parse_scenario

__all__ = [
    "AssemblyError",
    "MIN_HERALD_CHANCE",
    "Simulation",
    "assemble",
    "check_servable",
    "default_physical",
    "scenario_from_graph",
    "station_name",
]


class AssemblyError(ScenarioError):
    """The chosen implementations do not fit together (or do not exist)."""


def station_name(a: str, b: str) -> str:
    return f"{a}~{b}"


@contextmanager
def collecting_less() -> Iterator[None]:
    """Python's cyclic garbage collector, run less often while a network is built or run.

    Assembly and a run make many small objects (messages, events, sessions) next to a
    large heap that lives as long as the network (entities, states, caches). At CPython's
    default thresholds the collector scans that heap every few hundred allocations and
    finds almost nothing to free: about a tenth of a 1000-node run. Here the objects that
    exist already are left out of the scans (``gc.freeze``) and the youngest generation is
    collected after 20,000 allocations rather than 700; cycles are still freed, a little
    later. The collector's settings are restored after."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


class Simulation:
    """An assembled network, ready to run once."""

    def __init__(self, scenario: Scenario, network: Network, backend: Any) -> None:
        self.scenario = scenario
        self.network = network
        self.backend = backend
        self._ran = False

    def run(self, *, wall_limit_s: float | None = None, on_progress: Callable[[RunProgress], None] | None = None) -> RunResult:
        """Run to a stated end and report it (``RunResult.status``: done, failed or stalled).

        The scenario's ``stop`` bounds the run (``qnetstack.stack.runner``);
        ``wall_limit_s`` overrides its ``wall_limit_s``. An exception raised
        by an entity ends the run as failed, with the node, layer, simulated
        time and message in ``RunResult.end.error``; it is not raised here.
        ``on_progress`` is called between chunks of events (for a progress
        display)."""
        if self._ran:
            raise RuntimeError("a Simulation runs once; assemble again for another run")
        self._ran = True
        stop = self.scenario.stop
        # the default stall spans read the links' capabilities, which exist before start
        stall_ns, stall_events = default_stall_spans(self.network, self.scenario)
        limits = Limits(
            max_time_ns=stop.max_time_ns,
            max_events=stop.max_events,
            stall_after_ns=stop.stall_after_ns or stall_ns,
            stall_after_events=stop.stall_after_events or stall_events,
            wall_limit_s=wall_limit_s if wall_limit_s is not None else stop.wall_limit_s,
        )
        with collecting_less():
            end = run_network(self.network, self.scenario, limits, on_progress)
        waits = None
        if end.status == "stalled":
            waits = self._explain(closed_too=False)
        elif end.reason == "busy":
            waits = self._explain(closed_too=True)
        return summarise(self.scenario, self.network, end, waits)

    def _explain(self, closed_too: bool) -> dict[tuple[str, int], list[str]]:
        """What each open scenario request waits for, from the layers' ``describe_waits``
        (``closed_too``: also closed requests whose sessions are still alive)."""
        network = self.network
        closed = {
            (node, msg.request_id)
            for _, node, msg in network.user_messages
            if isinstance(msg, AppDone) or (isinstance(msg, AppError) and msg.code is not AppErrorCode.DUPLICATE_ID)
        }
        now = network.kernel.now_ns
        waiting = [
            (a.node, a.request.request_id) for a in self.scenario.applications if closed_too or (a.node, a.request.request_id) not in closed
        ]
        unsubmitted = {(a.node, a.request.request_id): a.at_ns for a in self.scenario.applications if a.at_ns > now}
        nodes = [n.name for n in self.scenario.nodes]
        try:
            answers = describe_waits(network, nodes)
        except Exception as exc:  # a layer's introspection failed: say so rather than lose the report
            return {key: [f"the layers could not be asked what they wait for: {type(exc).__name__}: {exc}"] for key in waiting}
        user_of_net = {net: user for net, user in network.net_requests.items()}
        explained = explain_open_requests(
            [k for k in waiting if k not in unsubmitted], answers, user_of_net, memory_capacity(network, nodes), live_only=closed_too
        )
        for key, at_ns in unsubmitted.items():
            explained[key] = [f"not submitted: its at_ns ({at_ns / 1e6:.6f} ms) is after the run ended"]
        return explained


def assemble(
    topology: Scenario | nx.Graph,
    implementations: Implementations | dict[str, Any] | None = None,
    *,
    seed: int | None = None,
    applications: list[AppSpec] | None = None,
) -> Simulation:
    """Build a runnable network from a scenario or a networkx graph.

    With a graph, nodes may carry ``hardware`` (a ``NodeHardware``) and edges
    need ``length_km`` and may carry ``fibre``, ``detector``, ``scheme``,
    ``bright_state_population`` and ``scheme_params``. ``implementations`` maps layer -> registered
    name, ``module:Class`` or class; it overrides the scenario's choice.
    """
    scenario = topology if isinstance(topology, Scenario) else scenario_from_graph(topology)
    overrides: dict[str, Any] = {}
    if isinstance(implementations, Implementations):
        overrides = implementations.model_dump()
    elif implementations:
        overrides = dict(implementations)
    unknown_layers = set(overrides) - set(LAYERS)
    if unknown_layers:
        raise AssemblyError("implementations", f"unknown layer(s) {shown(sorted(unknown_layers))}; layers are {list(LAYERS)}")
    chosen = {layer: overrides.get(layer, getattr(scenario.implementations, layer)) for layer in LAYERS}
    if chosen["physical"] is None:
        chosen["physical"] = default_physical(scenario)
    update: dict[str, Any] = {}
    if seed is not None:
        update["seed"] = seed
    if applications is not None:
        # validated like a scenario file's (ids numbered and checked, nodes known)
        fields = {name: getattr(scenario, name) for name in Scenario.model_fields}
        scenario = parse_scenario({**fields, "applications": applications}, allow_import=True)
    if update:
        scenario = scenario.model_copy(update=update)

    impls = {}
    for layer in LAYERS:
        try:
            impls[layer] = registry.resolve(layer, chosen[layer])
        except registry.RegistryError as exc:
            raise AssemblyError(f"implementations.{layer}", str(exc)) from None
    _check_fit(impls, chosen, scenario)
    _check_schemes(impls["physical"], chosen["physical"], scenario)
    _check_routing(impls["network"], chosen["network"], scenario)
    _check_policy(impls["network"], chosen["network"], scenario)
    _check_reliable(impls["network"], chosen["network"], scenario)
    _check_link_reliable(impls["link"], chosen["link"], scenario)
    _check_faults(impls["physical"], chosen["physical"], scenario)
    _check_pulses(impls["physical"], chosen["physical"], scenario)
    with collecting_less():
        check_servable(scenario)
        return _build(scenario, impls)


def default_physical(scenario: Scenario) -> str:
    """The physical backend when the scenario names none: the QuTiP reference
    when every link is single-click with an ideal station (no station options),
    else the model-driven backend."""
    if all(link.scheme == "single-click" and not link.has_station_options for link in scenario.links):
        return "qutip-single-click"
    return "model-heralding"


def _check_schemes(backend: Any, name: Any, scenario: Scenario) -> None:
    # A backend that declares no SCHEMES predates them: it runs single-click only.
    runs = frozenset(getattr(backend, "SCHEMES", None) or {"single-click"})
    for i, link in enumerate(scenario.links):
        if link.scheme not in runs:
            raise AssemblyError(
                f"links.{i}.scheme",
                f"physical {shown(name)} does not run the {link.scheme} scheme (it runs: {', '.join(sorted(runs))}); "
                "leave implementations.physical out or choose model-heralding",
            )


def _accepts(network: Any, argument: str) -> bool:
    """Whether the network class's constructor takes ``argument`` (by name or ``**kwargs``);
    True when its signature cannot be read: the call itself will say."""
    try:
        parameters = inspect.signature(network).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _check_routing(network: Any, name: Any, scenario: Scenario) -> None:
    # the metric is passed only when it is not the default, so a network layer that routes its own way still fits
    if scenario.routing.metric != DEFAULT_METRIC and not _accepts(network, "metric"):
        raise AssemblyError(
            "routing.metric",
            f"network {shown(name)} takes no metric argument, so it cannot route by {scenario.routing.metric}; "
            f"leave routing.metric at {DEFAULT_METRIC}",
        )


def _check_policy(network: Any, name: Any, scenario: Scenario) -> None:
    # like the metric: passed only when the scenario names a policy
    if scenario.network.policy is None:
        return
    for field in ("policy", "policy_options") if scenario.network.policy_options else ("policy",):
        if not _accepts(network, field):
            raise AssemblyError(
                f"network.{field}",
                f"network {shown(name)} takes no {field} argument, so it cannot run policy {shown(scenario.network.policy)}; "
                "leave network.policy out",
            )


def _check_reliable(network: Any, name: Any, scenario: Scenario) -> None:
    # like the policy: passed only when the scenario sets it
    if scenario.network.reliable and not _accepts(network, "reliable"):
        raise AssemblyError(
            "network.reliable",
            f"network {shown(name)} takes no reliable argument, so it cannot make its messages reliable; leave network.reliable out",
        )


def _check_link_reliable(link: Any, name: Any, scenario: Scenario) -> None:
    if scenario.link.reliable and not _accepts(link, "reliable"):
        raise AssemblyError(
            "link.reliable",
            f"link {shown(name)} takes no reliable argument, so it cannot make its messages reliable; leave link.reliable out",
        )


def _link_options(scenario: Scenario) -> dict[str, Any]:
    """The keyword arguments of every link entity beyond ``ctx``: only what the scenario sets."""
    return {"reliable": True} if scenario.link.reliable else {}


def _network_options(scenario: Scenario) -> dict[str, Any]:
    """The keyword arguments of every network entity beyond ``(ctx, topology)``: only what
    the scenario sets, so an implementation that takes none of them still fits."""
    options: dict[str, Any] = {}
    if scenario.routing.metric != DEFAULT_METRIC:
        options["metric"] = scenario.routing.metric
    if scenario.network.policy is not None:
        options["policy"] = scenario.network.policy
        if scenario.network.policy_options:
            options["policy_options"] = dict(scenario.network.policy_options)
    if scenario.network.reliable:
        options["reliable"] = True
    return options


def _check_faults(backend: Any, name: Any, scenario: Scenario) -> None:
    # cuts and crashes are handed to the physical layer, which must say it takes them
    faults = scenario.faults
    if (faults.link_cuts or faults.node_crashes) and CAP_FAULTS not in frozenset(getattr(backend, "PROVIDES", ())):
        field = "faults.link_cuts" if faults.link_cuts else "faults.node_crashes"
        raise AssemblyError(field, f"physical {shown(name)} does not take faults (it does not provide {CAP_FAULTS!r})")


def _check_pulses(backend: Any, name: Any, scenario: Scenario) -> None:
    if scenario.pulse_links and CAP_PULSES not in _capabilities(backend, "physical", name, "PROVIDES"):
        raise AssemblyError(
            "implementations.physical",
            f"{shown(name)} does not simulate pulse trains ({CAP_PULSES}), which the scenario's pulse_links need",
        )


def scenario_from_graph(graph: nx.Graph, **fields: Any) -> Scenario:
    """The scenario that a networkx graph describes (see :func:`assemble`)."""
    nodes = []
    for name, data in graph.nodes(data=True):
        spec: dict[str, Any] = {"name": str(name)}
        if "hardware" in data:
            spec["hardware"] = data["hardware"]
        nodes.append(spec)
    links = []
    for a, b, data in graph.edges(data=True):
        if "length_km" not in data:
            raise ScenarioError(f"edge {cut(str(a), 40)}-{cut(str(b), 40)}", "missing length_km")
        link = {"a": str(a), "b": str(b)}
        link.update({k: v for k, v in data.items() if k in LinkSpec.model_fields})
        links.append(link)
    return parse_scenario({"nodes": nodes, "links": links, **fields}, allow_import=True)


# A link is refused when not even one herald is likely in 2**63 attempts (more
# than any run makes: at one attempt per nanosecond, 292 years): p * 2**63 below
# this. Zero (detector efficiency 0, no light, fibre loss underflowing to 0) is
# the common case; a link this weak otherwise is as certainly dead in practice.
MIN_HERALD_CHANCE = 1e-6


def check_servable(scenario: Scenario) -> None:
    """Refuse, before anything runs, what can never be served:

    * a link whose heralding success probability per attempt, from its scheme's
      analytic model, is 0 (or too small for one herald, :data:`MIN_HERALD_CHANCE`);
    * a request whose end node has no memory qubit (it could not hold its half);
    * a teleport request whose sender has fewer than 2 memory qubits (it Bell-measures
      the input state together with its half of a pair; Bennett et al., PRL 70, 1895, 1993);
    * a request whose ends no chain of links joins, or whose every path passes a
      repeater with fewer than 2 memory qubits (a repeater holds both halves
      before it swaps them; Briegel et al., PRL 81, 5932, 1998).

    Only certainties are refused: a request the chosen network layer routes
    badly, or a link too slow for the stop condition, is the run's to report.
    """
    nodes = {n.name: n for n in scenario.nodes}
    success: dict[tuple, float] = {}  # by what the model is built from: links mostly share it
    for i, link in enumerate(scenario.links):
        _check_link_heralds(link, i, nodes, success)
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((link.a, link.b) for link in scenario.links)
    # two nodes are joined by a chain of links when they are in one connected component:
    # found once for all requests (a search per request made this quadratic in the nodes)
    component = {node: i for i, members in enumerate(nx.connected_components(graph)) for node in members}
    every_node_can_swap = all(node.hardware.memory.num_qubits >= 2 for node in nodes.values())
    for i, app in enumerate(scenario.applications):
        head, tail = app.node, app.request.remote_node
        request = f"request {cut(head, 40)}#{app.request.request_id}"
        for end in (head, tail):
            if nodes[end].hardware.memory.num_qubits == 0:
                raise AssemblyError(f"applications.{i}", f"{request}: node {shown(end)} has no memory qubit to hold its half of a pair")
        if app.request.kind == "teleport" and nodes[head].hardware.memory.num_qubits < 2:
            raise AssemblyError(
                f"applications.{i}",
                f"{request}: a teleport sender needs 2 memory qubits (the state and its half of a pair); "
                f"{shown(head)} has {nodes[head].hardware.memory.num_qubits}",
            )
        if component[head] != component[tail]:
            raise AssemblyError(f"applications.{i}", f"{request}: no chain of links joins {shown(head)} and {shown(tail)}")
        if every_node_can_swap:
            continue  # the paths found above all pass repeaters that can swap
        usable = graph.subgraph(n for n in graph if n in (head, tail) or nodes[n].hardware.memory.num_qubits >= 2)
        if not nx.has_path(usable, head, tail):
            weak = sorted(n for n in graph if n not in (head, tail) and nodes[n].hardware.memory.num_qubits < 2)
            raise AssemblyError(
                f"applications.{i}",
                f"{request}: every path to {shown(tail)} passes a repeater with fewer than 2 memory qubits "
                f"({cut(', '.join(weak), 60)}); a repeater holds two halves before it swaps",
            )


def _check_link_heralds(link: LinkSpec, index: int, nodes: dict[str, NodeSpec], known: dict[tuple, float]) -> None:
    entry = scheme_named(link.scheme)
    if entry is None:  # the scenario refuses it already; kept for scenarios built without validation
        raise AssemblyError(f"links.{index}.scheme", f"scheme {link.scheme!r} is not available in this build")
    params = link.physics()
    alpha = entry.link_alpha(params)  # the configured α is the largest a link layer may use
    key = (entry, params, nodes[link.a].hardware, nodes[link.b].hardware, alpha)
    try:
        p, shared = known.get(key), True
    except TypeError:  # parameters that cannot be hashed: not shared
        p, shared = None, False
    if p is None:
        try:
            p = entry.model(params, nodes[link.a].hardware, nodes[link.b].hardware, alpha, alpha).success_probability()
        except (ValueError, ArithmeticError) as exc:
            raise AssemblyError(f"links.{index}", f"link {link.name}: its {link.scheme} model fails: {cut(str(exc), 100)}") from None
        if shared:
            known[key] = p
    if not p * 2**63 >= MIN_HERALD_CHANCE:
        raise AssemblyError(f"links.{index}", f"link {cut(link.name, 80)} never heralds: {_why_dead(link, params, nodes, p)}")


def _why_dead(link: LinkSpec, params: Any, nodes: dict[str, NodeSpec], p: float) -> str:
    causes = []
    if link.detector.efficiency == 0:
        causes.append("detector.efficiency is 0")
    if link.bright_state_population == 0:
        causes.append("bright_state_population is 0")
    dark = [end for end in (link.a, link.b) if nodes[end].hardware.emission_efficiency == 0]
    if dark and link.scheme != "midpoint-source":  # there the photons come from the station's source
        causes.append(f"emission_efficiency is 0 at {cut(' and '.join(dark), 60)}")
    source = getattr(params, "source", None)  # the midpoint source's settings
    for name in ("mean_pair_number", "heralding_efficiency"):
        if getattr(source, name, None) == 0:
            causes.append(f"the source's {name} is 0")
    loss_db = link.fibre.db_per_km * link.length_km / 2
    if loss_db >= 100:
        causes.append(f"{loss_db:.3g} dB of fibre loss to the station")
    why = "; ".join(causes) or "its scheme's parameters"
    if p > 0:
        return f"success probability {p:.2g} per attempt ({why}), under one chance in a million of a herald in 2**63 attempts"
    return f"success probability 0 per attempt ({why})"


def _capabilities(impl: Any, layer: str, name: Any, attr: str) -> frozenset[str]:
    value = getattr(impl, attr, None)
    if value is None:
        raise AssemblyError(f"implementations.{layer}", f"{shown(name)} does not declare {attr} (a set of capability names)")
    return frozenset(value)


def _check_fit(impls: dict[str, Any], chosen: dict[str, Any], scenario: Scenario) -> None:
    provides = {layer: _capabilities(impls[layer], layer, chosen[layer], "PROVIDES") for layer in LAYERS}
    for index, layer in enumerate(LAYERS[1:], start=1):
        below = LAYERS[index - 1]
        offered = provides[below] | provides["physical"]
        missing = _capabilities(impls[layer], layer, chosen[layer], "REQUIRES") - offered
        if missing:
            raise AssemblyError(
                f"implementations.{layer}",
                f"{layer} {shown(chosen[layer])} needs {sorted(missing)}, which {below} {shown(chosen[below])} "
                f"does not provide (it provides {sorted(provides[below])})",
            )
    for i, app in enumerate(scenario.applications):
        needed = f"application:{app.request.kind}"
        if needed not in provides["application"]:
            raise AssemblyError(
                f"applications.{i}.request.kind",
                f"application {shown(chosen['application'])} does not serve {shown(app.request.kind)} requests",
            )


def _build(scenario: Scenario, impls: dict[str, Any]) -> Simulation:
    nodes: dict[str, NodeSpec] = {n.name: n for n in scenario.nodes}
    fibre_graph = nx.Graph()
    fibre_graph.add_nodes_from(nodes)
    for link in scenario.links:
        station = station_name(link.a, link.b)
        half_delay = fibre_delay_ns(link.length_km / 2, link.fibre.refractive_index)
        fibre_graph.add_edge(link.a, station, delay_ns=half_delay)
        fibre_graph.add_edge(station, link.b, delay_ns=half_delay)
    pulse_links = [p.pulse_link() for p in scenario.pulse_links]
    for pulse_spec, pulse_link in zip(scenario.pulse_links, pulse_links):
        # the classical messages of a decoy-BB84 session travel along the pulse link's fibre
        delay = round(pulse_link.fibre.delay_ns())
        ends = (pulse_spec.sender, pulse_spec.receiver)
        if not fibre_graph.has_edge(*ends) or fibre_graph.edges[ends]["delay_ns"] > delay:
            fibre_graph.add_edge(*ends, delay_ns=delay)

    network = Network(scenario.seed, FibreDelays(fibre_graph), keep_trace=scenario.keep_trace)
    backend = impls["physical"]()

    sides: dict[str, dict[str, Any]] = {name: {} for name in nodes}
    for link in scenario.links:
        station = station_name(link.a, link.b)
        physics = link.physics()
        sides[link.a][link.b] = LinkSide(station=station, params=physics, neighbour_hardware=nodes[link.b].hardware)
        sides[link.b][link.a] = LinkSide(station=station, params=physics, neighbour_hardware=nodes[link.a].hardware)
        ctx = network.make_context(station, "physical")
        ends = (link.a, link.b)
        hardware = {link.a: nodes[link.a].hardware, link.b: nodes[link.b].hardware}
        network.add_entity(ctx, _checked(backend.station_entity(ctx, ends, physics, hardware), "physical", station))

    # Every node's device first: the topology's link figures are what the devices announce.
    # (Each entity draws from its own random stream and the layers of a node keep their order,
    # so building the devices ahead of the layers above changes no run.)
    devices = {}
    for name, spec in nodes.items():
        ctx = network.make_context(name, "physical")
        devices[name] = _checked(backend.node_entity(ctx, spec.hardware, sides[name]), "physical", name)
        network.add_entity(ctx, devices[name])
    topology = network.topology = _topology(scenario, devices)

    network_options = _network_options(scenario)
    link_options = _link_options(scenario)
    ports = pulse_ports(scenario, network, backend, pulse_links)
    for name in nodes:
        ctx = network.make_context(name, "link")
        network.add_entity(ctx, _checked(impls["link"](ctx, **link_options), "link", name))
        ctx = network.make_context(name, "network")
        network.add_entity(ctx, _checked(impls["network"](ctx, topology, **network_options), "network", name))
        ctx = network.make_context(name, "application")
        network.add_entity(ctx, _application(impls["application"], ctx, ports.get(name)))

    for app in scenario.applications:
        network.submit(app.node, app.request, delay_ns=app.at_ns)
    if scenario.faults.any:
        _plan_faults(scenario, network, impls, topology, network_options, ports)
    return Simulation(scenario, network, backend)


def pulse_ports(scenario: Scenario, network: Network, backend: Any, pulse_links: list[Any]) -> dict[str, Any]:
    """Per node at either end of a pulse link, the port its application sends pulse trains through
    (``qnetstack.stack.pulses``; a node that only receives gets one that sends nothing)."""
    ports: dict[str, Any] = {}
    by_sender: dict[str, list[Any]] = {}
    adversaries: dict[str, dict[str, Any]] = {}
    for spec, link in zip(scenario.pulse_links, pulse_links):
        by_sender.setdefault(spec.sender, []).append(link)
        ports.setdefault(spec.receiver, NoPulses())
        if spec.adversary is not None:
            adversaries.setdefault(spec.sender, {})[spec.receiver] = spec.adversary
    for sender, links in by_sender.items():
        attacked = adversaries.get(sender)
        if attacked is None:  # an honest backend draws exactly what it drew before adversaries existed
            ports[sender] = port = PulsePort(network, sender, backend.pulse_trains(links))
        else:
            port = PulsePort(network, sender, None)
            port.attach(backend.pulse_trains(links, adversary=attacked, eavesdropper_oracle=port.hold))
            ports[sender] = port
    remember_ports(network, ports)
    return ports


def _application(impl: Any, ctx: Any, port: Any) -> Any:
    """The node's application entity; at an end of a pulse link, wrapped so that decoy-BB84
    requests reach the pulse service (``qnetstack.application.bb84_decoy``)."""
    app = _checked(impl(ctx), "application", ctx.node)
    return app if port is None else PulseQkdApplication(ctx, app, port)


def _plan_faults(
    scenario: Scenario, network: Network, impls: dict[str, Any], topology: nx.Graph, network_options: dict[str, Any], ports: dict[str, Any]
) -> None:
    """Schedule the scenario's faults (``qnetstack.stack.faults``); a restarted node's
    entities are built as at assembly."""

    def rebuild(node: str, layer: str, ctx: Any) -> Any:
        if layer == "network":
            return _checked(impls["network"](ctx, topology, **network_options), "network", node)
        if layer == "link":
            return _checked(impls["link"](ctx, **_link_options(scenario)), "link", node)
        if layer == "application":
            return _application(impls["application"], ctx, ports.get(node))
        return _checked(impls[layer](ctx), layer, node)

    neighbours: dict[str, set[str]] = {n.name: set() for n in scenario.nodes}
    for link in scenario.links:
        neighbours[link.a].add(link.b)
        neighbours[link.b].add(link.a)
    network.faults = Faults(network, scenario.faults, neighbours, rebuild)
    network.faults.schedule()


def _topology(scenario: Scenario, devices: dict[str, Any]) -> nx.Graph:
    """The graph every network entity routes on (module docstring): ``length_km`` on every
    link, and the link figures of its first end's device (``HeraldingLink``) when it has them."""
    topology = nx.Graph()
    topology.add_nodes_from(devices)
    for node, device in devices.items():  # how its memory decoheres, for the expected fidelity of a route
        describe = getattr(device, "capabilities", None)
        memory = describe().memory if describe is not None else None
        if memory is not None:
            topology.nodes[node].update(
                {name: value for name, value in (("t1_ns", memory.t1_ns), ("t2_ns", memory.t2_ns)) if value is not None}
            )
    for link in scenario.links:
        figures: dict[str, Any] = {}
        describe = getattr(devices[link.a], "capabilities", None)
        announced = describe().links.get(link.b) if describe is not None else None
        if announced is not None:
            figures = {name: getattr(announced, name) for name in EDGE_FIGURES}
            if announced.alpha_settings and announced.scheme == "single-click":  # the link layer may pick among them
                figures["operating_points"] = tuple((s.fidelity, s.success_probability) for s in announced.alpha_settings)
        topology.add_edge(link.a, link.b, length_km=link.length_km, **figures)
    # One graph shared by every network entity, not a copy per node. It is still a copy:
    # copying reorders neighbours, and routes between equally short paths follow that order.
    return nx.freeze(topology.copy())


# Classes whose every instance is an entity (the class itself has the methods). An isinstance
# check against the Entity protocol looks each method up, which for thousands of entities cost
# more than building them; a class found here is checked once.
_ENTITY_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()


def _checked(entity: Any, layer: str, node: str) -> Any:
    if type(entity) in _ENTITY_CLASSES:
        return entity
    if isinstance(entity, Entity):
        if issubclass(type(entity), Entity):
            _ENTITY_CLASSES.add(type(entity))
    else:
        missing = [m for m in ("start", "handle_above", "handle_below", "handle_peer", "handle_timer") if not hasattr(entity, m)]
        raise AssemblyError(
            f"implementations.{layer}",
            f"the {layer} entity built for node {shown(node)} ({type(entity).__name__}) is not an entity: missing {missing}",
        )
    return entity
