// The supervisor's console: summary tiles, the real-time agents table, and the call card of the session
// (monitor, barge, coach, leave; switching straight to another call), with keyboard shortcuts.

import { AgentsTable } from "./agents-table.js";
import { elapsed, serverClock, sinceSpan } from "./clock.js";
import { $, esc } from "./dom.js";
import { MicBlocked } from "./media.js";

const STATUS = { monitor: "Monitoring", barge: "Barging", coach: "Coaching" };
const ICON = { monitor: "◎", barge: "●", coach: "◐" };
const HINT = {
  monitor: "You hear everyone. Nobody hears you; your microphone is off.",
  barge: "Agent and customer both hear you.",
  coach: "Only the agent hears you; the customer does not.",
};
const SHORTCUTS = { m: "monitor", b: "barge", c: "coach" };
const LEVELS_STALE_MS = 2000;  // the server reports ~5 times a second while anyone makes a sound

/** Width (percent) of a participant's level bar: -60 dBFS .. 0 dBFS of the RMS the server measured. */
export const levelPercent = (level) => Math.round(Math.min(100, Math.max(0, (20 * Math.log10(level + 1e-9) + 60) / 60 * 100)));

/** A participant's talking indicator (filled in by showLevels). */
const talkHtml = (user) => `<span class="speaking" data-talk="${esc(user)}" data-talking="false">`
  + `<span class="talk-icon" aria-hidden="true">○</span><span class="lvl" aria-hidden="true"><span></span></span>`
  + `<span class="talk-word">quiet</span></span>`;

/** Server refusals in plain words (the server's own words stay in the activity log). */
export function plainReason(reason) {
  if (/lacks realtime_barge/.test(reason)) return "your profile lets you listen only; barging and coaching need the barge permission";
  if (/enhanced monitoring/i.test(reason)) return "barging and coaching are switched off on this contact center (enhanced monitoring is off)";
  return reason;
}

export class SupervisorView {
  constructor(ctx) {
    this.ctx = ctx;
    this.client = ctx.client;
    this.media = ctx.media;
    this.callId = null;
    this.mode = null;
    this.session = null;      // {agent, agentName, customer, queue, answeredAt} of the call being supervised
    this.agents = [];
    this.calls = [];
    this.parties = [];
    this.others = [];         // other supervisors on the same call
    this.levels = new Map();  // user -> {level, talking}: NOTIFY levels (server-side, per participant)
    this.levelsAt = 0;
    this.busy = false;        // a mode change or a switch in flight
    this.lastChange = null;
    this.table = new AgentsTable({ actionFor: (a) => this.actionFor(a), onAction: (callId) => this.monitor(callId) });
    $("mode").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-mode]");
      if (b && !b.disabled) this.changeMode(b.dataset.mode);
    });
    $("session-participants").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b && !b.disabled) this.actOn(b);
    });
    $("leave").onclick = () => this.leave();
    // a live chat: one click opens it in the chat panel (from the agent's row or the live chats tile)
    $("agents-body").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-open-chat]");
      if (b) this.openChat(b.dataset.openChat);
    });
    $("tiles").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-open-chat]");
      if (b) this.openChat(b.dataset.openChat);
    });
    document.addEventListener("keydown", (ev) => this.onKey(ev));
    setInterval(() => {  // nothing heard from the server for a while: nobody is talking
      if (this.levels.size && Date.now() - this.levelsAt > LEVELS_STALE_MS) { this.levels.clear(); this.showLevels(); }
    }, 500);
  }

  async start(reg) {
    this.canBarge = reg.permissions.includes("realtime_barge") && reg.enhanced_monitoring !== false;
    this.noBargeReason = !reg.permissions.includes("realtime_barge")
      ? `Barge and coach are off for you: your profile (${reg.profile}) lets you listen only. Ask an administrator for the barge permission.`
      : "Barge and coach are switched off on this contact center (enhanced monitoring is off); you can still listen.";
    $("idle-profile-note").textContent = this.canBarge ? "" : this.noBargeReason;
    this.showModeButtons();
    this.table.setQueues(reg.queues || []);
    const s = await this.client.request("SUBSCRIBE", { event: "agents" });
    if (s.status !== 200) this.ctx.banner(`Agents view unavailable: ${s.reason}`);
    const c = await this.client.request("SUBSCRIBE", { event: "calls" });
    if (c.status !== 200) this.ctx.log(`Calls view unavailable: ${c.reason}`);
  }

  onRequest(msg) {
    if (msg.method === "INVITE") this.client.respond(msg, 603);  // supervisors take no calls
  }

  onNotify(msg) {
    if (msg.event === "agents") {
      this.agents = msg.agents;
      this.lastChange = serverClock.now();
      this.renderAgents();
    } else if (msg.event === "calls") {
      this.calls = msg.calls;
      this.renderTiles();
    } else if (msg.event === "call-state" && msg.call_id === this.callId) {
      this.parties = (msg.participants || []).filter((p) => p.role !== "supervisor");
      this.others = (msg.supervisors || []).filter((s) => s.user !== this.ctx.me.user);
      if (this.session && typeof msg.answered_at === "number") this.session.answeredAt = msg.answered_at;
      this.renderSession();
    } else if (msg.event === "levels" && msg.call_id === this.callId) {
      this.levels = new Map((msg.levels || []).map((l) => [l.user, l]));
      this.levelsAt = Date.now();
      this.showLevels();
    } else if (msg.event === "session-ended") {
      const text = `Monitoring ended: ${msg.reason}`;
      this.ctx.banner(text);
      this.ctx.log(`Session on ${msg.call_id} ended: ${msg.reason}`);
      this.ctx.announce(text);
      this.clear();
    }
  }

  onClose() { this.clear(); }

  // ---------------------------------------------------------------- actions
  async monitor(callId) {
    if (this.busy || callId === this.callId) return;
    this.busy = true;
    try {
      if (this.callId) {
        this.ctx.log(`Switching from ${this.callId} to ${callId}`);
        await this.leave({ quiet: true });
      }
      this.ctx.hideBanner();
      const row = this.agents.find((a) => a.call_id === callId);
      const pc = this.media.newPeer(this.media.silentTrack());  // nobody hears a monitor: no microphone
      const sdp = await this.media.offer(pc);
      const r = await this.client.request("INVITE", { to: `call:${callId}`, mode: "monitor", sdp });
      if (r.status !== 200) {
        this.media.endCall();
        this.refused(`Could not monitor ${row ? `${row.display_name}'s call` : callId}: ${plainReason(r.reason)}`, r.reason);
        return;
      }
      this.callId = callId;  // before any await: the call-state NOTIFY follows the 200 at once
      this.session = { agent: row?.agent, agentName: row?.display_name || row?.agent || "", customer: row?.customer_name || row?.customer || "",
        queue: row?.queue || "", answeredAt: row?.answered_at ?? (row?.call_duration_s != null ? serverClock.now() - row.call_duration_s : null) };
      this.parties = (r.participants || []).filter((p) => p.role !== "supervisor");
      this.showMode("monitor");
      await this.media.answer(r.sdp);
      this.renderSession();
      this.renderAgents();
      $("session-heading").focus();
      this.ctx.log(`Monitoring ${callId}`);
      this.ctx.announce(`Monitoring ${this.session.agentName}'s call with ${this.session.customer}. Nobody hears you. `
        + (this.canBarge ? "Press B to barge, C to coach, L to leave." : "Press L to leave."));
    } finally {
      this.busy = false;
    }
  }

  async changeMode(mode) {
    if (!this.callId) { this.ctx.announce("You are not on a call: choose Monitor on an agent's row first."); return; }
    if (mode === this.mode) { this.ctx.announce(`Already ${STATUS[mode].toLowerCase()}.`); return; }
    if (mode !== "monitor" && !this.canBarge) {  // explained in the log and aloud; no banner that stays
      this.ctx.log(`${STATUS[mode]} is not available: ${this.noBargeReason}`);
      this.ctx.announce(this.noBargeReason);
      return;
    }
    if (this.busy) return;
    this.busy = true;
    try {
      if (mode !== "monitor") {
        try { await this.media.sendMic(); } catch (e) {
          if (!(e instanceof MicBlocked)) throw e;
          this.ctx.banner("No microphone: nobody can hear you while you barge or coach. Allow the microphone for this site.", "info");
        }
      }
      const r = await this.client.request("INFO", { call_id: this.callId, action: "mode", mode });
      if (r.status === 200) {
        if (mode === "monitor") await this.media.sendSilence();
        if (mode === "monitor" || !this.media.blocked) this.ctx.hideBanner();
        this.showMode(mode);
        this.ctx.log(`Now ${STATUS[mode].toLowerCase()} on ${this.callId}`);
        this.ctx.announce(`${STATUS[mode]}. ${HINT[mode]}`);
      } else {
        if (this.mode === "monitor") await this.media.sendSilence();
        this.refused(`${STATUS[mode]} refused: ${plainReason(r.reason)}. You are still ${STATUS[this.mode].toLowerCase()}.`, r.reason);
      }
    } finally {
      this.busy = false;
    }
  }

  async actOn(button) {
    if (!this.callId) return;
    const { act, user } = button.dataset;
    const fields = { call_id: this.callId, action: act, target: user };
    if (act === "mute") fields.value = button.dataset.value === "true";
    const r = await this.client.request("INFO", fields);
    if (r.status !== 200) this.refused(`Could not ${act} ${user}: ${plainReason(r.reason)}`, r.reason);
    else this.ctx.log(`${act === "drop" ? "Dropped" : fields.value ? "Muted" : "Unmuted"} ${user}`);
  }

  async leave({ quiet = false } = {}) {
    if (!this.callId) { if (!quiet) this.ctx.announce("You are not on a call."); return; }
    const id = this.callId;
    const r = await this.client.request("BYE", { call_id: id });
    this.ctx.log(`Left ${id}`);
    this.clear();
    if (r.status !== 200 && r.status !== 481) this.refused(`Leaving was not confirmed: ${r.reason}`, r.reason);
    if (!quiet) {
      this.ctx.announce("You left the call; it goes on without you. Your microphone is off.");
      $("session-heading-idle").focus();
    }
  }

  refused(text, serverReason) {
    this.ctx.banner(text);
    this.ctx.log(serverReason && !text.includes(serverReason) ? `${text} (server: ${serverReason})` : text);
    this.ctx.announce(text);
  }

  clear() {
    this.media.endCall();
    this.callId = null;
    this.mode = null;
    this.session = null;
    this.parties = [];
    this.others = [];
    this.levels.clear();
    this.renderSession();
    this.renderAgents();
  }

  onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const t = ev.target;
    if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName))) return;
    const key = ev.key.toLowerCase();
    if (key === "/") { ev.preventDefault(); $("agent-search").focus(); return; }
    if (key === "l") { ev.preventDefault(); this.leave(); return; }
    const mode = SHORTCUTS[key];
    if (!mode) return;
    ev.preventDefault();
    if (mode === "monitor" && !this.callId) this.monitorFromKeyboard();
    else this.changeMode(mode);
  }

  /** M with no session: monitor the call of the row that has focus, else the first call the table shows. */
  monitorFromKeyboard() {
    const focused = document.activeElement?.closest?.("tr[data-agent]");
    const button = focused?.querySelector("button[data-call]:not([disabled])")
      || $("agents-body").querySelector("button[data-call]:not([disabled])");
    if (button) this.monitor(button.dataset.call);
    else this.ctx.announce("No call to monitor right now.");
  }

  /** Opens a live chat read-only in the chat panel (or goes to it when it is already open). */
  async openChat(id) {
    const chats = this.ctx.chats;
    if (!chats) return;
    if (!chats.chats.has(id)) {
      await chats.open(id);
      if (chats.chats.has(id)) { this.ctx.log(`Reading chat ${id}`); this.ctx.announce(`Chat ${id} opened, read only. Barge to write.`); }
    }
    chats.focus(id);
    this.renderAgents();
  }

  liveChats() { return this.agents.flatMap((a) => (a.chats || []).filter((c) => c.state === "active").map((c) => ({ ...c, agent: a }))); }

  chatActions(a) {
    return (a.chats || []).filter((c) => c.state === "active").map((c) => {
      const id = esc(c.contact_id), who = esc(c.customer);
      if (this.ctx.chats?.chats.has(c.contact_id)) {
        return `<button class="mini chat-open here-chat" data-open-chat="${id}" data-key="chat:${id}"
          aria-label="Go to the open chat ${id} with ${who}" title="chat with ${who}">✉ Reading chat</button>`;
      }
      return `<button class="mini chat-open" data-open-chat="${id}" data-key="chat:${id}" title="chat with ${who}"
        aria-label="Open ${esc(a.display_name || a.agent)}'s chat with ${who} (read only)">✉ Open chat</button>`;
    }).join("");
  }

  // ---------------------------------------------------------------- drawing
  actionFor(a) {
    const chats = this.chatActions(a);
    const voice = this.voiceAction(a);
    return `${voice}${chats ? `<div class="chat-acts">${chats}</div>` : ""}`;
  }

  voiceAction(a) {
    if (!a.call_id || a.state !== "on-call") return "";
    const name = esc(a.display_name || a.agent);
    if (a.call_id === this.callId) return `<span class="here" data-key="here:${esc(a.agent)}" tabindex="-1">◉ You are ${STATUS[this.mode]?.toLowerCase() || "here"}</span>`;
    if (a.monitoring_allowed === false) {
      const id = `nomon-${esc(a.agent)}`;
      return `<button class="monitor-btn" data-call="${esc(a.call_id)}" data-key="mon:${esc(a.agent)}" disabled aria-describedby="${id}">Monitor</button>
        <span class="no-monitor" id="${id}">monitoring is not allowed in queue ${esc(a.queue)}</span>`;
    }
    if (this.callId) {
      return `<button class="monitor-btn switch" data-call="${esc(a.call_id)}" data-key="mon:${esc(a.agent)}"
        aria-label="Leave your current call and monitor ${name}'s call">Switch here</button>`;
    }
    return `<button class="monitor-btn" data-call="${esc(a.call_id)}" data-key="mon:${esc(a.agent)}"
      aria-label="Monitor ${name}'s call${a.customer ? ` with ${esc(a.customer_name || a.customer)}` : ""}">Monitor</button>`;
  }

  renderAgents() {
    for (const a of this.agents) a.mine = Boolean(a.call_id && a.call_id === this.callId);
    this.table.setRows(this.agents);
    this.renderTiles();
    $("agents-updated").innerHTML = this.lastChange ? `live · last change ${sinceSpan(this.lastChange, "", "ago")} ago` : "";
    if (this.session) {  // keep the card's header in step with the table
      const row = this.agents.find((a) => a.call_id === this.callId);
      if (row) {
        this.session.agentName = row.display_name || row.agent;
        this.session.customer = row.customer_name || row.customer || this.session.customer;
        this.session.queue = row.queue || this.session.queue;
        if (row.answered_at != null) this.session.answeredAt = row.answered_at;
        this.renderSessionHead();
      }
    }
  }

  renderTiles() {
    const count = (st) => this.agents.filter((a) => a.state === st).length;
    const waiting = this.calls.filter((c) => c.state === "ringing");
    const oldest = waiting.map((c) => c.created_at).filter((t) => typeof t === "number").sort((x, y) => x - y)[0];
    const supervised = this.agents.filter((a) => (a.supervisors || []).length).length;
    const chats = this.liveChats();
    const unread = chats.find((c) => !this.ctx.chats?.chats.has(c.contact_id));
    const tiles = [
      ["available", count("available"), "available", "agents available"],
      ["on-call", count("on-call"), "on a call", "agents on a call"],
      ["away", count("away"), "away", "agents away"],
      ["offline", count("offline"), "offline", "agents offline"],
      ["waiting", waiting.length, "waiting", "calls waiting", waiting.length > 0],
      ["wait", oldest != null ? sinceSpan(oldest, "") : "—", "longest wait", "longest wait", waiting.length > 0],
      ["supervised", supervised, "supervised", "calls supervised"],
      ["chats", chats.length, "live chats", "live chats"],
    ];
    const html = tiles.map(([key, value, label, spoken, alert]) =>
      `<li class="tile${alert ? " alert" : ""}" data-tile="${key}"><span class="value">${value}</span>
        <span class="label"><span class="group">${label === spoken ? "" : spoken.split(" ")[0]}</span> ${label}</span>${
        key === "chats" && unread ? `<button class="mini tile-act" data-open-chat="${esc(unread.contact_id)}"
          aria-label="Open ${esc(unread.agent.display_name || unread.agent.agent)}'s chat with ${esc(unread.customer)} (read only)">Open one</button>` : ""}</li>`).join("");
    if ($("tiles").innerHTML !== html) $("tiles").innerHTML = html;
  }

  showModeButtons() {
    for (const b of $("mode").querySelectorAll("button")) {
      const blocked = b.dataset.mode !== "monitor" && !this.canBarge;
      b.disabled = blocked;
      if (blocked) b.setAttribute("aria-describedby", "mode-reason");
      b.setAttribute("aria-pressed", String(b.dataset.mode === this.mode));
    }
    $("mode-reason").hidden = this.canBarge;
    $("mode-reason").textContent = this.canBarge ? "" : this.noBargeReason;
  }

  showMode(mode) {
    this.mode = mode;
    $("session-status").textContent = STATUS[mode];
    $("session-status").className = `badge big ${mode}`;
    $("session-status").dataset.icon = ICON[mode];
    $("mode-hint").textContent = HINT[mode];
    this.showModeButtons();
    this.renderParties();
    this.renderAgents();
  }

  renderSession() {
    const live = Boolean(this.callId);
    $("session-live").hidden = !live;
    $("session-idle").hidden = live;
    if (!live) return;
    this.renderSessionHead();
    this.renderParties();
  }

  renderSessionHead() {
    const s = this.session || {};
    $("session-agent").textContent = s.agentName || "";
    $("session-customer").textContent = s.customer || "";
    $("session-queue").textContent = s.queue ? `queue ${s.queue}` : "";
    $("session-call").textContent = this.callId || "";
    const timer = $("session-timer");
    if (s.answeredAt != null) {
      if (timer.dataset.since !== String(s.answeredAt)) { timer.dataset.since = String(s.answeredAt); timer.textContent = elapsed(s.answeredAt); }
    } else {
      delete timer.dataset.since;
      timer.textContent = "";
    }
  }

  renderParties() {
    // while barging, a supervisor may mute or drop a participant (the agent cannot be dropped)
    const barging = this.mode === "barge";
    const acts = this.canBarge;  // a listen-only supervisor never gets these buttons
    const hint = barging ? "" : " aria-describedby=\"parties-hint\"";
    const dis = barging ? "" : " disabled";
    const items = this.parties.map((p) => {
      const state = [p.muted ? `<span class="flag muted-flag">muted${p.muted_by === this.ctx.me.user ? " by you" : ""}</span>` : "",
        p.held ? '<span class="flag held-flag">on hold</span>' : ""].join(" ");
      const name = p.role === "agent" ? this.session?.agentName : p.role === "customer" ? this.session?.customer : "";
      return `<li data-user="${esc(p.user)}">
        <span class="who-line"><strong>${esc(name || p.user)}</strong> <span class="muted">${esc(p.role)}</span> ${state}</span>
        ${talkHtml(p.user)}
        <span class="acts">${acts ? `<button class="mini" data-act="mute" data-user="${esc(p.user)}" data-value="${p.muted ? "false" : "true"}"${dis}${hint}
          aria-label="${p.muted ? "Unmute" : "Mute"} ${esc(p.user)}">${p.muted ? "Unmute" : "Mute"}</button>${p.role === "agent" ? "" :
          `<button class="mini danger" data-act="drop" data-user="${esc(p.user)}"${dis}${hint} aria-label="Drop ${esc(p.user)} from the call">Drop</button>`}` : ""}</span></li>`;
    });
    const heardBy = { monitor: "nobody hears you", barge: "agent and customer hear you", coach: "only the agent hears you" };
    const meLine = `<li class="me"><span class="who-line"><span class="talk" id="talk-me" aria-hidden="true"></span>
      <strong>You</strong> <span class="muted">${heardBy[this.mode] || ""}</span></span></li>`;
    const others = this.others.map((s) => `<li data-user="${esc(s.user)}"><span class="who-line"><strong>${esc(s.user)}</strong>
      <span class="muted">supervisor · ${esc(STATUS[s.mode]?.toLowerCase() || s.mode)}</span></span>${talkHtml(s.user)}</li>`);
    $("session-participants").innerHTML = [...items, ...others, meLine].join("")
      + (barging || !acts ? "" : `<li class="parties-hint muted small" id="parties-hint">Barge to mute or drop a participant.</li>`);
    this.showLevels();
  }

  /** Each participant's talking indicator, from the server's levels: a word and an icon, not a colour alone. */
  showLevels() {
    for (const el of $("session-participants").querySelectorAll("[data-talk]")) {
      const l = this.levels.get(el.dataset.talk);
      const talking = Boolean(l?.talking);
      const unheard = talking && this.parties.some((p) => p.user === el.dataset.talk && (p.muted || p.held));
      const word = unheard ? "talking, not heard" : talking ? "talking" : "quiet";  // muted or on hold
      if (el.dataset.talking !== String(talking) || el.querySelector(".talk-word").textContent !== word) {
        el.dataset.talking = String(talking);
        el.classList.toggle("on", talking);
        el.querySelector(".talk-word").textContent = word;
        el.querySelector(".talk-icon").textContent = talking ? "◉" : "○";
      }
      el.querySelector(".lvl > span").style.width = `${l ? levelPercent(l.level) : 0}%`;
    }
  }
}
