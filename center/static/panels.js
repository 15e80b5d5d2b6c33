// The devices panel (online/offline, last seen, fps, latency) and the KPI panel (the
// center's counts and its 三率 / closure / on-time rates by department, kind or day).

import { api } from "./api.js";
import { clear, fmtAgo, fmtNumber, fmtTime, h } from "./dom.js";
import { t } from "./i18n.js";

function failed(slot, what, err) {
  clear(slot, h("p", { class: "error" }, `${what}: ${err.message || t("error.unavailable")}`));
}

export async function loadDevices(slot, placeName) {
  let devices;
  try {
    devices = await api("/api/v1/devices");
  } catch (err) {
    failed(slot, t("devices.title"), err);
    return [];
  }
  if (!devices.length) {
    clear(slot, h("p", { class: "muted" }, t("devices.empty")));
    return devices;
  }
  const latency = (m) => m?.pipeline_ms ?? m?.latency_ms ?? m?.inference_ms;
  clear(slot, h("table", { class: "grid", "data-testid": "devices-table" },
    h("thead", {}, h("tr", {},
      ["devices.state", "devices.id", "devices.kind", "devices.place", "devices.last_seen", "devices.fps", "devices.latency"]
        .map((k) => h("th", {}, t(k))))),
    h("tbody", {}, devices.map((d) =>
      h("tr", { "data-device": d.id, "data-state": d.state },
        h("td", { title: d.state_reason || "" }, h("span", { class: `dot ${d.state === "online" ? "ok" : d.state === "offline" ? "bad" : ""}` }), t(d.state || "unknown")),
        h("td", {}, h("div", {}, d.id), h("div", { class: "muted small" }, d.name || "")),
        h("td", {}, t(d.kind)),
        h("td", {}, [d.district, d.street, d.community].filter(Boolean).map(placeName).join(" / ")),
        h("td", { title: fmtTime(d.last_seen) }, d.last_seen ? `${fmtAgo(d.last_seen)}` : "—"),
        h("td", { class: "num" }, fmtNumber(d.metrics?.fps)),
        h("td", { class: "num" }, fmtNumber(latency(d.metrics), 0)))))));  // prettier-ignore
  return devices;
}

function card(labelKey, value, testid, tone = "") {
  return h("div", { class: `card ${tone}`, "data-testid": testid },
    h("div", { class: "card-value" }, fmtNumber(value, 0)), h("div", { class: "card-label" }, t(labelKey)));  // prettier-ignore
}

/** The KPI counts shown in the header strip (always visible). */
export async function loadSummary(slot) {
  try {
    const s = await api("/api/v1/kpis/summary");
    clear(slot,
      card("kpis.open", s.open, "kpi-open"),
      card("kpis.overdue", s.overdue, "kpi-overdue", s.overdue ? "bad" : ""),
      card("kpis.escalated", s.escalated, "kpi-escalated", s.escalated ? "warn" : ""));  // prettier-ignore
    return s;
  } catch (err) {
    clear(slot, h("span", { class: "muted small" }, `KPI ${t("error.unavailable")}`));
    return null;
  }
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

export async function loadKpis(slot, by) {
  let report;
  let summary;
  try {
    [report, summary] = await Promise.all([
      api(`/api/v1/kpis?by=${encodeURIComponent(by)}`),
      api("/api/v1/kpis/summary").catch(() => null),
    ]);
  } catch (err) {
    failed(slot, t("kpis.title"), err);
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
    h("p", { class: "muted small" }, `${fmtTime(report.since)} — ${fmtTime(report.until)}`),
    rows.length
      ? h("table", { class: "grid", "data-testid": "kpi-table" },
          h("thead", {}, h("tr", {}, h("th", {}, t(`kpis.by.${by}`)), columns.map((c) => h("th", { class: "num" }, kpiLabel(c))))),
          h("tbody", {}, rows.map((r) => kpiRow(r, r.label || r.key, columns))),
          report.totals ? h("tfoot", {}, kpiRow(report.totals, t("kpis.totals"), columns)) : null)
      : h("p", { class: "muted" }, "—"),
    byState);  // prettier-ignore
}
