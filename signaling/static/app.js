// bargein web client (ES modules, no build step): sign-in, then one view per role.
// Signaling over /ws (docs/protocol.md) in signaling.js, audio over WebRTC in media.js.

import { ActivityLog } from "./activity.js";
import { AgentView } from "./agent-view.js";
import { ContactsView } from "./contacts-view.js";
import { serverClock, tick, TICK_MS } from "./clock.js";
import { ChatPanel } from "./chat-view.js";
import { CustomerView } from "./customer-view.js";
import { $, announce, banner, hideBanner } from "./dom.js";
import { Media } from "./media.js";
import { SignalingClient } from "./signaling.js";
import { SupervisorView } from "./supervisor-view.js";

const VIEWS = { agent: AgentView, customer: CustomerView, supervisor: SupervisorView };
const METER_MS = 100;
const MIC_TEXT = { off: "off", on: "on", muted: "muted", blocked: "blocked" };

const activity = new ActivityLog($("log"));
const media = new Media({ remoteAudio: $("remote-audio"), onFailed: () => banner("Audio connection failed.") });
let client = null;
let view = null;
let me = null;
let contacts = null;  // the Contacts page, for users with access_metrics

// what tests (and curious developers) may read: levels in dBFS at a frequency, of what this page hears / sends
window.bargein = {
  levelAt: (hz) => media.levelAt("heard", hz),
  sentLevelAt: (hz) => media.levelAt("sent", hz),
  get media() { return media; },
  get client() { return client; },
  get view() { return view; },
  get contacts() { return contacts; },
  notifies: 0,  // NOTIFYs received, so tests can tell a tick from an update
};

function showConnected(up) {
  $("conn-state").classList.toggle("up", up);
  $("conn-text").textContent = up ? "connected" : "offline";
}

async function signIn(token) {
  hideBanner();
  $("signin-error").hidden = true;
  client = new SignalingClient();
  let r;
  try {
    await client.connect();
    const sentAt = Date.now();
    r = await client.request("REGISTER", { token });
    serverClock.sync(r.server_time, sentAt, Date.now());
    if (r.status !== 200) throw new Error(r.reason);
  } catch (e) {
    client.close();
    $("signin-error").textContent = `Sign-in failed: ${e.message || "the server refused the token"}`;
    $("signin-error").hidden = false;
    return;
  }
  showConnected(true);
  me = { user: r.user, role: r.role, permissions: r.permissions, displayName: r.display_name, profile: r.profile };
  const ctx = { client, media, me, banner, hideBanner, announce, log: (text) => activity.add(text) };
  view = new VIEWS[r.role](ctx);
  const chats = new ChatPanel(ctx, r.role);
  ctx.chats = chats;  // the supervisor's table and tiles open chats in it
  window.bargein.chats = chats;
  client.on("request", (msg) => (ChatPanel.wants(msg) ? chats : view).onRequest(msg));
  client.on("notify", (msg) => {
    window.bargein.notifies += 1;
    if (msg.event === "agents") chats.onNotify(msg);  // the chat picker reads the same agents view
    (ChatPanel.wants(msg) ? chats : view).onNotify(msg);
  });
  client.on("close", () => {
    showConnected(false);
    if (me) banner("Connection to the server lost. Sign in again.");
    view.onClose();
  });

  $("signin").hidden = true; $("app").hidden = false; $("who").hidden = false;
  $("who-name").textContent = r.display_name;
  $("who-role").textContent = r.role; $("who-role").className = "pill " + r.role;
  $(`${r.role}-view`).hidden = false;
  document.body.classList.add(`role-${r.role}`);
  document.title = `bargein · ${r.display_name}`;
  if (r.permissions.includes("access_metrics")) showContactsTab(token, r);
  await view.start(r);
  activity.add(`Signed in as ${r.user} (${r.profile})`);
  $("main").focus({ preventScroll: true });  // the top bar (who you are, Sign out) stays in view
}

// the Contacts page sits beside the role's own view: the tab switches between the two
function showContactsTab(token, reg) {
  contacts = new ContactsView({ token, me, queues: reg.queues });
  const tab = $("contacts-tab");
  tab.hidden = false;
  tab.onclick = () => {
    const opening = $("contacts-view").hidden;
    $("contacts-view").hidden = !opening;
    $(`${reg.role}-view`).hidden = opening;
    $("chat-panel").hidden = opening;  // live chats belong to the live page
    tab.textContent = opening ? "Live" : "Contacts";
    if (opening) contacts.search();
  };
}

$("demo-users").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-token]");
  if (b) signIn(b.dataset.token);
});
$("token-form").onsubmit = (ev) => { ev.preventDefault(); signIn($("token").value.trim()); };
$("signout").onclick = () => { me = null; media.endCall(); if (client) client.close(); location.reload(); };
$("banner-close").onclick = hideBanner;

function setText(id, text, warn = false) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
  if (el) el.classList.toggle("warn", warn);
}

setInterval(() => {
  $("meter-sent").style.width = media.meter("sent") + "%";
  $("meter-heard").style.width = media.meter("heard") + "%";
  const mic = media.micState();
  setText("mic-state", MIC_TEXT[mic], mic === "blocked");
  const hearing = media.heard ? (media.talking("heard") ? "talking" : "quiet") : "nothing";
  setText("heard-state", hearing);
  setText("talk-heard-text", hearing === "talking" ? "someone is talking" : hearing);
  $("talk-heard")?.classList.toggle("on", hearing === "talking");
  $("talk-me")?.classList.toggle("on", media.micState() === "on" && media.talking("sent"));
}, METER_MS);

setInterval(() => tick(), TICK_MS);

const token = new URLSearchParams(location.search).get("token");
if (token) signIn(token);
