// One paced frame for the whole page. Every visual update (a value, a chart,
// a stale mark) is queued here and applied together in one animation frame,
// at most once per PACE_MS: each frame costs a repaint and a composite
// (about 1% of a core in headless Chromium, more on a Pi), so three sensors
// at 1 Hz cost one frame a second, not three. A hidden tab gets no animation
// frames, so nothing is drawn until it is shown again.

const PACE_MS = 1000;

const jobs = new Map(); // key -> function; a key queued twice runs once
let timer = 0;
let frame = 0;
let lastFlush = -Infinity;

function flush() {
  frame = 0;
  lastFlush = performance.now();
  const queued = [...jobs.values()];
  jobs.clear();
  for (const job of queued) {
    try {
      job();
    } catch (error) {
      console.error("update failed:", error);
    }
  }
}

/** Run `job` in the next paced frame; a later call with the same key replaces it. */
export function pace(key, job) {
  jobs.set(key, job);
  if (timer || frame) return;
  const wait = Math.max(0, lastFlush + PACE_MS - performance.now());
  timer = setTimeout(() => {
    timer = 0;
    frame = requestAnimationFrame(flush);
  }, wait);
}

/** Run `job` in the very next frame (a state change a person waits for, such as stale). */
export function soon(key, job) {
  jobs.set(key, job);
  if (frame) return;
  clearTimeout(timer);
  timer = 0;
  frame = requestAnimationFrame(flush);
}
