// Charts drawn as inline SVG: per-minute throughput (bars) and lag (lines).

import { clock, seconds } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 180;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(label, max, format, points) {
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": label,
    class: "chart",
  });
  root.append(svg("title", {}, label));
  const bottom = HEIGHT - PAD.bottom;
  root.append(svg("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: "axis" }));
  root.append(svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "axis" }));
  root.append(svg("text", { x: PAD.left - 6, y: PAD.top + 4, class: "tick", "text-anchor": "end" }, format(max)));
  root.append(svg("text", { x: PAD.left - 6, y: bottom, class: "tick", "text-anchor": "end" }, format(0)));
  if (points.length) {
    root.append(svg("text", { x: PAD.left, y: HEIGHT - 8, class: "tick" }, clock(points[0].at)));
    root.append(
      svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, class: "tick", "text-anchor": "end" },
        clock(points[points.length - 1].at)),
    );
  }
  return root;
}

function scale(points, max) {
  const span = WIDTH - PAD.left - PAD.right;
  const height = HEIGHT - PAD.top - PAD.bottom;
  const step = span / Math.max(points.length, 1);
  return {
    step,
    x: (index) => PAD.left + index * step,
    y: (value) => HEIGHT - PAD.bottom - (max > 0 ? (value / max) * height : 0),
  };
}

// Deliveries (and dead letters, stacked) per minute.
export function throughputChart(points) {
  const total = points.reduce((sum, p) => sum + p.delivered, 0);
  const dead = points.reduce((sum, p) => sum + p.dead, 0);
  const peak = Math.max(1, ...points.map((p) => p.delivered + p.dead));
  const label = `Deliveries per minute over ${points.length} minutes: ${total} delivered, ${dead} dead-lettered, peak ${peak} per minute`;
  const root = frame(label, peak, String, points);
  const { step, x, y } = scale(points, peak);
  points.forEach((p, index) => {
    const width = Math.max(1, step - 1);
    const top = y(p.delivered);
    root.append(svg("rect", { x: x(index), y: top, width, height: y(0) - top, class: "bar-delivered" }));
    if (p.dead) {
      const deadTop = y(p.delivered + p.dead);
      root.append(svg("rect", { x: x(index), y: deadTop, width, height: top - deadTop, class: "bar-dead" }));
    }
  });
  return root;
}

// Lag p50 and p99 per minute, with the latency budget as a dashed line.
export function lagChart(points, budget) {
  const values = points.flatMap((p) => [p.lag_p50, p.lag_p99]).filter((v) => v !== null);
  const worst = values.length ? Math.max(...values) : 0;
  const top = Math.max(worst, budget || 0, 0.001) * 1.1;
  const label = `Lag per minute over ${points.length} minutes: worst p99 ${seconds(worst)}, budget ${seconds(budget)}`;
  const root = frame(label, top, seconds, points);
  const { step, x, y } = scale(points, top);
  if (budget) {
    root.append(svg("line", {
      x1: PAD.left, x2: WIDTH - PAD.right, y1: y(budget), y2: y(budget), class: "budget",
    }));
    root.append(svg("text", { x: WIDTH - PAD.right, y: y(budget) - 4, class: "tick", "text-anchor": "end" }, "budget"));
  }
  for (const [key, css] of [["lag_p50", "line-p50"], ["lag_p99", "line-p99"]]) {
    const coordinates = points
      .map((p, index) => (p[key] === null ? null : `${x(index) + step / 2},${y(p[key])}`))
      .filter((c) => c !== null);
    if (coordinates.length) root.append(svg("polyline", { points: coordinates.join(" "), class: css }));
    points.forEach((p, index) => {
      if (p[key] !== null) root.append(svg("circle", { cx: x(index) + step / 2, cy: y(p[key]), r: 2.5, class: css }));
    });
  }
  return root;
}
