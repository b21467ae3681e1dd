// The agent's page: availability, a ringing call to accept or decline, the call with who supervises it.

import { $, esc, formatDuration } from "./dom.js";
import { PartyView } from "./party.js";

const SUPERVISION_WORD = { monitor: "monitoring", barge: "barging in", coach: "coaching you" };

export class AgentView extends PartyView {
  constructor(ctx) {
    super(ctx);
    this.availability = "offline";
    this.timer = null;
    $("availability").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-state]");
      if (b) this.publish(b.dataset.state);
    });
    $("accept").onclick = () => this.accept();
    $("decline").onclick = () => this.decline();
    $("agent-hangup").onclick = () => this.hangUp();
    $("agent-mute").onclick = () => this.setMuted(!this.media.muted);
    $("add-party-form").onsubmit = (ev) => { ev.preventDefault(); this.addParty($("add-party").value.trim()); };
  }

  start(reg) {
    this.showAvailability(reg.state || "offline");
  }

  onNotify(msg) {
    if (msg.event === "refer-failed") { this.ctx.banner(`Could not add ${msg.target}: ${msg.reason}`); return; }
    super.onNotify(msg);
  }

  async publish(st) {
    const r = await this.client.request("PUBLISH", { state: st });
    if (r.status !== 200) { this.ctx.banner(r.reason); return; }
    this.showAvailability(st);
  }

  async addParty(target) {
    if (!target || !this.callId) return;
    const r = await this.client.request("REFER", { call_id: this.callId, target });
    if (r.status === 202) this.ctx.log(`Inviting ${target}…`);
    else this.ctx.banner(`Could not add ${target}: ${r.reason}`);
  }

  // ---------------------------------------------------------------- drawing
  showAvailability(st) {
    this.availability = st;
    $("agent-state-badge").textContent = st;
    $("agent-state-badge").className = "badge " + st;
    for (const b of $("availability").querySelectorAll("button")) b.classList.toggle("selected", b.dataset.state === st);
  }

  showIncoming(inv) {
    $("incoming").hidden = !inv;
    if (!inv) return;
    $("incoming-from").textContent = inv.kind === "conference" ? `${inv.from} invites you to a call` : inv.from;
    $("incoming-queue").textContent = inv.queue ? `· queue ${inv.queue}` : "";
  }

  showAnswered(inv) {
    $("agent-call").hidden = false;
    $("agent-call-id").textContent = inv.call_id;
    clearInterval(this.timer);
    const tick = () => { $("agent-timer").textContent = formatDuration((Date.now() - this.answered) / 1000); };
    tick();
    this.timer = setInterval(tick, 500);
  }

  showMuted(muted) {
    super.showMuted(muted);
    $("agent-mute").textContent = muted ? "Unmute" : "Mute";
    $("agent-mute").classList.toggle("on", muted);
  }

  showCallState(msg, parts) {
    $("agent-participants").innerHTML = parts.map((p) =>
      `<li>${esc(p.user)} <span class="muted">${p.role}${p.muted ? " · muted" : ""}${p.held ? " · on hold" : ""}</span></li>`).join("");
    const sups = msg.supervisors || [];
    const box = $("supervised");
    box.hidden = sups.length === 0;
    box.textContent = sups.map((s) => `Supervisor ${s.user} is ${SUPERVISION_WORD[s.mode]}`).join(" · ");
    box.className = "supervised " + (sups.find((s) => s.mode !== "monitor")?.mode || "");
  }

  showCleared() {
    clearInterval(this.timer);
    $("agent-call").hidden = true;
    $("incoming").hidden = true;
  }
}
