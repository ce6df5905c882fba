// One sensor on the page: its panel, a card per metric, its charts.
// Every string that came from a reading or the API goes in through
// textContent or a dataset, never as HTML (issue 7).
import { SensorCharts } from "./charts.js";
import { formatAge, formatValue, metricLabel, unitOf, unitRank, valueSuffix } from "./format.js";

// A sensor is stale when it has been silent this many expected intervals
// (and at least STALE_MIN_SECONDS: one late reading is not news).
const STALE_INTERVALS = 5;
const STALE_MIN_SECONDS = 15;
const PALETTE_SIZE = 8;

function compare([rankA, nameA], [rankB, nameB]) {
  return rankA - rankB || nameA.localeCompare(nameB);
}

function clone(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

export class SensorView {
  constructor(source, sensor) {
    this.source = source;
    this.sensor = sensor;
    this.key = `${source}/${sensor}`;
    this.metrics = new Map(); // metric -> {unit, valueEl, cardEl}
    this.lastSeen = NaN;
    this.lastTs = NaN;
    this.interval = NaN; // seconds between readings, smoothed

    const el = clone("tpl-sensor");
    el.dataset.sensor = this.key;
    el.querySelector(".sensor-name").textContent = sensor;
    el.querySelector(".sensor-source").textContent = source;
    this.el = el;
    this.cardsEl = el.querySelector(".cards");
    this.ageEl = el.querySelector(".sensor-age");
    this.errorEl = el.querySelector(".sensor-error");
    this.exportEl = el.querySelector(".sensor-export");
    const chartsEl = el.querySelector(".charts");
    chartsEl.dataset.chart = this.key;
    this.charts = new SensorCharts(chartsEl, document.getElementById("tpl-chart"));
  }

  /** Add a metric's card and chart line, once; `unit` from the API, else the name's suffix. */
  addMetric(metric, unit) {
    if (this.metrics.has(metric)) return false;
    const resolved = unit || unitOf(metric);
    const color = this.metrics.size % PALETTE_SIZE;
    const card = clone("tpl-card");
    card.dataset.card = `${this.key}/${metric}`;
    card.classList.add(`series-${color}`);
    card.querySelector(".card-label").textContent = metricLabel(metric);
    card.querySelector(".card-key").textContent = metric;
    card.querySelector(".card-unit").textContent = valueSuffix(resolved);
    const valueEl = card.querySelector(".card-value");
    valueEl.dataset.metric = `${this.key}/${metric}`;
    // Cards sorted by unit, then name: the same order on every load, whatever
    // order the API or the stream named them in; updates never reshuffle them.
    const order = [unitRank(resolved), metric];
    const after = [...this.metrics.values()].find((m) => compare(m.order, order) > 0);
    this.cardsEl.insertBefore(card, after ? after.cardEl : null);
    this.metrics.set(metric, { unit: resolved, valueEl, cardEl: card, order });
    this.charts.ensureMetric(metric, resolved, color);
    return true;
  }

  /** Show a metric's latest value in its card. */
  setValue(metric, value) {
    const entry = this.metrics.get(metric);
    if (!entry) return;
    const text = formatValue(entry.unit, value);
    if (entry.valueEl.textContent !== text) entry.valueEl.textContent = text;
    entry.valueEl.title = String(value);
  }

  /** Note a live reading: for the age, for staleness and for the live chart's gaps. */
  seen(ts, now) {
    if (Number.isFinite(this.lastTs) && ts > this.lastTs) {
      const delta = ts - this.lastTs;
      // Smoothed, so one late reading neither marks a gap nor makes the sensor stale.
      this.interval = Number.isFinite(this.interval) ? this.interval * 0.8 + delta * 0.2 : delta;
      this.charts.setLiveInterval(this.interval);
    }
    if (!(ts <= this.lastTs)) this.lastTs = ts;
    // A fresh reading counts from when it arrived, so a producer whose clock is
    // off by a few seconds is not shown as stale; a replayed old one by its own time.
    this.setLastSeen(Math.abs(now - ts) < 60 ? now : ts);
  }

  /** The time the sensor was last heard from (Unix seconds); never moves back. */
  setLastSeen(ts) {
    if (Number.isFinite(ts) && !(ts <= this.lastSeen)) this.lastSeen = ts;
  }

  /** Show the producer's last error, or hide the banner when there is none. */
  setError(text) {
    const message = typeof text === "string" ? text.trim() : "";
    this.errorEl.hidden = !message;
    const target = this.errorEl.querySelector(".sensor-error-text");
    if (target.textContent !== message) target.textContent = message;
  }

  /** Refresh the age text and the stale flag (once a second, for every sensor). */
  tick(now) {
    const age = now - this.lastSeen;
    const text = formatAge(age);
    if (this.ageEl.textContent !== text) this.ageEl.textContent = text;
    const expected = Number.isFinite(this.interval) ? this.interval : 0;
    const stale = !(age <= Math.max(STALE_MIN_SECONDS, expected * STALE_INTERVALS));
    const flag = String(stale);
    if (this.el.dataset.stale !== flag) this.el.dataset.stale = flag;
  }

  /** Point the CSV link at the time span the charts show. */
  setExport(href) {
    this.exportEl.href = href;
  }
}
