// Flow rejects: the messages channels refused, why, and fixing and reprocessing one.
// The list (GET /api/rejects) shows ids, channels, times, peers and reasons only.
// A reject's page opens its message after asking for a reason (audited by the
// engine before it answers), lets it be edited, and reprocesses it (POST
// /api/rejects/{id}/reprocess, with a reason) the way it came in (MLLP or HTTP
// ingest, HL7 v2 or FHIR JSON), showing the channel's answer.

import { call, mayAct, query } from "./api.js";
import { dateTime, el } from "./format.js";

export function rejectsView(params) {
  const channel = el("input", { id: "rejects-channel", name: "channel", value: params.get("channel") ?? "" });
  const contains = el("input", { id: "rejects-contains", name: "contains", value: params.get("contains") ?? "" });
  const rows = el("tbody");
  const outcome = el("p", { id: "rejects-outcome", role: "status" });
  const form = el("form", { class: "search", id: "rejects-search", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/rejects${query({ channel: channel.value.trim(), contains: contains.value.trim() })}`;
  } },
  el("div", { class: "field" }, el("label", { for: "rejects-channel" }, "Channel"), channel),
  el("div", { class: "field" }, el("label", { for: "rejects-contains" }, "Reason contains"), contains),
  el("button", { type: "submit", id: "rejects-button" }, "Search"));
  const node = el("div", {},
    el("h1", {}, "Rejected messages"),
    el("p", { class: "hint" }, "Messages a channel refused, kept as received with the reason. Open one to fix and reprocess it."),
    form, outcome,
    el("table", { class: "grid", id: "rejects" },
      el("thead", {}, el("tr", {}, ["Reject", "Received", "Channel", "Peer", "Reason"]
        .map((label) => el("th", { scope: "col" }, label)))),
      rows));
  return {
    node,
    live: true,
    title: "Rejected messages",
    async refresh() {
      const answer = await call(`/api/rejects${query({ channel: params.get("channel"), contains: params.get("contains") })}`);
      rows.replaceChildren(...answer.rejects.map((reject) => el("tr", { dataset: { reject: String(reject.reject_id) } },
        el("td", {}, el("a", { href: `#/reject/${reject.reject_id}` }, String(reject.reject_id))),
        el("td", {}, dateTime(reject.received_at)),
        el("td", {}, reject.channel_id),
        el("td", {}, reject.peer),
        el("td", { dataset: { field: "reason" } }, reject.reason))));
      outcome.textContent = answer.rejects.length ? `${answer.rejects.length} shown, newest first.` : "No rejected messages.";
    },
  };
}

export function rejectView(id, app) {
  const editor = el("textarea", { id: "reject-body", rows: 12, cols: 100, hidden: true, spellcheck: false });
  const note = el("p", { id: "reject-note", class: "hint" });
  const answer = el("p", { id: "reprocess-answer", role: "status" });
  const reprocess = el("button", { type: "button", id: "reprocess", hidden: true }, "Reprocess…");
  let original = "";
  const open = el("button", { type: "button", id: "open-reject" }, "Show message…");
  open.addEventListener("click", () => app.act({
    title: "Show rejected message",
    what: `Open reject ${id} as received. Patient data: the view is recorded in the audit trail under your name with the reason.`,
    confirm: "Show message",
    failed: "Opening the message",
    async perform(reason) {
      const payload = await call(`/api/rejects/${id}/payload${query({ reason })}`);
      original = payload.encoding === "utf-8" ? payload.body.replace(/\r\n?/g, "\n") : "";
      editor.value = original;
      editor.hidden = payload.encoding !== "utf-8";
      reprocess.hidden = editor.hidden;
      note.textContent = editor.hidden
        ? "Not text: it cannot be edited here."
        : "Edit the message below, then reprocess it; unchanged, it is sent again as received.";
      return `Opened reject ${id}; the view is audited.`;
    },
  }));
  reprocess.addEventListener("click", () => {
    const edited = editor.value !== original;
    app.act({
      title: "Reprocess rejected message",
      what: `Send reject ${id} through its channel again${edited ? ", as edited" : ", as received"}. The original is kept; the act is audited.`,
      confirm: "Reprocess",
      failed: "Reprocessing",
      async perform(reason) {
        const done = await call(`/api/rejects/${id}/reprocess`, {
          method: "POST",
          body: { reason, body: edited ? editor.value : null },
        });
        const how = done.ack_code ? ` (${done.ack_code})` : "";
        const event = done.event_id ? ` as event ${done.event_id}${done.status === "duplicate" ? ", received before" : ""}` : "";
        answer.textContent = done.accepted
          ? `Accepted${how} by channel ${done.channel_id}${event}.`
          : `Refused again${how}: ${done.error ?? "no reason given"}. It is kept as a new reject.`;
        return answer.textContent;
      },
    });
  });
  const node = el("div", {},
    el("p", { class: "crumbs" }, el("a", { href: "#/rejects" }, "Rejected messages"), " / ", `reject ${id}`),
    el("h1", {}, `Reject ${id}`),
    mayAct() ? el("div", {}, open, " ", reprocess) : el("p", { class: "hint" }, "Your role may not open or reprocess messages."),
    note, editor, answer);
  return { node, live: false, title: `Reject ${id}`, async refresh() {} };
}
