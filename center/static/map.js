// The site map (Leaflet): the site's GeoJSON boundary and grid, tiles only when the config
// names a tile server (none is reachable from the operations network by default), devices
// as small dots, and work orders as kind icons on a disc coloured by state, ringed red when
// overdue. Orders closer on screen than CLUSTER_PX are drawn as one numbered cluster (a
// click zooms in); at the highest zooms, or where orders share one spot, they fan out
// around it instead. A legend says what the icons, colours and rings mean.

import { h } from "./dom.js";
import { ICON_KINDS, kindIcon } from "./icons.js";
import { kindLabel, t } from "./i18n.js";
import { isOverdue, stateColor } from "./orders.js";

const L = window.L;
const CLUSTER_PX = 34;
const FAN_ZOOM = 17; // from here on, overlapping orders fan out instead of clustering
const FAN_PX = 26;

/** Greedy screen-space grouping: each order joins the first group whose seed lies within
 * `px` pixels. points: [{order, x, y}] → [[...members]]. Pure, so a test can call it. */
export function groupByDistance(points, px) {
  const groups = [];
  for (const p of points) {
    const near = groups.find((g) => Math.hypot(g[0].x - p.x, g[0].y - p.y) <= px);
    if (near) near.push(p);
    else groups.push([p]);
  }
  return groups;
}

function orderIcon(order, fanned = false) {
  const size = 30 - 3 * ((order.priority || 3) - 1);
  const disc = h("div", {
    class: `order-marker p${order.priority}${isOverdue(order) ? " overdue" : ""}${fanned ? " fanned" : ""}`,
    "data-testid": "map-order", "data-id": order.id, "data-kind": order.kind,
  }, kindIcon(order.kind, { size: Math.round(size * 0.6) }));  // prettier-ignore
  disc.style.setProperty("--c", stateColor(order.state)); // CSSOM: the CSP allows no style attributes
  return L.divIcon({ html: disc, className: "order-icon", iconSize: [size, size] });
}

function clusterIcon(members) {
  const top = Math.min(...members.map((m) => m.order.priority || 4));
  const overdue = members.some((m) => isOverdue(m.order));
  const node = h("div", {
    class: `cluster-marker p${top}${overdue ? " overdue" : ""}`, "data-testid": "map-cluster",
    "data-count": members.length,
  }, String(members.length));  // prettier-ignore
  return L.divIcon({ html: node, className: "order-icon", iconSize: [34, 34] });
}

export class SiteMap {
  constructor(element, onSelect) {
    this.onSelect = onSelect;
    this.orders = new Map();
    this.map = L.map(element, { zoomControl: true, attributionControl: true, preferCanvas: false });
    this.map.setView([31.43, 119.48], 13);
    this.orderLayer = L.layerGroup().addTo(this.map);
    this.deviceLayer = L.layerGroup().addTo(this.map);
    this.fitted = false;
    this.pending = null;
    this.picking = null;
    this.map.on("zoomend", () => this.redraw());
    this.map.on("click", (ev) => {
      if (!this.picking) return;
      const done = this.picking;
      this.picking = null;
      element.classList.remove("picking");
      done(ev.latlng);
    });
    this.legend = L.control({ position: "bottomleft" });
    this.legend.onAdd = () => this.legendNode();
    this.legend.addTo(this.map);
  }

  /** Draw the site from GET /api/v1/site. */
  setSite(site) {
    if (site.tiles) {
      L.tileLayer(site.tiles.url, {
        attribution: site.tiles.attribution || "",
        maxZoom: site.tiles.max_zoom || 19,
      }).addTo(this.map);
    }
    // No animation: a view change while a zoom animates is dropped by Leaflet.
    if (site.center) this.map.setView([site.center.lat, site.center.lon], 14, { animate: false });
    if (site.boundary) {
      const layer = L.geoJSON(site.boundary, {
        style: (feature) => ({
          color: "#3a86c8",
          weight: feature?.properties?.level === "district" ? 2.5 : 1,
          opacity: 0.8,
          fillColor: "#1f6feb",
          fillOpacity: 0.06,
        }),
        onEachFeature: (feature, lyr) => {
          const name = feature?.properties?.name || feature?.properties?.id;
          if (!name) return;
          // Communities (the grid's cells) are labelled in place; larger areas on hover.
          const cell = feature?.properties?.level === "community";
          lyr.bindTooltip(String(name), cell
            ? { permanent: true, direction: "center", className: "area-label" }
            : { sticky: true });  // prettier-ignore
        },
      }).addTo(this.map);
      layer.bringToBack();
      const bounds = layer.getBounds();
      if (bounds.isValid()) {
        this.map.fitBounds(bounds, { padding: [12, 12], animate: false });
        this.fitted = true;
      }
    }
  }

  /** The legend: kind icons, state colours, the overdue ring and clusters (rebuilt when
   * the language changes). */
  legendNode() {
    const swatch = (color, key) => {
      const dot = h("span", { class: "swatch" });
      dot.style.setProperty("--c", color);
      return h("li", {}, dot, t(key));
    };
    const node = h("div", { class: "map-legend", "data-testid": "map-legend" },
      h("div", { class: "legend-title" }, t("legend.kinds")),
      h("ul", {}, ICON_KINDS.map((k) => h("li", { "data-kind": k }, kindIcon(k, { size: 14 }), kindLabel(k)))),
      h("div", { class: "legend-title" }, t("legend.states")),
      h("ul", {},
        swatch(stateColor("filed"), "legend.waiting"), swatch(stateColor("dispatched"), "legend.with_unit"),
        swatch(stateColor("in_progress"), "legend.handling"), swatch(stateColor("resolved"), "legend.done"),
        h("li", {}, h("span", { class: "swatch ring" }), t("legend.overdue")),
        h("li", {}, h("span", { class: "swatch count" }, "3"), t("legend.cluster")),
        h("li", {}, h("span", { class: "swatch device" }), t("legend.device"))));  // prettier-ignore
    L.DomEvent.disableClickPropagation(node);
    return node;
  }

  refreshLegend() {
    this.legend.remove();
    this.legend.addTo(this.map);
  }

  /** Without a boundary to fit, frame what there is (devices and orders), once. */
  fitOnce() {
    if (this.fitted) return;
    const points = [...this.deviceLayer.getLayers(), ...this.orderLayer.getLayers()].map((m) => m.getLatLng());
    if (points.length < 2) return;
    this.map.fitBounds(L.latLngBounds(points), { padding: [30, 30], maxZoom: 16, animate: false });
    this.fitted = true;
  }

  setDevices(devices) {
    this.deviceLayer.clearLayers();
    for (const device of devices) {
      if (device.lat == null || device.lon == null) continue;
      const ring = { online: "#3fb950", offline: "#f85149" }[device.state] || "#8b949e";
      L.circleMarker([device.lat, device.lon], {
        radius: 4, weight: 1.5, color: ring, fillColor: "#30363d", fillOpacity: 1,
      })
        .bindTooltip(`${device.name || device.id} · ${t(device.kind)} · ${t(device.state || "unknown")}`)
        .addTo(this.deviceLayer);
    }
    this.fitOnce();
  }

  /** Add or move one work order (orders without a point are not drawn). */
  upsert(order) {
    if (order.lat == null || order.lon == null) this.orders.delete(order.id);
    else this.orders.set(order.id, order);
    this.scheduleRedraw();
  }

  remove(orderId) {
    this.orders.delete(orderId);
    this.scheduleRedraw();
  }

  clearOrders() {
    this.orders.clear();
    this.scheduleRedraw();
  }

  scheduleRedraw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = null;
      this.redraw();
    });
  }

  /** Regroup every order for the current zoom: singles, clusters, or fans. */
  redraw() {
    this.orderLayer.clearLayers();
    const points = [...this.orders.values()].map((order) => {
      const p = this.map.latLngToLayerPoint([order.lat, order.lon]);
      return { order, x: p.x, y: p.y };
    });
    const zoom = this.map.getZoom();
    for (const group of groupByDistance(points, CLUSTER_PX)) {
      if (group.length === 1) {
        this.single(group[0].order, [group[0].order.lat, group[0].order.lon]);
      } else if (zoom >= FAN_ZOOM || zoom >= this.map.getMaxZoom() || this.sameSpot(group)) {
        this.fan(group);
      } else {
        const bounds = L.latLngBounds(group.map((m) => [m.order.lat, m.order.lon]));
        L.marker(bounds.getCenter(), { icon: clusterIcon(group), keyboard: false })
          .bindTooltip(group.map((m) => `${m.order.number || ""} ${kindLabel(m.order.kind)}`).join("\n"))
          .on("click", () => this.map.fitBounds(bounds.pad(0.5), { maxZoom: FAN_ZOOM, animate: false }))
          .addTo(this.orderLayer);
      }
    }
  }

  sameSpot(group) {
    const [first] = group;
    return group.every((m) => Math.abs(m.x - first.x) < 2 && Math.abs(m.y - first.y) < 2);
  }

  /** Orders at (nearly) one spot, spread on a circle around it, each still clickable. */
  fan(group) {
    const cx = group.reduce((s, m) => s + m.x, 0) / group.length;
    const cy = group.reduce((s, m) => s + m.y, 0) / group.length;
    const radius = FAN_PX * Math.max(1, group.length / 6);
    group.forEach((m, i) => {
      const angle = (2 * Math.PI * i) / group.length - Math.PI / 2;
      const at = this.map.layerPointToLatLng([cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)]);
      this.single(m.order, at, true);
    });
  }

  single(order, at, fanned = false) {
    const marker = L.marker(at, { icon: orderIcon(order, fanned), keyboard: false, riseOnHover: true })
      .bindTooltip(`${order.number || order.id} · ${kindLabel(order.kind)} · ${t(order.state)}`)
      .on("click", () => this.onSelect(order.id));
    marker.addTo(this.orderLayer);
  }

  /** The next click on the map gives its position to `done(latlng)`. */
  pick(done) {
    this.picking = done;
    this.map.getContainer().classList.add("picking");
  }

  focus(order) {
    if (order.lat == null || order.lon == null) return;
    const point = L.latLng(order.lat, order.lon);
    if (!this.map.getBounds().pad(-0.1).contains(point)) this.map.panTo(point);
  }

  /** Leaflet measures its container once; call after the layout changes. */
  resize() {
    this.map.invalidateSize();
  }
}
