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

/** "5 s" / "3 min" since `since`: for "last change … ago", where m:ss reads oddly. */
export function ago(since) {
  const s = Math.max(0, Math.floor(serverClock.now() - since));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : formatDuration(s);
}

/** `<span data-since="…">` shows the time elapsed since then and is refreshed by tick(). */
export const sinceSpan = (since, cls = "timer", format = "") =>
  since == null ? "" : `<span class="${cls}" data-since="${since}"${format ? ` data-format="${format}"` : ""}>${
    format === "ago" ? ago(since) : elapsed(since)}</span>`;

export function tick(root = document) {
  for (const el of root.querySelectorAll("[data-since]")) {
    const since = Number(el.dataset.since);
    const text = el.dataset.format === "ago" ? ago(since) : elapsed(since);
    if (el.textContent !== text) el.textContent = text;
  }
}
