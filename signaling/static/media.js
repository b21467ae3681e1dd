// Media: the microphone, the one WebRTC peer connection of the current call, and WebAudio analysers that
// feed the level meters (and let tests measure what this page hears at a given frequency).

const MIC_CONSTRAINTS = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };
const ICE_GATHER_MS = 3000;

export class MicBlocked extends Error {}

export class Media {
  constructor({ remoteAudio, onFailed = () => {} }) {
    this.remoteAudio = remoteAudio;
    this.onFailed = onFailed;
    this.ctx = null;
    this.mic = null;           // MediaStream from getUserMedia (or a silent stream)
    this.silent = false;       // true when the mic is a stream of zeros (no microphone allowed)
    this.muted = false;
    this.pc = null;
    this.heard = null;         // AnalyserNode on what this page receives
    this.sent = null;          // AnalyserNode on the microphone
  }

  audioContext() {
    this.ctx = this.ctx || new AudioContext();
    if (this.ctx.state === "suspended") this.ctx.resume();
    return this.ctx;
  }

  /** The microphone; throws MicBlocked when the browser refuses it. */
  async getMic() {
    if (this.mic) return this.mic;
    try {
      this.mic = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
    } catch (e) {
      throw new MicBlocked(e.message || "microphone blocked");
    }
    this.silent = false;
    this.sent = this.analyser(this.mic);
    this.applyMute();
    return this.mic;
  }

  /** A stream of silence: a supervisor without a microphone can still monitor (the leg must keep sending). */
  silentStream() {
    const ctx = this.audioContext();
    const dst = ctx.createMediaStreamDestination();
    const zero = ctx.createConstantSource();  // a source is needed, or no audio flows at all
    zero.offset.value = 0;
    zero.connect(dst);
    zero.start();
    this.mic = dst.stream;
    this.silent = true;
    return this.mic;
  }

  analyser(stream) {
    const node = this.audioContext().createAnalyser();
    node.fftSize = 8192;
    node.smoothingTimeConstant = 0.2;
    this.ctx.createMediaStreamSource(stream).connect(node);
    return node;
  }

  /** A new peer connection sending `stream` and playing (and analysing) whatever the server sends. */
  newPeer(stream) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: [] });
    stream.getAudioTracks().forEach((t) => { t.enabled = !this.muted; pc.addTrack(t, stream); });
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

  closePeer() {
    if (this.pc) { this.pc.close(); this.pc = null; }
    this.heard = null;
  }

  /** Stops the microphone (the browser's recording indicator goes off). */
  releaseMic() {
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.mic = null;
    this.sent = null;
    this.silent = false;
  }

  setMuted(muted) {
    this.muted = muted;
    this.applyMute();
  }

  applyMute() {
    // disable, never remove, the track: the server treats a leg that stops sending as gone
    if (this.mic) this.mic.getAudioTracks().forEach((t) => { t.enabled = !this.muted; });
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
}
