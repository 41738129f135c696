// Plates: search by a plate (exact, wildcard or near), with its crop, read and match kind,
// and an optional description ("червоне авто", "вночі") sent as `text`;
// one plate's journey across cameras in time order; the watch-list events; and, for
// administrators, the watch list itself. The URL holds the search, so it can be bookmarked.

import { h, field, clear } from "../dom.js";
import { t, formatNumber } from "../i18n.js";
import { api, request, query as toQuery } from "../api.js";
import * as store from "../store.js";
import { errorLine, statusLine, pageHead, timeEl, cameraZone, busy } from "../ui.js";

const PHASES = ["day", "dusk", "night"];
const MATCHES = ["exact", "wildcard", "fuzzy"];

function isoOrEmpty(local) {
  return local ? new Date(local).toISOString() : "";
}

function crop(url, plate) {
  return h("img", { class: "plate-crop", src: url, alt: t("plates.crop_alt", { plate }),
    width: 200, loading: "lazy", decoding: "async" });
}

function hitCard(moment, index, searchId, purpose) {
  const zone = cameraZone(moment.camera_id);
  const journey = `#/plates/${encodeURIComponent(moment.plate)}${toQuery({ purpose })}`;
  const match = MATCHES.includes(moment.plate_match) ? t(`plates.match_${moment.plate_match}`)
    : moment.plate_match;
  return h("li", { class: ["card", "plate-hit"], dataset: { plate: moment.plate } },
    crop(moment.crop_url, moment.plate_display),
    h("div", { class: "result-meta" },
      h("strong", { class: ["mono", "plate-text"] }, moment.plate_display),
      h("span", {}, h("span", { class: "badge" }, match), " ",
        t("plates.confidence", { value: formatNumber(moment.plate_confidence * 100, 0) })),
      h("span", {}, moment.camera_name, " · ", timeEl(moment.start_utc, zone, { seconds: true })),
      h("span", { class: "row" },
        h("a", { href: journey, class: "journey-link" }, t("plates.journey_link")),
        h("a", { href: `#/moment/${moment.best_frame_id}?search=${searchId ?? ""}&i=${index}` },
          t("plates.open_moment")))));
}

function eventsTable(events) {
  if (!events.length) return h("p", { class: "muted" }, t("plates.no_events"));
  return h("div", { class: "table-wrap" }, h("table", { class: "plate-events" },
    h("caption", { class: "sr-only" }, t("plates.events")),
    h("thead", {}, h("tr", {}, ["plates.crop", "plates.plate", "plates.camera", "plates.seen",
      "plates.reason"].map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, events.map((event) => h("tr", {},
      h("td", {}, store.may("view_footage") ? crop(event.crop_url, event.plate_display) : "—"),
      h("td", { class: "mono" }, event.plate_display),
      h("td", { class: "mono" }, event.camera_id),
      h("td", {}, timeEl(event.seen_at_utc, cameraZone(event.camera_id), { seconds: true })),
      h("td", {}, event.reason))))));
}

async function eventsSection() {
  const error = errorLine();
  const box = h("div", {});
  try {
    clear(box, eventsTable(await api.get("/api/plates/events?limit=50")));
  } catch (problem) { error.show(problem); }
  return h("section", { "aria-labelledby": "events-h" },
    h("h2", { id: "events-h" }, t("plates.events")), error, box);
}

function searchForm(values, onSearch) {
  const plate = h("input", { id: "plate", name: "plate", required: true, autocomplete: "off",
    value: values.plate, maxlength: 40 });
  const text = h("input", { id: "plate-text", name: "text", autocomplete: "off",
    value: values.text, maxlength: 500 });
  const purpose = h("input", { id: "plate-purpose", name: "purpose", required: true,
    minlength: 3, value: values.purpose });
  const cameras = store.get("cameras") || [];
  const camera = h("select", { id: "plate-camera", name: "camera" },
    h("option", { value: "" }, t("plates.any_camera")),
    cameras.map((c) => h("option", { value: c.id, selected: values.camera === c.id },
      `${c.id} · ${c.name}`)));
  const district = h("input", { id: "plate-district", name: "district", value: values.district });
  const from = h("input", { id: "plate-from", type: "datetime-local", value: values.from });
  const to = h("input", { id: "plate-to", type: "datetime-local", value: values.to });
  const phase = h("select", { id: "plate-phase" }, h("option", { value: "" }, t("plates.any_phase")),
    PHASES.map((p) => h("option", { value: p, selected: values.phase === p }, t(`phase.${p}`))));
  const fuzzy = h("input", { id: "plate-fuzzy", type: "checkbox", checked: values.fuzzy !== "0" });
  const button = h("button", { type: "submit", class: "primary" }, t("plates.submit"));
  const form = h("form", { class: "search-form", onsubmit: (event) => {
    event.preventDefault();
    onSearch({ plate: plate.value.trim(), text: text.value.trim(),
      purpose: purpose.value.trim(), camera: camera.value,
      district: district.value.trim(), from: from.value, to: to.value, phase: phase.value,
      fuzzy: fuzzy.checked ? "" : "0" });
  } }, field(t("plates.plate"), plate, t("plates.plate_hint")),
  field(t("plates.text"), text, t("plates.text_hint")),
  field(t("search.purpose"), purpose, t("plates.purpose_hint")),
  h("div", { class: "filter-grid" }, field(t("plates.camera"), camera),
    field(t("search.district"), district), field(t("search.from"), from),
    field(t("search.to"), to), field(t("search.phase"), phase)),
  h("div", { class: "row" }, fuzzy, h("label", { for: fuzzy.id }, t("plates.fuzzy"))), button);
  return form;
}

function readValues(query) {
  return { plate: query.get("plate") || "", text: query.get("text") || "",
    purpose: query.get("purpose") || store.get("lastPurpose") || "",
    camera: query.get("camera") || "", district: query.get("district") || "",
    from: query.get("from") || "", to: query.get("to") || "", phase: query.get("phase") || "",
    fuzzy: query.get("fuzzy") || "" };
}

async function journeyView(plate, query) {
  const purpose = query.get("purpose") || store.get("lastPurpose") || "";
  const error = errorLine();
  const back = h("p", {}, h("a", { href: `#/plates${toQuery({ plate, purpose })}` },
    t("plates.back")));
  let journey;
  try {
    journey = await api.get(`/api/plates/${encodeURIComponent(plate)}/journey${toQuery({ purpose })}`);
  } catch (problem) {
    error.show(problem);
    return h("div", {}, pageHead("plates.journey_title"), back, error);
  }
  const path = journey.cameras.length
    ? h("p", { class: ["lead", "journey-path"] }, journey.cameras.join(" → ")) : null;
  const steps = journey.sightings.length ? h("ol", { class: ["timeline-list", "journey"] },
    journey.sightings.map((s) => h("li", { dataset: { camera: s.camera_id } },
      h("strong", {}, s.camera_name), " ", h("span", { class: "mono" }, s.camera_id), " · ",
      timeEl(s.start_utc, cameraZone(s.camera_id), { seconds: true }), " — ",
      timeEl(s.end_utc, cameraZone(s.camera_id), { seconds: true }),
      h("div", { class: "row" }, crop(s.crop_url, s.plate_display),
        t("plates.confidence", { value: formatNumber(s.plate_confidence * 100, 0) })))))
    : h("p", { class: "muted" }, t("plates.no_sightings"));
  return h("div", { class: "plates-page" },
    pageHead("plates.journey_title", h("p", { class: ["lead", "mono"] }, journey.plate_display)),
    back, path, steps);
}

// What the description did: ranked by CLIP, not applied (no model), time-of-day filters.
function textNotes(prov) {
  const notes = [];
  const phrases = prov.text_phrases || [];
  if (phrases.length) notes.push(t("plates.text_filters", { phrases: phrases.join(", ") }));
  if (prov.text_applied) notes.push(t("plates.text_applied", { text: prov.text }));
  if (prov.text_not_applied) notes.push(t("plates.text_not_applied", { text: prov.text }));
  return notes.map((note) => h("p", { class: ["muted", "text-note"] }, note));
}

export async function render({ params, query, navigate }) {
  if (params.plate) return journeyView(params.plate, query);
  const values = readValues(query);
  const status = statusLine();
  const error = errorLine();
  const results = h("ol", { class: ["results", "plate-results"], "aria-label": t("plates.results") });
  const notes = h("div", { class: "text-notes", "aria-live": "polite" });
  const form = searchForm(values, (next) => navigate("/plates", next));
  if (values.plate && values.purpose) {
    store.set("lastPurpose", values.purpose);
    status.textContent = t("plates.searching");
    try {
      const body = { plate: values.plate, text: values.text || null, purpose: values.purpose,
        fuzzy: values.fuzzy !== "0",
        cameras: values.camera ? [values.camera] : [],
        districts: values.district ? [values.district] : [],
        from: isoOrEmpty(values.from) || null, to: isoOrEmpty(values.to) || null,
        day_phase: values.phase || null };
      const answer = await api.post("/api/plates/search", body);
      store.set("lastSearch", answer); // the moment view's strip and previous/next
      status.textContent = t("plates.found", { n: answer.moments.length,
        candidates: answer.provenance.candidates });
      clear(notes, textNotes(answer.provenance));
      clear(results, answer.moments.map((m, i) => hitCard(m, i, answer.search_id, values.purpose)));
    } catch (problem) {
      status.textContent = "";
      error.show(problem);
    }
  }
  return h("div", { class: "plates-page" }, pageHead("plates.title"),
    h("div", { class: "search-layout" },
      h("aside", { class: "search-side" }, form),
      h("section", { class: "search-main", "aria-labelledby": "page-title" }, status, notes,
        error, results, await eventsSection())));
}

function watchTable(watches, onRemove) {
  if (!watches.length) return h("p", { class: "muted" }, t("watch.none"));
  return h("div", { class: "table-wrap" }, h("table", { class: "watchlist" },
    h("caption", { class: "sr-only" }, t("watch.title")),
    h("thead", {}, h("tr", {}, ["plates.plate", "plates.reason", "watch.expires", "watch.added_by",
      "watch.state", "watch.actions"].map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, watches.map((w) => h("tr", {},
      h("td", { class: "mono" }, w.plate_display), h("td", {}, w.reason),
      h("td", {}, timeEl(w.expires_at)), h("td", {}, w.added_by),
      h("td", {}, t(w.active ? "watch.active" : "watch.expired")),
      h("td", {}, h("button", { type: "button", class: ["ghost", "small"],
        "aria-label": t("watch.remove_plate", { plate: w.plate_display }),
        onclick: () => onRemove(w) }, t("watch.remove"))))))));
}

/** The watch list (administrators): add a plate with a reason and an expiry, remove one. */
export async function renderWatchlist() {
  const error = errorLine();
  const box = h("div", {});
  async function refresh() {
    try { clear(box, watchTable(await api.get("/api/plates/watchlist"), remove)); } catch (problem) {
      error.show(problem);
    }
  }
  async function remove(watch) {
    try {
      await request("DELETE", `/api/plates/watchlist/${watch.id}`, { blob: true });
      await refresh();
    } catch (problem) { error.show(problem); }
  }
  const plate = h("input", { id: "watch-plate", required: true, maxlength: 40, autocomplete: "off" });
  const reason = h("input", { id: "watch-reason", required: true });
  const expires = h("input", { id: "watch-expires", type: "datetime-local", required: true });
  const addError = errorLine();
  const added = statusLine();
  const button = h("button", { type: "submit", class: "primary" }, t("watch.add"));
  const form = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(button, addError, async () => {
      const made = await api.post("/api/plates/watchlist", { plate: plate.value.trim(),
        reason: reason.value.trim(), expires_at: isoOrEmpty(expires.value) });
      added.textContent = t("watch.added", { plate: made.plate_display });
      await refresh();
    });
  } }, h("h2", {}, t("watch.new")), field(t("plates.plate"), plate),
  field(t("plates.reason"), reason, t("watch.reason_hint")),
  field(t("watch.expires"), expires, t("watch.expires_hint")), button, added, addError);
  await refresh();
  return h("div", { class: "watch-page" }, pageHead("watch.title"), error,
    h("div", { class: "two-col" }, h("section", {}, box), h("aside", {}, form)));
}
