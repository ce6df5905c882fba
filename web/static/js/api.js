// The HTTP side of the contract (DESIGN.md section 4): the sensor list and one
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

async function getJSON(url, signal) {
  const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
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

/** Every known sensor: [{source, sensor, metrics: {name: {last, unit?}}, last_seen, last_error}]. */
export async function fetchSensors(signal) {
  const body = await getJSON("api/sensors", signal);
  return Array.isArray(body.sensors) ? body.sensors : [];
}

/** One metric's buckets [{t, min, avg, max, n}] between two Unix times. */
export async function fetchSeries({ source, sensor, metric, since, until, points }, signal) {
  const query = new URLSearchParams({
    source,
    sensor,
    metric,
    since: String(Math.floor(since)),
    until: String(Math.ceil(until)),
    points: String(points),
  });
  const body = await getJSON(`api/series?${query}`, signal);
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
