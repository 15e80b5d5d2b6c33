// The detail panel of one work order: its number and machine id, summary, SLA countdown,
// the devices that reported it (linked to the devices tab), snapshots and crops, recorded
// clips, the caller's words for a hotline order, the depth chart for waterlogging, the
// timeline in the reader's language, and the action buttons.

import { actionsPanel } from "./actions.js";
import { api, blobUrl } from "./api.js";
import { depthChart } from "./depth.js";
import { clear, fmtTime, h } from "./dom.js";
import { kindIcon } from "./icons.js";
import { boxLabel, dataText, eventLabel, fmtSpan, kindLabel, reasonText, t } from "./i18n.js";
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
    if (!sla.due_at) {
      node.textContent = "—";
      return;
    }
    const left = (new Date(sla.due_at).getTime() - Date.now()) / 1000;
    node.className = left < 0 ? "sla overdue" : left < 3600 ? "sla soon" : "sla";
    node.textContent = left < 0
      ? `${t("detail.overdue")} ${fmtSpan(left)}`
      : `${t("detail.remaining")} ${fmtSpan(left)}`;
  };
  update();
  return { node, update };
}

/** The caption under a piece of evidence: what it is and what its box stood for. */
function caption(item, alerts) {
  const alert = alerts.get(item.alert_id);
  const box = alert ? boxLabel(alert.attributes, alert.confidence) : "";
  return [t(`evidence.${item.kind}`), box, alert ? fmtTime(alert.event_time) : ""].filter(Boolean).join(" · ");
}

function imagesView(detail, alerts) {
  const items = (detail.evidence || []).filter((e) => (e.content_type || "").startsWith("image/")
    || e.kind === "snapshot" || e.kind === "crop");  // prettier-ignore
  const section = h("section", { class: "evidence" }, h("h3", {}, t("detail.evidence")));
  if (!items.length) {
    section.append(h("p", { class: "muted" }, t("detail.no_evidence")));
    return section;
  }
  const strip = h("div", { class: "thumbs" });
  section.append(strip);
  for (const item of items.slice(0, 6)) {
    const img = h("img", { alt: t(`evidence.${item.kind}`), "data-testid": "evidence-image", "data-kind": item.kind });
    const figure = h("figure", { class: `ev-${item.kind}` }, img,
      h("figcaption", { "data-testid": "evidence-caption" }, caption(item, alerts)));  // prettier-ignore
    strip.append(figure);
    blobUrl(item.url)
      .then((url) => {
        img.src = url;
        img.addEventListener("click", () => window.open(url, "_blank"));
      })
      .catch((err) => figure.replaceChildren(h("p", { class: "error" }, `${t(`evidence.${item.kind}`)}: ${err.message}`)));
  }
  return section;
}

/** Recorded clips, played in place: a signed URL lets <video> stream the file with range
 * requests (it cannot send the token); a blob of the whole clip where signing fails. */
function clipsView(detail, alerts) {
  const items = (detail.evidence || []).filter((e) => e.kind === "clip" || (e.content_type || "").startsWith("video/"));
  if (!items.length) return null;
  const list = h("div", { class: "clips" });
  for (const item of items.slice(0, 4)) {
    const video = h("video", { controls: true, preload: "metadata", muted: true, playsInline: true,
      "data-testid": "evidence-video" }, t("detail.video_unsupported"));  // prettier-ignore
    list.append(h("figure", {}, video, h("figcaption", {}, caption(item, alerts))));
    api("/api/v1/signed-urls", { method: "POST", json: { path: item.url } })
      .then(({ url }) => url)
      .catch(() => blobUrl(item.url))
      .then((url) => {
        // A codec the browser lacks (MPEG-4 part 2, MJPEG in AVI) fails here: offer the file.
        video.addEventListener("error", () => video.replaceWith(h("p", { class: "warn small", "data-testid": "clip-unplayable" },
          `${t("detail.video_unsupported")} (${item.content_type || "?"}) `,
          h("a", { href: url, download: "", class: "device-link" }, t("detail.download")))), { once: true });  // prettier-ignore
        video.src = url;
      })
      .catch((err) => video.replaceWith(h("p", { class: "error" }, `${t("evidence.clip")}: ${err.message}`)));
  }
  return h("section", {}, h("h3", {}, t("detail.clips")), list);
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
  return h("section", {}, h("h3", {}, `${t("detail.depth")} · ${sensor.name || sensor.id}`), slot);
}

function timelineView(detail, deptName, placeName) {
  const rows = [...(detail.timeline || [])].reverse(); // newest first
  const ctx = { deptName, placeName, fmtTime };
  return h("section", { class: "timeline" }, h("h3", {}, t("detail.timeline")),
    h("ol", { "data-testid": "detail-timeline" }, rows.map((e) =>
      h("li", { "data-event": e.event },
        h("time", {}, fmtTime(e.time)),
        h("span", { class: "event", "data-event": e.event }, eventLabel(e.event)),
        e.from_state !== e.to_state ? h("span", { class: "move" }, `${t(e.from_state)} → ${t(e.to_state)}`) : null,
        h("span", { class: "actor" }, e.actor),
        e.reason ? h("div", { class: "reason", "data-testid": "event-reason" }, reasonText(e.reason)) : null,
        e.data && Object.keys(e.data).length
          ? h("div", { class: "data" }, Object.entries(e.data).map(([k, v]) => dataText(k, v, ctx)).join(" · "))
          : null))));  // prettier-ignore
}

function devicesView(detail, ctx) {
  const devices = detail.devices || [];
  if (!devices.length) return [];
  return [h("dt", {}, t("detail.devices")), h("dd", { "data-testid": "detail-devices" }, devices.map((d) =>
    h("div", { class: "device-ref" },
      `${t(d.kind)} · ${d.name || d.id}`, d.name ? h("span", { class: "muted small mono" }, ` ${d.id}`) : null,
      d.in_registry === false ? h("span", { class: "warn small" }, ` (${t("detail.not_registered")})`) : null,
      " ",
      h("a", { href: `#device/${encodeURIComponent(d.id)}`, class: "device-link", "data-testid": "device-link",
        "data-device": d.id, onclick: (ev) => { ev.preventDefault(); ctx.onDevice?.(d.id); } },
        `${t("detail.device_link")} →`))))];  // prettier-ignore
}

function reportView(detail) {
  if (!detail.reported_via || detail.reported_via === "machine") return [];
  const report = detail.report || {};
  return [
    h("dt", {}, t("detail.via")), h("dd", { "data-testid": "detail-via" }, t(`via.${detail.reported_via}`)),
    report.description ? [h("dt", {}, t("detail.report")), h("dd", { class: "report" }, report.description)] : null,
    report.contact ? [h("dt", {}, t("detail.contact")), h("dd", {}, report.contact)] : null,
  ];
}

/**
 * Fill `panel` with one work order. ctx: {site, placeName, onChanged(detail), onClose(),
 * onDevice(id)}. Returns a stop() that ends the panel's timers.
 */
export function renderDetail(panel, detail, ctx) {
  const departments = ctx.site?.departments || [];
  const deptName = (id) => departments.find((d) => d.id === id)?.name || id;
  const sla = slaView(detail);
  const alerts = new Map((detail.alerts || []).map((a) => [a.id, a]));
  const place = [detail.district, detail.street, detail.community].filter(Boolean).map(ctx.placeName).join(" / ");
  clear(panel,
    h("header", { class: "detail-head" },
      h("div", {},
        h("div", { class: "detail-number", "data-testid": "detail-number" }, detail.number || detail.id),
        h("h2", {}, kindIcon(detail.kind, { size: 18 }), ` ${detail.category_code || ""} ${kindLabel(detail.kind)}`),
        h("div", { class: "detail-id", title: t("detail.machine_id") },
          `${t("detail.machine_id")}: `, h("span", { "data-testid": "detail-id" }, detail.id))),
      h("button", { class: "icon", type: "button", title: t("detail.close"), onclick: ctx.onClose }, "×")),
    h("dl", { class: "summary", "data-testid": "detail-summary" },
      h("dt", {}, t("col.state")), h("dd", { "data-testid": "detail-state", "data-state": detail.state }, stateBadge(detail.state)),
      h("dt", {}, t("col.priority")), h("dd", {}, t(`p${detail.priority}`)),
      h("dt", {}, t("filter.department")), h("dd", {}, deptName(detail.department)),
      h("dt", {}, t("col.place")), h("dd", {}, place || "—"),
      h("dt", {}, t("col.opened")), h("dd", {}, fmtTime(detail.opened_at)),
      h("dt", {}, t("detail.sla")), h("dd", {}, `${fmtTime(detail.sla?.due_at || detail.due_at)} `, sla.node),
      reportView(detail),
      devicesView(detail, ctx),
      detail.alert_count ? [h("dt", {}, t("detail.alerts")), h("dd", {}, `${detail.alert_count}`,
        detail.max_confidence ? ` · ${t("detail.max_conf")} ${Math.round(detail.max_confidence * 100)}%` : "")] : null,
      detail.escalation_level ? [h("dt", {}, t("detail.escalated_to")), h("dd", { class: "warn" }, t(detail.escalation_level))] : null),
    actionsPanel(detail, departments, ctx.onChanged),
    imagesView(detail, alerts),
    clipsView(detail, alerts),
    depthView(detail),
    attachmentsView(detail),
    timelineView(detail, deptName, ctx.placeName));  // prettier-ignore
  panel.dataset.orderId = detail.id;
  panel.dataset.state = detail.state;
  const timer = setInterval(sla.update, 1000);
  return () => clearInterval(timer);
}
