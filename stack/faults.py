"""Faults in a run: links cut and repaired, nodes that crash and restart, classical
messages lost or delayed (a scenario's ``faults``, :class:`~qnetstack.stack.scenario.FaultsSpec`).

The layers are not told that faults exist; each learns of one the way real
hardware would let it:

* **a cut fibre** is a physical fact, so the physical layer takes it
  (``qnetstack.physical.service.FibreCut``, both ends at the same instant):
  attempts on the link come back ``link_down`` one attempt period later, the
  link layer ends its requests on it with ``LinkError`` DOWN (specs/link.md
  §3) and the network layer ends the circuits whose link requests they were
  with ``NetError`` LINK_FAILURE, freeing pairs and reservations along the
  path (specs/network.md §4, NET-FAULT-1). A backend must declare
  ``physical:faults`` to run a scenario with cuts or crashes.
* **a crash** (:meth:`Faults.crash`): every pending event of the node's link,
  network and application entities is cancelled, those entities are replaced
  by :class:`Down` (which drops whatever reaches it), the physical layer frees
  the node's memory (``NodeCrash``), the node's links count as cut while it is
  down (so its neighbours' link requests with it end with DOWN), and each
  request open at the node's application ends with ``AppError`` ABORTED (its
  user went down with it; a request handed to a node that is down ends so
  too). The other end of each request the node was an end of learns it from
  its network layer, which finds the node silent (``NetError`` END_LOST,
  specs/network.md NET-FAULT-3), and its application frees what it kept for
  the request (``AppError`` REMOTE_LOST at a head, specs/application.md
  APP-FAULT-1). At restart fresh entities are built (the assembler's factories) on
  the same contexts, so their random streams go on where the crashed ones
  stopped, and started; the links are repaired.
* **a lost or delayed classical message** (of the link, network and
  application layers a rule names; the physical layer's heralding signals
  belong to the heralding channel and are left alone): a route between two nodes with a rule is
  wrapped in :class:`LossyRoute`, which draws when the message arrives
  whether it is lost, else whether it waits ``extra_delay_ns`` more. Draws
  come from one stream of the run's seed kept for faults, so a run with faults
  is as repeatable as one without.
* **a man in the middle** (``faults.tamper``): the application messages between the
  two nodes of a link pass through :class:`TamperRoute`, which alters each message
  that offers ``tampered(rng)`` (the application says what an adversary can rewrite
  in it) with the rule's probability; other messages pass unchanged. The same stream
  for faults draws.

A scenario without faults builds no :class:`Faults` and runs exactly as before.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from qnetstack.application.service import AppDone, AppError, AppErrorCode
from qnetstack.physical.service import FibreCut, NodeCrash
from qnetstack.stack.runtime import LAYERS, KernelContext, Network
from qnetstack.stack.scenario import ClassicalFaultSpec, FaultsSpec, TamperSpec

__all__ = ["Down", "Faults", "LossyRoute", "TamperRoute", "fault_rng"]

# the layers a crash replaces (the physical entity is the hardware: it stays, its memory lost)
_CRASHING = LAYERS[1:]


def fault_rng(seed: int) -> np.random.Generator:
    """The run's stream for fault draws: keyed apart from every entity's (one key, not two)."""
    key = (zlib.crc32(b"faults"),)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class Down:
    """What stands in for an entity of a crashed node: it drops whatever reaches it."""

    def __init__(self, network: Network, node: str, layer: str) -> None:
        self._network = network
        self.node = node
        self.layer = layer

    def _drop(self, what: str, msg: Any) -> None:
        self._network.trace.record(
            self._network.kernel.now_ns, self.node, self.layer, "fault.dropped", {"what": what, "message": type(msg).__name__}
        )

    def start(self) -> None:
        pass

    def handle_above(self, msg: Any) -> None:
        self._drop("above", msg)

    def handle_below(self, msg: Any) -> None:
        self._drop("below", msg)

    def handle_peer(self, sender: str, msg: Any) -> None:
        self._drop("peer", msg)

    def handle_timer(self, tag: Any) -> None:
        self._drop("timer", tag)

    def describe_waits(self) -> list[Any]:
        return []


class LossyRoute:
    """A peer route under a classical fault rule: decides, as each message arrives,
    whether it is lost or held back ``extra_delay_ns`` more."""

    __slots__ = ("deliver", "rule", "faults")

    def __init__(self, deliver: Callable[[str, Any], None], rule: ClassicalFaultSpec, faults: Faults) -> None:
        self.deliver = deliver
        self.rule = rule
        self.faults = faults

    def __call__(self, sender: str, msg: Any) -> None:
        faults, rule = self.faults, self.rule
        rng = faults.rng
        if rule.loss_probability and rng.random() < rule.loss_probability:
            faults.lost += 1
            faults.network.trace.record(faults.network.kernel.now_ns, sender, "fault", "fault.lost", {"message": type(msg).__name__})
            return
        if rule.delay_probability and rule.extra_delay_ns and rng.random() < rule.delay_probability:
            faults.delayed += 1
            faults.network.kernel.schedule(rule.extra_delay_ns, self.deliver, sender, msg)
            return
        self.deliver(sender, msg)


class TamperRoute:
    """A peer route of the application layer through a man in the middle: a message that offers
    ``tampered(rng)`` is replaced by its altered copy with the rule's probability."""

    __slots__ = ("deliver", "rule", "faults")

    def __init__(self, deliver: Callable[[str, Any], None], rule: TamperSpec, faults: Faults) -> None:
        self.deliver = deliver
        self.rule = rule
        self.faults = faults

    def __call__(self, sender: str, msg: Any) -> None:
        faults = self.faults
        alter = getattr(msg, "tampered", None)
        if callable(alter) and faults.rng.random() < self.rule.probability:
            faults.tampered += 1
            faults.network.trace.record(faults.network.kernel.now_ns, sender, "fault", "fault.tampered", {"message": type(msg).__name__})
            msg = alter(faults.rng)
        self.deliver(sender, msg)


class Faults:
    """The faults of one run, scheduled on its kernel (see the module docstring).

    ``rebuild(node, layer, ctx)`` builds a fresh entity of ``layer`` for a restarted
    node; ``neighbours`` maps each node to the nodes it has links with."""

    def __init__(
        self,
        network: Network,
        spec: FaultsSpec,
        neighbours: dict[str, set[str]],
        rebuild: Callable[[str, str, KernelContext], Any],
    ) -> None:
        self.network = network
        self.spec = spec
        self.neighbours = neighbours
        self.rebuild = rebuild
        self.rng = fault_rng(network.seed)
        self.down: set[str] = set()  # crashed nodes
        self.lost = 0
        self.delayed = 0
        self.tampered = 0
        self._cuts: Counter[frozenset[str]] = Counter()  # link -> reasons it is cut (a cut, a crashed end)
        self._contexts: dict[tuple[str, str], KernelContext] = {}
        self._submitted: dict[tuple[str, int], str] = {}  # (node, request id) -> request kind
        self._global = next((rule for rule in spec.classical if rule.link is None), None)
        self._per_link = {frozenset(rule.link): rule for rule in spec.classical if rule.link is not None}
        self._tamper = {frozenset(rule.link): rule for rule in spec.tamper}

    def schedule(self) -> None:
        """Put every fault of the scenario on the kernel (before the run starts)."""
        kernel = self.network.kernel
        for cut in self.spec.link_cuts:
            link = frozenset(cut.link)
            kernel.schedule(cut.at_ns, self._change_cut, link, +1)
            if cut.repair_ns is not None:
                kernel.schedule(cut.repair_ns, self._change_cut, link, -1)
        for crash in self.spec.node_crashes:
            kernel.schedule(crash.at_ns, self.crash, crash.node)
            if crash.restart_ns is not None:
                kernel.schedule(crash.restart_ns, self.restart, crash.node)

    # ------------------------------------------------------------ classical messages

    def peer_route(self, sender: str, receiver: str, layer: str, deliver: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
        """The route a context keeps to ``receiver``: ``deliver`` itself, or wrapped when a rule covers it
        (a man in the middle alters what arrives; a lost message is not altered)."""
        tamper = self._tamper.get(frozenset((sender, receiver)))
        if tamper is not None and layer == "application" and tamper.probability > 0:
            deliver = TamperRoute(deliver, tamper, self)
        rule = self._per_link.get(frozenset((sender, receiver)), self._global)
        if rule is None or layer not in rule.layers or not (rule.loss_probability or (rule.delay_probability and rule.extra_delay_ns)):
            return deliver
        return LossyRoute(deliver, rule, self)

    # ------------------------------------------------------------ links

    def _change_cut(self, link: frozenset[str], change: int) -> None:
        before = self._cuts[link]
        self._cuts[link] = after = before + change
        if (before > 0) == (after > 0):
            return
        a, b = sorted(link)
        now = self.network.kernel.now_ns
        self.network.trace.record(now, a, "fault", "fault.link_cut" if after > 0 else "fault.link_repaired", {"link": f"{a}-{b}"})
        entities = self.network.entities
        entities[a]["physical"].handle_above(FibreCut(neighbour=b, cut=after > 0))
        entities[b]["physical"].handle_above(FibreCut(neighbour=a, cut=after > 0))

    # ------------------------------------------------------------ nodes

    def crash(self, node: str) -> None:
        network = self.network
        self.down.add(node)
        layers = network.entities[node]
        crashed = [layers[layer] for layer in _CRASHING if layer in layers]
        doomed_owners = {id(entity) for entity in crashed}

        def doomed(callback: Callable[..., None]) -> bool:
            owner = getattr(callback, "__self__", None)
            while isinstance(callback, (LossyRoute, TamperRoute)):
                callback = callback.deliver
                owner = getattr(callback, "__self__", None)
            return owner is not None and id(owner) in doomed_owners

        cancelled = network.kernel.cancel_where(doomed)
        for layer in _CRASHING:
            if layer in layers:
                context = next(ctx for ctx in network.contexts if ctx.node == node and ctx.layer == layer)
                self._contexts[(node, layer)] = context
                network.replace_entity(node, layer, Down(network, node, layer))
        layers["physical"].handle_above(NodeCrash())
        network.trace.record(network.kernel.now_ns, node, "fault", "fault.crash", {"cancelled_events": cancelled})
        for neighbour in sorted(self.neighbours.get(node, ())):
            self._change_cut(frozenset((node, neighbour)), +1)
        for key in self._open_requests(node):
            self._abort(node, key[1], self._submitted[key], "its node crashed")

    def restart(self, node: str) -> None:
        network = self.network
        self.down.discard(node)
        fresh = []
        for layer in _CRASHING:
            context = self._contexts.get((node, layer))
            if context is None:
                continue
            entity = self.rebuild(node, layer, context)
            network.replace_entity(node, layer, entity, context)
            fresh.append(entity)
        network.trace.record(network.kernel.now_ns, node, "fault", "fault.restart", {})
        for neighbour in sorted(self.neighbours.get(node, ())):
            self._change_cut(frozenset((node, neighbour)), -1)
        for entity in fresh:
            entity.start()

    # ------------------------------------------------------------ user requests

    def submitted(self, node: str, request: Any) -> bool:
        """A request reaches its node's application: note it; False (and it ends at
        once, ABORTED) when the node is down."""
        request_id = getattr(request, "request_id", -1)
        self._submitted[(node, request_id)] = getattr(request, "kind", "")
        if node in self.down:
            self._abort(node, request_id, getattr(request, "kind", ""), "its node is down")
            return False
        return True

    def _open_requests(self, node: str) -> list[tuple[str, int]]:
        closed = {
            (at, msg.request_id)
            for _, at, msg in self.network.user_messages
            if at == node and (isinstance(msg, AppDone) or (isinstance(msg, AppError) and msg.code is not AppErrorCode.DUPLICATE_ID))
        }
        return sorted(key for key in self._submitted if key[0] == node and key not in closed)

    def _abort(self, node: str, request_id: int, kind: str, why: str) -> None:
        now = self.network.kernel.now_ns
        error = AppError(request_id=request_id, request_kind=kind, code=AppErrorCode.ABORTED, detail=f"{why} at {now} ns")
        self.network.deliver_to_user(node, error)
