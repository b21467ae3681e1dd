// bargein web client: signaling over /ws (see docs/protocol.md), audio over WebRTC, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, cseq: 0, pending: new Map(), user: null, role: null, permissions: [],
  callId: null, pc: null, mic: null, muted: false, mode: null, agentState: "offline",
  incoming: null, answered: null, timer: null, agents: [], events: [], messages: [],
};
window.bargein = {
  state,
  // level (dBFS, -Infinity when silent) of what this page hears / sends, at a frequency
  levelAt: (hz) => levelAt(heardAnalyser, hz),
  sentLevelAt: (hz) => levelAt(sentAnalyser, hz),
};

// ------------------------------------------------------------------ signaling
function connect(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    state.ws = ws;
    ws.onopen = async () => {
      $("conn-state").classList.add("up");
      const r = await request("REGISTER", { token });
      r.status === 200 ? resolve(r) : reject(new Error(r.reason));
    };
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = () => {
      $("conn-state").classList.remove("up");
      if (state.user) banner("Connection to the server lost. Sign in again.");
      cleanupCall();
    };
    ws.onerror = () => reject(new Error("cannot reach the server"));
  });
}

function request(method, fields = {}) {
  const cseq = ++state.cseq;
  state.ws.send(JSON.stringify({ method, cseq, ...fields }));
  return new Promise((resolve) => state.pending.set(cseq, { method, resolve }));
}

function respond(req, status, extra = {}) {
  state.ws.send(JSON.stringify({ type: "response", method: req.method, cseq: req.cseq, status,
    call_id: req.call_id, ...extra }));
}

function onMessage(msg) {
  if (msg.type === "response") {
    const p = state.pending.get(msg.cseq);
    if (!p) return;
    if (msg.status === 183 && msg.sdp && state.pc) state.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    if (msg.status === 180) customerStatus("Ringing " + (msg.agent || "an agent") + "…", "ringing");
    if (msg.status < 200 && msg.call_id) state.ringingCallId = msg.call_id;  // lets a customer CANCEL
    if (msg.status >= 200 && msg.status !== 183) { state.pending.delete(msg.cseq); p.resolve(msg); }
    return;
  }
  state.events.push(msg);
  switch (msg.method) {
    case "INVITE": return onInvite(msg);
    case "ACK": if (msg.sdp && state.pc) state.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }); return;
    case "CANCEL":
      if (state.incoming && state.incoming.call_id === msg.call_id) { state.incoming = null; $("incoming").hidden = true; log(`Call ${msg.call_id} cancelled: ${msg.reason}`); }
      return;
    case "BYE": log(`Call ended: ${msg.reason || "hung up"}`); banner(`Call ended: ${msg.reason || "the other side hung up"}`, "info"); cleanupCall(); return;
    case "NOTIFY": return onNotify(msg);
  }
}

function onNotify(msg) {
  if (msg.event === "agents") { state.agents = msg.agents; renderAgents(); }
  else if (msg.event === "call-state") renderCallState(msg);
  else if (msg.event === "session-ended") {
    state.messages.push(msg.reason);
    banner(`Monitoring ended: ${msg.reason}`);
    log(`Session on ${msg.call_id} ended: ${msg.reason}`);
    cleanupCall();
  } else if (msg.event === "refer-failed") banner(`Could not add ${msg.target}: ${msg.reason}`);
}

// ------------------------------------------------------------------ media
let audioCtx = null, heardAnalyser = null, sentAnalyser = null;

async function getMic() {
  if (state.mic) return state.mic;
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    $("mic-state").textContent = "";
  } catch (e) {
    $("mic-state").textContent = "microphone blocked";
    banner("Microphone permission is needed for calls: allow it for this site in your browser.");
    throw e;
  }
  sentAnalyser = analyser(state.mic);
  return state.mic;
}

function analyser(stream) {
  audioCtx = audioCtx || new AudioContext();
  const node = audioCtx.createAnalyser();
  node.fftSize = 8192;
  node.smoothingTimeConstant = 0.2;
  audioCtx.createMediaStreamSource(stream).connect(node);
  return node;
}

function levelAt(node, hz) {
  if (!node) return -Infinity;
  const bins = new Float32Array(node.frequencyBinCount);
  node.getFloatFrequencyData(bins);
  const k = Math.round(hz / (audioCtx.sampleRate / node.fftSize));
  return Math.max(bins[k - 1], bins[k], bins[k + 1]);
}

function rms(node) {
  if (!node) return 0;
  const buf = new Float32Array(node.fftSize);
  node.getFloatTimeDomainData(buf);
  let s = 0; for (const v of buf) s += v * v;
  return Math.sqrt(s / buf.length);
}

setInterval(() => {
  const pct = (node) => Math.min(100, Math.max(0, (20 * Math.log10(rms(node) + 1e-9) + 60) / 60 * 100));
  $("meter-sent").style.width = (state.muted ? 0 : pct(sentAnalyser)) + "%";
  $("meter-heard").style.width = pct(heardAnalyser) + "%";
}, 100);

function silentStream() {
  // a supervisor without a microphone can still monitor: send silence so the leg stays alive
  audioCtx = audioCtx || new AudioContext();
  const dst = audioCtx.createMediaStreamDestination();
  const zero = audioCtx.createConstantSource();  // a source is needed, or no audio flows at all
  zero.offset.value = 0;
  zero.connect(dst);
  zero.start();
  if (audioCtx.state === "suspended") audioCtx.resume();
  const stream = dst.stream;
  banner("No microphone: you can monitor, but nobody can hear you if you barge or coach.", "info");
  $("mic-state").textContent = "no microphone";
  state.silentMic = true;
  return stream;
}

async function newPeer() {
  const mic = state.role === "supervisor" ? await getMic().catch(silentStream) : await getMic();
  const pc = new RTCPeerConnection({ iceServers: [] });
  mic.getAudioTracks().forEach((t) => { t.enabled = !state.muted; pc.addTrack(t, mic); });
  pc.ontrack = (ev) => {
    const stream = ev.streams[0] || new MediaStream([ev.track]);
    $("remote-audio").srcObject = stream;
    $("remote-audio").play().catch(() => {});
    heardAnalyser = analyser(stream);
    if (audioCtx.state === "suspended") audioCtx.resume();
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") { banner("Audio connection failed."); }
  };
  state.pc = pc;
  return pc;
}

async function offer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {  // one complete SDP, no trickle ICE
    await new Promise((res) => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); res(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(res, 3000);
    });
  }
  return pc.localDescription.sdp;
}

function cleanupCall() {
  if (state.pc) { state.pc.close(); state.pc = null; }
  heardAnalyser = null;
  state.callId = null; state.mode = null; state.answered = null; state.incoming = null;
  clearInterval(state.timer);
  if (state.role === "agent") { $("agent-call").hidden = true; $("incoming").hidden = true; }
  if (state.role === "customer") { customerStatus("Call ended", "idle"); setCustomerButtons(false); }
  if (state.role === "supervisor") { state.parties = []; $("session").hidden = true; renderSessionParties(); renderAgents(); }
}

function showMuted(muted) {
  state.muted = muted;
  if (state.mic) state.mic.getAudioTracks().forEach((t) => { t.enabled = !muted; });
  for (const id of ["agent-mute", "customer-mute"]) {
    $(id).textContent = muted ? "Unmute" : "Mute";
    $(id).classList.toggle("on", muted);
  }
}

function setMuted(muted) {
  showMuted(muted);
  if (state.callId) request("INFO", { call_id: state.callId, action: "mute", value: muted });
}

// ------------------------------------------------------------------ agent
async function onInvite(msg) {
  if (state.role !== "agent" && state.role !== "customer") return respond(msg, 603);
  state.incoming = msg;
  if (state.role === "customer") $("customer-view").hidden = false;
  $("incoming").hidden = state.role !== "agent";
  $("incoming-from").textContent = msg.kind === "conference" ? `${msg.from} invites you to a call` : msg.from;
  $("incoming-queue").textContent = msg.queue ? `· queue ${msg.queue}` : "";
  log(`Incoming call ${msg.call_id} from ${msg.from}`);
  if (state.role === "customer") await acceptIncoming();  // a customer added to a conference joins at once
}

async function acceptIncoming() {
  const inv = state.incoming;
  if (!inv) return;
  let pc;
  try { pc = await newPeer(); } catch (e) {
    banner("Microphone permission is needed to take the call: allow it, then accept again (or decline).");
    return;
  }
  if (state.incoming !== inv) { pc.close(); state.pc = null; return; }  // cancelled meanwhile
  state.incoming = null;
  $("incoming").hidden = true;
  const sdp = await offer(pc);
  state.callId = inv.call_id;
  respond(inv, 200, { sdp });
  state.answered = Date.now();
  if (state.role === "agent") {
    $("agent-call").hidden = false;
    $("agent-call-id").textContent = inv.call_id;
    startTimer("agent-timer");
  }
  log(`Answered ${inv.call_id}`);
}

function startTimer(id) {
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    const s = Math.floor((Date.now() - state.answered) / 1000);
    $(id).textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }, 500);
}

function renderCallState(msg) {
  if (msg.call_id !== state.callId) return;
  const parts = (msg.participants || []).filter((p) => p.role !== "supervisor");
  const me = parts.find((p) => p.user === state.user);
  if (me && me.muted !== state.muted && (state.role === "agent" || state.role === "customer")) {
    showMuted(me.muted);  // a barging supervisor muted or unmuted us
    if (me.muted) banner("A supervisor muted your microphone.", "info"); else hideBanner();
  }
  if (state.role === "agent") {
    $("agent-participants").innerHTML = parts.map((p) =>
      `<li>${esc(p.user)} <span class="muted">${p.role}${p.muted ? " · muted" : ""}${p.held ? " · on hold" : ""}</span></li>`).join("");
    const sups = msg.supervisors || [];
    const box = $("supervised");
    box.hidden = sups.length === 0;
    const word = { monitor: "monitoring", barge: "barging in", coach: "coaching you" };
    box.textContent = sups.map((s) => `Supervisor ${s.user} is ${word[s.mode]}`).join(" · ");
    box.className = "supervised " + (sups.find((s) => s.mode !== "monitor")?.mode || "");
    state.supervisors = sups;
  }
  if (state.role === "supervisor") {
    state.parties = parts;
    renderSessionParties();
  }
}

// ------------------------------------------------------------------ supervisor
function renderSessionParties() {
  // while barging, a supervisor may mute or drop a participant (the agent cannot be dropped)
  const barging = state.mode === "barge";
  const why = barging ? "" : 'title="barge first to act on participants"';
  $("session-participants").innerHTML = (state.parties || []).map((p) => `<li data-user="${esc(p.user)}">
    ${esc(p.user)} <span class="muted">${p.role}${p.muted ? " · muted" : ""}${p.held ? " · on hold" : ""}</span>
    <button class="mini" data-act="mute" data-user="${esc(p.user)}" data-value="${p.muted ? "false" : "true"}" ${barging ? "" : "disabled"} ${why}>${p.muted ? "Unmute" : "Mute"}</button>
    ${p.role === "agent" ? "" : `<button class="mini danger" data-act="drop" data-user="${esc(p.user)}" ${barging ? "" : "disabled"} ${why}>Drop</button>`}
  </li>`).join("");
}

async function actOn(button) {
  if (!state.callId) return;
  const fields = { call_id: state.callId, action: button.dataset.act, target: button.dataset.user };
  if (button.dataset.act === "mute") fields.value = button.dataset.value === "true";
  const r = await request("INFO", fields);
  if (r.status !== 200) { state.messages.push(r.reason); banner(`Could not ${button.dataset.act} ${button.dataset.user}: ${r.reason}`); }
  else log(`${button.dataset.act === "drop" ? "Dropped" : fields.value ? "Muted" : "Unmuted"} ${button.dataset.user}`);
}

function renderAgents() {
  const body = $("agents-body");
  if (!state.agents.length) { body.innerHTML = `<tr><td colspan="7" class="muted">No agents</td></tr>`; return; }
  body.innerHTML = state.agents.map((a) => {
    const dur = a.call_duration_s != null ? `${Math.floor(a.call_duration_s / 60)}:${String(Math.floor(a.call_duration_s % 60)).padStart(2, "0")}` : "";
    const sup = a.supervisors.map((s) => `<span class="badge ${s.mode}">${esc(s.user)} · ${s.mode}</span>`).join(" ");
    const mine = a.call_id && a.call_id === state.callId;
    const canMonitor = a.state === "on-call" && !state.callId && a.monitoring_allowed !== false;
    const action = a.call_id && a.state === "on-call"
      ? `<button class="monitor-btn" data-call="${a.call_id}" ${canMonitor ? "" : "disabled"} title="${a.monitoring_allowed === false ? "monitoring not allowed for this queue" : ""}">${mine ? STATUS[state.mode] || "Monitoring" : "Monitor"}</button>` : "";
    return `<tr class="${mine ? "mine" : ""}" data-agent="${esc(a.agent)}"><td><strong>${esc(a.display_name)}</strong></td>
      <td><span class="badge ${a.state}">${a.state}</span></td><td>${esc(a.queue || "")}</td><td>${esc(a.customer || "")}</td>
      <td class="timer">${dur}</td><td>${sup}</td><td>${action}</td></tr>`;
  }).join("");
  $("agents-updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function monitor(callId) {
  if (!state.silentMic) hideBanner();
  const pc = await newPeer();
  const sdp = await offer(pc);
  const r = await request("INVITE", { to: `call:${callId}`, mode: "monitor", sdp });
  if (r.status !== 200) {
    pc.close(); state.pc = null;
    state.messages.push(r.reason);
    return banner(`Monitoring refused: ${r.reason}`);
  }
  state.callId = callId;  // before any await: the call-state NOTIFY follows the 200 at once
  setMode("monitor");
  await pc.setRemoteDescription({ type: "answer", sdp: r.sdp });
  $("session").hidden = false;
  $("session-call").textContent = callId;
  renderAgents();
  log(`Monitoring ${callId}`);
}

const STATUS = { monitor: "Monitoring", barge: "Barging", coach: "Coaching" };
const HINT = { monitor: "You hear everyone. Nobody hears you.", barge: "Agent and customer both hear you.",
  coach: "Only the agent hears you." };

function setMode(mode) {
  state.mode = mode;
  $("session-status").textContent = STATUS[mode];
  $("session-status").className = `badge big ${mode}`;
  $("mode-hint").textContent = HINT[mode];
  for (const b of $("mode").querySelectorAll("button")) b.classList.toggle("selected", b.dataset.mode === mode);
  renderSessionParties();
}

async function changeMode(mode) {
  if (!state.callId || mode === state.mode) return;
  const r = await request("INFO", { call_id: state.callId, action: "mode", mode });
  if (r.status === 200) { setMode(mode); hideBanner(); log(`Now ${STATUS[mode].toLowerCase()} on ${state.callId}`); }
  else { state.messages.push(r.reason); banner(`${STATUS[mode]} refused: ${r.reason}`); }
}

// ------------------------------------------------------------------ customer
function customerStatus(text, badge) {
  if (state.role !== "customer") return;
  $("customer-status").textContent = text;
  $("customer-badge").textContent = badge;
  $("customer-badge").className = "badge " + badge;
}

function setCustomerButtons(inCall) {
  $("customer-call").disabled = inCall;
  $("customer-mute").disabled = !inCall;
  $("customer-hangup").disabled = !inCall;
}

async function customerCall() {
  hideBanner();
  setCustomerButtons(true);
  let pc;
  try { pc = await newPeer(); } catch (e) {
    setCustomerButtons(false);
    customerStatus("Allow the microphone in your browser, then call again.", "idle");
    return;
  }
  const sdp = await offer(pc);
  customerStatus("Calling…", "ringing");
  const r = await request("INVITE", { to: `queue:${$("queue").value}`, sdp });
  if (r.status === 200) {
    state.callId = r.call_id;
    customerStatus(`Connected to ${r.agent}`, "connected");
    log(`Connected to ${r.agent} (${r.call_id})`);
  } else {
    pc.close(); state.pc = null; setCustomerButtons(false);
    customerStatus(r.reason, "idle");
    banner(`Call failed: ${r.reason}`);
  }
}

// ------------------------------------------------------------------ page
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }
function log(text) {
  const li = document.createElement("li");
  li.innerHTML = `<time>${new Date().toLocaleTimeString()}</time>${esc(text)}`;
  $("log").prepend(li);
}
function banner(text, kind = "") { const b = $("banner"); b.textContent = text; b.className = "banner " + kind; b.hidden = false; }
function hideBanner() { $("banner").hidden = true; }

async function signIn(token) {
  hideBanner();
  let r;
  $("signin-error").hidden = true;
  try { r = await connect(token); } catch (e) {
    if (state.ws) state.ws.close();
    $("signin-error").textContent = `Sign-in failed: ${e.message || "the server refused the token"}`;
    $("signin-error").hidden = false;
    return;
  }
  Object.assign(state, { user: r.user, role: r.role, permissions: r.permissions });
  $("signin").hidden = true; $("app").hidden = false; $("who").hidden = false;
  $("who-name").textContent = r.display_name;
  $("who-role").textContent = r.role; $("who-role").className = "pill " + r.role;
  $(`${r.role}-view`).hidden = false;
  document.title = `bargein · ${r.display_name}`;
  getMic().catch(() => {});
  if (r.role === "agent") setAvailability(r.state || "offline", false);
  if (r.role === "customer") {
    $("queue").innerHTML = r.queues.map((q) => `<option ${q === r.default_queue ? "selected" : ""}>${esc(q)}</option>`).join("");
  }
  if (r.role === "supervisor") {
    const s = await request("SUBSCRIBE", { event: "agents" });
    if (s.status !== 200) banner(`Agents view unavailable: ${s.reason}`);
    if (!r.permissions.includes("realtime_barge")) {
      $("mode").querySelectorAll('[data-mode="barge"],[data-mode="coach"]').forEach((b) => { b.title = "your profile cannot barge or coach"; });
    }
  }
  log(`Signed in as ${r.user} (${r.profile})`);
}

async function setAvailability(st, send = true) {
  if (send) {
    const r = await request("PUBLISH", { state: st });
    if (r.status !== 200) return banner(r.reason);
  }
  state.agentState = st;
  $("agent-state-badge").textContent = st;
  $("agent-state-badge").className = "badge " + st;
  for (const b of $("availability").querySelectorAll("button")) b.classList.toggle("selected", b.dataset.state === st);
}

document.addEventListener("click", (ev) => {
  const t = ev.target.closest("button");
  if (!t) return;
  if (t.dataset.token) signIn(t.dataset.token);
  else if (t.dataset.state) setAvailability(t.dataset.state);
  else if (t.dataset.mode) changeMode(t.dataset.mode);
  else if (t.classList.contains("monitor-btn")) monitor(t.dataset.call);
  else if (t.dataset.act) actOn(t);
});
$("token-form").onsubmit = (ev) => { ev.preventDefault(); signIn($("token").value.trim()); };
$("signout").onclick = () => { state.user = null; state.ws && state.ws.close(); location.reload(); };
$("accept").onclick = acceptIncoming;
$("decline").onclick = () => { if (state.incoming) { respond(state.incoming, 603); state.incoming = null; $("incoming").hidden = true; log("Declined"); } };
$("agent-hangup").onclick = async () => { if (state.callId) { await request("BYE", { call_id: state.callId }); log("Hung up"); cleanupCall(); } };
$("agent-mute").onclick = () => setMuted(!state.muted);
$("customer-mute").onclick = () => setMuted(!state.muted);
$("customer-call").onclick = customerCall;
$("customer-hangup").onclick = async () => {
  if (state.callId) await request("BYE", { call_id: state.callId });
  else if (state.ringingCallId) await request("CANCEL", { call_id: state.ringingCallId });
  state.ringingCallId = null;
  cleanupCall();
};
$("leave").onclick = async () => {
  if (!state.callId) return;
  const id = state.callId;
  await request("BYE", { call_id: id });
  log(`Left ${id}`);
  cleanupCall();
};
$("add-party-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const target = $("add-party").value.trim();
  if (!target || !state.callId) return;
  const r = await request("REFER", { call_id: state.callId, target });
  r.status === 202 ? log(`Inviting ${target}…`) : banner(`Could not add ${target}: ${r.reason}`);
};
window.addEventListener("load", () => {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) signIn(params.get("token"));
});
