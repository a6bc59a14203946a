"""End-to-end distillation: the two ends of a circuit distil the pairs the swaps deliver.

Theory of operation
-------------------
A circuit run by an end-to-end distilling policy (``distill-e2e-bbpssw``,
``distill-e2e-dejmps`` and their ``-pump2`` variants) is swapped as under
swap-asap: every repeater joins the oldest link pair of each side and sends
its ``SwapRecord`` to both ends. An end does not hand a complete chain up:
it files it as an *end-to-end pair* and, with the other end, runs the
recurrence rounds of :mod:`~qnetstack.network.distill` on such pairs (BBPSSW,
Bennett, Brassard, Popescu, Schumacher, Smolin & Wootters, PRL 76, 722
(1996); DEJMPS, Deutsch, Ekert, Jozsa, Macchiavello, Popescu & Sanpera, PRL
77, 2818 (1996); pumping after Dür, Briegel, Cirac & Zoller, PRA 59, 169
(1999)). Only the pairs a round keeps are delivered.

Naming and pairing. An end-to-end pair is named by its *stream index*: over
repeaters the ``swap_index`` of the first repeater's record (both ends hold
the same records, so both name a chain alike however late its records
come), on one hop the order of the link's pairs (both ends see them in that
order). Rounds take the stream in order: a round's source is the lower index
(or the pumped source) and its target the next index, so both ends pair the
same chains without a word, and a round starts at an end once both of its
pairs are complete there. The twirl of a pair is derived from
``(head, circuit, stream index)`` and the round, as per-link rounds derive
theirs from the link pair's name.

One round at each end, through the device (gates and readouts take the
device's time; the circuit waits ``at_device`` meanwhile): the tail brings
both pairs to Φ+ from the chain's Pauli frame, both ends twirl (and rotate,
for DEJMPS), apply the bilateral CNOT and read the target out in Z, and send
the outcome to the other end (:class:`EndToEndOutcome`, with the readout's
time). With both outcomes each end keeps the source when they agree, freeing
it when they differ; a failed round loses both pairs and the next round
starts from the next two of the stream (a retry, as many as it takes). A kept
pair is delivered (or pumped again) with ``pair_id.index`` the number of
pairs this end delivered before it: both ends decide the same rounds in the
same order, so no pair is delivered at one end only.

Goodness. Each end-to-end pair carries the Bell-diagonal composition of its
chain (:mod:`~qnetstack.network.bell_diagonal`: the correlations of its link
pairs and of every half's decay multiply), taken at the time of its chain's
last swap, which both ends know, with the memories of the two ends' halves
from the records. The kept pair's estimate is then the same computation as a
per-link round's (:func:`~qnetstack.network.distill.round_estimate`): both
inputs decohered in both end memories until each end's readout, relabelled
by the rotation or permutation of the round, and put through the parity
check's closed form; then decohered on to the moment this end delivers it.
Without Bell-diagonal estimates from the links the chain is taken as the
Werner state of its Werner composition, as for swaps.

Memory and pacing. A circuit holds at most two end-to-end pairs (or link
pairs that will become one) at each end, and one link pair per hop side at a
repeater (:meth:`EndToEndDistillPolicy.qubits_held`: two everywhere; on one
hop two at each end). The head asks its link for the next pair only while
the pairs it holds or has asked for, less those gone (delivered, measured as
a target, freed after a failed round), stay under two, and over repeaters
only once the first repeater has swapped the previous one (its ``HopFreed``).
The tail keeps its upstream repeater to the same bound by the ``HopFreed`` s
it sends: never more than one beyond the pairs gone at the tail. The pairs a
round used up count as gone when the round is decided, at both ends, so on
one hop the argument of per-link distillation applies: the other end has
freed them before the head's next CREATE can reach it. A repeater cannot
know how many pairs the ends will use, so it keeps the circuit until the
tail's ``CircuitDone`` (sent once it has all its pairs), as under a
per-circuit cutoff; the link pairs still coming for an ended circuit are
freed as they arrive. Cutoffs are not offered with these policies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from qnetstack.entity import EntityError
from qnetstack.entity.machine import drop_unknown
from qnetstack.entity.message import Message as _Peer
from qnetstack.link.service import LinkOkKeep, RequestType
from qnetstack.network import bell_diagonal as bd
from qnetstack.network.circuit import Circuit, CircuitAtRepeater, CircuitEnd, CircuitEvent, CircuitState
from qnetstack.network.distill import _Input, _twirl, round_estimate, round_operations
from qnetstack.network.frames import chain_frame, chain_goodness
from qnetstack.network.pairs import LinkPair, PairEvent, PairStore
from qnetstack.network.peer import HopFreed, SwapRecord
from qnetstack.network.service import PairDelivered
from qnetstack.physical.service import BellState, FreeQubit, Measure, MeasureResult, MemoryDecoherence

if TYPE_CHECKING:
    from qnetstack.network.node import NetworkNode

__all__ = [
    "EndToEndBbpsswPolicy",
    "EndToEndBbpsswPumpingPolicy",
    "EndToEndDejmpsPolicy",
    "EndToEndDejmpsPumpingPolicy",
    "EndToEndDistillPolicy",
    "EndToEndDistiller",
    "EndToEndOutcome",
    "EndToEndRound",
    "chain_weights",
]

Memories = tuple[MemoryDecoherence | None, MemoryDecoherence | None]  # (head's, tail's)


class EndToEndOutcome(_Peer):
    """One end of a circuit -> the other: its readout of the target in the end-to-end round on
    the pairs of stream indices ``source`` and ``target``."""

    kind: Literal["e2e_distill_outcome"] = "e2e_distill_outcome"
    head: str
    circuit: int = Field(ge=0)
    source: int = Field(ge=0)
    target: int = Field(ge=0)
    outcome: int = Field(ge=0, le=1)
    time_ns: int = Field(ge=0)  # when the sender read the target out


def chain_weights(records: Sequence[SwapRecord], time_ns: int) -> tuple[bd.Weights | None, Memories]:
    """The weights (relative to the chain's frame) at ``time_ns`` of the pair ``records`` make,
    sorted head to tail, and the memories of its head's and tail's halves: the same composition
    as the goodness of a swapped pair (:func:`~qnetstack.network.frames.chain_estimate`). None
    and no memories when some link gave no Bell-diagonal estimate."""
    first, last = records[0].upstream_estimate, records[-1].downstream_estimate
    if first is None or last is None or any(r.downstream_estimate is None or r.swap_decay is None for r in records):
        return None, (None, None)
    decay = bd.add(bd.exponents(first.far_memory, time_ns - first.time_ns), bd.exponents(last.far_memory, time_ns - last.time_ns))
    link_weights = [first.weights]
    for record in records:
        assert record.swap_decay is not None and record.downstream_estimate is not None
        decay = bd.add(decay, record.swap_decay)
        link_weights.append(record.downstream_estimate.weights)
    cx, cy, cz = math.exp(-decay[0]), math.exp(-decay[1]), math.exp(-decay[2])
    for w in link_weights:
        lx, ly, lz = bd.correlations(w)
        cx, cy, cz = cx * lx, cy * ly, cz * lz
    return bd.decayed(bd.weights((cx, cy, cz)), bd.NO_DECAY), (first.far_memory, last.far_memory)


class EndToEndDistillPolicy:
    """Swap as swap-asap does; the ends distil the end-to-end pairs and deliver only kept ones
    (see the module docstring)."""

    name: ClassVar[str] = "distill-e2e"
    protocol: ClassVar[str] = ""  # "bbpssw" or "dejmps"
    rounds: ClassVar[int] = 1  # rounds a delivered pair has passed; more than one is pumping

    def to_ask(self, circuit: Circuit, moment: Any) -> int:
        if circuit.downstream is None or circuit.down_hop is None or circuit.ended:
            return 0
        if isinstance(circuit, CircuitAtRepeater):
            # one link pair per hop side at a time, the next once both ends of the hop used it
            return max(0, 1 - (circuit.requested - min(circuit.swapped, circuit.freed_downstream)))
        assert isinstance(circuit, CircuitEnd)
        if circuit.delivered >= circuit.number:
            return 0
        room = 2 - (circuit.requested - end_rounds(circuit).gone)
        if circuit.hops > 1:
            room = min(room, 1 - (circuit.requested - circuit.freed_downstream))
        return max(0, room)

    def to_swap(self, circuit: CircuitAtRepeater, pairs: PairStore) -> tuple[LinkPair, LinkPair] | None:
        assert circuit.up_hop is not None and circuit.down_hop is not None
        up = pairs.oldest(circuit.up_hop)
        down = pairs.oldest(circuit.down_hop)
        return None if up is None or down is None else (up, down)

    def to_discard(self, circuit: Circuit, pairs: PairStore) -> list[LinkPair]:
        return []

    def to_deliver(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool:
        return True  # not asked: the entity hands complete chains to EndToEndDistiller

    def qubits_held(self, hops: int, position: int) -> int:
        return 2  # two end-to-end pairs at an end; one link pair per side at a repeater


class EndToEndBbpsswPolicy(EndToEndDistillPolicy):
    name: ClassVar[str] = "distill-e2e-bbpssw"
    protocol: ClassVar[str] = "bbpssw"


class EndToEndDejmpsPolicy(EndToEndDistillPolicy):
    name: ClassVar[str] = "distill-e2e-dejmps"
    protocol: ClassVar[str] = "dejmps"


class EndToEndBbpsswPumpingPolicy(EndToEndBbpsswPolicy):
    """End-to-end BBPSSW with two rounds of pumping (Dür, Briegel, Cirac & Zoller 1999)."""

    name: ClassVar[str] = "distill-e2e-bbpssw-pump2"
    rounds: ClassVar[int] = 2


class EndToEndDejmpsPumpingPolicy(EndToEndDejmpsPolicy):
    """End-to-end DEJMPS with two rounds of pumping."""

    name: ClassVar[str] = "distill-e2e-dejmps-pump2"
    rounds: ClassVar[int] = 2


class EndToEndRound:
    """One round at one end: the source and target with their stream indices, the round number
    (0, or k for the k-th pumping round), the operations still to run and both outcomes."""

    def __init__(self, source: tuple[LinkPair, int], target: tuple[LinkPair, int], index: int, operations: list[Any]) -> None:
        self.source, self.source_index = source
        self.target, self.target_index = target
        self.index = index
        self.operations = operations
        self.outcome: int | None = None
        self.peer_outcome: int | None = None
        self.outcome_ns = 0
        self.peer_outcome_ns = 0


class EndRounds:
    """What an end keeps for a circuit (``Circuit.distill``)."""

    def __init__(self, first: int, requested: int) -> None:
        self.complete: dict[int, LinkPair] = {}  # end-to-end pairs waiting for their round, by stream index
        self.taken: set[Any] = set()  # keys of the link pairs filed as end-to-end pairs
        self.next_index = first  # the stream index the next round takes next
        self.arrived = first  # on one hop: the stream index of the next link pair
        self.current: EndToEndRound | None = None
        self.pumped: tuple[LinkPair, int] | None = None  # a kept source to distil again, and its index
        self.passed = 0  # rounds the pumped source has passed
        self.early: dict[tuple[int, int], tuple[int, int]] = {}  # outcomes before this end's readout
        self.memories: Memories = (None, None)
        # pacing: pairs that left this end (delivered, measured, freed) and, at the tail,
        # HopFreed s sent upstream; a circuit that took a moved request over starts both from
        # the pairs its predecessor counted (qnetstack.network.reroute sets ``requested``)
        self.gone = requested
        self.hop_freed = requested


def end_rounds(circuit: CircuitEnd) -> EndRounds:
    if circuit.distill is None:
        circuit.distill = EndRounds(circuit.delivered, circuit.requested)
    rounds: EndRounds = circuit.distill
    return rounds


class EndToEndDistiller:
    """The end-to-end rounds of every circuit one network entity is an end of."""

    def __init__(self, node: NetworkNode, policy: EndToEndDistillPolicy) -> None:
        self.node = node
        self.policy = policy

    # ------------------------------------------------------------ from the entity

    def offered(self, circuit: CircuitEnd, pair: LinkPair) -> None:
        """The entity would deliver ``pair`` (a held link pair of this end): file its chain as an
        end-to-end pair once complete, then go on with the rounds."""
        self._file(circuit, pair)
        self._pace_tail(circuit)
        self.resume(circuit)

    def handed_up(self, circuit: CircuitEnd) -> None:
        """A kept pair was handed up (its measurement done, for type M) and the request goes on."""
        end_rounds(circuit).gone += 1
        self._paced(circuit)

    def outcome(self, sender: str, msg: EndToEndOutcome) -> None:
        key = (msg.head, msg.circuit)
        circuit = self.node._circuits.get(key)
        if not isinstance(circuit, CircuitEnd) or sender != circuit.remote:
            drop_unknown(self.node.ctx.trace, msg.kind, key, sender=sender)
            return
        rounds = end_rounds(circuit)
        current = rounds.current
        if current is None or (current.source_index, current.target_index) != (msg.source, msg.target) or current.outcome is None:
            rounds.early[(msg.source, msg.target)] = (msg.outcome, msg.time_ns)
            return
        current.peer_outcome, current.peer_outcome_ns = msg.outcome, msg.time_ns
        self._decide(circuit, current)

    def device_done(self, circuit: CircuitEnd, current: EndToEndRound, result: Any) -> None:
        circuit.fire(CircuitEvent.DEVICE_DONE)
        self._operation_done(circuit, current, result)
        self.resume(circuit)

    def resume(self, circuit: CircuitEnd) -> None:
        """Go on with what waited while the circuit was at the device: chains completed
        meanwhile, the round's next operation or decision, the next round."""
        if circuit.ended or circuit.state is not CircuitState.RUNNING or circuit.near_hop is None:
            return
        for held in list(self.node._pairs.held(circuit.near_hop)):
            self._file(circuit, held)
        rounds = end_rounds(circuit)
        current = rounds.current
        if current is None:
            self._start(circuit)
        elif current.operations:
            self._next_operation(circuit, current)
        else:
            self._decide(circuit, current)

    # ------------------------------------------------------------ end-to-end pairs

    def _file(self, circuit: CircuitEnd, pair: LinkPair) -> None:
        rounds = end_rounds(circuit)
        if pair.key in rounds.taken:
            return
        if circuit.hops == 1:
            index = rounds.arrived
            rounds.arrived += 1
            capabilities = self.node.ctx.device.capabilities()
            link = capabilities.links.get(pair.remote_node)
            far = None if link is None else link.neighbour_memory
            rounds.memories = (capabilities.memory, far) if circuit.is_head else (far, capabilities.memory)
        else:
            found = circuit.chain(pair.key)
            if found is None:
                return
            records = sorted(found, key=lambda r: r.position)
            circuit.drop_records(records)
            index = records[0].swap_index
            pair.ok, rounds.memories = self._chain_ok(pair.ok, records)
        rounds.taken.add(pair.key)
        rounds.complete[index] = pair

    @staticmethod
    def _chain_ok(ok: LinkOkKeep, records: list[SwapRecord]) -> tuple[LinkOkKeep, Memories]:
        """``ok`` rewritten to describe the end-to-end pair of ``records``: its frame, and its
        estimate at its chain's last swap (which both ends know)."""
        frame = chain_frame([records[0].upstream_bell_state, *(r.downstream_bell_state for r in records)], [r.outcome for r in records])
        time_ns = max(r.swapped_ns or 0 for r in records)
        weights, memories = chain_weights(records, time_ns)
        if weights is None:
            goodness = chain_goodness([records[0].upstream_goodness, *(r.downstream_goodness for r in records)])
        else:
            goodness = weights[0]
        update = {"bell_state": frame, "goodness": goodness, "bell_diagonal": weights, "goodness_time_ns": time_ns}
        return ok.model_copy(update=update), memories

    # ------------------------------------------------------------ pacing

    def _paced(self, circuit: CircuitEnd) -> None:
        """Pairs left this end: the head may ask for more, the tail let its repeater ask."""
        if circuit.ended:
            return
        if circuit.is_head:
            self.node._ask_link(circuit, "freed")
        else:
            self._pace_tail(circuit)

    def _pace_tail(self, circuit: CircuitEnd) -> None:
        """Tail over repeaters: HopFreed upstream up to one beyond the pairs gone here, so the last
        repeater never makes the tail hold more than two pairs of the circuit."""
        if circuit.is_head or circuit.hops == 1 or circuit.upstream is None or not self.node._paced(circuit):
            return
        rounds = end_rounds(circuit)
        while rounds.hop_freed < rounds.gone + 1:
            rounds.hop_freed += 1
            self.node.ctx.send_peer(circuit.upstream, HopFreed(head=circuit.head, circuit=circuit.serial))

    # ------------------------------------------------------------ a round

    def _name(self, circuit: CircuitEnd, index: int) -> tuple[str, str, int, int]:
        return ("e2e", circuit.head, circuit.serial, index)

    def _start(self, circuit: CircuitEnd) -> None:
        rounds = end_rounds(circuit)
        if rounds.current is not None or circuit.state is not CircuitState.RUNNING:
            return
        complete = rounds.complete
        if rounds.pumped is not None:
            if rounds.next_index not in complete:
                return
            source, number = rounds.pumped, rounds.passed
            target = (complete.pop(rounds.next_index), rounds.next_index)
            rounds.next_index += 1
        else:
            first, second = rounds.next_index, rounds.next_index + 1
            if first not in complete or second not in complete:
                return
            source, target, number = (complete.pop(first), first), (complete.pop(second), second), 0
            rounds.next_index += 2
        named = [(source[0], self._name(circuit, source[1])), (target[0], self._name(circuit, target[1]))]
        operations = round_operations(self.policy.protocol, circuit.is_head, named, number)
        rounds.current = EndToEndRound(source, target, number, operations)
        self._next_operation(circuit, rounds.current)

    def _next_operation(self, circuit: CircuitEnd, current: EndToEndRound) -> None:
        node = self.node
        while current.operations and circuit.state is CircuitState.RUNNING:
            op = current.operations[0]
            if node._takes_time(op):
                node._to_device(circuit, op, f"{type(op).__name__} of an end-to-end distillation round", current)
                return
            if not self._operation_done(circuit, current, node.ctx.device.execute(op)):
                return

    def _operation_done(self, circuit: CircuitEnd, current: EndToEndRound, result: Any) -> bool:
        """Take the result of the round's next operation; True while more follow here."""
        op = current.operations.pop(0)
        if getattr(result, "kind", None) == "device_error":
            raise EntityError(f"{type(op).__name__} in an end-to-end distillation round failed: {result}")
        if not isinstance(result, MeasureResult):
            return True
        node = self.node
        node._pairs.end(current.target, PairEvent.MEASURE)
        now = node.ctx.now_ns
        current.outcome, current.outcome_ns = result.outcome, now
        message = EndToEndOutcome(
            head=circuit.head,
            circuit=circuit.serial,
            source=current.source_index,
            target=current.target_index,
            outcome=result.outcome,
            time_ns=now,
        )
        node.ctx.send_peer(circuit.remote, message)
        early = end_rounds(circuit).early.pop((current.source_index, current.target_index), None)
        if early is not None:
            current.peer_outcome, current.peer_outcome_ns = early
        self._decide(circuit, current)
        return False

    def _decide(self, circuit: CircuitEnd, current: EndToEndRound) -> None:
        if current.outcome is None or current.peer_outcome is None or circuit.state is not CircuitState.RUNNING:
            return  # an outcome is missing, or the device is busy for the circuit (resume)
        node = self.node
        rounds = end_rounds(circuit)
        rounds.current = None
        rounds.gone += 1  # the target, measured
        kept = current.outcome == current.peer_outcome
        if circuit.is_head:  # traced once per round
            node.ctx.trace(
                "network.distill_e2e.kept" if kept else "network.distill_e2e.failed",
                head=circuit.head,
                request_id=circuit.request_id,
                round=current.index,
                source=current.source_index,
                target=current.target_index,
            )
        source = current.source
        rounds.pumped, rounds.passed = None, 0
        if not kept:
            node.ctx.device.execute(FreeQubit(handle=source.handle))
            node._pairs.end(source, PairEvent.FREE)
            rounds.gone += 1
            self._paced(circuit)
            self._start(circuit)
            return
        source.ok = self._kept_estimate(circuit, current)
        if current.index + 1 < self.policy.rounds:
            rounds.pumped, rounds.passed = (source, current.source_index), current.index + 1
            self._paced(circuit)
            self._start(circuit)
            return
        self._paced(circuit)
        self._deliver(circuit, source)
        if not circuit.ended:
            self._start(circuit)

    def _kept_estimate(self, circuit: CircuitEnd, current: EndToEndRound) -> LinkOkKeep:
        """The source's OK with the estimate of the kept pair (module docstring), for now."""
        assert current.outcome is not None
        rounds = end_rounds(circuit)
        memories = rounds.memories
        if circuit.is_head:
            readouts = (current.outcome_ns, current.peer_outcome_ns)
        else:
            readouts = (current.peer_outcome_ns, current.outcome_ns)
        inputs = [
            _Input(pair.ok, _twirl(self.policy.protocol, self._name(circuit, index), current.index)[1])
            for pair, index in ((current.source, current.source_index), (current.target, current.target_index))
        ]
        _, kept, time_ns = round_estimate(inputs[0], inputs[1], memories, readouts)
        now = self.node.ctx.now_ns
        kept = bd.decayed(kept, bd.add(bd.exponents(memories[0], now - time_ns), bd.exponents(memories[1], now - time_ns)))
        update = {"bell_state": BellState.PHI_PLUS, "goodness": kept[0], "bell_diagonal": kept, "goodness_time_ns": now}
        return current.source.ok.model_copy(update=update)

    def _deliver(self, circuit: CircuitEnd, pair: LinkPair) -> None:
        """Hand the kept ``pair`` up, as the entity delivers a chain (type K: its qubit; type M:
        its outcome, after a measurement that may take the device's time)."""
        node = self.node
        ok = pair.ok
        index = circuit.delivered  # both ends decide the same rounds in the same order
        pair_id = {"head": circuit.head, "tail": circuit.tail, "request_id": circuit.request_id, "index": index}
        if circuit.type is RequestType.K:
            node._pairs.end(pair, PairEvent.DELIVER)
            delivery = PairDelivered(
                pair_id=pair_id,
                remote_node=circuit.remote,
                bell_state=BellState.PHI_PLUS,
                goodness=ok.goodness,
                goodness_time_ns=ok.goodness_time_ns,
                handle=ok.handle,
            )
            node._hand_up(circuit, delivery, index)
            return
        measure = Measure(handle=ok.handle, basis=circuit.basis)
        measuring = (pair, BellState.PHI_PLUS, ok.goodness, ok.goodness_time_ns, pair_id, index)
        if node._takes_time(measure):
            node._to_device(circuit, measure, "the measurement of an end-to-end pair", measuring)
            return
        node._measured(circuit, measuring, node.ctx.device.execute(measure), at_device=False)
