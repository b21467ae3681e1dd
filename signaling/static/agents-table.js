// The real-time agents table: search, filter by state and queue, sort by any column. The choices live here,
// not in the DOM rows, so every live update (a NOTIFY replaces all rows) is drawn with them again; focus
// stays on the control it was on.

import { serverClock, sinceSpan } from "./clock.js";
import { $, esc } from "./dom.js";

export const STATE_ORDER = { "on-call": 0, ringing: 1, available: 2, away: 3, offline: 4 };
export const STATE_LABEL = { "on-call": "☎ On a call", ringing: "☎ Ringing", available: "● Available", away: "◐ Away", offline: "○ Offline" };
const MODE_WORD = { monitor: "listening", barge: "barging", coach: "coaching" };
const CHAT_WORD = { monitor: "reading chat", barge: "writing in chat", coach: "coaching in chat" };
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** Rows as the server sends them, with `since` / `callSince` (server epoch seconds) filled in. */
export function normalise(rows, now = serverClock.now()) {
  return rows.map((a) => ({
    ...a,
    since: a.state_since ?? (a.state === "on-call" && a.call_duration_s != null ? now - a.call_duration_s : null),
    callSince: a.answered_at ?? (a.call_duration_s != null ? now - a.call_duration_s : null),
  }));
}

export function matches(a, { search = "", state = "", queue = "" }) {
  if (state && a.state !== state) return false;
  if (queue && a.queue !== queue) return false;
  if (!search) return true;
  const hay = [a.display_name, a.agent, a.customer, a.customer_name, a.queue, ...(a.supervisors || []).map((s) => s.user)]
    .filter(Boolean).join(" ").toLowerCase();
  return search.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
}

const KEYS = {
  name: (a) => a.display_name || a.agent,
  state: (a) => STATE_ORDER[a.state] ?? 9,
  since: (a) => (a.since == null ? Infinity : -a.since),  // longest in state first when ascending
  queue: (a) => a.queue || "",
  customer: (a) => a.customer_name || a.customer || "",
  duration: (a) => (a.callSince == null ? Infinity : -a.callSince),
  supervision: (a) => -(a.supervisors || []).length,
};

function compare(x, y) {
  if (typeof x === "number" && typeof y === "number") return x === y ? 0 : x < y ? -1 : 1;
  return collator.compare(String(x), String(y));
}

/** Sorted copy. "default": offline agents last, then by name. Ties keep the name order. */
export function sortRows(rows, { key = "default", dir = "asc" } = {}) {
  const byName = (a, b) => compare(KEYS.name(a), KEYS.name(b));
  const sign = dir === "desc" ? -1 : 1;
  return [...rows].sort((a, b) => {
    if (key === "default") {
      const off = (a.state === "offline") - (b.state === "offline");
      return off || sign * byName(a, b);
    }
    const f = KEYS[key] || KEYS.name;
    const va = f(a), vb = f(b);
    const blank = (v) => v === "" || v === Infinity;
    if (blank(va) !== blank(vb)) return blank(va) ? 1 : -1;  // empty cells last either way
    return sign * compare(va, vb) || byName(a, b);
  });
}

export class AgentsTable {
  /** `actionFor(row)` returns the action cell's HTML (the supervisor view decides what may be done). */
  constructor({ actionFor, onAction }) {
    this.actionFor = actionFor;
    this.rows = [];
    this.opts = { search: "", state: "", queue: "", key: "default", dir: "asc" };
    this.body = $("agents-body");
    $("agent-search").addEventListener("input", (ev) => this.set({ search: ev.target.value.trim() }));
    $("agent-filter-state").addEventListener("change", (ev) => this.set({ state: ev.target.value }));
    $("agent-filter-queue").addEventListener("change", (ev) => this.set({ queue: ev.target.value }));
    $("agent-sort").addEventListener("change", (ev) => this.set({ key: ev.target.value, dir: "asc" }));
    $("agent-sort-dir").addEventListener("click", () => this.set({ dir: this.opts.dir === "asc" ? "desc" : "asc" }));
    for (const th of document.querySelectorAll("table.agents th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        this.set(key === this.opts.key ? { dir: this.opts.dir === "asc" ? "desc" : "asc" } : { key, dir: "asc" });
      });
    }
    this.body.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-call]");
      if (b && !b.disabled) onAction(b.dataset.call, b);
    });
  }

  setQueues(queues) {
    const sel = $("agent-filter-queue");
    sel.innerHTML = `<option value="">all</option>` + queues.map((q) => `<option>${esc(q)}</option>`).join("");
    sel.value = this.opts.queue;
  }

  setRows(rows) {
    this.rows = normalise(rows);
    this.render();
  }

  set(changes) {
    Object.assign(this.opts, changes);
    this.render();
  }

  visible() { return sortRows(this.rows.filter((a) => matches(a, this.opts)), this.opts); }

  render() {
    const focusKey = document.activeElement?.closest?.("#agents-body [data-key]")?.dataset.key;
    const rows = this.visible();
    if (!this.rows.length) this.body.innerHTML = `<tr><td colspan="8" class="muted">No agents</td></tr>`;
    else if (!rows.length) this.body.innerHTML = `<tr><td colspan="8" class="muted">No agent matches the search and filters.</td></tr>`;
    else this.body.innerHTML = rows.map((a) => this.rowHtml(a)).join("");
    if (focusKey) {
      const again = this.body.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)
        || this.body.querySelector(`[data-key="${CSS.escape("row:" + focusKey.split(":").slice(1).join(":"))}"]`);
      if (again) again.focus();
    }
    this.showControls(rows.length);
  }

  showControls(shown) {
    const { key, dir } = this.opts;
    $("agent-sort").value = key;
    const dirButton = $("agent-sort-dir");
    dirButton.textContent = dir === "asc" ? "↑ asc" : "↓ desc";
    dirButton.setAttribute("aria-label", `sort direction: ${dir === "asc" ? "ascending" : "descending"}`);
    for (const th of document.querySelectorAll("table.agents th[data-sort]")) {
      if (th.dataset.sort === key) th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    const text = `Showing ${shown} of ${this.rows.length} agents`;
    if ($("agents-count").textContent !== text) $("agents-count").textContent = text;
  }

  rowHtml(a) {
    const flags = (who) => {
      const p = (a.participants || []).find((q) => q.user === who);
      if (!p) return "";
      return `${p.muted ? ' <span class="flag muted-flag">muted</span>' : ""}${p.held ? ' <span class="flag held-flag">on hold</span>' : ""}`;
    };
    const sups = [...(a.supervisors || []).map((s) =>
      `<span class="badge ${esc(s.mode)}">${esc(s.user)} · ${MODE_WORD[s.mode] || esc(s.mode)}</span>`),
    ...(a.chats || []).flatMap((c) => (c.supervisors || []).map((s) =>
      `<span class="badge ${esc(s.mode)}">💬 ${esc(s.user)} · ${CHAT_WORD[s.mode] || esc(s.mode)}</span>`))].join(" ");
    const customer = a.customer ? `${esc(a.customer_name || a.customer)}${flags(a.customer)}` : "";
    return `<tr class="${esc(a.state)}${a.mine ? " mine" : ""}" data-agent="${esc(a.agent)}">
      <td class="c-name"><span class="agent-name" tabindex="-1" data-key="row:${esc(a.agent)}">${esc(a.display_name || a.agent)}</span>${flags(a.agent)}<span class="agent-id">${esc(a.agent)}</span></td>
      <td class="c-state"><span class="badge ${esc(a.state)}">${esc(STATE_LABEL[a.state] || a.state)}</span></td>
      <td class="c-since" data-label="In state">${sinceSpan(a.since)}</td>
      <td class="c-queue" data-label="Queue">${esc(a.queue)}</td>
      <td class="c-customer" data-label="Customer">${customer}</td>
      <td class="c-duration" data-label="Contact">${a.state === "on-call" ? sinceSpan(a.callSince) : ""}</td>
      <td class="c-sup" data-label="Supervision">${sups}</td>
      <td class="c-action action-cell">${this.actionFor(a)}</td></tr>`;
  }
}
