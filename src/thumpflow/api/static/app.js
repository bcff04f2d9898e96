// The dashboard: sign-in with an API token, hash routes, live updates by polling.
//
// Live pages (overview, drill-downs, job runs, timelines) poll the API every
// 2 seconds: the next request starts 2 s after the previous answer, so a slow
// engine is never asked twice at once. A 401 at any time returns to the
// sign-in form. Every act (replay, pause, resume, acknowledge, open a
// payload) goes through one dialog that asks for a reason; the engine audits
// it under the token's name.

import { ApiError, call, forgetToken, keepToken, keepWho, token, who } from "./api.js";
import { bedsView } from "./beds.js";
import { detailView, jobView, messagesView, overviewView, timelineView } from "./views.js";
import { rejectView, rejectsView } from "./rejects.js";
import { deadLetterView, deadLettersView } from "./deadletters.js";

const POLL_MS = 2000;

const signIn = document.getElementById("sign-in");
const signInForm = document.getElementById("sign-in-form");
const signInError = document.getElementById("sign-in-error");
const tokenInput = document.getElementById("token");
const viewRoot = document.getElementById("view");
const connection = document.getElementById("connection");
const flash = document.getElementById("flash");
const whoText = document.getElementById("who");
const signOut = document.getElementById("sign-out");
const dialog = document.getElementById("act-dialog");
const actForm = document.getElementById("act-form");
const actTitle = document.getElementById("act-title");
const actReason = document.getElementById("act-reason");
const actError = document.getElementById("act-error");
const actWhat = document.getElementById("act-what");
const actConfirm = document.getElementById("act-confirm");
const actOption = document.getElementById("act-option");
const actOptionBox = document.getElementById("act-option-box");
const actOptionLabel = document.getElementById("act-option-label");

// An act the engine declined (nothing changed): its message is shown as is,
// and the dialog stays open so the operator can change the choice.
class Refused extends Error {}

let current = null;
let timer = null;
let generation = 0;
let acting = null;

function route() {
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search ?? "");
  if ((parts[0] === "destination" || parts[0] === "channel") && parts[1]) {
    return detailView(parts[0], parts[1], app);
  }
  if (parts[0] === "job" && parts[1]) return jobView(parts[1]);
  if (parts[0] === "messages") return messagesView(params);
  if (parts[0] === "rejects") return rejectsView(params);
  if (parts[0] === "dead-letters") return deadLettersView(params, app);
  if (parts[0] === "dead-letter" && parts[1]) return deadLetterView(parts[1], app);
  if (parts[0] === "reject" && parts[1]) return rejectView(parts[1], app);
  if (parts[0] === "beds") return bedsView(app);
  if (parts[0] === "event" && parts[1]) return timelineView(parts[1], app);
  return overviewView(app);
}

function showSignIn(message) {
  stop();
  forgetToken();
  viewRoot.replaceChildren();
  signIn.hidden = false;
  signOut.hidden = true;
  whoText.textContent = "";
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
  const session = who();
  whoText.textContent = session ? `Signed in as ${session.name} (${session.role})` : "";
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
  // Ask for a reason (and, with `option`, a checkbox labelled with it, unticked),
  // then `perform(reason, ticked)`; its answer (a sentence) is flashed.
  // `failed` names the act in an error ("Replay failed: ...").
  act({ title, what, confirm, failed, option, perform }) {
    acting = { failed, perform };
    actTitle.textContent = title;
    actWhat.textContent = what;
    actConfirm.textContent = confirm;
    actReason.value = "";
    actError.textContent = "";
    actOption.hidden = !option;
    actOptionBox.checked = false;
    actOptionLabel.textContent = option ?? "";
    dialog.showModal();
    actReason.focus();
  },
  // A replay the engine refuses (a newer message of the same ordering key was
  // delivered) keeps the dialog open with why; ticking "out of order" sends it.
  replay(letter) {
    app.act({
      title: "Replay dead letter",
      what: `Delivery ${letter.delivery_id} of event ${letter.event_id} to ${letter.destination_id}, dead because: ${letter.reason}`,
      confirm: "Replay",
      failed: "Replay",
      option: "Deliver out of order: replay even if a newer message of the same ordering key was already delivered (it may overwrite newer data at the receiver)",
      async perform(reason, outOfOrder) {
        const result = await call("/api/dead-letters/replay", {
          method: "POST",
          body: { delivery_ids: [letter.delivery_id], reason, out_of_order: outOfOrder },
        });
        if (result.refused.length) {
          throw new Refused(`Not replayed: ${result.refused[0].reason}. Tick “Deliver out of order” to send it anyway.`);
        }
        if (!result.replayed.length) return `Delivery ${letter.delivery_id} was no longer dead; nothing replayed.`;
        return result.out_of_order.length
          ? `Replayed delivery ${letter.delivery_id} out of order; it is back in the outbox of ${letter.destination_id}.`
          : `Replayed delivery ${letter.delivery_id}; it is back in the outbox of ${letter.destination_id}.`;
      },
    });
  },
};

async function recordSession(bearer) {
  // Records a login in the audit trail and says who the token belongs to.
  try {
    const session = await call("/api/session", { method: "POST", body: {}, bearer });
    if (session && session.name) keepWho(session);
  } catch {
    // refused or unreachable: the overview call before decided that the token works
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

document.getElementById("act-cancel").addEventListener("click", () => dialog.close());

actForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = actReason.value.trim();
  if (!reason) {
    actError.textContent = "Give a reason: it is recorded in the audit trail.";
    actReason.focus();
    return;
  }
  const { failed, perform } = acting;
  actError.textContent = "Working…";
  try {
    const done = await perform(reason, !actOption.hidden && actOptionBox.checked);
    dialog.close();
    flash.textContent = done ?? "";
    app.refreshNow();
  } catch (error) {
    if (error instanceof Refused) actError.textContent = error.message;
    else if (error.status === 403) actError.textContent = `Not allowed: ${error.detail}.`;
    else actError.textContent = `${failed} failed: ${error.detail ?? error.message}`;
  }
});

window.addEventListener("hashchange", show);
show();
