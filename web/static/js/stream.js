// One EventSource per tab, kept alive. The browser reconnects by itself (and
// sends Last-Event-ID) while readyState is CONNECTING; once it gives up
// (CLOSED: a non-200, a wrong content type) we open a new one with capped,
// jittered backoff and pass the last id as ?last_event_id= so nothing is missed.

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// Errors in a row without an open before we stop saying "reconnecting" and say
// plainly that the server cannot be reached.
const UNREACHABLE_AFTER = 2;

export class LiveStream {
  /**
   * @param {object} options
   * @param {URLSearchParams} options.filters  source/sensor filters for /stream
   * @param {(reading: object) => void} options.onReading
   * @param {(reason: string) => void} options.onReset  the server lost our position
   * @param {(state: string, detail: object) => void} options.onState
   * @param {(alert: object) => void} [options.onAlert]  an alert transition (`event: alert`)
   */
  constructor({ filters, onReading, onReset, onState, onAlert = () => {} }) {
    this.filters = filters;
    this.onReading = onReading;
    this.onAlert = onAlert;
    this.onReset = onReset;
    this.onState = onState;
    this.source = null;
    this.lastId = null;
    this.failures = 0;
    this.retryTimer = null;
    this.retryAt = 0;
  }

  /** Open the stream (again), resuming after the last event seen. */
  open() {
    this.close();
    const query = new URLSearchParams(this.filters);
    if (this.lastId) query.set("last_event_id", this.lastId);
    const qs = query.toString();
    const url = qs ? `stream?${qs}` : "stream";
    const source = new EventSource(url);
    this.source = source;
    this.setState(this.failures ? "reconnecting" : "connecting");
    source.addEventListener("open", () => {
      this.failures = 0;
      this.setState("live");
    });
    source.addEventListener("reading", (event) => this.handleReading(event));
    source.addEventListener("reset", (event) => this.onReset(event.data || ""));
    source.addEventListener("alert", (event) => this.handleAlert(event));
    source.addEventListener("error", () => this.handleError(source));
  }

  handleReading(event) {
    if (event.lastEventId) this.lastId = event.lastEventId;
    let reading;
    try {
      reading = JSON.parse(event.data);
    } catch {
      console.warn("stream: an event that is not JSON was ignored");
      return;
    }
    if (reading && typeof reading === "object" && reading.values) this.onReading(reading);
  }

  handleAlert(event) {
    try {
      this.onAlert(JSON.parse(event.data));
    } catch {
      console.warn("stream: an alert that is not JSON was ignored");
    }
  }

  handleError(source) {
    if (source !== this.source) return;
    this.failures += 1;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up for good: retry ourselves, later each time.
      this.scheduleRetry();
    } else {
      this.setState(this.failures >= UNREACHABLE_AFTER ? "offline" : "reconnecting");
    }
  }

  scheduleRetry() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
    // Jitter, so a restarted server is not hit by every tab in the same second.
    const delay = base / 2 + Math.random() * (base / 2);
    this.close();
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState("offline");
  }

  /** Retry at once (the "Retry now" button, the network coming back). */
  retryNow() {
    if (this.source && this.source.readyState === EventSource.OPEN) return;
    this.open();
  }

  /**
   * Follow the page's life: retry when the network is back; leaving closes the
   * stream at once (the server frees the slot), and coming back from the
   * back/forward cache opens it again, resuming after the last id.
   */
  followPage() {
    addEventListener("online", () => this.retryNow());
    addEventListener("pagehide", () => this.close());
    addEventListener("pageshow", (event) => {
      if (event.persisted) this.open();
    });
    return this;
  }

  close() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  setState(state) {
    this.state = state;
    this.onState(state, { retryAt: this.retryAt, failures: this.failures });
  }
}
