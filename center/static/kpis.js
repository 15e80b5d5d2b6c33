// The KPI tab: the center's 三率 / closure / on-time rates by department, kind or day over a
// chosen date range, a chart of orders opened and closed per day (inline SVG: the console
// works offline), and the report as CSV.

import { api, download } from "./api.js";
import { clear, fmtNumber, fmtTime, h, siteZoneName } from "./dom.js";
import { t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

/** The range's query string: dates are the site's local days, `until` inclusive (the API's
 * until is exclusive, so the day after). */
export function rangeQuery({ since, until, by }) {
  const q = new URLSearchParams({ by });
  if (since) q.set("since", `${since}T00:00:00`);
  if (until) {
    const next = new Date(`${until}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    q.set("until", `${next.toISOString().slice(0, 10)}T00:00:00`);
  }
  return q.toString();
}

/** Every local day from `since` to before `until` (ISO times) as YYYY-MM-DD, in `zone`. */
export function daysOf(since, until, zone) {
  const format = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" });
  const days = [];
  const end = new Date(until).getTime();
  for (let at = new Date(since).getTime(); at < end && days.length < 400; at += 3600 * 1000) {
    const day = format.format(new Date(at));
    if (days[days.length - 1] !== day) days.push(day);
  }
  return days;
}

/** Bars of opened (total) and closed orders per day, with the day under each pair. */
export function dayChart(rows) {
  const width = 720;
  const height = 200;
  const pad = { left: 34, right: 8, top: 12, bottom: 34 };
  const top = Math.max(1, ...rows.map((r) => r.total));
  const step = (width - pad.left - pad.right) / Math.max(1, rows.length);
  const bar = Math.max(3, Math.min(22, step / 2.6));
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / top);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "kpi-chart", role: "img",
    "data-testid": "kpi-chart", "aria-label": t("kpis.chart") });  // prettier-ignore
  for (const v of [0, Math.round(top / 2), top]) {
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid-line" }));
    chart.append(svg("text", { x: pad.left - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
  }
  rows.forEach((r, i) => {
    const x = pad.left + i * step + step / 2;
    const total = svg("rect", { x: x - bar, y: y(r.total), width: bar, height: y(0) - y(r.total),
      class: "bar total", "data-testid": "kpi-bar", "data-day": r.key, "data-value": r.total });  // prettier-ignore
    total.append(svg("title", {}, `${r.key} ${t("kpis.chart_total")} ${r.total}`));
    const closed = svg("rect", { x, y: y(r.closed), width: bar, height: y(0) - y(r.closed), class: "bar closed" });
    closed.append(svg("title", {}, `${r.key} ${t("kpis.chart_closed")} ${r.closed}`));
    chart.append(total, closed,
      svg("text", { x, y: height - pad.bottom + 14, class: "axis", "text-anchor": "middle" }, r.key.slice(5)));
  });
  const legend = svg("g", { class: "legend" });
  legend.append(svg("rect", { x: width - 170, y: height - 14, width: 10, height: 10, class: "bar total" }),
    svg("text", { x: width - 156, y: height - 5, class: "axis" }, t("kpis.chart_total")),
    svg("rect", { x: width - 90, y: height - 14, width: 10, height: 10, class: "bar closed" }),
    svg("text", { x: width - 76, y: height - 5, class: "axis" }, t("kpis.chart_closed")));  // prettier-ignore
  chart.append(legend);
  return chart;
}

/** The per-day rows with the days that had no orders as zeros (a gap is a quiet day). */
function withEmptyDays(report) {
  const byDay = new Map((report.rows || []).map((r) => [r.key, r]));
  return daysOf(report.since, report.until, siteZoneName())
    .map((day) => byDay.get(day) || { key: day, total: 0, closed: 0 });
}

function fmtCell(key, value) {
  if (typeof value === "number" && key.endsWith("rate")) return `${(value * 100).toFixed(1)}%`;
  if (value && typeof value === "object") return JSON.stringify(value);
  return fmtNumber(value);
}

function kpiLabel(column) {
  const key = `kpi.${column}`;
  const label = t(key);
  return label === key ? column.replaceAll("_", " ") : label;
}

function kpiRow(row, label, columns) {
  return h("tr", {}, h("td", {}, label), columns.map((c) => h("td", { class: "num" }, fmtCell(c, row[c]))));
}

/** Fill `slot` with the report for `range` ({since, until, by}; dates as YYYY-MM-DD). */
export async function loadKpis(slot, range, labelOf = (row) => row.label || row.key) {
  let report;
  let days;
  let summary;
  try {
    [report, days, summary] = await Promise.all([
      api(`/api/v1/kpis?${rangeQuery(range)}`),
      api(`/api/v1/kpis?${rangeQuery({ ...range, by: "day" })}`),
      api("/api/v1/kpis/summary").catch(() => null),
    ]);
  } catch (err) {
    clear(slot, h("p", { class: "error", "data-testid": "kpi-error" }, `${t("kpis.title")}: ${err.message}`));
    return;
  }
  const rows = report.rows || [];
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== "key" && k !== "label");
  const byState = summary?.by_state
    ? h("div", { class: "by-state" }, h("h3", {}, t("kpis.by_state")),
        h("div", { class: "chips" }, Object.entries(summary.by_state).map(([state, n]) =>
          h("span", { class: "chip" }, `${t(state)} ${n}`))))  // prettier-ignore
    : null;
  clear(slot,
    h("p", { class: "muted small", "data-testid": "kpi-range" }, `${fmtTime(report.since)} — ${fmtTime(report.until)}`),
    h("section", { class: "chart-box" }, h("h3", {}, t("kpis.chart")), dayChart(withEmptyDays(days))),
    rows.length
      ? h("table", { class: "grid", "data-testid": "kpi-table" },
          h("thead", {}, h("tr", {}, h("th", {}, t(`kpis.by.${range.by}`)), columns.map((c) => h("th", { class: "num" }, kpiLabel(c))))),
          h("tbody", {}, rows.map((r) => kpiRow(r, labelOf(r, range.by), columns))),
          report.totals ? h("tfoot", {}, kpiRow(report.totals, t("kpis.totals"), columns)) : null)
      : h("p", { class: "muted" }, "—"),
    byState);  // prettier-ignore
}

/** The report for `range` as a CSV file download. */
export function exportKpis(range) {
  return download(`/api/v1/kpis.csv?${rangeQuery(range)}`, `kpis-${range.by}.csv`);
}
