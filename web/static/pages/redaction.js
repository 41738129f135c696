// Redaction of one case clip: propose (the worker's detectors run on every frame; the
// page polls until the tracks are proposed), review the
// tracks, outlined over the preview frame (leave one visible with a reason, or mask it
// again), add a manual box drawn on
// the preview or typed in, preview a masked frame, approve, then export the case's
// redacted disclosure copy and download it.

import { h, field, clear } from "../dom.js";
import { t, formatBytes, formatNumber } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, statusLine, pageHead, timeEl, cameraZone, shortHash, busy } from "../ui.js";

const TARGETS = ["faces,plates", "faces", "plates"];

function seconds(clip) {
  return (new Date(clip.end_utc) - new Date(clip.start_utc)) / 1000;
}

function proposeForm(caseId, clipNumber, onProposed) {
  const targets = h("select", { id: "redact-targets" },
    TARGETS.map((value) => h("option", { value }, t(`redact.targets_${value.replace(",", "_")}`))));
  const style = h("select", { id: "redact-style" }, ["blur", "fill"].map((value) =>
    h("option", { value }, t(`redact.style_${value}`))));
  const mute = h("input", { id: "redact-mute", type: "checkbox" });
  const status = statusLine();
  const error = errorLine();
  const button = h("button", { type: "submit", class: "primary", id: "propose" },
    t("redact.propose"));
  return h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    status.textContent = t("redact.proposing");
    busy(button, error, async () => {
      const made = await api.post(`/api/cases/${caseId}/redactions`, { clip_number: clipNumber,
        targets: targets.value, style: style.value, mute_audio: mute.checked });
      onProposed(made);
    }).finally(() => { status.textContent = ""; });
  } }, h("h2", {}, t("redact.propose_title")), h("p", { class: "hint" }, t("redact.propose_hint")),
  field(t("redact.targets"), targets), field(t("redact.style"), style),
  h("div", { class: "row" }, mute, h("label", { for: mute.id }, t("redact.mute"))),
  button, status, error);
}

function tracksTable(redaction, onDecide) {
  if (!redaction.tracks.length) return h("p", { class: "muted" }, t("redact.no_tracks"));
  const approved = redaction.status === "approved";
  return h("div", { class: "table-wrap" }, h("table", { class: "tracks" },
    h("caption", {}, t("redact.tracks")),
    h("thead", {}, h("tr", {}, ["redact.track", "redact.kind", "redact.frames",
      "redact.detected", "redact.state", "redact.decision"].map((key) =>
      h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, redaction.tracks.map((track) => {
      const reason = h("input", { id: `reason-${track.id}`, class: "reason",
        "aria-label": t("redact.reason_for", { track: track.id }),
        placeholder: t("redact.reason") });
      const button = h("button", { type: "button", class: "small",
        onclick: () => onDecide(track, reason.value.trim(), button) },
      t(track.excluded ? "redact.include" : "redact.exclude"));
      return h("tr", { dataset: { track: track.id } }, h("td", { class: "mono" }, track.id),
        h("td", {}, t(`redact.kind_${track.kind === "face" ? "face" : "plate"}`)),
        h("td", {}, `${track.first_frame}–${track.last_frame}`),
        h("td", {}, formatNumber(track.detected_frames)),
        h("td", {}, h("span", { class: "badge" },
          t(track.excluded ? "redact.visible" : "redact.masked"))),
        h("td", {}, approved ? "—" : h("div", { class: "row" }, reason, button)));
    }))));
}

function decisionsList(redaction) {
  if (!redaction.decisions.length) return h("p", { class: "muted" }, t("redact.no_decisions"));
  return h("ol", { class: ["timeline-list", "decisions"] }, redaction.decisions.map((d) => h("li", {},
    h("span", { class: "badge" }, t(`redact.decision_${d.kind}`)), " ",
    d.track_id ? h("span", { class: "mono" }, d.track_id) : null,
    d.box ? h("span", { class: "mono" }, ` ${d.box.box[0]},${d.box.box[1]} `
      + `${d.box.box[2]}×${d.box.box[3]} · `, t("redact.box_frames",
      { from: d.box.start_frame, to: d.box.end_frame })) : null,
    " · ", d.actor, " · ", timeEl(d.decided_at, undefined, { seconds: true }),
    d.reason ? h("p", { class: "note" }, d.reason) : null)));
}

/** Frames a second, from the redaction's "25" or "30000/1001". */
function framesPerSecond(fps) {
  const [top, bottom] = String(fps).split("/").map(Number);
  return bottom ? top / bottom : top;
}

/** The tracks' boxes (and the manual boxes) at ``atS`` seconds, as outlines over the
 * preview: blue ones are masked, dashed orange ones stay visible. The frame is chosen as
 * the preview's (the server's ``int(at_s * fps)``); a track's label takes the reviewer
 * to its row. */
function drawOverlay(layer, redaction, atS) {
  const frame = Math.min(redaction.frame_count - 1,
    Math.floor(atS * framesPerSecond(redaction.fps)));
  const stroke = Math.max(2, redaction.width / 320);
  const font = Math.max(10, redaction.width / 40);
  const outline = (x, y, w, hh, variant, label, onclick) => [
    h("svg:rect", { class: ["track-box", variant], x, y, width: w, height: hh, fill: "none",
      "stroke-width": stroke }),
    // above the box, or just inside its top edge when there is no room above it
    h("svg:text", { class: ["track-label", variant], x: x + stroke,
      y: y > font + stroke ? y - stroke : y + font, "font-size": font, onclick,
      onpointerdown: (event) => event.stopPropagation() }, label)];
  const shapes = [];
  for (const track of redaction.tracks) {
    const row = track.boxes.find((b) => b[0] === frame);
    if (!row) continue;
    const [, x, y, w, hh] = row;
    const focusRow = () => {
      const reason = document.getElementById(`reason-${track.id}`);
      if (reason) { reason.scrollIntoView({ block: "center" }); reason.focus(); }
    };
    const outlineShapes = outline(x, y, w, hh, track.excluded ? "excluded" : "",
      track.id, focusRow);
    outlineShapes.forEach((shape) => { shape.dataset.track = track.id; });
    shapes.push(...outlineShapes);
  }
  for (const decision of redaction.decisions) {
    const manual = decision.box;  // {box: [x, y, w, h], start_frame, end_frame (inclusive)}
    if (decision.kind !== "manual_box" || !manual || frame < manual.start_frame
      || frame > manual.end_frame) continue;
    const [x, y, w, hh] = manual.box;
    shapes.push(...outline(x, y, w, hh, "manual", t("redact.decision_manual_box"), undefined));
  }
  clear(layer, shapes);
}

/** The preview frame as an SVG (so a box can be drawn on it) with the tracks outlined
 * over it, and the box form. */
function previewAndBox(caseId, redaction, duration, onDecided) {
  const base = `/api/cases/${caseId}/redactions/${redaction.id}/preview`;
  const at = h("input", { id: "preview-at", type: "number", min: 0, step: 0.1,
    max: Math.max(0, duration - 0.05).toFixed(2), value: 0 });
  const image = h("svg:image", { href: `${base}?at_s=0`, x: 0, y: 0, width: redaction.width,
    height: redaction.height });
  const drawn = h("svg:rect", { class: "drawn-box", fill: "none", stroke: "#ffcc00",
    "stroke-width": Math.max(2, redaction.width / 200), visibility: "hidden" });
  const overlay = h("svg:g", { id: "track-overlay" });
  const svg = h("svg:svg", { viewBox: `0 0 ${redaction.width} ${redaction.height}`,
    width: "100%", role: "img", id: "preview", "aria-label": t("redact.preview_alt") }, image,
  overlay, drawn);
  const showTracks = h("input", { id: "show-tracks", type: "checkbox", checked: true,
    onchange: () => overlay.setAttribute("visibility", showTracks.checked ? "visible" : "hidden") });
  const inputs = Object.fromEntries(["x", "y", "w", "h"].map((name) => [name,
    h("input", { id: `box-${name}`, type: "number", required: true, min: 0, step: 1 })]));
  const start = h("input", { id: "box-from", type: "number", required: true, min: 0, step: 0.1,
    value: 0 });
  const end = h("input", { id: "box-to", type: "number", required: true, min: 0, step: 0.1,
    value: duration.toFixed(1) });
  const reason = h("input", { id: "box-reason", required: true });
  const show = () => {
    const [x, y, w, hh] = ["x", "y", "w", "h"].map((name) => Number(inputs[name].value));
    const ok = [x, y, w, hh].every(Number.isFinite) && w > 0 && hh > 0;
    for (const [name, value] of [["x", x], ["y", y], ["width", w], ["height", hh]]) {
      drawn.setAttribute(name, ok ? value : 0);
    }
    drawn.setAttribute("visibility", ok ? "visible" : "hidden");
  };
  Object.values(inputs).forEach((input) => input.addEventListener("input", show));
  let anchor = null;
  const point = (event) => {
    const rect = svg.getBoundingClientRect();
    const clamp = (v, most) => Math.max(0, Math.min(most, Math.round(v)));
    return [clamp((event.clientX - rect.left) * redaction.width / rect.width, redaction.width),
      clamp((event.clientY - rect.top) * redaction.height / rect.height, redaction.height)];
  };
  const fill = (a, b) => {
    inputs.x.value = Math.min(a[0], b[0]);
    inputs.y.value = Math.min(a[1], b[1]);
    inputs.w.value = Math.abs(a[0] - b[0]);
    inputs.h.value = Math.abs(a[1] - b[1]);
    show();
  };
  svg.addEventListener("pointerdown", (event) => {
    if (redaction.status === "approved") return;
    anchor = point(event);
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => { if (anchor) fill(anchor, point(event)); });
  svg.addEventListener("pointerup", (event) => {
    if (anchor) fill(anchor, point(event));
    anchor = null;
  });
  const refreshPreview = () => {
    image.setAttribute("href", `${base}?at_s=${Number(at.value) || 0}&v=${redaction.decisions.length}`);
    drawOverlay(overlay, redaction, Number(at.value) || 0);
  };
  drawOverlay(overlay, redaction, 0);
  at.addEventListener("change", refreshPreview);
  const error = errorLine();
  const button = h("button", { type: "submit", id: "add-box" }, t("redact.add_box"));
  const form = redaction.status === "approved" ? null : h("form", { class: "card",
    onsubmit: (event) => {
      event.preventDefault();
      busy(button, error, async () => {
        const box = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, Number(v.value)]));
        onDecided(await api.post(`/api/cases/${caseId}/redactions/${redaction.id}/decisions`, {
          kind: "manual_box", reason: reason.value.trim(),
          box: { ...box, start_s: Number(start.value), end_s: Number(end.value) } }));
      });
    } }, h("h2", {}, t("redact.box_title")), h("p", { class: "hint" }, t("redact.box_hint")),
  h("div", { class: "filter-grid" }, ["x", "y", "w", "h"].map((name) =>
    field(t(`redact.box_${name}`), inputs[name])), field(t("redact.box_from"), start),
  field(t("redact.box_to"), end)), field(t("redact.reason"), reason), button, error);
  return h("section", { "aria-labelledby": "preview-h" },
    h("h2", { id: "preview-h" }, t("redact.preview")),
    h("div", { class: "row" }, field(t("redact.preview_at"), at),
      h("button", { type: "button", id: "refresh-preview", onclick: refreshPreview },
        t("redact.show_preview")),
      h("span", { class: "row" }, showTracks, h("label", { for: showTracks.id },
        t("redact.show_tracks")))),
    h("p", { class: "hint" }, t("redact.overlay_hint")), svg, form);
}

function disclosureCard(caseId) {
  const redact = h("select", { id: "disclose-redact" },
    TARGETS.map((value) => h("option", { value }, t(`redact.targets_${value.replace(",", "_")}`))));
  const result = h("div", { "aria-live": "polite" });
  const error = errorLine();
  const button = h("button", { type: "submit", class: "primary", id: "export-disclosure" },
    t("redact.export"));
  return h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(button, error, async () => {
      // an export job: the worker builds it, after a supervisor's approval if required
      let job = await api.post(`/api/cases/${caseId}/disclosures`, { redact: redact.value });
      while (job.status === "queued" || job.status === "running") {
        clear(result, h("p", { class: "muted", id: "disclosure-progress" },
          t("redact.exporting")));
        await new Promise((resolve) => { setTimeout(resolve, 1500); });
        job = await api.get(`/api/cases/${caseId}/exports/${job.id}`);
      }
      if (job.status === "awaiting_approval") {
        clear(result, h("p", { id: "disclosure-waiting" }, t("redact.export_waiting",
          { id: job.id })));
        return;
      }
      if (job.status !== "done") throw new Error(job.message || job.status);
      clear(result, h("p", {}, h("a", { class: "button", id: "download-disclosure",
        href: `/api/cases/${caseId}/exports/${job.id}/download`, download: "" },
      t("redact.download", { size: formatBytes(job.size_bytes) })), " ",
      h("code", { title: job.bundle_sha256 }, shortHash(job.bundle_sha256))));
    });
  } }, h("h2", {}, t("redact.disclosure")), h("p", { class: "hint" }, t("redact.disclosure_hint")),
  field(t("redact.targets"), redact), button, error, result);
}

export async function render({ params }) {
  const caseId = Number(params.id);
  const clipNumber = Number(params.clip);
  const error = errorLine();
  let detail;
  let redactions;
  try {
    detail = await api.get(`/api/cases/${caseId}`);
    redactions = await api.get(`/api/cases/${caseId}/redactions`);
  } catch (problem) {
    error.show(problem);
    return h("div", {}, pageHead("redact.title"), error);
  }
  const clip = detail.clips[clipNumber - 1];
  const back = h("p", {}, h("a", { href: `#/cases/${caseId}` }, t("redact.back",
    { number: detail.number })));
  if (!clip) {
    return h("div", {}, pageHead("redact.title"), back,
      h("p", { class: "error", role: "alert" }, t("redact.no_clip", { n: clipNumber })));
  }
  const zone = cameraZone(clip.camera_id);
  const head = pageHead("redact.title", h("p", { class: "lead" }, t("redact.clip_line", {
    n: clipNumber, camera: clip.camera_id }), " · ", timeEl(clip.start_utc, zone, { seconds: true }),
  " — ", timeEl(clip.end_utc, zone, { seconds: true })));
  const body = h("div", {});
  const aside = h("aside", {});
  const decideError = errorLine();
  const status = statusLine();

  function draw(redaction) {
    if (!redaction || redaction.status === "failed") {
      const why = redaction ? h("p", { role: "alert", id: "redaction-failed" },
        t("redact.failed", { message: redaction.message })) : "";
      clear(body, why, proposeForm(caseId, clipNumber, draw));
      clear(aside, disclosureCard(caseId));
      return;
    }
    if (redaction.status === "queued" || redaction.status === "running") {
      // the worker detects; poll the row until it is proposed (or failed)
      clear(body, h("div", { class: "card" }, h("span", { class: "badge",
        id: "redaction-status" }, t(`redact.status_${redaction.status}`)),
      h("p", { class: "muted", id: "redaction-progress" }, t("redact.detecting",
        { done: formatNumber(redaction.progress_frames) }))));
      clear(aside, disclosureCard(caseId));
      setTimeout(async () => {
        if (!body.isConnected) return;  // the reviewer left the page
        try {
          draw(await api.get(`/api/cases/${caseId}/redactions/${redaction.id}`));
        } catch (err) {
          clear(body, h("p", { role: "alert" }, err.message || String(err)));
        }
      }, 1500);
      return;
    }
    const decide = (track, reason, button) => busy(button, decideError, async () => {
      draw(await api.post(`/api/cases/${caseId}/redactions/${redaction.id}/decisions`, {
        kind: track.excluded ? "include_track" : "exclude_track", track_id: track.id, reason }));
    });
    const approve = h("button", { type: "button", class: "primary", id: "approve-redaction",
      onclick: () => busy(approve, decideError, async () => {
        draw(await api.post(`/api/cases/${caseId}/redactions/${redaction.id}/approve`));
        status.textContent = t("redact.approved_now");
      }) }, t("redact.approve"));
    const summary = redaction.summary || {};
    clear(body, h("div", { class: "row" },
      h("span", { class: "badge", id: "redaction-status" }, t(`redact.status_${
        redaction.status === "approved" ? "approved" : "proposed"}`)),
      h("span", { class: "muted" }, t("redact.found", { faces: summary.faces_found ?? 0,
        plates: summary.plates_found ?? 0, frames: redaction.frame_count })),
      redaction.status === "approved" ? h("span", { class: "muted" }, t("redact.approved_by",
        { name: redaction.approved_by })) : approve),
    status, decideError, tracksTable(redaction, decide),
    previewAndBox(caseId, redaction, seconds(clip), draw),
    h("h2", {}, t("redact.decisions")), decisionsList(redaction));
    clear(aside, disclosureCard(caseId));
  }
  const mine = redactions.filter((r) => r.clip_id === clip.id);
  draw(mine.length ? mine[mine.length - 1] : null);
  return h("div", { class: "redaction-page" }, head, back, error,
    h("div", { class: "two-col" }, h("section", {}, body), aside));
}
