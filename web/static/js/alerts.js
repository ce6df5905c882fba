// Alerts on the dashboard (docs/alerts.md): what is firing, at the top of
// the page and on its card; each rule's threshold as a dashed line on the
// chart of every metric it watches; transitions as markers on the time axis.
// The state comes from /api/alerts, then live from `event: alert`.
// Text from the API goes in through textContent only.
/* global Chart */

const REFRESH_MS = 30000; // also picks up what a missed event (a reconnect) changed
// After a transition, how long until the page asks how its notifications went.
const DELIVERY_CHECK_MS = 3000;
const MARKER_SIZE = 5;

/** A rule's metric pattern ("pi/*\/cpu_temp_c") as a RegExp; `*` stays within a part. */
function patternOf(metric) {
  const parts = String(metric).split("/").map((part) =>
    part.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*"),
  );
  return new RegExp(`^${parts.join("/")}$`);
}

function cssColor(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function clockTime(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

function formatNumber(value) {
  return typeof value === "number" && Number.isFinite(value) ? String(Math.round(value * 100) / 100) : "—";
}

export class Alerts {
  /** @param {HTMLElement} panel  the element at the top of the page that lists what is firing */
  constructor(panel) {
    this.panel = panel;
    this.list = panel.querySelector(".alerts-list");
    this.targetsEl = panel.querySelector(".alerts-targets");
    this.rules = []; // [{name, metric, above|below, clear, regexp}]
    this.states = new Map(); // "rule|metric" -> {rule, metric, state, since, value}
    this.transitions = []; // [{rule, metric, kind, at}]
    this.targets = [];
    this.timer = 0;
    this.deliveryTimer = 0;
    if (typeof Chart !== "undefined") Chart.register(this.plugin());
  }

  /** Load everything from /api/alerts, then keep refreshing it. */
  async start() {
    await this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    try {
      const response = await fetch("api/alerts", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.apply(await response.json());
    } catch (error) {
      console.warn("alerts:", error.message);
    }
  }

  /** Take a whole /api/alerts answer. */
  apply(body) {
    const rules = Array.isArray(body?.rules) ? body.rules : [];
    this.rules = rules
      .filter((r) => r && typeof r.name === "string" && typeof r.metric === "string")
      .map((r) => ({ ...r, regexp: patternOf(r.metric) }));
    this.states.clear();
    for (const alert of Array.isArray(body?.alerts) ? body.alerts : []) this.setState(alert);
    this.transitions = (Array.isArray(body?.transitions) ? body.transitions : []).filter(
      (t) => t && typeof t.at === "number" && typeof t.metric === "string",
    );
    this.targets = Array.isArray(body?.targets) ? body.targets : [];
    this.render();
  }

  /** One `event: alert` from the stream: a transition as it happens. */
  onEvent(alert) {
    if (!alert || typeof alert.rule !== "string" || typeof alert.metric !== "string") return;
    this.setState(alert);
    if (typeof alert.at === "number") {
      this.transitions.push({ rule: alert.rule, metric: alert.metric, kind: alert.kind, at: alert.at });
    }
    this.render();
    // The notifier is trying to deliver it now: show a failing target soon, not in 30 s.
    clearTimeout(this.deliveryTimer);
    this.deliveryTimer = setTimeout(() => this.refresh(), DELIVERY_CHECK_MS);
  }

  setState(alert) {
    if (!alert || typeof alert.rule !== "string" || typeof alert.metric !== "string") return;
    const { rule, metric, state, since, value } = alert;
    this.states.set(`${rule}|${metric}`, { rule, metric, state, since, value });
  }

  /** The rules watching one metric ("source/sensor/metric"). */
  rulesFor(key) {
    return this.rules.filter((rule) => rule.regexp.test(key));
  }

  firing() {
    return [...this.states.values()].filter((s) => s.state === "firing");
  }

  render() {
    this.renderPanel();
    this.renderCards();
    if (typeof Chart !== "undefined") {
      for (const chart of Object.values(Chart.instances)) chart.update("none");
    }
  }

  renderPanel() {
    const firing = this.firing().sort((a, b) => a.since - b.since);
    const items = firing.map((alert) => {
      const li = document.createElement("li");
      li.className = "alert";
      li.dataset.alert = `${alert.rule}|${alert.metric}`;
      li.dataset.state = alert.state;
      const rule = this.rules.find((r) => r.name === alert.rule);
      const limit = rule ? ` (${"above" in rule ? "above" : "below"} ${formatNumber(rule.above ?? rule.below)})` : "";
      const name = document.createElement("strong");
      name.textContent = alert.rule;
      const detail = document.createElement("span");
      detail.textContent = ` ${alert.metric} ${formatNumber(alert.value)}${limit} since ${clockTime(alert.since)}`;
      li.append(name, detail);
      return li;
    });
    this.list.replaceChildren(...items);
    const failing = this.targets.filter((t) => t && t.ok === false);
    this.targetsEl.replaceChildren(
      ...failing.map((t) => {
        const li = document.createElement("li");
        li.className = "alerts-target";
        li.textContent = `Notifications to ${t.target} are failing: ${t.last_error || "no answer"} (${t.queued || 0} waiting)`;
        return li;
      }),
    );
    this.panel.hidden = items.length === 0 && failing.length === 0;
    this.panel.dataset.firing = String(items.length);
  }

  /** A firing metric's card carries data-alert="firing" (styled by alerts.css). */
  renderCards() {
    const hot = new Set(this.firing().map((s) => s.metric));
    for (const card of document.querySelectorAll("[data-card]")) {
      const flag = hot.has(card.dataset.card) ? "firing" : "";
      if ((card.dataset.alert || "") !== flag) {
        if (flag) card.dataset.alert = flag;
        else delete card.dataset.alert;
      }
    }
  }

  /** Thresholds of the metrics drawn on one chart: [{rule, metric, value, firing}]. */
  linesOf(chart) {
    const sensor = chart.canvas.closest("[data-sensor]")?.dataset.sensor;
    if (!sensor) return [];
    const lines = [];
    for (const dataset of chart.data.datasets) {
      if (dataset.role !== "avg" || !dataset.metric) continue;
      const key = `${sensor}/${dataset.metric}`;
      for (const rule of this.rulesFor(key)) {
        const value = rule.above ?? rule.below;
        if (typeof value !== "number") continue;
        const state = this.states.get(`${rule.name}|${key}`);
        lines.push({ rule: rule.name, metric: key, value, firing: state?.state === "firing" });
      }
    }
    return lines;
  }

  /** The Chart.js plugin: room for the thresholds on the y axis, then the lines and markers. */
  plugin() {
    return {
      id: "alertThresholds",
      afterDataLimits: (chart, { scale }) => {
        if (scale.axis !== "y") return;
        for (const line of this.linesOf(chart)) {
          if (!(line.value <= scale.max)) scale.max = line.value;
          if (!(line.value >= scale.min)) scale.min = line.value;
        }
      },
      afterDatasetsDraw: (chart) => this.draw(chart),
    };
  }

  draw(chart) {
    const { ctx, chartArea: area, scales } = chart;
    if (!area || !scales.y || !scales.x) return;
    const drawn = [];
    ctx.save();
    ctx.lineWidth = 1.25;
    ctx.font = `11px ${cssColor("--font", "sans-serif")}`;
    for (const line of this.linesOf(chart)) {
      const y = scales.y.getPixelForValue(line.value);
      if (!(y >= area.top - 0.5 && y <= area.bottom + 0.5)) continue;
      const color = line.firing ? cssColor("--bad", "#dc2626") : cssColor("--warn", "#d97706");
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, y);
      ctx.lineTo(area.right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.textAlign = "right";
      ctx.fillText(`${line.rule} ${formatNumber(line.value)}`, area.right - 4, y - 4);
      drawn.push(`${line.rule}@${line.value}`);
    }
    const markers = this.drawMarkers(chart, area);
    ctx.restore();
    // Test and debugging hooks: which lines and markers are on the canvas.
    const text = drawn.join(" ");
    if (chart.canvas.dataset.thresholds !== text) chart.canvas.dataset.thresholds = text;
    if (chart.canvas.dataset.alertMarkers !== String(markers)) {
      chart.canvas.dataset.alertMarkers = String(markers);
    }
  }

  /** A triangle on the time axis at each transition of a metric on this chart. */
  drawMarkers(chart, area) {
    const sensor = chart.canvas.closest("[data-sensor]")?.dataset.sensor;
    const metrics = new Set(
      chart.data.datasets.filter((d) => d.role === "avg").map((d) => `${sensor}/${d.metric}`),
    );
    const { ctx } = chart;
    let count = 0;
    for (const t of this.transitions) {
      if (!metrics.has(t.metric)) continue;
      const x = chart.scales.x.getPixelForValue(t.at * 1000);
      if (!(x >= area.left && x <= area.right)) continue;
      ctx.fillStyle = t.kind === "firing" ? cssColor("--bad", "#dc2626") : cssColor("--ok", "#16a34a");
      ctx.beginPath();
      ctx.moveTo(x, area.bottom);
      ctx.lineTo(x - MARKER_SIZE, area.bottom + MARKER_SIZE * 1.6);
      ctx.lineTo(x + MARKER_SIZE, area.bottom + MARKER_SIZE * 1.6);
      ctx.closePath();
      ctx.fill();
      count += 1;
    }
    return count;
  }
}
