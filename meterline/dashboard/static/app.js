// meterline dashboard: fetch one JSON panel per section, draw it with Chart.js, and list
// the same numbers in a table (each cell carries its raw value in data-value).
"use strict";

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const charts = new Map();  // canvas id -> Chart
let projects = [];
let generation = 0;

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, text) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
};

// --- formatting ----------------------------------------------------------------------
const nf = new Intl.NumberFormat("en-US");
function fmt(value, format) {
  if (value === null || value === undefined) return "–";
  switch (format) {
    case "usd": return "$" + Number(value).toLocaleString("en-US",
      {minimumFractionDigits: value !== 0 && Math.abs(value) < 1 ? 4 : 2,
       maximumFractionDigits: value !== 0 && Math.abs(value) < 1 ? 4 : 2});
    case "pct": return (value * 100).toFixed(2) + " %";
    case "ms": return nf.format(Math.round(value)) + " ms";
    case "int": return nf.format(value);
    default: return String(value);
  }
}
function unitFmt(value, unit) {
  if (unit === "USD") return "$" + Number(value).toLocaleString("en-US", {maximumFractionDigits: 4});
  if (unit === "%") return Number(value).toFixed(1) + " %";
  if (unit === "ms") return nf.format(Math.round(value)) + " ms";
  return nf.format(Math.round(value * 100) / 100);
}
function bucketLabel(iso, bucket) {
  const [day, time] = iso.replace("Z", "").split("T");
  if (["day", "week", "month"].includes(bucket)) return bucket === "month" ? day.slice(0, 7) : day;
  return day.slice(5) + " " + time.slice(0, 5);
}
const toInput = (iso) => iso.replace("Z", "").slice(0, 19);
const fromInput = (value) => (value.length === 16 ? value + ":00" : value) + "Z";

// --- filters -------------------------------------------------------------------------
function applyPreset() {
  const preset = $("#preset").value;
  const project = projects.find((p) => p.project === $("#project").value);
  if (preset === "custom") return;
  if (preset === "all") {
    if (!project) return;
    $("#from").value = toInput(project.first);
    // end is exclusive: one second after the last event
    $("#to").value = toInput(new Date(Date.parse(project.last) + 1000).toISOString());
    return;
  }
  const hours = {"1h": 1, "24h": 24, "7d": 168, "30d": 720}[preset];
  const now = Date.now();
  $("#to").value = toInput(new Date(now).toISOString());
  $("#from").value = toInput(new Date(now - hours * 3600e3).toISOString());
}

function query() {
  return new URLSearchParams({
    project: $("#project").value,
    from: fromInput($("#from").value),
    to: fromInput($("#to").value),
    bucket: $("#bucket").value,
  });
}

function saveToUrl() {
  const params = query();
  params.set("preset", $("#preset").value);
  history.replaceState(null, "", "?" + params.toString());
}

async function loadProjects() {
  const resp = await fetch("/api/projects");
  const body = await resp.json();
  projects = body.projects;
  const select = $("#project");
  select.replaceChildren(...projects.map((p) => el("option", {value: p.project}, p.project)));
  const wanted = new URLSearchParams(location.search);
  if (wanted.get("project") && projects.some((p) => p.project === wanted.get("project"))) {
    select.value = wanted.get("project");
  }
  if (wanted.get("preset")) $("#preset").value = wanted.get("preset");
  if (wanted.get("bucket")) $("#bucket").value = wanted.get("bucket");
  applyPreset();
  if ($("#preset").value === "custom" && wanted.get("from") && wanted.get("to")) {
    $("#from").value = toInput(wanted.get("from"));
    $("#to").value = toInput(wanted.get("to"));
  }
  return projects.length > 0;
}

// --- rendering -----------------------------------------------------------------------
function renderTable(panel, table) {
  const t = el("table", {"class": "data"});
  const head = el("tr");
  for (const c of table.columns) head.append(el("th", {"class": c.format}, c.label));
  t.append(el("thead"), el("tbody"));
  t.tHead.append(head);
  for (const row of table.rows) {
    const first = table.columns[0].key;
    const tr = el("tr", {"data-row": String(row[first])});
    for (const c of table.columns) {
      const v = row[c.key];
      const td = el("td", {"class": c.format, "data-key": c.key}, fmt(v, c.format));
      td.dataset.value = v === null ? "" : String(v);
      if (c.format === "text" && String(v).length > 60) td.title = String(v);
      tr.append(td);
    }
    t.tBodies[0].append(tr);
  }
  panel.append(el("div", {"class": "table-wrap"}));
  panel.lastChild.append(t);
}

function renderTiles(panel, table) {
  const tiles = $(".tiles", panel);
  tiles.replaceChildren();
  const row = table.rows[0];
  for (const c of table.columns) {
    const tile = el("div", {"class": "tile", "data-key": c.key, "data-value": String(row[c.key])});
    tile.append(el("span", {"class": "value"}, fmt(row[c.key], c.format)), el("span", {"class": "label"}, c.label));
    tiles.append(tile);
  }
}

function chartConfig(spec) {
  const horizontal = Boolean(spec.horizontal);
  const valueAxis = {
    beginAtZero: true, stacked: Boolean(spec.stacked),
    title: {display: true, text: spec.unit},
    ticks: {callback: (v) => unitFmt(v, spec.unit)},
  };
  const labelAxis = {stacked: Boolean(spec.stacked), ticks: {autoSkip: true, maxRotation: 0}, grid: {display: false}};
  const labels = spec.bucket ? spec.labels.map((l) => bucketLabel(l, spec.bucket)) : spec.labels;
  return {
    type: spec.type,
    data: {
      labels,
      datasets: spec.datasets.map((d, i) => ({
        label: d.label, data: d.data,
        backgroundColor: PALETTE[i % PALETTE.length] + (spec.type === "line" ? "33" : "dd"),
        borderColor: PALETTE[i % PALETTE.length],
        borderWidth: spec.type === "line" ? 2 : 0, pointRadius: 0, tension: 0.2,
        fill: false,
      })),
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      indexAxis: horizontal ? "y" : "x",
      interaction: {mode: "index", intersect: false},
      scales: horizontal ? {x: valueAxis, y: labelAxis} : {x: labelAxis, y: valueAxis},
      plugins: {
        legend: {position: "bottom", labels: {boxWidth: 12}},
        tooltip: {callbacks: {label: (ctx) =>
          `${ctx.dataset.label}: ${unitFmt(horizontal ? ctx.parsed.x : ctx.parsed.y, spec.unit)}`}},
      },
    },
  };
}

function renderCharts(panel, name, specs) {
  const tabs = el("div", {"class": "tabs"});
  const box = el("div", {"class": "chart-box"});
  const canvas = el("canvas", {id: "chart-" + name, "data-chart": name});
  box.append(canvas);
  const draw = (spec, button) => {
    charts.get(canvas.id)?.destroy();
    charts.set(canvas.id, new Chart(canvas, chartConfig(spec)));
    canvas.dataset.series = spec.name || "";
    for (const b of tabs.children) b.classList.toggle("active", b === button);
  };
  if (specs.length > 1) {
    for (const spec of specs) {
      const b = el("button", {type: "button", "data-series": spec.name}, spec.name);
      b.addEventListener("click", () => draw(spec, b));
      tabs.append(b);
    }
    panel.append(tabs);
  }
  panel.append(box);
  draw(specs[0], tabs.firstChild);
}

async function loadPanel(panel, params) {
  const name = panel.dataset.panel;
  panel.dataset.status = "loading";
  let body;
  try {
    const resp = await fetch(`/api/panel/${name}?${params}`);
    body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
  } catch (err) {
    panel.dataset.status = "error";
    panel.append(el("p", {"class": "note error"}, "Could not load: " + err.message));
    return;
  }
  if (body.note) panel.append(el("p", {"class": "note"}, body.note));
  if (body.status === "ok") {
    if (name === "summary") renderTiles(panel, body.table);
    else {
      const specs = body.charts || (body.chart ? [body.chart] : []);
      if (body.table.rows.length && specs.length) renderCharts(panel, name, specs);
      else panel.append(el("p", {"class": "note empty"}, "No data in this period."));
      if (body.table.rows.length) renderTable(panel, body.table);
    }
  }
  panel.dataset.bucket = body.filters.bucket;
  panel.dataset.status = body.status;
}

async function refresh() {
  generation += 1;
  document.body.dataset.state = "loading";
  for (const chart of charts.values()) chart.destroy();
  charts.clear();
  for (const panel of document.querySelectorAll(".panel")) {
    panel.querySelectorAll(".tabs, .chart-box, .table-wrap, .note").forEach((n) => n.remove());
  }
  const params = query();
  saveToUrl();
  // one panel at a time: the server runs one query at a time anyway
  for (const panel of document.querySelectorAll(".panel")) await loadPanel(panel, params);
  $("#status").textContent = `${$("#project").value}: ${$("#from").value} to ${$("#to").value} UTC`;
  document.body.dataset.generation = String(generation);
  document.body.dataset.state = "ready";
}

async function main() {
  $("#preset").addEventListener("change", applyPreset);
  $("#project").addEventListener("change", applyPreset);
  for (const id of ["#from", "#to"]) $(id).addEventListener("input", () => { $("#preset").value = "custom"; });
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  if (!(await loadProjects())) {
    $("#status").textContent = "No events in ClickHouse yet: send some (see README) and reload.";
    document.body.dataset.state = "empty";
    return;
  }
  await refresh();
}

document.addEventListener("DOMContentLoaded", main);
