// The pages: overview, destination/channel drill-down, job runs, message browser, timeline.
// A view has `node` (its DOM), `refresh()` (fetch and update in place) and `live`
// (whether the app polls it).

import { ApiError, call, query } from "./api.js";
import { lagChart, throughputChart } from "./charts.js";
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
  return `${run.status} ${age(when, now)}, ${run.read} read, ${run.written} written, ${run.rejected} rejected`;
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
  const prefix = row.kind === "destination" ? "→ " : "";
  setCell(cells.name, prefix, el("a", { href: rowLink(row) }, row.id), " ",
    el("span", { class: "kind" }, KIND_LABEL[row.kind].toLowerCase()));
  setCell(cells.status, statusBadge(row.status), " ", reasons(row));
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

export function overviewView() {
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
  const node = el("div", {}, el("h1", {}, "Are we current?"), overall, updated, table);
  return {
    node,
    live: true,
    title: "Overview",
    async refresh() {
      const data = await call("/api/overview");
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
    el("td", {}, el("button", {
      type: "button",
      class: "replay",
      "aria-label": `Replay delivery ${letter.delivery_id}`,
      onclick: () => onReplay(letter),
    }, "Replay…")),
  );
}

// Drill-down of one destination or channel: figures, charts, dead letters.
export function detailView(kind, id, app) {
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
  const node = el(
    "div",
    {},
    el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Overview"), " / ", `${kind} ${id}`),
    heading,
    list,
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
    el("p", {}, messages),
  );
  const view = {
    node,
    live: true,
    title: `${KIND_LABEL[kind]} ${id}`,
    async refresh() {
      const [overview, series, dead] = await Promise.all([
        call("/api/overview"),
        call(`/api/overview/series${query({ ...filter, minutes: minutes.value })}`),
        call(`/api/dead-letters${query({ ...filter, limit: 1000 })}`).catch((error) => error),
      ]);
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
    el("td", {}, run.error ?? DASH));
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
        ["Run", "Trigger", "Status", "Window", "Started", "Finished", "Counts", "Manifests", "Error"]
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

// Message browser: GET /api/events with filters, page by page (cursor).
export function messagesView(params) {
  const fields = [
    ["channel", "Channel", "text"],
    ["event_type", "Event type", "text"],
    ["entity_id", "Patient / ordering key", "text"],
    ["control_id", "Control id", "text"],
    ["status", "Status", "text"],
    ["since", "Received from", "datetime-local"],
    ["until", "Received until", "datetime-local"],
  ];
  const inputs = Object.fromEntries(fields.map(([name, , type]) =>
    [name, el("input", { id: `search-${name}`, name, type, value: params.get(name) ?? "" })]));
  const results = el("tbody");
  const outcome = el("div", { role: "status" });
  const more = el("button", { type: "button", hidden: true }, "More");
  let cursor = null;
  const form = el("form", { class: "search", onsubmit: (event) => { event.preventDefault(); search(false); } },
    fields.map(([name, label]) => el("div", { class: "field" }, el("label", { for: `search-${name}` }, label), inputs[name])),
    el("button", { type: "submit" }, "Search"));
  function filters() {
    const values = {};
    for (const [name, , type] of fields) {
      const raw = inputs[name].value.trim();
      values[name] = type === "datetime-local" && raw ? new Date(raw).getTime() / 1000 : raw;
    }
    return values;
  }
  async function search(next) {
    if (!next) {
      cursor = null;
      results.replaceChildren();
    }
    try {
      const page = await call(`/api/events${query({ ...filters(), cursor })}`);
      outcome.replaceChildren();
      for (const event of page.events) {
        results.append(el("tr", {},
          el("td", {}, el("a", { href: `#/event/${encodeURIComponent(event.event_id)}` }, event.event_id)),
          el("td", {}, event.channel_id),
          el("td", {}, event.event_type),
          el("td", {}, event.entity_id),
          el("td", {}, dateTime(event.received_at)),
          el("td", {}, event.status ?? DASH)));
      }
      if (!results.children.length) outcome.replaceChildren(el("p", {}, "No messages match."));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      outcome.replaceChildren(failure(error, "Message search"));
      more.hidden = true;
    }
  }
  more.addEventListener("click", () => search(true));
  const node = el("div", {},
    el("h1", {}, "Messages"), form, outcome,
    el("table", { class: "grid", id: "events" },
      el("caption", {}, "Events, newest first. Patient identifiers are masked for roles that may not see them."),
      el("thead", {}, el("tr", {}, ["Event", "Channel", "Type", "Patient / ordering key", "Received", "Status"]
        .map((label) => el("th", { scope: "col" }, label)))),
      results),
    more);
  return { node, live: false, title: "Messages", refresh: () => search(false) };
}

// One event's timeline: GET /api/events/{id}/timeline.
export function timelineView(id) {
  const body = el("div");
  const node = el("div", {},
    el("p", { class: "crumbs" }, el("a", { href: "#/messages" }, "Messages"), " / ", `event ${id}`),
    el("h1", {}, `Event ${id}`), body);
  return {
    node,
    live: false,
    title: `Event ${id}`,
    async refresh() {
      let data;
      try {
        data = await call(`/api/events/${encodeURIComponent(id)}/timeline`);
      } catch (error) {
        body.replaceChildren(failure(error, "The event timeline"));
        return;
      }
      const facts = Object.entries(data.event).map(([name, value]) => [
        el("dt", {}, name.replaceAll("_", " ")),
        el("dd", {}, name.endsWith("_at") && typeof value === "number" ? dateTime(value) : String(value ?? DASH)),
      ]);
      body.replaceChildren(
        el("dl", { class: "figures" }, facts.flat()),
        el("h2", {}, "Timeline"),
        el("ol", { class: "timeline" }, data.entries.map((entry) =>
          el("li", {},
            el("time", { datetime: new Date(entry.at * 1000).toISOString() }, dateTime(entry.at)), " ",
            el("strong", {}, entry.kind),
            entry.destination_id ? ` → ${entry.destination_id}` : "",
            entry.detail ? `: ${entry.detail}` : ""))));
    },
  };
}
