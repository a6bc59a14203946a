"""Link-state routing at a node, and open circuits moved off a link that went down.

Theory of operation
-------------------
**Views.** Every node routes new circuits on its own
:class:`~qnetstack.network.linkstate.LinkStateView`. It changes the view only
from what it sees itself and what it is told:

* its link layer says one of its links went down or came back (``LinkState``,
  ``LinkError`` DOWN): the node updates its view and floods a
  ``LinkStateAdvert`` to its neighbours as peer messages (``ctx.send_peer``);
* its own link pairs come in clearly worse than their link announced
  (:class:`~qnetstack.network.linkstate.FidelityWatch`): it advertises the
  measured fidelity, and advertises the link as assembled again once it
  recovers;
* an advertisement newer than any it holds from that origin: it takes it in
  and floods it on to every neighbour but the sender;
* a circuit failure notice (``CircuitFailed``, ``Release``) naming the link
  that went down (``down_link``): the link is down in its view at once
  (hearsay, replaced by the next advertisement of the link's end).

A run in which no link changes sends no advertisement, so it is the same,
event for event, as one without link-state routing.

**Moving a circuit (rerouting).** When a circuit ends at an end because a link
of its path went down (code LINK_FAILURE with the link known), that end does
not report a ``NetError``:

* the tail tells the head how many pairs of the request it has delivered,
  and which (``TailDelivered``), and waits; the head waits for that count at most four
  times the classical delay along the old path (twice what the notice and the
  answer need), then ends the request (the tail may have crashed);
* the head, once it knows both ends' counts (its own, and the tail's, or the
  circuit's first index when the circuit ended while still reserving memory,
  before the tail heard of it), picks the best route on its view from itself
  to the tail (the view already lacks the link that went down) and sets a new
  circuit up along it for the same request: same ``request_id``, pairs
  numbered on after every index either end has used (``Forward.first_index``),
  so no index is ever delivered twice at an end. Pairs already delivered at
  both ends stay delivered. The old circuit has freed its link pairs and
  reservations along its path as any failed circuit does; the new circuit
  reserves its own.
* **Pairs delivered at one end only.** The failure reaches the two ends at
  different times, so one end may have delivered a pair whose other half was
  freed before the other end could (a link pair or swap record still on its
  way). Such a pair will never be delivered at the other end. The head,
  knowing both ends' indices, sends ``PairLost`` up for the pairs only it
  delivered, and names the pairs only the tail delivered in the next
  ``Forward`` (``lost_at_tail``), or in the ``Release`` that ends the request,
  so the tail sends ``PairLost`` up for those (specs/network.md NET-PAIR-6).
  The new circuit makes one pair for every pair the request still lacks at
  both ends, lost ones included, under *new* indices: the user still gets
  ``number`` pairs delivered at both ends, and a lost pair's index is never
  used again. Reusing it would let a late message about the lost pair (the
  application's own, which may be delayed) be taken for its replacement.
  So after a move that lost pairs the indices of a request reach past
  ``number`` (``Forward.number`` is then the end of the new circuit's indices,
  not the request's count).
* At most ``MAX_REROUTES`` times per request. When retries are exhausted, no
  route is left in the view, or the new route cannot be taken (memory,
  labels, the policy's limits), the request ends with ``NetError``
  LINK_FAILURE at the head, and the head sends the tail a ``Release`` so it
  reports the same. The request's deadline (``max_time_ns``) still holds
  across moves: it ends with TIMEOUT when it runs out, also while waiting for
  the tail.

The application sees one request: one ``NetAccepted`` (with the first path),
pairs, and a ``NetError`` only if the request cannot be completed.

**An end that is lost.** An end learns that the other end crashed only by its
silence, so it asks (``Probe``) and waits a bounded time for the answer
(``ProbeAnswer``), four classical delays of the path, twice what the question
and the answer need:

* a head whose tail does not send its count in time ends the request with
  ``NetError`` END_LOST (the tail crashed, or every message of it was lost);
* a tail whose circuit ended on a link going down sends the head its count
  and a ``Probe`` about the request; a head that still holds the request
  answers at once, and the tail then waits for its next ``Forward`` or its
  ``Release`` as long as that takes. A head that does not answer in time
  (it crashed, or restarted and forgot the request) ends the request at the
  tail with ``NetError`` END_LOST; a ``Release`` or ``Forward`` of it that
  comes later is dropped;
* a head still reserving memory waits for one node's ``Reserved``, which may
  take long (the node queues the set-up until memory is free). Once every
  link of that node is down in the head's view it probes the node: no answer
  in time, and the set-up ends as if a link of that node went down (the
  request moves around it), or, when the node is the tail, the request ends
  with END_LOST.

A ``ProbeAnswer`` only says the node still holds the circuit; a node that
never got the question (a lost message) looks crashed, as with every bound here.

Limits: a head that ends the request because the tail did not answer in time
does not know which pairs the tail delivered, so it declares none lost. A head
that answered its tail's probe and crashed later, while setting the request's
next circuit up, is not noticed by the tail, which waits for it. A head whose circuit was already complete when the
tail's failed (the tail lacked its last pairs) has forgotten the circuit and
drops the tail's count, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qnetstack.entity.machine import drop_unknown
from qnetstack.network.admission import Refused, admit
from qnetstack.network.circuit import CircuitAtRepeater, CircuitEnd, CircuitEvent, CircuitState, LabelsExhausted
from qnetstack.network.linkstate import FidelityWatch, LinkStateAdvert, LinkStateView
from qnetstack.network.peer import Forward, Probe, ProbeAnswer, Release, TailDelivered
from qnetstack.network.routing import NoRoute, shortest_route
from qnetstack.network.service import NetError, NetErrorCode, PairId, PairLost

if TYPE_CHECKING:
    from qnetstack.network.circuit import Circuit
    from qnetstack.network.node import NetworkNode

__all__ = ["MAX_REROUTES", "Rerouter"]

MAX_REROUTES = 3  # new circuits per request after the first; a fourth cut ends the request
NS_PER_KM = 5_000  # classical delay in fibre (c/n with n of about 1.5), to bound the wait for the tail


@dataclass
class _Moving:
    """A request whose circuit ended on a link going down, at its head, until its next circuit."""

    failed: CircuitEnd
    min_fidelity: float
    head_delivered: int
    tail_delivered: int | None
    head_indices: frozenset[int]  # the indices the failed circuit delivered here (at the head)
    tail_indices: frozenset[int]  # ... and at the tail (once its count is known)
    moves: int  # circuits the request has moved to so far
    detail: str
    timers: list[int] = field(default_factory=list)  # its deadline, and the bound on the tail's answer


class Rerouter:
    """The link-state view of one network node and the moves of its circuits (module docstring)."""

    def __init__(self, node: NetworkNode) -> None:
        self.node = node
        me = node.ctx.node
        self.view = LinkStateView(node.topology, me)
        self.watch = FidelityWatch(node.topology, me)
        self._moving: dict[int, _Moving] = {}  # request id -> the request being moved (head)
        # (request id, circuit) -> the tail's count and indices, come before the head heard of the failure
        self._tail_counts: dict[tuple[int, int], tuple[int, tuple[int, ...]]] = {}
        self._handed_up: dict[tuple[str, int], set[int]] = {}  # circuit key -> indices delivered here (ends)
        self._moves: dict[tuple[str, int], int] = {}  # circuit key -> moves before it (only if > 0)
        # tail: (head, request id) -> why its circuit ended, and the timer of the head's answer to
        # its probe, until the head answers
        self._awaiting_head: dict[tuple[str, int], tuple[str, int | None]] = {}
        self._head_lost: set[tuple[str, int]] = set()  # tail: requests ended here with END_LOST
        self._probes: dict[tuple[str, int], int] = {}  # head: circuit key -> timer of its set-up's probe

    # ------------------------------------------------------------ the view

    def link_changed(self, neighbour: str, *, up: bool | None = None, **figures: float | None) -> None:
        """This node observed a change of its own link to ``neighbour``: flood it if it is news."""
        if not self.view.topology.has_edge(self.node.ctx.node, neighbour):
            return
        advert = self.view.local_change(neighbour, up=up, **figures)
        if advert is not None:
            self._flood(advert, None)
            self.suspect_set_ups()

    def link_pair(self, neighbour: str, goodness: float) -> None:
        change = self.watch.observe(neighbour, goodness)
        if change is not None:
            degraded, mean = change
            self.node.ctx.trace("network.link_degraded" if degraded else "network.link_recovered", link=neighbour, mean=mean)
            self.link_changed(neighbour, fidelity=mean if degraded else None)

    def advert(self, sender: str, advert: LinkStateAdvert) -> None:
        if self.view.receive(advert):
            self._flood(advert, sender)
            self.suspect_set_ups()

    def told_down(self, link: tuple[str, str] | None) -> None:
        if link is not None:
            self.view.told_down(*link)
            self.suspect_set_ups()

    def _flood(self, advert: LinkStateAdvert, sender: str | None) -> None:
        ctx = self.node.ctx
        ctx.trace("network.advert", origin=advert.origin, sequence=advert.sequence)
        for neighbour in self.view.flood_to(sender):
            ctx.send_peer(neighbour, advert)

    def route(self, remote: str) -> list[str]:
        """The best route on this node's view; :class:`NoRoute` if the view has none."""
        node = self.node
        return shortest_route(self.view.graph(), node.ctx.node, remote, node.metric)

    # ------------------------------------------------------------ moving circuits

    def handed_up(self, circuit: CircuitEnd, index: int) -> None:
        """This end handed pair ``index`` of ``circuit`` up (after counting it); kept until the
        circuit ends, so a move can tell which pairs only one end delivered."""
        if circuit.delivered >= circuit.number:
            self._handed_up.pop(circuit.key, None)  # complete: its pairs are delivered at both ends
            return
        indices = self._handed_up.get(circuit.key)
        if indices is None:
            indices = self._handed_up[circuit.key] = set()
        indices.add(index)

    def moves(self, circuit: Circuit, code: NetErrorCode, down_link: tuple[str, str] | None) -> bool:
        """Whether ``circuit``, ending here with ``code``, is an end whose request moves on
        (then this end reports no ``NetError`` now)."""
        moves = isinstance(circuit, CircuitEnd) and code is NetErrorCode.LINK_FAILURE and down_link is not None
        if not moves:
            self._handed_up.pop(circuit.key, None)  # the circuit ends here for good
        return moves

    def ended(self, circuit: CircuitEnd, was_reserving: bool, detail: str) -> None:
        """``circuit`` ended here on a link going down (after :meth:`moves` said so) and is forgotten."""
        node = self.node
        moves = self._moves.pop(circuit.key, 0)
        indices = frozenset(self._handed_up.pop(circuit.key, ()))
        if not circuit.is_head:
            tally = TailDelivered(
                head=circuit.head,
                circuit=circuit.serial,
                request_id=circuit.request_id,
                delivered=circuit.delivered,
                indices=tuple(sorted(indices)),
            )
            node.ctx.send_peer(circuit.head, tally)
            node.ctx.send_peer(circuit.head, Probe(head=circuit.head, circuit=circuit.serial, request_id=circuit.request_id))
            wait = self._tail_bound_ns(circuit)
            timer = None if wait is None else node.ctx.set_timer(wait, ("moving", circuit.request_id, "head", circuit.head))
            self._awaiting_head[(circuit.head, circuit.request_id)] = (detail, timer)
            return
        # until its next circuit the request stays open here (a new request may not take its id)
        node._open_requests[circuit.request_id] = circuit
        # a circuit still reserving was never set up at the tail: the tail is where it started
        told = (circuit.delivered, ()) if was_reserving else self._tail_counts.pop((circuit.request_id, circuit.serial), None)
        tail, tail_indices = (None, ()) if told is None else told
        moving = _Moving(
            circuit, circuit.link_min_fidelity**circuit.hops, circuit.delivered, tail, indices, frozenset(tail_indices), moves, detail
        )
        self._moving[circuit.request_id] = moving
        ctx = node.ctx
        if circuit.deadline_ns is not None:
            moving.timers.append(ctx.set_timer(max(0, circuit.deadline_ns - ctx.now_ns), ("moving", circuit.request_id, "deadline")))
        wait = self._tail_bound_ns(circuit)
        if tail is None and wait is not None:
            moving.timers.append(ctx.set_timer(wait, ("moving", circuit.request_id, "tail")))
        self._go_on(moving)

    def _tail_bound_ns(self, circuit: CircuitEnd) -> int | None:
        """How long the head waits for the tail's count: twice the time for the failure notice
        to cross the whole path and the answer to come back (a tail that has not answered by
        then has crashed, or its messages were lost); ``None`` when a link's length is unknown."""
        topology = self.view.topology
        lengths = [topology.edges[a, b].get("length_km") for a, b in zip(circuit.path, circuit.path[1:])]
        if any(length is None for length in lengths):
            return None
        return 4 * int(sum(lengths) * NS_PER_KM) + 1

    def tail_delivered(self, msg: TailDelivered) -> None:
        moving = self._moving.get(msg.request_id)
        if moving is None or moving.failed.serial != msg.circuit:
            running = self.node._open_requests.get(msg.request_id)
            if running is not None and running.serial == msg.circuit and not running.ended:
                # the head has not heard of the failure yet: keep the count until it does
                self._tail_counts[(msg.request_id, msg.circuit)] = (msg.delivered, msg.indices)
            else:  # the request has ended or moved on without it
                drop_unknown(self.node.ctx.trace, msg.kind, (msg.head, msg.circuit), request_id=msg.request_id)
            return
        moving.tail_delivered = msg.delivered
        moving.tail_indices = frozenset(msg.indices)
        self._go_on(moving)

    def timer(self, request_id: int, what: str, *about: Any) -> None:
        """A timer of a request being moved: its deadline, or the bound on the tail's answer; or
        the bound on the answer to a probe (``what`` "head" at a tail, "set_up" at a head)."""
        if what == "head":
            self._head_silent(about[0], request_id)
            return
        if what == "set_up":
            self._set_up_silent(about[0], about[1])
            return
        moving = self._moving.get(request_id)
        if moving is None:
            return
        if what == "deadline":
            self._end(moving, NetErrorCode.TIMEOUT, "max_time_ns ran out while the request was moved to another path")
        elif moving.tail_delivered is None:
            self._end(moving, NetErrorCode.END_LOST, f"{moving.detail}; the tail did not say how many pairs it has: it is lost")

    def _go_on(self, moving: _Moving) -> None:
        if moving.tail_delivered is None:
            return  # waits for the tail's count
        node, old = self.node, moving.failed
        head_only = moving.head_indices - moving.tail_indices
        for index in sorted(head_only):
            self._lost(old.head, old.tail, old.request_id, index, f"delivered at the head only: {moving.detail}")
        if moving.moves >= MAX_REROUTES:
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; moved {moving.moves} times already")
            return
        used = moving.head_indices | moving.tail_indices
        first = max(moving.head_delivered, moving.tail_delivered, max(used) + 1 if used else 0)
        # the old circuit's indices ran from its first (the head's count before it delivered any)
        # to its number; the pairs it completed at both ends need not be made again
        old_first = moving.head_delivered - len(moving.head_indices)
        still_needed = old.number - old_first - len(moving.head_indices & moving.tail_indices)
        if still_needed <= 0:
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; one end has every pair, the other not")
            return
        try:
            path = self.route(old.tail)
        except NoRoute:
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; no other path")
            return
        admission = admit(self.view.graph(), path, moving.min_fidelity)
        if isinstance(admission, Refused):
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; no other path meets the target: {admission.reason}")
            return
        path = admission.path
        refusal = self._refusal(path)
        if refusal is not None:
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; the other path {path}: {refusal}")
            return
        try:
            label = node.labels.acquire(path[1])
        except LabelsExhausted as exc:
            self._end(moving, NetErrorCode.LINK_FAILURE, f"{moving.detail}; {exc}")
            return
        self._stop(moving)
        self._start(moving, path, label, first, first + still_needed, admission.link_min_fidelity)

    def _refusal(self, path: list[str]) -> str | None:
        """Why the head could not take a request over ``path`` (as it would refuse a new one)."""
        node = self.node
        hops = len(path) - 1
        return node._never_fits({n: node.policy.qubits_held(hops, i) for i, n in enumerate(path)})

    def _lost(self, head: str, tail: str, request_id: int, index: int, reason: str) -> None:
        """Pair ``index``, delivered at this end only, will never be delivered at the other."""
        ctx = self.node.ctx
        ctx.trace("network.pair_lost", head=head, request_id=request_id, index=index)
        pair_id = PairId(head=head, tail=tail, request_id=request_id, index=index)
        ctx.send_up(PairLost(pair_id=pair_id, reason=reason))

    def _lost_at_tail(self, moving: _Moving) -> tuple[int, ...]:
        """The indices only the tail delivered (none known while its count is awaited)."""
        if moving.tail_delivered is None:
            return ()
        return tuple(sorted(moving.tail_indices - moving.head_indices))

    def _start(self, moving: _Moving, path: list[str], label: int, first: int, end: int, link_min_fidelity: float) -> None:
        """Set up the request's next circuit along ``path``, as the head sets up a new one."""
        node, old = self.node, moving.failed
        ctx = node.ctx
        hops = len(path) - 1
        forward = Forward(
            head=old.head,
            circuit=node._next_circuit,
            request_id=old.request_id,
            path=path,
            number=end,
            type=old.type,
            basis=old.basis,
            link_min_fidelity=link_min_fidelity,
            label=label,
            first_index=first,
            priority=old.priority,
            lost_at_tail=self._lost_at_tail(moving),
        )
        node._next_circuit += 1
        ctx.trace("network.reroute", request_id=old.request_id, path=path, first_index=first)
        needs = {n: node.policy.qubits_held(hops, i) for i, n in enumerate(path)}
        # what the layer above holds at the head itself (NetRequest.head_qubits) moves with the request
        needs[old.head] += max(0, old.needs.get(old.head, 0) - node.policy.qubits_held(old.hops, 0)) if old.needs else 0
        self._moves[(forward.head, forward.circuit)] = moving.moves + 1
        node._launch(forward, label, needs, old.deadline_ns)

    def _stop(self, moving: _Moving) -> None:
        del self._moving[moving.failed.request_id]
        for timer in moving.timers:
            self.node.ctx.cancel_timer(timer)
        moving.timers.clear()

    def _end(self, moving: _Moving, code: NetErrorCode, detail: str) -> None:
        """The request cannot move on: it ends at the head, and the tail is told to end it too."""
        node, old = self.node, moving.failed
        self._stop(moving)
        if node._open_requests.get(old.request_id) is old:
            del node._open_requests[old.request_id]
        node.ctx.send_up(NetError(request_id=old.request_id, head=old.head, code=code, detail=detail))
        release = Release(
            head=old.head,
            circuit=old.serial,
            request_id=old.request_id,
            path=tuple(old.path),
            code=code,
            detail=detail,
            lost_at_tail=self._lost_at_tail(moving),
        )
        node.ctx.send_peer(old.tail, release)

    def opened(self, circuit: Circuit, forward: Forward) -> None:
        """A circuit that takes a request over counts the pairs before ``first_index`` as made
        (asked, used and freed on every hop), so its indices and its pacing go on from there."""
        if self._awaiting_head and isinstance(circuit, CircuitEnd) and not circuit.is_head:
            self._heard_from_head(forward.head, forward.request_id)  # the request goes on
        first = forward.first_index
        if forward.lost_at_tail and isinstance(circuit, CircuitEnd) and not circuit.is_head:
            self.lost_at_tail(forward.head, forward.path[-1], forward.request_id, forward.lost_at_tail)
        if first:
            circuit.requested = circuit.freed_downstream = first
            if isinstance(circuit, CircuitEnd):
                circuit.delivered = first
            elif isinstance(circuit, CircuitAtRepeater):
                circuit.swapped = first

    def lost_at_tail(self, head: str, tail: str, request_id: int, indices: tuple[int, ...]) -> None:
        """Tail: the head says these pairs of the request were delivered here only."""
        for index in indices:
            self._lost(head, tail, request_id, index, "delivered at the tail only: the request's circuit ended on a link going down")

    # ------------------------------------------------------------ an end that is lost

    def head_answered(self, head: str, request_id: int) -> bool:
        """Tail: the head's ``Release`` ends the request. False when this tail has already ended
        it with END_LOST (then nothing more may go up for it)."""
        self._heard_from_head(head, request_id)
        return (head, request_id) not in self._head_lost

    def _heard_from_head(self, head: str, request_id: int) -> None:
        waiting = self._awaiting_head.pop((head, request_id), None)
        if waiting is not None and waiting[1] is not None:
            self.node.ctx.cancel_timer(waiting[1])

    def probed(self, sender: str, msg: Probe) -> None:
        """Answer a probe if this node still holds what it asks about (module docstring)."""
        node = self.node
        key = (msg.head, msg.circuit)
        holds = key in node._circuits or key in node._set_up_paths
        if msg.head == node.ctx.node:  # at the head: the request, whichever circuit serves it now
            holds = holds or msg.request_id in node._open_requests
        if holds:
            node.ctx.send_peer(sender, ProbeAnswer(head=msg.head, circuit=msg.circuit, request_id=msg.request_id))
        else:
            drop_unknown(node.ctx.trace, msg.kind, key, sender=sender)

    def probe_answered(self, msg: ProbeAnswer) -> None:
        """The probed node still holds it: wait on (a tail for its head, a head for a set-up's answer)."""
        if msg.head != self.node.ctx.node:
            self._heard_from_head(msg.head, msg.request_id)
            return
        timer = self._probes.pop((msg.head, msg.circuit), None)
        if timer is not None:
            self.node.ctx.cancel_timer(timer)

    def _head_silent(self, head: str, request_id: int) -> None:
        """Tail: the head did not answer the probe in time: the request ends here (END_LOST)."""
        waiting = self._awaiting_head.pop((head, request_id), None)
        if waiting is None:
            return
        self._head_lost.add((head, request_id))
        ctx = self.node.ctx
        ctx.trace("network.end_lost", head=head, request_id=request_id)
        why = f"{waiting[0]}; the head {head} did not answer: it is lost"
        ctx.send_up(NetError(request_id=request_id, head=head, code=NetErrorCode.END_LOST, detail=why))

    def cut_off(self, node: str) -> bool:
        """Whether every link of ``node`` is down in this node's view (it crashed, or is cut off)."""
        view = self.view
        return not any(view.is_up(node, neighbour) for neighbour in view.topology.neighbors(node))

    def suspect_set_ups(self) -> None:
        """Head: the view changed; probe the nodes that set-ups wait for and that it now cuts off."""
        for circuit in list(self.node._open_requests.values()):
            self.suspect_set_up(circuit)

    def suspect_set_up(self, circuit: CircuitEnd) -> None:
        """Head: if ``circuit`` is reserving and waits for a node every link of which is down in
        this node's view, probe that node (once; no answer in time and the set-up ends)."""
        if circuit.state is not CircuitState.RESERVING or not circuit.to_reserve or circuit.key in self._probes:
            return
        node, waited = self.node, circuit.to_reserve[0]
        if waited == node.ctx.node or not self.cut_off(waited):
            return
        wait = self._tail_bound_ns(circuit)
        if wait is None:
            return
        node.ctx.send_peer(waited, Probe(head=circuit.head, circuit=circuit.serial, request_id=circuit.request_id))
        self._probes[circuit.key] = node.ctx.set_timer(wait, ("moving", circuit.request_id, "set_up", circuit.serial, waited))

    def _set_up_silent(self, serial: int, waited: str) -> None:
        """Head: the node a set-up waits for did not answer its probe: it is lost."""
        node = self.node
        key = (node.ctx.node, serial)
        self._probes.pop(key, None)
        circuit = node._circuits.get(key)
        if not isinstance(circuit, CircuitEnd) or circuit.state is not CircuitState.RESERVING or circuit.to_reserve[:1] != [waited]:
            return
        why = f"{waited}, whose answer the set-up waits for, has every link down and did not answer a probe"
        if waited == circuit.tail:
            node._fail(circuit, CircuitEvent.LINK_FAILED, f"{why}: the tail is lost", tell_path=True, code=NetErrorCode.END_LOST)
        else:
            down = (waited, circuit.path[circuit.path.index(waited) + 1])
            node._fail(circuit, CircuitEvent.LINK_FAILED, why, tell_path=True, code=NetErrorCode.LINK_FAILURE, down_link=down)
