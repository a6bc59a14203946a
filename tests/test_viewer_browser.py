"""The trace viewer in a real browser: the OS's headless Chromium, driven by Playwright.

Skipped when /usr/bin/chromium (Debian's ``chromium``) or the ``playwright``
package is missing, unless ``QNETSTACK_REQUIRE_BROWSER=1`` (set by CI's
``.ci/run``, which installs Chromium): then a missing browser fails the test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from qnetstack.stack import assemble, load_scenario
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import read_trace
from qnetstack.stack.viewer import render_viewer

pytestmark = pytest.mark.slow  # a run of the teleport example and a browser start: seconds

CHROMIUM = Path("/usr/bin/chromium")
# No network, no updates, no first-run work: the page must need nothing but itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


def _missing_browser(reason: str) -> None:
    if os.environ.get("QNETSTACK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"QNETSTACK_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (install Debian's chromium, or set QNETSTACK_REQUIRE_BROWSER=1 to make this a failure)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing_browser(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def teleport(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The viewer page of the teleport example's trace (two qubits teleported), and its records."""
    folder = tmp_path_factory.mktemp("viewer")
    data = yaml.safe_load((EXAMPLES / "teleport-chain.yaml").read_text())
    data["applications"][0]["request"]["number"] = 2
    scenario = folder / "teleport.yaml"
    scenario.write_text(yaml.safe_dump(data))
    trace = folder / "t.jsonl"
    run_traced(assemble(load_scenario(scenario).model_copy(update={"keep_trace": True})), trace)
    header, records, end = read_trace(trace)
    page = folder / "viewer.html"
    page.write_text(render_viewer(header, records, end), encoding="utf-8")
    return page, records


class Page:
    """A browser tab on a viewer page, collecting what the page reports as an error."""

    def __init__(self, browser, path: Path) -> None:
        self.tab = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.tab.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))
        self.requests: list[str] = []
        self.tab.on("request", lambda request: self.requests.append(request.url))
        self.tab.goto(path.resolve().as_uri())
        self.tab.wait_for_function("() => window.qnetViewer !== undefined")

    def state(self, name: str):
        return self.tab.evaluate(f"window.qnetViewer.{name}")

    def click_row(self, index: int) -> None:
        """Bring the record ``index`` (of the trace) into view and click on it as a user would."""
        row = self.tab.evaluate(f"window.qnetViewer.rowOf({index})")
        assert row >= 0
        self.tab.evaluate(f"window.qnetViewer.moveTo({row})")
        point = self.tab.evaluate(f"window.qnetViewer.rowPoint({row})")
        self.tab.mouse.click(point["x"], point["y"])


def test_the_page_loads_without_errors_and_fetches_nothing(browser, teleport):
    path, records = teleport
    page = Page(browser, path)
    try:
        assert page.errors == []
        assert page.requests == [path.resolve().as_uri()]  # the page itself, nothing else
        assert page.state("rows") == len(records)
        assert page.tab.text_content("#position") == f"record 1 of {len(records)}"
        assert page.tab.text_content("#clock") == "0 ns"
        assert "run done (finished)" in page.tab.text_content("#status")
    finally:
        page.tab.close()


def test_pressing_play_advances_the_clock(browser, teleport):
    path, records = teleport
    page = Page(browser, path)
    try:
        page.tab.select_option("#speed", "100")
        page.tab.click("#play")
        assert page.tab.text_content("#play") == "pause"
        # 100 records a second: the clock leaves 0 ns within a few seconds (the first records are all at t = 0)
        page.tab.wait_for_function("() => document.getElementById('clock').textContent !== '0 ns'", timeout=20_000)
        page.tab.click("#play")
        cursor = page.state("cursor")
        assert cursor > 0 and page.state("frames") > 0 and not page.state("playing")
        assert records[cursor]["t_ns"] > 0
        stopped_at = page.tab.text_content("#clock")
        page.tab.wait_for_timeout(300)
        assert page.tab.text_content("#clock") == stopped_at and page.state("cursor") == cursor  # paused stays put
        page.tab.click("#forward")
        assert page.state("cursor") == cursor + 1
        page.tab.click("#back")
        page.tab.click("#back")
        assert page.state("cursor") == cursor - 1
        assert page.errors == []
    finally:
        page.tab.close()


def test_clicking_a_message_shows_its_fields_and_spec_clauses(browser, teleport):
    path, records = teleport
    page = Page(browser, path)
    try:
        index = next(i for i, r in enumerate(records) if r.get("kind") == "LinkCreate")
        page.click_row(index)
        assert page.tab.text_content("#detail-kind") == "LinkCreate"
        assert json.loads(page.tab.text_content("#fields")) == records[index]["fields"]
        assert "LINK-CREATE-1" in page.tab.text_content("#clauses")
        assert "answers every CREATE" in page.tab.text_content("#clauses")  # the clause's text, from specs/link.md
        # a peer message: its delivery time is shown too
        peer = next(i for i, r in enumerate(records) if r["type"] == "peer" and r["kind"] == "StationHerald")
        page.click_row(peer)
        assert page.tab.text_content("#detail-kind") == "StationHerald"
        assert json.loads(page.tab.text_content("#fields")) == records[peer]["fields"]
        assert "delivered" in page.tab.text_content("#detail-summary")
        assert page.errors == []
    finally:
        page.tab.close()


def test_links_light_up_when_a_pair_is_made_on_them_and_along_a_delivered_pair(browser, teleport):
    path, records = teleport
    page = Page(browser, path)
    try:
        ok = next(i for i, r in enumerate(records) if r.get("kind") == "LinkOkKeep")
        ends = {records[ok]["node"], records[ok]["fields"]["remote_node"]}
        lit = "[...document.querySelectorAll('#topology .link.lit')].map(l => [l.dataset.a, l.dataset.b])"
        page.tab.evaluate(f"window.qnetViewer.moveTo({ok - 1})")
        assert page.tab.evaluate(lit) == []
        page.tab.evaluate(f"window.qnetViewer.moveTo({ok})")
        assert [set(pair) for pair in page.tab.evaluate(lit)] == [ends]
        assert "1 pair" in page.tab.text_content("#topology")
        # the first end-to-end pair lights the whole path alice - r - bob
        delivered = next(i for i, r in enumerate(records) if r.get("kind") == "PairDelivered" and r["node"] == "alice")
        e2e = lit.replace(".lit", ".e2e")
        page.tab.evaluate(f"window.qnetViewer.moveTo({delivered - 1})")
        assert page.tab.evaluate(e2e) == [] and page.tab.text_content("#e2e-count") == "end-to-end pairs delivered: 0"
        page.tab.evaluate(f"window.qnetViewer.moveTo({delivered})")
        assert sorted(map(sorted, page.tab.evaluate(e2e))) == [["alice", "r"], ["bob", "r"]]
        assert page.tab.text_content("#e2e-count") == "end-to-end pairs delivered: 1"
        assert page.errors == []
    finally:
        page.tab.close()


def test_the_layer_request_and_time_filters_keep_the_matching_records(browser, teleport):
    path, records = teleport
    page = Page(browser, path)
    try:
        page.tab.uncheck("#layer-filter input[data-value='physical']")

        def touches_physical(r: dict) -> bool:
            return r["layer"] == "physical" or (r["type"] == "service" and "physical" in (r["from_layer"], r["to_layer"]))

        assert page.state("rows") == sum(not touches_physical(r) for r in records)
        page.tab.check("#layer-filter input[data-value='physical']")
        page.tab.fill("#request", "0")
        named = [r for r in records if '"request_id": 0' in json.dumps([r.get("fields"), r.get("session")])]
        assert 0 < page.state("rows") == len(named) < len(records)
        page.tab.fill("#request", "")
        middle = records[len(records) // 2]["t_ns"]
        page.tab.fill("#from-ns", str(middle))
        assert 0 < page.state("rows") == sum(r["t_ns"] >= middle for r in records) < len(records)
        page.tab.fill("#to-ns", str(middle))
        assert 0 < page.state("rows") == sum(r["t_ns"] == middle for r in records)
        page.tab.fill("#to-ns", "soon")  # not a number of ns: no upper bound
        assert page.state("rows") == sum(r["t_ns"] >= middle for r in records)
        assert page.errors == []
    finally:
        page.tab.close()


def test_a_field_holding_markup_is_shown_as_text_and_never_runs(browser, tmp_path):
    from qnetstack.stack.trace import TraceWriter

    trace = tmp_path / "t.jsonl"
    writer = TraceWriter(trace, "hostile", 1, nodes=["a", "b"])
    record = {"type": "peer", "t_ns": 5, "node": "a", "layer": "link", "to_node": "b", "delivery_ns": 9, "kind": "Note"}
    writer(record | {"fields": {"text": HOSTILE}})
    writer.finish(9, "done", "finished", "one message")
    path = tmp_path / "viewer.html"
    path.write_text(render_viewer(*read_trace(trace)), encoding="utf-8")
    page = Page(browser, path)
    try:
        page.click_row(0)
        assert page.tab.evaluate("window.pwned === undefined")
        assert json.loads(page.tab.text_content("#fields")) == {"text": HOSTILE}
        assert page.errors == []
    finally:
        page.tab.close()
