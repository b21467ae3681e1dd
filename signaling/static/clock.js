// The server's clock as seen from this page. Durations (time in state, call time, longest wait) are
// computed from the server's timestamps against this clock, every second, so every page shows the same
// figure whether or not an event arrived.

import { formatDuration } from "./dom.js";

export const TICK_MS = 1000;

export const serverClock = {
  offset: 0,  // seconds to add to this machine's clock to read the server's
  /** `serverTime` (epoch seconds) was read by the server between `sentAt` and `receivedAt` (ms, Date.now()). */
  sync(serverTime, sentAt, receivedAt) {
    if (typeof serverTime !== "number") return;
    this.offset = serverTime - (sentAt + receivedAt) / 2000;
  },
  now() { return Date.now() / 1000 + this.offset; },
};

/** Seconds since `since` (server epoch seconds) as m:ss; "" when unknown. */
export const elapsed = (since) => (since == null ? "" : formatDuration(serverClock.now() - since));

/** `<span data-since="…">` shows the time elapsed since then and is refreshed by tick(). */
export const sinceSpan = (since, cls = "timer", label = "") =>
  since == null ? "" : `<span class="${cls}" data-since="${since}"${label ? ` aria-label="${label}"` : ""}>${elapsed(since)}</span>`;

export function tick(root = document) {
  for (const el of root.querySelectorAll("[data-since]")) {
    const text = elapsed(Number(el.dataset.since));
    if (el.textContent !== text) el.textContent = text;
  }
}
