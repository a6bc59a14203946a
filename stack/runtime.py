"""Wiring of entities to the kernel: the contexts, the classical channels, the trace.

A :class:`Network` holds, per node, one entity per layer (stations only have a
physical entity). Each entity gets its own :class:`KernelContext`, which turns
``send_up``/``send_down``/``send_peer``/``set_timer`` into kernel events:

* up and down on the same node: delivered at the same instant, queued behind
  whatever is already scheduled for it;
* to a peer: after the classical channel's delay, the shortest fibre path
  between the two nodes, length / (c / n) (see ``qnetstack.physical.params``),
  found when a context first sends to that peer (:class:`FibreDelays`);
* timers: after the requested delay;
* device operations asked for with ``request_device``: handed to the node's
  physical entity as a ``DeviceRequest`` at once (so its qubits are busy from
  this instant), which answers with a ``DeviceResponse`` after the operation's
  duration; the response goes to the asking entity's ``handle_device`` rather
  than to the layer above the physical one (:meth:`Network.request_device`).

Each context looks its routes up once (the entity above or below, each peer
with its delay) and keeps them until an entity of the network is replaced: a
message costs one kernel event and no dictionary walks. Adding an entity
changes no route already looked up (a route is looked up only to an entity
that exists), so assembly costs time in proportion to the entities, not to
their square.

Random streams: one ``SeedSequence`` per run, and for each entity a child
keyed by (node name checksum, layer index), so adding a node or a layer leaves
every other entity's draws unchanged (each is made when its entity first asks
for it, which changes no draw).

For the run report the network notes, at the boundary between the
application and network layers, which network request each submitted user
request made and the path the network accepted it on
(:attr:`Network.net_requests`, :attr:`Network.paths`). Only the contexts of
those two layers look, and only at their requests and answers, so the layers
below pay nothing for it.

A network made with ``keep_trace`` gives its entities traced contexts
(:func:`_traced`), which also hand every service message (a layer boundary
crossed on one node, the user above the application layer included) and every
peer message to the trace's ``sink``, when one is set (the trace file,
:mod:`qnetstack.stack.trace`). A network made without it has the plain
contexts, whose sends check nothing: an untraced run pays nothing for tracing.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import networkx as nx
import numpy as np

from qnetstack.entity import RequestName
from qnetstack.entity.kernel import Kernel
from qnetstack.entity.machine import TRANSITION
from qnetstack.network.service import NetAccepted, NetRequest, PairDelivered
from qnetstack.physical.service import DeviceRequest, DeviceResponse
from qnetstack.stack.trace import message_record, plain

__all__ = ["LAYERS", "FibreDelays", "KernelContext", "Trace", "Network", "entity_rng"]

LAYERS = ("physical", "link", "network", "application")


def entity_rng(seed: int, node: str, layer: str) -> np.random.Generator:
    key = (zlib.crc32(node.encode("utf-8")), LAYERS.index(layer))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class FibreDelays:
    """The classical delay between two nodes: the shortest path over ``graph``, whose
    edges carry ``delay_ns`` (integers, so the sum does not depend on the search order).

    A delay is found when first asked for (a bidirectional Dijkstra search, which
    looks at little more than the nodes near the path) and kept for both directions:
    a run asks only for the pairs of nodes that talk, a few per node and circuit,
    where a table of every pair would grow as the square of the nodes."""

    def __init__(self, graph: nx.Graph) -> None:
        self._graph = graph
        self._known: dict[tuple[str, str], int] = {}

    def __call__(self, a: str, b: str) -> int:
        key = (a, b) if a <= b else (b, a)
        delay = self._known.get(key)
        if delay is None:
            try:
                delay, _ = nx.bidirectional_dijkstra(self._graph, a, b, weight="delay_ns")
            except (nx.NetworkXNoPath, nx.NodeNotFound):
                raise RuntimeError(f"no classical channel between {a!r} and {b!r}") from None
            self._known[key] = delay
        return delay


class Trace:
    """Counts every traced event by name; keeps the records too when asked.

    ``records`` (with ``keep_records``) holds the entities' events and the
    transitions in memory, as flat dictionaries. ``sink``, when set, is given
    every record of the trace file format (:mod:`qnetstack.stack.trace`) as the
    run makes it: the events and transitions, and from a network's traced
    contexts every service and peer message."""

    def __init__(self, keep_records: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self.keep_records = keep_records
        self.records: list[dict[str, Any]] = []
        self.link_attempts: Counter[str] = Counter()
        self.link_successes: Counter[str] = Counter()
        self.sink: Callable[[dict[str, Any]], None] | None = None

    @property
    def tracing(self) -> bool:
        """Whether records are kept or streamed (so transitions are worth tracing)."""
        return self.keep_records or self.sink is not None

    def record(self, time_ns: int, node: str, layer: str, event: str, fields: dict[str, Any]) -> None:
        sink = self.sink
        if sink is not None:
            if event == TRANSITION:
                sink({"type": "transition", "t_ns": time_ns, "node": node, "layer": layer, **plain(fields)})
            else:
                sink({"type": "event", "t_ns": time_ns, "node": node, "layer": layer, "event": event, "fields": plain(fields)})
        if event == TRANSITION:  # a session's state change: kept in the records, not a protocol counter
            if self.keep_records:
                self.records.append({"time_ns": time_ns, "node": node, "layer": layer, "event": event, **fields})
            return
        counts = self.counts
        counts[event] = counts.get(event, 0) + 1
        if event == "station.attempt":
            link = str(fields.get("link", node))
            # a fast-forwarding station traces a whole run of attempts as one event
            self.link_attempts[link] += int(fields.get("attempts", 1))
            if fields.get("success"):
                self.link_successes[link] += 1
        if self.keep_records:
            self.records.append({"time_ns": time_ns, "node": node, "layer": layer, "event": event, **fields})


class KernelContext:
    """The :class:`entity.Context` an entity sees when run by the kernel."""

    __slots__ = ("_network", "_kernel", "_node", "_layer", "_layer_index", "_rng", "entity", "_up", "_down", "_peers")

    def __init__(self, network: Network, node: str, layer: str, rng: np.random.Generator | None = None) -> None:
        self._network = network
        self._kernel = network.kernel
        self._node = node
        self._layer = layer
        self._layer_index = LAYERS.index(layer)
        self._rng = rng
        self.entity: Any = None
        self.forget_routes()

    def forget_routes(self) -> None:
        """Drop the routes looked up so far (the network's entities changed)."""
        self._up: Callable[[Any], None] | None = None
        self._down: Callable[[Any], None] | None = None
        self._peers: dict[str, tuple[int, Callable[[str, Any], None]]] = {}

    @property
    def node(self) -> str:
        return self._node

    @property
    def layer(self) -> str:
        return self._layer

    @property
    def now_ns(self) -> int:
        return self._kernel.now_ns

    @property
    def rng(self) -> np.random.Generator:
        rng = self._rng
        if rng is None:
            # made when first used: its seed does not depend on when, and seeding one for
            # each of thousands of entities, many of which never draw, slowed assembly down
            rng = self._rng = entity_rng(self._network.seed, self._node, self._layer)
        return rng

    @property
    def device(self) -> Any:
        return self._network.entities[self._node]["physical"]

    def send_up(self, msg: Any) -> None:
        up = self._up
        if up is None:
            up = self._up = self._route_up()
        self._kernel.schedule(0, up, msg)

    def _route_up(self) -> Callable[[Any], None]:
        net = self._network
        if self._layer == "application":
            node = self._node
            return lambda msg: net.deliver_to_user(node, msg)
        upper = net.entities[self._node].get(LAYERS[self._layer_index + 1])
        if upper is None:
            raise RuntimeError(f"node {self._node!r} has no layer above {self._layer}")
        return upper.handle_below

    def send_down(self, msg: Any) -> None:
        down = self._down
        if down is None:
            if self._layer_index == 0:
                raise RuntimeError("the physical layer has no layer below it")
            down = self._down = self._network.entities[self._node][LAYERS[self._layer_index - 1]].handle_above
        self._kernel.schedule(0, down, msg)

    def send_peer(self, node: str, msg: Any) -> None:
        route = self._peers.get(node)
        if route is None:
            net = self._network
            try:
                peer = net.entities[node][self._layer]
            except KeyError:
                raise RuntimeError(f"{self._node}/{self._layer}: no {self._layer} entity on node {node!r}") from None
            deliver = peer.handle_peer
            if net.faults is not None:  # classical messages may be lost or delayed (qnetstack.stack.faults)
                deliver = net.faults.peer_route(self._node, node, self._layer, deliver)
            route = self._peers[node] = (net.delay_ns(self._node, node), deliver)
        self._kernel.schedule(route[0], route[1], self._node, msg)

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        return self._kernel.schedule(delay_ns, self.entity.handle_timer, tag)

    def request_device(self, op: Any, tag: Hashable) -> None:
        self._network.request_device(self._node, op, self.entity.handle_device, tag)

    def cancel_timer(self, timer_id: int) -> None:
        self._kernel.cancel(timer_id)

    @property
    def keeps_transitions(self) -> bool:
        """Whether session transitions are worth tracing here (the trace keeps or streams records)."""
        return self._network.trace.tracing

    def trace(self, event: str, **fields: Any) -> None:
        self._network.trace.record(self._kernel.now_ns, self._node, self._layer, event, fields)


class _NetworkLayerContext(KernelContext):
    """A network entity's context: notes the path of each request it accepts."""

    __slots__ = ()

    def send_up(self, msg: Any) -> None:
        if isinstance(msg, NetAccepted):
            self._network.paths[(self._node, msg.request_id)] = tuple(msg.path)
        elif self._network.delivery_callbacks and isinstance(msg, PairDelivered):
            for callback in self._network.delivery_callbacks:
                callback(self._kernel.now_ns, self._node, msg)
        super().send_up(msg)


class _ApplicationLayerContext(KernelContext):
    """An application entity's context: notes which network request a submitted user request made."""

    __slots__ = ()

    def send_down(self, msg: Any) -> None:
        submitting = self._network.submitting
        if submitting is not None and submitting[0] == self._node and isinstance(msg, NetRequest):
            self._network.net_requests[(self._node, msg.request_id)] = submitting
        super().send_down(msg)


class _PhysicalLayerContext(KernelContext):
    """A physical entity's context: a ``DeviceResponse`` to a request made with
    ``request_device`` goes back to the entity that asked, not up."""

    __slots__ = ()

    def send_up(self, msg: Any) -> None:
        waiting = self._network.device_requests
        if waiting and isinstance(msg, DeviceResponse):
            asked = waiting.pop((self._node, msg.request_id), None)
            if asked is not None:
                self._kernel.schedule(0, asked[0], asked[1], msg.result)
                return
        super().send_up(msg)


_CONTEXTS: dict[str, type[KernelContext]] = {
    "physical": _PhysicalLayerContext,
    "network": _NetworkLayerContext,
    "application": _ApplicationLayerContext,
}


def _traced(plain_context: type[KernelContext]) -> type[KernelContext]:
    """``plain_context`` with every message it sends also handed to the trace's sink."""

    class Traced(plain_context):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def _service(self, direction: str, to_layer: str, msg: Any) -> None:
            sink = self._network.trace.sink
            if sink is not None:
                sink(
                    message_record(
                        self._kernel.now_ns,
                        self._node,
                        self._layer,
                        msg,
                        type="service",
                        direction=direction,
                        from_layer=self._layer,
                        to_layer=to_layer,
                    )
                )

        # each records after the send: a send that raises (no such layer or peer) is no message
        def send_up(self, msg: Any) -> None:
            to_layer = "user" if self._layer == "application" else LAYERS[self._layer_index + 1]
            if isinstance(msg, DeviceResponse):  # may go back to the entity that asked with request_device
                asked = self._network.device_requests.get((self._node, msg.request_id))
                if asked is not None:
                    to_layer = self._network.layer_of(self._node, asked[0])
            super().send_up(msg)
            self._service("up", to_layer, msg)

        def send_down(self, msg: Any) -> None:
            super().send_down(msg)
            self._service("down", LAYERS[self._layer_index - 1], msg)

        def send_peer(self, node: str, msg: Any) -> None:
            super().send_peer(node, msg)
            sink = self._network.trace.sink
            if sink is not None:
                now = self._kernel.now_ns
                delay = self._network.delay_ns(self._node, node)
                sink(message_record(now, self._node, self._layer, msg, type="peer", to_node=node, delivery_ns=now + delay))

    Traced.__name__ = Traced.__qualname__ = f"Traced{plain_context.__name__.lstrip('_')}"
    return Traced


_TRACED_CONTEXTS: dict[str, type[KernelContext]] = {layer: _traced(_CONTEXTS.get(layer, KernelContext)) for layer in LAYERS}


class Network:
    """A runnable network: the kernel, the entities per node and layer, the channels."""

    def __init__(self, seed: int, delay_ns: Callable[[str, str], int], keep_trace: bool = False) -> None:
        self.seed = seed
        self.kernel = Kernel()
        self.entities: dict[str, dict[str, Any]] = {}
        self.delay_ns = delay_ns  # (a, b) -> the classical delay from a to b; RuntimeError when none
        self.trace = Trace(keep_records=keep_trace)
        self.user_messages: list[tuple[int, str, Any]] = []
        self.user_callbacks: list[Callable[[int, str, Any], None]] = []
        # told of every PairDelivered a network entity hands up (the runner's progress watch of QKD requests)
        self.delivery_callbacks: list[Callable[[int, str, Any], None]] = []
        # told the time of every pulse block delivered (the runner's progress watch of decoy-BB84 requests)
        self.progress_callbacks: list[Callable[[int], None]] = []
        self._contexts: list[KernelContext] = []
        # (node, NetRequest id) -> the user request (node, request_id) it was made for, and the path accepted
        self.net_requests: dict[RequestName, RequestName] = {}
        self.paths: dict[RequestName, tuple[str, ...]] = {}
        self.submitting: RequestName | None = None  # the user request being handed to its application
        # device operations under way: (node, DeviceRequest id) -> (the asker's handle_device, its tag)
        self.device_requests: dict[tuple[str, int], tuple[Callable[[Hashable, Any], None], Hashable]] = {}
        self._next_device_request: Counter[str] = Counter()
        self.faults: Any = None  # a qnetstack.stack.faults.Faults when the scenario has faults
        self.topology: Any = None  # the networkx graph the network entities route on, set by the assembler

    def make_context(self, node: str, layer: str) -> KernelContext:
        contexts = _TRACED_CONTEXTS if self.trace.keep_records else _CONTEXTS
        ctx = contexts.get(layer, KernelContext)(self, node, layer)
        self._contexts.append(ctx)
        return ctx

    def add_entity(self, ctx: KernelContext, entity: Any) -> None:
        ctx.entity = entity
        layers = self.entities.setdefault(ctx.node, {})
        replaced = ctx._layer in layers
        layers[ctx._layer] = entity
        if replaced:  # routes may lead to the entity replaced; a new one no route can lead to yet
            for known in self._contexts:
                known.forget_routes()

    def request_device(self, node: str, op: Any, handle_device: Callable[[Hashable, Any], None], tag: Hashable) -> None:
        """Hand ``op`` to ``node``'s device as a ``DeviceRequest`` now; its response goes to
        ``handle_device(tag, result)``. The ids count per node, from 2**40 up, so they cannot
        meet those of a layer that sends ``DeviceRequest`` down itself from 0."""
        request_id = (1 << 40) + self._next_device_request[node]
        self._next_device_request[node] += 1
        self.device_requests[(node, request_id)] = (handle_device, tag)
        request = DeviceRequest(request_id=request_id, operation=op)
        sink = self.trace.sink
        if sink is not None:
            layer = self.layer_of(node, handle_device)
            sink(
                message_record(
                    self.kernel.now_ns, node, layer, request, type="service", direction="down", from_layer=layer, to_layer="physical"
                )
            )
        # a direct call, as ``execute`` is: the device marks the qubits busy in this instant
        self.entities[node]["physical"].handle_above(request)

    def layer_of(self, node: str, handler: Callable[..., Any]) -> str:
        """The layer of ``node`` whose entity owns the bound method ``handler`` (for the trace)."""
        owner = getattr(handler, "__self__", None)
        for layer, entity in self.entities.get(node, {}).items():
            if entity is owner:
                return layer
        return "unknown"

    @property
    def contexts(self) -> list[KernelContext]:
        return self._contexts

    def replace_entity(self, node: str, layer: str, entity: Any, ctx: KernelContext | None = None) -> None:
        """Put ``entity`` in place of ``node``'s ``layer`` entity (a crash, a restart); with
        ``ctx`` it becomes that context's entity. Every route looked up so far is forgotten."""
        if ctx is not None:
            ctx.entity = entity
        self.entities[node][layer] = entity
        for known in self._contexts:
            known.forget_routes()

    def deliver_to_user(self, node: str, msg: Any) -> None:
        self.user_messages.append((self.kernel.now_ns, node, msg))
        for callback in self.user_callbacks:
            callback(self.kernel.now_ns, node, msg)

    def submit(self, node: str, request: Any, delay_ns: int = 0) -> None:
        """Hand an application request to the application entity of ``node``."""
        app = self.entities.get(node, {}).get("application")
        if app is None:
            raise KeyError(f"node {node!r} has no application entity")
        self.kernel.schedule(delay_ns, self.hand_to_application, node, app, request)

    def hand_to_application(self, node: str, app: Any, request: Any) -> None:
        """The event of a submitted request: ``app.handle_above(request)``, with the request noted
        (as :attr:`submitting`) for as long as the application handles it."""
        if self.faults is not None:
            if not self.faults.submitted(node, request):
                return  # the node is down: the request ended at once
            app = self.entities[node]["application"]  # a restarted node has a fresh one
        self.submitting = (node, getattr(request, "request_id", -1))
        sink = self.trace.sink
        if sink is not None:
            sink(
                message_record(
                    self.kernel.now_ns, node, "user", request, type="service", direction="down", from_layer="user", to_layer="application"
                )
            )
        try:
            app.handle_above(request)
        finally:
            self.submitting = None

    def start(self) -> None:
        for layers in self.entities.values():
            for entity in layers.values():
                entity.start()

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> None:
        self.kernel.run(until_ns=until_ns, max_events=max_events)
