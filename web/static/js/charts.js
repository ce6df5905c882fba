// The charts of one sensor: one Chart.js canvas per unit (small multiples read
// better than one chart with three y axes: °C, % and hPa share no scale), a
// dataset triple per metric (max and min drawn as a band, avg as the line).
/* global Chart */
import { formatShown, metricLabel, shownSuffix, unitLabel, unitRank } from "./format.js";
import { pace } from "./pace.js";
import { theme } from "./theme.js";

// Live mode keeps at most this many points per metric, whatever the rate.
const LIVE_MAX_POINTS = 2000;
// The shortest silence (ms) drawn as a gap in a line.
const MIN_GAP_MS = 5000;

const TIME_FORMATS = {
  millisecond: "HH:mm:ss.SSS",
  second: "HH:mm:ss",
  minute: "HH:mm",
  hour: "HH:mm",
  day: "MMM d",
  week: "MMM d",
  month: "MMM yyyy",
  quarter: "MMM yyyy",
  year: "yyyy",
};

/**
 * The value axis; an on/off metric gets a fixed 0..1 axis labelled off/on.
 * Data stay in the stored unit (alert thresholds are drawn in it too); a unit
 * chosen in the settings (°F, inHg) converts the labels only.
 */
function yAxis(unit, colors, display) {
  const axis = {
    grace: "8%",
    ticks: { maxTicksLimit: 5, color: colors.muted },
    grid: { color: colors.grid },
    border: { display: false },
  };
  if (unit === "bool") {
    Object.assign(axis, { min: 0, max: 1, grace: 0 });
    Object.assign(axis.ticks, { stepSize: 1, callback: (value) => (value ? "on" : "off") });
  } else if (display) {
    axis.ticks.callback = (value) => formatShown(unit, value, display);
  }
  return axis;
}

export class SensorCharts {
  /**
   * @param {HTMLElement} container  the sensor's chart area; carries the test hooks
   * @param {HTMLTemplateElement} template  the markup of one chart
   */
  constructor(container, template) {
    this.container = container;
    this.template = template;
    this.units = new Map(); // unit -> {figure, chart, metrics: []}
    this.metrics = new Map(); // metric -> {unit, color, avg, max, min}
    this.range = "live";
    this.window = { since: 0, until: 0 };
    this.liveGap = Infinity;
    this.historyGap = MIN_GAP_MS;
    this.draws = 0;
    // Charts scrolled out of view are not drawn; they catch up when they come back.
    this.observer =
      typeof IntersectionObserver === "undefined"
        ? null
        : new IntersectionObserver((entries) => this.onVisibility(entries));
    this.state = "";
  }

  /** Make room for a metric: its unit's chart (created on first use) and its datasets. */
  ensureMetric(metric, unit, color, display) {
    // Without Chart.js (vendor files not installed) the cards still work.
    if (this.metrics.has(metric) || typeof Chart === "undefined") return;
    const unitChart = this.units.get(unit) || this.createChart(unit, display);
    const label = metricLabel(metric);
    const common = { metric, parsing: false, pointRadius: 0, borderWidth: 0, data: [] };
    const max = { ...common, role: "max", label: `${label} max`, fill: "+1" };
    const min = { ...common, role: "min", label: `${label} min`, fill: false };
    const avg = { ...common, role: "avg", label, borderWidth: 1.75, fill: false };
    avg.stepped = unit === "bool";
    unitChart.chart.data.datasets.push(max, min, avg);
    unitChart.metrics.push(metric);
    this.metrics.set(metric, { unit, color, avg, max, min });
    this.applyGaps();
    this.applyColors(unitChart);
    const several = unitChart.metrics.length > 1;
    unitChart.chart.options.plugins.legend.display = several;
    // One line: name the metric ("Humidity"); several: name what they share ("Temperature").
    const title = several ? unitLabel(unit) : label;
    unitChart.figure.querySelector(".chart-title").textContent = title;
    unitChart.figure.querySelector("canvas").setAttribute("aria-label", `${title} over time`);
    this.schedule(unitChart);
  }

  /** A chart for one unit; `display` is how the sensor's settings show that unit. */
  createChart(unit, display) {
    const figure = this.template.content.firstElementChild.cloneNode(true);
    figure.dataset.unit = unit;
    figure.querySelector(".chart-unit").textContent = shownSuffix(unit, display);
    const canvas = figure.querySelector("canvas");
    // Charts in the cards' unit order, whatever order the metrics arrived in.
    const after = [...this.units.values()].find((other) => unitRank(other.unit) > unitRank(unit));
    this.container.insertBefore(figure, after ? after.figure : null);
    const chart = new Chart(canvas, this.options(unit, display));
    const unitChart = { unit, display, figure, chart, metrics: [], dirty: false, visible: !this.observer };
    this.units.set(unit, unitChart);
    this.observer?.observe(figure);
    return unitChart;
  }

  options(unit, display) {
    const colors = theme();
    return {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: {
            type: "time",
            time: { displayFormats: TIME_FORMATS, tooltipFormat: "PP HH:mm:ss" },
            ticks: { maxRotation: 0, autoSkipPadding: 16, color: colors.muted },
            grid: { color: colors.grid },
            border: { display: false },
          },
          y: yAxis(unit, colors, display),
        },
        plugins: {
          legend: {
            display: false,
            align: "start",
            labels: {
              boxWidth: 10,
              boxHeight: 2,
              color: colors.text,
              filter: (item, data) => data.datasets[item.datasetIndex].role === "avg",
            },
            onClick: (event, item, legend) => this.toggleMetric(legend.chart, item.datasetIndex),
          },
          tooltip: {
            filter: (item) => item.dataset.role === "avg",
            callbacks: { label: (item) => this.tooltipLabel(unit, item, display) },
          },
          decimation: { enabled: true, algorithm: "min-max" },
        },
      },
    };
  }

  tooltipLabel(unit, item, display) {
    const raw = item.raw;
    const suffix = shownSuffix(unit, display);
    const value = `${formatShown(unit, raw.y, display)}${suffix ? ` ${suffix}` : ""}`;
    const band =
      raw.min !== undefined && raw.max !== undefined && raw.min !== raw.max
        ? ` (${formatShown(unit, raw.min, display)} – ${formatShown(unit, raw.max, display)})`
        : "";
    return ` ${item.dataset.label}: ${value}${band}`;
  }

  /** A legend click hides the metric's line and its band together. */
  toggleMetric(chart, index) {
    const metric = chart.data.datasets[index].metric;
    const visible = chart.isDatasetVisible(index);
    chart.data.datasets.forEach((dataset, i) => {
      if (dataset.metric === metric) chart.setDatasetVisibility(i, !visible);
    });
    chart.update("none");
  }

  applyColors(unitChart) {
    const colors = theme();
    for (const dataset of unitChart.chart.data.datasets) {
      const color = colors.series[this.metrics.get(dataset.metric)?.color ?? 0];
      dataset.borderColor = color;
      dataset.backgroundColor = dataset.role === "avg" ? color : colors.band(color);
      dataset.pointHoverBackgroundColor = color;
    }
  }

  /** Re-read the theme (light/dark switched) and repaint. */
  retheme() {
    const colors = theme();
    for (const unitChart of this.units.values()) {
      const { options } = unitChart.chart;
      for (const axis of [options.scales.x, options.scales.y]) {
        axis.ticks.color = colors.muted;
        axis.grid.color = colors.grid;
      }
      options.plugins.legend.labels.color = colors.text;
      this.applyColors(unitChart);
      this.schedule(unitChart);
    }
  }

  /**
   * Draw a range from /api/series: buckets per metric, [since, until] in Unix seconds.
   * In the live range the band is left out: 15 minutes of raw points need none.
   */
  setHistory(range, since, until, bucketsByMetric, bucketSeconds) {
    this.historyGap = Math.max(bucketSeconds * 2500, MIN_GAP_MS);
    for (const [metric, buckets] of bucketsByMetric) {
      const entry = this.metrics.get(metric);
      if (!entry) continue;
      const avg = buckets.map((b) => ({ x: b.t * 1000, y: b.avg, min: b.min, max: b.max }));
      if (range === "live") {
        // Readings that arrived while the backfill was in flight stay, after it.
        const end = avg.length ? avg[avg.length - 1].x : -Infinity;
        const keep = this.range === "live" ? entry.avg.data.filter((p) => p.x > end) : [];
        avg.push(...keep);
      }
      entry.avg.data = avg;
      const band = range !== "live";
      entry.max.data = band ? buckets.map((b) => ({ x: b.t * 1000, y: b.max })) : [];
      entry.min.data = band ? buckets.map((b) => ({ x: b.t * 1000, y: b.min })) : [];
    }
    this.range = range;
    this.applyGaps();
    this.setWindow(since, until);
    this.state = "ready";
    for (const unitChart of this.units.values()) this.schedule(unitChart);
  }

  /** Say a range is being fetched (data-state="loading" until it is drawn). */
  setLoading(range) {
    this.state = "loading";
    this.container.dataset.state = "loading";
    this.container.dataset.range = range;
  }

  /** Say a range could not be fetched; the charts keep what they had. */
  setFailed(range) {
    this.state = "error";
    this.container.dataset.state = "error";
    this.container.dataset.range = range;
  }

  /** The live view's expected spacing between readings; a longer silence is drawn as a gap. */
  setLiveInterval(seconds) {
    this.liveGap = Math.max(MIN_GAP_MS, seconds * 4000);
    this.applyGaps();
  }

  /** Lines bridge silences up to the expected spacing; longer ones break (Chart.js spanGaps). */
  applyGaps() {
    const live = this.range === "live" && Number.isFinite(this.liveGap);
    const span = live ? Math.max(this.historyGap, this.liveGap) : this.historyGap;
    for (const entry of this.metrics.values()) {
      entry.avg.spanGaps = entry.max.spanGaps = entry.min.spanGaps = span;
    }
  }

  /** Append one reading to the live view and slide its window. Ignored in other ranges. */
  appendLive(ts, values, windowSeconds) {
    if (this.range !== "live") return;
    const x = ts * 1000;
    for (const [metric, y] of Object.entries(values)) {
      const entry = this.metrics.get(metric);
      if (!entry) continue;
      const data = entry.avg.data;
      const last = data[data.length - 1];
      // The stream replays the latest reading on every connect: draw each once.
      if (last && x <= last.x) continue;
      data.push({ x, y });
      const oldest = x - windowSeconds * 1000;
      while (data.length && (data[0].x < oldest || data.length > LIVE_MAX_POINTS)) data.shift();
      this.schedule(this.units.get(entry.unit));
    }
    this.setWindow(ts - windowSeconds, ts);
  }

  /** Move the live window to end at `now` without new data (a sensor gone quiet). */
  slide(now, windowSeconds) {
    if (this.range !== "live") return;
    this.setWindow(now - windowSeconds, now);
    for (const unitChart of this.units.values()) this.schedule(unitChart);
  }

  setWindow(since, until) {
    this.window = { since, until };
    for (const { chart } of this.units.values()) {
      chart.options.scales.x.min = since * 1000;
      chart.options.scales.x.max = until * 1000;
    }
  }

  onVisibility(entries) {
    for (const entry of entries) {
      const unitChart = [...this.units.values()].find((u) => u.figure === entry.target);
      if (!unitChart) continue;
      unitChart.visible = entry.isIntersecting;
      if (unitChart.visible && unitChart.dirty) this.schedule(unitChart);
    }
  }

  /** Redraw in the page's next paced frame: many readings cost one draw, a hidden chart none. */
  schedule(unitChart) {
    if (!unitChart) return;
    unitChart.dirty = true;
    if (unitChart.visible) pace(this, () => this.draw());
  }

  draw() {
    for (const each of this.units.values()) {
      if (!each.dirty || !each.visible) continue;
      each.dirty = false;
      each.chart.update("none");
    }
    this.markDrawn();
  }

  /** Test and debugging hooks on the container: which range is drawn, with how many points. */
  markDrawn() {
    let points = 0;
    for (const entry of this.metrics.values()) {
      points += entry.avg.data.length;
    }
    this.draws += 1;
    this.container.dataset.range = this.range;
    this.container.dataset.points = String(points);
    this.container.dataset.draws = String(this.draws);
    if (this.state) this.container.dataset.state = this.state;
  }

  destroy() {
    this.observer?.disconnect();
    for (const { chart } of this.units.values()) chart.destroy();
    this.units.clear();
    this.metrics.clear();
  }
}
