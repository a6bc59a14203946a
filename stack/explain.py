"""Why a request is still open: the layers' answers to ``describe_waits``, joined.

Each layer names the requests it serves and the requests it made of the layer
below (``qnetstack.entity.Wait``), so an open application request can be
followed down: the application's session names its network request, every
node's network session for that request names the link requests it waits on,
and both ends of each link say what those wait for. Memory is the usual
culprit of a stall, so for every link a request waits on, the qubits held at
each end are summed over all layers' answers and, when an end is full, its
holders are named by the application requests they serve.

The result is a few lines per open request, most specific last, e.g.
``link r–bob waiting for memory at r (2/2 qubits held by requests alice#0,
bob#0)``. A layer without ``describe_waits`` leaves a line saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qnetstack.entity import RequestName, Wait

__all__ = ["explain_open_requests", "memory_capacity", "MAX_LINES"]

MAX_LINES = 6  # per request; the rest is counted


class _Answers:
    """The layers' waits with the indexes the explanation needs."""

    def __init__(self, answers: dict[str, dict[str, list[Wait] | None]], user_of_net: dict[RequestName, RequestName]) -> None:
        self.answers = answers
        self.user_of_net = user_of_net
        self.by_layer: dict[str, list[tuple[str, Wait]]] = {"application": [], "network": [], "link": []}
        for node, layers in answers.items():
            for layer, waits in layers.items():
                if waits is not None and layer in self.by_layer:
                    self.by_layer[layer].extend((node, w) for w in waits)
        # a network request (head, id) -> the user's request it serves, from the head application's own answer
        for node, wait in self.by_layer["application"]:
            if wait.request is not None and wait.request[0] == node:
                for net in wait.below:
                    self.user_of_net.setdefault(net, wait.request)
        # a link request -> the network request it serves
        self.net_of_link: dict[RequestName, RequestName] = {}
        for _, wait in self.by_layer["network"]:
            if wait.request is not None:
                for link_request in wait.below:
                    self.net_of_link[link_request] = wait.request

    def has_session(self, request: RequestName) -> bool:
        return any(n == request[0] and w.request == request for n, w in self.by_layer["application"])

    def silent(self, node: str, layer: str) -> bool:
        return self.answers.get(node, {}).get(layer, []) is None

    def holder(self, layer: str, wait: Wait) -> str:
        """The name of what a holding session serves: a user request where known."""
        if layer == "application" and wait.request is not None:
            return f"{wait.request[0]}#{wait.request[1]}"
        net = wait.request if layer == "network" else self.net_of_link.get(wait.request) if wait.request else None
        if net is None and layer == "application" and wait.below:
            net = wait.below[0]
        user = None if net is None else self.user_of_net.get(net)
        return f"{user[0]}#{user[1]}" if user is not None else wait.session

    def memory(self, node: str, capacity: dict[str, int]) -> tuple[int, list[str]] | None:
        """(qubits held at ``node``, who holds them) when every qubit there is held, else None."""
        total = capacity.get(node)
        if total is None:
            return None
        held = 0
        holders: list[str] = []
        for layer, waits in self.answers.get(node, {}).items():
            for wait in waits or ():
                if wait.holds:
                    held += wait.holds
                    name = self.holder(layer, wait)
                    if name not in holders:
                        holders.append(name)
        return (held, holders) if held >= total else None


def explain_open_requests(
    open_requests: Iterable[RequestName],
    answers: dict[str, dict[str, list[Wait] | None]],
    user_of_net: dict[RequestName, RequestName],
    capacity: dict[str, int],
    live_only: bool = False,
) -> dict[RequestName, list[str]]:
    """Lines saying what each open request waits for, and where.

    ``answers`` maps node -> layer -> that layer's waits (None: the layer does
    not describe them); ``user_of_net`` maps network requests to the user
    requests they were made for; ``capacity`` maps nodes to their memory size.
    With ``live_only``, requests without a session at their application are left out.
    """
    index = _Answers(answers, dict(user_of_net))
    explained = {}
    for request in open_requests:
        if live_only and not index.has_session(request):
            continue
        lines = _explain(request, index, capacity)
        if len(lines) > MAX_LINES:
            lines = [*lines[: MAX_LINES - 1], f"… and {len(lines) - MAX_LINES + 1} more"]
        explained[request] = lines
    return explained


def _explain(request: RequestName, index: _Answers, capacity: dict[str, int]) -> list[str]:
    node = request[0]
    if index.silent(node, "application"):
        return [f"the application layer at {node} does not describe what it waits for"]
    heads = [w for n, w in index.by_layer["application"] if n == node and w.request == request]
    if not heads:
        return ["no session at its application: it was never handed over, or ended without answering"]
    lines = [f"{node}: {w.waiting_for}" for w in heads]
    nets = {net for w in heads for net in w.below}
    circuits = [(n, w) for n, w in index.by_layer["network"] if w.request in nets]
    if not circuits:
        silent = sorted(n for n, layers in index.answers.items() if layers.get("network", []) is None)
        if silent:
            lines.append(f"the network layer at {', '.join(silent)} does not describe what it waits for")
        return lines
    link_requests = {name for _, w in circuits for name in w.below}
    links = [(n, w) for n, w in index.by_layer["link"] if w.request in link_requests]
    lines.extend(f"{n}: {w.waiting_for}" for n, w in circuits if not _covered_by_link(n, w, links))
    seen: set[RequestName | None] = set()
    for n, w in links:
        if w.request in seen:
            continue  # the request is told once, from the end that first answers
        seen.add(w.request)
        lines.append(_link_line(n, w, index, capacity))
    return lines


def _covered_by_link(node: str, circuit: Wait, links: list[tuple[str, Wait]]) -> bool:
    """Whether the circuit's wait at ``node`` is a link pair that a link line will explain."""
    return (
        circuit.peer is not None
        and any({n, w.peer} == {node, circuit.peer} for n, w in links)
        and circuit.waiting_for.startswith("a link pair")
    )


def _link_line(node: str, wait: Wait, index: _Answers, capacity: dict[str, int]) -> str:
    other = wait.peer or "?"
    for end in (node, other):
        full = index.memory(end, capacity)
        if full is not None:
            held, holders = full
            by = f" by requests {', '.join(holders)}" if holders else ""
            return f"link {node}–{other} waiting for memory at {end} ({held}/{capacity[end]} qubits held{by})"
    return f"link {node}–{other}: {wait.session} waits for {wait.waiting_for}"


def memory_capacity(network: Any, nodes: Iterable[str]) -> dict[str, int]:
    """node -> number of memory qubits, from each node's device capabilities."""
    capacity = {}
    for node in nodes:
        device = network.entities.get(node, {}).get("physical")
        describe = getattr(device, "capabilities", None)
        if describe is not None:
            capacity[node] = describe().num_qubits
    return capacity
