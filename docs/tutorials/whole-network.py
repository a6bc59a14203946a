# %% [markdown]
# # A whole network: build, run, chart, sweep, and swap in your own layer
#
# This tutorial goes through what a study with qnetstack looks like from
# end to end:
#
# 1. build a scenario in code: three users around a repeater hub;
# 2. run it and read the report;
# 3. trace it and draw a chart;
# 4. sweep a parameter over seeds and plot the result;
# 5. replace the link layer with a class of your own and run again.

# %%
import tempfile
from pathlib import Path

import yaml

from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.chart import build_chart, render_svg
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import read_trace

folder = Path(tempfile.mkdtemp())
ideal_memory = {"memory": {"num_qubits": 4, "t1_ns": None, "t2_ns": None}, "emission_efficiency": 0.75}
data = {
    "name": "hub",
    "description": "alice, bob and carol around the repeater hub",
    "seed": 1,
    "nodes": [{"name": name, "hardware": ideal_memory} for name in ("alice", "bob", "carol", "hub")],
    "links": [
        {"a": "alice", "b": "hub", "length_km": 10, "bright_state_population": 0.05},
        {"a": "bob", "b": "hub", "length_km": 10, "bright_state_population": 0.05},
        {"a": "carol", "b": "hub", "length_km": 20, "bright_state_population": 0.05},
    ],
    "implementations": {"physical": "model-heralding", "link": "fast-forward-egp", "network": "swap-asap"},
    "applications": [
        {"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "number": 6}},
        {"node": "carol", "request": {"kind": "pairs", "remote_node": "bob", "number": 6}},
    ],
}
scenario = parse_scenario(data)

# %% [markdown]
# ## Run
#
# `assemble` builds the entities of every layer on every node and wires
# them; `run` goes until every request is closed, or says why not (the last
# line of the table: done, failed with a reason, or stalled with the cause).

# %%
result = assemble(scenario).run()
print(result.to_table())
for request in result.applications:
    print(f"{request.label}: {request.state} along {request.path}, mean oracle fidelity {request.mean_oracle_fidelity:.3f}")

# %% [markdown]
# ## Trace and chart
#
# The same scenario with `keep_trace` streams every message to a JSON-lines
# file; the chart shows the application and network layers of the first
# half millisecond.

# %%
traced = run_traced(assemble(scenario.model_copy(update={"keep_trace": True})), folder / "hub.jsonl")
header, records, end = read_trace(folder / "hub.jsonl")
print(f"{end['records']} records, the run {end['status']}")
chart = build_chart(header, records, to_ns=500_000, layers=["user", "application", "network"])
(folder / "hub.svg").write_text(render_svg(chart), encoding="utf-8")
print(f"chart: {len(chart.lanes)} lanes, {len(chart.arrows)} messages")

# %% [markdown]
# ## Sweep a parameter
#
# A sweep runs the scenario (from a file) at each value of a field, addressed
# by its path in the scenario, and for each seed: one row per run. Here the
# bright-state population α of carol's link, three values, two seeds. The
# pairs carol gets should get worse as α grows (F ≈ 1 − α, Humphreys et al.,
# Nature 558, 268 (2018)), and come faster.

# %%
from qnetstack.stack.plot import xy  # noqa: E402  (the sweep and plots extras)
from qnetstack.stack.sweep import parse_sweep, run_sweep, summarise  # noqa: E402

(folder / "hub.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
sweep = parse_sweep(
    {"scenario": "hub.yaml", "seeds": [1, 2], "grid": {"links.2.bright_state_population": [0.02, 0.1, 0.2]}}, base_folder=folder
)
rows = run_sweep(sweep, workers=1, progress=False)
summary = summarise(rows)
fidelity = "request[carol#0].mean_oracle_fidelity"
print(summary[["links.2.bright_state_population", f"{fidelity}.mean", f"{fidelity}.se"]].to_string(index=False))
figure = xy(rows, "links.2.bright_state_population", fidelity)
figure.savefig(folder / "carol-fidelity.png")

# %% [markdown]
# ## Your own layer
#
# Any layer can be replaced by a class that speaks its service. The smallest
# change is to the reference link layer's *scheduling policy*: which of the
# requests on a link the next attempt serves. The policy below serves the
# request with the fewest pairs still to make first (shortest job first);
# both ends see the same requests, so both pick the same one. `assemble`
# takes the class itself (a scenario file names it `module:Class`).

# %%
from qnetstack.link.egp import SingleClickEgp  # noqa: E402
from qnetstack.link.scheduler import SchedulingPolicy  # noqa: E402


class FewestLeftFirst(SchedulingPolicy):
    name = "fewest-left-first"

    def choose(self, requests, now_ns):
        ready = [r for r in requests if r.ready(now_ns) and r.unattempted > 0]
        return min(ready, key=lambda r: r.unattempted, default=None)  # min keeps the first of equals: the agreed order


class FewestLeftFirstEgp(SingleClickEgp):
    """The reference link layer, scheduling the request with the fewest pairs left first."""

    def __init__(self, ctx):
        super().__init__(ctx, scheduler=FewestLeftFirst())


mine = assemble(scenario, implementations={"link": FewestLeftFirstEgp}).run()
print(mine.status_line())
for request in mine.applications:
    print(f"{request.label}: {request.state}, {request.results} results")

# %% [markdown]
# `qnetstack conform link my_module:FewestLeftFirstEgp` would check the class
# against the link-layer specification clause by clause (see
# [Conformance](../conformance.md)).

# %%
assert result.status == "done" and traced.status == "done" and mine.status == "done"
assert (rows["status"] == "done").all() and len(rows) == 3 * 2
means = summary[f"{fidelity}.mean"].tolist()
assert means[0] > means[1] > means[2]  # brighter emission, worse pairs
assert all(r.results == 6 for r in mine.applications)
