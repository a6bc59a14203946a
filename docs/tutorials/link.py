# %% [markdown]
# # The link layer: a CREATE and its OKs
#
# The link layer makes entangled pairs between two neighbours. Its service
# (after the QuTech link layer, Dahlberg et al., SIGCOMM 2019) takes a
# `LinkCreate` from the layer above, answers `LinkAck` at once, and then,
# for every pair made, sends a `LinkOkKeep` at *both* ends with the same
# entanglement id. Under it, the physical layer makes attempts until a
# station heralds.
#
# This tutorial runs two nodes and one 20 km link, asks for three pairs, and
# reads the trace of the run: the CREATE going down, the attempts, the
# heralds, and the OKs coming up at both ends. Then it draws all of it as a
# sequence chart.

# %%
import tempfile
from pathlib import Path

from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.chart import build_chart, render_svg
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import read_trace

scenario = parse_scenario(
    {
        "name": "one-link",
        "seed": 3,
        "keep_trace": True,  # contexts record every message, for the trace
        "nodes": [{"name": "alice"}, {"name": "bob"}],
        "links": [{"a": "alice", "b": "bob", "length_km": 20}],
        "implementations": {"physical": "model-heralding"},
        "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": 3}}],
    }
)
folder = Path(tempfile.mkdtemp())
result = run_traced(assemble(scenario), folder / "one-link.jsonl")
print(result.to_table())

# %% [markdown]
# The trace holds one record per message. Service records cross a layer
# boundary on one node; their `kind` is the message's class. Here are the
# link layer's: the CREATE from the network layer above, its ACK, and the OKs.

# %%
header, records, end = read_trace(folder / "one-link.jsonl")
link_service = [
    r
    for r in records
    if r["type"] == "service" and "link" in (r["from_layer"], r["to_layer"]) and "physical" not in (r["from_layer"], r["to_layer"])
]
for r in link_service:
    print(f"{r['t_ns']:>10} ns  {r['node']:<6} {r['from_layer']:>8} -> {r['to_layer']:<8} {r['kind']}")

attempts = [r for r in records if r["type"] == "service" and r["kind"] == "HeraldAttempt"]
print(f"\n{len(attempts)} attempts asked of the physical layer (both ends) for {result.links[0].successes} heralded pairs")

# %% [markdown]
# Every OK names its pair by an entanglement id, and both ends get one with
# the same id: that is how each node knows which of its qubits is entangled
# with which qubit of the other.

# %%
oks = [r for r in link_service if r["kind"] == "LinkOkKeep"]
ids = {}
for r in oks:
    ent_id = r["fields"]["ent_id"]
    key = (ent_id["creator"], ent_id["peer"], ent_id["sequence"])
    ids.setdefault(key, []).append(r["node"])
for key, nodes in ids.items():
    print(f"pair {key}: OK at {sorted(nodes)}")

# %% [markdown]
# The same records as a picture: one lane per node and layer, one arrow per
# message, simulated time running down. `render_svg` gives the SVG text
# (`qnetstack chart TRACE -o run.svg` does the same from the command line);
# here it is drawn for the network, link and physical layers, up to the first pair.

# %%
first_ok = min(r["t_ns"] for r in oks)
chart = build_chart(header, records, to_ns=first_ok, layers=["network", "link", "physical"])
svg = render_svg(chart)
(folder / "one-link.svg").write_text(svg, encoding="utf-8")
print(f"chart: {len(chart.lanes)} lanes, {len(chart.arrows)} arrows, written to {folder / 'one-link.svg'}")

# %%
kinds = [r["kind"] for r in link_service]
assert result.status == "done"
assert kinds.count("LinkCreate") == 1 and "LinkAck" in kinds
assert len(oks) == 2 * 3 and all(sorted(nodes) == ["alice", "bob"] for nodes in ids.values())
assert svg.startswith("<svg") and "LinkOkKeep" in svg
