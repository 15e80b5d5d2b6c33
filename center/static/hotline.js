// The form for a work order a person reports: a 12345 hotline call or a citizen's report,
// with an optional photo. The API decides whether it opens a new order or joins an open
// one of the same kind at that spot; the form says which.

import { api, uploadPhoto } from "./api.js";
import { h } from "./dom.js";
import { kindLabel, t } from "./i18n.js";

/** Options for every grid cell: a district, or a community with its street and district. */
function placeOptions(site) {
  const options = [];
  for (const d of site?.districts || []) {
    options.push(h("option", { value: JSON.stringify({ district: d.id }) }, d.name));
    for (const s of d.streets || []) {
      for (const c of s.communities || []) {
        options.push(h("option", { value: JSON.stringify({ district: d.id, street: s.id, community: c.id }) },
          `${d.name} / ${s.name} / ${c.name}`));  // prettier-ignore
      }
    }
  }
  return options;
}

/**
 * The form, ready to put in the detail panel. ctx: {site, map (a SiteMap or null),
 * onDone(result) with the API's {joined, work_order}, onCancel()}.
 */
export function hotlineForm(ctx) {
  const field = (name, key, input) => h("label", {}, t(key), input);
  const via = h("select", { name: "reported_via", "data-testid": "hotline-via" },
    ["hotline", "citizen"].map((v) => h("option", { value: v }, t(`via.${v}`))));  // prettier-ignore
  const kinds = (ctx.site?.categories || []).map((c) => c.kind);
  const kind = h("select", { name: "kind", "data-testid": "hotline-kind" },
    kinds.map((k) => h("option", { value: k }, kindLabel(k))));  // prettier-ignore
  const description = h("textarea", { name: "description", rows: 3, required: true, maxlength: 2000,
    "data-testid": "hotline-description" });  // prettier-ignore
  const contact = h("input", { name: "contact", type: "text", maxlength: 200, "data-testid": "hotline-contact" });
  const place = h("select", { name: "place", "data-testid": "hotline-place" }, placeOptions(ctx.site));
  const lat = h("input", { name: "lat", type: "number", step: "any", min: -90, max: 90, "data-testid": "hotline-lat" });
  const lon = h("input", { name: "lon", type: "number", step: "any", min: -180, max: 180, "data-testid": "hotline-lon" });
  const pickHint = h("span", { class: "muted small" });
  const pick = h("button", { type: "button", "data-testid": "hotline-pick", onclick: () => {
    if (!ctx.map) return;
    pickHint.textContent = t("map.picking");
    ctx.map.pick((latlng) => {
      lat.value = latlng.lat.toFixed(6);
      lon.value = latlng.lng.toFixed(6);
      pickHint.textContent = "";
    });
  } }, t("map.pick"));  // prettier-ignore
  const priority = h("select", { name: "priority", "data-testid": "hotline-priority" },
    h("option", { value: "" }, t("hotline.priority_auto")),
    [1, 2, 3, 4].map((p) => h("option", { value: String(p) }, t(`p${p}`))));  // prettier-ignore
  const photo = h("input", { type: "file", accept: "image/jpeg,image/png", "data-testid": "hotline-photo" });
  const error = h("div", { class: "error", role: "alert", "data-testid": "hotline-error" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "hotline-submit" }, t("submit"));
  const form = h("form", { class: "action-form hotline-form", "data-testid": "hotline-form" },
    h("div", { class: "form-title" }, t("hotline.title")),
    h("div", { class: "form-row" }, field("via", "hotline.via", via), field("kind", "hotline.kind", kind),
      field("priority", "hotline.priority", priority)),
    field("description", "hotline.description", description),
    field("contact", "hotline.contact", contact),
    field("place", "hotline.place", place),
    h("div", { class: "form-row" }, field("lat", "hotline.lat", lat), field("lon", "hotline.lon", lon),
      h("div", { class: "pick" }, pick, pickHint)),
    field("photo", "hotline.photo", photo),
    error,
    h("div", { class: "form-buttons" }, submit,
      h("button", { type: "button", onclick: ctx.onCancel }, t("cancel"))));  // prettier-ignore
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    const body = {
      kind: kind.value, reported_via: via.value, description: description.value.trim(),
      ...JSON.parse(place.value || "{}"),
    };
    if (contact.value.trim()) body.contact = contact.value.trim();
    if (lat.value !== "" && lon.value !== "") Object.assign(body, { lat: Number(lat.value), lon: Number(lon.value) });
    if (priority.value) body.priority = Number(priority.value);
    try {
      const result = await api("/api/v1/work-orders", { method: "POST", json: body });
      if (photo.files[0]) await uploadPhoto(result.work_order.id, photo.files[0]);
      ctx.onDone(result);
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
    }
  });
  setTimeout(() => description.focus(), 0);
  return form;
}
