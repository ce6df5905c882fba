// One paced frame for the whole page. Every visual update (a value, a chart,
// a stale mark) is queued here and applied together in one animation frame,
// at most once per PACE_MS: each frame costs a repaint and a composite
// (about 1% of a core in headless Chromium, more on a Pi), so three sensors
// at 1 Hz cost one frame a second, not three. While the tab is hidden the
// updates only queue (a key keeps its newest) and no frame is asked for, not
// even where a browser would still give one; shown again, they are drawn in
// the next frame (docs/architecture.md, "Data path").

const PACE_MS = 1000;

const jobs = new Map(); // key -> function; a key queued twice runs once
let timer = 0;
let frame = 0;
let lastFlush = -Infinity;

function flush() {
  frame = 0;
  if (document.hidden) return; // kept for when the tab is shown
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
  if (timer || frame || document.hidden) return;
  const wait = Math.max(0, lastFlush + PACE_MS - performance.now());
  timer = setTimeout(() => {
    timer = 0;
    if (!document.hidden) frame = requestAnimationFrame(flush);
  }, wait);
}

/** Run `job` in the very next frame (a state change a person waits for, such as stale). */
export function soon(key, job) {
  jobs.set(key, job);
  if (frame || document.hidden) return;
  clearTimeout(timer);
  timer = 0;
  frame = requestAnimationFrame(flush);
}

// Shown again: what queued while hidden is drawn in the next frame.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && jobs.size && !frame) {
    clearTimeout(timer);
    timer = 0;
    frame = requestAnimationFrame(flush);
  }
});
