// The HTTP side (docs/architecture.md, "HTTP interface"): the sensor list and one
// downsampled metric. Everything else arrives on the stream.

/** The range selector's choices: how far back each reaches, in seconds (all: to the first data). */
export const RANGES = {
  live: 15 * 60, // the live view keeps a moving 15-minute window
  "1h": 3600,
  "24h": 86400,
  "7d": 7 * 86400,
  "30d": 30 * 86400,
  "90d": 90 * 86400,
  "1y": 365 * 86400,
  all: Infinity, // since=0: the server starts each series at its first data
};

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let reason = `HTTP ${response.status}`;
    try {
      reason = (await response.json()).error || reason;
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(`${url.split("?")[0]}: ${reason}`);
  }
  return response.json();
}

/**
 * Every known sensor, and the unit table:
 * {sensors: [{source, sensor, metrics: {name: {last, unit}}, last_seen, last_error}], units}.
 */
export async function fetchSensors() {
  const body = await getJSON("api/sensors");
  return { sensors: Array.isArray(body.sensors) ? body.sensors : [], units: body.units };
}

/** One metric's buckets [{t, min, avg, max, n}] between two Unix times. */
export async function fetchSeries({ source, sensor, metric, since, until, points }) {
  const query = new URLSearchParams({
    source,
    sensor,
    metric,
    since: String(Math.floor(since)),
    until: String(Math.ceil(until)),
    points: String(points),
  });
  const body = await getJSON(`api/series?${query}`);
  return Array.isArray(body.buckets) ? body.buckets : [];
}

/** The CSV export of what a sensor's charts show, for a download link (streamed, any span). */
export function exportUrl(source, sensor, since, until) {
  const query = new URLSearchParams({
    source,
    sensor,
    since: String(Math.floor(since)),
    until: String(Math.ceil(until)),
    // Names and units as the sensor's settings show them (the plain export is the importable one).
    display: "1",
  });
  return `api/export.csv?${query}`;
}
