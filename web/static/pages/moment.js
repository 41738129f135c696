// Moment view: the player starts at the moment (the API serves byte ranges, so seeking
// works), the strip of matching frames, the camera on a plan of camera positions, the
// camera's recording around the moment on a timeline (its gaps hatched, the search's
// hits on it), previous/next, and "add to case" with a note.
// The clip names the audited search and the moment's frame; the server copies the rest.

import { h, field, clear } from "../dom.js";
import { t, formatNumber, formatTime } from "../i18n.js";
import { api } from "../api.js";
import * as store from "../store.js";
import { errorLine, statusLine, pageHead, timeEl, cameraZone, busy } from "../ui.js";
import { loadGaps, gapBands, hatch } from "../gaps.js";

const SVG_W = 320;
const SVG_H = 200;
const PAD = 24;
const WINDOW_MS = 30 * 60 * 1000;

function momentFromSearch(frameId, searchId, index) {
  const last = store.get("lastSearch");
  if (!last || String(last.search_id) !== searchId) return null;
  const moment = last.moments[index];
  return moment && moment.best_frame_id === frameId ? { last, moment } : null;
}

function momentLink(last, index) {
  const moment = last.moments[index];
  return `#/moment/${moment.best_frame_id}?search=${last.search_id}&i=${index}`;
}

/** A static SVG plan: every camera with coordinates, this one highlighted. */
function cameraPlan(cameraId) {
  const cameras = (store.get("cameras") || []).filter((c) =>
    Number.isFinite(c.latitude) && Number.isFinite(c.longitude));
  if (!cameras.length) return h("p", { class: "muted" }, t("moment.no_plan"));
  const lats = cameras.map((c) => c.latitude);
  const lons = cameras.map((c) => c.longitude);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats),
    Math.min(...lons), Math.max(...lons)];
  const x = (lon) => PAD + ((lon - minLon) / ((maxLon - minLon) || 1)) * (SVG_W - 2 * PAD);
  const y = (lat) => SVG_H - PAD - ((lat - minLat) / ((maxLat - minLat) || 1)) * (SVG_H - 2 * PAD);
  const svg = h("svg:svg", { viewBox: `0 0 ${SVG_W} ${SVG_H}`, class: "plan", role: "img",
    "aria-labelledby": "plan-title" }, h("svg:title", { id: "plan-title" },
    t("moment.plan_label", { camera: cameraId })),
  h("svg:rect", { x: 1, y: 1, width: SVG_W - 2, height: SVG_H - 2, class: "plan-bg" }),
  cameras.map((c) => {
    const here = c.id === cameraId;
    return h("svg:g", { class: ["plan-cam", here && "here"] },
      h("svg:circle", { cx: x(c.longitude), cy: y(c.latitude), r: here ? 8 : 5 }),
      h("svg:text", { x: x(c.longitude) + 10, y: y(c.latitude) + 4 }, c.id),
      h("svg:title", {}, `${c.id} · ${c.name}`));
  }));
  return svg;
}

/** The span the recording timeline covers: half an hour either side of the frame,
 * widened to this camera's hits when the moment came from a search. */
function timelineWindow(frame, found) {
  const at = Date.parse(frame.captured_at_utc);
  const hits = found ? found.last.moments.filter((m) => m.camera_id === frame.camera_id)
    .map((m) => Date.parse(m.start_utc)) : [];
  return [Math.min(at - WINDOW_MS, ...hits), Math.max(at + WINDOW_MS, ...hits)];
}

/**
 * This camera's recording on one time axis: its gaps as hatched bands (focusable, read
 * out on hover and focus), the search's hits on it (the shown one highlighted) and the
 * frame's own time.
 */
function cameraTimeline({ frame, found, moment, gaps, lo, hi, zone }) {
  const hits = found ? found.last.moments.map((m, i) => ({ m, i }))
    .filter(({ m }) => m.camera_id === frame.camera_id) : [];
  const x = (ms) => PAD + ((ms - lo) / ((hi - lo) || 1)) * (SVG_W - 2 * PAD);
  const detail = h("p", { class: "hint", id: "gap-detail", role: "status",
    "aria-live": "polite" }, gaps === null ? t("gap.unknown")
    : gaps.length ? t("gap.in_window", { n: gaps.length }) : t("gap.none_window"));
  const at = x(Date.parse(frame.captured_at_utc));
  const { defs, fill } = hatch();
  const svg = h("svg:svg", { viewBox: `0 0 ${SVG_W} 64`, class: "timeline", role: "group",
    "aria-labelledby": "timeline-title" },
  h("svg:title", { id: "timeline-title" }, t("moment.recording_label", {
    from: formatTime(new Date(lo), zone), to: formatTime(new Date(hi), zone),
    n: hits.length, gaps: gaps ? gaps.length : 0 })),
  defs,
  h("svg:line", { x1: PAD, y1: 26, x2: SVG_W - PAD, y2: 26, class: "axis" }),
  gapBands(gaps || [], { x, lo, hi, y: 10, height: 32, timeZone: zone, fill,
    onShow: (text) => { detail.textContent = text; } }),
  h("svg:line", { x1: at, y1: 6, x2: at, y2: 46, stroke: "#1a5fb4", "stroke-width": 2,
    class: "now" }),
  hits.map(({ m, i }) => h("svg:a", { href: momentLink(found.last, i) },
    h("svg:rect", { x: x(Date.parse(m.start_utc)) - 3, y: 14, width: 6, height: 24,
      class: ["hit", m === moment && "here"] }),
    h("svg:title", {}, t("result.score", { score: formatNumber(m.score, 3) })))),
  h("svg:text", { x: PAD, y: 60, "font-size": 10, fill: "currentColor" },
    formatTime(new Date(lo), zone)),
  h("svg:text", { x: SVG_W - PAD, y: 60, "font-size": 10, "text-anchor": "end",
    fill: "currentColor" }, formatTime(new Date(hi), zone)));
  return [svg, detail];
}

async function caseOptions() {
  if (!store.may("manage_cases")) return [];
  try { return await api.get("/api/cases"); } catch (error) { return []; }
}

export async function render({ params, query }) {
  const frameId = Number(params.frame);
  const error = errorLine();
  let frame;
  try {
    frame = await api.get(`/api/frames/${frameId}`);
  } catch (problem) {
    error.show(problem);
    return h("div", {}, pageHead("moment.title"), error);
  }
  const found = momentFromSearch(frameId, query.get("search") || "", Number(query.get("i")));
  const moment = found ? found.moment : null;
  const zone = cameraZone(frame.camera_id);
  const camera = (store.get("cameras") || []).find((c) => c.id === frame.camera_id);

  const video = h("video", { id: "player", controls: true, preload: "metadata",
    src: frame.video_url, "aria-label": t("moment.player") });
  const startAt = () => { video.currentTime = frame.offset_in_segment_s; };
  video.addEventListener("loadedmetadata", startAt, { once: true });
  video.addEventListener("error", () => error.show({ code: "video", message: t("error.video") }));
  const playButton = h("button", { type: "button", class: "primary", id: "play-moment",
    onclick: () => { startAt(); video.play().catch(() => {}); } }, t("moment.play"));

  const strip = moment ? h("ol", { class: "strip", "aria-label": t("moment.strip") },
    moment.frame_ids.map((id) => h("li", {}, h("button", { type: "button", class: "strip-frame",
      "aria-label": t("moment.frame", { id }),
      onclick: async () => {
        try {
          const other = await api.get(`/api/frames/${id}`);
          if (other.video_url !== video.getAttribute("src")) video.src = other.video_url;
          video.currentTime = other.offset_in_segment_s;
        } catch (problem) { error.show(problem); }
      } }, h("img", { src: `/api/frames/${id}/thumbnail`, alt: "", width: 128, height: 72,
      loading: "lazy" }))))) : null;

  const nav = found ? h("nav", { class: "prevnext", "aria-label": t("moment.prevnext") },
    Number(query.get("i")) > 0
      ? h("a", { href: momentLink(found.last, Number(query.get("i")) - 1), rel: "prev" },
        t("moment.prev")) : h("span", {}),
    Number(query.get("i")) < found.last.moments.length - 1
      ? h("a", { href: momentLink(found.last, Number(query.get("i")) + 1), rel: "next" },
        t("moment.next")) : h("span", {})) : null;

  const facts = h("dl", { class: "facts" },
    h("dt", {}, t("moment.camera")), h("dd", {}, camera ? `${camera.id} · ${camera.name}` : frame.camera_id),
    h("dt", {}, t("moment.time")), h("dd", {}, timeEl(frame.captured_at_utc, zone, { seconds: true })),
    moment ? [h("dt", {}, t("moment.score")), h("dd", {}, formatNumber(moment.score, 3))] : null,
    h("dt", {}, t("moment.phase")), h("dd", {}, frame.day_phase ? t(`phase.${frame.day_phase}`) : "—"));

  const [lo, hi] = timelineWindow(frame, found);
  const gaps = await loadGaps(frame.camera_id, lo, hi);
  const side = [h("h2", {}, t("moment.plan")), cameraPlan(frame.camera_id),
    h("h2", {}, t("moment.recording")),
    cameraTimeline({ frame, found, moment, gaps, lo, hi, zone })];
  const addBox = await addToCase(frame, moment, found);
  return h("div", { class: "moment-page" }, pageHead("moment.title"), error,
    h("div", { class: "moment-layout" },
      h("section", { class: "moment-main" }, video, h("div", { class: "row" }, playButton, nav),
        facts, strip),
      h("aside", { class: "moment-side" }, side, addBox)));
}

async function addToCase(frame, moment, found) {
  if (!store.may("manage_cases")) return null;
  const cases = await caseOptions();
  const error = errorLine();
  const status = statusLine();
  if (!cases.length) {
    return h("section", { class: "card" }, h("h2", {}, t("moment.add")),
      h("p", {}, t("moment.no_cases")), h("a", { href: "#/cases" }, t("moment.go_cases")));
  }
  const select = h("select", { id: "case-select" }, cases.map((c) =>
    h("option", { value: c.id }, `${c.number} · ${c.title}`)));
  const note = h("textarea", { id: "clip-note", rows: 3 });
  const before = h("input", { type: "number", min: 0, max: 600, value: 2, id: "pad-before" });
  const after = h("input", { type: "number", min: 0, max: 600, value: 2, id: "pad-after" });
  const button = h("button", { type: "submit", class: "primary" }, t("moment.add_button"));
  const form = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(button, error, async () => {
      const start = Date.parse(moment ? moment.start_utc : frame.captured_at_utc);
      const end = Date.parse(moment ? moment.end_utc : frame.captured_at_utc);
      // never before the recording began (the frame's offset into its original)
      const recordingStart = Date.parse(frame.captured_at_utc) - frame.offset_s * 1000;
      const body = { camera_id: frame.camera_id,
        start_utc: new Date(Math.max(recordingStart, start - Number(before.value) * 1000))
          .toISOString(),
        end_utc: new Date(end + Number(after.value) * 1000).toISOString(), note: note.value };
      if (found) { body.search_id = found.last.search_id; body.frame_id = moment.best_frame_id; }
      const clip = await api.post(`/api/cases/${select.value}/clips`, body);
      clear(status, t("moment.added", { id: clip.id }), " ",
        h("a", { href: `#/cases/${select.value}` }, t("moment.open_case")));
    });
  } }, h("h2", {}, t("moment.add")), found ? null : h("p", { class: "hint" }, t("moment.manual")),
  field(t("moment.case"), select), field(t("moment.note"), note),
  h("div", { class: "pair" }, field(t("moment.before"), before), field(t("moment.after"), after)),
  button, status, error);
  return form;
}
