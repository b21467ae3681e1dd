// The customer's page: call a queue, mute, hang up, the call's time. It never shows supervision: the server
// never tells a customer about supervisors, and nothing here mentions them.

import { elapsed, serverClock } from "./clock.js";
import { $, esc, showToggle } from "./dom.js";
import { MicBlocked } from "./media.js";
import { PartyView } from "./party.js";

const INVITE_TIMEOUT_MS = 180_000;  // queued and ringing: provisional responses restart it anyway

export class CustomerView extends PartyView {
  constructor(ctx) {
    super(ctx);
    this.ringingCallId = null;  // lets the customer CANCEL before an agent answers
    $("customer-call").onclick = () => this.call();
    $("customer-mute").onclick = () => this.setMuted(!this.muted);
    $("customer-hangup").onclick = () => this.hangUpOrCancel();
  }

  start(reg) {
    $("queue").innerHTML = reg.queues.map((q) =>
      `<option ${q === reg.default_queue ? "selected" : ""}>${esc(q)}</option>`).join("");
  }

  onInvite(msg) {
    super.onInvite(msg);
    return this.accept();  // a customer added to a conference joins at once
  }

  async call() {
    this.ctx.hideBanner();
    this.setButtons(true);
    let pc;
    try { pc = await this.openPeer(); } catch (e) {
      if (!(e instanceof MicBlocked)) throw e;
      this.setButtons(false);
      this.status("Allow the microphone in your browser, then call again.", "idle");
      this.ctx.banner("Microphone permission is needed for calls: allow it for this site in your browser.");
      return;
    }
    const sdp = await this.media.offer(pc);
    this.status("Calling…", "ringing");
    const r = await this.client.request("INVITE", { to: `queue:${$("queue").value}`, sdp }, {
      timeoutMs: INVITE_TIMEOUT_MS,
      onProvisional: (p) => {
        if (p.call_id) this.ringingCallId = p.call_id;
        if (p.status === 183 && p.sdp) this.media.answer(p.sdp);
        if (p.status === 180) this.status(`Ringing ${p.agent || "an agent"}…`, "ringing");
      },
    });
    if (r.status === 200) {
      this.callId = r.call_id;
      this.ringingCallId = null;
      this.agentName = r.agent;
      this.status(this.connected(), "connected");
      this.ctx.log(`Connected to ${r.agent} (${r.call_id})`);
      this.showAnswered();
    } else {
      this.media.endCall();
      this.setButtons(false);
      this.status(`The call did not go through: ${r.reason}`, "idle");
      this.ctx.banner(`Call failed: ${r.reason}`);
    }
  }

  showAnswered() {
    this.setButtons(true);
    $("customer-timer-row").hidden = false;
    if (this.answeredAt == null) this.setAnsweredAt(serverClock.now());  // replaced by the server's time
  }

  async accept() {
    await super.accept();
    if (this.callId) this.status(this.connected(), "connected");
  }

  async hangUpOrCancel() {
    let r = null;
    if (this.callId) r = await this.client.request("BYE", { call_id: this.callId });
    else if (this.ringingCallId) r = await this.client.request("CANCEL", { call_id: this.ringingCallId });
    this.ringingCallId = null;
    this.clear();
    if (r && r.status !== 200 && r.status !== 481) this.refused(`Hanging up was not confirmed: ${r.reason}`);
  }

  // ---------------------------------------------------------------- drawing
  connected() { return this.agentName ? `Connected to ${this.agentName}` : "Connected"; }

  status(text, badge) {
    $("customer-status").textContent = text;
    $("customer-badge").textContent = badge;
    $("customer-badge").className = "badge " + badge;
  }

  setButtons(inCall) {
    $("customer-call").disabled = inCall;
    $("customer-mute").disabled = !inCall;
    $("customer-hangup").disabled = !inCall;
    $("queue").disabled = inCall;
  }

  showTimer(since) {
    $("customer-timer").dataset.since = String(since);
    $("customer-timer").textContent = elapsed(since);
  }

  showMuted(muted, by) {
    showToggle($("customer-mute"), muted, ["Mute", "Unmute"]);
    if (!this.callId) return;
    if (muted && by) {
      this.status("Your microphone was muted for you: nobody hears you for now.", "connected");
    } else if (muted) {
      this.status("You are muted: nobody hears you.", "connected");
    } else {
      this.status(this.connected(), "connected");
    }
  }

  mutedForUs() {
    this.ctx.banner("Your microphone was muted for you.", "info");
    this.ctx.log("Your microphone was muted for you");
  }

  showCallState(_msg, parts) {
    const me = parts.find((p) => p.user === this.ctx.me.user);
    if (me && me.held) this.status("You are on hold. Please stay on the line.", "ringing");
    else if (me && !me.muted) this.status(this.connected(), "connected");
  }

  showCleared() {
    this.ringingCallId = null;
    this.agentName = null;
    this.status("Call ended", "idle");
    this.setButtons(false);
    $("customer-timer-row").hidden = true;
    delete $("customer-timer").dataset.since;
  }
}
