// The console's entry point: sign-in, the triage list (most urgent first, with a live
// countdown) kept current by the live feed, filters and the KPI tiles that set them, the
// map, the detail panel, orders opened by hand, the P1 alarm, and the devices and KPI tabs.

import { alertsOn, announceP1, setAlerts } from "./alerting.js";
import { api, download, forgetBlobs, setToken, token } from "./api.js";
import { renderDetail, stateBadge } from "./detail.js";
import { clear, fmtTime, h, setSiteZone } from "./dom.js";
import { openFeed } from "./feed.js";
import { hotlineForm } from "./hotline.js";
import {
  KINDS, STATES, applyStatic, fill, fmtSpan, kindLabel, onLangChange, roleLabel, setCategories, t,
  toggleLang,
} from "./i18n.js";
import { kindIcon } from "./icons.js";
import { exportKpis, loadKpis } from "./kpis.js";
import { byUrgency, isOpen, isOverdue, listQuery, matches, secondsLeft } from "./orders.js";
import { loadDevices, loadSummary } from "./panels.js";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  site: null,
  places: new Map(), // district / street / community id → name
  orders: new Map(), // id → summary (from the list, updated by the feed)
  order: [], // ids in list order (newest first)
  cursor: null,
  filters: {},
  selected: null,
  detail: null,
  stopDetail: () => {},
  feed: null,
  map: null,
  tab: "orders",
  timers: [],
  tile: "open", // the KPI tile whose filter the list shows
  overdueIds: new Set(), // rows drawn as overdue (a change re-sorts the list)
  focusDevice: null, // the device to highlight once the devices tab has loaded
  announced: new Set(), // new P1 orders the alarm already rang for
};

const placeName = (id) => state.places.get(id) || id;

// ---- sign-in -------------------------------------------------------------------------

async function signIn(candidate) {
  setToken(candidate);
  try {
    state.user = await api("/api/v1/me");
  } catch (err) {
    setToken(null);
    showLogin(err.status === 401 ? t("login.bad") : err.message);
    return;
  }
  await startConsole();
}

function showLogin(message = "") {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-token").value = "";
  $("login-token").focus();
}

function signOut() {
  state.feed?.close();
  state.feed = null;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.stopDetail();
  forgetBlobs();
  setToken(null);
  state.user = null;
  showLogin();
}

// ---- start-up ------------------------------------------------------------------------

async function startConsole() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("user-name").textContent = state.user.display_name || state.user.name;
  $("user-role").textContent = roleLabel(state.user.role);
  $("user-role").dataset.role = state.user.role;
  $("new-order").hidden = state.user.role === "viewer";
  showAlertsToggle();
  try {
    state.site = await api("/api/v1/site");
  } catch (err) {
    console.warn("site not available", err);
    state.site = { departments: [], districts: [], boundary: null, tiles: null };
  }
  setSiteZone(state.site.timezone);
  setCategories(state.site.categories);
  $("site-name").textContent = state.site.name || "";
  indexPlaces(state.site.districts || []);
  fillFilterOptions();
  startMap();
  state.feed?.close();
  state.feed = openFeed({ onEvent: onFeedEvent, onStatus: showFeedStatus, onResync: reloadOrders });
  await reloadOrders();
  refreshSummary();
  state.timers.push(setInterval(refreshSummary, 30_000));
  state.timers.push(setInterval(refreshTab, 15_000));
  state.timers.push(setInterval(tickCountdowns, 1000));
}

function refreshSummary() {
  return loadSummary($("kpi-strip"), { active: state.tile, onPick: pickTile });
}

/** A KPI tile sets the filters to what it counts (open, overdue, escalated: site-wide, so
 * the other filters are cleared and the list holds what the tile counted). */
function pickTile(tile) {
  state.tile = tile;
  for (const id of ["filter-state", "filter-kind", "filter-department", "filter-district"]) $(id).value = "";
  $("filter-overdue").checked = tile === "overdue";
  $("filter-escalated").checked = tile === "escalated";
  refreshSummary();
  if (state.tab !== "orders") showTab("orders");
  reloadOrders();
}

function indexPlaces(districts) {
  state.places.clear();
  for (const d of districts) {
    state.places.set(d.id, d.name);
    for (const s of d.streets || []) {
      state.places.set(s.id, s.name);
      for (const c of s.communities || []) state.places.set(c.id, c.name);
    }
  }
}

function startMap() {
  const pane = $("map");
  if (!window.L) {
    clear(pane, h("p", { class: "error pad" }, t("error.vendor")));
    return;
  }
  if (state.map) return;
  import("./map.js").then(({ SiteMap }) => {
    state.map = new SiteMap(pane, select);
    state.map.setSite(state.site);
    for (const id of state.order) state.map.upsert(state.orders.get(id));
    api("/api/v1/devices")
      .then((devices) => state.map.setDevices(devices))
      .catch((err) => console.warn("devices not shown on the map", err));
  });
}

// ---- filters and the list ------------------------------------------------------------

function option(value, label) {
  return h("option", { value }, label);
}

function fillFilterOptions() {
  const keep = (select) => select.value;
  const stateSel = $("filter-state");
  const v1 = keep(stateSel);
  clear(stateSel, option("", t("filter.all_open")), STATES.map((s) => option(s, t(s))));
  stateSel.value = v1;
  const kindSel = $("filter-kind");
  const v2 = keep(kindSel);
  const kinds = state.site?.categories?.length ? state.site.categories.map((c) => c.kind) : KINDS;
  clear(kindSel, option("", t("filter.any")), kinds.map((k) => option(k, kindLabel(k))));
  kindSel.value = v2;
  const deptSel = $("filter-department");
  const v3 = keep(deptSel);
  clear(deptSel, option("", t("filter.any")), (state.site?.departments || []).map((d) => option(d.id, d.name)));
  deptSel.value = v3;
  const distSel = $("filter-district");
  const v4 = keep(distSel);
  clear(distSel, option("", t("filter.any")), (state.site?.districts || []).map((d) => option(d.id, d.name)));
  distSel.value = v4;
}

function readFilters() {
  return {
    state: $("filter-state").value || null,
    kind: $("filter-kind").value || null,
    department: $("filter-department").value || null,
    district: $("filter-district").value || null,
    overdue: $("filter-overdue").checked,
    escalated: $("filter-escalated").checked,
  };
}

async function reloadOrders() {
  state.filters = readFilters();
  state.orders.clear();
  state.order = [];
  state.cursor = null;
  state.map?.clearOrders();
  await loadPage();
}

async function loadPage() {
  const list = $("order-rows");
  list.setAttribute("aria-busy", "true");
  try {
    const page = await api(`/api/v1/work-orders?${listQuery(state.filters, state.cursor)}`);
    for (const order of page.items) {
      if (!state.orders.has(order.id)) state.order.push(order.id);
      upsert(order);
    }
    state.cursor = page.next_cursor;
    $("list-error").textContent = "";
  } catch (err) {
    $("list-error").textContent = err.message;
  } finally {
    list.removeAttribute("aria-busy");
  }
  renderRows();
}

/** Keep the newer of two copies of an order (the list and the feed race at start-up). */
function upsert(order) {
  const old = state.orders.get(order.id);
  if (old && (old.seq ?? -1) > (order.seq ?? -1)) return false;
  state.orders.set(order.id, { ...old, ...order });
  state.map?.upsert(state.orders.get(order.id));
  return true;
}

/** The countdown text of an order: time left, overdue by, or stopped once handled. */
function countdown(order, now = Date.now()) {
  const left = secondsLeft(order, now);
  if (!isOpen(order)) return { text: t("left.stopped"), tone: "stopped" };
  if (left === null) return { text: "—", tone: "" };
  if (left < 0) return { text: `${t("left.overdue")} ${fmtSpan(left)}`, tone: "overdue" };
  return { text: `${t("left.left")} ${fmtSpan(left)}`, tone: left < 3600 ? "soon" : "" };
}

function rowFor(order, { flash = false } = {}) {
  const stale = !matches(order, state.filters);
  const place = [order.community, order.street, order.district].find(Boolean);
  const left = countdown(order);
  return h("tr", {
    class: ["order-row", flash && "flash", stale && "stale", order.id === state.selected && "selected",
      isOverdue(order) && "is-overdue"].filter(Boolean).join(" "),
    "data-testid": "order-row", "data-id": order.id, "data-state": order.state,
    "data-priority": order.priority, "data-number": order.number || "",
    onclick: () => select(order.id),
  },
    h("td", { class: "c-prio" }, h("span", { class: `prio p${order.priority}`, title: t(`p${order.priority}`) }, `P${order.priority}`)),
    h("td", { class: "c-kind" },
      h("div", { class: "kind" }, kindIcon(order.kind, { size: 15 }),
        h("span", { "data-testid": "order-kind" }, kindLabel(order.kind)),
        order.reported_via && order.reported_via !== "machine" ? kindIcon("hotline", { size: 12, title: t(`via.${order.reported_via}`) }) : null),
      h("div", { class: "muted small mono", "data-testid": "order-number", title: order.id }, order.number || order.id)),
    h("td", { class: "c-state", "data-testid": "order-state" }, stateBadge(order.state)),
    h("td", { class: "c-place place", title: place ? placeName(place) : "" }, place ? placeName(place) : "—"),
    h("td", { class: `c-due small countdown ${left.tone}`, "data-testid": "order-countdown", "data-id": order.id,
      title: `${t("col.due")} ${fmtTime(order.due_at)}` }, left.text));  // prettier-ignore
}

function renderRows(flashIds = new Set()) {
  const list = $("order-rows");
  const now = new Date();
  state.order.sort((a, b) => byUrgency(state.orders.get(a), state.orders.get(b), now));
  state.overdueIds = new Set(state.order.filter((id) => isOverdue(state.orders.get(id), now)));
  const rows = state.order.map((id) => rowFor(state.orders.get(id), { flash: flashIds.has(id) }));
  clear(list, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, t("list.empty"))));
  $("list-count").textContent = String(state.order.filter((id) => matches(state.orders.get(id), state.filters)).length);
  $("list-more").hidden = !state.cursor;
}

/** Every second: the countdowns tick; an order that just fell overdue moves up. */
function tickCountdowns() {
  const now = Date.now();
  let moved = false;
  for (const cell of document.querySelectorAll("td.countdown")) {
    const order = state.orders.get(cell.dataset.id);
    if (!order) continue;
    const left = countdown(order, now);
    cell.textContent = left.text;
    cell.className = `c-due small countdown ${left.tone}`;
    if (isOverdue(order, new Date(now)) !== state.overdueIds.has(order.id)) moved = true;
  }
  if (moved) renderRows();
}

// ---- the live feed -------------------------------------------------------------------

function showFeedStatus(status) {
  const el = $("feed-status");
  el.dataset.state = status;
  el.textContent = t(`feed.${status}`);
}

let summaryTimer = null;

function onFeedEvent(event) {
  const wo = event.work_order;
  if (!wo) return;
  const incoming = { ...wo, seq: event.seq, updated_at: event.time };
  const known = state.orders.has(wo.id);
  const opening = event.event === "reported" || event.event === "filed";
  if (!known && opening && wo.priority === 1 && isOpen(incoming) && !state.announced.has(wo.id)) {
    state.announced.add(wo.id);
    announceP1(incoming, `${incoming.number || wo.id} · ${kindLabel(incoming.kind)}`, () => {
      showTab("orders");
      select(wo.id);
    });
  }
  if (!known && !matches(incoming, state.filters)) return;
  if (!upsert(incoming)) return;
  if (!known) state.order.unshift(wo.id);
  renderRows(known ? new Set() : new Set([wo.id]));
  if (!known) {
    const row = document.querySelector(`tr[data-id="${CSS.escape(wo.id)}"]`);
    row?.scrollIntoView({ block: "nearest" });
  }
  if (wo.id === state.selected && (state.detail?.seq ?? -1) < event.seq) refreshDetail();
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(refreshSummary, 300);
}

// ---- detail --------------------------------------------------------------------------

async function select(id) {
  state.selected = id;
  for (const row of document.querySelectorAll("tr.order-row")) row.classList.toggle("selected", row.dataset.id === id);
  const panel = $("detail");
  panel.classList.add("loading");
  try {
    showDetail(await api(`/api/v1/work-orders/${encodeURIComponent(id)}`));
    const order = state.orders.get(id);
    if (order) state.map?.focus(order);
  } catch (err) {
    clear(panel, h("p", { class: "error pad", "data-testid": "detail-error" }, err.message));
  } finally {
    panel.classList.remove("loading");
  }
}

function showDetail(detail) {
  state.stopDetail();
  state.detail = detail;
  state.stopDetail = renderDetail($("detail"), detail, {
    site: state.site,
    placeName,
    onChanged: (updated) => {
      if (upsert(updated)) renderRows();
      showDetail(updated);
    },
    onClose: closeDetail,
    onDevice: showDevice,
  });
}

/** The devices tab with one device's row picked out (the detail's device link). */
function showDevice(id) {
  state.focusDevice = id;
  showTab("devices");
}

function highlightDevice() {
  const id = state.focusDevice;
  if (!id) return;
  const row = document.querySelector(`#devices-slot tr[data-device="${CSS.escape(id)}"]`);
  if (!row) return;
  for (const other of document.querySelectorAll("#devices-slot tr.highlight")) other.classList.remove("highlight");
  row.classList.add("highlight");
  row.scrollIntoView({ block: "center" });
}

// ---- orders opened by hand (12345 hotline, citizens) -------------------------------------

function openHotline() {
  state.stopDetail();
  state.selected = null;
  state.detail = null;
  const panel = $("detail");
  clear(panel, hotlineForm({
    site: state.site, map: state.map, onCancel: closeDetail,
    onDone: async (result) => {
      const order = result.work_order;
      if (upsert(order) && !state.order.includes(order.id)) state.order.push(order.id);
      renderRows(new Set([order.id]));
      await select(order.id);
      const note = fill(result.joined ? "hotline.joined" : "hotline.created", { number: order.number || order.id });
      $("detail").prepend(h("div", { class: `notice ${result.joined ? "warn" : ""}`, "data-testid": "hotline-result",
        "data-joined": String(result.joined) }, note));  // prettier-ignore
    },
  }));
}

// ---- the P1 alarm and exports ----------------------------------------------------------

function showAlertsToggle() {
  const on = alertsOn();
  const button = $("alerts-toggle");
  button.textContent = t(on ? "alerts.on" : "alerts.off");
  button.setAttribute("aria-pressed", String(on));
  button.classList.toggle("on", on);
}

async function toggleAlerts() {
  const permission = await setAlerts(!alertsOn());
  showAlertsToggle();
  if (permission === "denied") $("alerts-toggle").title = t("alerts.denied");
}

async function exportOrders() {
  const q = new URLSearchParams(listQuery(state.filters, null));
  q.delete("limit");
  try {
    await download(`/api/v1/work-orders.csv?${q}`, "work-orders.csv");
  } catch (err) {
    $("list-error").textContent = `${t("csv.failed")}: ${err.message}`;
  }
}

function closeDetail() {
  state.stopDetail();
  state.selected = null;
  state.detail = null;
  clear($("detail"), h("p", { class: "muted pad", "data-i18n": "detail.none" }, t("detail.none")));
  for (const row of document.querySelectorAll("tr.order-row.selected")) row.classList.remove("selected");
}

/** A feed event touched the open order: reload it, unless the user is filling a form
 * (then say so; their submit carries expected_seq and is refused if it is stale). */
async function refreshDetail() {
  const panel = $("detail");
  if (panel.querySelector(".action-form")) {
    panel.querySelector(".action-form .error").textContent = t("detail.changed");
    return;
  }
  const id = state.selected;
  try {
    const detail = await api(`/api/v1/work-orders/${encodeURIComponent(id)}`);
    if (state.selected === id && !panel.querySelector(".action-form")) showDetail(detail);
  } catch (err) {
    console.warn("detail refresh failed", err);
  }
}

// ---- tabs ----------------------------------------------------------------------------

function showTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.classList.toggle("active", button.dataset.tab === tab);
  }
  $("view-orders").hidden = tab !== "orders";
  $("view-devices").hidden = tab !== "devices";
  $("view-kpis").hidden = tab !== "kpis";
  if (tab === "orders") state.map?.resize();
  refreshTab();
}

function refreshTab() {
  if (!state.user) return;
  if (state.tab === "devices") {
    loadDevices($("devices-slot"), placeName).then((devices) => {
      state.map?.setDevices(devices);
      highlightDevice();
    });
  } else if (state.tab === "kpis") {
    loadKpis($("kpis-slot"), kpiRange(), kpiRowLabel);
  }
}

function kpiRange() {
  return { since: $("kpis-since").value || null, until: $("kpis-until").value || null, by: $("kpis-by").value };
}

function kpiRowLabel(row, by) {
  return by === "kind" ? kindLabel(row.key) : row.label || row.key;
}

// ---- wiring --------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("login-token").value.trim();
    if (value) signIn(value);
  });
  $("filters").addEventListener("submit", (ev) => ev.preventDefault()); // filters apply on change
  $("logout").addEventListener("click", signOut);
  $("lang-toggle").addEventListener("click", toggleLang);
  for (const id of ["filter-state", "filter-kind", "filter-department", "filter-district", "filter-overdue", "filter-escalated"]) {
    $(id).addEventListener("change", () => {
      const f = readFilters();
      state.tile = f.overdue ? "overdue" : f.escalated ? "escalated" : !f.state && !f.kind && !f.department && !f.district ? "open" : null;
      refreshSummary();
      reloadOrders();
    });
  }
  $("alerts-toggle").addEventListener("click", toggleAlerts);
  $("export-orders").addEventListener("click", exportOrders);
  $("new-order").addEventListener("click", openHotline);
  $("kpis-range").addEventListener("submit", (ev) => {
    ev.preventDefault();
    refreshTab();
  });
  $("kpis-export").addEventListener("click", () => exportKpis(kpiRange()).catch((err) => {
    $("kpis-error").textContent = `${t("csv.failed")}: ${err.message}`;
  }));
  $("list-more").addEventListener("click", loadPage);
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("kpis-by").addEventListener("change", refreshTab);
  onLangChange(() => {
    if (!state.user) return;
    $("user-role").textContent = roleLabel(state.user.role);
    showAlertsToggle();
    fillFilterOptions();
    renderRows();
    state.map?.refreshLegend();
    state.map?.redraw();
    showFeedStatus($("feed-status").dataset.state || "connecting");
    if (state.detail) showDetail(state.detail);
    refreshSummary();
    refreshTab();
  });
}

function boot() {
  document.documentElement.lang = localStorage.getItem("citywatch.lang") === "en" ? "en" : "zh-CN";
  applyStatic();
  wire();
  if (!window.L || !window.uPlot) $("vendor-error").hidden = false;
  const saved = token();
  if (saved) signIn(saved);
  else showLogin();
}

boot();
