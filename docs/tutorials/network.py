# %% [markdown]
# # The network layer: a repeater chain and its swap records
#
# Two nodes that are not neighbours get a pair by entanglement swapping: a
# repeater that holds a pair with each side measures its two qubits in the
# Bell basis, which leaves the two far ends entangled (Żukowski et al., PRL
# 71, 4287 (1993); Briegel et al., PRL 81, 5932 (1998)). The repeater then
# tells both ends what it measured in a *swap record*, so they know which
# Bell state they share.
#
# This tutorial builds a chain alice — r1 — r2 — bob of three 10 km links,
# asks the network for four end-to-end pairs, and follows the swap records
# in the trace.

# %%
import tempfile
from collections import Counter
from pathlib import Path

import networkx as nx

from qnetstack.stack import assemble, scenario_from_graph
from qnetstack.stack.chart import build_chart, render_svg
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import read_trace

chain = nx.path_graph(["alice", "r1", "r2", "bob"])
nx.set_edge_attributes(chain, 10.0, "length_km")
scenario = scenario_from_graph(
    chain,
    name="chain",
    seed=5,
    keep_trace=True,  # contexts record every message, for the trace
    implementations={"physical": "model-heralding", "link": "fast-forward-egp", "network": "swap-asap"},
    applications=[{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": 4}}],
)
folder = Path(tempfile.mkdtemp())
result = run_traced(assemble(scenario), folder / "chain.jsonl")
print(result.to_table())

# %% [markdown]
# The swap records are peer messages of the network layer, from a repeater
# to an end. Each repeater swaps once per end-to-end pair and tells both
# ends.

# %%
header, records, end = read_trace(folder / "chain.jsonl")
swap_records = [r for r in records if r["type"] == "peer" and r["kind"] == "SwapRecord"]
for r in swap_records[:6]:
    f = r["fields"]
    print(f"{r['t_ns']:>10} ns  {r['node']} -> {r['to_node']:<5} swap {f['swap_index']}: outcome {f['outcome']}")
print("...")
per_sender_and_receiver = Counter((r["node"], r["to_node"]) for r in swap_records)
print(dict(per_sender_and_receiver))

# %% [markdown]
# At the ends, the network layer hands each pair up as a `PairDelivered`,
# with the Bell state the swap records imply and a goodness (its estimate of
# the fidelity). The oracle fidelity in the run report is the simulator's
# exact figure, which no protocol could read.

# %%
delivered = [r for r in records if r["type"] == "service" and r["kind"] == "PairDelivered"]
for r in delivered:
    f = r["fields"]
    print(f"{r['node']:<5} pair {f['pair_id']['index']}: {f['bell_state']}, goodness {f['goodness']:.3f}")

# %% [markdown]
# The chart of the first end-to-end pair: link pairs made on all three links,
# the two swaps, and the records flying to the ends.

# %%
first = min(r["t_ns"] for r in delivered)
chart = build_chart(header, records, to_ns=first, layers=["network", "link"])
(folder / "chain.svg").write_text(render_svg(chart), encoding="utf-8")
print(f"chart: {len(chart.lanes)} lanes, {len(chart.arrows)} arrows -> {folder / 'chain.svg'}")

# %%
assert result.status == "done"
assert len(delivered) == 2 * 4  # four pairs, each delivered at both ends
for repeater in ("r1", "r2"):
    # at least one swap per delivered pair, told to both ends
    assert per_sender_and_receiver[(repeater, "alice")] >= 4 and per_sender_and_receiver[(repeater, "bob")] >= 4
assert any(lane[0] == "r1" for lane in chart.lanes)
