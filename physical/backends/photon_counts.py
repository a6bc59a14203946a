"""Photon counting at heralding stations: the click patterns behind each attempt.

Theory of operation
-------------------
The model backend (:mod:`qnetstack.physical.backends.heralding_backend`) draws
an attempt's outcome as a herald branch or a failure; it never needs the click
pattern of a failed attempt. For the run's photon statistics a station can
still give every attempt its full pattern, without changing a single draw of
the run:

* a **success** has its pattern pair already: branch ``i`` of the
  midpoint-source model is the pattern pair ``LINK_PATTERNS[i]``;
* a **failure**'s pattern is drawn from the model's law of patterns given
  failure (:meth:`MidpointSourceModel.joint_pattern_probabilities`, the
  16 successful pairs taken out), using a random stream of its own, spawned
  from the station's. Attempts are independent, so given that an attempt
  failed its pattern is independent of everything else the run drew, and
  drawing it from a separate stream gives the joint law exactly. The
  model's truncated mass (more than ``MAX_PAIRS`` pairs) has no pattern; such
  attempts are counted as unresolved.

Only attempts simulated one by one (``max_attempts`` = 1) are observed. A
fast-forward run draws the number of attempts to the first success and no
pattern of the failures before it, so its attempts are counted as
fast-forwarded and contribute nothing to the click figures (rather than
figures the run did not simulate).

The cost per observed attempt is one histogram increment (and, on failure,
one uniform, drawn in blocks, and a bisection over 257 cumulative weights); the figures are
derived from the histogram when asked (:meth:`MidpointPatternCounter.counts`).
Schemes whose models give heralds only (single-click, Barrett–Kok) count
attempts and heralds, with their click figures marked as not observed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import numpy as np

from qnetstack.physical.schemes.midpoint_source import DETECTORS, LINK_PATTERNS, MidpointSourceLinkParams, MidpointSourceModel
from qnetstack.physical.service import StationPhotonCounts

__all__ = ["MidpointPatternCounter", "pattern_counter", "counts_without_patterns", "spawned_rng"]

_N = 1 << len(DETECTORS)  # click patterns of one node, as bitmasks over DETECTORS
_UNRESOLVED = _N * _N  # histogram slot of attempts in the model's truncated mass
_BLOCK = 1024  # uniforms drawn at once for failures' patterns


def _mask(pattern: tuple[str, str]) -> int:
    return (1 << DETECTORS.index(pattern[0])) | (1 << DETECTORS.index(pattern[1]))


def _bit(detector: str) -> int:
    return 1 << DETECTORS.index(detector)


class MidpointPatternCounter:
    """Histogram of the (node A, node B) click patterns of a midpoint-source link's attempts."""

    def __init__(self, model: MidpointSourceModel, rng: Callable[[], np.random.Generator]) -> None:
        joint = model.joint_pattern_probabilities().ravel()  # index k_A * 16 + k_B
        self._success_outcome = [_mask(pa) * _N + _mask(pb) for pa, pb in LINK_PATTERNS]
        failures = np.append(joint, max(0.0, 1.0 - float(joint.sum())))
        failures[self._success_outcome] = 0.0
        total = float(failures.sum())
        self._failure_cumulative = [float(c) / total for c in np.cumsum(failures)] if total > 0 else []
        self._make_rng = rng
        self._rng: np.random.Generator | None = None
        self._uniforms: list[float] = []  # drawn ahead from the counter's own stream
        self.histogram = [0] * (_UNRESOLVED + 1)
        self.fast_forwarded = 0
        self.accidentals = 0
        self.accidental_windows = 0
        self._previous_a_click: bool | None = None  # end A's click in the previous observed attempt

    def record(self, attempts: int, branch: int | None, max_attempts: int) -> None:
        """A run of ``attempts`` attempts ended with ``branch`` (None: no herald)."""
        if max_attempts != 1:
            self.fast_forwarded += attempts
            self._previous_a_click = None  # the next observed attempt does not follow an observed one
            return
        if branch is not None:
            outcome = self._success_outcome[branch]
        else:
            uniforms = self._uniforms
            if not uniforms:
                rng = self._rng
                if rng is None:
                    rng = self._rng = self._make_rng()
                # a block at a time: one numpy call per 1024 failures instead of one each
                uniforms.extend(rng.random(_BLOCK).tolist())
            outcome = min(bisect_right(self._failure_cumulative, uniforms.pop()), _UNRESOLVED)
        self.histogram[outcome] += 1
        if outcome == _UNRESOLVED:
            self._previous_a_click = None
            return
        previous = self._previous_a_click
        if previous is not None:
            self.accidental_windows += 1
            if previous and outcome % _N:
                self.accidentals += 1
        self._previous_a_click = outcome >= _N

    def counts(self, station: str, link: str, ends: tuple[str, str], attempts: int, heralds: int) -> StationPhotonCounts:
        """The station's counts so far (:class:`StationPhotonCounts`)."""
        patterns = np.array(self.histogram[:_UNRESOLVED], dtype=np.int64).reshape(_N, _N)
        per_node = (patterns.sum(axis=1), patterns.sum(axis=0))  # histogram of each node's own pattern
        masks = np.arange(_N)
        clicks: dict[str, int] = {}
        end_clicks: dict[str, int] = {}
        arms: dict[str, int] = {}
        parallel: dict[str, int] = {}
        crossed: dict[str, int] = {}
        for end, histogram in zip(ends, per_node):
            for detector in DETECTORS:
                clicks[f"{end}.{detector}"] = int(histogram[(masks & _bit(detector)) != 0].sum())
            end_clicks[end] = int(histogram[1:].sum())
            for pol in "HV":
                both = _bit(f"c{pol}") | _bit(f"d{pol}")
                arms[f"{end}.{pol}"] = int(histogram[(masks & both) == both].sum())
            parallel[end] = int(histogram[_bit("cH") | _bit("dH")] + histogram[_bit("cV") | _bit("dV")])
            crossed[end] = int(histogram[_bit("cH") | _bit("dV")] + histogram[_bit("cV") | _bit("dH")])
        observed = sum(self.histogram)
        return StationPhotonCounts(
            station=station,
            link=link,
            scheme="midpoint-source",
            ends=list(ends),
            attempts=attempts,
            heralds=heralds,
            observed_attempts=observed,
            unresolved_attempts=self.histogram[_UNRESOLVED],
            fast_forwarded_attempts=self.fast_forwarded,
            clicks=clicks,
            end_clicks=end_clicks,
            coincidences=int(patterns[1:, 1:].sum()),
            accidentals=self.accidentals,
            accidental_windows=self.accidental_windows,
            arm_coincidences=arms,
            two_photon_parallel=parallel,
            two_photon_crossed=crossed,
            not_observed=None if observed else "no attempt was simulated one by one (fast-forward draws heralds only)",
        )


def counts_without_patterns(
    station: str, link: str, scheme: str, ends: tuple[str, str], attempts: int, heralds: int
) -> StationPhotonCounts:
    """Attempts and heralds of a station whose scheme's model draws heralds only."""
    return StationPhotonCounts(
        station=station,
        link=link,
        scheme=scheme,
        ends=list(ends),
        attempts=attempts,
        heralds=heralds,
        not_observed=f"the {scheme} model draws heralds only, not the detectors' clicks",
    )


def spawned_rng(parent: np.random.Generator) -> np.random.Generator:
    """A stream independent of ``parent`` that leaves ``parent``'s draws unchanged: a child of
    its seed sequence (``SeedSequence.spawn``). A generator without one (a test's own) gives a
    seed drawn from it instead, which does advance it."""
    seed_seq = getattr(parent.bit_generator, "seed_seq", None)
    if isinstance(seed_seq, np.random.SeedSequence):
        return np.random.Generator(np.random.PCG64(seed_seq.spawn(1)[0]))
    return np.random.Generator(np.random.PCG64(int(parent.integers(2**63))))


def pattern_counter(station: Any) -> MidpointPatternCounter | None:
    """A pattern counter for a model station whose link's scheme gives click patterns
    (midpoint-source), else None. Node A is the station's first end, as in its model."""
    params = station.params
    if not isinstance(params, MidpointSourceLinkParams):
        return None
    a, b = station.ends
    model = MidpointSourceModel(params, station._hardware[a], station._hardware[b])
    ctx = station._ctx
    return MidpointPatternCounter(model, lambda: spawned_rng(ctx.rng))
