// Units and number formatting. A metric's unit is its name's suffix
// (DESIGN.md section 3); this table says how a person wants to read each one.

/** suffix -> [symbol shown after the value, fraction digits, label of a chart axis] */
const UNITS = {
  c: ["°C", 1, "Temperature"],
  f: ["°F", 1, "Temperature"],
  k: ["K", 1, "Temperature"],
  pct: ["%", 1, "Percent"],
  hpa: ["hPa", 1, "Pressure"],
  pa: ["Pa", 0, "Pressure"],
  rpm: ["rpm", 0, "Fan speed"],
  w: ["W", 1, "Power"],
  mw: ["mW", 0, "Power"],
  v: ["V", 3, "Voltage"],
  mv: ["mV", 0, "Voltage"],
  a: ["A", 2, "Current"],
  ma: ["mA", 0, "Current"],
  hz: ["Hz", 0, "Frequency"],
  mhz: ["MHz", 0, "Frequency"],
  bool: ["", 0, "State"],
  count: ["", 0, "Count"],
  s: ["s", 1, "Duration"],
  ms: ["ms", 0, "Duration"],
  bytes: ["B", 0, "Bytes"],
  lux: ["lx", 0, "Illuminance"],
  ppm: ["ppm", 0, "Concentration"],
  ppb: ["ppb", 0, "Concentration"],
  db: ["dB", 1, "Level"],
  j: ["J", 1, "Energy"],
  kwh: ["kWh", 2, "Energy"],
  m: ["m", 2, "Distance"],
  mm: ["mm", 0, "Distance"],
  ugm3: ["µg/m³", 0, "Particulates"],
  idx: ["", 0, "Index"],
};
// Longest first, so "_mhz" wins over "_hz" and "_mw" over "_w".
const SUFFIXES = Object.keys(UNITS).sort((a, b) => b.length - a.length);

/** The unit suffix of a metric name ("temperature_c" -> "c"), or "" when it has none. */
export function unitOf(metric) {
  for (const suffix of SUFFIXES) {
    if (metric.endsWith(`_${suffix}`)) return suffix;
  }
  return "";
}

const RANK = Object.fromEntries(Object.keys(UNITS).map((unit, i) => [unit, i]));

/** Where a unit sorts on the page: temperatures first, then humidity, pressure, fans, power... */
export function unitRank(unit) {
  return RANK[unit] ?? Object.keys(UNITS).length;
}

/** The symbol printed after a value of this unit ("°C"); empty for on/off and counts. */
export function unitSymbol(unit) {
  return UNITS[unit]?.[0] ?? unit;
}

/** What a chart of this unit shows, for its caption ("Temperature"). */
export function unitLabel(unit) {
  return UNITS[unit]?.[2] ?? unit.toUpperCase();
}

/** "temperature_c" -> "Temperature", "fan2_rpm" -> "Fan 2", "cpu_temp_c" -> "CPU temp". */
export function metricLabel(metric) {
  const unit = unitOf(metric);
  const stem = unit ? metric.slice(0, -unit.length - 1) : metric;
  const words = stem
    .replace(/([a-z])(\d)/g, "$1 $2")
    .split("_")
    .filter(Boolean)
    .map((w) => (ACRONYMS.has(w) ? w.toUpperCase() : w));
  if (!words.length) return metric;
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
const ACRONYMS = new Set(["cpu", "gpu", "soc", "ppt", "nvme", "ssd", "hdd", "pch"]);

const formatters = new Map();
function numberFormat(digits) {
  // Intl is slow to construct and fast to use: keep one per precision.
  if (!formatters.has(digits)) {
    formatters.set(
      digits,
      new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }),
    );
  }
  return formatters.get(digits);
}

/** A value as a person reads it, without its unit: 21.53 °C -> "21.5", 812 rpm -> "812". */
export function formatValue(unit, value, decimals) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  if (unit === "bool") return value ? "on" : "off";
  if (unit === "bytes") return formatBytes(value);
  if (Number.isInteger(decimals)) return numberFormat(decimals).format(value);
  let digits = UNITS[unit]?.[1] ?? 2;
  // A tiny non-zero value (0.004 W) would print as 0.0: give it the digits to show.
  if (value !== 0 && Math.abs(value) < 0.5 * 10 ** -digits) digits += 2;
  return numberFormat(digits).format(value);
}

function formatBytes(value) {
  const steps = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < steps.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${numberFormat(i ? 1 : 0).format(v)} ${steps[i]}`;
}

/** The unit after a formatted value: nothing for bytes, which carry their own. */
export function valueSuffix(unit) {
  return unit === "bytes" ? "" : unitSymbol(unit);
}

/**
 * A value as a sensor's settings show it: `display` (from /api/sensors, absent
 * when the sensor shows its metrics as stored) converts it (°F, inHg, mmHg:
 * value * scale + offset) and may fix the decimals.
 */
export function formatShown(unit, value, display) {
  if (!display || typeof value !== "number") return formatValue(unit, value);
  return formatValue(unit, value * (display.scale ?? 1) + (display.offset ?? 0), display.decimals);
}

/** The unit printed after a value shown with `display`. */
export function shownSuffix(unit, display) {
  return display?.symbol ?? valueSuffix(unit);
}
