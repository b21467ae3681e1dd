// What agents and customers share: being a party of one call (answering an INVITE, mute with the server's
// state, the call's timer, the call ending). Subclasses draw it: showIncoming, showAnswered, showMuted,
// showCallState, showCleared.

import { serverClock } from "./clock.js";
import { $ } from "./dom.js";
import { MicBlocked } from "./media.js";

export class PartyView {
  constructor(ctx) {
    this.ctx = ctx;
    this.client = ctx.client;
    this.media = ctx.media;
    this.callId = null;
    this.incoming = null;     // the server's INVITE while it rings here
    this.answeredAt = null;   // server epoch seconds the call was answered
    this.muted = false;       // as the server last said
    this.mutedBy = null;      // who muted us, when it was not us (agents are told the supervisor's name)
    this.parts = [];          // the call's participants (never supervisors)
    this.busy = new Set();    // controls with a request in flight
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
    this.incoming = { ...msg, ringingSince: serverClock.now() };
    this.showIncoming(this.incoming);
    this.ctx.log(`Incoming call ${msg.call_id} from ${msg.from}`);
  }

  onNotify(msg) {
    if (msg.event !== "call-state" || msg.call_id !== this.callId) return;
    this.parts = (msg.participants || []).filter((p) => p.role !== "supervisor");
    if (typeof msg.answered_at === "number") this.setAnsweredAt(msg.answered_at);
    const me = this.parts.find((p) => p.user === this.ctx.me.user);
    if (me) {
      const byOther = me.muted && !this.muted && !this.busy.has("mute");
      const unmutedForUs = !me.muted && this.muted && this.mutedBy !== null;
      this.mutedBy = me.muted ? (me.muted_by || (byOther ? "other" : this.mutedBy)) : null;
      this.applyMuted(me.muted);
      if (byOther) this.mutedForUs(this.mutedBy);
      if (unmutedForUs) { this.ctx.hideBanner(); this.ctx.log("Your microphone is on again"); }
    }
    this.showCallState(msg, this.parts);
  }

  onClose() { this.clear(); }

  // ---------------------------------------------------------------- actions
  /** A peer connection with the microphone; throws MicBlocked when the browser refuses it. */
  async openPeer() {
    return this.media.newPeer((await this.media.getMic()).getAudioTracks()[0]);
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
    if (this.incoming !== inv) { this.media.endCall(); return; }  // cancelled meanwhile
    this.incoming = null;
    this.showIncoming(null);
    const sdp = await this.media.offer(pc);
    this.callId = inv.call_id;
    this.client.respond(inv, 200, { sdp });
    this.setAnsweredAt(serverClock.now());  // the call-state NOTIFY brings the server's own time
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

  /** Asks the server; the button keeps showing the server's state, and a refusal is shown. */
  async setMuted(muted) {
    if (!this.callId || this.busy.has("mute")) return;
    this.busy.add("mute");
    this.showBusy("mute", true);
    const r = await this.client.request("INFO", { call_id: this.callId, action: "mute", value: muted });
    this.busy.delete("mute");
    this.showBusy("mute", false);
    if (r.status === 200) {
      this.mutedBy = null;
      this.applyMuted(muted);
      this.ctx.hideBanner();
      this.ctx.log(muted ? "You muted your microphone" : "You unmuted your microphone");
    } else {
      this.refused(`Could not ${muted ? "mute" : "unmute"}: ${r.reason}`);
      this.applyMuted(this.muted);
    }
  }

  refused(text) {
    this.ctx.banner(text);
    this.ctx.log(text);
    this.ctx.announce(text);
  }

  async hangUp() {
    if (!this.callId) return;
    const r = await this.client.request("BYE", { call_id: this.callId });
    this.ctx.log("Hung up");
    this.clear();
    if (r.status !== 200 && r.status !== 481) this.refused(`Hanging up was not confirmed: ${r.reason}`);  // 481: already over
  }

  /** The call is over (or never was): media and microphone released, page back to idle. */
  clear() {
    this.media.endCall();
    this.callId = null;
    this.incoming = null;
    this.answeredAt = null;
    this.muted = false;
    this.mutedBy = null;
    this.parts = [];
    this.busy.clear();
    this.showCleared();
  }

  applyMuted(muted) {
    this.muted = muted;
    this.media.setMuted(muted);
    this.showMuted(muted, this.mutedBy);
  }

  setAnsweredAt(at) {
    this.answeredAt = at;
    this.showTimer(at);
  }

  // ---------------------------------------------------------------- drawing (subclasses)
  mutedForUs(_by) {}
  showBusy(control, busy) {
    const b = $(`${this.ctx.me.role}-${control}`);
    if (b) b.setAttribute("aria-busy", String(busy));
  }
  showMuted(_muted, _by) {}
  showTimer(_since) {}
  showIncoming(_inv) {}
  showAnswered(_inv) {}
  showCallState(_msg, _parts) {}
  showCleared() {}
}
