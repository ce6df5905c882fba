// The connection badge in the top bar: live, reconnecting, or offline with a
// countdown and a "Retry now" button. Text only; the colour comes from data-state.

import { unreachableLabel } from "./pwa.js";

const badge = document.getElementById("connection");
const text = badge.querySelector(".connection-text");
const countdown = badge.querySelector(".connection-countdown");
const retry = badge.querySelector(".connection-retry");

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

/** Show the stream's state; `retryAt` (ms) is when the next attempt is due, 0 if the browser retries. */
export function showConnection(state, { retryAt = 0 } = {}) {
  const label = state === "offline" ? unreachableLabel() : LABELS[state];
  if (!label) return;
  if (badge.dataset.state !== state) badge.dataset.state = state;
  if (text.textContent !== label) text.textContent = label;
  // The countdown ticks every second, outside the live region: a screen
  // reader hears "Server unreachable, retrying" once, not every second.
  const seconds = Math.ceil((retryAt - Date.now()) / 1000);
  const rest = state === "offline" ? (retryAt && seconds > 0 ? ` in ${seconds} s` : "…") : "";
  if (countdown.textContent !== rest) countdown.textContent = rest;
  retry.hidden = state !== "offline";
}
