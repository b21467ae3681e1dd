// Media: the microphone, the one WebRTC peer connection of the current call, and WebAudio analysers that
// feed the level meters (and let tests measure what this page hears at a given frequency).
//
// The microphone is captured only while someone can hear it (or is about to): when an agent or customer
// joins a call, when a supervisor barges or coaches. A monitoring supervisor sends silence (the server
// drops a leg that stops sending), and the microphone is released when the call or the session ends.

const MIC_CONSTRAINTS = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };
const ICE_GATHER_MS = 3000;
const TALKING = 12;  // meter percent (about -53 dBFS) above which someone is talking

export class MicBlocked extends Error {}

export class Media {
  constructor({ remoteAudio, onFailed = () => {} }) {
    this.remoteAudio = remoteAudio;
    this.onFailed = onFailed;
    this.ctx = null;
    this.mic = null;           // MediaStream from getUserMedia while captured
    this.blocked = false;      // the browser refused the microphone last time we asked
    this.muted = false;
    this.pc = null;
    this.sender = null;        // the RTCRtpSender of our audio
    this.silence = null;       // {track, source} of zeros, for a supervisor nobody hears
    this.heard = null;         // AnalyserNode on what this page receives
    this.sent = null;          // AnalyserNode on the microphone
  }

  audioContext() {
    this.ctx = this.ctx || new AudioContext();
    if (this.ctx.state === "suspended") this.ctx.resume();
    return this.ctx;
  }

  /** Captures the microphone; throws MicBlocked when the browser refuses it. */
  async getMic() {
    if (this.mic) return this.mic;
    try {
      this.mic = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
    } catch (e) {
      this.blocked = true;
      throw new MicBlocked(e.message || "microphone blocked");
    }
    this.blocked = false;
    this.sent = this.analyser(this.mic);
    this.applyMute();
    return this.mic;
  }

  /** Stops the microphone (the browser's recording indicator goes off). */
  releaseMic() {
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.mic = null;
    this.sent = null;
  }

  /** A track of zeros: a monitoring supervisor's leg keeps sending, and no microphone is open. */
  silentTrack() {
    if (this.silence) return this.silence.track;
    const ctx = this.audioContext();
    const dst = ctx.createMediaStreamDestination();
    const source = ctx.createConstantSource();  // a source is needed, or no audio flows at all
    source.offset.value = 0;
    source.connect(dst);
    source.start();
    this.silence = { track: dst.stream.getAudioTracks()[0], source };
    return this.silence.track;
  }

  analyser(stream) {
    const node = this.audioContext().createAnalyser();
    node.fftSize = 8192;
    node.smoothingTimeConstant = 0.2;
    this.ctx.createMediaStreamSource(stream).connect(node);
    return node;
  }

  /** A new peer connection sending `track` and playing (and analysing) whatever the server sends. */
  newPeer(track) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: [] });
    track.enabled = !this.muted || track === this.silence?.track;
    this.sender = pc.addTrack(track, new MediaStream([track]));
    pc.ontrack = (ev) => {
      const remote = ev.streams[0] || new MediaStream([ev.track]);
      this.remoteAudio.srcObject = remote;
      this.remoteAudio.play().catch(() => {});
      this.heard = this.analyser(remote);
    };
    pc.onconnectionstatechange = () => { if (pc.connectionState === "failed") this.onFailed(); };
    this.pc = pc;
    return pc;
  }

  /** Sends the microphone on the current peer (no renegotiation); throws MicBlocked. */
  async sendMic() {
    const mic = await this.getMic();
    if (this.sender) await this.sender.replaceTrack(mic.getAudioTracks()[0]);
  }

  /** Sends silence on the current peer and releases the microphone. */
  async sendSilence() {
    if (this.sender) await this.sender.replaceTrack(this.silentTrack());
    this.releaseMic();
  }

  /** A complete SDP offer (ICE gathered: the server does no trickle ICE). */
  async offer(pc = this.pc) {
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise((res) => {
        const done = () => {
          if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); res(); }
        };
        pc.addEventListener("icegatheringstatechange", done);
        setTimeout(res, ICE_GATHER_MS);
      });
    }
    return pc.localDescription.sdp;
  }

  async answer(sdp) {
    if (this.pc && sdp) await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** The call is over for this page: no peer, no microphone. */
  closePeer() {
    if (this.pc) { this.pc.close(); this.pc = null; }
    this.sender = null;
    this.heard = null;
  }

  endCall() {
    this.closePeer();
    this.releaseMic();
    this.setMuted(false);
  }

  setMuted(muted) {
    this.muted = muted;
    this.applyMute();
  }

  applyMute() {
    // disable, never remove, the track: the server treats a leg that stops sending as gone
    if (this.mic) this.mic.getAudioTracks().forEach((t) => { t.enabled = !this.muted; });
  }

  /** What the Mic meter says: off, on, muted, blocked. */
  micState() {
    if (this.mic) return this.muted ? "muted" : "on";
    return this.blocked ? "blocked" : "off";
  }

  /** Level (dBFS, -Infinity when nothing) at `hz` of what this page hears ("heard") or sends ("sent"). */
  levelAt(which, hz) {
    const node = this[which];
    if (!node) return -Infinity;
    const bins = new Float32Array(node.frequencyBinCount);
    node.getFloatFrequencyData(bins);
    const k = Math.round(hz / (this.ctx.sampleRate / node.fftSize));
    return Math.max(bins[k - 1], bins[k], bins[k + 1]);
  }

  /** Loudness 0..100 for a meter (-60 dBFS .. 0 dBFS). */
  meter(which) {
    const node = this[which];
    if (!node || (which === "sent" && this.muted)) return 0;
    const buf = new Float32Array(node.fftSize);
    node.getFloatTimeDomainData(buf);
    let s = 0;
    for (const v of buf) s += v * v;
    const db = 20 * Math.log10(Math.sqrt(s / buf.length) + 1e-9);
    return Math.min(100, Math.max(0, (db + 60) / 60 * 100));
  }

  talking(which) { return this.meter(which) > TALKING; }
}
