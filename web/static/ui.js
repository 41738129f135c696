// Small shared pieces of the pages: shown times, error and status lines, page headings.

import { h, clear } from "./dom.js";
import { t, errorText, formatTime, formatUtc } from "./i18n.js";
import * as store from "./store.js";

/** A <time> in the camera's zone with the UTC time on hover (and for screen readers). */
export function timeEl(value, timeZone, options) {
  return h("time", { datetime: value, title: formatUtc(value) },
    formatTime(value, timeZone, options));
}

/** A role="alert" line; show(error) fills it with the catalog sentence and its details. */
export function errorLine() {
  const el = h("div", { class: "error", role: "alert" });
  el.show = (error) => {
    if (!error) return clear(el);
    // the catalog's sentence in the user's language, then the server's exact one
    const shown = errorText(error);
    const details = [error.message && error.message !== shown ? error.message : null,
      ...(error.details || [])].filter(Boolean).map((d) => h("li", {}, d));
    return clear(el, h("p", {}, shown), details.length ? h("ul", { class: "muted" }, details) : null);
  };
  return el;
}

export function statusLine() {
  return h("p", { class: "status", role: "status", "aria-live": "polite" });
}

export function pageHead(titleKey, ...extra) {
  document.title = `${t(titleKey)} · ${t("app.name")}`;
  return h("div", { class: "page-head" }, h("h1", { id: "page-title" }, t(titleKey)), extra);
}

/** The timezone of a camera, from the cameras the user may list (else the browser's). */
export function cameraZone(cameraId) {
  const cameras = store.get("cameras") || [];
  const camera = cameras.find((c) => c.id === cameraId);
  return camera ? camera.timezone : undefined;
}

export function shortHash(hex) {
  return hex ? `${hex.slice(0, 12)}…` : "";
}

/** Runs fn while the button is disabled; errors go to errorEl. */
export async function busy(button, errorEl, fn) {
  button.disabled = true;
  if (errorEl) errorEl.show(null);
  try {
    return await fn();
  } catch (error) {
    if (errorEl) errorEl.show(error);
    return undefined;
  } finally {
    button.disabled = false;
  }
}
