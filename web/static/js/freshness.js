// When a sensor counts as stale (docs/display.md, "Stale sensors"): silent
// for 3 of its intervals, the interval learned from its readings' own times
// (30 s while unknown). Shared by the dashboard's cards and the display's tiles.

export const STALE_INTERVALS = 3;
export const UNKNOWN_INTERVAL_S = 30;
// A fresh reading counts from when it arrived, so a producer whose clock is
// off by a few seconds is not shown as stale; an old replayed one by its own time.
const CLOCK_SKEW_S = 60;

/** "12 s", "5 min", "3 h", "2 d": how long a sensor has been silent. */
export function formatSilence(seconds) {
  if (!Number.isFinite(seconds)) return "a long time";
  // Five-second steps: a page that shows a silent sensor repaints once every
  // five seconds, not every second.
  if (seconds < 5) return `${Math.max(1, Math.floor(seconds))} s`;
  if (seconds < 90) return `${Math.floor(seconds / 5) * 5} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** Seconds until the silence text next changes (it counts seconds, then minutes...). */
function nextChange(seconds) {
  if (seconds < 5) return 1 - (seconds % 1);
  if (seconds < 90) return 5 - (seconds % 5);
  if (seconds < 90 * 60) return 60 - (seconds % 60);
  return 3600 - (seconds % 3600);
}

export class Freshness {
  /** @param {(stale: boolean, silence: string) => void} onChange  called when either changes */
  constructor(onChange) {
    this.onChange = onChange;
    this.lastTs = NaN; // the newest reading's own time
    this.lastSeen = NaN; // when it was heard, on this page's clock
    this.interval = NaN; // seconds between readings, smoothed
    this.timer = 0;
    this.stale = null;
    this.silence = "";
  }

  /** Seconds of silence after which the sensor is stale. */
  get limit() {
    return STALE_INTERVALS * (Number.isFinite(this.interval) ? this.interval : UNKNOWN_INTERVAL_S);
  }

  /** A live reading measured at `ts` arrived at `now` (both Unix seconds). */
  reading(ts, now) {
    if (Number.isFinite(this.lastTs) && ts > this.lastTs) {
      const delta = ts - this.lastTs;
      // Smoothed, so one late reading does not shift the limit much; a replayed
      // burst still carries the true spacing, being measured by its own times.
      this.interval = Number.isFinite(this.interval) ? this.interval * 0.8 + delta * 0.2 : delta;
    }
    if (!(ts <= this.lastTs)) this.lastTs = ts;
    this.heard(Math.abs(now - ts) < CLOCK_SKEW_S ? now : ts, now);
  }

  /** The sensor was last heard at `ts` (from a snapshot); never moves back. */
  heard(ts, now) {
    if (Number.isFinite(ts) && !(ts <= this.lastSeen)) this.lastSeen = ts;
    this.check(now);
  }

  /** Re-judge now, and arm a timer for the moment the answer next changes. */
  check(now) {
    clearTimeout(this.timer);
    const age = now - this.lastSeen;
    const stale = !(age < this.limit);
    const silence = stale ? formatSilence(age) : "";
    if (stale !== this.stale || silence !== this.silence) {
      this.stale = stale;
      this.silence = silence;
      this.onChange(stale, silence);
    }
    if (!Number.isFinite(age)) return;
    const wait = stale ? nextChange(age) : this.limit - age;
    this.timer = setTimeout(() => this.check(Date.now() / 1000), Math.max(50, wait * 1000));
  }

  stop() {
    clearTimeout(this.timer);
  }
}
