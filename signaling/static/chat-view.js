// Chat contacts (docs/protocol.md, "Chat"): one panel per page, whatever the role.
// - customer: start a chat to a queue, type, end it;
// - agent: accept offered chats (several at once), type in each, end them;
// - supervisor: live chats per agent (from the agents view), open one read-only, barge to write.
// The panel builds its own DOM inside #chat-panel and only sees frames that carry a contact_id
// (app.js routes them here), so the call views are untouched.

import { $, esc } from "./dom.js";

const CHAT_TIMEOUT_MS = 180_000;
const CHAT_MODE = { monitor: "reading only", barge: "writing to both", coach: "writing to the agent" };  // waiting in the queue: provisional responses restart it anyway

export class ChatPanel {
  constructor(ctx, role) {
    this.ctx = ctx;
    this.client = ctx.client;
    this.role = role;
    this.chats = new Map();  // contact_id -> {lines: [], peer, mode, offer}
    this.agents = [];
    this.root = $("chat-panel");
    this.root.hidden = false;
    this.root.innerHTML = `
      <h2>Chats</h2>
      <div class="chat-start" ${role === "customer" ? "" : "hidden"}>
        <button id="chat-start">Start a chat</button>
      </div>
      <div class="chat-agents" ${role === "supervisor" ? "" : "hidden"}>
        <table><caption>Live chats per agent</caption>
          <thead><tr><th scope="col">Agent</th><th scope="col">Chats</th><th scope="col">Open</th></tr></thead>
          <tbody id="chat-agents-body"></tbody></table>
      </div>
      <ul id="chat-offers" class="chat-offers" aria-live="polite"></ul>
      <div id="chat-list"></div>`;
    this.root.addEventListener("click", (ev) => this.onClick(ev));
    this.root.addEventListener("submit", (ev) => this.onSubmit(ev));
    this.render();  // an empty panel says what will appear in it
  }

  /** Frames that belong to a chat (a contact_id, or the agents view for the supervisor's picker). */
  static wants(msg) { return msg.contact_id != null || msg.channel === "chat"; }

  // ---------------------------------------------------------------- server frames
  onRequest(msg) {
    const id = msg.contact_id;
    switch (msg.method) {
      case "INVITE":  // an offered chat (agents)
        if (this.role !== "agent") { this.client.respond(msg, 603); return; }
        this.chats.set(id, { lines: [], peer: msg.from, offer: msg, mode: null });
        this.ctx.log(`Chat ${id} offered from ${msg.from}`);
        return this.render();
      case "CANCEL":
        this.chats.delete(id);
        this.ctx.log(`Chat ${id} withdrawn: ${msg.reason || ""}`);
        return this.render();
      case "ACK":
        for (const e of msg.transcript || []) this.add(id, e);
        return this.render();
      case "MESSAGE":
        this.add(id, msg);
        return this.render();
      case "BYE":
        return this.ended(id, msg.reason);
    }
  }

  onNotify(msg) {
    if (msg.event === "agents") { this.agents = msg.agents || []; this.renderAgents(); }
    else if (msg.event === "session-ended" && msg.contact_id) this.ended(msg.contact_id, msg.reason);
    else if (msg.event === "chat-state" && this.chats.has(msg.contact_id)) {
      this.chats.get(msg.contact_id).watchers = msg.supervisors || [];
      this.render();
    }
  }

  add(id, entry) {
    const chat = this.chats.get(id);
    if (!chat || chat.lines.some((l) => l.seq === entry.seq)) return;
    chat.lines.push(entry);
    chat.lines.sort((a, b) => a.seq - b.seq);
  }

  ended(id, reason) {
    const chat = this.chats.get(id);
    if (!chat) return;
    chat.ended = reason || "ended";
    this.ctx.log(`Chat ${id} ended: ${chat.ended}`);
    this.render();
  }

  // ---------------------------------------------------------------- actions
  async start() {
    const queue = ($("queue") && $("queue").value) || "support";
    const r = await this.client.request("INVITE", { to: `queue:${queue}`, channel: "chat" }, {
      timeoutMs: CHAT_TIMEOUT_MS,
      onProvisional: (p) => {
        if (p.contact_id && !this.chats.has(p.contact_id)) {
          this.chats.set(p.contact_id, { lines: [], peer: "waiting for an agent…", mode: null });
          this.render();
        }
      },
    });
    if (r.status !== 200) {
      if (r.contact_id) this.chats.delete(r.contact_id);
      this.ctx.banner(`Chat failed: ${r.reason}`);
      return this.render();
    }
    const chat = this.chats.get(r.contact_id) || { lines: [], mode: null };
    chat.peer = r.display || r.agent;
    this.chats.set(r.contact_id, chat);
    this.render();
  }

  async accept(id) {
    const chat = this.chats.get(id);
    if (!chat || !chat.offer) return;
    this.client.respond(chat.offer, 200);
    chat.offer = null;
    this.render();
  }

  decline(id) {
    const chat = this.chats.get(id);
    if (chat && chat.offer) this.client.respond(chat.offer, 603);
    this.chats.delete(id);
    this.render();
  }

  async open(id) {
    if (this.chats.has(id)) return;
    const r = await this.client.request("INVITE", { to: `chat:${id}` });
    if (r.status !== 200) { this.ctx.banner(`Cannot open chat: ${r.reason}`); return; }
    this.chats.set(id, { lines: [...r.transcript], peer: `${r.agent} ↔ ${r.customer}`, mode: r.mode });
    this.render();
  }

  /** Moves the keyboard (and the view) to an open chat. */
  focus(id) {
    const head = this.root.querySelector(`section[data-chat-id="${CSS.escape(id)}"] h3`);
    if (head) { head.focus(); head.scrollIntoView({ block: "nearest" }); }
  }

  async setMode(id, mode) {
    const r = await this.client.request("INFO", { call_id: id, action: "mode", mode });
    if (r.status !== 200) { this.ctx.banner(`${mode} refused: ${r.reason}`); return; }
    this.chats.get(id).mode = r.mode;
    this.render();
  }

  async send(id, input) {
    const text = input.value.trim();
    if (!text) return;
    const r = await this.client.request("MESSAGE", { contact_id: id, text });
    if (r.status !== 200) { this.ctx.banner(`Not sent: ${r.reason}`); return; }
    input.value = "";
    const me = this.role === "supervisor" ? "supervisor" : this.role;
    this.add(id, { seq: r.seq, at: r.at, from: me, user: this.ctx.me.user, display: "You", text });
    this.render();
  }

  async end(id) {
    const chat = this.chats.get(id);
    if (chat && !chat.ended) await this.client.request("BYE", { call_id: id });
    this.chats.delete(id);
    this.render();
  }

  onClick(ev) {
    const b = ev.target.closest("button");
    if (!b) return;
    const id = b.dataset.chat;
    if (b.id === "chat-start") return this.start();
    switch (b.dataset.act) {
      case "accept": return this.accept(id);
      case "decline": return this.decline(id);
      case "open": return this.open(id);
      case "barge": return this.setMode(id, "barge");
      case "monitor": return this.setMode(id, "monitor");
      case "end": return this.end(id);
    }
  }

  onSubmit(ev) {
    const form = ev.target.closest("form[data-chat]");
    if (!form) return;
    ev.preventDefault();
    this.send(form.dataset.chat, form.querySelector("input"));
  }

  // ---------------------------------------------------------------- drawing
  renderAgents() {
    const body = $("chat-agents-body");
    if (!body) return;
    const busy = this.agents.filter((a) => a.online && a.chat_count);
    if (!busy.length) { body.innerHTML = `<tr><td colspan="3" class="muted">No live chats right now.</td></tr>`; return; }
    body.innerHTML = busy.map((a) => `<tr>
        <td>${esc(a.display_name)}</td><td>${a.chat_count || 0}</td>
        <td>${(a.chats || []).map((c) => `<button data-act="open" data-chat="${esc(c.contact_id)}"
          aria-label="Open chat ${esc(c.contact_id)} with ${esc(c.customer)}">${esc(c.contact_id)}</button>`).join(" ")}</td>
      </tr>`).join("");
  }

  render() {
    const list = $("chat-list");
    if (!this.chats.size && this.role === "agent") {
      list.innerHTML = `<p class="muted small">No chats right now. Chats offered to you appear here.</p>`;
      return;
    }
    const focused = document.activeElement?.matches?.("#chat-list h3") ? document.activeElement.closest("[data-chat-id]").dataset.chatId : null;
    list.innerHTML = [...this.chats].map(([id, c]) => {
      const lines = c.lines.map((l) => `<li class="chat-line from-${esc(l.from)}${l.whisper ? " whisper" : ""}">
          <b>${esc(l.display || l.from)}</b>: ${esc(l.text)}</li>`).join("");
      const canWrite = !c.ended && !c.offer && (this.role !== "supervisor" || c.mode === "barge");
      const sup = this.role === "supervisor" && !c.ended ? (c.mode === "barge"
        ? `<button data-act="monitor" data-chat="${esc(id)}">Stop writing</button>`
        : `<button data-act="barge" data-chat="${esc(id)}">Barge (write)</button>`) : "";
      const offer = c.offer ? `<button data-act="accept" data-chat="${esc(id)}">Accept</button>
          <button data-act="decline" data-chat="${esc(id)}">Decline</button>` : "";
      const endLabel = c.ended ? "Close" : this.role === "supervisor" ? "Leave" : "End chat";
      return `<section class="chat card" aria-label="Chat ${esc(id)}" data-chat-id="${esc(id)}">
          <h3 tabindex="-1">${esc(id)} · ${esc(c.peer || "")}${c.mode ? ` · ${esc(CHAT_MODE[c.mode] || c.mode)}` : ""}${c.ended ? ` · ended: ${esc(c.ended)}` : ""}</h3>
          <ol class="chat-lines" aria-live="polite">${lines}</ol>
          ${canWrite ? `<form data-chat="${esc(id)}"><label>Message <input maxlength="4000" autocomplete="off"></label>
            <button type="submit">Send</button></form>` : ""}
          ${offer}${sup}<button data-act="end" data-chat="${esc(id)}">${endLabel}</button>
        </section>`;
    }).join("");
    if (focused) this.root.querySelector(`section[data-chat-id="${CSS.escape(focused)}"] h3`)?.focus({ preventScroll: true });  // redrawn: keep focus
  }
}
