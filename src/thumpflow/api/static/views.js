// The pages: overview, destination/channel drill-down, job runs, message browser, timeline.
// A view has `node` (its DOM), `refresh()` (fetch and update in place) and `live`
// (whether the app polls it). Acts go through `app.act` (a reason, then the call).

import { ApiError, call, mayAct, query } from "./api.js";
import { lagChart, throughputChart } from "./charts.js";
import { clusterPanel } from "./cluster.js";
import { DASH, age, clock, count, dateTime, el, percent, seconds, statusBadge } from "./format.js";

const KIND_LABEL = { channel: "Channel", destination: "Destination", job: "Job" };

function rowLink(row) {
  return `#/${row.kind}/${encodeURIComponent(row.id)}`;
}

function freshness(row, now) {
  if (row.kind === "job") return row.next_due_at ? `next run ${clock(row.next_due_at)}` : DASH;
  if (row.oldest_pending_at === null) return "nothing waiting";
  return `oldest waiting ${seconds(now - row.oldest_pending_at)}`;
}

function lag(row) {
  if (row.kind === "job") return DASH;
  return `${seconds(row.lag_p50)} / ${seconds(row.lag_p99)} (budget ${seconds(row.latency_budget)})`;
}

function lastRun(row, now) {
  const run = row.last_run;
  if (!run) return row.kind === "job" ? "no run yet" : DASH;
  const when = run.finished_at ?? run.started_at;
  return `${run.status} ${age(when, now)}, ${run.counts.read} read, ${run.counts.written} written, ${run.counts.rejected} rejected`;
}

function reasons(row) {
  return row.reasons.length ? el("span", { class: "reasons" }, row.reasons.join("; ")) : null;
}

function setCell(cell, ...content) {
  const text = content.map((c) => (c instanceof Node ? c.textContent : String(c ?? ""))).join("");
  if (cell.dataset.text === text) return;
  cell.dataset.text = text;
  cell.replaceChildren(...content.filter((c) => c !== null && c !== undefined));
}

function failure(error, what) {
  if (error instanceof ApiError && error.status === 404 && error.detail === "Not Found") {
    return el("p", { class: "notice", role: "status" }, `${what} is not available on this engine yet.`);
  }
  return el("p", { class: "error", role: "alert" }, `${what} failed: ${error.detail || error.message}`);
}

const COLUMNS = [
  ["name", "Name"],
  ["status", "Status"],
  ["freshness", "Freshness"],
  ["lag", "Lag p50 / p99"],
  ["queue", "Queue"],
  ["delivered", "Delivered"],
  ["dead", "Dead"],
  ["error-rate", "Error rate"],
  ["circuit", "Circuit"],
  ["last-delivery", "Last delivery"],
  ["last-run", "Last run"],
];

function fillRow(tr, row, now) {
  const cells = Object.fromEntries([...tr.children].map((cell) => [cell.dataset.field, cell]));
  tr.dataset.status = row.status;
  tr.dataset.paused = String(Boolean(row.paused));
  const prefix = row.kind === "destination" ? "→ " : "";
  setCell(cells.name, prefix, el("a", { href: rowLink(row) }, row.id), " ",
    el("span", { class: "kind" }, KIND_LABEL[row.kind].toLowerCase()));
  const paused = row.paused
    ? el("span", { class: "paused-tag", title: "paused by an operator" }, "paused")
    : null;
  setCell(cells.status, statusBadge(row.status), " ", paused, reasons(row));
  setCell(cells.freshness, freshness(row, now));
  setCell(cells.lag, lag(row));
  setCell(cells.queue, count(row.queue_depth));
  setCell(cells.delivered, count(row.delivered));
  setCell(cells.dead, count(row.dead));
  setCell(cells["error-rate"], percent(row.error_rate));
  setCell(cells.circuit, row.circuit ?? DASH);
  setCell(cells["last-delivery"], age(row.last_delivered_at, now));
  setCell(cells["last-run"], lastRun(row, now));
}

function summarize(rows) {
  const counts = {};
  for (const row of rows) counts[row.status] = (counts[row.status] || 0) + 1;
  const order = ["failing", "stuck", "delayed", "current"];
  const overall = order.find((status) => counts[status]) || "current";
  const parts = order.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  return { overall, text: parts.join(", ") || "nothing configured" };
}

function alertRow(alert, now, app) {
  const acknowledged = alert.acknowledged_by
    ? `by ${alert.acknowledged_by} ${age(alert.acknowledged_at, now)}: ${alert.ack_reason ?? ""}`
    : "not yet";
  const action = !alert.acknowledged_by && mayAct()
    ? el("button", {
      type: "button",
      class: "ack",
      "aria-label": `Acknowledge alert ${alert.alert_id}`,
      onclick: () => app.act({
        title: "Acknowledge alert",
        what: `Alert ${alert.alert_id}: ${alert.kind} on ${alert.subject} — ${alert.message}. It stays active until its condition stops.`,
        confirm: "Acknowledge",
        failed: "Acknowledging",
        async perform(reason) {
          await call(`/api/alerts/${alert.alert_id}/ack`, { method: "POST", body: { reason } });
          return `Acknowledged alert ${alert.alert_id} (${alert.kind} on ${alert.subject}).`;
        },
      }),
    }, "Acknowledge…")
    : null;
  return [
    el("td", { dataset: { field: "kind" } }, alert.kind),
    el("td", { dataset: { field: "subject" } }, alert.subject),
    el("td", { dataset: { field: "severity" } }, alert.severity),
    el("td", { dataset: { field: "message" } }, alert.message),
    el("td", { dataset: { field: "since" } }, `${clock(alert.raised_at)} (${age(alert.raised_at, now)})`),
    el("td", { dataset: { field: "acknowledged" } }, acknowledged),
    el("td", {}, action),
  ];
}

function alertsPanel(app) {
  const body = el("tbody");
  const note = el("p", { id: "alerts-note", class: "hint" });
  const problem = el("div");
  const node = el("section", { "aria-labelledby": "alerts-title" },
    el("h2", { id: "alerts-title" }, "Active alerts"), problem, note,
    el("table", { id: "alerts", class: "grid" },
      el("caption", {}, "Raised by the engine; acknowledging asks for a reason and is audited."),
      el("thead", {}, el("tr", {},
        ["Kind", "Subject", "Severity", "Message", "Since", "Acknowledged", "Action"]
          .map((label) => el("th", { scope: "col" }, label)))),
      body));
  function update(answer, now) {
    if (answer instanceof Error) {
      problem.replaceChildren(failure(answer, "The alert list"));
      return;
    }
    problem.replaceChildren();
    note.textContent = answer.alerts.length ? "" : "No active alerts.";
    const wanted = new Set(answer.alerts.map((alert) => String(alert.alert_id)));
    for (const tr of [...body.children]) if (!wanted.has(tr.dataset.alert)) tr.remove();
    for (const alert of answer.alerts) {
      const key = String(alert.alert_id);
      let tr = body.querySelector(`tr[data-alert="${key}"]`);
      if (!tr) {
        tr = el("tr", { dataset: { alert: key } });
        body.append(tr);
      }
      const state = `${alert.acknowledged_by}|${alert.message}|${Math.floor(now / 10)}`;
      if (tr.dataset.state === state) continue;
      tr.dataset.state = state;
      tr.dataset.acknowledged = String(Boolean(alert.acknowledged_by));
      tr.replaceChildren(...alertRow(alert, now, app));
    }
  }
  return { node, update };
}

export function overviewView(app) {
  const alerts = alertsPanel(app);
  const cluster = clusterPanel();
  const overall = el("p", { id: "overall", class: "summary", role: "status" });
  const updated = el("p", { id: "updated", class: "updated" });
  const tbody = el("tbody");
  const table = el(
    "table",
    { id: "overview", class: "grid" },
    el("caption", {}, "Channels with their destinations, then jobs. Figures marked recent cover the last 5 minutes."),
    el("thead", {}, el("tr", {}, COLUMNS.map(([, label]) => el("th", { scope: "col" }, label)))),
    tbody,
  );
  const node = el("div", {}, el("h1", {}, "Are we current?"), overall, updated, table, alerts.node,
    cluster.node);
  return {
    node,
    live: true,
    title: "Overview",
    async refresh() {
      const [data, active, nodes] = await Promise.all([
        call("/api/overview"),
        call("/api/alerts?active=true").catch((error) => error),
        call("/api/cluster").catch((error) => error),
      ]);
      alerts.update(active, data.at);
      cluster.update(nodes);
      const now = data.at;
      const seen = new Set();
      let previous = null;
      for (const row of data.rows) {
        const key = `${row.kind}:${row.id}`;
        seen.add(key);
        let tr = tbody.querySelector(`tr[data-row="${CSS.escape(key)}"]`);
        if (!tr) {
          tr = el("tr", { dataset: { row: key, kind: row.kind } },
            COLUMNS.map(([field], index) =>
              el(index === 0 ? "th" : "td", { scope: index === 0 ? "row" : null, dataset: { field } })));
        }
        const wanted = previous ? previous.nextSibling : tbody.firstChild;
        if (tr !== wanted) tbody.insertBefore(tr, wanted);
        fillRow(tr, row, now);
        previous = tr;
      }
      for (const tr of [...tbody.children]) if (!seen.has(tr.dataset.row)) tr.remove();
      const { overall: word, text } = summarize(data.rows);
      setCell(overall, "Overall: ", statusBadge(word), ` — ${text}`);
      updated.textContent = `Updated ${clock(now)}; updates every 2 seconds.`;
    },
  };
}

function figures(row, now) {
  const items = [
    ["Status", statusBadge(row.status)],
    ["Why", row.reasons.length ? row.reasons.join("; ") : "within budget"],
    ["Latency budget", seconds(row.latency_budget)],
    ["Oldest undelivered", row.oldest_pending_at === null ? "nothing waiting" : age(row.oldest_pending_at, now)],
    ["Lag p50 (recent)", seconds(row.lag_p50)],
    ["Lag p99 (recent)", seconds(row.lag_p99)],
    ["Queue depth", count(row.queue_depth)],
    ["Delivered (total)", count(row.delivered)],
    ["Dead (total)", count(row.dead)],
    ["Delivered (recent)", count(row.delivered_recent)],
    ["Dead (recent)", count(row.dead_recent)],
    ["Error rate (recent)", percent(row.error_rate)],
    ["Circuit", row.circuit ?? DASH],
    ["Last delivery", row.last_delivered_at ? `${dateTime(row.last_delivered_at)} (${age(row.last_delivered_at, now)})` : DASH],
  ];
  if (row.kind === "channel") items.push(["Last received", age(row.last_received_at, now)]);
  const slug = (label) => label.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-$/, "");
  return items.map(([label, value]) => [
    el("dt", {}, label),
    el("dd", { dataset: { figure: slug(label) } }, value),
  ]);
}

function deadLetterRow(letter, onReplay) {
  return el(
    "tr",
    { dataset: { delivery: letter.delivery_id } },
    el("td", {}, String(letter.delivery_id)),
    el("td", {}, el("a", { href: `#/event/${encodeURIComponent(letter.event_id)}` }, letter.event_id)),
    el("td", {}, letter.destination_id),
    el("td", {}, letter.event_type),
    el("td", { dataset: { field: "ordering-key" } }, letter.ordering_key),
    el("td", {}, letter.lane),
    el("td", {}, String(letter.attempts)),
    el("td", { dataset: { field: "reason" } }, letter.reason),
    el("td", {}, dateTime(letter.died_at)),
    el("td", {}, mayAct() && el("button", {
      type: "button",
      class: "replay",
      "aria-label": `Replay delivery ${letter.delivery_id}`,
      onclick: () => onReplay(letter),
    }, "Replay…")),
  );
}

const PAUSE_WORDS = {
  destination: {
    running: "Sending.",
    pause: "Stop sending to this destination. Its queue keeps filling durably; on resume it sends in order.",
    resume: "Send again, in order, from where the pause left off.",
  },
  channel: {
    running: "Reading from its senders.",
    pause: "Stop reading from this channel's senders: they wait, holding their messages, and are not refused.",
    resume: "Read from the channel's senders again, where they stopped.",
  },
};

// The pause state of a destination or channel, and the Pause…/Resume… button.
function pauseControl(kind, id, app) {
  const state = el("p", { id: "pause-state" });
  const button = el("button", { type: "button", id: "pause-toggle", hidden: true });
  const problem = el("div");
  let paused = null;
  button.addEventListener("click", () => {
    const verb = paused ? "resume" : "pause";
    app.act({
      title: `${paused ? "Resume" : "Pause"} ${kind} ${id}`,
      what: PAUSE_WORDS[kind][verb],
      confirm: paused ? "Resume" : "Pause",
      failed: paused ? "Resuming" : "Pausing",
      async perform(reason) {
        const result = await call(`/api/${kind}s/${encodeURIComponent(id)}/${verb}`, {
          method: "POST",
          body: { reason },
        });
        const now = result.paused ? "paused" : "running again";
        return result.changed ? `${KIND_LABEL[kind]} ${id} is ${now}.` : `${KIND_LABEL[kind]} ${id} already was ${now}.`;
      },
    });
  });
  const node = el("section", { "aria-labelledby": "pause-title" },
    el("h2", { id: "pause-title" }, "Pause"), problem, state, button);
  function update(answer) {
    if (answer instanceof Error) {
      problem.replaceChildren(failure(answer, "The pause state"));
      return;
    }
    problem.replaceChildren();
    const items = kind === "destination" ? answer.destinations : answer.channels;
    const found = items.find((item) => item[`${kind}_id`] === id);
    if (!found) {
      state.textContent = `No running ${kind} ${id}.`;
      button.hidden = true;
      return;
    }
    paused = found.paused;
    node.dataset.paused = String(paused);
    const pause = found.pause;
    state.textContent = !paused
      ? PAUSE_WORDS[kind].running
      : pause
        ? `Paused by ${pause.paused_by} since ${dateTime(pause.paused_at)}: ${pause.reason}`
        : "Paused.";
    button.hidden = !mayAct();
    button.textContent = paused ? "Resume…" : "Pause…";
  }
  return { node, update };
}

// Drill-down of one destination or channel: figures, pause, charts, dead letters.
export function detailView(kind, id, app) {
  const pause = pauseControl(kind, id, app);
  const heading = el("h1", {}, `${KIND_LABEL[kind]} ${id}`);
  const list = el("dl", { class: "figures", id: "figures" });
  const minutes = el("select", { id: "minutes" },
    [15, 60, 180].map((m) => el("option", { value: m, selected: m === 60 }, `${m} minutes`)));
  const charts = el("div", { class: "charts", id: "charts" });
  const chartsNote = el("p", { class: "hint", id: "charts-note" });
  const deadBody = el("tbody");
  const deadCount = el("span", { id: "dead-count" }, "…");
  const deadError = el("div");
  const filter = kind === "destination" ? { destination: id } : { channel: id };
  const messages = el("a", { href: `#/messages${query(kind === "channel" ? { channel: id } : {})}` }, "Browse messages");
  const inPart = el("p", { id: "converted-in-part", hidden: true });
  const node = el(
    "div",
    {},
    el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Overview"), " / ", `${kind} ${id}`),
    heading,
    list,
    inPart,
    pause.node,
    el("section", { "aria-labelledby": "charts-title" },
      el("h2", { id: "charts-title" }, "Throughput and lag"),
      el("label", { for: "minutes" }, "Show the last "), minutes,
      chartsNote, charts),
    el("section", { "aria-labelledby": "dead-title" },
      el("h2", { id: "dead-title" }, "Dead letters (", deadCount, ")"),
      deadError,
      el("table", { id: "dead-letters", class: "grid" },
        el("caption", {}, "Deliveries that gave up, oldest first, with the reason. Replaying asks for a reason and is audited."),
        el("thead", {}, el("tr", {},
          ["Delivery", "Event", "Destination", "Type", "Ordering key", "Lane", "Attempts", "Reason", "Died", "Action"]
            .map((label) => el("th", { scope: "col" }, label)))),
        deadBody)),
    el("p", {}, messages, " · ", el("a", { id: "all-dead-letters", href: `#/dead-letters${query(filter)}` }, "Search, edit and replay dead letters")),
  );
  const view = {
    node,
    live: true,
    title: `${KIND_LABEL[kind]} ${id}`,
    async refresh() {
      const [overview, series, dead, targets] = await Promise.all([
        call("/api/overview"),
        call(`/api/overview/series${query({ ...filter, minutes: minutes.value })}`),
        call(`/api/dead-letters${query({ ...filter, limit: 1000 })}`).catch((error) => error),
        call(`/api/${kind}s`).catch((error) => error),
      ]);
      pause.update(targets);
      if (kind === "channel") convertedInPart(inPart, id, targets);
      const row = overview.rows.find((r) => r.kind === kind && r.id === id);
      if (!row) {
        list.replaceChildren(el("p", { class: "error", role: "alert" }, `No enabled ${kind} ${id}.`));
        return;
      }
      setCell(heading, `${KIND_LABEL[kind]} ${id} `, statusBadge(row.status));
      list.replaceChildren(...figures(row, overview.at).flat());
      charts.replaceChildren(
        el("figure", {}, throughputChart(series.points), el("figcaption", {}, "Deliveries per minute (dead letters stacked on top)")),
        el("figure", {}, lagChart(series.points, row.latency_budget), el("figcaption", {}, "Lag per minute: p50 and p99, budget dashed")),
      );
      chartsNote.textContent = series.sampled_from > series.points[0]?.at
        ? `Busy window: minutes before ${clock(series.sampled_from)} are not shown.`
        : "";
      if (dead instanceof Error) {
        deadError.replaceChildren(failure(dead, "The dead-letter list"));
        return;
      }
      deadError.replaceChildren();
      deadCount.textContent = String(dead.dead_letters.length);
      const wanted = dead.dead_letters.map((letter) => String(letter.delivery_id));
      const existing = new Map([...deadBody.children].map((tr) => [tr.dataset.delivery, tr]));
      for (const [key, tr] of existing) if (!wanted.includes(key)) tr.remove();
      for (const letter of dead.dead_letters) {
        if (!existing.has(String(letter.delivery_id))) deadBody.append(deadLetterRow(letter, app.replay));
      }
    },
  };
  minutes.addEventListener("change", () => app.refreshNow());
  return view;
}

// A channel's conversion warnings since this node started (`conversion_warnings` of
// GET /api/channels, by code), and a link to the messages they came from.
function convertedInPart(node, id, targets) {
  const channel = targets instanceof Error ? null : targets.channels.find((c) => c.channel_id === id);
  const counts = Object.entries(channel?.conversion_warnings ?? {}).filter(([, n]) => n > 0);
  node.hidden = counts.length === 0;
  if (node.hidden) return;
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  const byCode = counts.map(([code, n]) => `${code.replaceAll("_", " ")} ${n}`).join(", ");
  node.replaceChildren(
    `Conversion to FHIR left something out: ${total} warning${total === 1 ? "" : "s"} since this node started (${byCode}). `,
    el("a", { id: "converted-in-part-messages", href: `#/messages${query({ channel: id, converted_in_part: "true" })}` },
      "List those messages"));
}

function runRow(run) {
  const manifests = [
    ...run.manifests_checked.map((m) => ["checked", m]),
    ...run.manifests_written.map((m) => ["written", m]),
  ];
  const listed = manifests.length
    ? manifests.map(([direction, m]) => `${direction} ${m.name}: ${m.record_count} records, sha256 ${m.sha256.slice(0, 12)}…`).join("; ")
    : DASH;
  const window = run.window_start || run.window_end ? `${run.window_start ?? "start"} → ${run.window_end ?? "now"}` : DASH;
  const c = run.counts;
  return el("tr", { dataset: { run: run.run_id } },
    el("td", {}, String(run.run_id)),
    el("td", {}, run.trigger),
    el("td", { dataset: { field: "run-status" } }, run.status),
    el("td", {}, window),
    el("td", {}, dateTime(run.started_at)),
    el("td", {}, dateTime(run.finished_at)),
    el("td", {}, `${c.read} / ${c.valid} / ${c.rejected} / ${c.written} / ${c.skipped}`),
    el("td", {}, listed),
    el("td", { dataset: { field: "findings" } }, findingsText(run.findings)),
    el("td", {}, run.error ?? DASH));
}

// A census reconciliation's findings: beds compared, drifted (named) and repaired.
function findingsText(found) {
  if (!found) return DASH;
  if (found.drifted === undefined) return JSON.stringify(found);
  const beds = found.beds?.length ? `: ${found.beds.join(", ")}` : "";
  return `snapshot ${found.snapshot} of ${found.as_of}: ${found.compared} beds compared, `
    + `${found.changed_after} changed after it, ${found.drifted} drifted${beds}, ${found.repaired} repaired`;
}

export function jobView(id) {
  const heading = el("h1", {}, `Job ${id}`);
  const why = el("p", { id: "job-status" });
  const body = el("tbody");
  const problem = el("div");
  const node = el("div", {},
    el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Overview"), " / ", `job ${id}`),
    heading, why, problem,
    el("table", { id: "runs", class: "grid" },
      el("caption", {}, "Recent runs, newest first. Counts: read / valid / rejected / written / skipped."),
      el("thead", {}, el("tr", {},
        ["Run", "Trigger", "Status", "Window", "Started", "Finished", "Counts", "Manifests", "Findings", "Error"]
          .map((label) => el("th", { scope: "col" }, label)))),
      body));
  return {
    node,
    live: true,
    title: `Job ${id}`,
    async refresh() {
      const [overview, runs] = await Promise.all([
        call("/api/overview"),
        call(`/api/jobs/${encodeURIComponent(id)}/runs`).catch((error) => error),
      ]);
      const row = overview.rows.find((r) => r.kind === "job" && r.id === id);
      if (row) {
        setCell(why, statusBadge(row.status), " ", reasons(row) ?? "",
          row.next_due_at ? ` Next run due ${dateTime(row.next_due_at)}.` : "");
      }
      if (runs instanceof Error) {
        problem.replaceChildren(failure(runs, "The run list"));
        return;
      }
      problem.replaceChildren();
      body.replaceChildren(...runs.runs.map(runRow));
    },
  };
}

function deliveryCounts(counts) {
  const parts = Object.entries(counts).map(([status, n]) => `${n} ${status}`);
  return parts.length ? parts.join(", ") : "none (filtered)";
}

function toEpoch(raw) {
  return raw ? new Date(raw).getTime() / 1000 : "";
}

// Message browser: GET /api/events with filters, newest first, page by page
// (keyset: "More" passes `next_cursor` back). Values are shown as the API
// answers them, masked (•••) for roles without patient data; searching by
// patient needs such a role, so viewers do not get that field.
export function messagesView(params) {
  const byPatient = mayAct();
  const fields = [
    ...(byPatient ? [["patient", "Patient id (MRN123, or GEN|MRN123 for one authority)", "text"]] : []),
    ["control_id", "Control id (MSH-10)", "text"],
    ["event_type", "Event type", "text"],
    ["channel", "Channel", "text"],
    ["status", "Delivery status", "select"],
    ["converted_in_part", "Converted to FHIR in part", "checkbox"],
    ["since", "Received from", "datetime-local"],
    ["until", "Received until", "datetime-local"],
    ["limit", "Per page", "limit"],
  ];
  const input = (name, type) => {
    const attributes = { id: `search-${name}`, name };
    if (type === "select") {
      return el("select", attributes, ["", "pending", "delivered", "dead", "superseded"].map((value) =>
        el("option", { value, selected: params.get(name) === value }, value || "any")));
    }
    if (type === "checkbox") {
      return el("input", { ...attributes, type, value: "true", checked: params.get(name) === "true" });
    }
    if (type === "limit") {
      const chosen = params.get(name) ?? "25";
      return el("select", attributes, ["5", "25", "100"].map((value) =>
        el("option", { value, selected: chosen === value }, value)));
    }
    return el("input", { ...attributes, type, value: params.get(name) ?? "" });
  };
  const inputs = Object.fromEntries(fields.map(([name, , type]) => [name, input(name, type)]));
  const results = el("tbody");
  const outcome = el("div", { id: "search-outcome", role: "status" });
  const more = el("button", { type: "button", id: "more", hidden: true }, "More");
  let cursor = null;
  let generation = 0;
  let answered = 0;
  const form = el("form", { class: "search", id: "search", onsubmit: (event) => { event.preventDefault(); search(false); } },
    fields.map(([name, label]) => el("div", { class: "field" }, el("label", { for: `search-${name}` }, label), inputs[name])),
    el("button", { type: "submit", id: "search-button" }, "Search"));
  function filters() {
    const values = {};
    for (const [name, , type] of fields) {
      if (type === "checkbox") {
        values[name] = inputs[name].checked ? "true" : "";
        continue;
      }
      const raw = inputs[name].value.trim();
      values[name] = type === "datetime-local" ? toEpoch(raw) : raw;
    }
    return values;
  }
  async function search(next) {
    const mine = next ? generation : ++generation;
    const asked = next ? cursor : null;
    more.disabled = true;
    try {
      const page = await call(`/api/events${query({ ...filters(), cursor: asked })}`);
      if (mine !== generation) return;
      if (!next) results.replaceChildren();
      for (const event of page.events) {
        results.append(el("tr", { dataset: { event: event.event_id } },
          el("td", {}, el("a", { href: `#/event/${encodeURIComponent(event.event_id)}` }, event.event_id)),
          el("td", { dataset: { field: "received" } }, dateTime(event.received_at)),
          el("td", { dataset: { field: "channel" } }, event.channel_id),
          el("td", { dataset: { field: "type" } }, event.event_type),
          el("td", { dataset: { field: "control-id" } }, event.control_id ?? DASH),
          el("td", { dataset: { field: "ordering-key" } }, event.ordering_key),
          el("td", { dataset: { field: "deliveries" } }, deliveryCounts(event.deliveries))));
      }
      const shown = results.children.length;
      outcome.replaceChildren(el("p", {}, shown
        ? `${shown} message${shown === 1 ? "" : "s"} shown${page.next_cursor ? "; more match" : ""}.`
        : "No messages match."));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      if (mine !== generation) return;
      outcome.replaceChildren(failure(error, "Message search"));
      more.hidden = true;
    } finally {
      more.disabled = false;
      answered += 1;
      table.dataset.answered = String(answered);
    }
  }
  more.addEventListener("click", () => search(true));
  const table = el("table", { class: "grid", id: "events" },
    el("caption", {}, "Events, newest first. Patient identifiers are masked for roles that may not see them."),
    el("thead", {}, el("tr", {}, ["Event", "Received", "Channel", "Type", "Control id", "Ordering key", "Deliveries"]
      .map((label) => el("th", { scope: "col" }, label)))),
    results);
  const node = el("div", {},
    el("h1", {}, "Messages"), form,
    byPatient ? null : el("p", { class: "hint" }, "Your role may not search by patient or see patient identifiers; they show as •••."),
    outcome, table, more);
  return { node, live: false, title: "Messages", refresh: () => search(false) };
}

const STEP_WORDS = {
  received: "received",
  converted_in_part: "converted to FHIR in part",
  filtered: "filtered out",
  duplicate: "duplicate",
  mapped: "derived event",
  queued: "queued",
  attempt_failed: "attempt failed",
  delivered: "delivered",
  dead: "dead-lettered",
  superseded: "superseded",
  replayed: "replayed",
  replayed_out_of_order: "replayed out of order",
  payload_viewed: "message viewed",
};

function eventFacts(event) {
  const items = [
    ["Event", event.event_id],
    ["Channel", event.channel_id],
    ["Type", event.event_type],
    ["Control id", event.control_id ?? DASH],
    ["Ordering key", event.ordering_key],
    ["Source system", event.source_system],
    ["Lane", event.lane],
    ["Received", dateTime(event.received_at)],
    ["Occurred", dateTime(event.occurred_at)],
    ["Caused by", event.causation_id
      ? el("a", { href: `#/event/${encodeURIComponent(event.causation_id)}` }, event.causation_id)
      : DASH],
    ["Deliveries", deliveryCounts(event.deliveries)],
  ];
  const slug = (label) => label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return items.flatMap(([label, value]) => [el("dt", {}, label), el("dd", { dataset: { figure: slug(label) } }, value)]);
}

function stepItem(step) {
  return el("li", { dataset: { step: step.step } },
    el("time", { datetime: new Date(step.at * 1000).toISOString() }, dateTime(step.at)), " ",
    el("strong", {}, STEP_WORDS[step.step] ?? step.step), " ",
    el("span", { class: "subject" }, step.subject),
    ` by ${step.actor}`,
    step.detail ? el("span", { class: "detail" }, `: ${step.detail}`) : null);
}

function deliveryRow(delivery) {
  const attempts = delivery.attempt_log.length
    ? el("ol", { class: "attempts" }, delivery.attempt_log.map((attempt) =>
      el("li", { dataset: { attempt: attempt.attempt, outcome: attempt.outcome } },
        `#${attempt.attempt} ${dateTime(attempt.at)} ${attempt.outcome}`,
        attempt.detail ? `: ${attempt.detail}` : "")))
    : "none yet";
  const finished = delivery.delivered_at ?? delivery.died_at;
  return el("tr", { dataset: { delivery: delivery.delivery_id, status: delivery.status } },
    el("td", {}, String(delivery.delivery_id)),
    el("td", {}, delivery.destination_id),
    el("td", { dataset: { field: "status" } }, delivery.status),
    el("td", {}, dateTime(delivery.created_at)),
    el("td", {}, finished ? dateTime(finished) : DASH),
    el("td", { dataset: { field: "attempts" } }, attempts),
    el("td", {}, delivery.reason ?? delivery.last_error ?? DASH));
}

// One event's timeline: GET /api/events/{id}/timeline, live. "Show message…"
// (roles with patient data) asks for a reason and opens the payload, which
// the engine audits before it answers; the view then appears in the timeline.
export function timelineView(id, app) {
  const facts = el("dl", { class: "figures", id: "event-facts" });
  const steps = el("ol", { class: "timeline", id: "steps" });
  const deliveries = el("tbody");
  const derived = el("ul", { id: "derived" });
  const problem = el("div");
  const payload = el("pre", { id: "payload", hidden: true });
  const payloadNote = el("p", { id: "payload-note", class: "hint" });
  const show = el("button", { type: "button", id: "show-payload" }, "Show message…");
  show.addEventListener("click", () => app.act({
    title: "Show message",
    what: `Open the message of event ${id} as received. Patient data: the view is recorded in the audit trail under your name with the reason.`,
    confirm: "Show message",
    failed: "Opening the message",
    async perform(reason) {
      const answer = await call(`/api/events/${encodeURIComponent(id)}/payload${query({ reason })}`);
      payload.textContent = answer.encoding === "utf-8"
        ? answer.body.replace(/\r\n?/g, "\n")
        : answer.body;
      payload.hidden = false;
      payloadNote.textContent = `${answer.content_type}${answer.encoding === "base64" ? ", not text: shown as base64" : ""}. Viewed now; recorded in the audit trail.`;
      return `Opened the message of event ${id}; the view is audited.`;
    },
  }));
  const actions = mayAct()
    ? show
    : el("p", { class: "hint", id: "payload-refused" }, "Your role may not open message contents (patient data).");
  const node = el("div", {},
    el("p", { class: "crumbs" }, el("a", { href: "#/messages" }, "Messages"), " / ", `event ${id}`),
    el("h1", {}, `Event ${id}`), problem, facts,
    el("section", { "aria-labelledby": "payload-title" },
      el("h2", { id: "payload-title" }, "Message"), actions, payloadNote, payload),
    el("section", { "aria-labelledby": "steps-title" },
      el("h2", { id: "steps-title" }, "Timeline"),
      el("p", { class: "hint" }, "Oldest first: received, derived events, queued, each attempt, delivered or dead, replays and message views, with who did it."),
      steps),
    el("section", { "aria-labelledby": "deliveries-title" },
      el("h2", { id: "deliveries-title" }, "Deliveries"),
      el("table", { class: "grid", id: "deliveries" },
        el("thead", {}, el("tr", {}, ["Delivery", "Destination", "Status", "Queued", "Finished", "Attempts", "Reason"]
          .map((label) => el("th", { scope: "col" }, label)))),
        deliveries)),
    el("section", { "aria-labelledby": "derived-title" },
      el("h2", { id: "derived-title" }, "Derived events"), derived));
  let seen = null;
  return {
    node,
    live: true,
    title: `Event ${id}`,
    async refresh() {
      let data;
      try {
        data = await call(`/api/events/${encodeURIComponent(id)}/timeline`);
      } catch (error) {
        if (error.status !== 404) throw error;
        problem.replaceChildren(failure(error, "The event timeline"));
        return;
      }
      problem.replaceChildren();
      const text = JSON.stringify(data);
      if (text === seen) return;
      seen = text;
      facts.replaceChildren(...eventFacts(data.event));
      steps.replaceChildren(...data.steps.map(stepItem));
      deliveries.replaceChildren(...data.deliveries.map(deliveryRow));
      derived.replaceChildren(...(data.derived.length
        ? data.derived.map((event) => el("li", {},
          el("a", { href: `#/event/${encodeURIComponent(event.event_id)}` }, event.event_id), ` ${event.event_type}`))
        : [el("li", {}, "none")]));
    },
  };
}
