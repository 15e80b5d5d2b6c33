// The devices panel (online/offline, last seen, fps, latency) and the KPI tiles of the
// header (open, overdue, escalated — each one a filter of the list).

import { api } from "./api.js";
import { clear, fmtNumber, fmtTime, h } from "./dom.js";
import { fill, fmtSpan, t } from "./i18n.js";

const ageSeconds = (iso) => (Date.now() - new Date(iso).getTime()) / 1000;

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
        h("td", { title: fmtTime(d.last_seen) }, d.last_seen ? fill("devices.ago", { span: fmtSpan(ageSeconds(d.last_seen)) }) : "—"),
        h("td", { class: "num" }, fmtNumber(d.metrics?.fps)),
        h("td", { class: "num" }, fmtNumber(latency(d.metrics), 0)))))));  // prettier-ignore
  return devices;
}

function card(labelKey, value, testid, filter, active, tone = "") {
  return h("button", {
    type: "button", class: `card ${tone}${active ? " active" : ""}`, "data-testid": testid,
    "data-filter": filter, "aria-pressed": active ? "true" : "false", title: t("kpis.tile_hint"),
  }, h("div", { class: "card-value" }, fmtNumber(value, 0)), h("div", { class: "card-label" }, t(labelKey)));  // prettier-ignore
}

/** The KPI tiles in the header strip (always visible); a click on one filters the list to
 * what it counts (`onPick(filter)`; the active tile is `active`). */
export async function loadSummary(slot, { active = "open", onPick = () => {} } = {}) {
  try {
    const s = await api("/api/v1/kpis/summary");
    clear(slot,
      card("kpis.open", s.open, "kpi-open", "open", active === "open"),
      card("kpis.overdue", s.overdue, "kpi-overdue", "overdue", active === "overdue", s.overdue ? "bad" : ""),
      card("kpis.escalated", s.escalated, "kpi-escalated", "escalated", active === "escalated", s.escalated ? "warn" : ""));  // prettier-ignore
    for (const tile of slot.querySelectorAll("[data-filter]")) {
      tile.addEventListener("click", () => onPick(tile.dataset.filter));
    }
    return s;
  } catch (err) {
    clear(slot, h("span", { class: "muted small" }, `${t("kpis.title")}: ${t("error.unavailable")}`));
    return null;
  }
}
