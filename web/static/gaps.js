// Recording gaps (spans a camera should have recorded but did not) as the pages show
// them: a hatched band on an SVG time axis, focusable, its from/to and reason read out
// on hover and focus, and the count and total length of a day's gaps. Only presentation
// attributes are used in the SVG (the CSP allows no inline styles).

import { h } from "./dom.js";
import { t, has, formatTime, formatNumber } from "./i18n.js";
import { api, query } from "./api.js";

let hatches = 0; // each pattern gets its own id: a page may draw many strips

/** The camera's gaps overlapping [startMs, endMs], or null when they cannot be read. */
export async function loadGaps(cameraId, startMs, endMs) {
  try {
    return await api.get(`/api/cameras/${encodeURIComponent(cameraId)}/gaps${query({
      start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() })}`);
  } catch (error) {
    return null;
  }
}

/** "1 год 5 хв" / "42 с": a length in seconds, from the catalogs. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("gap.seconds", { n: s });
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  return hours ? t("gap.hours_minutes", { h: hours, m: minutes }) : t("gap.minutes", { m: minutes });
}

/**
 * A gap's reason from the catalogs by its code (gap_reason.<code>, its detail filled
 * in); a reason stored as free text before codes (reason_code null) as it is.
 */
export function reasonText(gap) {
  const key = `gap_reason.${gap.reason_code}`;
  if (gap.reason_code && has(key)) return t(key, { detail: gap.reason_detail });
  return gap.reason_detail || gap.reason;
}

/** One sentence for a gap: from, to (or "still"), length and reason. */
export function gapText(gap, timeZone) {
  const from = formatTime(gap.start_utc, timeZone, { seconds: true });
  const reason = reasonText(gap);
  if (!gap.end_utc) return t("gap.open", { from, reason });
  return t("gap.closed", { from, to: formatTime(gap.end_utc, timeZone, { seconds: true }),
    length: formatDuration(gap.seconds ?? 0), reason });
}

/**
 * The hatch the bands of one SVG fill with: its <defs> (a pattern with an id unique in
 * the page, so several strips never repeat an id) and the fill that names it.
 */
export function hatch() {
  hatches += 1;
  const id = `gap-hatch-${hatches}`;
  const defs = h("svg:defs", {}, h("svg:pattern", { id, width: 6, height: 6,
    patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
  h("svg:rect", { width: 6, height: 6, fill: "#fde2e1" }),
  h("svg:line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#b3261e", "stroke-width": 3 })));
  return { defs, fill: `url(#${id})` };
}

/**
 * Hatched bands for gaps on an axis x(ms) clipped to [lo, hi], filled with `fill` (from
 * hatch()); each is a focusable element whose accessible name is its sentence;
 * onShow(text) is called on hover/focus.
 */
export function gapBands(gaps, { x, lo, hi, y, height, timeZone, fill, onShow }) {
  const now = Date.now();
  return gaps.map((gap) => {
    const start = Math.max(lo, Date.parse(gap.start_utc));
    const end = Math.min(hi, gap.end_utc ? Date.parse(gap.end_utc) : Math.max(now, hi));
    const text = gapText(gap, timeZone);
    const left = x(start);
    const band = h("svg:rect", { x: left, y, width: Math.max(3, x(end) - left), height,
      fill, stroke: "#b3261e", "stroke-width": 1, tabindex: 0,
      role: "img", "aria-label": text, class: "gap",
      dataset: { start: gap.start_utc, end: gap.end_utc || "" } },
    h("svg:title", {}, text));
    const show = () => { band.setAttribute("stroke-width", 3); onShow(text); };
    const hide = () => { band.setAttribute("stroke-width", 1); };
    band.addEventListener("mouseenter", show);
    band.addEventListener("focus", show);
    band.addEventListener("mouseleave", hide);
    band.addEventListener("blur", hide);
    return band;
  });
}

/**
 * A camera status's message from the catalogs (recorder_message.<code>), its values
 * filled in: times in the camera's zone, a stopped stream's reason as a gap's is. A
 * message kept before codes (message_code empty) is shown as it is.
 */
export function stateMessageText(status, timeZone) {
  const key = `recorder_message.${status.message_code}`;
  if (!status.message_code || !has(key)) return status.message;
  const values = { ...status.message_args };
  for (const [name, value] of Object.entries(values)) {
    if (name.endsWith("_utc")) values[name] = formatTime(value, timeZone, { seconds: true });
  }
  if ("reason" in values) {
    values.reason = reasonText({ reason_code: values.reason_code,
      reason_detail: values.reason_detail, reason: values.reason });
  }
  return t(key, values);
}

/** Count and total length of a status's gaps of the last 24 h, as one line. */
export function daySummary(status) {
  const n = status.gaps_last_24h.length;
  if (!n) return t("gap.none_24h");
  return t("gap.summary_24h", { n: formatNumber(n),
    length: formatDuration(status.gap_seconds_last_24h) });
}
