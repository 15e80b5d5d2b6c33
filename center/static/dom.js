// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML), so
// names and notes from the API cannot inject markup.

/** h("div", {class: "x", "data-testid": "y", onclick: fn}, child, "text", [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let siteZone = undefined;

/** Show times in the site's zone (the center may be viewed from elsewhere). */
export function setSiteZone(zone) {
  siteZone = zone;
}

export function siteZoneName() {
  return siteZone;
}

export function fmtTime(iso, { date = true } = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZone: siteZone };
  if (date) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat("zh-CN", opts).format(d);
}

/** A duration's two largest units: 3725 → [[1, "h"], [2, "m"]]; 59 → [[59, "s"]]; 90000 →
 * [[1, "d"], [1, "h"]] (always positive: the caller says overdue or left). i18n's fmtSpan
 * names the units in the reader's language. */
export function durationParts(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const units = [[Math.floor(s / 86400), "d"], [Math.floor((s % 86400) / 3600), "h"],
    [Math.floor((s % 3600) / 60), "m"], [s % 60, "s"]];  // prettier-ignore
  const first = units.findIndex(([n]) => n > 0);
  if (first === -1 || first === 3) return [units[3]];
  return units.slice(first, first + 2);
}

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}
