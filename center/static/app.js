// The console's entry point: sign-in, the work-order list kept current by the live feed,
// filters, the map, the detail panel, and the devices and KPI tabs.

import { api, forgetBlobs, setToken, token } from "./api.js";
import { renderDetail, stateBadge } from "./detail.js";
import { clear, fmtTime, h, setSiteZone } from "./dom.js";
import { openFeed } from "./feed.js";
import { KINDS, STATES, applyStatic, onLangChange, t, toggleLang } from "./i18n.js";
import { isOverdue, listQuery, matches } from "./orders.js";
import { loadDevices, loadKpis, loadSummary } from "./panels.js";

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
  $("user-role").textContent = state.user.role;
  $("user-role").dataset.role = state.user.role;
  try {
    state.site = await api("/api/v1/site");
  } catch (err) {
    console.warn("site not available", err);
    state.site = { departments: [], districts: [], boundary: null, tiles: null };
  }
  setSiteZone(state.site.timezone);
  $("site-name").textContent = state.site.name || "";
  indexPlaces(state.site.districts || []);
  fillFilterOptions();
  startMap();
  state.feed?.close();
  state.feed = openFeed({ onEvent: onFeedEvent, onStatus: showFeedStatus, onResync: reloadOrders });
  await reloadOrders();
  loadSummary($("kpi-strip"));
  state.timers.push(setInterval(() => loadSummary($("kpi-strip")), 30_000));
  state.timers.push(setInterval(refreshTab, 15_000));
  state.timers.push(setInterval(() => renderRows(), 30_000)); // overdue marks move with time
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
  clear(kindSel, option("", t("filter.any")), kinds.map((k) => option(k, t(k))));
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

function rowFor(order, { flash = false } = {}) {
  const overdue = isOverdue(order);
  const stale = !matches(order, state.filters);
  const place = [order.community, order.street, order.district].find(Boolean);
  return h("tr", {
    class: ["order-row", flash && "flash", stale && "stale", order.id === state.selected && "selected"].filter(Boolean).join(" "),
    "data-testid": "order-row", "data-id": order.id, "data-state": order.state,
    onclick: () => select(order.id),
  },
    h("td", {}, h("span", { class: `prio p${order.priority}`, title: t(`p${order.priority}`) }, order.priority)),
    h("td", {}, h("div", { class: "kind" }, order.category_name || t(order.kind)),
      h("div", { class: "muted small mono" }, order.id)),
    h("td", { "data-testid": "order-state" }, stateBadge(order.state)),
    h("td", { class: "place" }, place ? placeName(place) : "—"),
    h("td", { class: "small" }, fmtTime(order.opened_at)),
    h("td", { class: `small ${overdue ? "overdue" : ""}` }, fmtTime(order.due_at)));  // prettier-ignore
}

function renderRows(flashIds = new Set()) {
  const list = $("order-rows");
  const rows = state.order.map((id) => rowFor(state.orders.get(id), { flash: flashIds.has(id) }));
  clear(list, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, t("list.empty"))));
  $("list-count").textContent = String(state.order.filter((id) => matches(state.orders.get(id), state.filters)).length);
  $("list-more").hidden = !state.cursor;
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
  summaryTimer = setTimeout(() => loadSummary($("kpi-strip")), 300);
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
  });
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
    loadDevices($("devices-slot"), placeName).then((devices) => state.map?.setDevices(devices));
  } else if (state.tab === "kpis") {
    loadKpis($("kpis-slot"), $("kpis-by").value);
  }
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
  for (const id of ["filter-state", "filter-kind", "filter-department", "filter-district", "filter-overdue"]) {
    $(id).addEventListener("change", reloadOrders);
  }
  $("list-more").addEventListener("click", loadPage);
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("kpis-by").addEventListener("change", refreshTab);
  onLangChange(() => {
    if (!state.user) return;
    fillFilterOptions();
    renderRows();
    showFeedStatus($("feed-status").dataset.state || "connecting");
    if (state.detail) showDetail(state.detail);
    loadSummary($("kpi-strip"));
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
