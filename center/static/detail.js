// The detail panel of one work order: summary, SLA countdown, annotated snapshots, the
// depth chart for waterlogging, the timeline and the action buttons.

import { actionsPanel } from "./actions.js";
import { api, blobUrl } from "./api.js";
import { depthChart } from "./depth.js";
import { clear, fmtDuration, fmtTime, h } from "./dom.js";
import { eventLabel, t } from "./i18n.js";
import { stateColor } from "./orders.js";

export function stateBadge(state) {
  const badge = h("span", { class: "badge", "data-state": state }, t(state));
  badge.style.setProperty("--c", stateColor(state)); // CSSOM: the CSP allows no style attributes
  return badge;
}

/** The SLA line, refreshed every second while the panel shows it. */
function slaView(detail) {
  const sla = detail.sla || { due_at: detail.due_at };
  const node = h("span", { class: "sla", "data-testid": "detail-sla" });
  const update = () => {
    if (sla.stopped_at) {
      node.className = "sla stopped";
      node.textContent = `${t("detail.stopped")} · ${fmtTime(sla.stopped_at)}`;
      return;
    }
    const left = (new Date(sla.due_at).getTime() - Date.now()) / 1000;
    node.className = left < 0 ? "sla overdue" : left < 3600 ? "sla soon" : "sla";
    node.textContent = left < 0
      ? `${t("detail.overdue")} ${fmtDuration(left)}`
      : `${fmtDuration(left)} ${t("detail.remaining")}`;
  };
  update();
  return { node, update };
}

function evidenceView(detail) {
  const items = (detail.evidence || []).filter((e) => (e.content_type || "").startsWith("image/"));
  const section = h("section", { class: "evidence" }, h("h3", {}, t("detail.evidence")));
  if (!items.length) {
    section.append(h("p", { class: "muted" }, t("detail.no_evidence")));
    return section;
  }
  const strip = h("div", { class: "thumbs" });
  section.append(strip);
  for (const item of items.slice(0, 6)) {
    const img = h("img", { alt: `${item.kind} ${item.alert_id}`, "data-testid": "evidence-image", "data-kind": item.kind });
    const figure = h("figure", {}, img, h("figcaption", {}, `${item.kind} · ${item.alert_id}`));
    strip.append(figure);
    blobUrl(item.url)
      .then((url) => {
        img.src = url;
        img.addEventListener("click", () => window.open(url, "_blank"));
      })
      .catch((err) => figure.replaceChildren(h("p", { class: "error" }, `${item.kind}: ${err.message}`)));
  }
  return section;
}

function attachmentsView(detail) {
  const items = detail.attachments || [];
  if (!items.length) return null;
  const strip = h("div", { class: "thumbs" });
  for (const item of items) {
    const img = h("img", { alt: item.id, "data-testid": "attachment-image" });
    strip.append(h("figure", {}, img, h("figcaption", {}, `${item.uploaded_by} · ${fmtTime(item.uploaded_at)}`)));
    blobUrl(item.url).then((url) => { img.src = url; }).catch((err) => { img.alt = err.message; });
  }
  return h("section", {}, h("h3", {}, t("detail.attachments")), strip);
}

function depthView(detail) {
  if (detail.kind !== "waterlogging") return null;
  const sensor = (detail.devices || []).find((d) => d.kind === "sensor");
  if (!sensor) return null;
  const slot = h("div", { class: "depth-chart", "data-testid": "depth-chart" });
  const since = new Date(new Date(detail.opened_at).getTime() - 3600 * 1000).toISOString();
  const q = new URLSearchParams({ since });
  api(`/api/v1/devices/${encodeURIComponent(sensor.id)}/depth?${q}`)
    .then((series) => depthChart(slot, series))
    .catch((err) => slot.replaceChildren(h("p", { class: "error" }, `${t("detail.depth")}: ${err.message}`)));
  return h("section", {}, h("h3", {}, `${t("detail.depth")} · ${sensor.id}`), slot);
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function fmtValue(value) {
  return typeof value === "string" && ISO_TIME.test(value) ? fmtTime(value) : String(value);
}

function timelineView(detail) {
  const rows = [...(detail.timeline || [])].reverse(); // newest first
  return h("section", { class: "timeline" }, h("h3", {}, t("detail.timeline")),
    h("ol", { "data-testid": "detail-timeline" }, rows.map((e) =>
      h("li", { "data-event": e.event },
        h("time", {}, fmtTime(e.time)),
        h("span", { class: "event", "data-event": e.event }, eventLabel(e.event)),
        e.from_state !== e.to_state ? h("span", { class: "move" }, `${t(e.from_state)} → ${t(e.to_state)}`) : null,
        h("span", { class: "actor" }, e.actor),
        e.reason ? h("div", { class: "reason" }, e.reason) : null,
        e.data && Object.keys(e.data).length
          ? h("div", { class: "data" }, Object.entries(e.data).map(([k, v]) => `${k}: ${fmtValue(v)}`).join(" · "))
          : null))));  // prettier-ignore
}

/**
 * Fill `panel` with one work order. ctx: {site, onChanged(detail), onClose()}.
 * Returns a stop() that ends the panel's timers.
 */
export function renderDetail(panel, detail, ctx) {
  const departments = ctx.site?.departments || [];
  const deptName = (id) => departments.find((d) => d.id === id)?.name || id;
  const sla = slaView(detail);
  const place = [detail.district, detail.street, detail.community].filter(Boolean).map(ctx.placeName).join(" / ");
  clear(panel,
    h("header", { class: "detail-head" },
      h("div", {},
        h("div", { class: "detail-id", "data-testid": "detail-id" }, detail.id),
        h("h2", {}, `${detail.category_code || ""} ${detail.category_name || t(detail.kind)}`)),
      h("button", { class: "icon", type: "button", title: t("detail.close"), onclick: ctx.onClose }, "×")),
    h("dl", { class: "summary", "data-testid": "detail-summary" },
      h("dt", {}, t("col.state")), h("dd", { "data-testid": "detail-state", "data-state": detail.state }, stateBadge(detail.state)),
      h("dt", {}, t("col.priority")), h("dd", {}, t(`p${detail.priority}`)),
      h("dt", {}, t("filter.department")), h("dd", {}, deptName(detail.department)),
      h("dt", {}, t("col.place")), h("dd", {}, place || "—"),
      h("dt", {}, t("col.opened")), h("dd", {}, fmtTime(detail.opened_at)),
      h("dt", {}, t("detail.sla")), h("dd", {}, `${fmtTime(detail.sla?.due_at || detail.due_at)} `, sla.node),
      h("dt", {}, t("detail.alerts")), h("dd", {}, `${detail.alert_count ?? (detail.alerts || []).length}`,
        detail.max_confidence != null ? ` · max ${Math.round(detail.max_confidence * 100)}%` : ""),
      detail.escalation_level ? [h("dt", {}, t("action.escalate")), h("dd", { class: "warn" }, t(detail.escalation_level))] : null),
    actionsPanel(detail, departments, ctx.onChanged),
    evidenceView(detail),
    depthView(detail),
    attachmentsView(detail),
    timelineView(detail));  // prettier-ignore
  panel.dataset.orderId = detail.id;
  panel.dataset.state = detail.state;
  const timer = setInterval(sla.update, 1000);
  return () => clearInterval(timer);
}
