// The dashboard: a snapshot from /api/sensors, history from /api/series, then
// live readings from one EventSource (docs/architecture.md, "Data path").
/* global Chart */
import { Alerts } from "./alerts.js";
import { exportUrl, fetchSensors, fetchSeries, RANGES } from "./api.js";
import { showConnection } from "./connection.js";
import { setUnits } from "./format.js";
import { registerShell } from "./pwa.js";
import { accepted, Chosen, pageFilters } from "./selection.js";
import { SettingsEditor } from "./settings.js";
import { LiveStream } from "./stream.js";
import { theme, watchTheme } from "./theme.js";
import { SensorView } from "./view.js";

const SENSORS_REFRESH_MS = 30000; // last_error and sensors that went quiet come from here
const LIVE_BACKFILL_POINTS = 450; // 2-second buckets over the live 15 minutes
const SLIDE_MS = 15000; // 1/60 of the live window: about 10 px a step
const HISTORY_REFRESH_MS = {
  "1h": 30000,
  "24h": 120000,
  "7d": 600000,
  "30d": 1800000,
  "90d": 3600000,
  "1y": 3600000,
  all: 3600000,
};

const views = new Map(); // "source/sensor" -> SensorView
const chosen = new Chosen();
const sensorsEl = document.getElementById("sensors");
const emptyEl = document.getElementById("empty");
const noticeEl = document.getElementById("notice");
const dashboardEl = document.getElementById("dashboard");

const pageQuery = new URLSearchParams(location.search);
const filters = pageFilters();
let range = pageQuery.get("range") in RANGES ? pageQuery.get("range") : "live";
let historyTimer = 0;
let alerts = null; // the Alerts panel, once started
// Settings are offered to whoever holds the full token (the server checks again).
const editor =
  dashboardEl.dataset.canEdit === "true"
    ? new SettingsEditor(document.getElementById("settings-dialog"), () => refreshSensors())
    : null;
const hiddenEl = document.getElementById("hidden-sensors");

function now() {
  return Date.now() / 1000;
}

/** Page order: the order chosen in the settings, then source/sensor. */
function before(a, b) {
  return (a.settings.order || 0) - (b.settings.order || 0) || a.key.localeCompare(b.key);
}

/** The view of a sensor, created (and placed in order) on first sight; null while hidden. */
function viewOf(source, sensor) {
  const key = `${source}/${sensor}`;
  let view = views.get(key);
  if (view) return view;
  const { settings = {} } = chosen.get(key) || {};
  if (settings.hidden) return null;
  view = new SensorView(source, sensor, settings);
  views.set(key, view);
  if (editor) view.offerSettings(() => editor.open(source, sensor, chosen.get(key)?.settings));
  const after = [...views.values()].filter((other) => other !== view && before(view, other) < 0).sort(before)[0];
  sensorsEl.insertBefore(view.el, after ? after.el : null);
  emptyEl.hidden = true;
  return view;
}

/** Take a sensor off the page (hidden, or about to be rebuilt with new settings). */
function dropView(key) {
  const view = views.get(key);
  if (!view) return;
  views.delete(key);
  view.freshness.stop();
  view.charts.destroy();
  view.el.remove();
}

/** Remember a sensor's settings; a change in them rebuilds its panel. */
function noteSettings(item) {
  if (chosen.note(item)) dropView(`${item.source}/${item.sensor}`);
}

/** Merge a /api/sensors answer (the sensors and the unit table) into the page. */
function applySnapshot({ sensors, units }) {
  setUnits(units);
  const created = [];
  for (const item of sensors) {
    if (!accepted(filters, item)) continue;
    noteSettings(item);
    const isNew = !views.has(`${item.source}/${item.sensor}`);
    const view = viewOf(item.source, item.sensor);
    if (!view) continue;
    let added = isNew;
    for (const [metric, info] of Object.entries(item.metrics || {})) {
      added = view.addMetric(metric, info?.unit, info?.display) || added;
      view.setValue(metric, info?.last);
    }
    view.setLastSeen(item.last_seen);
    view.setError(item.last_error);
    if (added) created.push(view);
  }
  if (created.length) alerts?.renderCards(); // a firing metric's new card is marked at once
  if (editor) listHidden();
  return created;
}

/** For editors: the hidden sensors, each with its settings button (to show it again). */
function listHidden() {
  const list = hiddenEl.querySelector(".hidden-list");
  const items = [];
  for (const [key, { settings }] of chosen) {
    if (!settings.hidden) continue;
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = settings.name ? `${settings.name} (${key})` : key;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Settings";
    const [source, sensor] = key.split("/");
    button.addEventListener("click", () => editor.open(source, sensor, settings));
    item.append(name, " ", button);
    items.push(item);
  }
  list.replaceChildren(...items);
  hiddenEl.hidden = items.length === 0;
}

function onReading(reading) {
  if (!accepted(filters, reading, { reading: true })) return;
  const { source, sensor, ts, values } = reading;
  let added = !views.has(`${source}/${sensor}`);
  const view = viewOf(source, sensor);
  if (!view) return;
  const displays = chosen.get(view.key)?.displays || {};
  for (const [metric, value] of Object.entries(values)) {
    added = view.addMetric(metric, undefined, displays[metric]) || added;
    view.setValue(metric, value);
  }
  view.seen(ts, now());
  view.charts.appendLive(ts, values, RANGES.live);
  // A sensor or metric first seen on the stream gets its card and chart at
  // once, and whatever history the server has behind them.
  if (added) {
    loadHistory(view, { quiet: true });
    alerts?.renderCards();
  }
}

/** [since, until] in Unix seconds for a range, ending now. */
function windowOf(name) {
  const until = now();
  return [Math.max(until - RANGES[name], 0), until];
}

/** Where drawn data starts: the first bucket for "all" (asked from 1970), else the asked since. */
function drawnSince(name, since, until, answers) {
  if (name !== "all") return since;
  const first = Math.min(...answers.map((buckets) => (buckets.length ? buckets[0].t : until)));
  return Math.min(first, until - 3600);
}

/** Buckets to ask for: about one per two pixels of chart, within what the server is asked to do. */
function pointsFor(view, name) {
  if (name === "live") return LIVE_BACKFILL_POINTS;
  const width = view.el.querySelector(".chart")?.clientWidth || view.el.clientWidth || 600;
  return Math.max(120, Math.min(600, Math.round(width / 2)));
}

/** Fetch and draw one sensor's metrics for the current range; older answers are dropped. */
async function loadHistory(view, { quiet = false } = {}) {
  const name = range;
  const token = (view.historyToken = (view.historyToken || 0) + 1);
  if (!quiet) view.charts.setLoading(name);
  const [since, until] = windowOf(name);
  const points = pointsFor(view, name);
  view.setExport(exportUrl(view.source, view.sensor, since, until));
  try {
    const metrics = [...view.metrics.keys()];
    const answers = await Promise.all(
      metrics.map((metric) =>
        fetchSeries({ source: view.source, sensor: view.sensor, metric, since, until, points }),
      ),
    );
    if (token !== view.historyToken || name !== range) return;
    const byMetric = new Map(metrics.map((metric, i) => [metric, answers[i]]));
    const from = drawnSince(name, since, until, answers);
    view.charts.setHistory(name, from, until, byMetric, (until - from) / points);
  } catch (error) {
    if (token !== view.historyToken) return;
    console.warn("history:", error.message);
    view.charts.setFailed(name);
    showNotice(`History for ${view.key} could not be loaded (${error.message}); retrying shortly.`);
  }
}

function loadAllHistory(options) {
  return Promise.all([...views.values()].map((view) => loadHistory(view, options)));
}

/** Longer ranges refresh on a timer, the live one moves with every reading. */
function scheduleHistoryRefresh() {
  clearInterval(historyTimer);
  if (range === "live") return;
  historyTimer = setInterval(() => loadAllHistory({ quiet: true }), HISTORY_REFRESH_MS[range]);
}

let lastingNotice = ""; // a problem no refresh will fix (charts missing)

function showNotice(text) {
  const shown = text || lastingNotice;
  noticeEl.textContent = shown;
  noticeEl.hidden = !shown;
}

/** Fetch the sensor list now (after the settings changed) and draw what it changed. */
async function refreshSensors() {
  try {
    const created = applySnapshot(await fetchSensors());
    showNotice("");
    await Promise.all(created.map((view) => loadHistory(view)));
  } catch (error) {
    console.warn("sensors:", error.message);
  }
}

/** The server lost our place in the stream: take a new snapshot and redraw the history. */
async function onReset() {
  try {
    applySnapshot(await fetchSensors());
  } catch (error) {
    console.warn("reset:", error.message);
  }
  await loadAllHistory({ quiet: true });
}

function setRange(name) {
  if (!(name in RANGES) || name === range) return;
  range = name;
  const query = new URLSearchParams(location.search);
  if (name === "live") query.delete("range");
  else query.set("range", name);
  const qs = query.toString();
  history.replaceState(null, "", qs ? `?${qs}` : location.pathname);
  scheduleHistoryRefresh();
  loadAllHistory();
}

function setupRangeSelector() {
  const selector = document.getElementById("range");
  const current = selector.querySelector(`input[value="${range}"]`);
  if (current) current.checked = true;
  selector.addEventListener("change", (event) => setRange(event.target.value));
}

function setupChartDefaults() {
  if (typeof Chart === "undefined") {
    lastingNotice = "Charts are unavailable: web/static/vendor is missing (run `make assets`).";
    showNotice("");
    return;
  }
  const colors = theme();
  Chart.defaults.font.family = colors.font;
  Chart.defaults.font.size = 11;
  Chart.defaults.color = colors.muted;
  watchTheme((next) => {
    Chart.defaults.color = next.muted;
    for (const view of views.values()) view.charts.retheme();
  });
}

async function start() {
  registerShell();
  setupChartDefaults();
  setupRangeSelector();
  alerts = new Alerts(document.getElementById("alerts"));
  const stream = new LiveStream({
    filters,
    onReading,
    onReset: async (reason) => {
      await Promise.all([onReset(reason), alerts.refresh()]);
    },
    onState: (state, detail) => showConnection(state, detail),
    onAlert: (alert) => alerts.onEvent(alert),
  });
  stream.followPage();
  document.querySelector(".connection-retry").addEventListener("click", () => stream.retryNow());
  // Only the offline countdown changes every second; nothing is written otherwise.
  setInterval(() => {
    if (stream.state === "offline") showConnection(stream.state, { retryAt: stream.retryAt });
  }, 1000);
  // A silent sensor's live chart keeps moving, so its silence shows as a gap;
  // in steps, since each step redraws the chart.
  setInterval(() => {
    if (range !== "live") return;
    for (const view of views.values()) if (view.stale) view.charts.slide(now(), RANGES.live);
  }, SLIDE_MS);
  setInterval(refreshSensors, SENSORS_REFRESH_MS);

  // The snapshot first, so cards exist before the first live reading; the
  // stream opens right after, and history fills the charts while it runs.
  try {
    applySnapshot(await fetchSensors());
  } catch (error) {
    showNotice(`Could not load the sensor list (${error.message}); live values will still appear.`);
  }
  stream.open();
  alerts.start();
  emptyEl.hidden = views.size > 0;
  scheduleHistoryRefresh();
  await loadAllHistory();
  dashboardEl.dataset.ready = "true";
}

start();
