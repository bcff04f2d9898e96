// The cluster panel of the overview: every node sharing the store, its
// heartbeat, and the partitions and duties it holds (GET /api/cluster).
// With the embedded SQLite store there is one node holding everything, and
// the panel says so in one line.

import { DASH, clock, el } from "./format.js";

function holdings(partitions, total) {
  const parts = Object.entries(partitions).map(([destination, held]) =>
    `${destination} ${held.length}/${total}`);
  return parts.length ? parts.join(", ") : DASH;
}

// alive, starting (alive, its channels and outboxes not open yet) or gone,
// as NodeRecord.state says on the server.
function nodeState(node) {
  if (!node.alive) return "gone";
  return node.ready ? "alive" : "starting";
}

function nodeRow(node, total) {
  return el("tr", { dataset: { node: node.node_id, alive: String(node.alive) } },
    el("th", { scope: "row" }, node.this_node ? `${node.node_id} (this node)` : node.node_id),
    el("td", { dataset: { field: "state" } }, nodeState(node)),
    el("td", {}, `${node.host} pid ${node.pid}`),
    el("td", { dataset: { field: "heartbeat" } },
      `${node.heartbeat_age.toFixed(1)} s ago (${clock(node.heartbeat_at)})`),
    el("td", { dataset: { field: "partitions" } }, holdings(node.partitions, total)),
    el("td", { dataset: { field: "duties" } }, node.duties.length ? node.duties.join(", ") : DASH));
}

export function clusterPanel() {
  const body = el("tbody");
  const note = el("p", { id: "cluster-note", class: "hint" });
  const table = el("table", { id: "cluster", class: "grid" },
    el("caption", {}, "Engine nodes sharing the store; a dead node's partitions and duties move after its lease."),
    el("thead", {}, el("tr", {},
      ["Node", "State", "Where", "Heartbeat", "Partitions", "Duties"]
        .map((label) => el("th", { scope: "col" }, label)))),
    body);
  const node = el("section", { "aria-labelledby": "cluster-title" },
    el("h2", { id: "cluster-title" }, "Cluster"), note, table);
  function update(answer) {
    if (answer instanceof Error) {
      note.textContent = `The cluster view failed: ${answer.detail || answer.message}`;
      return;
    }
    if (answer.store === "sqlite") {
      note.textContent = "One node (embedded SQLite store): it holds every partition and duty.";
      table.hidden = true;
      return;
    }
    table.hidden = false;
    note.textContent = answer.unheld.length ? `Waiting for a taker: ${answer.unheld.join(", ")}` : "";
    body.replaceChildren(...answer.nodes.map((item) => nodeRow(item, answer.partitions)));
  }
  return { node, update };
}
