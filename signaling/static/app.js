// bargein web client (ES modules, no build step): sign-in, then one view per role.
// Signaling over /ws (docs/protocol.md) in signaling.js, audio over WebRTC in media.js.

import { ActivityLog } from "./activity.js";
import { AgentView } from "./agent-view.js";
import { ChatPanel } from "./chat-view.js";
import { CustomerView } from "./customer-view.js";
import { $, banner, hideBanner } from "./dom.js";
import { Media } from "./media.js";
import { SignalingClient } from "./signaling.js";
import { SupervisorView } from "./supervisor-view.js";

const VIEWS = { agent: AgentView, customer: CustomerView, supervisor: SupervisorView };
const METER_MS = 100;

const activity = new ActivityLog($("log"));
const media = new Media({ remoteAudio: $("remote-audio"), onFailed: () => banner("Audio connection failed.") });
let client = null;
let view = null;
let me = null;

// what tests (and curious developers) may read: levels in dBFS at a frequency, of what this page hears / sends
window.bargein = {
  levelAt: (hz) => media.levelAt("heard", hz),
  sentLevelAt: (hz) => media.levelAt("sent", hz),
  get media() { return media; },
  get client() { return client; },
  get view() { return view; },
};

async function signIn(token) {
  hideBanner();
  $("signin-error").hidden = true;
  client = new SignalingClient();
  let r;
  try {
    await client.connect();
    r = await client.request("REGISTER", { token });
    if (r.status !== 200) throw new Error(r.reason);
  } catch (e) {
    client.close();
    $("signin-error").textContent = `Sign-in failed: ${e.message || "the server refused the token"}`;
    $("signin-error").hidden = false;
    return;
  }
  $("conn-state").classList.add("up");
  me = { user: r.user, role: r.role, permissions: r.permissions, displayName: r.display_name, profile: r.profile };
  const ctx = { client, media, me, banner, hideBanner, log: (text) => activity.add(text) };
  view = new VIEWS[r.role](ctx);
  const chats = new ChatPanel(ctx, r.role);
  window.bargein.chats = chats;
  client.on("request", (msg) => (ChatPanel.wants(msg) ? chats : view).onRequest(msg));
  client.on("notify", (msg) => {
    if (msg.event === "agents") chats.onNotify(msg);  // the chat picker reads the same agents view
    (ChatPanel.wants(msg) ? chats : view).onNotify(msg);
  });
  client.on("close", () => {
    $("conn-state").classList.remove("up");
    if (me) banner("Connection to the server lost. Sign in again.");
    view.onClose();
  });

  $("signin").hidden = true; $("app").hidden = false; $("who").hidden = false;
  $("who-name").textContent = r.display_name;
  $("who-role").textContent = r.role; $("who-role").className = "pill " + r.role;
  $(`${r.role}-view`).hidden = false;
  document.title = `bargein · ${r.display_name}`;
  media.getMic().catch(() => {
    $("mic-state").textContent = "microphone blocked";
    banner("Microphone permission is needed for calls: allow it for this site in your browser.");
  });
  await view.start(r);
  activity.add(`Signed in as ${r.user} (${r.profile})`);
}

$("demo-users").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-token]");
  if (b) signIn(b.dataset.token);
});
$("token-form").onsubmit = (ev) => { ev.preventDefault(); signIn($("token").value.trim()); };
$("signout").onclick = () => { me = null; if (client) client.close(); location.reload(); };

setInterval(() => {
  $("meter-sent").style.width = media.meter("sent") + "%";
  $("meter-heard").style.width = media.meter("heard") + "%";
}, METER_MS);

const token = new URLSearchParams(location.search).get("token");
if (token) signIn(token);
