// The supervisor's page: the real-time agents view, and the session on one call (monitor, barge, coach).

import { $, esc, formatDuration } from "./dom.js";

const STATUS = { monitor: "Monitoring", barge: "Barging", coach: "Coaching" };
const HINT = {
  monitor: "You hear everyone. Nobody hears you.",
  barge: "Agent and customer both hear you.",
  coach: "Only the agent hears you.",
};

export class SupervisorView {
  constructor(ctx) {
    this.ctx = ctx;
    this.client = ctx.client;
    this.media = ctx.media;
    this.callId = null;
    this.mode = null;
    this.agents = [];
    this.parties = [];
    $("mode").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-mode]");
      if (b) this.changeMode(b.dataset.mode);
    });
    $("agents-body").addEventListener("click", (ev) => {
      const b = ev.target.closest("button.monitor-btn");
      if (b) this.monitor(b.dataset.call);
    });
    $("session-participants").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b) this.actOn(b);
    });
    $("leave").onclick = () => this.leave();
  }

  async start(reg) {
    const s = await this.client.request("SUBSCRIBE", { event: "agents" });
    if (s.status !== 200) this.ctx.banner(`Agents view unavailable: ${s.reason}`);
    if (!reg.permissions.includes("realtime_barge")) {
      $("mode").querySelectorAll('[data-mode="barge"],[data-mode="coach"]').forEach((b) => {
        b.title = "your profile cannot barge or coach";
      });
    }
  }

  onRequest(msg) {
    if (msg.method === "INVITE") this.client.respond(msg, 603);  // supervisors take no calls
  }

  onNotify(msg) {
    if (msg.event === "agents") { this.agents = msg.agents; this.renderAgents(); }
    else if (msg.event === "call-state" && msg.call_id === this.callId) {
      this.parties = (msg.participants || []).filter((p) => p.role !== "supervisor");
      this.renderParties();
    } else if (msg.event === "session-ended") {
      this.ctx.banner(`Monitoring ended: ${msg.reason}`);
      this.ctx.log(`Session on ${msg.call_id} ended: ${msg.reason}`);
      this.clear();
    }
  }

  onClose() { this.clear(); }

  // ---------------------------------------------------------------- actions
  async monitor(callId) {
    if (!this.media.silent) this.ctx.hideBanner();
    const pc = this.media.newPeer(await this.micOrSilence());
    const sdp = await this.media.offer(pc);
    const r = await this.client.request("INVITE", { to: `call:${callId}`, mode: "monitor", sdp });
    if (r.status !== 200) {
      this.media.closePeer();
      this.ctx.banner(`Monitoring refused: ${r.reason}`);
      return;
    }
    this.callId = callId;  // before any await: the call-state NOTIFY follows the 200 at once
    this.showMode("monitor");
    await this.media.answer(r.sdp);
    $("session").hidden = false;
    $("session-call").textContent = callId;
    this.renderAgents();
    this.ctx.log(`Monitoring ${callId}`);
  }

  async micOrSilence() {
    try {
      const mic = await this.media.getMic();
      $("mic-state").textContent = "";
      return mic;
    } catch {
      this.ctx.banner("No microphone: you can monitor, but nobody can hear you if you barge or coach.", "info");
      $("mic-state").textContent = "no microphone";
      return this.media.silentStream();
    }
  }

  async changeMode(mode) {
    if (!this.callId || mode === this.mode) return;
    const r = await this.client.request("INFO", { call_id: this.callId, action: "mode", mode });
    if (r.status === 200) {
      this.showMode(mode);
      this.ctx.hideBanner();
      this.ctx.log(`Now ${STATUS[mode].toLowerCase()} on ${this.callId}`);
    } else {
      this.ctx.banner(`${STATUS[mode]} refused: ${r.reason}`);
    }
  }

  async actOn(button) {
    if (!this.callId) return;
    const { act, user } = button.dataset;
    const fields = { call_id: this.callId, action: act, target: user };
    if (act === "mute") fields.value = button.dataset.value === "true";
    const r = await this.client.request("INFO", fields);
    if (r.status !== 200) this.ctx.banner(`Could not ${act} ${user}: ${r.reason}`);
    else this.ctx.log(`${act === "drop" ? "Dropped" : fields.value ? "Muted" : "Unmuted"} ${user}`);
  }

  async leave() {
    if (!this.callId) return;
    const id = this.callId;
    await this.client.request("BYE", { call_id: id });
    this.ctx.log(`Left ${id}`);
    this.clear();
  }

  clear() {
    this.media.closePeer();
    this.callId = null;
    this.mode = null;
    this.parties = [];
    $("session").hidden = true;
    this.renderParties();
    this.renderAgents();
  }

  // ---------------------------------------------------------------- drawing
  showMode(mode) {
    this.mode = mode;
    $("session-status").textContent = STATUS[mode];
    $("session-status").className = `badge big ${mode}`;
    $("mode-hint").textContent = HINT[mode];
    for (const b of $("mode").querySelectorAll("button")) b.classList.toggle("selected", b.dataset.mode === mode);
    this.renderParties();
  }

  renderParties() {
    // while barging, a supervisor may mute or drop a participant (the agent cannot be dropped)
    const barging = this.mode === "barge";
    const why = barging ? "" : 'title="barge first to act on participants"';
    $("session-participants").innerHTML = this.parties.map((p) => `<li data-user="${esc(p.user)}">
      ${esc(p.user)} <span class="muted">${p.role}${p.muted ? " · muted" : ""}${p.held ? " · on hold" : ""}</span>
      <button class="mini" data-act="mute" data-user="${esc(p.user)}" data-value="${p.muted ? "false" : "true"}" ${barging ? "" : "disabled"} ${why}>${p.muted ? "Unmute" : "Mute"}</button>
      ${p.role === "agent" ? "" : `<button class="mini danger" data-act="drop" data-user="${esc(p.user)}" ${barging ? "" : "disabled"} ${why}>Drop</button>`}
    </li>`).join("");
  }

  renderAgents() {
    const body = $("agents-body");
    if (!this.agents.length) { body.innerHTML = `<tr><td colspan="7" class="muted">No agents</td></tr>`; return; }
    body.innerHTML = this.agents.map((a) => {
      const sup = a.supervisors.map((s) => `<span class="badge ${s.mode}">${esc(s.user)} · ${s.mode}</span>`).join(" ");
      const mine = a.call_id && a.call_id === this.callId;
      const canMonitor = a.state === "on-call" && !this.callId && a.monitoring_allowed !== false;
      const title = a.monitoring_allowed === false ? "monitoring not allowed for this queue" : "";
      const action = a.call_id && a.state === "on-call"
        ? `<button class="monitor-btn" data-call="${esc(a.call_id)}" ${canMonitor ? "" : "disabled"} title="${title}">${mine ? STATUS[this.mode] || "Monitoring" : "Monitor"}</button>` : "";
      return `<tr class="${mine ? "mine" : ""}" data-agent="${esc(a.agent)}"><td><strong>${esc(a.display_name)}</strong></td>
        <td><span class="badge ${esc(a.state)}">${esc(a.state)}</span></td><td>${esc(a.queue)}</td><td>${esc(a.customer)}</td>
        <td class="timer">${formatDuration(a.call_duration_s)}</td><td>${sup}</td><td>${action}</td></tr>`;
    }).join("");
    $("agents-updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
}
