// One sensor on the page: its panel, a card per metric, its charts.
// Every string that came from a reading or the API goes in through
// textContent or a dataset, never as HTML (issue 7).
import { SensorCharts } from "./charts.js";
import { formatShown, metricLabel, shownSuffix, unitOf, unitRank } from "./format.js";
import { Freshness } from "./freshness.js";
import { pace, soon } from "./pace.js";

const PALETTE_SIZE = 8;

function compare([rankA, nameA], [rankB, nameB]) {
  return rankA - rankB || nameA.localeCompare(nameB);
}

function clone(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

export class SensorView {
  /** @param {object} settings  the sensor's settings from /api/sensors (name, order...) */
  constructor(source, sensor, settings = {}) {
    this.source = source;
    this.sensor = sensor;
    this.key = `${source}/${sensor}`;
    this.settings = settings;
    this.metrics = new Map(); // metric -> {unit, valueEl, cardEl, value}
    this.freshness = new Freshness((stale, silence) =>
      soon(`${this.key}:stale`, () => this.showStale(stale, silence)),
    );

    const el = clone("tpl-sensor");
    el.dataset.sensor = this.key;
    el.querySelector(".sensor-name").textContent = settings.name || sensor;
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

  /**
   * Add a metric's card and chart line, once; `unit` from the API wins over the
   * suffix; `display` (from /api/sensors) is how the settings show it (°F...).
   */
  addMetric(metric, unit, display) {
    if (this.metrics.has(metric)) return false;
    const resolved = unit || unitOf(metric);
    const color = this.metrics.size % PALETTE_SIZE;
    const card = clone("tpl-card");
    card.dataset.card = `${this.key}/${metric}`;
    card.classList.add(`series-${color}`);
    card.querySelector(".card-label").textContent = metricLabel(metric);
    card.querySelector(".card-key").textContent = metric;
    card.querySelector(".card-unit").textContent = shownSuffix(resolved, display);
    const valueEl = card.querySelector(".card-value");
    valueEl.dataset.metric = `${this.key}/${metric}`;
    // Cards sorted by unit, then name: the same order on every load, whatever
    // order the API or the stream named them in; updates never reshuffle them.
    const order = [unitRank(resolved), metric];
    const after = [...this.metrics.values()].find((m) => compare(m.order, order) > 0);
    this.cardsEl.insertBefore(card, after ? after.cardEl : null);
    if (this.stale) card.dataset.stale = this.freshness.silence;
    this.metrics.set(metric, { unit: resolved, display, valueEl, cardEl: card, order, value: undefined });
    this.charts.ensureMetric(metric, resolved, color, display);
    return true;
  }

  /** Show a metric's latest value in its card (in the next paced frame). */
  setValue(metric, value) {
    const entry = this.metrics.get(metric);
    if (!entry) return;
    entry.value = value;
    pace(`${this.key}:values`, () => this.drawValues());
  }

  drawValues() {
    for (const entry of this.metrics.values()) {
      const text = formatShown(entry.unit, entry.value, entry.display);
      if (entry.valueEl.textContent !== text) entry.valueEl.textContent = text;
    }
  }

  /** Note a live reading: for staleness and for the live chart's gaps. */
  seen(ts, now) {
    this.freshness.reading(ts, now);
    if (Number.isFinite(this.freshness.interval)) this.charts.setLiveInterval(this.freshness.interval);
  }

  /** The time the sensor was last heard from (Unix seconds, from a snapshot). */
  setLastSeen(ts) {
    this.freshness.heard(ts, Date.now() / 1000);
  }

  /** Whether the sensor counts as stale now (silent for 3 of its intervals). */
  get stale() {
    return this.freshness.stale === true;
  }

  /** Show the producer's last error, or hide the banner when there is none. */
  setError(text) {
    const message = typeof text === "string" ? text.trim() : "";
    this.errorEl.hidden = !message;
    const target = this.errorEl.querySelector(".sensor-error-text");
    if (target.textContent !== message) target.textContent = message;
  }

  /** Mark the panel and its cards stale (data-stale) and say for how long, or clear both. */
  showStale(stale, silence) {
    const text = stale ? `silent for ${silence}` : "";
    if (this.ageEl.textContent !== text) this.ageEl.textContent = text;
    for (const el of [this.el, ...[...this.metrics.values()].map((m) => m.cardEl)]) {
      if (stale) el.dataset.stale = silence;
      else delete el.dataset.stale;
    }
  }

  /** Show the settings button; `open` opens the editor for this sensor. */
  offerSettings(open) {
    const button = this.el.querySelector(".sensor-edit");
    button.hidden = false;
    button.addEventListener("click", open);
  }

  /** Point the CSV link at the time span the charts show. */
  setExport(href) {
    this.exportEl.href = href;
  }
}
