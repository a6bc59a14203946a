"""Distillation of a circuit's link pairs, hop by hop: the recurrence protocols of 1996.

Theory of operation
-------------------
A circuit run by a distilling policy (``distill-bbpssw``, ``distill-dejmps``)
turns two link pairs of a hop into one better pair, or none, on every hop of
its path; the repeaters swap only pairs that passed (in swap-asap order: the
oldest distilled pair of each side) and the ends hand up only chains of such
pairs. The two nodes of a hop run the same *round* on the same two pairs:
once a node holds two link pairs of the circuit on the hop, the older (by
the link's sequence number) is the *source*, the newer the *target*. Both
ends see the same pairs in the same order (the link reports them so,
specs/link.md), so they pick the same two without a word. Below, the *head*
of a round is the hop's creator (its upstream node, which asks the link for
its pairs) and the *tail* the other end; on a one-hop path they are the
circuit's head and tail. A repeater keeps the rounds of its two hops apart
(:func:`hop_rounds`).

One round, at each end, on its own qubits, through the device (each operation
takes the device's time: a circuit waits ``at_device`` while one is under
way):

1. The tail brings each pair to Φ+ with Pauli gates (the heralded frame
   ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>`` is undone by X^x then Z^z at the tail).
2. A twirl both ends derive from the pair's name (a CRC of its ``ent_id``, so
   no message is needed to agree on it): the same Pauli σ ⊗ σ at both ends,
   which keeps the Bell-basis weights and averages every off-diagonal term
   away (Bennett, DiVincenzo, Smolin & Wootters, PRA 54, 3824 (1996),
   Sec. III). BBPSSW (Bennett, Brassard, Popescu, Schumacher, Smolin &
   Wootters, PRL 76, 722 (1996)) twirls further, to a Werner state: one of
   the six permutations of the weights of Φ−, Ψ+, Ψ−, built from H ⊗ H (which
   exchanges Φ− and Ψ+) and the DEJMPS rotation (which exchanges Φ− and Ψ−).
   DEJMPS (Deutsch, Ekert, Jozsa, Macchiavello, Popescu & Sanpera, PRL 77,
   2818 (1996)) applies its rotation instead: Rx(π/2) at the head, Rx(−π/2)
   at the tail, from the device's gates as H·S·H and H·S†·H (S† = Z·S).
3. The bilateral CNOT, source to target, and a Z readout of the target.
4. The outcome goes to the other end of the hop (:class:`DistillOutcome`),
   with the time of the readout. With both outcomes known, each end keeps
   the source if they agree and frees it if they differ. A kept pair is in
   the Φ+ frame: an end delivers it (once the swap records of its chain are
   in, over repeaters), a repeater swaps it.

The estimate of a kept pair (:func:`round_estimate`) follows what the round
did to the two pairs' Bell-diagonal estimates (the link's ``bell_diagonal``,
or the Werner state of its ``goodness`` when the link gave none): each is
decohered in both memories from its estimate's time until the readout at
that end (:mod:`~qnetstack.network.bell_diagonal`), relabelled by the
permutation or rotation this round applied to it (the Pauli twirl leaves the
weights alone), and put through the parity check's closed form
(:func:`~qnetstack.network.bell_diagonal.parity_check`; Deutsch et al. 1996
for the DEJMPS rotation). The kept pair's ``goodness``, ``bell_diagonal`` and
``goodness_time_ns`` are replaced by the result, at the later of the two
readouts (the half read out earlier decohered until then), both ends
computing it from the same numbers, and then decohered on to the moment this
end decides (so the goodness of a pair handed up is for the moment it is
handed up); a further round, a delivery or a swap (whose ``SwapRecord``
carries it, :mod:`~qnetstack.network.frames`) uses it. BBPSSW's permutation
is a known function of the pair's name, so the estimate conditions on it: averaged over the six permutations
the inputs are the Werner states of BBPSSW and the mean estimate of the kept
pairs is the Werner closed form (:func:`werner_round`), while a pair whose
inputs are not Werner states (a single-click link's: errors on Ψ± only) is
estimated by what the permutation made of it. The device does not twirl the
kept pair again, so its estimate is not a Werner state, and it is not
reported as one. (A Pauli channel is assumed for decoherence, as for swaps:
amplitude damping's shift towards |0> is dropped.)

*Pumping* (Dür, Briegel, Cirac & Zoller, PRA 59, 169 (1999)): a policy with
``rounds`` = n > 1 distils a kept source again, with the next fresh link pair
as the target, until it has passed n rounds; a failed round loses it, and the
next round starts from two fresh pairs. ``distill-bbpssw-pump2`` and
``distill-dejmps-pump2`` are registered; a subclass with its own ``name`` and
``rounds`` gives any other n. A pair entering its k-th round gets a fresh
twirl (the choice is derived from its name and k).

Memory and pacing. A circuit holds at most two link pairs of a hop at each
end of it, so it reserves two qubits at an end and four at a repeater
(:meth:`DistillPolicy.qubits_held`; specs/network.md §1.2). The hop's creator
asks its link for as many pairs as bring those held or on their way to two
(:meth:`DistillPolicy.to_ask`): a round's two, or a pumped source and its
next target. A pair stops counting when a round uses it up (the measured
target, the source of a failed round) or, once distilled, when both ends of
the hop have used it: the creator's own swap or delivery and the other end's
``HopFreed`` (sent after its swap or delivery, as under swap-asap). Both ends
free a round's pairs before the creator asks for more: the other end frees
its target before it sends its outcome, and decides on a failed source when
the creator's outcome reaches it, which is before the creator's next CREATE
can (sent later on the same path). So no node holds more than it reserved,
each hop distils on its own and waits only for its distilled pair to be
swapped, and no two circuits wait for each other's memory beyond what the
reservations of §1.2 rule out. The creator stops asking once the hop has
distilled ``number`` pairs. A circuit does one device operation at a time: a
repeater's round that finds the device busy for the other hop's round (or a
swap) goes on when it answers (:meth:`Distiller.resume`).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, cast

from pydantic import Field

from qnetstack.entity import EntityError
from qnetstack.entity.machine import drop_unknown
from qnetstack.entity.message import Message as _Peer
from qnetstack.link.service import LinkOkKeep
from qnetstack.network import bell_diagonal as bd
from qnetstack.network.circuit import Circuit, CircuitAtRepeater, CircuitEnd, CircuitEvent, CircuitState
from qnetstack.network.pairs import HopKey, LinkPair, PairEvent, PairState, PairStore
from qnetstack.network.peer import SwapRecord
from qnetstack.physical.service import (
    ApplyGate,
    ApplyTwoQubitGate,
    Basis,
    BellState,
    FreeQubit,
    Gate,
    Measure,
    MeasureResult,
    MemoryDecoherence,
    TwoQubitGate,
)

if TYPE_CHECKING:
    from qnetstack.network.node import NetworkNode

__all__ = [
    "DistillOutcome",
    "DistillPolicy",
    "BbpsswPolicy",
    "BbpsswPumpingPolicy",
    "DejmpsPolicy",
    "DejmpsPumpingPolicy",
    "Distiller",
    "Round",
    "hop_rounds",
    "round_estimate",
    "round_operations",
    "werner_round",
]

_PAULIS = (Gate.I, Gate.X, Gate.Y, Gate.Z)
# the rotation of DEJMPS at each end, in the order applied (global phases dropped)
_RX_HEAD = (Gate.H, Gate.S, Gate.H)
_RX_TAIL = (Gate.H, Gate.S, Gate.Z, Gate.H)
# the six permutations of (Φ−, Ψ+, Ψ−) as words in "h" (H ⊗ H) and "r" (the DEJMPS rotation)
_PERMUTATIONS = ("", "h", "r", "hr", "rh", "hrh")


def werner_round(f1: float, f2: float) -> tuple[float, float]:
    """(probability of success, fidelity kept) of the bilateral CNOT on two Werner pairs of
    fidelities ``f1``, ``f2`` (Bennett et al., PRL 76, 722 (1996); for f1 = f2 = F:
    p = F² + 2F(1−F)/3 + 5((1−F)/3)², F' = (F² + ((1−F)/3)²)/p)."""
    e1, e2 = (1 - f1) / 3, (1 - f2) / 3
    p = f1 * f2 + f1 * e2 + e1 * f2 + 5 * e1 * e2
    return p, (f1 * f2 + e1 * e2) / p


def _twirl(protocol: str, name: Any, index: int) -> tuple[Gate, str]:
    """The Pauli of the twirl, and the word of relabellings ("h": H ⊗ H, "r": the DEJMPS
    rotation) both ends apply to the pair named ``name`` (a link pair's key) entering round
    ``index``: derived from the pair's name and the round, so both ends agree without a word
    and a pumped source gets a fresh choice in every round it enters."""
    choice = zlib.crc32(repr((name, index)).encode("utf-8"))
    word = "r" if protocol == "dejmps" else _PERMUTATIONS[(choice // 4) % 6]
    return _PAULIS[choice % 4], word


class _Input(NamedTuple):
    """A pair entering a round: its link's OK (the estimate) and the relabellings applied."""

    ok: LinkOkKeep
    word: str


# the weights exchanged by each relabelling, indexed 2x + z (Φ+ 0, Φ− 1, Ψ+ 2, Ψ− 3):
# H ⊗ H exchanges Φ− and Ψ+, the DEJMPS rotation Φ− and Ψ−
_EXCHANGES = {"h": (1, 2), "r": (1, 3)}


def _relabelled(w: bd.Weights, word: str) -> bd.Weights:
    out = list(w)
    for step in word:
        i, j = _EXCHANGES[step]
        out[i], out[j] = out[j], out[i]
    return (out[0], out[1], out[2], out[3])


def round_operations(protocol: str, at_head: bool, pairs: list[tuple[LinkPair, Any]], index: int) -> list[Any]:
    """The device operations of one end of a round on ``pairs`` (source, then target, each with
    the name both ends know it by) in round ``index``: at the tail the gates that bring each
    pair to Φ+ from its ``ok.bell_state``; at both ends the twirl and the relabellings; then
    the bilateral CNOT and the Z readout of the target (see the module docstring)."""
    operations: list[Any] = []
    for pair, name in pairs:
        handle = pair.handle
        gates: list[Gate] = []
        if not at_head:
            x, z = pair.ok.bell_state.pauli_bits
            gates += [Gate.X] * x + [Gate.Z] * z
        pauli, word = _twirl(protocol, name, index)
        gates.append(pauli)
        rotation = _RX_HEAD if at_head else _RX_TAIL
        for step in word:
            gates += (Gate.H,) if step == "h" else rotation
        operations += [ApplyGate(gate=g, handle=handle) for g in gates if g is not Gate.I]
    source, target = pairs[0][0], pairs[1][0]
    operations.append(ApplyTwoQubitGate(gate=TwoQubitGate.CNOT, control=source.handle, target=target.handle))
    operations.append(Measure(handle=target.handle, basis=Basis.Z))
    return operations


def round_estimate(
    source: _Input,
    target: _Input,
    memories: tuple[MemoryDecoherence | None, MemoryDecoherence | None],
    readouts: tuple[int, int],
) -> tuple[float, bd.Weights, int]:
    """(probability of success, weights of the kept pair relative to Φ+, their time) of a round
    on ``source`` and ``target`` whose halves sit in ``memories`` (head's, tail's) and were read
    out at ``readouts`` (head's, tail's time): see the module docstring."""
    relabelled = []
    for pair in (source, target):
        ok = pair.ok
        w = bd.werner(ok.goodness) if ok.bell_diagonal is None else ok.bell_diagonal
        decay = bd.add(
            bd.exponents(memories[0], readouts[0] - ok.goodness_time_ns), bd.exponents(memories[1], readouts[1] - ok.goodness_time_ns)
        )
        relabelled.append(_relabelled(bd.decayed(w, decay), pair.word))
    probability, kept = bd.parity_check(relabelled[0], relabelled[1])
    time_ns = max(readouts)
    later = bd.add(bd.exponents(memories[0], time_ns - readouts[0]), bd.exponents(memories[1], time_ns - readouts[1]))
    return probability, bd.decayed(kept, later), time_ns


class DistillOutcome(_Peer):
    """One end of a hop -> the other: its readout of the target in the round whose
    source is the link pair ``source`` (its ``ent_id`` as (creator, peer, sequence))."""

    kind: Literal["distill_outcome"] = "distill_outcome"
    head: str
    circuit: int = Field(ge=0)
    source: tuple[str, str, int]
    outcome: int = Field(ge=0, le=1)
    time_ns: int = Field(ge=0)  # when the sender read the target out


class DistillPolicy:
    """Deliver only distilled pairs: every hop of the path distils its own link pairs and the
    repeaters swap only distilled pairs (see the module docstring)."""

    name: ClassVar[str] = "distill"
    # "bbpssw" or "dejmps": which twirl or rotation comes before the bilateral CNOT
    protocol: ClassVar[str] = ""
    # rounds a delivered pair has passed: more than one is entanglement pumping, the kept pair
    # distilled again with a fresh link pair as the target (a subclass sets its own)
    rounds: ClassVar[int] = 1

    def to_ask(self, circuit: Circuit, moment: Any) -> int:
        """Link pairs to ask of the downstream hop now: as many as bring the pairs of the hop
        held at either end or on their way to two, while the hop owes distilled pairs."""
        if circuit.downstream is None or circuit.down_hop is None or circuit.ended:
            return 0
        rounds = hop_rounds(circuit, circuit.down_hop)
        if rounds.distilled >= circuit.number:
            return 0
        if circuit.hops == 1:
            handed_on = circuit.used_downstream  # delivered: gone at both ends in the same round
        else:
            # a distilled pair is gone only once both ends of the hop have used it (HopFreed)
            handed_on = min(circuit.used_downstream, circuit.freed_downstream)
        in_flight = circuit.requested - rounds.consumed - handed_on
        return max(0, 2 - in_flight)

    def to_swap(self, circuit: CircuitAtRepeater, pairs: PairStore) -> tuple[LinkPair, LinkPair] | None:
        """The oldest distilled pair on each side, once both sides have one."""
        assert circuit.up_hop is not None and circuit.down_hop is not None
        chosen = []
        for hop in (circuit.up_hop, circuit.down_hop):
            kept = hop_rounds(circuit, hop).kept
            pair = next((p for p in pairs.held(hop) if p.key in kept), None)
            if pair is None:
                return None
            chosen.append(pair)
        return chosen[0], chosen[1]

    def to_discard(self, circuit: Circuit, pairs: PairStore) -> list[LinkPair]:
        return []

    def to_deliver(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool:
        return circuit.near_hop is not None and pair.key in hop_rounds(circuit, circuit.near_hop).kept

    def qubits_held(self, hops: int, position: int) -> int:
        return 2 if position in (0, hops) else 4  # a round's two link pairs on each hop side


class BbpsswPolicy(DistillPolicy):
    name: ClassVar[str] = "distill-bbpssw"
    protocol: ClassVar[str] = "bbpssw"


class DejmpsPolicy(DistillPolicy):
    name: ClassVar[str] = "distill-dejmps"
    protocol: ClassVar[str] = "dejmps"


class BbpsswPumpingPolicy(BbpsswPolicy):
    """BBPSSW with two rounds of pumping (Dür, Briegel, Cirac & Zoller, PRA 59, 169 (1999))."""

    name: ClassVar[str] = "distill-bbpssw-pump2"
    rounds: ClassVar[int] = 2


class DejmpsPumpingPolicy(DejmpsPolicy):
    """DEJMPS with two rounds of pumping."""

    name: ClassVar[str] = "distill-dejmps-pump2"
    rounds: ClassVar[int] = 2


class Round:
    """One distillation round at one end of a hop: its two link pairs, the device operations
    still to run, and the two outcomes with the times of their readouts."""

    def __init__(self, hop: HopKey, source: LinkPair, target: LinkPair, operations: list[Any], index: int) -> None:
        self.hop = hop
        self.index = index  # 0 for a round of two fresh link pairs, k for the k-th pumping round
        self.source = source
        self.target = target
        self.operations = operations
        self.outcome: int | None = None
        self.peer_outcome: int | None = None
        self.outcome_ns = 0
        self.peer_outcome_ns = 0


class CircuitRounds:
    """What a distilling circuit keeps for one hop at one of its ends (``Circuit.distill``: this
    at a circuit's end, one per hop by hop key at a repeater, :func:`hop_rounds`)."""

    def __init__(self) -> None:
        self.current: Round | None = None
        self.kept: set[Any] = set()  # keys of distilled pairs, until swapped or delivered
        self.distilled = 0  # pairs that passed every round
        self.consumed = 0  # link pairs a round used up: measured targets, sources of failed rounds
        # a source kept by a round and distilled again (pumping), with the rounds it has passed
        self.pumped: LinkPair | None = None
        self.passed = 0
        # outcomes (and their times) that came before this end started the round they belong to
        self.early: dict[tuple[str, str, int], tuple[int, int]] = {}


def hop_rounds(circuit: Circuit, hop: HopKey) -> CircuitRounds:
    """The rounds of ``circuit`` on ``hop`` at this node."""
    if isinstance(circuit, CircuitEnd):
        if circuit.distill is None:
            circuit.distill = CircuitRounds()
        rounds: CircuitRounds = circuit.distill
        return rounds
    if circuit.distill is None:
        circuit.distill = {}
    by_hop: dict[HopKey, CircuitRounds] = circuit.distill
    found = by_hop.get(hop)
    if found is None:
        found = by_hop[hop] = CircuitRounds()
    return found


class Distiller:
    """The rounds of every distilling circuit of one network entity."""

    def __init__(self, node: NetworkNode, policy: DistillPolicy) -> None:
        self.node = node
        self.policy = policy

    # ------------------------------------------------------------ from the entity

    def pair_arrived(self, circuit: Circuit, hop: HopKey) -> None:
        """A link pair of the circuit is held here on ``hop``: start a round if two are."""
        rounds = hop_rounds(circuit, hop)
        if rounds.current is not None or circuit.state is not CircuitState.RUNNING:
            return  # one device operation of a circuit at a time: resumed when it is done
        waiting = sorted(
            (p for p in self.node._pairs.held(hop) if p.key not in rounds.kept and p is not rounds.pumped),
            key=lambda p: p.ok.ent_id.sequence,
        )
        if rounds.pumped is not None and waiting:
            source, target = rounds.pumped, waiting[0]
        elif rounds.pumped is None and len(waiting) >= 2:
            source, target = waiting[:2]
        else:
            return
        index = rounds.passed if rounds.pumped is not None else 0
        rounds.current = Round(hop, source, target, self._operations(hop, source, target, index), index)
        self._next_operation(circuit, rounds.current)

    def device_done(self, circuit: Circuit, current: Round, result: Any) -> None:
        """An operation of the circuit's round that took the device's time is done."""
        circuit.fire(CircuitEvent.DEVICE_DONE)
        self._operation_done(circuit, current, result)
        self.resume(circuit)

    def resume(self, circuit: Circuit) -> None:
        """The circuit is back from the device: go on with the rounds of its other hop (and
        decisions) that waited meanwhile; at a repeater, swap what is ready."""
        for hop in circuit.hop_keys:
            if circuit.ended or circuit.state is not CircuitState.RUNNING:
                return
            current = hop_rounds(circuit, hop).current
            if current is None:
                self.pair_arrived(circuit, hop)
            elif current.operations:
                self._next_operation(circuit, current)
            else:
                self._decide(circuit, current)
        if isinstance(circuit, CircuitAtRepeater) and not circuit.ended:
            self.node._try_swap(circuit)

    def outcome(self, sender: str, msg: DistillOutcome) -> None:
        key = (msg.head, msg.circuit)
        circuit = self.node._circuits.get(key)
        hop = None if circuit is None else next((h for h in circuit.hop_keys if h[0] == sender), None)
        if circuit is None or hop is None:
            drop_unknown(self.node.ctx.trace, msg.kind, key, sender=sender)
            return
        rounds = hop_rounds(circuit, hop)
        current = rounds.current
        if current is None or current.source.key != msg.source:
            rounds.early[msg.source] = (msg.outcome, msg.time_ns)
            return
        current.peer_outcome, current.peer_outcome_ns = msg.outcome, msg.time_ns
        self._decide(circuit, current)

    # ------------------------------------------------------------ a round

    def _operations(self, hop: HopKey, source: LinkPair, target: LinkPair, index: int) -> list[Any]:
        creator = hop[1] == self.node.ctx.node  # the hop's upstream end, which asks for its pairs
        return round_operations(self.policy.protocol, creator, [(source, source.key), (target, target.key)], index)

    def _next_operation(self, circuit: Circuit, current: Round) -> None:
        node = self.node
        while current.operations and circuit.state is CircuitState.RUNNING:
            op = current.operations[0]
            if node._takes_time(op):
                node._to_device(circuit, op, f"{type(op).__name__} of a distillation round", current)
                return
            if not self._operation_done(circuit, current, node.ctx.device.execute(op)):
                return

    def _operation_done(self, circuit: Circuit, current: Round, result: Any) -> bool:
        """Take the result of the round's next operation; True while more follow here."""
        op = current.operations.pop(0)
        if getattr(result, "kind", None) == "device_error":
            raise EntityError(f"{type(op).__name__} in a distillation round failed: {result}")
        if not isinstance(result, MeasureResult):
            return True
        node = self.node
        node._pairs.end(current.target, PairEvent.MEASURE)
        current.outcome, current.outcome_ns = result.outcome, node.ctx.now_ns
        outcome = DistillOutcome(
            head=circuit.head, circuit=circuit.serial, source=current.source.key, outcome=result.outcome, time_ns=node.ctx.now_ns
        )
        node.ctx.send_peer(current.hop[0], outcome)
        early = hop_rounds(circuit, current.hop).early.pop(current.source.key, None)
        if early is not None:
            current.peer_outcome, current.peer_outcome_ns = early
        self._decide(circuit, current)
        return False

    def _kept_estimate(self, current: Round) -> LinkOkKeep:
        """The source's OK with the estimate of the pair the round kept (module docstring)."""
        assert current.outcome is not None
        node = self.node
        capabilities = node.ctx.device.capabilities()
        link = capabilities.links.get(current.hop[0])
        far = None if link is None else link.neighbour_memory
        here = capabilities.memory
        if current.hop[1] == node.ctx.node:  # the hop's creator: the "head" of the round
            memories, readouts = (here, far), (current.outcome_ns, current.peer_outcome_ns)
        else:
            memories, readouts = (far, here), (current.peer_outcome_ns, current.outcome_ns)
        inputs = [_Input(pair.ok, _twirl(self.policy.protocol, pair.key, current.index)[1]) for pair in (current.source, current.target)]
        _, kept, time_ns = round_estimate(inputs[0], inputs[1], memories, readouts)
        # on to now, when this end hands the pair on (both halves decohere meanwhile)
        now = node.ctx.now_ns
        kept = bd.decayed(kept, bd.add(bd.exponents(here, now - time_ns), bd.exponents(far, now - time_ns)))
        return current.source.ok.model_copy(
            update={"bell_state": BellState.PHI_PLUS, "goodness": kept[0], "bell_diagonal": kept, "goodness_time_ns": now}
        )

    def _decide(self, circuit: Circuit, current: Round) -> None:
        if current.outcome is None or current.peer_outcome is None or circuit.state is not CircuitState.RUNNING:
            return  # this end has not measured yet, or the device is busy for the circuit (resume)
        node = self.node
        rounds = hop_rounds(circuit, current.hop)
        rounds.current = None
        rounds.consumed += 1  # the target, measured
        source = current.source
        kept = current.outcome == current.peer_outcome
        if current.hop[1] == node.ctx.node:  # traced once per round: at the hop's creator
            node.ctx.trace(
                "network.distill.kept" if kept else "network.distill.failed",
                head=circuit.head,
                request_id=circuit.request_id,
                round=current.index,
                hop=(node.ctx.node, current.hop[0]),
            )
        rounds.pumped, rounds.passed = None, 0
        if not kept:
            node.ctx.device.execute(FreeQubit(handle=source.handle))
            node._pairs.end(source, PairEvent.FREE)
            rounds.consumed += 1
            node._ask_link(circuit, "freed")
            self.pair_arrived(circuit, current.hop)
            return
        source.ok = self._kept_estimate(current)
        if current.index + 1 < self.policy.rounds:
            rounds.pumped, rounds.passed = source, current.index + 1
            node._ask_link(circuit, "freed")
            self.pair_arrived(circuit, current.hop)
            return
        rounds.distilled += 1
        rounds.kept.add(source.key)
        if isinstance(circuit, CircuitEnd):
            node._try_deliver(circuit, source)
        else:
            node._try_swap(cast(CircuitAtRepeater, circuit))
        if source.state is not PairState.HELD:
            rounds.kept.discard(source.key)
        if not circuit.ended:
            node._ask_link(circuit, "freed")
            self.pair_arrived(circuit, current.hop)
