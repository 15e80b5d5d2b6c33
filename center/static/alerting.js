// The opt-in alarm for a new P1 (特急) work order: a short tone made in the page (WebAudio,
// no sound file to fetch) and a desktop notification (Notification API), each only after
// the duty officer switched it on; an in-page toast shows either way while it is on.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const KEY = "citywatch.p1alerts";
let audio = null;

export function alertsOn() {
  return localStorage.getItem(KEY) === "on";
}

function audioContext() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return null;
  audio = audio || new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

/** Switch the alarm on or off; switching on (a click: browsers allow sound and ask for
 * notification permission only then) asks for permission. Returns the permission. */
export async function setAlerts(on) {
  localStorage.setItem(KEY, on ? "on" : "off");
  if (!on) return "off";
  audioContext();
  if (!("Notification" in window)) return "unsupported";
  if (Notification.permission === "default") {
    try {
      return await Notification.requestPermission();
    } catch {
      return Notification.permission;
    }
  }
  return Notification.permission;
}

/** Two short beeps (880 Hz, then 1175 Hz). */
function beep() {
  const ctx = audioContext();
  if (!ctx) return;
  [[880, 0], [1175, 0.22]].forEach(([hz, at]) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = hz;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(ctx.destination);
    osc.start(ctx.currentTime + at);
    osc.stop(ctx.currentTime + at + 0.18);
  });
}

/** Sound, notify and toast for a new P1 order, if the alarm is on. `label` names it,
 * `onOpen` selects it. Returns whether it alarmed. */
export function announceP1(order, label, onOpen) {
  if (!alertsOn()) return false;
  beep();
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const note = new Notification(t("alerts.title"), { body: label, tag: order.id, requireInteraction: true });
      note.onclick = () => { window.focus(); onOpen(); note.close(); };
    } catch (err) {
      console.warn("desktop notification failed", err);
    }
  }
  const toast = h("button", { type: "button", class: "toast", "data-testid": "p1-toast", "data-id": order.id,
    onclick: () => { onOpen(); toast.remove(); } }, h("strong", {}, t("alerts.toast")), ` ${label}`);  // prettier-ignore
  document.getElementById("toasts")?.append(toast);
  setTimeout(() => toast.remove(), 60_000);
  return true;
}
