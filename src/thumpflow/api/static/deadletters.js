// Dead letters: searched by destination, channel, event type and reason; every
// match replayed in one act; one opened, edited and sent again.
//
// The list (GET /api/dead-letters) shows ids, types, masked or plain ordering
// keys and reasons, never message content. "Replay all matching…" sends the
// page's filter to POST /api/dead-letters/replay with a reason: the engine
// replays every dead letter matching it at that moment and refuses, one by
// one, those whose ordering key has had a newer delivery delivered since; the
// refusals are listed on the page with why, and can then be sent out of order
// in a second, explicit act. A dead letter's page opens its message after
// asking for a reason (audited by the engine before it answers) and sends an
// edited copy to its destination (POST /api/dead-letters/{id}/edit): a new
// event, the original kept.

import { call, mayAct, query } from "./api.js";
import { DASH, dateTime, el } from "./format.js";

const FIELDS = [
  ["destination", "Destination"],
  ["channel", "Channel"],
  ["event_type", "Event type"],
  ["reason_contains", "Reason contains"],
];

function given(params) {
  return Object.fromEntries(FIELDS.map(([name]) => [name, (params.get(name) ?? "").trim()]).filter(([, value]) => value));
}

function described(filter) {
  const parts = FIELDS.filter(([name]) => filter[name]).map(([name, label]) => `${label.toLowerCase()} “${filter[name]}”`);
  return parts.length ? `matching ${parts.join(", ")}` : "of every destination";
}

function summary(result) {
  const replayed = result.replayed.length;
  const words = [`Replayed ${replayed} dead letter${replayed === 1 ? "" : "s"}`];
  if (result.out_of_order.length) words.push(`${result.out_of_order.length} of them out of order`);
  if (result.refused.length) {
    words.push(`${result.refused.length} refused because a newer message of the same ordering key was delivered (listed on the page)`);
  }
  return `${words.join("; ")}.`;
}

export function deadLettersView(params, app) {
  const filter = given(params);
  const inputs = Object.fromEntries(FIELDS.map(([name]) => [name,
    el("input", { id: `dead-${name.replace("_", "-")}`, name, value: filter[name] ?? "" })]));
  const form = el("form", { class: "search", id: "dead-search", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/dead-letters${query(Object.fromEntries(FIELDS.map(([name]) => [name, inputs[name].value.trim()])))}`;
  } },
  FIELDS.map(([name, label]) => el("div", { class: "field" }, el("label", { for: inputs[name].id }, label), inputs[name])),
  el("button", { type: "submit", id: "dead-button" }, "Search"));
  const rows = el("tbody");
  const outcome = el("p", { id: "dead-outcome", role: "status" });
  const refusedList = el("ul", { id: "replay-refused" });
  const outOfOrder = el("button", { type: "button", id: "replay-refused-out-of-order" }, "Replay these out of order…");
  const refusedSection = el("section", { id: "refused-section", "aria-labelledby": "refused-title", hidden: true },
    el("h2", { id: "refused-title" }, "Not replayed"),
    el("p", { class: "hint" }, "A newer message of the same ordering key was delivered to the same destination since: replaying these could overwrite newer data at the receiver."),
    refusedList, mayAct() && outOfOrder);
  let refused = [];
  let listed = 0;

  function showRefused(result) {
    refused = result.refused;
    refusedSection.hidden = refused.length === 0;
    refusedList.replaceChildren(...refused.map((item) => el("li", { dataset: { delivery: String(item.delivery_id) } },
      el("a", { href: `#/dead-letter/${item.delivery_id}` }, `Delivery ${item.delivery_id}`), `: ${item.reason}`)));
  }

  const replayAll = el("button", { type: "button", id: "replay-matching" }, "Replay all matching…");
  replayAll.addEventListener("click", () => app.act({
    title: "Replay every matching dead letter",
    what: `Replay every dead letter ${described(filter)} (${listed} listed). Each goes back to its destination's outbox; one whose ordering key has had a newer message delivered since is refused and listed, unless you tick the box.`,
    confirm: "Replay all matching",
    failed: "Replay",
    option: "Deliver out of order: also replay those whose ordering key has had a newer message delivered (they may overwrite newer data at the receiver)",
    async perform(reason, outOfOrderToo) {
      const body = { ...filter, reason, out_of_order: outOfOrderToo };
      if (!Object.keys(filter).length) body.all = true;
      const result = await call("/api/dead-letters/replay", { method: "POST", body });
      showRefused(result);
      return summary(result);
    },
  }));
  outOfOrder.addEventListener("click", () => app.act({
    title: "Replay out of order",
    what: `Replay deliveries ${refused.map((item) => item.delivery_id).join(", ")} although newer messages of their ordering keys were delivered. The receiver may get older data after newer; the act is audited as out of order.`,
    confirm: "Replay out of order",
    failed: "Replay",
    async perform(reason) {
      const result = await call("/api/dead-letters/replay", {
        method: "POST",
        body: { delivery_ids: refused.map((item) => item.delivery_id), reason, out_of_order: true },
      });
      showRefused(result);
      return summary(result);
    },
  }));

  const node = el("div", {},
    el("h1", {}, "Dead letters"),
    el("p", { class: "hint" }, "Deliveries that gave up, oldest first, with the reason. Narrow the list, then replay every match in one act, or open one to edit and send it again."),
    form, outcome, mayAct() ? el("p", {}, replayAll) : null, refusedSection,
    el("table", { class: "grid", id: "dead-letters" },
      el("thead", {}, el("tr", {}, ["Delivery", "Died", "Channel", "Destination", "Type", "Ordering key", "Attempts", "Reason", "Action"]
        .map((label) => el("th", { scope: "col" }, label)))),
      rows));
  return {
    node,
    live: true,
    title: "Dead letters",
    async refresh() {
      const answer = await call(`/api/dead-letters${query({ ...filter, limit: 1000 })}`);
      listed = answer.dead_letters.length;
      rows.replaceChildren(...answer.dead_letters.map((letter) => el("tr", { dataset: { delivery: String(letter.delivery_id) } },
        el("td", {}, el("a", { href: `#/dead-letter/${letter.delivery_id}` }, String(letter.delivery_id))),
        el("td", {}, dateTime(letter.died_at)),
        el("td", {}, letter.channel_id),
        el("td", {}, letter.destination_id),
        el("td", {}, letter.event_type),
        el("td", { dataset: { field: "ordering-key" } }, letter.ordering_key),
        el("td", {}, String(letter.attempts)),
        el("td", { dataset: { field: "reason" } }, letter.reason),
        el("td", {}, mayAct() && el("button", {
          type: "button",
          class: "replay",
          "aria-label": `Replay delivery ${letter.delivery_id}`,
          onclick: () => app.replay(letter),
        }, "Replay…")))));
      outcome.textContent = listed ? `${listed} dead letter${listed === 1 ? "" : "s"} ${described(filter)}.` : `No dead letters ${described(filter)}.`;
      replayAll.disabled = listed === 0;
    },
  };
}

export function deadLetterView(id, app) {
  const facts = el("dl", { class: "figures", id: "dead-letter-facts" });
  const problem = el("div");
  const editor = el("textarea", { id: "dead-letter-body", rows: 12, cols: 100, hidden: true, spellcheck: false });
  const note = el("p", { id: "dead-letter-note", class: "hint" });
  const answer = el("p", { id: "edit-answer", role: "status" });
  const open = el("button", { type: "button", id: "open-dead-letter", disabled: true }, "Show message…");
  const send = el("button", { type: "button", id: "send-edited", hidden: true }, "Send edited…");
  let letter = null;
  let original = "";
  open.addEventListener("click", () => app.act({
    title: "Show dead letter's message",
    what: `Open the message of delivery ${id} (event ${letter.event_id}) to edit it. Patient data: the view is recorded in the audit trail under your name with the reason.`,
    confirm: "Show message",
    failed: "Opening the message",
    async perform(reason) {
      const payload = await call(`/api/events/${encodeURIComponent(letter.event_id)}/payload${query({ reason })}`);
      const text = payload.encoding === "utf-8";
      original = text ? payload.body.replace(/\r\n?/g, "\n") : "";
      editor.value = original;
      editor.hidden = !text;
      send.hidden = !text;
      note.textContent = text
        ? `${payload.content_type}. Edit it below, then send the edited copy to ${letter.destination_id}; the original stays on the list.`
        : "Not text: it cannot be edited here.";
      return `Opened the message of delivery ${id}; the view is audited.`;
    },
  }));
  send.addEventListener("click", () => {
    if (editor.value === original) {
      note.textContent = "Nothing is changed: to send it again as it was, replay it instead.";
      return;
    }
    app.act({
      title: "Send edited dead letter",
      what: `Send the edited message to ${letter.destination_id} as a new event derived from event ${letter.event_id}. The original and its dead delivery are kept; the act is audited.`,
      confirm: "Send edited",
      failed: "Sending the edit",
      async perform(reason) {
        const done = await call(`/api/dead-letters/${id}/edit`, { method: "POST", body: { reason, body: editor.value } });
        const link = el("a", { href: `#/event/${encodeURIComponent(done.event_id)}` }, done.event_id);
        answer.replaceChildren(done.duplicate
          ? el("span", {}, "This same edit was sent before, as event ", link, "; nothing new was sent.")
          : el("span", {}, `Sent to ${done.destination_id} as event `, link, "."));
        return answer.textContent;
      },
    });
  });
  const node = el("div", {},
    el("p", { class: "crumbs" }, el("a", { href: "#/dead-letters" }, "Dead letters"), " / ", `delivery ${id}`),
    el("h1", {}, `Dead letter ${id}`), problem, facts,
    mayAct() ? el("div", {}, open, " ", send) : el("p", { class: "hint" }, "Your role may not open or edit messages."),
    note, editor, answer);
  return {
    node,
    live: false,
    title: `Dead letter ${id}`,
    async refresh() {
      const found = await call(`/api/dead-letters${query({ delivery: id, limit: 1 })}`);
      letter = found.dead_letters[0] ?? null;
      if (!letter) {
        problem.replaceChildren(el("p", { class: "notice", role: "alert" }, `Delivery ${id} is not on the dead-letter list: it was replayed or never died.`));
        open.disabled = true;
        return;
      }
      open.disabled = false;
      facts.replaceChildren(...[
        ["Event", el("a", { href: `#/event/${encodeURIComponent(letter.event_id)}` }, letter.event_id)],
        ["Channel", letter.channel_id],
        ["Destination", letter.destination_id],
        ["Type", letter.event_type],
        ["Ordering key", letter.ordering_key],
        ["Attempts", String(letter.attempts)],
        ["Died", dateTime(letter.died_at)],
        ["Reason", letter.reason || DASH],
      ].flatMap(([label, value]) => [el("dt", {}, label), el("dd", { dataset: { figure: label.toLowerCase().replace(" ", "-") } }, value)]));
    },
  };
}
