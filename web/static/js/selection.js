// Which sensors a page shows, and as what: the ?source= / ?sensor= filters of
// its URL (comma lists, passed on to /stream) and each sensor's settings from
// the last /api/sensors snapshot. The dashboard and /display both use it
// (docs/architecture.md, "Data path").

/** The page's filters, as /stream takes them. */
export function pageFilters() {
  const query = new URLSearchParams(location.search);
  const filters = new URLSearchParams();
  for (const name of ["source", "sensor"]) if (query.get(name)) filters.set(name, query.get(name));
  return filters;
}

/** Whether a source/sensor passes the filters. */
export function wanted(filters, source, sensor) {
  const match = (name, value) => {
    const list = filters.get(name);
    return !list || list.split(",").map((s) => s.trim()).includes(value);
  };
  return match("source", source) && match("sensor", sensor);
}

/** Whether a snapshot item (or a reading, with `reading`) names a sensor and passes the filters. */
export function accepted(filters, item, { reading = false } = {}) {
  if (!item || typeof item.source !== "string" || typeof item.sensor !== "string") return false;
  if (!wanted(filters, item.source, item.sensor)) return false;
  return !reading || (typeof item.ts === "number" && item.values && typeof item.values === "object");
}

/** Each sensor's settings and metric displays from the last snapshot, by "source/sensor". */
export class Chosen extends Map {
  /** Remember a snapshot item's settings; true when they changed since the last one. */
  note(item) {
    const key = `${item.source}/${item.sensor}`;
    const displays = Object.fromEntries(
      Object.entries(item.metrics || {}).map(([metric, info]) => [metric, info?.display]),
    );
    const signature = JSON.stringify([item.settings || {}, displays]);
    const known = this.get(key);
    this.set(key, { settings: item.settings || {}, displays, signature });
    return Boolean(known) && known.signature !== signature;
  }
}
