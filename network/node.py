"""The network-layer entity: circuits set up along a route, run by a policy.

Theory of operation
-------------------
A request for pairs between a *head* (where it is made) and a *tail* sets up a
*circuit* along a route (:mod:`~qnetstack.network.routing`, shortest by fibre
length unless configured otherwise). Every node of the path holds a session for
it (:mod:`~qnetstack.network.circuit`), named ``(head, circuit)`` with a serial
number the head never reuses.

0. Over repeaters the head first has memory set aside for the circuit at
   every node of the path (:mod:`~qnetstack.network.memory`): it sends
   ``Reserve`` to one node after the other, in the order of their names, and
   goes on when the node answers ``Reserved``. A node short of free qubits
   queues the set-up and answers once enough is freed; the set-ups waiting
   there are served first come, first served. Taking nodes in one global
   order means no two waiting set-ups can each hold what the other waits
   for. A set-up that can never fit is refused: at the head with
   ``NetRejected`` when the topology says how many qubits each node has
   (node attribute ``num_qubits``), else by the node, and the request ends
   with ``NetError`` NORES. (A policy that holds nothing anywhere reserves
   nothing, and its circuits start at once.)
1. The head answers ``NetAccepted``, picks a label for its link to the next
   node and sends ``Forward`` (:mod:`~qnetstack.network.peer`) hop by hop to
   the tail; each node picks the label of its own downstream hop and passes
   the ``Forward`` on. Each node but the tail then asks its link layer for
   type-K pairs with its downstream neighbour, under that label
   (``purpose_id``) and a fresh ``tag``; the link's ACKs and ERRs are matched
   to the request by tag, never by order.
2. A link pair (:mod:`~qnetstack.network.pairs`) is filed under its hop key
   ``(neighbour, creator, label)``, which names one live circuit at both ends
   of the hop. A pair whose circuit is not set up here yet (its ``Forward``
   is still on its way) waits for it; one whose circuit has ended here is
   freed at once (NET-SESS-1, NET-RES-3).
3. The policy (:mod:`~qnetstack.network.policy`) decides what happens next:
   at a repeater, which upstream and downstream pair to Bell-measure (swap);
   everywhere, how many more link pairs to ask for. After a swap the repeater
   sends a ``SwapRecord`` naming both link pairs by ``ent_id`` to both ends.
   Over repeaters a node asks for the next pair of a hop only once both ends
   of the hop have used the last one (the downstream end says so with
   ``HopFreed``), so no node holds more link pairs of a circuit than it
   reserved (a policy with ``pairs_per_request`` w asks for w at a time, the
   next w once both ends have used all of the last).
4. An end that holds a link pair and the swap records chaining it to the
   other end (found by following ``ent_id`` s from its own pair) knows the
   pair's Bell state, the XOR of every frame and swap outcome
   (:mod:`~qnetstack.network.frames`), and delivers ``PairDelivered``; no
   correction gate is applied. For type M the end measures the qubit and the
   tail flips its outcome by the frame, so both report outcomes as if the
   pair were Φ+.
5. A request with ``max_time_ns`` still open at the head when it runs out ends
   with ``NetError`` TIMEOUT there; the head tells every other node of the path
   with ``CircuitFailed``, as a node does when one of its link requests fails.
   Each node then frees the link pairs the circuit holds there, and its
   reservation. A circuit that ends while the head is still reserving (its
   deadline, a node that can never hold it) is ended with ``Release`` sent
   from the head to every node it asked and to the tail, which reports the
   ``NetError``.

Messages that name a circuit or link request this node does not hold (never
set up, or already ended) change nothing and are traced as ``unknown_session``
(``qnetstack.entity.machine.drop_unknown``); a link pair such a message hands
over is freed.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, cast

import networkx as nx

from qnetstack.entity import Context, EntityError, Wait
from qnetstack.entity.machine import drop_unknown, transition_trace
from qnetstack.link.service import (
    CAP_LINK_K,
    LinkAck,
    LinkCancel,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    LinkState,
    RequestType,
)
from qnetstack.network.admission import Refused, admit
from qnetstack.network.circuit import (
    Circuit,
    CircuitAtRepeater,
    CircuitEnd,
    CircuitEvent,
    CircuitState,
    JoinedPairs,
    LabelsExhausted,
    LabelTable,
)
from qnetstack.network.cutoff import Cutoffs
from qnetstack.network.distill import Distiller, DistillOutcome, DistillPolicy, Round
from qnetstack.network.distill_e2e import EndToEndDistiller, EndToEndDistillPolicy, EndToEndOutcome, EndToEndRound
from qnetstack.network.frames import chain_estimate, chain_frame, correctable, outcome_flips, swap_estimates
from qnetstack.network.linkstate import LinkStateAdvert
from qnetstack.network.memory import MemoryBook, WaitingSetUp
from qnetstack.network.nested import NestedPolicy
from qnetstack.network.pairs import HopKey, LinkPair, PairEvent, PairState, PairStore, hop_key
from qnetstack.network.peer import (
    Ack,
    CircuitDone,
    CircuitFailed,
    Forward,
    HopFreed,
    PairDiscarded,
    Probe,
    ProbeAnswer,
    Release,
    Reserve,
    Reserved,
    SegmentReady,
    Sequenced,
    SwapRecord,
    TailDelivered,
)
from qnetstack.network.policy import make_policy
from qnetstack.network.reliable import RETRANSMIT, ReliableContext
from qnetstack.network.reroute import Rerouter
from qnetstack.network.routing import Metric, NoRoute, shortest_route
from qnetstack.network.service import (
    CAP_NET_K,
    CAP_NET_M,
    NetAccepted,
    NetError,
    NetErrorCode,
    NetRejected,
    NetRequest,
    PairDelivered,
)
from qnetstack.physical.service import (
    CAP_DEVICE,
    ApplyGate,
    ApplyTwoQubitGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    Measure,
    MeasureResult,
)

__all__ = ["NetworkNode"]

# The members read for every pair, as module constants: looking a member up on its enum class
# goes through the enum metaclass and costs about ten times a global read.
_K, _HELD, _RUNNING, _AT_DEVICE = RequestType.K, PairState.HELD, CircuitState.RUNNING, CircuitState.AT_DEVICE
_PAIR_SWAP, _PAIR_DELIVER = PairEvent.SWAP, PairEvent.DELIVER
_CIRCUIT_SWAP, _CIRCUIT_DELIVER = CircuitEvent.SWAP, CircuitEvent.DELIVER


@dataclass
class _LinkRequest:
    """One CREATE of ours, from its tag until its last OK or its ERR."""

    tag: int
    circuit: tuple[str, int]
    hop: HopKey
    number: int
    create_id: int | None = None
    made: int = 0
    cancellable: bool = False  # its ACK said the link serves a LinkCancel for it
    withdrawn: bool = False  # its circuit ended: cancelled, or to cancel once the ACK says it may be


class NetworkNode:
    """A network-layer entity; ``policy`` and ``metric`` choose how circuits are run and routed."""

    PROVIDES = frozenset({CAP_NET_K, CAP_NET_M})
    REQUIRES = frozenset({CAP_LINK_K, CAP_DEVICE})
    POLICY = "swap-asap"
    METRIC: Metric = "length_km"

    def __init__(
        self,
        ctx: Context,
        topology: nx.Graph,
        policy: str | None = None,
        metric: Metric | None = None,
        policy_options: dict[str, Any] | None = None,
        reliable: bool = False,
    ) -> None:
        # reliable: peer messages numbered, acknowledged and sent again until they arrive
        # (qnetstack.network.reliable), for a lossy classical network; every module that sends
        # goes through self.ctx, so wrapping it covers them all
        self._reliable = ReliableContext(ctx, topology) if reliable else None
        self.ctx: Context = ctx if self._reliable is None else self._reliable
        self.topology = topology
        self.policy = make_policy(policy or self.POLICY, policy_options)
        cutoff_ns = getattr(self.policy, "cutoff_ns", None)
        circuit_cutoff_ns = getattr(self.policy, "circuit_cutoff_ns", None)
        self._cutoffs = None if cutoff_ns is None and circuit_cutoff_ns is None else Cutoffs(cutoff_ns, circuit_cutoff_ns)
        self.metric: Metric = metric or self.METRIC
        self._circuits: dict[tuple[str, int], Circuit] = {}
        self._hops: dict[HopKey, Circuit] = {}  # hop key -> the live circuit it names
        # hop keys of circuits that ended here, until a new circuit takes the key: a link pair
        # under one of them is a leftover (bounded: at most 65536 labels per creator and link)
        self._ended_hops: set[HopKey] = set()
        self._pairs = PairStore(transition_trace(ctx))
        self.labels = LabelTable(ctx.node)
        self._requests: dict[int, _LinkRequest] = {}  # by tag
        self._requests_by_create_id: dict[int, _LinkRequest] = {}  # from the ACK on
        self._next_tag = 0
        self._next_circuit = 0  # serial of the next circuit this node heads
        self._open_requests: dict[int, CircuitEnd] = {}  # request_id -> circuit, at the head
        self._memory: MemoryBook | None = None  # made on first use, from the device's capabilities
        # operations under way at the device, by circuit; and the qubits an ended circuit left
        # with the device, to free once it answers (a busy qubit cannot be freed before)
        self._device_ops: dict[tuple[str, int], Any] = {}
        self._left_at_device: dict[tuple[str, int], tuple[int, ...]] = {}
        # the rounds of a distilling policy (qnetstack.network.distill)
        self._distiller = Distiller(self, self.policy) if isinstance(self.policy, DistillPolicy) else None
        # the rounds of an end-to-end distilling policy (qnetstack.network.distill_e2e)
        self._e2e = EndToEndDistiller(self, self.policy) if isinstance(self.policy, EndToEndDistillPolicy) else None
        # circuits that asked this node to reserve, not set up here yet: key -> (request id, path),
        # so a node that loses a link can end the set-ups that would use it (_neighbour_down)
        self._set_up_paths: dict[tuple[str, int], tuple[int, tuple[str, ...]]] = {}
        # this node's link-state view (routes of new circuits) and the moves of circuits off a
        # link that went down (qnetstack.network.reroute)
        self._reroute = Rerouter(self)

    @property
    def memory(self) -> MemoryBook:
        """This node's memory reservations (:mod:`~qnetstack.network.memory`)."""
        if self._memory is None:
            self._memory = MemoryBook(self.ctx.device.capabilities().num_qubits)
        return self._memory

    def start(self) -> None:
        pass

    # ------------------------------------------------------------ entity API

    def handle_above(self, msg: Any) -> None:
        if not isinstance(msg, NetRequest):
            raise EntityError(f"network layer got {type(msg).__name__} from above; it serves NetRequest")
        me = self.ctx.node
        refusal = self._refusal(msg)
        if refusal is not None:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=refusal))
            return
        try:
            path = self._route(msg.remote_node)
        except NoRoute:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=f"no path from {me!r} to {msg.remote_node!r}"))
            return
        # judged on this node's view: links it knows are down are not candidates, degraded ones count as reported
        admission = admit(self._reroute.view.graph(), path, msg.min_fidelity)
        if isinstance(admission, Refused):
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=admission.reason, best_fidelity=admission.best_fidelity))
            return
        path = admission.path
        needs = {node: self.policy.qubits_held(len(path) - 1, i) for i, node in enumerate(path)}
        if needs[me]:  # the layer above's own qubits at the head (a teleport's input), set aside with the circuit's
            needs[me] += msg.head_qubits
        short = self._never_fits(needs)
        if short is not None:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=short))
            return
        try:
            label = self.labels.acquire(path[1])
        except LabelsExhausted as exc:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=str(exc)))
            return
        forward = Forward(
            head=me,
            circuit=self._next_circuit,
            request_id=msg.request_id,
            path=path,
            number=msg.number,
            type=msg.type,
            basis=msg.basis,
            link_min_fidelity=admission.link_min_fidelity,
            label=label,
            priority=msg.priority,
        )
        self._next_circuit += 1
        self.ctx.send_up(NetAccepted(request_id=msg.request_id, path=path))
        self._launch(forward, label, needs, None if msg.max_time_ns is None else self.ctx.now_ns + msg.max_time_ns)

    def _launch(self, forward: Forward, label: int, needs: dict[str, int], deadline_ns: int | None) -> CircuitEnd:
        """Open the head's circuit for ``forward`` (a new request's, or one that takes a moved
        request over, :mod:`~qnetstack.network.reroute`): reserve memory along the path in name
        order, or start at once when no node needs any; the request ends at ``deadline_ns``."""
        to_reserve = sorted(node for node, qubits in needs.items() if qubits > 0)
        if not to_reserve:
            self.ctx.send_peer(forward.path[1], forward)
        circuit = self._open(forward, label)
        assert isinstance(circuit, CircuitEnd)
        self._open_requests[forward.request_id] = circuit
        circuit.deadline_ns = deadline_ns
        if to_reserve:
            circuit.needs, circuit.to_reserve, circuit.forward = needs, to_reserve, forward
            circuit.fire(CircuitEvent.RESERVE)
            self._reserve_next(circuit)
        else:
            self._run(circuit)
        if deadline_ns is not None and not circuit.ended:
            circuit.deadline_timer = self.ctx.set_timer(max(1, deadline_ns - self.ctx.now_ns), ("deadline", *circuit.key))
        return circuit

    def _route(self, remote: str) -> list[str]:
        """The route of a new circuit: the best one on this node's link-state view
        (:mod:`~qnetstack.network.reroute`), else (the view has none) the best one on the whole
        topology. A view can be stale, so it never refuses a request: a circuit over a link
        that is still down fails with LINK_FAILURE, or moves to another path."""
        try:
            return self._reroute.route(remote)
        except NoRoute:
            return shortest_route(self.topology, self.ctx.node, remote, self.metric)

    def _never_fits(self, needs: dict[str, int]) -> str | None:
        """Why the circuit can never be set up for lack of memory, if the qubits of its nodes are
        known (this node's from its device, the others' from the topology's ``num_qubits``)."""
        for node, qubits in needs.items():
            if qubits == 0:
                continue
            capacity = self.memory.capacity if node == self.ctx.node else self.topology.nodes[node].get("num_qubits")
            if capacity is not None and qubits > capacity:
                return self._too_small(node, capacity, qubits)
        return None

    def _too_small(self, node: str, capacity: int, qubits: int) -> str:
        return f"node {node!r} has {capacity} memory qubit(s) and the circuit would hold up to {qubits} there (policy {self.policy.name!r})"

    def _refusal(self, msg: NetRequest) -> str | None:
        me = self.ctx.node
        if msg.request_id in self._open_requests:
            return f"request_id {msg.request_id} is in use"
        if msg.type is RequestType.R:
            # The request type is shared with the link service, which gained type R
            # (remote state preparation); this network layer delivers K and M only.
            return "type R (remote state preparation) is not served end to end"
        if msg.type is RequestType.M and not correctable(msg.basis):
            return f"type M in basis {msg.basis.value}: only X, Y and Z are served end to end"
        if msg.remote_node == me or msg.remote_node not in self.topology:
            return f"unknown remote node {msg.remote_node!r}"
        return None

    def handle_peer(self, sender: str, msg: Any) -> None:
        if self._reliable is not None and isinstance(msg, (Sequenced, Ack)):
            for inner in self._reliable.received(sender, msg):
                self.handle_peer(sender, inner)
            return
        if isinstance(msg, (CircuitFailed, Release)):
            self._reroute.told_down(msg.down_link)
        if isinstance(msg, LinkStateAdvert):
            self._reroute.advert(sender, msg)
            return
        if isinstance(msg, TailDelivered):
            self._reroute.tail_delivered(msg)
            return
        if isinstance(msg, Probe):
            self._reroute.probed(sender, msg)
            return
        if isinstance(msg, ProbeAnswer):
            self._reroute.probe_answered(msg)
            return
        if isinstance(msg, Forward):
            self._set_up(msg)
            return
        if isinstance(msg, HopFreed):
            self._hop_freed(msg)
            return
        if isinstance(msg, Reserve):
            self._reserve_here(msg)
            return
        if isinstance(msg, Reserved):
            self._reserved_at(msg)
            return
        if isinstance(msg, Release):
            self._release_here(msg)
            return
        if isinstance(msg, PairDiscarded):
            self._pair_discarded(sender, msg)
            return
        if isinstance(msg, CircuitDone):
            self._circuit_done(msg)
            return
        if isinstance(msg, DistillOutcome) and self._distiller is not None:
            self._distiller.outcome(sender, msg)
            return
        if isinstance(msg, EndToEndOutcome) and self._e2e is not None:
            self._e2e.outcome(sender, msg)
            return
        if isinstance(msg, SegmentReady):
            self._segment_ready(msg)
            return
        if isinstance(msg, CircuitFailed):
            self._pass_on(sender, msg)
        if isinstance(msg, (SwapRecord, CircuitFailed)):
            key = (msg.head, msg.circuit)
            circuit = self._circuits.get(key)
            if circuit is None:
                drop_unknown(self.ctx.trace, msg.kind, key, sender=sender)
            elif isinstance(msg, CircuitFailed):
                # a head still reserving releases what it asked for (a node lost a link of the path)
                reserving = circuit.state is CircuitState.RESERVING
                self._fail(circuit, CircuitEvent.TOLD_FAILED, msg.detail, tell_path=reserving, code=msg.code, down_link=msg.down_link)
            elif isinstance(circuit, CircuitEnd):
                circuit.file_record(msg)
                assert circuit.near_hop is not None
                for pair in self._pairs.held(circuit.near_hop):
                    self._try_deliver(circuit, pair)
                    if circuit.ended:
                        break
            else:
                raise EntityError(f"swap record for circuit {key} reached {self.ctx.node}, which is not an end of it")
            return
        raise EntityError(f"network layer got {type(msg).__name__} from peer {sender!r}")

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, LinkOkKeep):
            self._reroute.link_pair(msg.remote_node, msg.goodness)
            self._link_pair(msg)
        elif isinstance(msg, LinkAck):
            request = self._requests.get(msg.tag) if msg.tag is not None else None
            if request is None:
                drop_unknown(self.ctx.trace, msg.kind, msg.tag, create_id=msg.create_id)
                return
            request.create_id = msg.create_id
            request.cancellable = msg.cancellable
            self._requests_by_create_id[msg.create_id] = request
            if request.withdrawn:  # its circuit ended before the ACK came
                self._withdraw(request)
        elif isinstance(msg, LinkError):
            self._link_failed(msg)
        elif isinstance(msg, LinkState):
            if msg.up:
                self._reroute.link_changed(msg.remote_node, up=True)
            else:
                self._neighbour_down(msg.remote_node, "the link layer reports it down")
        elif isinstance(msg, LinkOkMeasure):
            raise EntityError("this network layer asks only for type K link pairs, yet got a type M OK")
        else:
            raise EntityError(f"network layer got {type(msg).__name__} from below")

    def handle_device(self, tag: Hashable, result: Any) -> None:
        """The device finished an operation a circuit handed it (:meth:`_to_device`); ``tag`` is
        ``("device", head, circuit)``. A circuit that ended meanwhile is gone: the answer is
        dropped, and the qubits the operation left held (a gate's) are freed now."""
        key = cast("tuple[str, int]", cast("tuple[str, str, int]", tag)[1:])
        self._device_ops.pop(key, None)
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is not _AT_DEVICE:
            for handle in self._left_at_device.pop(key, ()):
                self.ctx.device.execute(FreeQubit(handle=handle))
            drop_unknown(self.ctx.trace, "device_response", key)
            return
        context = circuit.device_context
        circuit.at_device = circuit.device_context = None
        if isinstance(context, Round) and self._distiller is not None:
            self._distiller.device_done(circuit, context, result)
            return
        if isinstance(context, EndToEndRound) and self._e2e is not None:
            self._e2e.device_done(cast(CircuitEnd, circuit), context, result)
            return
        if isinstance(circuit, CircuitAtRepeater):
            up, down = context
            self._try_swap(circuit, (up, down, result))
        else:
            self._measured(cast(CircuitEnd, circuit), context, result)
        if self._distiller is not None and not circuit.ended:
            self._distiller.resume(circuit)  # rounds that waited while the device was busy
        if self._e2e is not None and isinstance(circuit, CircuitEnd):
            self._e2e.resume(circuit)  # end-to-end rounds that waited while the device measured

    def _takes_time(self, op: Any) -> bool:
        """Whether ``op`` takes the device's time (then it goes through ``request_device``).
        With no durations every operation is executed at once, as it always was."""
        duration = getattr(self.ctx.device, "duration_ns", None)
        return duration is not None and duration(op) > 0

    def _to_device(self, circuit: Circuit, op: Any, what: str, context: Any) -> None:
        circuit.fire(CircuitEvent.TO_DEVICE)
        circuit.at_device, circuit.device_context = what, context
        self._device_ops[circuit.key] = op
        self.ctx.request_device(op, ("device", *circuit.key))

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and tag[:1] == ("deadline",):
            circuit = self._circuits.get((tag[1], tag[2]))
            if isinstance(circuit, CircuitEnd):  # still open: not every pair was delivered in time
                circuit.deadline_timer = None
                self._fail(circuit, CircuitEvent.DEADLINE, "max_time_ns ran out", tell_path=True, code=NetErrorCode.TIMEOUT)
        elif isinstance(tag, tuple) and tag[:1] == (RETRANSMIT,) and self._reliable is not None:
            self._reliable.timer(cast("tuple[str, str, int]", tag))
        elif isinstance(tag, tuple) and tag[:1] == ("moving",):
            self._reroute.timer(*tag[1:])
        elif isinstance(tag, tuple) and tag[:1] == ("cutoff",):
            _, head, serial, hop, ent_key = tag
            assert self._cutoffs is not None
            self._cutoffs.fired(hop, ent_key)
            circuit = self._circuits.get((head, serial))
            pair = self._pairs.find(hop, ent_key)
            if circuit is not None and pair is not None:  # else swapped, or freed with its circuit
                self._cut_off(circuit, pair)

    # ------------------------------------------------------------ introspection

    def describe_waits(self) -> list[Wait]:
        """What each circuit at this node waits for (``qnetstack.entity``'s optional
        ``describe_waits``): computed when asked, changes nothing."""
        me = self.ctx.node
        held: dict[HopKey, int] = {}
        for pair in self._pairs:
            held[pair.hop] = held.get(pair.hop, 0) + 1
        asked: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for request in self._requests.values():
            if request.create_id is not None:
                asked.setdefault(request.circuit, []).append((me, request.create_id))
        waits = [circuit.describe_wait(held, tuple(asked.pop(key, ()))) for key, circuit in self._circuits.items()]
        if self._memory is not None:
            memory = self._memory
            for ahead, setup in enumerate(memory.waiting()):
                if setup.key[0] == me:
                    continue  # the head's own circuit says it waits for memory here
                waits.append(
                    Wait(
                        session=f"set-up of circuit {setup.key[0]}/{setup.key[1]} at {me}",
                        waiting_for=(
                            f"{setup.qubits} memory qubit(s) to set aside at {me} "
                            f"({memory.free}/{memory.capacity} unreserved, {ahead} set-up(s) ahead of it)"
                        ),
                        request=setup.request,
                    )
                )
        early = sum(count for hop, count in held.items() if hop not in self._hops)
        if early:
            waits.append(
                Wait(session=f"link pairs at {me} without a circuit", waiting_for="the set-up (Forward) of their circuit", holds=early)
            )
        for circuit_key, names in asked.items():  # link requests that outlive their circuit
            waits.append(
                Wait(
                    session=f"link requests of ended circuit {circuit_key[0]}/{circuit_key[1]} at {me}",
                    waiting_for="their end at the link layer",
                    below=tuple(names),
                )
            )
        return waits

    # ------------------------------------------------------------ reservations

    def _reserve_next(self, circuit: CircuitEnd) -> None:
        """Head: reserve at the next node in name order; once every node has, set the circuit up."""
        me = self.ctx.node
        while circuit.to_reserve:
            node = circuit.to_reserve[0]
            if node != me:
                reserve = Reserve(
                    head=me,
                    circuit=circuit.serial,
                    request_id=circuit.request_id,
                    path=tuple(circuit.path),
                    qubits=circuit.needs[node],
                    priority=circuit.priority,
                )
                self.ctx.send_peer(node, reserve)
                self._reroute.suspect_set_up(circuit)  # a node known cut off may have crashed (reroute)
                return
            if not self.memory.ask(WaitingSetUp(circuit.key, circuit.needs[me], (me, circuit.request_id), circuit.priority)):
                return  # waits here until a reservation ends (_free_memory)
            circuit.to_reserve.pop(0)
        forward = circuit.forward
        assert forward is not None
        circuit.forward = None
        self.ctx.send_peer(circuit.path[1], forward)
        self._run(circuit)

    def _reserve_here(self, msg: Reserve) -> None:
        """A head asks this node to set memory aside for its circuit: now, later or never."""
        me = self.ctx.node
        memory = self.memory
        if memory.never_fits(msg.qubits):
            refused = self._too_small(me, memory.capacity, msg.qubits)
            self.ctx.send_peer(msg.head, Reserved(head=msg.head, circuit=msg.circuit, node=me, refused=refused))
            return
        key = (msg.head, msg.circuit)
        if memory.holds(key) or key in self._circuits:
            raise EntityError(f"circuit {key} asked {me} twice for a reservation")
        self._set_up_paths[key] = (msg.request_id, tuple(msg.path))
        if memory.ask(WaitingSetUp(key, msg.qubits, (msg.head, msg.request_id), msg.priority)):
            self.ctx.send_peer(msg.head, Reserved(head=msg.head, circuit=msg.circuit, node=me))

    def _reserved_at(self, msg: Reserved) -> None:
        """Head: a node answered our ``Reserve``."""
        key = (msg.head, msg.circuit)
        circuit = self._circuits.get(key)
        if not isinstance(circuit, CircuitEnd) or circuit.state is not CircuitState.RESERVING or circuit.to_reserve[:1] != [msg.node]:
            drop_unknown(self.ctx.trace, msg.kind, key, node=msg.node)
            return
        if msg.refused is not None:
            self._fail(circuit, CircuitEvent.NO_MEMORY, msg.refused, tell_path=True, code=NetErrorCode.NORES)
            return
        circuit.to_reserve.pop(0)
        self._reserve_next(circuit)

    def _release_here(self, msg: Release) -> None:
        """The head ended a circuit before setting it up: drop what this node keeps for it."""
        key = (msg.head, msg.circuit)
        held = self._memory is not None and self._memory.holds(key)
        if msg.path[-1] == self.ctx.node and not msg.rerouting:  # the tail hears of the request only now
            if self._reroute.head_answered(msg.head, msg.request_id):
                # (or, after a move, hears that it ends: first the pairs it delivered alone are lost)
                self._reroute.lost_at_tail(msg.head, msg.path[-1], msg.request_id, msg.lost_at_tail)
                self.ctx.send_up(NetError(request_id=msg.request_id, head=msg.head, code=msg.code, detail=msg.detail))
            else:  # ended here already: the head was taken as lost (END_LOST)
                drop_unknown(self.ctx.trace, msg.kind, key)
        elif not held:
            drop_unknown(self.ctx.trace, msg.kind, key)
        if held:
            self._free_memory(key)

    def _free_memory(self, key: tuple[str, int]) -> None:
        """End ``key``'s reservation (or its wait) here and go on with the set-ups that now fit."""
        me = self.ctx.node
        self._set_up_paths.pop(key, None)
        for setup in self.memory.release(key):
            head, serial = setup.key
            if head != me:
                self.ctx.send_peer(head, Reserved(head=head, circuit=serial, node=me))
                continue
            circuit = self._circuits[setup.key]
            assert isinstance(circuit, CircuitEnd) and circuit.to_reserve[0] == me
            circuit.to_reserve.pop(0)
            self._reserve_next(circuit)

    def _hop_freed(self, msg: HopFreed) -> None:
        key = (msg.head, msg.circuit)
        circuit = self._circuits.get(key)
        if circuit is None or circuit.downstream is None:
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        circuit.freed_downstream += 1
        if circuit.state is _RUNNING or circuit.state is _AT_DEVICE:
            self._ask_link(circuit, "freed")

    def _paced(self, circuit: Circuit) -> bool:
        """Whether the circuit's link pairs are asked for one per hop at a time, both ends of the
        hop agreeing (``HopFreed``): over repeaters, when it has memory reserved here (a policy
        that reserves nothing is left to run as it asks)."""
        return circuit.hops > 1 and self._memory is not None and self._memory.reserved(circuit.key) > 0

    def _tell_hop_freed(self, circuit: Circuit, used: int) -> None:
        """This node used its ``used``-th link pair from upstream: the upstream node may ask for
        the next one (it asks ``number`` in all, so after the last there is nothing to say)."""
        # a repeater whose swaps can be voided may need its upstream pair made again after its
        # number-th swap, so it says so every time (qnetstack.network.cutoff)
        last = used >= circuit.number and not (isinstance(circuit, CircuitAtRepeater) and circuit.awaits_done)
        if not last and circuit.upstream is not None and self._paced(circuit):
            self.ctx.send_peer(circuit.upstream, HopFreed.trusted(head=circuit.head, circuit=circuit.serial))

    # ------------------------------------------------------------ set-up

    def _set_up(self, forward: Forward) -> None:
        """A ``Forward`` reached this node: take the circuit on, label the next hop and pass it on."""
        me = self.ctx.node
        key = (forward.head, forward.circuit)
        if key in self._circuits:
            raise EntityError(f"circuit {key} was set up twice at {me}")
        position = forward.path.index(me)
        downstream = forward.path[position + 1] if position + 1 < len(forward.path) else None
        label = None
        refuser = False  # this node is the one without a free label
        if downstream is not None and forward.refused is None:
            try:
                label = self.labels.acquire(downstream)
            except LabelsExhausted as exc:
                forward = forward.model_copy(update={"refused": NetErrorCode.NORES, "detail": str(exc)})
                refuser = True
        # a refused Forward's label named the hop into the refusing node, not into this one:
        # the hop from upstream carries no pairs for the circuit, so it is not filed here
        circuit = self._open(forward, label, upstream_hop=forward.refused is None or refuser)
        if forward.refused is None:
            if downstream is not None:
                self.ctx.send_peer(downstream, circuit.forward_downstream(forward))
            self._run(circuit)
            return
        # The circuit cannot be set up: the nodes before this one are told to end it, the
        # refusal travels on to the nodes after it (the tail reports it with a NetError).
        if refuser:
            self._tell_upstream(circuit.failure_notice(forward.detail, forward.refused), position)
        if downstream is not None:
            self.ctx.send_peer(downstream, forward)
        event = CircuitEvent.NO_LABEL if refuser else CircuitEvent.REFUSED
        self._fail(circuit, event, forward.detail, tell_path=False, code=forward.refused)

    def _open(self, forward: Forward, down_label: int | None, upstream_hop: bool = True) -> Circuit:
        me = self.ctx.node
        position = forward.path.index(me)
        cls = CircuitEnd if position in (0, len(forward.path) - 1) else CircuitAtRepeater
        circuit = cls(forward, me, down_label, transition_trace(self.ctx))
        self._reroute.opened(circuit, forward)
        if isinstance(circuit, CircuitAtRepeater) and self._cutoffs is not None:
            circuit.awaits_done = self._cutoffs.voidable(circuit)  # its swaps may be voided until the tail is done
        if isinstance(circuit, CircuitAtRepeater) and self._e2e is not None:
            circuit.awaits_done = True  # the ends use as many pairs as their rounds need: the tail says when done
        if not upstream_hop:
            circuit.up_hop = None
            if isinstance(circuit, CircuitEnd):
                circuit.near_hop = None
        self._circuits[circuit.key] = circuit
        for hop in circuit.hop_keys:
            self._hops[hop] = circuit
            self._ended_hops.discard(hop)
        return circuit

    def _run(self, circuit: Circuit) -> None:
        """Start a circuit that is set up: ask the link, then take the pairs that came early."""
        circuit.fire(CircuitEvent.SET_UP)
        self._ask_link(circuit, "set_up")
        if circuit.up_hop is not None:
            for pair in self._pairs.held(circuit.up_hop):
                if circuit.ended:
                    break
                self._use(circuit, pair)

    def _ask_link(self, circuit: Circuit, moment: Any) -> None:
        number = self.policy.to_ask(circuit, moment)
        if self._paced(circuit) and self._distiller is None and self._e2e is None:  # a distilling policy paces per round
            # one link request per hop at a time: the next only once both ends have used every
            # pair of the last, so neither end holds more than it reserved
            in_flight = circuit.requested - min(circuit.used_downstream, circuit.freed_downstream)
            per_request = getattr(self.policy, "pairs_per_request", 1)
            number = 0 if per_request > 1 and in_flight > 0 else min(number, per_request - in_flight)
        elif circuit.hops == 1 and isinstance(circuit, CircuitEnd) and self._distiller is None and self._keeps_head_qubits(circuit):
            number = min(number, 1 - (circuit.requested - circuit.delivered))
        if number <= 0:
            return
        assert circuit.down_hop is not None and circuit.downstream is not None
        max_time = None
        deadline = getattr(circuit, "deadline_ns", None)
        if circuit.hops == 1 and deadline is not None:
            # the link request ends 1 ns after the request's own deadline: by then the circuit has
            # failed with TIMEOUT here, so the link does not go on making pairs nobody will use
            max_time = max(1, deadline - self.ctx.now_ns + 1)
        circuit.requested += number
        tag = self._next_tag
        self._next_tag += 1
        self._requests[tag] = _LinkRequest(tag, circuit.key, circuit.down_hop, number)
        self.labels.hold(circuit.downstream, circuit.down_hop[2])
        self.ctx.send_down(
            LinkCreate.trusted(
                remote_node=circuit.downstream,
                min_fidelity=circuit.link_min_fidelity,
                purpose_id=circuit.down_hop[2],
                number=number,
                type=RequestType.K,
                max_time_ns=max_time,
                tag=tag,
                priority=circuit.priority,
            )
        )

    def _keeps_head_qubits(self, circuit: CircuitEnd) -> bool:
        """Whether the layer above holds qubits of its own at this head (``NetRequest.head_qubits``,
        counted in ``needs``). One hop then asks its link for one pair at a time, the next once
        the last is handed up: a link asked for all of them fills the memory as it allows and
        would take the qubits set aside for the layer above."""
        return circuit.needs.get(self.ctx.node, 0) > self.policy.qubits_held(1, 0)

    def _end_request(self, request: _LinkRequest) -> None:
        """A link request of ours ended: forget it and let go of its label."""
        del self._requests[request.tag]
        if request.create_id is not None:
            self._requests_by_create_id.pop(request.create_id, None)
        self.labels.release(request.hop[0], request.hop[2])

    # ------------------------------------------------------------ link pairs

    def _link_pair(self, ok: LinkOkKeep) -> None:
        me = self.ctx.node
        if ok.origin_node == me:
            request = self._requests_by_create_id.get(ok.create_id)
            if request is not None:
                request.made += 1
                if request.made >= request.number:
                    self._end_request(request)
        hop = hop_key(ok)
        circuit = self._hops.get(hop)
        if circuit is None:
            if hop in self._ended_hops or ok.origin_node == me:
                # made for a circuit that has ended here (a link request still running when it
                # ended): nobody will use it, so it must not hold the memory
                self.ctx.device.execute(FreeQubit(handle=ok.handle))
                drop_unknown(self.ctx.trace, ok.kind, hop, freed=ok.handle)
            else:
                self._pairs.add(ok, hop)  # the circuit's Forward is still on its way here
            return
        self._use(circuit, self._pairs.add(ok, hop))

    def _use(self, circuit: Circuit, pair: LinkPair) -> None:
        for stale in self.policy.to_discard(circuit, self._pairs):
            self.ctx.device.execute(FreeQubit(handle=stale.handle))
            self._pairs.end(stale, PairEvent.FREE)
        cutoffs = self._cutoffs
        if cutoffs is not None and cutoffs.applies(circuit):
            # a pair older than the cutoff is never swapped: its timer may not have run yet
            # when a partner arrives in the same nanosecond
            for stale in cutoffs.expired(circuit, self._pairs, self.ctx.now_ns):
                self._cut_off(circuit, stale)
            if pair.state is _HELD:
                cutoffs.start(pair, self.ctx.now_ns, self.ctx.set_timer, ("cutoff", *circuit.key, pair.hop, pair.key))
        if self._distiller is not None:
            self._distiller.pair_arrived(circuit, pair.hop)  # rounds on the hop, then swaps or deliveries
        elif isinstance(circuit, CircuitEnd):
            if pair.state is _HELD:  # the policy did not discard it just now
                self._try_deliver(circuit, pair)
        else:
            self._try_swap(cast(CircuitAtRepeater, circuit))  # a circuit not at an end is at a repeater
            if cutoffs is not None:
                cutoffs.cancel_used(circuit, self._pairs, self.ctx.cancel_timer)

    def _try_swap(self, circuit: CircuitAtRepeater, measured: tuple[LinkPair, LinkPair, Any] | None = None) -> None:
        """Swap while the policy picks two link pairs. A Bell measurement that takes the device's
        time is handed to it and the circuit waits ``at_device``; ``measured`` is the pairs and the
        result the device answered with (:meth:`handle_device`), taken up here."""
        while circuit.state is _RUNNING or measured is not None:
            if measured is None:
                chosen = self.policy.to_swap(circuit, self._pairs)
                if chosen is None:
                    return
                up, down = chosen
                bell_measure = BellMeasure.trusted(handle_a=up.handle, handle_b=down.handle)
                if self._takes_time(bell_measure):
                    self._to_device(circuit, bell_measure, "the Bell measurement of a swap", (up, down))
                    return
                result = self.ctx.device.execute(bell_measure)
            else:
                up, down, result = measured
                measured = None
                circuit.fire(CircuitEvent.DEVICE_DONE)
            if not isinstance(result, BellMeasureResult):
                raise EntityError(f"Bell measurement for a swap failed: {result}")
            self._pairs.end(up, _PAIR_SWAP)
            self._pairs.end(down, _PAIR_SWAP)
            self._tell_hop_freed(circuit, circuit.swapped + 1)
            record = SwapRecord.trusted(
                head=circuit.head,
                circuit=circuit.serial,
                request_id=circuit.request_id,
                position=circuit.position,
                swap_index=circuit.swapped,
                outcome=result.bell_state,
                upstream_ent_id=up.ok.ent_id,
                downstream_ent_id=down.ok.ent_id,
                upstream_bell_state=up.ok.bell_state,
                downstream_bell_state=down.ok.bell_state,
                upstream_goodness=up.ok.goodness,
                downstream_goodness=down.ok.goodness,
                **swap_estimates(up.ok, down.ok, up.hop[0], down.hop[0], self.ctx.now_ns, self.ctx.device.capabilities()),
                herald_ns=(up.ok.goodness_time_ns, down.ok.goodness_time_ns),
                swapped_ns=self.ctx.now_ns,
            )
            self.ctx.trace("network.swap", head=circuit.head, request_id=circuit.request_id, index=circuit.swapped)
            self.ctx.send_peer(circuit.head, record)
            self.ctx.send_peer(circuit.tail, record)
            if isinstance(self.policy, NestedPolicy):
                self._tell_parent(circuit, up, down)
            if self._cutoffs is not None and self._cutoffs.voidable(circuit):
                self._joined(circuit, up, down)
            circuit.swapped += 1
            circuit.fire(_CIRCUIT_SWAP)
            if circuit.swapped >= circuit.number and not circuit.awaits_done:
                circuit.fire(CircuitEvent.COMPLETE)
                self._forget(circuit)
            else:
                self._ask_link(circuit, "swap")

    def _tell_parent(self, circuit: CircuitAtRepeater, up: LinkPair, down: LinkPair) -> None:
        """Nested swapping: the repeater that joins the segment just made learns it spans it."""
        assert isinstance(self.policy, NestedPolicy)
        notice = self.policy.swapped(circuit, up, down)
        if notice is not None:
            self.ctx.send_peer(*notice)

    def _segment_ready(self, msg: SegmentReady) -> None:
        """Nested swapping: a pair of ours spans a segment now; the policy may swap it."""
        key = (msg.head, msg.circuit)
        circuit = self._circuits.get(key)
        if not isinstance(circuit, CircuitAtRepeater) or not isinstance(self.policy, NestedPolicy):
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        self.policy.learn(circuit, msg)
        self._try_swap(circuit)

    def _try_deliver(self, circuit: CircuitEnd, pair: LinkPair) -> None:
        if circuit.state is _AT_DEVICE:
            return  # one pair at a time: the next once the device has answered (_measured)
        if self._e2e is not None:
            self._e2e.offered(circuit, pair)  # end-to-end distillation: only kept pairs are delivered
            return
        if circuit.hops == 1:
            records: list[SwapRecord] = []
        else:
            found = circuit.chain(pair.key)
            if found is None:
                return
            records = sorted(found, key=lambda r: r.position)
        if self._cutoffs is not None and self._over_circuit_cutoff(circuit, pair, records):
            return
        if not self.policy.to_deliver(circuit, pair, records):
            return
        if records:
            circuit.drop_records(records)
        ok = pair.ok
        if records:
            frame = chain_frame(
                [records[0].upstream_bell_state, *(r.downstream_bell_state for r in records)],
                [r.outcome for r in records],
            )
            # the estimate of the pair as it is now, both end halves decohered until now
            goodness_time = self.ctx.now_ns
            goodness = chain_estimate(records, goodness_time)
            # the first repeater numbers its swaps, and both ends hear from it
            index = records[0].swap_index
        else:
            frame, goodness, goodness_time = ok.bell_state, ok.goodness, ok.goodness_time_ns
            index = circuit.delivered  # one link request, whose pairs both ends see in the order made
        # the id as fields: validated inside the delivery's own validation (one pass, not two)
        pair_id = {"head": circuit.head, "tail": circuit.tail, "request_id": circuit.request_id, "index": index}
        if circuit.type is _K:
            self._pairs.end(pair, _PAIR_DELIVER)
            delivery = PairDelivered(
                pair_id=pair_id,
                remote_node=circuit.remote,
                bell_state=frame,
                goodness=goodness,
                goodness_time_ns=goodness_time,
                handle=ok.handle,
            )
        else:
            measure = Measure(handle=ok.handle, basis=circuit.basis)
            measuring = (pair, frame, goodness, goodness_time, pair_id, index)
            if self._takes_time(measure):
                self._to_device(circuit, measure, "the measurement of an end-to-end pair", measuring)
                return
            self._measured(circuit, measuring, self.ctx.device.execute(measure), at_device=False)
            return
        self._hand_up(circuit, delivery, index)

    def _measured(self, circuit: CircuitEnd, measuring: Any, result: Any, at_device: bool = True) -> None:
        """Type M: the end-to-end pair's qubit was measured; deliver its outcome. After a
        measurement that took the device's time, the pairs that became ready meanwhile follow."""
        pair, frame, goodness, goodness_time, pair_id, index = measuring
        if at_device:
            circuit.fire(CircuitEvent.DEVICE_DONE)
        if not isinstance(result, MeasureResult):
            raise EntityError(f"measuring an end-to-end pair failed: {result}")
        self._pairs.end(pair, PairEvent.MEASURE)
        outcome: int = result.outcome
        if not circuit.is_head and outcome_flips(frame, circuit.basis):
            outcome ^= 1
        delivery = PairDelivered(
            pair_id=pair_id,
            remote_node=circuit.remote,
            bell_state=BellState.PHI_PLUS,
            goodness=goodness,
            goodness_time_ns=goodness_time,
            outcome=outcome,
            basis=circuit.basis,
        )
        self._hand_up(circuit, delivery, index)
        if at_device and not circuit.ended and circuit.near_hop is not None:
            for ready in self._pairs.held(circuit.near_hop):
                self._try_deliver(circuit, ready)
                if circuit.ended or circuit.state is _AT_DEVICE:
                    break

    def _hand_up(self, circuit: CircuitEnd, delivery: PairDelivered, index: int) -> None:
        self.ctx.trace("network.deliver", head=circuit.head, request_id=circuit.request_id, index=index)
        self.ctx.send_up(delivery)
        circuit.delivered += 1
        self._reroute.handed_up(circuit, index)
        circuit.fire(_CIRCUIT_DELIVER)
        if circuit.delivered >= circuit.number:
            if not circuit.is_head and (self._e2e is not None or (self._cutoffs is not None and self._cutoffs.voidable(circuit))):
                self._tell_done(circuit)
            circuit.fire(CircuitEvent.COMPLETE)
            self._forget(circuit)
        elif self._e2e is not None:
            self._e2e.handed_up(circuit)  # its own pacing (qnetstack.network.distill_e2e)
        elif circuit.is_head:
            self._ask_link(circuit, "deliver")
        else:
            self._tell_hop_freed(circuit, circuit.delivered)

    # ------------------------------------------------------------ cutoffs

    def _cut_off(self, circuit: Circuit, pair: LinkPair) -> None:
        """This repeater discards ``pair``, older than the cutoff: both ends of its hop free it
        (or void the swap that used it) and the hop's creator asks for a new one
        (:mod:`qnetstack.network.cutoff`)."""
        self.ctx.trace("network.cutoff", head=circuit.head, request_id=circuit.request_id, hop=pair.remote_node, ent_key=pair.key)
        self.ctx.send_peer(pair.remote_node, PairDiscarded(head=circuit.head, circuit=circuit.serial, ent_id=pair.ok.ent_id))
        assert self._cutoffs is not None
        self._cutoffs.stop(pair, self.ctx.cancel_timer)
        self._discard(circuit, pair)

    def _pair_discarded(self, sender: str, msg: PairDiscarded) -> None:
        """Link pair ``msg.ent_id`` on our hop with ``sender`` is dead and gone at the sender: free
        our half of it, or void the swap that used it. From the downstream end of the hop this
        also settles the pair: the hop's next pair may be asked for."""
        key = (msg.head, msg.circuit)
        circuit = self._circuits.get(key)
        ent = msg.ent_id
        ent_key = (ent.creator, ent.peer, ent.sequence)
        hop = None if circuit is None else next((h for h in circuit.hop_keys if h[0] == sender), None)
        if circuit is None or hop is None:  # the circuit ended here, and freed the pair with it
            drop_unknown(self.ctx.trace, msg.kind, key, ent_id=ent_key)
            return
        settled = hop == circuit.down_hop
        if settled:
            circuit.requested -= 1  # the dead pair is asked anew
            if msg.hop_freed_void:
                circuit.freed_downstream -= 1  # the sender's swap of it, which it told us of, is void
        pair = self._pairs.find(hop, ent_key)
        joined = circuit.joined.pop(ent_key, None) if isinstance(circuit, CircuitAtRepeater) else None
        if pair is not None:
            if isinstance(circuit, CircuitEnd):
                circuit.drop_chain(ent_key)
            self._free_dead(pair)
            if not settled and isinstance(circuit, CircuitAtRepeater):  # we held it: settle it upstream
                self.ctx.send_peer(sender, PairDiscarded(head=circuit.head, circuit=circuit.serial, ent_id=ent))
        elif joined is not None:
            self._void(cast(CircuitAtRepeater, circuit), joined, sender)
        elif isinstance(circuit, CircuitEnd):
            circuit.drop_chain(ent_key)  # freed here already (a per-circuit cutoff): its records go too
        if settled and circuit.state is _RUNNING:
            self._ask_link(circuit, "freed")

    def _void(self, circuit: CircuitAtRepeater, joined: JoinedPairs, told_by: str) -> None:
        """A link pair of a swap this repeater made is dead, so the swap is void: count it no
        more and tell the other end of each of its two pairs (not the one that told us of it,
        unless it is upstream: we settle every upstream pair there, taking back our HopFreed)."""
        circuit.joined.pop(joined.up.key, None)
        circuit.joined.pop(joined.down.key, None)
        circuit.swapped -= 1
        self.ctx.trace("network.swap_void", head=circuit.head, request_id=circuit.request_id, up=joined.up.key, down=joined.down.key)
        up = PairDiscarded(head=circuit.head, circuit=circuit.serial, ent_id=joined.up.ok.ent_id, hop_freed_void=joined.hop_freed)
        self.ctx.send_peer(joined.up.remote_node, up)
        if joined.down.remote_node != told_by:
            self._tell_downstream(circuit, joined.down)

    def _tell_downstream(self, circuit: Circuit, pair: LinkPair) -> None:
        """Our downstream pair ``pair`` is dead: tell the hop's other end. A repeater there settles
        it with a ``PairDiscarded`` of its own; the tail never swaps, so it is settled at once."""
        self.ctx.send_peer(pair.remote_node, PairDiscarded(head=circuit.head, circuit=circuit.serial, ent_id=pair.ok.ent_id))
        if circuit.downstream == circuit.tail:
            circuit.requested -= 1
            if circuit.state is _RUNNING:
                self._ask_link(circuit, "freed")

    def _joined(self, circuit: CircuitAtRepeater, up: LinkPair, down: LinkPair) -> None:
        """Remember a swap that may be voided (called before ``swapped`` counts it)."""
        last = circuit.swapped + 1 >= circuit.number and not circuit.awaits_done
        hop_freed = not last and circuit.upstream is not None and self._paced(circuit)  # as _tell_hop_freed decided
        joined = JoinedPairs(up, down, hop_freed)
        circuit.joined[up.key] = circuit.joined[down.key] = joined

    def _discard(self, circuit: Circuit, pair: LinkPair) -> None:
        """Free ``pair``, which this node cut off or found too old: the other end of its hop is
        told (``_cut_off``, ``_over_circuit_cutoff``); a downstream pair is asked anew once settled."""
        self._free_dead(pair)
        if pair.hop == circuit.down_hop and circuit.downstream == circuit.tail:
            circuit.requested -= 1  # the tail never swaps: its half is freed by our notice
            if circuit.state is _RUNNING:
                self._ask_link(circuit, "freed")

    def _free_dead(self, pair: LinkPair) -> None:
        if self._cutoffs is not None:
            self._cutoffs.stop(pair, self.ctx.cancel_timer)
        self.ctx.device.execute(FreeQubit(handle=pair.handle))
        self._pairs.end(pair, PairEvent.FREE)

    def _over_circuit_cutoff(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool:
        """Per-circuit cutoff: whether the chain of ``pair`` and ``records`` is too old to deliver.
        If it is, both ends free their halves (each decides alike from the same records) and
        the head voids the chain's swaps with ``PairDiscarded``, so every hop makes a new pair."""
        assert self._cutoffs is not None
        age = self._cutoffs.too_old(records)
        if age is None:
            return False
        self.ctx.trace("network.circuit_cutoff", head=circuit.head, request_id=circuit.request_id, age_ns=age, ent_key=pair.key)
        circuit.drop_records(records)
        if circuit.is_head:
            assert circuit.downstream is not None
            self.ctx.send_peer(circuit.downstream, PairDiscarded(head=circuit.head, circuit=circuit.serial, ent_id=pair.ok.ent_id))
        self._discard(circuit, pair)
        return True

    def _tell_done(self, circuit: CircuitEnd) -> None:
        """Tail, all pairs delivered: the repeaters, which keep the circuit while a swap of theirs
        could still be voided, may end it."""
        for node in circuit.path[1:-1]:
            self.ctx.send_peer(node, CircuitDone(head=circuit.head, circuit=circuit.serial))

    def _circuit_done(self, msg: CircuitDone) -> None:
        key = (msg.head, msg.circuit)
        circuit = self._circuits.get(key)
        if not isinstance(circuit, CircuitAtRepeater):
            drop_unknown(self.ctx.trace, msg.kind, key)
            return
        circuit.awaits_done = False
        if circuit.state is _RUNNING:
            circuit.fire(CircuitEvent.COMPLETE)
            self._forget(circuit)
        # at the device: the swap under way completes it (_try_swap)

    # ------------------------------------------------------------ failures and the end

    def _link_failed(self, err: LinkError) -> None:
        """A link request of ours failed: the circuit cannot be completed.

        Errors for requests another node made are left to that node, which
        tells the ends (it knows which circuit its request served), except DOWN:
        the link to that node (the request's origin is the neighbour at its other
        end) is cut, and the origin may have crashed with it, so this end fails
        the circuits it runs over that link itself (:meth:`_neighbour_down`)."""
        if err.origin_node != self.ctx.node:
            if err.code is LinkErrorCode.DOWN:
                self._neighbour_down(err.origin_node, err.detail)
            return
        request = self._requests.get(err.tag) if err.tag is not None else None
        if request is None:
            drop_unknown(self.ctx.trace, err.kind, err.tag, create_id=err.create_id, code=err.code.value)
            return
        if err.code is not LinkErrorCode.EXPIRE:  # every other code ends the link request
            self._end_request(request)
        if err.code is LinkErrorCode.DOWN:
            self._neighbour_down(request.hop[0], err.detail)
            return
        circuit = self._circuits.get(request.circuit)
        if circuit is None:
            return  # the circuit ended before its link request did: nothing left to fail
        detail = f"link request to {request.hop[0]}: {err.code.value} {err.detail}".strip()
        # a link that can never serve the request (e.g. not at the per-link fidelity) makes the
        # request impossible; any other link error is a failure that a retry might get past
        code = NetErrorCode.UNSUPP if err.code is LinkErrorCode.UNSUPP else NetErrorCode.LINK_FAILURE
        self._fail(circuit, CircuitEvent.LINK_FAILED, detail, tell_path=True, code=code)

    def _neighbour_down(self, neighbour: str, detail: str) -> None:
        """The link to ``neighbour`` is down: every running circuit that uses it here ends
        with LINK_FAILURE, and the rest of its path is told (each node frees its pairs and
        its reservation); so does a circuit this node heads that is still reserving, when its
        first hop is that link or it waits for that neighbour's answer (which may never come:
        the neighbour may have crashed)."""
        me = self.ctx.node
        why = f"link to {neighbour}: DOWN {detail}".strip()
        down = (me, neighbour)
        self._reroute.link_changed(neighbour, up=False)
        for circuit in list(self._circuits.values()):
            if circuit.state is _RUNNING and neighbour in (circuit.upstream, circuit.downstream):
                self._fail(circuit, CircuitEvent.LINK_FAILED, why, tell_path=True, code=NetErrorCode.LINK_FAILURE, down_link=down)
            elif circuit.state is CircuitState.RESERVING and neighbour in (circuit.downstream, *cast(CircuitEnd, circuit).to_reserve[:1]):
                # a head still reserving: its first hop is cut, or the node it waits for may have crashed
                self._fail(circuit, CircuitEvent.LINK_FAILED, why, tell_path=True, code=NetErrorCode.LINK_FAILURE, down_link=down)
        for key, (request_id, path) in list(self._set_up_paths.items()):
            if key in self._circuits or neighbour not in path:
                continue
            head, serial = key
            if head != neighbour:  # the head ends the set-up and releases every node it asked
                failed = CircuitFailed(head=head, circuit=serial, request_id=request_id, detail=why, path=path, down_link=down)
                self.ctx.send_peer(head, failed)
                continue
            # the head itself is cut off (it may have crashed): release the set-up on its behalf
            release = Release(
                head=head, circuit=serial, request_id=request_id, path=path, code=NetErrorCode.LINK_FAILURE, detail=why, down_link=down
            )
            for node in sorted(set(path) - {head, me}):
                self.ctx.send_peer(node, release)
            self._free_memory(key)

    def _fail(
        self,
        circuit: Circuit,
        event: CircuitEvent,
        detail: str,
        tell_path: bool,
        code: NetErrorCode,
        down_link: tuple[str, str] | None = None,
    ) -> None:
        """End ``circuit`` here (NetError up at an end), telling the path if ``tell_path``;
        ``down_link`` (a link that went down) goes with what the path is told. An end whose
        request moves to another path (:mod:`~qnetstack.network.reroute`) reports no NetError."""
        moves = self._reroute.moves(circuit, code, down_link)
        reserving = circuit.state is CircuitState.RESERVING
        if tell_path and reserving:
            self._release_path(cast(CircuitEnd, circuit), detail, code, down_link, rerouting=moves)
        elif tell_path:
            # every other node of the path, repeaters included, so each frees the link pairs it holds
            self._tell_path(circuit, detail, code, down_link)
        if isinstance(circuit, CircuitEnd) and not moves:
            self.ctx.send_up(NetError(request_id=circuit.request_id, head=circuit.head, code=code, detail=detail))
        circuit.fire(event)
        self._forget(circuit)
        if moves:
            self._reroute.ended(cast(CircuitEnd, circuit), reserving, detail)

    def _release_path(
        self, circuit: CircuitEnd, detail: str, code: NetErrorCode, down_link: tuple[str, str] | None = None, rerouting: bool = False
    ) -> None:
        """Head, still reserving: every node asked so far, and the tail, drop the circuit (the
        tail waits for the request's next circuit if ``rerouting``)."""
        me = self.ctx.node
        not_asked = set(circuit.to_reserve[1:])
        release = Release(
            head=me,
            circuit=circuit.serial,
            request_id=circuit.request_id,
            path=tuple(circuit.path),
            code=code,
            detail=detail,
            down_link=down_link,
            rerouting=rerouting,
        )
        for node in sorted(set(circuit.needs) - not_asked | {circuit.tail}):
            if node != me:
                self.ctx.send_peer(node, release)

    def _tell_path(self, circuit: Circuit, detail: str, code: NetErrorCode, down_link: tuple[str, str] | None = None) -> None:
        path, position = circuit.path, circuit.position
        failed = circuit.failure_notice(detail, code)
        if down_link is not None:
            failed = failed.model_copy(update={"down_link": down_link})
        self._tell_upstream(failed, position)
        if position + 1 < len(path):
            self.ctx.send_peer(path[position + 1], failed)  # passed on hop by hop (_pass_on)

    def _tell_upstream(self, failed: CircuitFailed, position: int) -> None:
        """Every node before this one on the path hears of the failure straight away
        (downstream it travels hop by hop, so it cannot overtake the set-up)."""
        for node in sorted(failed.path[:position]):
            self.ctx.send_peer(node, failed)

    def _pass_on(self, sender: str, msg: CircuitFailed) -> None:
        """Pass a ``CircuitFailed`` that came from upstream on to the next node of its path."""
        me = self.ctx.node
        path = msg.path
        if me not in path or sender not in path:
            return
        position = path.index(me)
        if path.index(sender) < position and position + 1 < len(path):
            self.ctx.send_peer(path[position + 1], msg)

    def _withdraw(self, request: _LinkRequest) -> None:
        """Its circuit has ended: cancel the link request where the link serves that, so it
        makes no more pairs; its label is freed when the link's ERR CANCELLED ends it
        (:meth:`_end_request`). On a link without cancel it runs on until it ends, as before."""
        request.withdrawn = True
        if request.cancellable and request.create_id is not None:
            self.ctx.send_down(LinkCancel(create_id=request.create_id))

    def _forget(self, circuit: Circuit) -> None:
        """Drop an ended circuit and free the link pairs it still holds (only a failed
        circuit holds any: a swap or a delivery hands each pair on)."""
        me = self.ctx.node
        for request in [r for r in self._requests.values() if r.circuit == circuit.key]:
            self._withdraw(request)
        under_way = self._device_ops.get(circuit.key)
        if under_way is not None:
            # the device still works on some of the circuit's qubits: a measurement frees them
            # itself, the qubits of a gate are freed when it answers (handle_device)
            self._left_at_device[circuit.key] = _left_held(under_way)
        for hop in circuit.hop_keys:
            for pair in self._pairs.held(hop):
                self.ctx.device.execute(FreeQubit(handle=pair.handle))
                self._pairs.end(pair, PairEvent.FREE)
            if self._hops.get(hop) is circuit:
                del self._hops[hop]
            self._ended_hops.add(hop)
            if hop[1] == me:
                self.labels.release(hop[0], hop[2])
        if isinstance(circuit, CircuitEnd):
            circuit.records.clear()
            if circuit.deadline_timer is not None:
                self.ctx.cancel_timer(circuit.deadline_timer)
                circuit.deadline_timer = None
        del self._circuits[circuit.key]
        if circuit.head == me and self._open_requests.get(circuit.request_id) is circuit:
            del self._open_requests[circuit.request_id]
        if self._memory is not None and self._memory.holds(circuit.key):
            self._free_memory(circuit.key)


def _left_held(op: Any) -> tuple[int, ...]:
    """The qubits a device operation leaves held when it completes (a measurement frees its own)."""
    if isinstance(op, ApplyGate):
        return (op.handle,)
    if isinstance(op, ApplyTwoQubitGate):
        return (op.control, op.target)
    return ()
