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

/** A message at the top of the page; it stays until dismissed, replaced, or the next action succeeds. */
export function banner(text, kind = "") {
  $("banner-text").textContent = text;
  $("banner").className = "banner " + kind;
  $("banner").hidden = false;
}

export function hideBanner() { $("banner").hidden = true; }

/** Says `text` to screen readers (a polite live region), even when it repeats. */
export function announce(text) {
  const region = $("announce");
  region.textContent = "";
  requestAnimationFrame(() => { region.textContent = text; });
}

/** Shows a toggle button's state as the server reports it: its label says what a press does next. */
export function showToggle(button, on, labels) {
  button.textContent = on ? labels[1] : labels[0];
  button.classList.toggle("on", on);
  button.dataset.on = String(on);
}
