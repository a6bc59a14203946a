// The trace viewer (qnetstack.stack.viewer): plays back the trace embedded in this page.
// Everything the page shows is built with textContent / DOM calls, never from
// HTML strings, so a message field cannot inject markup.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("trace-data").textContent);
  const header = DATA.header, end = DATA.end, all = DATA.records;
  const LAYERS = DATA.layers, CLAUSES = DATA.clauses, CLAUSE_TEXT = DATA.clause_text, TOPO = DATA.topology;

  const ROW = 18, LANE_GAP = 92, NODE_GAP = 36, LEFT = 96, HEAD = 44, BLOCK = 64;
  const COLOURS = {service: "#1f5fa8", peer: "#b5501b", transition: "#3a7d2c", event: "#888"};

  const $ = (id) => document.getElementById(id);
  const canvas = $("chart"), ctx = canvas.getContext("2d"), scroller = $("scroller"), spacer = $("spacer");

  // ---- what each record touches ------------------------------------------------------
  function ends(r) {
    if (r.type === "service") return [[r.node, r.from_layer], [r.node, r.to_layer]];
    if (r.type === "peer") return [[r.node, r.layer], [r.to_node, r.layer]];
    return [[r.node, r.layer]];
  }
  function requestIds(value, depth, out) {
    if (depth > 3 || value === null || typeof value !== "object") return out;
    for (const key of Object.keys(value)) {
      const v = value[key];
      if (key === "request_id" && (typeof v === "number" || typeof v === "string")) out.add(String(v));
      else if (typeof v === "object") requestIds(v, depth + 1, out);
    }
    return out;
  }
  const nodeOrder = new Map();
  (header.nodes || []).forEach((n) => nodeOrder.set(n, nodeOrder.size));
  const layerSet = new Set();
  const reqOf = new Array(all.length);
  all.forEach((r, i) => {
    for (const [n, l] of ends(r)) {
      if (!nodeOrder.has(n)) nodeOrder.set(n, nodeOrder.size);
      layerSet.add(l);
    }
    reqOf[i] = requestIds({f: r.fields, s: r.session}, 0, new Set());
  });
  const layerOrder = (l) => (LAYERS.indexOf(l) >= 0 ? LAYERS.indexOf(l) : LAYERS.length);
  const allLayers = [...layerSet].sort((a, b) => layerOrder(a) - layerOrder(b) || (a < b ? -1 : 1));

  // ---- filters --------------------------------------------------------------------------
  const shownNodes = new Set(nodeOrder.keys()), shownLayers = new Set(allLayers);
  let requestFilter = "";
  function checkbox(parent, name, set) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.checked = true; box.dataset.value = name;
    box.addEventListener("change", () => { if (box.checked) set.add(name); else set.delete(name); refilter(); });
    label.append(box, " " + name);
    parent.append(label);
  }
  for (const n of nodeOrder.keys()) checkbox($("node-filter"), n, shownNodes);
  for (const l of allLayers) checkbox($("layer-filter"), l, shownLayers);
  $("request").addEventListener("input", (e) => { requestFilter = e.target.value.trim(); refilter(); });
  // the time window: a bound that is not a whole number of ns is no bound (and is shown so)
  let fromNs = -Infinity, toNs = Infinity;
  function bound(input, none) {
    const text = input.value.trim();
    const ok = text === "" || /^[0-9]+$/.test(text);
    input.style.background = ok ? "" : "#fdd";
    return ok && text !== "" ? Number(text) : none;
  }
  $("from-ns").addEventListener("input", (e) => { fromNs = bound(e.target, -Infinity); refilter(); });
  $("to-ns").addEventListener("input", (e) => { toNs = bound(e.target, Infinity); refilter(); });

  // ---- the view: records kept by the filters, their lanes, rows and arrows ---------------
  let view = [];          // indices into all, in order
  let lanes = [], laneX = new Map(), width = 0;
  let endRow = [];        // per view row: the row a peer arrow ends at (else the row itself)
  let blocks = [];        // per BLOCK rows: the peer rows whose arrows cross it
  let cursor = 0;         // the current row
  let selected = -1;      // the selected row
  let lights = [];        // per link: {link: rows of its pairs made, e2e: rows of end-to-end pairs over it}
  let delivered = [];     // rows of end-to-end pairs delivered (one per pair)

  function keep(r, i) {
    if (r.t_ns < fromNs || r.t_ns > toNs) return false;
    for (const [n, l] of ends(r)) if (!shownNodes.has(n) || !shownLayers.has(l)) return false;
    return requestFilter === "" || reqOf[i].has(requestFilter);
  }
  function lowerBound(t) {  // the first row whose time is >= t
    let lo = 0, hi = view.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (all[view[mid]].t_ns < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function refilter() {
    const now = view.length ? all[view[cursor]].t_ns : 0;
    const wasSelected = selected >= 0 ? view[selected] : -1;
    view = [];
    const seen = new Set();
    all.forEach((r, i) => {
      if (!keep(r, i)) return;
      view.push(i);
      for (const [n, l] of ends(r)) seen.add(n + "\u0000" + l);
    });
    lanes = [...seen].map((k) => k.split("\u0000")).sort((a, b) =>
      nodeOrder.get(a[0]) - nodeOrder.get(b[0]) || layerOrder(a[1]) - layerOrder(b[1]) || (a[1] < b[1] ? -1 : 1));
    laneX = new Map();
    let x = LEFT, previous = null;
    for (const [n, l] of lanes) {
      if (previous !== null) x += LANE_GAP + (n !== previous ? NODE_GAP : 0);
      laneX.set(n + "\u0000" + l, x);
      previous = n;
    }
    width = x + LANE_GAP;
    endRow = new Int32Array(view.length);
    blocks = Array.from({length: Math.ceil(view.length / BLOCK) + 1}, () => []);
    view.forEach((i, row) => {
      const r = all[i];
      endRow[row] = row;
      if (r.type === "peer") {
        endRow[row] = Math.max(row, Math.min(view.length - 1, lowerBound(r.delivery_ns)));
        for (let b = Math.floor(row / BLOCK); b <= Math.floor(endRow[row] / BLOCK); b++) blocks[b].push(row);
      }
    });
    const rowOf = new Int32Array(all.length).fill(-1);
    view.forEach((i, row) => { rowOf[i] = row; });
    lights = TOPO.links.map(() => ({link: [], e2e: [], linkCounted: []}));
    delivered = [];
    for (const [index, links, kind, counts] of DATA.lights) {
      const row = rowOf[index];
      if (row < 0) continue;
      for (const l of links) {
        lights[l][kind].push(row);
        if (kind === "link" && counts) lights[l].linkCounted.push(row);
      }
      if (kind === "e2e" && counts) delivered.push(row);
    }
    cursor = Math.min(lowerBound(now), Math.max(view.length - 1, 0));
    selected = wasSelected >= 0 ? view.indexOf(wasSelected) : -1;
    spacer.style.height = (HEAD + view.length * ROW + ROW) + "px";
    spacer.style.width = width + "px";
    resize();
    update();
  }

  // ---- drawing ---------------------------------------------------------------------------
  let frameQueued = false;
  const stats = {frames: 0, draws: 0, drawMs: []};
  function resize() {
    const box = scroller.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.floor(scroller.clientWidth * ratio));
    canvas.height = Math.max(1, Math.floor(scroller.clientHeight * ratio));
    canvas.style.width = scroller.clientWidth + "px";
    canvas.style.height = scroller.clientHeight + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return box;
  }
  function formatNs(t) {
    const m = Math.abs(t);
    if (m < 1e3) return t + " ns";
    if (m < 1e6) return (t / 1e3).toPrecision(6) + " µs";
    if (m < 1e9) return (t / 1e6).toPrecision(7) + " ms";
    return (t / 1e9).toPrecision(7) + " s";
  }
  const rowY = (row) => HEAD + row * ROW + ROW / 2;
  function geometry(row) {
    const r = all[view[row]], e = ends(r);
    const x1 = laneX.get(e[0][0] + "\u0000" + e[0][1]);
    if (r.type === "service" || r.type === "peer") {
      return {r, x1, y1: rowY(row), x2: laneX.get(e[1][0] + "\u0000" + e[1][1]), y2: rowY(endRow[row]), arrow: true};
    }
    return {r, x1, y1: rowY(row), arrow: false};
  }
  function draw() {
    const started = performance.now();
    const w = scroller.clientWidth, h = scroller.clientHeight;
    const sx = scroller.scrollLeft, sy = scroller.scrollTop;
    ctx.clearRect(0, 0, w, h);
    ctx.save();
    ctx.translate(-sx, -sy);
    const first = Math.max(0, Math.floor((sy - HEAD) / ROW) - 1);
    const last = Math.min(view.length - 1, Math.ceil((sy + h - HEAD) / ROW) + 1);
    // the cursor's row
    if (view.length) {
      ctx.fillStyle = "#fff3b0";
      ctx.fillRect(sx, rowY(cursor) - ROW / 2, w, ROW);
    }
    ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1;
    for (const x of laneX.values()) { ctx.beginPath(); ctx.moveTo(x, sy + HEAD - 4); ctx.lineTo(x, sy + h); ctx.stroke(); }
    // time labels: where the time changes
    ctx.font = "10px sans-serif"; ctx.fillStyle = "#555"; ctx.textAlign = "right";
    for (let row = first; row <= last; row++) {
      const t = all[view[row]].t_ns;
      if (row === first || all[view[row - 1]].t_ns !== t) ctx.fillText(formatNs(t), sx + LEFT - 16, rowY(row) + 3);
    }
    // peer arrows that cross the window from outside it, then the rows in it
    const done = new Set();
    const rows = [];
    for (let b = Math.floor(first / BLOCK); b <= Math.floor(last / BLOCK) && b < blocks.length; b++) {
      for (const row of blocks[b]) if (!done.has(row) && (row < first || row > last)) { done.add(row); rows.push(row); }
    }
    for (let row = first; row <= last; row++) rows.push(row);
    ctx.textAlign = "center";
    for (const row of rows) drawRecord(row);
    ctx.restore();
    // lane headers stay on top
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, HEAD - 2);
    ctx.save(); ctx.translate(-sx, 0);
    let previous = null;
    for (const [n, l] of lanes) {
      const x = laneX.get(n + "\u0000" + l);
      ctx.fillStyle = "#222"; ctx.textAlign = "center";
      if (n !== previous) { ctx.font = "bold 12px sans-serif"; ctx.fillText(n, x, 16); previous = n; }
      ctx.font = "10px sans-serif"; ctx.fillText(l, x, 32);
    }
    ctx.restore();
    stats.draws += 1;
    stats.drawMs.push(performance.now() - started);
    if (stats.drawMs.length > 2000) stats.drawMs.shift();
  }
  function drawRecord(row) {
    const g = geometry(row), r = g.r;
    const future = row > cursor, chosen = row === selected;
    ctx.globalAlpha = future ? 0.3 : 1;
    const colour = COLOURS[r.type] || "#888";
    ctx.strokeStyle = colour; ctx.fillStyle = colour;
    if (g.arrow) {
      ctx.lineWidth = chosen ? 3 : 1.2;
      ctx.beginPath(); ctx.moveTo(g.x1, g.y1); ctx.lineTo(g.x2, g.y2); ctx.stroke();
      const angle = Math.atan2(g.y2 - g.y1, g.x2 - g.x1);
      ctx.beginPath();
      ctx.moveTo(g.x2, g.y2);
      ctx.lineTo(g.x2 - 8 * Math.cos(angle - 0.4), g.y2 - 8 * Math.sin(angle - 0.4));
      ctx.lineTo(g.x2 - 8 * Math.cos(angle + 0.4), g.y2 - 8 * Math.sin(angle + 0.4));
      ctx.closePath(); ctx.fill();
      ctx.fillStyle = "#222";
      ctx.font = chosen ? "bold 10px sans-serif" : "10px sans-serif";
      ctx.fillText(r.kind, (g.x1 + g.x2) / 2, g.y1 === g.y2 ? g.y1 - 3 : (g.y1 + g.y2) / 2 - 3);
    } else if (r.type === "transition") {
      ctx.fillRect(g.x1 - 3.5, g.y1 - 3.5, 7, 7);
      ctx.font = "9px sans-serif"; ctx.textAlign = "left";
      ctx.fillText(String(r.to_state), g.x1 + 6, g.y1 + 3);
      ctx.textAlign = "center";
      if (chosen) { ctx.strokeRect(g.x1 - 6, g.y1 - 6, 12, 12); }
    } else {
      ctx.beginPath(); ctx.arc(g.x1, g.y1, chosen ? 5 : 3, 0, 2 * Math.PI); ctx.fill();
    }
    ctx.globalAlpha = 1;
  }

  // ---- clock, controls, topology ------------------------------------------------------------
  function update() {
    const r = view.length ? all[view[cursor]] : null;
    $("clock").textContent = r ? formatNs(r.t_ns) : "no record";
    $("position").textContent = view.length ? `record ${cursor + 1} of ${view.length}`
      : all.length ? "no record matches the filters" : "the trace has no record";
    drawTopology();
    schedule();
  }
  function schedule() {
    if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
  }
  function follow() {
    const y = rowY(cursor), h = scroller.clientHeight;
    if (y < scroller.scrollTop + HEAD + ROW || y > scroller.scrollTop + h - ROW) scroller.scrollTop = Math.max(0, y - h * 0.66);
  }
  function moveTo(row) {
    cursor = Math.max(0, Math.min(view.length - 1, row));
    follow();
    update();
  }
  let playing = false, lastTs = null, carry = 0;
  function setPlaying(on) {
    playing = on && view.length > 0;
    $("play").textContent = playing ? "pause" : "play";
    lastTs = null; carry = 0;
    schedule();
  }
  function frame(ts) {
    frameQueued = false;
    if (playing) {
      if (lastTs !== null) {
        carry += ((ts - lastTs) / 1000) * Number($("speed").value);
        const steps = Math.floor(carry);
        carry -= steps;
        if (steps > 0) {
          cursor = Math.min(view.length - 1, cursor + steps);
          follow();
          update();
        }
        if (cursor >= view.length - 1) setPlaying(false);
      }
      lastTs = ts;
      stats.frames += 1;
    }
    draw();
    if (playing) schedule();
  }
  $("play").addEventListener("click", () => setPlaying(!playing));
  $("back").addEventListener("click", () => moveTo(cursor - 1));
  $("forward").addEventListener("click", () => moveTo(cursor + 1));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    if (e.key === " ") { e.preventDefault(); setPlaying(!playing); }
    else if (e.key === "ArrowLeft") moveTo(cursor - 1);
    else if (e.key === "ArrowRight") moveTo(cursor + 1);
  });
  scroller.addEventListener("scroll", schedule);
  window.addEventListener("resize", () => { resize(); schedule(); });

  const SVG = "http://www.w3.org/2000/svg";
  const svg = $("topology");
  const linkEls = [], countEls = [];
  let e2eEl = null;
  (function buildTopology() {
    const pos = (n) => { const p = TOPO.positions[n] || [0.5, 0.5]; return [30 + p[0] * 340, 40 + p[1] * 120]; };
    const el = (name, attrs) => { const e = document.createElementNS(SVG, name); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; };
    TOPO.links.forEach((l, i) => {
      const [x1, y1] = pos(l.a), [x2, y2] = pos(l.b);
      const line = el("line", {x1, y1, x2, y2, class: "link"});
      line.dataset.a = l.a; line.dataset.b = l.b;
      const title = el("title", {}); title.textContent = `${l.a} — ${l.b}` + (l.station ? ` (station ${l.station})` : "");
      line.append(title);
      const count = el("text", {x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 8, class: "count", "text-anchor": "middle"});
      svg.append(line, count);
      linkEls.push(line); countEls.push(count);
    });
    e2eEl = el("text", {x: 8, y: 192, class: "count", id: "e2e-count"});
    svg.append(e2eEl);
    for (const n of TOPO.nodes) {
      const [x, y] = pos(n);
      const g = el("g", {class: "node"});
      const label = el("text", {x, y: y + 24, "text-anchor": "middle"}); label.textContent = n;
      g.append(el("circle", {cx: x, cy: y, r: 9}), label);
      svg.append(g);
    }
  })();
  const LIT_ROWS = 12;  // a link stays lit for this many records after a pair is made on it
  function upTo(rows) {  // how many of the ascending rows are at or before the cursor
    let lo = 0, hi = rows.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (rows[mid] <= cursor) lo = mid + 1; else hi = mid; }
    return lo;
  }
  const recent = (rows) => { const n = upTo(rows); return n > 0 && cursor - rows[n - 1] < LIT_ROWS; };
  function drawTopology() {
    lights.forEach((l, i) => {
      linkEls[i].classList.toggle("lit", recent(l.link));
      linkEls[i].classList.toggle("e2e", recent(l.e2e));
      const made = upTo(l.linkCounted);
      countEls[i].textContent = made ? `${made} pair${made === 1 ? "" : "s"}` : "";
    });
    const n = upTo(delivered);
    e2eEl.textContent = `end-to-end pairs delivered: ${n}`;
  }

  // ---- clicking a message ----------------------------------------------------------------------
  function distance(px, py, g) {
    if (!g.arrow) return Math.hypot(px - g.x1, py - g.y1);
    const dx = g.x2 - g.x1, dy = g.y2 - g.y1, len = dx * dx + dy * dy;
    const t = len ? Math.max(0, Math.min(1, ((px - g.x1) * dx + (py - g.y1) * dy) / len)) : 0;
    return Math.hypot(px - (g.x1 + t * dx), py - (g.y1 + t * dy));
  }
  function hit(px, py) {
    const row = Math.floor((py - HEAD) / ROW);
    let best = -1, bestD = 7;
    const consider = (r) => { if (r >= 0 && r < view.length) { const d = distance(px, py, geometry(r)); if (d < bestD) { bestD = d; best = r; } } };
    for (let r = row - 1; r <= row + 1; r++) consider(r);
    const b = Math.floor(Math.max(row, 0) / BLOCK);
    if (b < blocks.length) for (const r of blocks[b]) consider(r);
    return best;
  }
  scroller.addEventListener("click", (e) => {
    const box = scroller.getBoundingClientRect();
    const row = hit(e.clientX - box.left + scroller.scrollLeft, e.clientY - box.top + scroller.scrollTop);
    if (row >= 0) select(row);
  });
  function cell(table, name, value) {
    const tr = table.insertRow();
    tr.insertCell().textContent = name;
    tr.insertCell().textContent = value;
  }
  function select(row) {
    selected = row;
    const r = all[view[row]];
    const pane = $("details");
    pane.replaceChildren();
    const h = document.createElement("h2");
    h.id = "detail-kind";
    h.textContent = r.type === "service" || r.type === "peer" ? r.kind : r.type === "transition" ? `${r.machine}: ${r.to_state}` : r.event;
    const table = document.createElement("table");
    table.id = "detail-summary";
    cell(table, "record", `${r.type}, row ${row + 1} of ${view.length}`);
    if (r.type === "service") { cell(table, "node", r.node); cell(table, "layers", `${r.from_layer} → ${r.to_layer} (${r.direction})`); }
    else if (r.type === "peer") { cell(table, "nodes", `${r.node} → ${r.to_node}`); cell(table, "layer", r.layer); }
    else { cell(table, "node", r.node); cell(table, "layer", r.layer); }
    cell(table, "sent", formatNs(r.t_ns));
    if (r.type === "peer") cell(table, "delivered", formatNs(r.delivery_ns));
    if (r.type === "transition") { cell(table, "session", JSON.stringify(r.session)); cell(table, "trigger", r.trigger); cell(table, "states", `${r.from_state} → ${r.to_state}`); }
    const fields = document.createElement("pre");
    fields.id = "fields";
    let shown = r.fields;
    if (r.type === "transition") {
      shown = {};
      for (const k of Object.keys(r)) if (!["type", "t_ns", "node", "layer", "machine", "session", "trigger", "from_state", "to_state"].includes(k)) shown[k] = r[k];
    }
    fields.textContent = JSON.stringify(shown === undefined ? null : shown, null, 2);
    const clauses = document.createElement("ul");
    clauses.id = "clauses";
    const ids = (r.type === "service" || r.type === "peer") && CLAUSES[r.kind] ? CLAUSES[r.kind] : [];
    for (const id of ids) {
      const li = document.createElement("li");
      const b = document.createElement("b"); b.textContent = id;
      li.append(b, " " + (CLAUSE_TEXT[id] || ""));
      clauses.append(li);
    }
    const ch = document.createElement("h2"); ch.textContent = ids.length ? "spec clauses" : "no spec clause is listed for this record";
    pane.append(h, table, fields, ch, clauses);
    schedule();
  }

  // ---- start --------------------------------------------------------------------------------------
  const status = $("status");
  status.textContent = `run ${end.status} (${end.reason}) at ${formatNs(end.t_ns)}, ${end.records} records`;
  status.className = end.status;
  refilter();
  // for tests and the benchmark: read-only views of the state, and the controls
  window.qnetViewer = {
    get cursor() { return cursor; }, get rows() { return view.length; }, get playing() { return playing; },
    get frames() { return stats.frames; }, get draws() { return stats.draws; }, drawMs: () => stats.drawMs.slice(),
    rowPoint(row) { const g = geometry(row); const box = scroller.getBoundingClientRect();
      const x = g.arrow ? (g.x1 + g.x2) / 2 : g.x1, y = g.arrow ? (g.y1 + g.y2) / 2 : g.y1;
      return {x: box.left + x - scroller.scrollLeft, y: box.top + y - scroller.scrollTop}; },
    rowOf(index) { return view.indexOf(index); },
    play: () => setPlaying(true), pause: () => setPlaying(false), moveTo,
  };
})();
