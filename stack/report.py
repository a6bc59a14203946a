"""The summary of a run: per-link attempt statistics and per-application results.

Everything here is a function of the scenario and the seed (no wall-clock
figures), so two runs with the same seed print identical JSON.

Applications are listed per request, keyed by the node that made it and its
``request_id`` (unique per node in a scenario): how it ended and how many
results (``TeleportResult`` at the receiver, ``PairResult`` at the tail) name
it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qnetstack.application.service import AppDone, AppError, AppErrorCode, PairResult, TeleportResult

__all__ = ["RunResult", "LinkStats", "FidelityStats", "RequestOutcome", "summarise"]


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LinkStats(_Report):
    link: str
    attempts: int
    successes: int
    success_probability: float | None
    success_probability_stderr: float | None


class FidelityStats(_Report):
    count: int
    mean_oracle_fidelity: float | None
    stderr_oracle_fidelity: float | None
    mean_goodness: float | None
    rate_hz: float | None


class RequestOutcome(_Report):
    """One application request: request ``request_id`` of ``node``.

    ``outcome`` is ``done`` (``AppDone``), ``error`` (``AppError``),
    ``refused`` (``AppError`` ``DUPLICATE_ID``: another request of the node had
    that id open) or ``open`` (not closed when the run stopped). ``number`` is
    None for a request the scenario does not list (handed to the network in
    code). ``results`` counts the results naming the request; ``time_ns`` is
    when it closed.
    """

    node: str
    request_id: int
    request_kind: str
    remote_node: str | None
    number: int | None
    outcome: Literal["done", "error", "refused", "open"]
    completed: int | None
    results: int
    time_ns: int | None
    error_code: str | None
    detail: str | None

    @property
    def label(self) -> str:
        return f"{self.node}#{self.request_id}"


class RunResult(_Report):
    scenario: str
    seed: int
    sim_time_ns: int
    events: int
    links: list[LinkStats]
    teleport: FidelityStats | None
    pairs: FidelityStats | None
    applications: list[RequestOutcome]
    counters: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def to_table(self) -> str:
        lines = [f"scenario {self.scenario!r}  seed {self.seed}  simulated {self.sim_time_ns / 1e6:.3f} ms  events {self.events}"]
        lines.append("")
        lines.append(f"{'link':<20}{'attempts':>10}{'successes':>11}{'p_success':>12}{'± s.e.':>10}")
        for s in self.links:
            p = "-" if s.success_probability is None else f"{s.success_probability:.4f}"
            e = "-" if s.success_probability_stderr is None else f"{s.success_probability_stderr:.4f}"
            lines.append(f"{s.link:<20}{s.attempts:>10}{s.successes:>11}{p:>12}{e:>10}")
        for label, stats in (("teleport", self.teleport), ("pairs", self.pairs)):
            if stats is None:
                continue
            lines.append("")
            lines.append(f"{label}: {stats.count} done")
            if stats.mean_oracle_fidelity is not None:
                lines.append(f"  mean oracle fidelity  {stats.mean_oracle_fidelity:.4f} ± {stats.stderr_oracle_fidelity:.4f} (s.e.)")
            if stats.mean_goodness is not None:
                lines.append(f"  mean goodness         {stats.mean_goodness:.4f}")
            if stats.rate_hz is not None:
                lines.append(f"  rate                  {stats.rate_hz:.2f} per second (simulated)")
        if self.applications:
            lines.append("")
            lines.append(f"{'request':<16}{'kind':<10}{'to':<12}{'outcome':<9}{'done':>9}{'results':>9}  closed at / why")
        for app in self.applications:
            done = "-" if app.completed is None else f"{app.completed}/{'?' if app.number is None else app.number}"
            if app.outcome in ("error", "refused"):
                why = f"{app.error_code}: {app.detail}"
            elif app.time_ns is not None:
                why = f"{app.time_ns / 1e6:.3f} ms"
            else:
                why = "-"
            lines.append(
                f"{app.label:<16}{app.request_kind:<10}{app.remote_node or '?':<12}{app.outcome:<9}{done:>9}{app.results:>9}  {why}"
            )
        return "\n".join(lines)


def _mean_stderr(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _fidelity_stats(fidelities: list[float], goodnesses: list[float], times: list[int]) -> FidelityStats:
    mean, stderr = _mean_stderr(fidelities)
    mean_goodness, _ = _mean_stderr(goodnesses)
    rate = len(times) / (max(times) * 1e-9) if times and max(times) > 0 else None
    return FidelityStats(
        count=len(fidelities),
        mean_oracle_fidelity=mean,
        stderr_oracle_fidelity=stderr,
        mean_goodness=mean_goodness,
        rate_hz=rate,
    )


def summarise(scenario: Any, network: Any) -> RunResult:
    trace = network.trace
    links = []
    for link in sorted(trace.link_attempts):
        attempts = trace.link_attempts[link]
        successes = trace.link_successes[link]
        p = successes / attempts if attempts else None
        se = math.sqrt(p * (1 - p) / attempts) if p is not None else None
        links.append(LinkStats(link=link, attempts=attempts, successes=successes, success_probability=p, success_probability_stderr=se))
    teleports = [m for _, _, m in network.user_messages if isinstance(m, TeleportResult)]
    pairs = [m for _, _, m in network.user_messages if isinstance(m, PairResult)]
    return RunResult(
        scenario=scenario.name,
        seed=scenario.seed,
        sim_time_ns=network.kernel.now_ns,
        events=network.kernel.events_processed,
        links=links,
        teleport=_fidelity_stats(
            [t.oracle_fidelity for t in teleports], [t.pair_goodness for t in teleports], [t.received_time_ns for t in teleports]
        )
        if teleports
        else None,
        pairs=_fidelity_stats([p.oracle_fidelity for p in pairs], [p.goodness for p in pairs], [p.reported_time_ns for p in pairs])
        if pairs
        else None,
        applications=_request_outcomes(scenario, network.user_messages),
        counters=dict(sorted(trace.counts.items())),
    )


def _request_outcomes(scenario: Any, user_messages: list[tuple[int, str, Any]]) -> list[RequestOutcome]:
    """Per request (node, request_id): the scenario's requests, then any other the responses name."""
    entries: dict[tuple[str, int], dict[str, Any]] = {}
    refused: list[RequestOutcome] = []

    def entry(node: str, request_id: int, kind: str, remote: str | None = None, number: int | None = None) -> dict[str, Any]:
        found = entries.get((node, request_id))
        if found is None:
            found = entries[(node, request_id)] = dict(
                node=node,
                request_id=request_id,
                request_kind=kind,
                remote_node=remote,
                number=number,
                outcome="open",
                completed=None,
                results=0,
                time_ns=None,
                error_code=None,
                detail=None,
            )
        return found

    for app in getattr(scenario, "applications", ()):
        request = app.request
        entry(app.node, request.request_id, request.kind, request.remote_node, request.number)
    for time_ns, node, msg in user_messages:
        if isinstance(msg, TeleportResult):
            entry(msg.sender, msg.request_id, "teleport", node)["results"] += 1
        elif isinstance(msg, PairResult):
            entry(msg.pair_id.head, msg.request_id, "pairs", msg.pair_id.tail)["results"] += 1
        elif isinstance(msg, AppDone):
            e = entry(node, msg.request_id, msg.request_kind, msg.remote_node)
            e.update(outcome="done", completed=msg.completed, time_ns=msg.time_ns)
        elif isinstance(msg, AppError):
            fields = dict(error_code=msg.code.value, detail=msg.detail, time_ns=time_ns)
            if msg.code is AppErrorCode.DUPLICATE_ID:
                refused.append(
                    RequestOutcome(
                        node=node,
                        request_id=msg.request_id,
                        request_kind=msg.request_kind,
                        remote_node=None,
                        number=None,
                        outcome="refused",
                        completed=None,
                        results=0,
                        **fields,
                    )
                )
            else:
                entry(node, msg.request_id, msg.request_kind).update(outcome="error", **fields)
    outcomes = [RequestOutcome(**e) for e in entries.values()] + refused
    return sorted(outcomes, key=lambda o: (o.node, o.request_id, o.outcome == "refused"))
