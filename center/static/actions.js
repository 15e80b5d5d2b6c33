// The action buttons of a work order and the small form each action's arguments need.
// Only the actions the API lists in `allowed_actions` are offered; the API still decides
// (409 when the order moved on, shown to the user as the API words it).

import { api, uploadPhoto } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const LEVELS = ["community", "street", "district"];

/** The form fields of one action; each returns [label, input] and a way to read it. */
function fieldsFor(action, departments, detail) {
  const text = (name, labelKey, { required = false, multiline = false, value = "" } = {}) => {
    const input = multiline
      ? h("textarea", { name, rows: 2, required, "data-testid": `field-${name}` })
      : h("input", { name, type: "text", required, value, "data-testid": `field-${name}` });
    return { name, node: h("label", {}, t(labelKey), input), read: () => input.value.trim() || undefined };
  };
  switch (action) {
    case "dispatch": {
      // The routed department is preselected; another one needs a reason (the API refuses
      // it without one), kept on the timeline and in the audit trail.
      const routed = detail.routed_department;
      const select = h("select", { name: "department", "data-testid": "field-department" },
        departments.map((d) => h("option", { value: d.id, "data-routed": d.id === routed ? "true" : null },
          d.id === routed ? `${d.name} ${t("field.routed_suffix")}` : d.name)));  // prettier-ignore
      if (routed && departments.some((d) => d.id === routed)) select.value = routed;
      const reason = text("reason", "field.reason");
      const input = reason.node.querySelector("input");
      const hint = h("div", { class: "hint warn small", "data-testid": "reason-hint" }, t("field.reason_required"));
      const sync = () => {
        const elsewhere = Boolean(routed) && select.value !== routed;
        input.required = elsewhere;
        hint.hidden = !elsewhere;
      };
      select.addEventListener("change", sync);
      sync();
      return [
        { name: "department", node: h("label", {}, t("field.department"), select), read: () => select.value },
        { ...reason, node: h("div", { class: "field-group" }, reason.node, hint) },
      ];
    }
    case "return":
      return [text("grounds", "field.grounds", { required: true, multiline: true })];
    case "extend":
      return [text("duration", "field.duration", { required: true, value: "2h" }), text("reason", "field.reason")];
    case "resolve": {
      const photo = h("input", { type: "file", accept: "image/jpeg,image/png", "data-testid": "field-photo" });
      return [
        text("note", "field.note", { required: true, multiline: true }),
        { name: "photo", node: h("label", {}, t("field.photo"), photo), read: () => photo.files[0], file: true },
      ];
    }
    case "verify": {
      const box = h("input", { type: "checkbox", name: "passed", checked: true, "data-testid": "field-passed" });
      return [
        { name: "passed", node: h("label", { class: "check" }, box, t("field.passed")), read: () => box.checked },
        text("note", "field.note", { multiline: true }),
      ];
    }
    case "mark_false_positive":
    case "reopen":
      return [text("reason", "field.reason", { required: true, multiline: true })];
    case "escalate": {
      const select = h("select", { name: "level", "data-testid": "field-level" },
        LEVELS.map((l) => h("option", { value: l }, t(l))));  // prettier-ignore
      return [
        { name: "level", node: h("label", {}, t("field.level"), select), read: () => select.value },
        text("reason", "field.reason"),
      ];
    }
    default: // file, sign, start, close: nothing but an optional reason
      return [text("reason", "field.reason")];
  }
}

/**
 * The actions section: a row of buttons; a click opens that action's form below them.
 * onDone(detail) receives the API's new detail after a successful action.
 */
export function actionsPanel(detail, departments, onDone) {
  const formSlot = h("div", { class: "action-form-slot" });
  const allowed = detail.allowed_actions || [];
  const buttons = allowed.map((action) =>
    h("button", {
      class: `action action-${action}`, "data-testid": `action-${action}`, type: "button",
      onclick: () => openForm(action),
    }, t(`action.${action}`)),  // prettier-ignore
  );

  function openForm(action) {
    for (const b of buttons) b.classList.toggle("active", b.dataset.testid === `action-${action}`);
    const fields = fieldsFor(action, departments, detail);
    const error = h("div", { class: "error", "data-testid": "action-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "action-submit" }, t("submit"));
    const cancel = h("button", { type: "button", onclick: () => { formSlot.replaceChildren(); for (const b of buttons) b.classList.remove("active"); } }, t("cancel"));  // prettier-ignore
    const form = h("form", { class: "action-form", "data-testid": `form-${action}`, "data-action": action },
      h("div", { class: "form-title" }, t(`action.${action}`)),
      fields.map((f) => f.node), error, h("div", { class: "form-buttons" }, submit, cancel));  // prettier-ignore
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const body = { expected_seq: detail.seq };
        for (const f of fields) {
          const value = f.read();
          if (value === undefined) continue;
          if (f.file) {
            const uploaded = await uploadPhoto(detail.id, value);
            body.photo_id = uploaded.id;
          } else {
            body[f.name] = value;
          }
        }
        const updated = await api(
          `/api/v1/work-orders/${encodeURIComponent(detail.id)}/actions/${action}`,
          { method: "POST", json: body },
        );
        onDone(updated);
      } catch (err) {
        error.textContent = err.message;
        submit.disabled = false;
      }
    });
    formSlot.replaceChildren(form);
    const first = form.querySelector("input[type=text], textarea, select");
    if (first) first.focus();
  }

  return h("section", { class: "actions", "data-testid": "detail-actions" },
    h("h3", {}, t("detail.actions")),
    buttons.length ? h("div", { class: "action-buttons" }, buttons) : h("p", { class: "muted" }, t("detail.no_actions")),
    formSlot);  // prettier-ignore
}
