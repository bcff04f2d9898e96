// Formatting figures for people, and building DOM elements.

export const DASH = "—";

export function seconds(value) {
  if (value === null || value === undefined) return DASH;
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

export function age(at, now) {
  if (at === null || at === undefined) return DASH;
  return `${seconds(Math.max(0, now - at))} ago`;
}

export function clock(at) {
  if (at === null || at === undefined) return DASH;
  const when = new Date(at * 1000);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(at) {
  if (at === null || at === undefined) return DASH;
  return new Date(at * 1000).toLocaleString();
}

export function percent(value) {
  if (value === null || value === undefined) return DASH;
  return `${(value * 100).toFixed(value > 0 && value < 0.01 ? 2 : 0)} %`;
}

export function count(value) {
  if (value === null || value === undefined) return DASH;
  return String(value);
}

// el("td", {class: "x", dataset: {field: "status"}}, "text", child, ...)
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function statusBadge(status) {
  const marks = { current: "●", delayed: "▲", stuck: "■", failing: "✖" };
  return el(
    "span",
    { class: `status status-${status}` },
    el("span", { "aria-hidden": "true", class: "mark" }, marks[status] || "?"),
    " ",
    el("span", { class: "word" }, status),
  );
}
