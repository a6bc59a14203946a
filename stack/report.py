"""The summary of a run: how it ended, per-link attempt statistics and per-request results.

Everything here is a function of the scenario and the seed (no wall-clock
figures), so two runs with the same seed print identical JSON; the one
exception is a run cut by a wall-clock limit, which says so.

The run states how it ended (:class:`RunEnd`): ``done`` (every request done),
``failed`` (a request failed, or an entity raised: then :class:`HandlerError`
says where) or ``stalled`` (requests were open when it stopped). Results of a
run that did not end ``done`` are partial, and the table and JSON say so.

Applications are listed per request, keyed by the node that made it and its
``request_id`` (unique per node in a scenario): how it ended, the path the
network gave it, how many results (``TeleportResult`` at the receiver,
``PairResult`` at the tail) name it with their mean oracle fidelity and
goodness, and, for a request still open, what it waits for.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qnetstack.application.service import (
    AppDone,
    AppError,
    AppErrorCode,
    KeyAborted,
    KeyDelivered,
    PairResult,
    RelayKeyInfo,
    TeleportResult,
)
from qnetstack.stack.pulses import ports_of

__all__ = [
    "RunResult",
    "RunEnd",
    "HandlerError",
    "LinkStats",
    "FidelityStats",
    "RequestOutcome",
    "KeyReport",
    "PulseLinkReport",
    "Estimate",
    "DetectorClicks",
    "StationPhotonStats",
    "summarise",
]


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


class HandlerError(_Report):
    """An exception raised inside an entity's handler, with where and when.

    ``node``, ``layer`` and ``implementation`` (the entity's class) say who
    raised, ``handler`` in which method (``handle_peer``, ``start``, ...),
    ``message`` what it was handling (its repr, shortened) and ``time_ns``
    when, in simulated time. ``traceback`` is the Python traceback from the
    handler down, without the kernel's and the runner's frames. A handler cut
    by the wall-clock limit is reported the same way (``error_type``
    ``WallLimitReached``).
    """

    node: str | None
    layer: str | None
    implementation: str | None
    time_ns: int
    handler: str
    message: str | None
    error_type: str
    error: str
    traceback: str

    @property
    def headline(self) -> str:
        """One line: what went wrong, in which entity, when (without the message)."""
        who = f"the {self.layer} layer ({self.implementation}) at node {self.node}" if self.layer else self.implementation or "the stack"
        when = f"{self.time_ns / 1e6:.6f} ms"
        if self.error_type == "WallLimitReached":
            return f"{self.error} while {who} ran {self.handler} at {when}"
        return f"{self.error}, raised by {who} in {self.handler} at {when}"

    def to_text(self) -> str:
        """The headline, the message being handled and the traceback, as one block."""
        lines = [self.headline]
        if self.message is not None:
            lines.append(f"  handling: {self.message}")
        lines.append(self.traceback.rstrip())
        return "\n".join(lines)


class RunEnd(_Report):
    """How a run ended.

    ``status``: ``done`` (every request done; also a run without requests),
    ``failed`` (some request failed or was refused, or an entity raised: see
    ``error``) or ``stalled`` (requests were open when the run stopped).
    ``reason``: ``finished`` (every request closed and no event was left),
    ``busy`` (every request closed, but the layers went on for the stall span
    and the run was cut; ``waits`` of the requests whose sessions were still
    alive say what they waited for), ``idle``
    (no event left, requests open), ``stall`` (no request progressed for the
    stall span), ``max_time`` / ``max_events`` (the scenario's stop), ``wall_limit``
    (the wall-clock limit; not a function of the seed) or ``error``.
    ``detail`` says it in words.
    """

    status: Literal["done", "failed", "stalled"]
    reason: Literal["finished", "busy", "idle", "stall", "max_time", "max_events", "wall_limit", "error"]
    detail: str
    error: HandlerError | None = None


RequestState = Literal["done", "failed", "refused", "stalled", "open"]


class RequestOutcome(_Report):
    """One application request: request ``request_id`` of ``node``.

    ``outcome`` is ``done`` (``AppDone``), ``error`` (``AppError``),
    ``refused`` (``AppError`` ``DUPLICATE_ID``: another request of the node had
    that id open) or ``open`` (not closed when the run stopped). ``number`` is
    None for a request the scenario does not list (handed to the network in
    code). ``results`` counts the results naming the request; ``time_ns`` is
    when it closed.

    ``state`` is the run's verdict: ``done``, ``failed`` (``error_code`` says
    why), ``refused``, ``stalled`` (open when the run stopped by its stall
    watch or a limit; ``waits`` says what it waits for) or ``open`` (open when
    an entity's error ended the run). A closed request has ``waits`` when the
    run was cut as ``busy`` while its sessions were still alive. ``path`` is the route the network
    accepted it on (None: unknown, e.g. never accepted). The oracle fidelity
    and goodness are the means over its results with their standard errors;
    ``first_result_ns`` and ``last_result_ns`` are when the first and last
    result reached the user.
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
    state: RequestState = "open"
    path: list[str] | None = None
    mean_oracle_fidelity: float | None = None
    stderr_oracle_fidelity: float | None = None
    mean_goodness: float | None = None
    stderr_goodness: float | None = None
    first_result_ns: int | None = None
    last_result_ns: int | None = None
    waits: list[str] = []
    tail_aborted: str | None = None  # a QKD request's code in the tail's KeyAborted (the tail's user was told)

    @property
    def label(self) -> str:
        return f"{self.node}#{self.request_id}"


class KeyReport(_Report):
    """A QKD key, as its head delivered it (``ends`` says where it was delivered, with the same hash)."""

    key_id: str
    head: str
    request_id: int
    protocol: str
    length: int
    key_sha256: str
    ends: list[str]
    equal: bool  # the same key at every end it was delivered at
    epsilon: float
    qber: float
    qber_upper: float
    sifted_bits: int
    leaked_ec_bits: int
    chsh_s: float | None = None
    chsh_standard_error: float | None = None
    # bb84-decoy: the pulses sent, the key's bits per pulse, and the decoy estimates (KeyDelivered)
    pulses: int | None = None
    key_rate_per_pulse: float | None = None
    ec_efficiency: float | None = None
    gain_signal: float | None = None
    single_photon_gain_lower: float | None = None
    single_photon_error_upper: float | None = None
    trusted_relays: list[str] | None = None  # a trusted-relay key: the relays that can compute it


class PulseLinkReport(_Report):
    """A pulse link with an eavesdropper on it (``adversary``: her model, as the scenario gives it).

    ``eve_known_bits`` counts, over the link's trains, the sifted key bits
    whose sender's bit Eve knows exactly, and ``oracle_sifted_bits`` the sifted
    key bits (the signal class in both bases; the Z basis with ``finite_key``).
    Both are oracle reads of the physical simulation (what Eve holds is never
    given to the protocol), None when no train ran.
    """

    link: str
    adversary: dict[str, Any]
    eve_known_bits: int | None = None
    oracle_sifted_bits: int | None = None


class Estimate(_Report):
    """A measured figure and its standard error (None: the counts do not give one)."""

    value: float
    stderr: float | None


class DetectorClicks(_Report):
    detector: str  # "<node>.<detector>"
    clicks: int
    probability: Estimate  # per observed attempt, binomial s.e.


class StationPhotonStats(_Report):
    """What one heralding station's detectors saw, per observed attempt (docs/physical.md,
    "Photon statistics in the report"; the counts are the physical layer's
    ``StationPhotonCounts``).

    ``trials`` are the attempts simulated one by one whose click pattern the model
    resolves; every probability is per trial with its binomial standard error:
    ``detectors`` (each detector's click probability), ``end_click`` (a click at that
    node), ``coincidence`` (at both nodes in one attempt) and ``accidental`` (the first
    end in one attempt, the second in the next; its s.e. allows for the overlap of
    consecutive windows). ``heralding_efficiency``: Klyshko's ratio per node, clicks at
    both nodes over clicks at the other one (Klyshko, Sov. J. Quantum Electron. 10, 1112
    (1980)), accidentals not subtracted, s.e. binomial over the other node's clicks.
    ``g2``: per node and polarisation arm, ``P(c ∧ d) / (P(c) P(d))`` of the two
    detectors of that polarisation (Hanbury Brown–Twiss), s.e. by the delta method
    (Casella & Berger, *Statistical Inference*, 2nd ed. (2002), Thm 5.5.24).
    ``hom_visibility``: per node, ``1 - N_parallel / N_crossed`` of the attempts with
    exactly two clicks there, one behind each beam-splitter port, of the same or of
    crossed polarisations (Hong, Ou & Mandel, PRL 59, 2044 (1987)), delta-method s.e.
    ``not_observed`` says why figures are missing (e.g. every attempt ran in
    fast-forward, where click patterns are not drawn).
    """

    station: str
    link: str
    scheme: str
    attempts: int
    heralds: int
    observed_attempts: int
    unresolved_attempts: int
    fast_forwarded_attempts: int
    trials: int
    detectors: list[DetectorClicks] = []
    end_click: dict[str, Estimate] = {}
    coincidence: Estimate | None = None
    accidental: Estimate | None = None
    heralding_efficiency: dict[str, Estimate] = {}
    g2: dict[str, Estimate] = {}
    hom_visibility: dict[str, Estimate] = {}
    not_observed: str | None = None


class RunResult(_Report):
    scenario: str
    seed: int
    sim_time_ns: int
    events: int
    links: list[LinkStats]
    teleport: FidelityStats | None
    pairs: FidelityStats | None
    applications: list[RequestOutcome]
    keys: list[KeyReport] = []
    pulse_links: list[PulseLinkReport] = []
    photon_statistics: list[StationPhotonStats] = []
    counters: dict[str, int]
    status: Literal["done", "failed", "stalled"] = "done"
    end: RunEnd = RunEnd(status="done", reason="finished", detail="every request closed")
    partial: bool = False  # the run stopped before every request had closed

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    @property
    def exit_code(self) -> int:
        """0 when every request is done, 1 otherwise (a request failed or is open, or the run failed)."""
        return 0 if self.status == "done" else 1

    def status_line(self) -> str:
        """One line: how the run ended and how its requests did."""
        apps = self.applications
        counts = {state: sum(1 for a in apps if a.state == state) for state in ("done", "failed", "refused", "stalled", "open")}
        done = f"{counts['done']} of {len(apps)} requests done"
        others = ", ".join(f"{n} {state}" for state, n in counts.items() if n and state != "done")
        tally = done + (f" ({others})" if others else "")
        if self.end.error is not None:
            return f"FAILED: {self.end.error.headline}; partial results: {tally}"
        if self.status == "stalled":
            open_ = counts["stalled"] + counts["open"]
            return f"STALLED: {open_} of {len(apps)} requests open, {self.end.detail}; partial results: {tally}"
        note = "" if self.end.reason == "finished" else f" ({self.end.detail})"
        if self.status == "failed":
            failed = [f"{a.label} {a.error_code or a.state}" for a in apps if a.state in ("failed", "refused")]
            return f"FAILED: {', '.join(failed)}; {tally}{note}"
        if not apps:
            return f"done: no application requests ({self.end.detail})"
        every = "the request is done" if len(apps) == 1 else f"all {len(apps)} requests done"
        return f"done: {every}{note}"

    def to_table(self) -> str:
        partial = "  PARTIAL" if self.partial or self.end.error is not None else ""
        lines = [f"scenario {self.scenario!r}  seed {self.seed}  simulated {self.sim_time_ns / 1e6:.3f} ms  events {self.events}{partial}"]
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
                # one sample has no standard error: say so instead of failing to format None
                spread = "(one sample: no s.e.)" if stats.stderr_oracle_fidelity is None else f"± {stats.stderr_oracle_fidelity:.4f} (s.e.)"
                lines.append(f"  mean oracle fidelity  {stats.mean_oracle_fidelity:.4f} {spread}")
            if stats.mean_goodness is not None:
                lines.append(f"  mean goodness         {stats.mean_goodness:.4f}")
            if stats.rate_hz is not None:
                lines.append(f"  rate                  {stats.rate_hz:.2f} per second (simulated)")
        if self.keys:
            lines.append("")
            lines.append("keys:")
        for key in self.keys:
            where = " and ".join(key.ends) + ("" if key.equal else " (DIFFERENT)")
            chsh = "" if key.chsh_s is None else f"  S {key.chsh_s:.3f} ± {key.chsh_standard_error or 0:.3f}"
            lines.append(
                f"  {key.key_id}  {key.protocol}  {key.length} bits at {where}  sha256 {key.key_sha256[:16]}…  "
                f"QBER {key.qber:.4f} (≤ {key.qber_upper:.4f})  ε {key.epsilon:g}  sifted {key.sifted_bits}  "
                f"EC leaked {key.leaked_ec_bits}{chsh}"
                + ("" if key.trusted_relays is None else f"  trusted relays {', '.join(key.trusted_relays)}")
            )
            if key.pulses is not None:
                lines.append(f"    {_pulse_figures(key)}")
        if self.pulse_links:
            lines.append("")
            lines.append("pulse links with an eavesdropper:")
        for link in self.pulse_links:
            settings = ", ".join(f"{k} {v}" for k, v in link.adversary.items() if k != "kind")
            lines.append(f"  {link.link}  adversary {link.adversary['kind']}" + (f" ({settings})" if settings else ""))
            if link.eve_known_bits is not None:
                lines.append(
                    f"    oracle: Eve knows {link.eve_known_bits} of the {link.oracle_sifted_bits} sifted key bits exactly"
                    " (read from the simulation, never given to the protocol)"
                )
        for station in self.photon_statistics:
            lines.append("")
            lines.extend(_photon_rows(station))
        if self.applications:
            lines.append("")
            lines.append(
                f"{'request':<14}{'kind':<10}{'state':<18}{'delivered':>10}  {'oracle fidelity':<17}  {'goodness':<17}"
                f"  {'first – last result (ms)':<25}  path"
            )
        for app in self.applications:
            lines.extend(_request_rows(app))
        if self.end.error is not None:
            lines.append("")
            lines.extend(self.end.error.to_text().splitlines())
        lines.append("")
        lines.append(self.status_line())
        return "\n".join(lines)


def _pulse_figures(key: KeyReport) -> str:
    """The second line of a decoy-BB84 key: pulses, rate, EC efficiency and the decoy estimates."""
    parts = [f"{key.pulses} pulses", f"{key.key_rate_per_pulse:.3e} secret bits per pulse"]
    if key.ec_efficiency is not None:
        parts.append(f"EC efficiency {key.ec_efficiency:.3f}")
    if key.gain_signal is not None:
        parts.append(f"Q_signal {key.gain_signal:.3e}")
    if key.single_photon_gain_lower is not None:
        parts.append(f"Q1 ≥ {key.single_photon_gain_lower:.3e}")
    if key.single_photon_error_upper is not None:
        parts.append(f"e1 ≤ {key.single_photon_error_upper:.4f}")
    return "  ".join(parts)


def _photon_rows(stats: StationPhotonStats) -> list[str]:
    """A station's photon statistics as a block of the table."""
    extra = []
    if stats.unresolved_attempts:
        extra.append(f"{stats.unresolved_attempts} beyond the model's pair cutoff left out")
    if stats.fast_forwarded_attempts:
        extra.append(f"{stats.fast_forwarded_attempts} fast-forwarded, clicks not observed")
    note = f" ({'; '.join(extra)})" if extra else ""
    lines = [f"photon statistics at station {stats.station} ({stats.scheme}): {stats.trials} attempts observed one by one{note}"]
    if stats.not_observed is not None:
        lines.append(f"  not observed: {stats.not_observed}")
        return lines
    lines.append(f"  {'detector':<18}{'clicks':>9}  p_click ± s.e.")
    for d in stats.detectors:
        lines.append(f"  {d.detector:<18}{d.clicks:>9}  {_measured(d.probability)}")
    figures: list[tuple[str, Estimate | None]] = [(f"click at {end}", e) for end, e in stats.end_click.items()]
    figures += [("coincidence (both nodes)", stats.coincidence), ("accidental (next attempt)", stats.accidental)]
    figures += [(f"heralding efficiency {end}", e) for end, e in stats.heralding_efficiency.items()]
    figures += [(f"g2(0) {arm}", e) for arm, e in stats.g2.items()]
    figures += [(f"HOM visibility {end}", e) for end, e in stats.hom_visibility.items()]
    for label, estimate in figures:
        if estimate is not None:
            lines.append(f"  {label:<32}{_measured(estimate)}")
    return lines


def _measured(estimate: Estimate) -> str:
    return _estimate(estimate.value, estimate.stderr)


def _request_rows(app: RequestOutcome) -> list[str]:
    if app.request_kind in ("qkd", "qkd-relay"):  # results are the key's deliveries, one at each end
        delivered = f"{app.results}/2 ends"
    else:
        delivered = f"{app.results}/{'?' if app.number is None else app.number}"
    state = app.state if app.state != "failed" or not app.error_code else f"failed {app.error_code}"
    if app.first_result_ns is None or app.last_result_ns is None:
        times = "-"
    else:
        times = f"{app.first_result_ns / 1e6:.3f} – {app.last_result_ns / 1e6:.3f}"
    path = "–".join(app.path) if app.path else f"? (to {app.remote_node or '?'})"
    row = (
        f"{app.label:<14}{app.request_kind:<10}{state:<18}{delivered:>10}  {_estimate(app.mean_oracle_fidelity, app.stderr_oracle_fidelity):<17}"
        f"  {_estimate(app.mean_goodness, app.stderr_goodness):<17}  {times:<25}  {path}"
    )
    rows = [row]
    if app.state in ("failed", "refused"):
        rows.append(f"    {app.error_code}: {app.detail}")
    if app.tail_aborted is not None:
        rows.append(f"    {app.remote_node or 'the tail'} told: KeyAborted {app.tail_aborted}")
    rows.extend(f"    waits: {line}" for line in app.waits)
    return rows


def _estimate(mean: float | None, stderr: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if stderr is None else f"{mean:.4f} ± {stderr:.4f}"


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


def summarise(
    scenario: Any,
    network: Any,
    end: RunEnd | None = None,
    waits: dict[tuple[str, int], list[str]] | None = None,
) -> RunResult:
    """The report of a run of ``network`` (assembled from ``scenario``) that ended as ``end``
    (left out: as if every request had been left to close); ``waits`` says what open requests wait for."""
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
    outcomes = _request_outcomes(scenario, network.user_messages)
    if end is None:
        failed = any(o.outcome in ("error", "refused") for o in outcomes)
        still_open = any(o.outcome == "open" for o in outcomes)
        status: Literal["done", "failed", "stalled"] = "stalled" if still_open else "failed" if failed else "done"
        end = RunEnd(status=status, reason="finished", detail="every request closed" if not still_open else "requests were open")
    paths = _paths(network)
    results = _results_by_request(network.user_messages)
    applications = [_with_run_details(o, end, results, paths, waits or {}) for o in outcomes]
    if end.error is None and end.status != "stalled":
        # the runner watched the scenario's requests; requests made in code are judged here too
        verdict: Literal["done", "failed"] = "failed" if any(a.state in ("failed", "refused") for a in applications) else "done"
        end = end.model_copy(update={"status": verdict})
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
        applications=applications,
        keys=_keys(network.user_messages),
        pulse_links=_attacked_pulse_links(scenario, network),
        photon_statistics=_photon_statistics(network),
        counters=dict(sorted(trace.counts.items())),
        status=end.status,
        end=end,
        partial=any(o.state in ("stalled", "open") for o in applications) or end.error is not None,
    )


def _photon_statistics(network: Any) -> list[StationPhotonStats]:
    """Each station that observed attempts (or fast-forwarded them where it could have), in name order."""
    found = []
    for node in sorted(network.entities):
        ask = getattr(network.entities[node].get("physical"), "photon_statistics", None)
        if ask is None:
            continue
        counts = ask()
        if counts.observed_attempts or (counts.fast_forwarded_attempts and counts.not_observed is not None):
            found.append(photon_stats(counts))
    return found


def photon_stats(counts: Any) -> StationPhotonStats:
    """The report's figures from a station's ``StationPhotonCounts`` (see :class:`StationPhotonStats`)."""
    n = counts.observed_attempts - counts.unresolved_attempts
    common = dict(
        station=counts.station,
        link=counts.link,
        scheme=counts.scheme,
        attempts=counts.attempts,
        heralds=counts.heralds,
        observed_attempts=counts.observed_attempts,
        unresolved_attempts=counts.unresolved_attempts,
        fast_forwarded_attempts=counts.fast_forwarded_attempts,
        trials=max(0, n),
    )
    if n <= 0 or counts.not_observed is not None:
        return StationPhotonStats(**common, not_observed=counts.not_observed or "no attempt with a resolved click pattern")
    a, b = counts.ends
    end_click = {end: _binomial(counts.end_clicks[end], n) for end in (a, b)}
    pa, pb, pab = counts.end_clicks[a] / n, counts.end_clicks[b] / n, counts.coincidences / n
    accidental = None
    if counts.accidental_windows:
        m = counts.accidental_windows
        p = counts.accidentals / m
        # consecutive windows share an attempt (a 1-dependent sequence): the variance of the sum
        # gains 2·Cov(A_i B_{i+1}, A_{i+1} B_{i+2}) = 2 (p_A p_AB p_B - p²) per window
        var = p * (1 - p) + 2 * (pa * pab * pb - p * p)
        accidental = Estimate(value=p, stderr=math.sqrt(max(0.0, var) / m))
    heralding = {}
    for end, other in ((a, b), (b, a)):
        given = counts.end_clicks[other]
        if given:
            eta = counts.coincidences / given
            heralding[end] = Estimate(value=eta, stderr=math.sqrt(eta * (1 - eta) / given))
    g2 = {}
    for end in (a, b):
        for pol in "HV":
            c, d = counts.clicks[f"{end}.c{pol}"], counts.clicks[f"{end}.d{pol}"]
            both = counts.arm_coincidences[f"{end}.{pol}"]
            if c and d:
                g2[f"{end}.{pol}"] = _g2(both, c, d, n)
    hom = {}
    for end in (a, b):
        parallel, crossed = counts.two_photon_parallel[end], counts.two_photon_crossed[end]
        if crossed:
            ratio = parallel / crossed
            se = ratio * math.sqrt(1 / parallel + 1 / crossed) if parallel else None
            hom[end] = Estimate(value=1 - ratio, stderr=se)
    return StationPhotonStats(
        **common,
        detectors=[DetectorClicks(detector=name, clicks=k, probability=_binomial(k, n)) for name, k in counts.clicks.items()],
        end_click=end_click,
        coincidence=_binomial(counts.coincidences, n),
        accidental=accidental,
        heralding_efficiency=heralding,
        g2=g2,
        hom_visibility=hom,
    )


def _binomial(k: int, n: int) -> Estimate:
    p = k / n
    return Estimate(value=p, stderr=math.sqrt(p * (1 - p) / n))


def _g2(both: int, c: int, d: int, n: int) -> Estimate:
    """``g2 = N_cd N / (N_c N_d)`` with its delta-method s.e.: per attempt X = [c], Y = [d],
    Z = XY, ``n Var(ln ĝ) = 1/E Z - 1/E X - 1/E Y + 2 g2 - 1`` (the covariances of the
    three indicator means, Cov(Z, X) = E Z (1 - E X) and Cov(X, Y) = E Z - E X E Y)."""
    ez, ex, ey = both / n, c / n, d / n
    g = ez / (ex * ey)
    if not both:
        return Estimate(value=g, stderr=None)
    var_log = (1 / ez - 1 / ex - 1 / ey + 2 * g - 1) / n
    return Estimate(value=g, stderr=g * math.sqrt(max(0.0, var_log)))


def _keys(user_messages: list[tuple[int, str, Any]]) -> list[KeyReport]:
    """Each QKD key once, from its head's copy (or the first copy, if the head's is missing)."""
    copies: dict[str, list[tuple[str, KeyDelivered]]] = {}
    relays: dict[str, list[str]] = {}
    for _, node, msg in user_messages:
        if isinstance(msg, KeyDelivered):
            copies.setdefault(msg.key_id, []).append((node, msg))
        elif isinstance(msg, RelayKeyInfo):
            relays[msg.key_id] = msg.trusted_relays
    keys = []
    for key_id, found in copies.items():
        node, first = next(((n, m) for n, m in found if n == m.head), found[0])
        keys.append(
            KeyReport(
                key_id=key_id,
                head=first.head,
                request_id=first.request_id,
                protocol=first.protocol,
                length=first.length,
                key_sha256=first.key_sha256,
                ends=[n for n, _ in found],
                equal=len({m.key_hex for _, m in found}) == 1,
                epsilon=first.epsilon,
                qber=first.qber,
                qber_upper=first.qber_upper,
                sifted_bits=first.sifted_bits,
                leaked_ec_bits=first.leaked_ec_bits,
                chsh_s=first.chsh_s,
                chsh_standard_error=first.chsh_standard_error,
                pulses=first.pulses,
                key_rate_per_pulse=None if not first.pulses else first.length / first.pulses,
                ec_efficiency=first.ec_efficiency,
                gain_signal=first.gain_signal,
                single_photon_gain_lower=first.single_photon_gain_lower,
                single_photon_error_upper=first.single_photon_error_upper,
                trusted_relays=relays.get(key_id),
            )
        )
    return keys


def _attacked_pulse_links(scenario: Any, network: Any) -> list[PulseLinkReport]:
    """Each pulse link with an adversary, with the oracle's count of the sifted key bits Eve knows."""
    ports = ports_of(network)
    found = []
    for spec in getattr(scenario, "pulse_links", ()):
        if spec.adversary is None:
            continue
        requests = [
            a.request
            for a in scenario.applications
            if a.node == spec.sender and a.request.remote_node == spec.receiver and getattr(a.request, "protocol", None) == "bb84-decoy"
        ]
        finite = bool(requests) and all(r.finite_key for r in requests)
        tallies = [t for t in getattr(ports.get(spec.sender), "eve", {}).values() if t.receiver == spec.receiver]
        known = sifted = None
        if tallies:
            # the key rounds: the signal class in both bases (asymptotic), or the Z basis of every class (finite key)
            known = sum(int(t.eve_knows[:, 0].sum() if finite else t.eve_knows[0].sum()) for t in tallies)
            sifted = sum(int(t.sifted[:, 0].sum() if finite else t.sifted[0].sum()) for t in tallies)
        found.append(
            PulseLinkReport(
                link=spec.name, adversary=spec.adversary.model_dump(mode="json"), eve_known_bits=known, oracle_sifted_bits=sifted
            )
        )
    return found


def _paths(network: Any) -> dict[tuple[str, int], list[str]]:
    """(node, user request_id) -> the path the network accepted its request on."""
    found = {}
    for net, user in getattr(network, "net_requests", {}).items():
        path = getattr(network, "paths", {}).get(net)
        if path is not None:
            found[user] = list(path)
    return found


def _results_by_request(user_messages: list[tuple[int, str, Any]]) -> dict[tuple[str, int], list[tuple[float, float, int]]]:
    """(head node, request_id) -> (oracle fidelity, goodness, time) of each result naming it."""
    found: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    for _, _, msg in user_messages:
        if isinstance(msg, TeleportResult):
            found.setdefault((msg.sender, msg.request_id), []).append((msg.oracle_fidelity, msg.pair_goodness, msg.received_time_ns))
        elif isinstance(msg, PairResult):
            found.setdefault((msg.pair_id.head, msg.request_id), []).append((msg.oracle_fidelity, msg.goodness, msg.reported_time_ns))
    return found


def _with_run_details(
    outcome: RequestOutcome,
    end: RunEnd,
    results: dict[tuple[str, int], list[tuple[float, float, int]]],
    paths: dict[tuple[str, int], list[str]],
    waits: dict[tuple[str, int], list[str]],
) -> RequestOutcome:
    """The outcome with the run's verdict, its path and the statistics of its results."""
    key = (outcome.node, outcome.request_id)
    mine = [] if outcome.outcome == "refused" else results.get(key, [])
    fidelities = [f for f, _, _ in mine]
    goodnesses = [g for _, g, _ in mine]
    times = [t for _, _, t in mine]
    state: RequestState
    if outcome.outcome == "open":
        state = "open" if end.error is not None else "stalled"
    else:
        state = {"done": "done", "error": "failed", "refused": "refused"}[outcome.outcome]  # type: ignore[assignment]
    mean_f, se_f = _mean_stderr(fidelities)
    mean_g, se_g = _mean_stderr(goodnesses)
    return outcome.model_copy(
        update=dict(
            state=state,
            path=paths.get(key) if outcome.outcome != "refused" else None,
            mean_oracle_fidelity=mean_f,
            stderr_oracle_fidelity=se_f,
            mean_goodness=mean_g,
            stderr_goodness=se_g,
            first_result_ns=min(times) if times else None,
            last_result_ns=max(times) if times else None,
            waits=waits.get(key, []),
        )
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
        elif isinstance(msg, KeyDelivered):
            entry(msg.head, msg.request_id, "qkd")["results"] += 1
        elif isinstance(msg, KeyAborted):
            entry(msg.head, msg.request_id, "qkd", node)["tail_aborted"] = msg.code.value
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
