// The dashboard: sign-in with an API token, hash routes, live updates by polling.
//
// Live pages (overview, drill-downs, job runs) poll the API every 2 seconds:
// the next request starts 2 s after the previous answer, so a slow engine is
// never asked twice at once. A 401 at any time returns to the sign-in form.

import { ApiError, call, forgetToken, keepToken, token } from "./api.js";
import { detailView, jobView, messagesView, overviewView, timelineView } from "./views.js";

const POLL_MS = 2000;

const signIn = document.getElementById("sign-in");
const signInForm = document.getElementById("sign-in-form");
const signInError = document.getElementById("sign-in-error");
const tokenInput = document.getElementById("token");
const viewRoot = document.getElementById("view");
const connection = document.getElementById("connection");
const flash = document.getElementById("flash");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");
const dialog = document.getElementById("replay-dialog");
const replayForm = document.getElementById("replay-form");
const replayReason = document.getElementById("replay-reason");
const replayError = document.getElementById("replay-error");
const replayWhat = document.getElementById("replay-what");

let current = null;
let timer = null;
let generation = 0;
let replaying = null;

function route() {
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search ?? "");
  if ((parts[0] === "destination" || parts[0] === "channel") && parts[1]) {
    return detailView(parts[0], parts[1], app);
  }
  if (parts[0] === "job" && parts[1]) return jobView(parts[1]);
  if (parts[0] === "messages") return messagesView(params);
  if (parts[0] === "event" && parts[1]) return timelineView(parts[1]);
  return overviewView();
}

function showSignIn(message) {
  stop();
  forgetToken();
  viewRoot.replaceChildren();
  signIn.hidden = false;
  signOut.hidden = true;
  who.textContent = "";
  connection.hidden = true;
  signInError.textContent = message ?? "";
  document.title = "Sign in — thumpflow";
  tokenInput.focus();
}

function stop() {
  generation += 1;
  clearTimeout(timer);
  timer = null;
}

async function tick(mine) {
  if (mine !== generation || !current) return;
  try {
    await current.refresh();
    if (mine !== generation) return;
    connection.hidden = true;
    document.body.dataset.ready = "true";
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status === 401) {
      showSignIn("Your token is no longer accepted (it may have been revoked). Sign in again.");
      return;
    }
    connection.hidden = false;
    connection.textContent = error instanceof ApiError && error.status === 0
      ? "The engine cannot be reached; trying again every 2 seconds."
      : `Could not update: ${error.detail ?? error.message}`;
  }
  if (mine === generation && current.live) timer = setTimeout(() => tick(mine), POLL_MS);
}

function show() {
  stop();
  flash.textContent = "";
  if (!token()) {
    showSignIn();
    return;
  }
  signIn.hidden = true;
  signOut.hidden = false;
  document.body.dataset.ready = "false";
  current = route();
  document.title = `${current.title} — thumpflow`;
  viewRoot.replaceChildren(current.node);
  tick(generation);
}

const app = {
  refreshNow() {
    stop();
    tick(generation);
  },
  replay(letter) {
    replaying = letter;
    replayWhat.textContent = `Delivery ${letter.delivery_id} of event ${letter.event_id} to ${letter.destination_id}, dead because: ${letter.reason}`;
    replayReason.value = "";
    replayError.textContent = "";
    dialog.showModal();
    replayReason.focus();
  },
};

async function recordSession(bearer) {
  // Another part of the API may record logins (POST /api/session); without it, nothing to do.
  try {
    const session = await call("/api/session", { method: "POST", body: {}, bearer });
    if (session && session.name) {
      who.textContent = session.role ? `Signed in as ${session.name} (${session.role})` : `Signed in as ${session.name}`;
    }
  } catch {
    // absent or refused: the overview call below decides whether the token works
  }
}

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = tokenInput.value.trim();
  if (!candidate) {
    signInError.textContent = "Paste an API token first.";
    return;
  }
  signInError.textContent = "Checking the token…";
  try {
    await call("/api/overview", { bearer: candidate });
  } catch (error) {
    if (error.status === 401) {
      signInError.textContent = "The engine did not accept this token. Paste the whole token (for example from var/admin-token) and check that it has not been revoked.";
    } else if (error.status === 403) {
      signInError.textContent = "This token's role may not read the dashboard (it may only send messages).";
    } else {
      signInError.textContent = `Cannot sign in: ${error.detail}`;
    }
    tokenInput.select();
    return;
  }
  keepToken(candidate);
  tokenInput.value = "";
  signInError.textContent = "";
  await recordSession(candidate);
  show();
});

signOut.addEventListener("click", () => showSignIn("Signed out."));

document.getElementById("replay-cancel").addEventListener("click", () => dialog.close());

replayForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = replayReason.value.trim();
  if (!reason) {
    replayError.textContent = "Give a reason: it is recorded in the audit trail.";
    replayReason.focus();
    return;
  }
  const letter = replaying;
  replayError.textContent = "Replaying…";
  try {
    const result = await call("/api/dead-letters/replay", {
      method: "POST",
      body: { delivery_ids: [letter.delivery_id], reason },
    });
    dialog.close();
    flash.textContent = result.replayed.length
      ? `Replayed delivery ${letter.delivery_id}; it is back in the outbox of ${letter.destination_id}.`
      : `Delivery ${letter.delivery_id} was no longer dead; nothing replayed.`;
    app.refreshNow();
  } catch (error) {
    replayError.textContent = error.status === 403
      ? `Not allowed: ${error.detail}.`
      : `Replay failed: ${error.detail}`;
  }
});

window.addEventListener("hashchange", show);
show();
