// The site map (Leaflet): the site's GeoJSON boundary and grid, tiles only when the config
// names a tile server (none is reachable from the operations network by default), devices
// as small squares and work orders as circles coloured by state, ringed red when overdue.

import { t } from "./i18n.js";
import { isOverdue, stateColor } from "./orders.js";

const L = window.L;

export class SiteMap {
  constructor(element, onSelect) {
    this.onSelect = onSelect;
    this.markers = new Map();
    this.map = L.map(element, { zoomControl: true, attributionControl: true, preferCanvas: false });
    this.map.setView([31.43, 119.48], 13);
    this.orderLayer = L.layerGroup().addTo(this.map);
    this.deviceLayer = L.layerGroup().addTo(this.map);
    this.fitted = false;
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

  /** Add or move one work order's marker (orders without a point are not drawn). */
  upsert(order) {
    const old = this.markers.get(order.id);
    if (old) this.orderLayer.removeLayer(old);
    if (order.lat == null || order.lon == null) return;
    const overdue = isOverdue(order);
    const marker = L.circleMarker([order.lat, order.lon], {
      radius: 11 - 1.5 * (order.priority || 3),
      weight: overdue ? 3 : 1.5,
      color: overdue ? "#f85149" : "#0d1117",
      fillColor: stateColor(order.state),
      fillOpacity: 0.9,
    })
      .bindTooltip(`${order.category_name || t(order.kind)} · ${t(order.state)}`)
      .on("click", () => this.onSelect(order.id));
    marker.addTo(this.orderLayer);
    this.markers.set(order.id, marker);
  }

  remove(orderId) {
    const marker = this.markers.get(orderId);
    if (marker) this.orderLayer.removeLayer(marker);
    this.markers.delete(orderId);
  }

  clearOrders() {
    this.orderLayer.clearLayers();
    this.markers.clear();
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
