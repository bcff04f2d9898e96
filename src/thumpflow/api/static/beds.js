// The bed board: census by unit, each unit's beds as tiles coloured by status
// (HL7 table 0116; the letter and word are always shown, colour only repeats
// them), ED boarding, dirty beds, pending transfers and the writes the
// ownership matrix did not apply. Live: polled like every page. Patient
// identifiers come masked (•••) for roles without patient data. Above it,
// the operating mode (normal, surge, diversion): since when, declared by an
// operator or the rules, why, and each rule's measure; operators declare a
// mode (or hand back to the rules) through the act dialog, with a reason, and
// settle open conflicts (apply the write or dismiss it) the same way.

import { call, mayAct } from "./api.js";
import { DASH, age, count, dateTime, el, seconds } from "./format.js";

const WORDS = {
  O: "occupied", U: "open", H: "housekeeping", K: "contaminated", C: "closed", I: "isolated",
};

function tile(bed, now) {
  const who = bed.patient ? `${bed.patient}${bed.on_leave ? " (on leave)" : ""}` : DASH;
  return el("li", { class: `bed bed-${bed.status}`, dataset: { bed: bed.bed, status: bed.status } },
    el("span", { class: "bed-name" }, bed.name),
    el("span", { class: "bed-status" }, `${bed.status} ${WORDS[bed.status] ?? ""}`),
    el("span", { class: "bed-patient" }, who),
    el("span", { class: "bed-since", title: `source ${bed.source ?? DASH}, lag ${seconds(bed.lag)}` },
      bed.since ? `since ${age(bed.since, now)}` : DASH));
}

function table(caption, labels, rows) {
  return el("table", { class: "grid" },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, labels.map((label) => el("th", { scope: "col" }, label)))),
    el("tbody", {}, rows.length
      ? rows.map((cells) => el("tr", {}, cells.map((cell) => el("td", {}, cell))))
      : el("tr", {}, el("td", { colspan: labels.length }, "None."))));
}

const MODE_WORDS = {
  normal: "Normal: every lane served by its usual weight.",
  surge: "Surge: urgent weighted up, deferred lanes wait, listed destinations paced.",
  diversion: "Diversion: only the lanes not deferred flow; held destinations send nothing.",
  auto: "Hand the choice back to the configured rules; they decide at once.",
};

// The mode in force and, for operators, a choice and a Declare… button.
function modeControl(app) {
  const state = el("p", { id: "mode-state", role: "status" });
  const effect = el("p", { id: "mode-effect" });
  const rules = el("ul", { id: "mode-rules" });
  const choice = el("select", { id: "mode-choice", "aria-label": "Mode to declare" },
    ["surge", "diversion", "normal", "auto"].map((mode) => el("option", { value: mode },
      mode === "auto" ? "auto (the rules decide)" : mode)));
  const button = el("button", { type: "button", id: "mode-declare" }, "Declare…");
  button.addEventListener("click", () => {
    const mode = choice.value;
    app.act({
      title: mode === "auto" ? "Hand the mode back to the rules" : `Declare ${mode}`,
      what: MODE_WORDS[mode],
      confirm: "Declare",
      failed: "Declaring the mode",
      async perform(reason) {
        const result = await call("/api/mode", { method: "POST", body: { mode, reason } });
        return result.changed ? `The mode is now ${result.mode}.` : `The mode already was ${result.mode}.`;
      },
    });
  });
  const acts = el("p", {}, choice, " ", button);
  const node = el("section", { id: "mode", "aria-labelledby": "mode-title" },
    el("h2", { id: "mode-title" }, "Operating mode"), state, effect, rules, acts);
  function update(answer) {
    node.dataset.mode = answer.mode;
    const how = answer.origin === "act"
      ? `declared by ${answer.actor}`
      : `decided by the rules${answer.rule ? ` (rule ${answer.rule})` : ""}`;
    state.textContent = `${answer.mode.toUpperCase()} since ${dateTime(answer.since)}, ${how}: ${answer.reason}`;
    effect.textContent = answer.mode === "normal" ? MODE_WORDS.normal
      : `Deferred lanes: ${answer.deferred.join(", ") || "none"}; paced: `
        + `${answer.paced.join(", ") || "none"}; held: ${answer.held.join(", ") || "none"}.`;
    rules.replaceChildren(...answer.rules.map((rule) => el("li", { dataset: { rule: rule.id } },
      `Rule ${rule.id} (${rule.mode}): ${rule.measure}${rule.unit ? ` in ${rule.unit}` : ""} is `
      + `${rule.value ?? DASH}, ${rule.at_least !== null ? `at least ${rule.at_least}` : `at most ${rule.at_most}`}`
      + ` — ${rule.holding ? "holds" : "does not hold"}.`)));
    acts.hidden = !mayAct();
  }
  return { node, update };
}

// One open conflict's acts for operators: apply the write or dismiss it, with a reason.
function settleButtons(app, conflict) {
  if (!mayAct()) return DASH;
  const act = (accept) => {
    const button = el("button", { type: "button", dataset: { settle: accept ? "apply" : "dismiss", conflict: conflict.id } },
      accept ? "Apply…" : "Dismiss…");
    button.addEventListener("click", () => app.act({
      title: `${accept ? "Apply" : "Dismiss"} ${conflict.system}'s ${conflict.field} write`,
      what: accept
        ? "The write is applied with an owner's authority; a later owner's write still supersedes it."
        : "The field keeps what it holds; the conflict is closed.",
      confirm: accept ? "Apply" : "Dismiss",
      failed: "Settling the conflict",
      async perform(reason) {
        await call(`/api/views/conflicts/${conflict.id}/settle`, { method: "POST", body: { accept, reason } });
        return accept ? "The write is applied." : "The conflict is dismissed.";
      },
    }));
    return button;
  };
  return el("span", {}, act(true), " ", act(false));
}

export function bedsView(app) {
  const fresh = el("p", { id: "views-freshness" });
  const body = el("div", { id: "bed-board" });
  const mode = modeControl(app);
  const node = el("div", {}, el("h1", {}, "Beds"), mode.node, fresh, body);
  return {
    node,
    live: true,
    title: "Beds",
    async refresh() {
      const [board, census, boarding, dirty, transfers, outcomes, modeNow] = await Promise.all([
        call("/api/views/board"), call("/api/views/census"), call("/api/views/boarding"),
        call("/api/views/dirty-beds"), call("/api/views/transfers"), call("/api/views/outcomes"),
        call("/api/mode"),
      ]);
      mode.update(modeNow);
      const now = board.now;
      fresh.textContent = `Position ${board.position}; newest source time ${age(board.as_of, now)}; `
        + `last event received ${board.lag === null ? DASH : seconds(board.lag)} ago.`;
      const units = census.units.map((unit) => {
        const beds = board.beds.filter((bed) => bed.unit === unit.unit);
        return el("section", { class: "unit", dataset: { unit: unit.unit } },
          el("h2", {}, `${unit.unit} (${unit.kind})`),
          el("p", { class: "census" },
            `${count(unit.occupied)} occupied, ${count(unit.open)} open, `
            + `${count(unit.unavailable)} unavailable, ${count(unit.pending_in)} pending in, `
            + `${count(unit.pending_out)} pending out, ${count(unit.total)} beds`),
          el("ul", { class: "beds" }, beds.map((bed) => tile(bed, now))));
      });
      const counts = Object.entries(outcomes.counts).map(([kind, n]) => `${n} ${kind}`).join(", ");
      body.replaceChildren(...units,
        table("ED boarding: admitted patients still in the ED, longest first.",
          ["Patient", "Bed", "Waiting", "Assigned bed"],
          boarding.boarding.map((row) => [row.patient, row.bed, seconds(row.waiting),
            row.assigned_bed ?? DASH])),
        table("Dirty beds, longest waiting first.", ["Bed", "Status", "Cleaning", "Waiting"],
          dirty.beds.map((row) => [row.bed, row.status, row.cleaning, seconds(row.waiting)])),
        table("Pending transfers and discharges.", ["Patient", "From", "To", "Requested"],
          transfers.transfers.map((row) => [row.patient, row.from ?? DASH, row.to,
            age(row.requested_at, now)])),
        table("Open conflicts: a system that does not own the field wrote it; a person settles it.",
          ["Field", "Subject", "System", "Event", "Settle"],
          outcomes.conflicts.map((row) => [row.field, row.subject, row.system, row.event_id,
            settleButtons(app, row)])),
        table(`Writes not applied (${counts || "none"}), newest first.`,
          ["Kind", "Field", "Subject", "System", "Rule"],
          outcomes.recent.slice(0, 20).map((row) => [row.kind, row.field, row.subject,
            row.system, row.rule])));
    },
  };
}
