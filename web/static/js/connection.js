// The connection badge in the top bar: live, reconnecting, or offline with a
// countdown and a "Retry now" button. Text only; the colour comes from data-state.

const badge = document.getElementById("connection");
const text = badge.querySelector(".connection-text");
const retry = badge.querySelector(".connection-retry");

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

/** Show the stream's state; `retryAt` (ms) is when the next attempt is due, 0 if the browser retries. */
export function showConnection(state, { retryAt = 0 } = {}) {
  let label = LABELS[state];
  if (state === "offline") {
    const seconds = Math.ceil((retryAt - Date.now()) / 1000);
    label = retryAt && seconds > 0
      ? `Server unreachable, retrying in ${seconds} s`
      : "Server unreachable, retrying…";
  }
  if (!label) return;
  if (badge.dataset.state !== state) badge.dataset.state = state;
  if (text.textContent !== label) text.textContent = label;
  retry.hidden = state !== "offline";
}
