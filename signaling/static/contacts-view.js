// The "Contacts" page (users with access_metrics): search past and live contacts, open one, play its
// recording, read its transcript, see who monitored, barged or coached and when. REST: docs/records.md.

import { $, esc, formatDuration } from "./dom.js";

const MODE_LABEL = { monitor: "monitored", barge: "barged", coach: "coached" };

const when = (t) => (t == null ? "" : new Date(t * 1000).toLocaleString());
const clock = (t) => (t == null ? "" : new Date(t * 1000).toLocaleTimeString());

export class ContactsView {
  constructor({ token, me, queues }) {
    this.token = token;
    this.me = me;
    this.canPlay = me.permissions.includes("recordings_download");
    this.cursor = null;
    this.rows = [];
    this.open = null;
    this.analyser = null;
    $("contacts-queue").innerHTML = `<option value="">any queue</option>` +
      (queues || []).map((q) => `<option>${esc(q)}</option>`).join("");
    $("contacts-form").onsubmit = (ev) => { ev.preventDefault(); this.search(); };
    $("contacts-more").onclick = () => this.search(true);
    $("contacts-body").addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-id]");
      if (tr) this.show(tr.dataset.id);
    });
    $("contact-close").onclick = () => this.closeContact();
  }

  async api(path) {
    const r = await fetch(path, { headers: { Authorization: `Bearer ${this.token}` } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.reason || `HTTP ${r.status}`);
    return body;
  }

  query() {
    const q = new URLSearchParams();
    for (const [name, id] of [["channel", "contacts-channel"], ["queue", "contacts-queue"], ["agent", "contacts-agent"]]) {
      const v = $(id).value.trim();
      if (v) q.set(name, v);
    }
    for (const [name, id] of [["from", "contacts-from"], ["to", "contacts-to"]]) {
      const v = $(id).value;  // datetime-local is local time; the API takes seconds since the epoch
      if (v) q.set(name, String(new Date(v).getTime() / 1000));
    }
    q.set("limit", "25");
    return q;
  }

  async search(more = false) {
    const q = this.query();
    if (more && this.cursor) q.set("cursor", this.cursor);
    $("contacts-error").hidden = true;
    try {
      const body = await this.api(`/api/contacts?${q}`);
      this.rows = more ? this.rows.concat(body.contacts) : body.contacts;
      this.cursor = body.next_cursor;
    } catch (e) {
      $("contacts-error").textContent = `Search failed: ${e.message}`;
      $("contacts-error").hidden = false;
      return;
    }
    this.renderList();
  }

  renderList() {
    $("contacts-more").hidden = !this.cursor;
    const body = $("contacts-body");
    if (!this.rows.length) { body.innerHTML = `<tr><td colspan="8" class="muted">No contacts</td></tr>`; return; }
    body.innerHTML = this.rows.map((c) => {
      const dur = c.connected != null && c.disconnected != null ? formatDuration(c.disconnected - c.connected) : "";
      const state = c.disconnected == null ? `<span class="badge on-call">live</span>` : esc(c.disconnect_reason);
      const rec = c.recording_path ? (c.recording_error ? "⚠ failed" : "recorded") : "";
      return `<tr data-id="${esc(c.contact_id)}" class="${this.open === c.contact_id ? "mine" : ""}">
        <td class="c-when"><button class="link" aria-label="Open the ${esc(c.channel)} contact of ${when(c.initiated)}">${when(c.initiated)}</button></td>
        <td data-label="Channel">${esc(c.channel)}</td><td data-label="Queue">${esc(c.queue)}</td>
        <td data-label="Customer">${esc(c.customer)}</td><td data-label="Agent">${esc(c.agent)}</td>
        <td class="timer" data-label="Duration">${dur}</td><td data-label="Ended">${state}</td>
        <td data-label="Recording" title="${c.recording_error ? esc(c.recording_error) : ""}">${rec}</td></tr>`;
    }).join("");
  }

  async show(id) {
    let c;
    try {
      c = await this.api(`/api/contacts/${encodeURIComponent(id)}`);
    } catch (e) {
      $("contacts-error").textContent = `Could not open the contact: ${e.message}`;
      $("contacts-error").hidden = false;
      return;
    }
    this.open = id;
    this.renderList();
    $("contact").hidden = false;
    $("contact-title").textContent = `${c.channel === "chat" ? "Chat" : "Voice call"} · ${c.call_id} · ${c.queue}`;
    const parties = [c.customer && `customer ${c.customer}`, c.agent && `agent ${c.agent}`,
      ...c.parties.map((p) => `party ${p}`)].filter(Boolean);
    $("contact-facts").innerHTML = `
      <dt>Contact</dt><dd>${esc(c.contact_id)}</dd>
      <dt>Parties</dt><dd>${esc(parties.join(", "))}</dd>
      <dt>Initiated</dt><dd>${when(c.initiated)}</dd>
      <dt>Connected</dt><dd>${c.connected != null ? when(c.connected) : "not answered"}</dd>
      <dt>Disconnected</dt><dd>${c.disconnected != null ? `${when(c.disconnected)} · ${esc(c.disconnect_reason)}` : "live"}</dd>`;
    this.renderSessions(c.monitor_sessions);
    this.renderRecording(c);
    await this.renderTranscript(c);
  }

  renderSessions(sessions) {
    const list = $("contact-sessions");
    if (!sessions.length) { list.innerHTML = `<li class="muted">Nobody monitored this contact.</li>`; return; }
    list.innerHTML = sessions.map((s) => {
      const steps = [`${clock(s.started)} ${MODE_LABEL[s.initial_mode] || s.initial_mode}`,
        ...s.mode_changes.map((m) => `${clock(m.at)} ${MODE_LABEL[m.mode] || m.mode}`)];
      const end = s.ended != null ? ` · left ${clock(s.ended)} (${esc(s.end_reason)})` : " · still on the call";
      return `<li data-supervisor="${esc(s.supervisor)}"><strong>${esc(s.supervisor)}</strong>: ${steps.map(esc).join(" → ")}${end}</li>`;
    }).join("");
  }

  renderRecording(c) {
    const audio = $("contact-audio");
    const note = $("contact-recording-note");
    audio.pause();
    if (!c.recording_path) {
      audio.hidden = true; audio.removeAttribute("src");
      note.textContent = c.channel === "voice" ? "Not recorded." : "";
    } else if (!this.canPlay) {
      audio.hidden = true; audio.removeAttribute("src");
      note.textContent = `Recorded; your profile (${this.me.profile}) lacks recordings_download.`;
    } else {
      // <audio> cannot send an Authorization header: the token goes in the query; the server answers ranges
      audio.src = `/api/contacts/${encodeURIComponent(c.contact_id)}/recording?token=${encodeURIComponent(this.token)}`;
      audio.hidden = false;
      note.textContent = "Left: agent (and a barging supervisor) · right: customer.";
    }
    if (c.recording_error) note.textContent += ` The recording stopped early: ${c.recording_error}`;
  }

  async renderTranscript(c) {
    const box = $("contact-transcript");
    box.hidden = !c.transcript_path;
    if (!c.transcript_path) return;
    try {
      const t = await this.api(`/api/contacts/${encodeURIComponent(c.contact_id)}/transcript`);
      box.innerHTML = `<h3>Transcript</h3><ul class="log">${(t.messages || []).map((m) =>
        `<li><time>${clock(m.at)}</time><strong>${esc(m.from)}</strong> ${esc(m.text)}</li>`).join("")}</ul>`;
    } catch (e) {
      box.textContent = `Transcript unavailable: ${e.message}`;
    }
  }

  closeContact() {
    $("contact-audio").pause();
    $("contact").hidden = true;
    this.open = null;
    this.renderList();
  }

  /** RMS (0..1) of what the recording player is playing now (tests; a level meter could use it too). */
  playbackLevel() {
    const audio = $("contact-audio");
    if (!this.analyser) {
      const ctx = new AudioContext();
      const src = ctx.createMediaElementSource(audio);
      this.analyser = ctx.createAnalyser();
      src.connect(this.analyser);
      this.analyser.connect(ctx.destination);
      ctx.resume();
    }
    const buf = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buf);
    return Math.sqrt(buf.reduce((s, x) => s + x * x, 0) / buf.length);
  }
}
