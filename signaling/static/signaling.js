// The signaling client: one WebSocket to /ws speaking the JSON protocol of docs/protocol.md.
//
// request() always settles: with the server's final response, or with a local failure when the server
// does not answer in time (408) or the connection closes first (503). Callers therefore handle one shape,
// `{status, reason, ...}`, and show `reason` for anything that is not a success.

export const DEFAULT_TIMEOUT_MS = 10_000;

// 183 is below 200 as well: every status under 200 is provisional
export const isFinal = (status) => status >= 200;

export class SignalingClient {
  constructor({ url = defaultUrl(), timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.ws = null;
    this.cseq = 0;
    this.pending = new Map();  // cseq -> {method, resolve, timer, timeoutMs, onProvisional}
    this.handlers = { request: [], notify: [], close: [] };
  }

  /** `request` (a server request other than NOTIFY), `notify` (a NOTIFY), `close` (the socket closed). */
  on(event, fn) {
    this.handlers[event].push(fn);
    return this;
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  /** Opens the socket; resolves once it is open, rejects if the server cannot be reached. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => { opened = true; resolve(); };
      ws.onerror = () => { if (!opened) reject(new Error("cannot reach the server")); };
      ws.onmessage = (ev) => this._receive(ev.data);
      ws.onclose = () => {
        this._failAll(503, "the connection to the server closed");
        this._emit("close");
      };
    });
  }

  close() {
    if (this.ws) this.ws.close();
  }

  /** Sends a request; resolves with its final response. `onProvisional(msg)` sees 100/180/183 responses,
   * each of which restarts the timeout (a ringing INVITE may legitimately wait). */
  request(method, fields = {}, { timeoutMs = this.timeoutMs, onProvisional = null } = {}) {
    const cseq = ++this.cseq;
    return new Promise((resolve) => {
      if (!this.open) {
        resolve(localFailure(method, cseq, 503, "not connected to the server"));
        return;
      }
      const entry = { method, resolve, timer: null, timeoutMs, onProvisional };
      this.pending.set(cseq, entry);
      this._arm(cseq, entry);
      this.ws.send(JSON.stringify({ method, cseq, ...fields }));
    });
  }

  /** Answers a request the server sent (an INVITE). */
  respond(req, status, extra = {}) {
    if (!this.open) return;
    this.ws.send(JSON.stringify({ type: "response", method: req.method, cseq: req.cseq, status,
      call_id: req.call_id, ...extra }));
  }

  _arm(cseq, entry) {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      const seconds = Math.round(entry.timeoutMs / 1000);
      this._settle(cseq, localFailure(entry.method, cseq, 408, `no answer from the server within ${seconds} s`));
    }, entry.timeoutMs);
  }

  _settle(cseq, msg) {
    const entry = this.pending.get(cseq);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(cseq);
    entry.resolve(msg);
  }

  _failAll(status, reason) {
    for (const [cseq, entry] of [...this.pending]) this._settle(cseq, localFailure(entry.method, cseq, status, reason));
  }

  _receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }  // the server only sends JSON; ignore anything else
    if (msg.type === "response") {
      const entry = this.pending.get(msg.cseq);
      if (!entry) return;
      if (isFinal(msg.status)) { this._settle(msg.cseq, msg); return; }
      this._arm(msg.cseq, entry);
      if (entry.onProvisional) entry.onProvisional(msg);
      return;
    }
    this._emit(msg.method === "NOTIFY" ? "notify" : "request", msg);
  }

  _emit(event, msg) {
    for (const fn of this.handlers[event]) {
      try { fn(msg); } catch (e) { console.error(`bargein: ${event} handler failed`, e); }
    }
  }
}

function localFailure(method, cseq, status, reason) {
  return { type: "response", method, cseq, status, reason, local: true };
}

function defaultUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
