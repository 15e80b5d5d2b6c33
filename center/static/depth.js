// The water-depth chart of a waterlogging work order (uPlot): the sensor's readings with the
// site's level thresholds (15 cm one lane, 25 cm underpasses close, ...) as dashed lines.

import { h, siteZoneName } from "./dom.js";
import { t } from "./i18n.js";

const LEVEL_COLORS = ["#f5a623", "#f0883e", "#f85149", "#db61a2"];

/** Render GET /api/v1/devices/{id}/depth into `slot` (replacing what is there). */
export function depthChart(slot, series) {
  slot.replaceChildren();
  const points = series.points || [];
  if (!points.length) {
    slot.append(h("p", { class: "muted" }, t("detail.no_depth")));
    return;
  }
  if (!window.uPlot) {
    slot.append(h("p", { class: "error" }, t("error.vendor")));
    return;
  }
  const xs = points.map(([time]) => new Date(time).getTime() / 1000);
  const depths = points.map(([, depth]) => depth);
  const levels = series.levels || [];
  const data = [xs, depths, ...levels.map((l) => xs.map(() => l.depth_cm))];
  const axis = { stroke: "#8b949e", grid: { stroke: "#21262d" }, ticks: { stroke: "#30363d" } };
  const width = Math.max(280, slot.clientWidth || 360);
  const clock = new Intl.DateTimeFormat("zh-CN", {
    hour: "2-digit", minute: "2-digit", hour12: false, timeZone: siteZoneName(),
  });
  // eslint-disable-next-line new-cap
  new window.uPlot({
    width,
    height: 180,
    legend: { show: true, live: false },
    // Axis times in the site's zone, like every other time in the console.
    tzDate: (ts) => (siteZoneName() ? window.uPlot.tzDate(new Date(ts * 1e3), siteZoneName()) : new Date(ts * 1e3)),
    scales: { y: { range: (u, min, max) => [0, Math.max(max, ...levels.map((l) => l.depth_cm)) * 1.1] } },
    axes: [
      { ...axis, values: (u, splits) => splits.map((ts) => clock.format(new Date(ts * 1e3))) },
      { ...axis, label: series.unit || "cm", size: 44 },
    ],
    series: [
      {},
      { label: `${series.device_id} (${series.unit || "cm"})`, stroke: "#58a6ff", width: 2, fill: "rgba(88,166,255,0.15)" },
      ...levels.map((l, i) => ({
        label: l.label || l.name, stroke: LEVEL_COLORS[i % LEVEL_COLORS.length], width: 1, dash: [6, 4],
        points: { show: false },
      })),
    ],
  }, data, slot);
}
