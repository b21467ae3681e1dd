// Small DOM helpers shared by every view.

export const $ = (id) => document.getElementById(id);

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** m:ss (or h:mm:ss) for a number of seconds; "" when unknown. */
export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

export function banner(text, kind = "") {
  const b = $("banner");
  b.textContent = text;
  b.className = "banner " + kind;
  b.hidden = false;
}

export function hideBanner() { $("banner").hidden = true; }
