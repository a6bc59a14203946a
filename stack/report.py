"""The summary of a run: per-link attempt statistics and per-application results.

Everything here is a function of the scenario and the seed (no wall-clock
figures), so two runs with the same seed print identical JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from qnetstack.application.service import AppDone, AppError, PairResult, TeleportResult

__all__ = ["RunResult", "LinkStats", "FidelityStats", "summarise"]


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


class RunResult(_Report):
    scenario: str
    seed: int
    sim_time_ns: int
    events: int
    links: list[LinkStats]
    teleport: FidelityStats | None
    pairs: FidelityStats | None
    applications: list[dict[str, Any]]
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
        for app in self.applications:
            if app.get("kind") == "app_error":
                lines.append(f"application error: {app['request_kind']}: {app['detail']}")
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
        se = math.sqrt(p * (1 - p) / attempts) if attempts else None
        links.append(
            LinkStats(link=link, attempts=attempts, successes=successes, success_probability=p, success_probability_stderr=se)
        )
    teleports = [m for _, _, m in network.user_messages if isinstance(m, TeleportResult)]
    pairs = [m for _, _, m in network.user_messages if isinstance(m, PairResult)]
    apps = [m.model_dump(mode="json") for _, _, m in network.user_messages if isinstance(m, (AppDone, AppError))]
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
        pairs=_fidelity_stats([p.oracle_fidelity for p in pairs], [p.goodness for p in pairs], [p.delivered_time_ns for p in pairs])
        if pairs
        else None,
        applications=apps,
        counters=dict(sorted(trace.counts.items())),
    )
