"""Policies: what a node does next with the link pairs of a circuit.

Theory of operation
-------------------
The mechanism (circuits, labels, link requests, swap records, frames,
delivery) is the same for every way of running a circuit; what varies is a
handful of decisions, asked of a :class:`Policy` whenever something changes
for a circuit at a node:

* ``to_ask``: how many more link pairs to ask of the downstream link now
  (at set-up, after a swap, after a delivery at the head);
* ``to_swap``: at a repeater, which upstream and downstream link pair to join
  with a Bell measurement now, if any;
* ``to_discard``: link pairs to free now (e.g. ones held too long);
* ``to_deliver``: at an end, whether to hand up a complete chain;
* ``qubits_held``: the most memory qubits a circuit run by the policy holds
  at one node of its path at once, which is what that node reserves for it
  at set-up (specs/network.md §1.2).

A policy is stateless per circuit (its inputs are the circuit session and the
pairs the node holds), so one instance serves a whole node. Policies are
registered by name; the entity is configured with one (``"swap-asap"`` is the
reference; ``"nested"`` swaps in the levels of the doubling scheme,
:mod:`qnetstack.network.nested`) and its options (keyword arguments of the policy's class, e.g.
``cutoff_ns`` of swap-asap). A user registers a policy of their own with
:func:`register_policy`, without editing this module, and a scenario picks it
by name (``network.policy``, ``network.policy_options``).

A policy with a ``cutoff_ns`` attribute that is not None gets its link pairs
discarded when they wait longer than that at a repeater, and one with a
``circuit_cutoff_ns`` its end-to-end pairs whose oldest link pair is older
than that when their chain completes (:mod:`qnetstack.network.cutoff`): the
entity keeps the timers and judges the chains, since a policy has no clock.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, TypeVar

from qnetstack.network.circuit import Circuit, CircuitAtRepeater, CircuitEnd
from qnetstack.network.distill import BbpsswPolicy, BbpsswPumpingPolicy, DejmpsPolicy, DejmpsPumpingPolicy
from qnetstack.network.distill_e2e import (
    EndToEndBbpsswPolicy,
    EndToEndBbpsswPumpingPolicy,
    EndToEndDejmpsPolicy,
    EndToEndDejmpsPumpingPolicy,
)
from qnetstack.network.nested import NestedPolicy
from qnetstack.network.pairs import LinkPair, PairStore
from qnetstack.network.peer import SwapRecord

__all__ = ["POLICIES", "Policy", "PolicyError", "SwapAsapPolicy", "make_policy", "register_policy"]

Moment = Literal["set_up", "swap", "deliver", "freed"]


class Policy(Protocol):
    name: ClassVar[str]

    def to_ask(self, circuit: Circuit, moment: Moment) -> int: ...

    def to_swap(self, circuit: CircuitAtRepeater, pairs: PairStore) -> tuple[LinkPair, LinkPair] | None: ...

    def to_discard(self, circuit: Circuit, pairs: PairStore) -> list[LinkPair]: ...

    def to_deliver(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool: ...

    def qubits_held(self, hops: int, position: int) -> int: ...


class SwapAsapPolicy:
    """Swap as soon as a repeater holds a link pair on both sides; deliver every complete chain.

    Over repeaters link pairs are asked for one at a time, the next only once
    the previous one has been swapped (repeater) or delivered (head). Asking
    for all of them at once lets one link run ahead and fill the memories of
    its ends with pairs that wait for the slower link, until no slot is left
    for the slower link at all (a deadlock seen with 4-qubit memories). A
    one-hop circuit has no other link to wait for, so the head asks for all
    its pairs in one CREATE: the link makes them back to back as memory allows
    (several at once with a multiplexing link layer), without a CREATE's
    set-up (two classical delays) before each pair.

    What it holds, and so reserves (:meth:`qubits_held`): over repeaters the
    node that issues a hop's CREATEs asks for the next pair only once both
    ends of the hop have used the previous one (the entity enforces it with
    ``HopFreed``), so a circuit holds at most one link pair per hop side: one
    qubit at an end, two at a repeater. On one hop each pair is handed up in
    the event its OK arrives and the link makes the CREATE's pairs one after
    the other, so an end holds one qubit of the circuit at a time too.

    ``cutoff_ns`` (option; None: no cutoff): a link pair that has waited at a
    repeater longer than this since its ``goodness_time_ns`` is discarded at
    both ends of its hop and made anew, with any chain already swapped onto it
    (:mod:`qnetstack.network.cutoff`). ``circuit_cutoff_ns`` (option; None:
    none): an end-to-end pair whose oldest link pair was heralded longer than
    this before its chain's last swap is discarded at both ends, not
    delivered, and made anew. A discarded pair is freed before its replacement
    is asked for, so the reservation is the same.

    ``pairs_per_request`` (option, default 1): over repeaters, how many link
    pairs one CREATE asks for. With ``w`` > 1 the hop's creator asks for ``w``
    pairs at once and for the next ``w`` only when both ends of the hop have
    used every one of them, so the link makes them back to back, with one
    CREATE, ACK and agreed start for ``w`` pairs instead of one each. The
    circuit then holds at most ``w`` link pairs per hop side, and reserves ``w``
    qubits at each end and ``2 w`` at each repeater (a circuit that cannot fit
    is refused as any other: ``NetRejected`` or NORES). Reserved in full before the circuit starts, as with
    ``w`` = 1, so crossing circuits still cannot deadlock; they take turns
    sooner at a small memory.
    """

    name: ClassVar[str] = "swap-asap"

    def __init__(self, cutoff_ns: int | None = None, circuit_cutoff_ns: int | None = None, pairs_per_request: int = 1) -> None:
        for option, value in (("cutoff_ns", cutoff_ns), ("circuit_cutoff_ns", circuit_cutoff_ns)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{option} must be a whole number of nanoseconds >= 0 (or left out), got {value!r}")
        if isinstance(pairs_per_request, bool) or not isinstance(pairs_per_request, int) or pairs_per_request < 1:
            raise ValueError(f"pairs_per_request must be a whole number >= 1, got {pairs_per_request!r}")
        self.cutoff_ns = cutoff_ns
        self.circuit_cutoff_ns = circuit_cutoff_ns
        self.pairs_per_request = pairs_per_request

    def to_ask(self, circuit: Circuit, moment: Moment) -> int:
        if circuit.downstream is None or circuit.requested >= circuit.number:
            return 0
        left = circuit.number - circuit.requested
        return left if circuit.hops == 1 else min(left, self.pairs_per_request)

    def to_swap(self, circuit: CircuitAtRepeater, pairs: PairStore) -> tuple[LinkPair, LinkPair] | None:
        assert circuit.up_hop is not None and circuit.down_hop is not None
        up = pairs.oldest(circuit.up_hop)
        down = pairs.oldest(circuit.down_hop)
        return None if up is None or down is None else (up, down)

    def to_discard(self, circuit: Circuit, pairs: PairStore) -> list[LinkPair]:
        return []  # memory does not decay in this policy's view: every pair waits for its partner

    def to_deliver(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool:
        return True

    def qubits_held(self, hops: int, position: int) -> int:
        per_side = 1 if hops == 1 else self.pairs_per_request
        return per_side if position in (0, hops) else 2 * per_side


POLICIES: dict[str, type[Policy]] = {}

_PolicyClass = TypeVar("_PolicyClass", bound=type[Policy])


def register_policy(cls: _PolicyClass) -> _PolicyClass:
    """Class decorator (or call): make ``cls`` available under ``cls.name``."""
    POLICIES[cls.name] = cls
    return cls


register_policy(SwapAsapPolicy)


class PolicyError(KeyError):
    """An unknown policy name, or options its policy does not take; the message is one line."""

    def __str__(self) -> str:
        return str(self.args[0])


def make_policy(name: str, options: dict[str, Any] | None = None) -> Policy:
    """The registered policy ``name`` built with ``options`` (its class's keyword arguments)."""
    cls = POLICIES.get(name)
    if cls is None:
        raise PolicyError(f"unknown network policy {name!r}; registered: {', '.join(sorted(POLICIES))}")
    try:
        return cls(**(options or {}))
    except (TypeError, ValueError) as exc:
        registered = ", ".join(sorted(POLICIES))
        # the reason first: a one-line error may be cut short, and the list of names grows
        raise PolicyError(f"network policy {name!r} refuses options {options!r}: {exc} (registered: {registered})") from None


# distillation of every hop's link pairs (qnetstack.network.distill)
register_policy(BbpsswPolicy)
register_policy(DejmpsPolicy)
register_policy(BbpsswPumpingPolicy)
register_policy(DejmpsPumpingPolicy)

# distillation of the end-to-end pairs by the two ends (qnetstack.network.distill_e2e)
register_policy(EndToEndBbpsswPolicy)
register_policy(EndToEndDejmpsPolicy)
register_policy(EndToEndBbpsswPumpingPolicy)
register_policy(EndToEndDejmpsPumpingPolicy)

# nested (doubling) swapping over repeaters (qnetstack.network.nested)
register_policy(NestedPolicy)
