// The customer's page: call a queue, mute, hang up. It never shows supervision: the server never tells a
// customer about supervisors, and nothing here asks.

import { $, esc } from "./dom.js";
import { MicBlocked } from "./media.js";
import { PartyView } from "./party.js";

const INVITE_TIMEOUT_MS = 180_000;  // queued and ringing: provisional responses restart it anyway

export class CustomerView extends PartyView {
  constructor(ctx) {
    super(ctx);
    this.ringingCallId = null;  // lets the customer CANCEL before an agent answers
    $("customer-call").onclick = () => this.call();
    $("customer-mute").onclick = () => this.setMuted(!this.media.muted);
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
        if (p.status === 180) this.status("Ringing " + (p.agent || "an agent") + "…", "ringing");
      },
    });
    if (r.status === 200) {
      this.callId = r.call_id;
      this.status(`Connected to ${r.agent}`, "connected");
      this.ctx.log(`Connected to ${r.agent} (${r.call_id})`);
    } else {
      this.media.closePeer();
      this.setButtons(false);
      this.status(r.reason, "idle");
      this.ctx.banner(`Call failed: ${r.reason}`);
    }
  }

  async hangUpOrCancel() {
    if (this.callId) await this.client.request("BYE", { call_id: this.callId });
    else if (this.ringingCallId) await this.client.request("CANCEL", { call_id: this.ringingCallId });
    this.ringingCallId = null;
    this.clear();
  }

  // ---------------------------------------------------------------- drawing
  status(text, badge) {
    $("customer-status").textContent = text;
    $("customer-badge").textContent = badge;
    $("customer-badge").className = "badge " + badge;
  }

  setButtons(inCall) {
    $("customer-call").disabled = inCall;
    $("customer-mute").disabled = !inCall;
    $("customer-hangup").disabled = !inCall;
  }

  showMuted(muted) {
    super.showMuted(muted);
    $("customer-mute").textContent = muted ? "Unmute" : "Mute";
    $("customer-mute").classList.toggle("on", muted);
  }

  showCleared() {
    this.ringingCallId = null;
    this.status("Call ended", "idle");
    this.setButtons(false);
  }
}
