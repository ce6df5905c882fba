// The kiosk page (docs/display.md, "/display: the kiosk page"): a tile per
// metric, values as large as the screen allows, stale sensors marked, no
// controls. It reconnects by itself and resumes after the last event it saw,
// so a gap is backfilled.
// Options in the page's URL, set once on the kiosk:
//   ?dim=22:00-07:00   dim the screen between these local times
//   ?shift=off         no slow pixel shift (it is on by default, against burn-in)
//   ?source=, ?sensor= only these (comma lists), as on the dashboard
import { fetchSensors } from "./api.js";
import { formatShown, metricLabel, setUnits, shownSuffix, unitOf, unitRank } from "./format.js";
import { Freshness } from "./freshness.js";
import { pace, soon } from "./pace.js";
import { registerShell, unreachableLabel } from "./pwa.js";
import { accepted, Chosen, pageFilters } from "./selection.js";
import { LiveStream } from "./stream.js";

const SNAPSHOT_REFRESH_MS = 60000; // settings and last errors change rarely
const SHIFT_MS = 5 * 60 * 1000;
const SHIFT_PX = 4;
const DIM_CHECK_MS = 60000;
const GAP_PX = 8; // display.css: the page's padding and the grid's gap
const PALETTE_SIZE = 8;

const tilesEl = document.getElementById("tiles");
const displayEl = document.getElementById("display");
const emptyEl = document.getElementById("display-empty");
const connectionEl = document.getElementById("connection");
const template = document.getElementById("tpl-tile");

const query = new URLSearchParams(location.search);
const filters = pageFilters();

const sensors = new Map(); // "source/sensor" -> Sensor
const chosen = new Chosen();

function now() {
  return Date.now() / 1000;
}

/** One sensor's tiles and its freshness, shown as its settings say. */
class Sensor {
  constructor(source, sensor, settings = {}, displays = {}) {
    this.key = `${source}/${sensor}`;
    this.name = settings.name || `${sensor} · ${source}`;
    this.rank = settings.order || 0;
    this.displays = displays;
    this.tiles = new Map(); // metric -> {el, valueEl, unit, value, order}
    this.freshness = new Freshness((stale, silence) =>
      soon(`${this.key}:stale`, () => this.showStale(stale, silence)),
    );
  }

  /** The metric's tile, created in unit order on first sight. */
  tile(metric, unit) {
    let tile = this.tiles.get(metric);
    if (tile) return tile;
    const resolved = unit || unitOf(metric);
    const display = this.displays[metric];
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.tile = `${this.key}/${metric}`;
    el.classList.add(`series-${this.tiles.size % PALETTE_SIZE}`);
    el.querySelector(".tile-label").textContent = metricLabel(metric);
    el.querySelector(".tile-unit").textContent = shownSuffix(resolved, display);
    el.querySelector(".tile-sensor").textContent = this.name;
    const valueEl = el.querySelector(".tile-value");
    valueEl.dataset.metric = `${this.key}/${metric}`;
    if (this.freshness.stale) this.markTile(el, true, this.freshness.silence);
    const order = [this.rank, this.key, unitRank(resolved), metric];
    tile = { el, valueEl, unit: resolved, display, value: undefined, order };
    this.tiles.set(metric, tile);
    placeTile(tile);
    return tile;
  }

  setValue(metric, value, unit) {
    this.tile(metric, unit).value = value;
    pace(this, () => this.drawValues());
  }

  drawValues() {
    for (const tile of this.tiles.values()) {
      const text = formatShown(tile.unit, tile.value, tile.display);
      if (tile.valueEl.textContent !== text) tile.valueEl.textContent = text;
    }
  }

  showStale(stale, silence) {
    for (const tile of this.tiles.values()) this.markTile(tile.el, stale, silence);
  }

  markTile(el, stale, silence) {
    if (stale) el.dataset.stale = silence;
    else delete el.dataset.stale;
    const text = stale ? `silent for ${silence}` : "";
    const target = el.querySelector(".tile-stale");
    if (target.textContent !== text) target.textContent = text;
  }
}

function compare(a, b) {
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

const placed = []; // every tile, in page order
function placeTile(tile) {
  const index = placed.findIndex((other) => compare(other.order, tile.order) > 0);
  if (index < 0) placed.push(tile);
  else placed.splice(index, 0, tile);
  tilesEl.insertBefore(tile.el, index < 0 ? null : placed[index + 1].el);
  emptyEl.hidden = true;
  layout();
}

/** A sensor's tiles, created on first sight; null while it is hidden. */
function sensorOf(source, sensor) {
  const key = `${source}/${sensor}`;
  if (!sensors.has(key)) {
    const { settings = {}, displays = {} } = chosen.get(key) || {};
    if (settings.hidden) return null;
    sensors.set(key, new Sensor(source, sensor, settings, displays));
  }
  return sensors.get(key);
}

/** Remember a sensor's settings; a change takes its tiles off, to be made again. */
function noteSettings(item) {
  const key = `${item.source}/${item.sensor}`;
  const sensor = sensors.get(key);
  if (!chosen.note(item) || !sensor) return;
  sensor.freshness.stop();
  sensors.delete(key);
  for (const tile of sensor.tiles.values()) {
    tile.el.remove();
    placed.splice(placed.indexOf(tile), 1);
  }
  layout();
}

/** The value font a grid of `cols` x `rows` tiles allows (display.css .tile-value). */
function fontFor(cols, rows, width, height) {
  const tileW = (width - GAP_PX * (cols + 1)) / cols;
  const tileH = (height - GAP_PX * (rows + 1)) / rows;
  return Math.min(0.5 * (tileH - 16), 0.27 * (tileW - 28));
}

/** Columns and rows that make the values largest: wide screens get rows, phones columns. */
function layout() {
  const count = Math.max(1, placed.length);
  let best = { cols: 1, rows: count, font: -Infinity };
  for (let cols = 1; cols <= count; cols += 1) {
    const rows = Math.ceil(count / cols);
    const font = fontFor(cols, rows, innerWidth, innerHeight);
    if (font > best.font + 0.5) best = { cols, rows, font };
  }
  tilesEl.style.setProperty("--cols", String(best.cols));
  tilesEl.style.setProperty("--rows", String(best.rows));
}

function applySnapshot({ sensors, units }) {
  setUnits(units);
  for (const item of sensors) {
    if (!accepted(filters, item)) continue;
    noteSettings(item);
    const sensor = sensorOf(item.source, item.sensor);
    if (!sensor) continue;
    for (const [metric, info] of Object.entries(item.metrics || {})) {
      sensor.setValue(metric, info?.last, info?.unit);
    }
    sensor.freshness.heard(item.last_seen, now());
  }
}

function onReading(reading) {
  if (!accepted(filters, reading, { reading: true })) return;
  const { source, sensor, ts, values } = reading;
  const view = sensorOf(source, sensor);
  if (!view) return;
  for (const [metric, value] of Object.entries(values)) view.setValue(metric, value);
  view.freshness.reading(ts, now());
}

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

function showConnection(state) {
  soon("connection", () => {
    if (connectionEl.dataset.state !== state) connectionEl.dataset.state = state;
    connectionEl.textContent = state === "offline" ? unreachableLabel() : LABELS[state] || state;
  });
}

/** "HH:MM-HH:MM" -> [start, end] minutes after midnight, or null when absent or malformed. */
function dimSchedule(text) {
  const match = /^(\d{1,2}):?(\d{2})?-(\d{1,2}):?(\d{2})?$/.exec(text || "");
  if (!match) return null;
  const [, h1, m1 = "0", h2, m2 = "0"] = match;
  const start = Number(h1) * 60 + Number(m1);
  const end = Number(h2) * 60 + Number(m2);
  return start < 1440 && end < 1440 ? [start, end] : null;
}

function setupDimming() {
  const schedule = dimSchedule(query.get("dim"));
  if (!schedule) return;
  const [start, end] = schedule;
  const check = () => {
    const date = new Date();
    const minute = date.getHours() * 60 + date.getMinutes();
    // A schedule may wrap past midnight (22:00-07:00).
    const dim = start <= end ? minute >= start && minute < end : minute >= start || minute < end;
    if (dim !== document.body.hasAttribute("data-dim")) document.body.toggleAttribute("data-dim", dim);
  };
  check();
  setInterval(check, DIM_CHECK_MS);
}

function setupShift() {
  if (query.get("shift") === "off") return;
  let step = 0;
  setInterval(() => {
    // A slow walk around a small square: no pixel stays lit by the same edge for long.
    step = (step + 1) % 4;
    const [x, y] = [
      [0, 0],
      [SHIFT_PX, 0],
      [SHIFT_PX, SHIFT_PX],
      [0, SHIFT_PX],
    ][step];
    displayEl.style.setProperty("--shift-x", `${x}px`);
    displayEl.style.setProperty("--shift-y", `${y}px`);
  }, SHIFT_MS);
}

async function refresh() {
  try {
    applySnapshot(await fetchSensors());
  } catch (error) {
    console.warn("sensors:", error.message);
  }
}

async function start() {
  registerShell();
  addEventListener("resize", layout);
  setupDimming();
  setupShift();
  const stream = new LiveStream({ filters, onReading, onReset: refresh, onState: showConnection });
  stream.followPage();
  await refresh();
  stream.open();
  emptyEl.hidden = placed.length > 0;
  setInterval(refresh, SNAPSHOT_REFRESH_MS);
  displayEl.dataset.ready = "true";
}

start();
