// Small charts for the operator console: inline SVG sparklines drawn from a list of points, no libraries.
// A point is {t, <series>: number, ...}; `t` is Unix seconds or an ISO time. Missing values leave a gap.

const SVG = "http://www.w3.org/2000/svg";
export const WINDOW_SECONDS = 15 * 60;

// [key, label, unit] of every series the gateway's history may carry (docs/operations.md).
export const SERIES = [
  ["agents", "Agents connected", ""],
  ["tunnels", "Tunnels connected", ""],
  ["streams", "Streams open", ""],
  ["sessions", "Live sessions", ""],
  ["frames_a2c_per_s", "Frames agent → client", "/s"],
  ["frames_c2a_per_s", "Frames client → agent", "/s"],
  ["ingress_per_s", "Webhooks", "/s"],
  ["ingress_5xx_per_s", "Webhook 5xx", "/s"],
  ["rate_limited_per_s", "Rate limited", "/s"],
  ["relay_p99_ms", "Relay p99", " ms"],
];

export function seconds(t) {
  if (typeof t === "number") return t;
  const parsed = Date.parse(t);
  return Number.isNaN(parsed) ? null : parsed / 1000;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function format(value, unit) {
  if (value === null || value === undefined) return "—";
  const rounded = Math.abs(value) >= 100 || Number.isInteger(value) ? Math.round(value) : Math.round(value * 10) / 10;
  return `${rounded}${unit}`;
}

// One sparkline of `key` over the last 15 minutes before `now` (Unix seconds): a line and the area under it.
export function sparkline(points, key, now, { width = 260, height = 56 } = {}) {
  const start = now - WINDOW_SECONDS;
  const samples = points
    .map((p) => [seconds(p.t), p[key]])
    .filter(([t, v]) => t !== null && t >= start && typeof v === "number" && Number.isFinite(v));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img", "data-series": key });
  chart.append(svg("line", { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: "spark-base" }));
  if (!samples.length) return chart;
  const top = Math.max(1, ...samples.map(([, v]) => v));
  const x = (t) => ((t - start) / WINDOW_SECONDS) * (width - 4);
  const y = (v) => height - 2 - (v / top) * (height - 6);
  const coords = samples.map(([t, v]) => [x(t).toFixed(1), y(v).toFixed(1)]);
  if (coords.length > 1) {
    const line = coords.map((c) => c.join(",")).join(" ");
    const [first, last] = [coords[0][0], coords[coords.length - 1][0]];
    chart.append(svg("polygon", { points: `${first},${height - 1} ${line} ${last},${height - 1}`, class: "spark-area" }));
    chart.append(svg("polyline", { points: line, class: "spark-line" }));
  }
  const [lastX, lastY] = coords[coords.length - 1];
  chart.append(svg("circle", { cx: lastX, cy: lastY, r: 3, class: "spark-dot" }));
  return chart;
}

// Every series that has at least one value in `points`, as a small card: label, latest value, sparkline.
export function renderCharts(container, points, now = Date.now() / 1000) {
  const cards = [];
  for (const [key, label, unit] of SERIES) {
    const values = points.filter((p) => typeof p[key] === "number");
    if (!values.length) continue;
    const latest = values[values.length - 1][key];
    const card = document.createElement("div");
    card.className = "chart";
    card.dataset.chart = key;
    const head = document.createElement("div");
    head.className = "chart-head";
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = format(latest, unit);
    head.append(name, value);
    card.append(head, sparkline(points, key, now));
    cards.push(card);
  }
  container.replaceChildren(...cards);
  return cards.length;
}
