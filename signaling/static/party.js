// What agents and customers share: being a party of one call (answering an INVITE, mute, the call ending).
// Subclasses draw it: showIncoming, showAnswered, showMuted, showCallState, showCleared.

import { $ } from "./dom.js";
import { MicBlocked } from "./media.js";

export class PartyView {
  constructor(ctx) {
    this.ctx = ctx;
    this.client = ctx.client;
    this.media = ctx.media;
    this.callId = null;
    this.incoming = null;   // the server's INVITE while it rings here
    this.answered = null;   // Date.now() when this page answered
  }

  // ---------------------------------------------------------------- server requests
  onRequest(msg) {
    switch (msg.method) {
      case "INVITE": return this.onInvite(msg);
      case "ACK": return this.media.answer(msg.sdp);
      case "CANCEL":
        if (this.incoming && this.incoming.call_id === msg.call_id) {
          this.incoming = null;
          this.showIncoming(null);
          this.ctx.log(`Call ${msg.call_id} cancelled: ${msg.reason}`);
        }
        return;
      case "BYE":
        this.ctx.log(`Call ended: ${msg.reason || "hung up"}`);
        this.ctx.banner(`Call ended: ${msg.reason || "the other side hung up"}`, "info");
        return this.clear();
    }
  }

  onInvite(msg) {
    this.incoming = msg;
    this.showIncoming(msg);
    this.ctx.log(`Incoming call ${msg.call_id} from ${msg.from}`);
  }

  onNotify(msg) {
    if (msg.event !== "call-state" || msg.call_id !== this.callId) return;
    const parts = (msg.participants || []).filter((p) => p.role !== "supervisor");
    const me = parts.find((p) => p.user === this.ctx.me.user);
    if (me && me.muted !== this.media.muted) {
      this.showMuted(me.muted);  // a barging supervisor muted or unmuted us
      if (me.muted) this.ctx.banner("A supervisor muted your microphone.", "info"); else this.ctx.hideBanner();
    }
    this.showCallState(msg, parts);
  }

  onClose() { this.clear(); }

  // ---------------------------------------------------------------- actions
  /** A peer connection with the microphone; throws MicBlocked when the browser refuses it. */
  async openPeer() {
    let mic;
    try {
      mic = await this.media.getMic();
      $("mic-state").textContent = "";
    } catch (e) {
      $("mic-state").textContent = "microphone blocked";
      throw e;
    }
    return this.media.newPeer(mic);
  }

  async accept() {
    const inv = this.incoming;
    if (!inv) return;
    let pc;
    try { pc = await this.openPeer(); } catch (e) {
      if (!(e instanceof MicBlocked)) throw e;
      this.ctx.banner("Microphone permission is needed to take the call: allow it, then accept again (or decline).");
      return;
    }
    if (this.incoming !== inv) { this.media.closePeer(); return; }  // cancelled meanwhile
    this.incoming = null;
    this.showIncoming(null);
    const sdp = await this.media.offer(pc);
    this.callId = inv.call_id;
    this.client.respond(inv, 200, { sdp });
    this.answered = Date.now();
    this.showAnswered(inv);
    this.ctx.log(`Answered ${inv.call_id}`);
  }

  decline() {
    if (!this.incoming) return;
    this.client.respond(this.incoming, 603);
    this.incoming = null;
    this.showIncoming(null);
    this.ctx.log("Declined");
  }

  setMuted(muted) {
    this.showMuted(muted);
    if (this.callId) this.client.request("INFO", { call_id: this.callId, action: "mute", value: muted });
  }

  async hangUp() {
    if (!this.callId) return;
    await this.client.request("BYE", { call_id: this.callId });
    this.ctx.log("Hung up");
    this.clear();
  }

  /** The call is over (or never was): media closed, page back to idle. */
  clear() {
    this.media.closePeer();
    this.callId = null;
    this.incoming = null;
    this.answered = null;
    this.showCleared();
  }

  // ---------------------------------------------------------------- drawing (subclasses)
  showMuted(muted) { this.media.setMuted(muted); }
  showIncoming(_inv) {}
  showAnswered(_inv) {}
  showCallState(_msg, _parts) {}
  showCleared() {}
}
