// The agent's page: availability, a ringing call (caller, queue, accept or decline), the call with who
// supervises it (shown prominently), mute and hold as the server reports them.

import { elapsed, serverClock } from "./clock.js";
import { $, esc, showToggle } from "./dom.js";
import { PartyView } from "./party.js";

const SUPERVISION = {
  monitor: { icon: "◎", text: (who) => `${who} is listening to this call`, note: "Nobody hears them." },
  barge: { icon: "●", text: (who) => `${who} has barged in`, note: "You and the customer both hear them." },
  coach: { icon: "◐", text: (who) => `${who} is coaching you`, note: "Only you hear them; the customer does not." },
};
const BADGE = { available: "● Available", away: "◐ Away", offline: "○ Offline", ringing: "☎ Ringing", "on-call": "☎ On a call" };
const AVAILABILITY_NOTE = {
  available: "You get the next call from your queues.",
  away: "No calls are offered to you while away.",
  offline: "No calls are offered to you while offline.",
};

export class AgentView extends PartyView {
  constructor(ctx) {
    super(ctx);
    this.availability = "offline";
    $("availability").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-state]");
      if (b) this.publish(b.dataset.state);
    });
    $("accept").onclick = () => this.accept();
    $("decline").onclick = () => this.decline();
    $("agent-hangup").onclick = () => this.hangUp();
    $("agent-mute").onclick = () => this.setMuted(!this.muted);
    $("agent-hold").onclick = () => this.holdCustomer();
    $("add-party-form").onsubmit = (ev) => { ev.preventDefault(); this.addParty($("add-party").value.trim()); };
  }

  start(reg) {
    this.showAvailability(reg.state || "offline");
  }

  onNotify(msg) {
    if (msg.event === "refer-failed") { this.refused(`Could not add ${msg.target}: ${msg.reason}`); return; }
    super.onNotify(msg);
  }

  async publish(st) {
    const r = await this.client.request("PUBLISH", { state: st });
    if (r.status !== 200) { this.refused(`Could not change availability: ${r.reason}`); return; }
    this.showAvailability(st);
    this.ctx.log(`Availability: ${st}`);
  }

  async addParty(target) {
    if (!target || !this.callId) return;
    const r = await this.client.request("REFER", { call_id: this.callId, target });
    if (r.status === 202) this.ctx.log(`Inviting ${target}…`);
    else this.refused(`Could not add ${target}: ${r.reason}`);
  }

  async holdCustomer() {
    const customer = this.parts.find((p) => p.role === "customer");
    if (!this.callId || !customer || this.busy.has("hold")) return;
    const value = !customer.held;
    this.busy.add("hold");
    this.showBusy("hold", true);
    const r = await this.client.request("INFO", { call_id: this.callId, action: "hold", target: customer.user, value });
    this.busy.delete("hold");
    this.showBusy("hold", false);
    if (r.status !== 200) { this.refused(`Could not ${value ? "hold" : "resume"} the customer: ${r.reason}`); return; }
    customer.held = value;  // the call-state NOTIFY confirms it
    this.showHold(value);
    this.ctx.log(value ? "Customer on hold" : "Customer resumed");
  }

  // ---------------------------------------------------------------- drawing
  showAvailability(st) {
    this.availability = st;
    for (const b of $("availability").querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.state === st));
    this.showBadge();
  }

  /** The badge says what the agent is doing now: a call beats the availability chosen. */
  showBadge() {
    const st = this.callId ? "on-call" : this.incoming ? "ringing" : this.availability;
    const badge = $("agent-state-badge");
    badge.className = "badge " + st;
    badge.textContent = BADGE[st] || st;
    const note = AVAILABILITY_NOTE[this.availability] || "";
    $("availability-note").textContent = this.callId && this.availability === "available"
      ? "After this call you get the next one from your queues." : note;
  }

  showIncoming(inv) {
    $("incoming").hidden = !inv;
    this.showBadge();
    if (!inv) return;
    $("incoming-from").textContent = inv.kind === "conference" ? `${inv.from} invites you to a call` : inv.from;
    $("incoming-queue").textContent = inv.queue ? `queue ${inv.queue}` : "";
    const since = inv.ringingSince ?? serverClock.now();
    $("incoming-timer").dataset.since = String(since);
    $("incoming-timer").textContent = elapsed(since);
    $("accept").focus();
  }

  showAnswered(inv) {
    $("agent-call").hidden = false;
    $("agent-call-id").textContent = inv.call_id;
    $("agent-call-with").textContent = inv.kind === "conference" ? `Conference with ${inv.from}` : inv.from;
    $("agent-call-queue").textContent = inv.queue ? `queue ${inv.queue}` : "";
    $("supervised").hidden = true;
    this.showMuted(false, null);
    this.showHold(false);
    this.showBadge();
  }

  showTimer(since) {
    $("agent-timer").dataset.since = String(since);
    $("agent-timer").textContent = elapsed(since);
  }

  showMuted(muted, by) {
    showToggle($("agent-mute"), muted, ["Mute", "Unmute"]);
    const note = $("agent-muted-note");
    note.hidden = !(muted && by);
    if (muted && by) {
      note.textContent = by === "other"
        ? "Your microphone was muted for you: nobody hears you until it is unmuted."
        : `Supervisor ${by} muted your microphone: nobody hears you. Only they can unmute you; it comes back when they stop barging or leave.`;
    }
  }

  mutedForUs(by) {
    const text = by && by !== "other" ? `Supervisor ${by} muted your microphone.` : "Your microphone was muted for you.";
    this.ctx.banner(text, "info");
    this.ctx.log(text);
    this.ctx.announce(text);
  }

  showHold(held) { showToggle($("agent-hold"), held, ["Hold customer", "Resume customer"]); }

  showCallState(msg, parts) {
    $("agent-participants").innerHTML = parts.map((p) => {
      const flags = `${p.muted ? ' <span class="flag muted-flag">muted</span>' : ""}${p.held ? ' <span class="flag held-flag">on hold</span>' : ""}`;
      return `<li>${esc(p.user)} <span class="muted">${esc(p.role)}</span>${flags}</li>`;
    }).join("");
    const customer = parts.find((p) => p.role === "customer");
    this.showHold(Boolean(customer && customer.held));
    $("agent-hold").disabled = !customer;
    const sups = msg.supervisors || [];
    const box = $("supervised");
    const text = sups.map((s) => {
      const w = SUPERVISION[s.mode] || SUPERVISION.monitor;
      return `<div><span aria-hidden="true">${w.icon}</span> ${esc(w.text(`Supervisor ${s.user}`))}. <span class="small">${w.note}</span></div>`;
    }).join("");
    if (box.innerHTML !== text) box.innerHTML = text;  // unchanged text is not re-announced
    box.hidden = sups.length === 0;
    box.className = "supervised " + (sups.find((s) => s.mode !== "monitor")?.mode || "");
  }

  showCleared() {
    $("agent-call").hidden = true;
    $("incoming").hidden = true;
    delete $("agent-timer").dataset.since;
    $("agent-timer").textContent = "0:00";
    this.showBadge();
  }
}
