// Search: words and/or an image (dropped, pasted or chosen), a required purpose, filters.
// The URL holds the query (so a search can be bookmarked and back/forward re-run it);
// the filters the server applied come back as chips, those taken from the query's words
// included, and each removable one re-runs the search without it.

import { h, field, clear } from "../dom.js";
import { t, formatNumber } from "../i18n.js";
import { api, POLICY_SOURCE } from "../api.js";
import * as store from "../store.js";
import { errorLine, statusLine, pageHead, timeEl, cameraZone, shortHash } from "../ui.js";

const PHASES = ["day", "dusk", "night"];
const QUERY_PHRASE = /^query phrase '(.*)'$/;

function readQuery(query) {
  return {
    text: query.get("text") || "",
    purpose: query.get("purpose") || store.get("lastPurpose") || "",
    cameras: query.getAll("camera"),
    district: query.get("district") || "",
    from: query.get("from") || "",
    to: query.get("to") || "",
    phase: query.get("phase") || "",
    k: query.get("k") || "50",
    similar: query.get("similar") || "",
  };
}

function toUrl(values) {
  return { text: values.text, purpose: values.purpose, camera: values.cameras,
    district: values.district, from: values.from, to: values.to, phase: values.phase,
    k: values.k === "50" ? "" : values.k, similar: values.similar };
}

function cameraPicker(selected) {
  const cameras = store.get("cameras") || [];
  const filter = h("input", { type: "search", id: "camera-filter", autocomplete: "off" });
  const items = cameras.map((camera) => {
    const box = h("input", { type: "checkbox", name: "camera", value: camera.id,
      checked: selected.includes(camera.id), id: `cam-${camera.id}` });
    const item = h("li", { dataset: { haystack:
      `${camera.id} ${camera.name} ${camera.district}`.toLowerCase() } },
      box, h("label", { for: box.id }, h("span", { class: "mono" }, camera.id), " ",
        camera.name, camera.district ? h("span", { class: "muted" }, ` · ${camera.district}`) : ""));
    return item;
  });
  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const item of items) item.hidden = Boolean(needle) && !item.dataset.haystack.includes(needle);
  });
  const list = h("ul", { class: "camera-list" }, items);
  const fieldset = h("fieldset", { class: "cameras" }, h("legend", {}, t("search.cameras")),
    field(t("search.camera_filter"), filter), list);
  fieldset.values = () => [...list.querySelectorAll("input:checked")].map((b) => b.value);
  return fieldset;
}

function imageDrop(onImage) {
  const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp",
    id: "query-image", "aria-describedby": "drop-hint" });
  const preview = h("span", { class: "drop-name" });
  const zone = h("div", { class: "drop" },
  h("label", { for: "query-image" }, t("search.image")), input,
  h("p", { id: "drop-hint", class: "hint" }, t("search.image_hint")), preview);
  const take = (file) => {
    if (!file) return;
    preview.textContent = file.name || t("search.pasted_image");
    onImage(file);
  };
  input.addEventListener("change", () => take(input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(event.dataTransfer.files[0]);
  });
  zone.take = take;
  zone.clearImage = () => { preview.textContent = ""; input.value = ""; };
  return zone;
}

function filterChips(filters, onRemove) {
  return filters.map((filter) => {
    const phrase = QUERY_PHRASE.exec(filter.source);
    const value = Array.isArray(filter.value) ? filter.value.join(", ") : filter.value;
    let label;
    if (filter.name === "day_phase") label = t(`phase.${filter.value}`);
    else if (filter.name === "cameras" && filter.source === POLICY_SOURCE) {
      label = t("chip.policy_cameras", { n: filter.value.length });
    } else label = `${t(`chip.${filter.name}`)}: ${value}`;
    if (phrase) label = t("chip.from_query", { filter: label });
    const removable = filter.source !== POLICY_SOURCE;
    return h("li", { class: ["chip", removable ? "" : "fixed"] }, h("span", {}, label),
      removable ? h("button", { type: "button", class: "chip-x",
        "aria-label": t("chip.remove", { filter: label }),
        onclick: () => onRemove(filter, phrase ? phrase[1].split(", ") : []) }, "×") : null);
  });
}

function momentCard(moment, index, searchId, onSimilar) {
  const link = `#/moment/${moment.best_frame_id}?search=${searchId ?? ""}&i=${index}`;
  const zone = cameraZone(moment.camera_id);
  return h("li", { class: "result" },
    h("a", { href: link, class: "thumb-link",
      "aria-label": t("result.open", { camera: moment.camera_name }) },
    h("img", { src: moment.thumbnail_url, alt: "", width: 320, height: 180, loading: "lazy",
      decoding: "async" })),
    h("div", { class: "result-meta" },
      h("strong", {}, moment.camera_name),
      h("span", {}, timeEl(moment.start_utc, zone)),
      h("span", { class: "score" }, t("result.score", { score: formatNumber(moment.score, 3) })),
      h("button", { type: "button", class: ["ghost", "small"],
        onclick: () => onSimilar(moment) }, t("result.similar"))));
}

// "onnx fp32 · text-fp32.onnx (hash) · from the cache": the tower that encoded the text.
function textEncoderLabel(prov) {
  const enc = prov.text_encoder;
  const parts = [`${enc.backend} ${enc.precision}`];
  if (enc.onnx_path) {
    parts.push(" · ", h("code", { title: enc.onnx_path }, enc.onnx_path.split("/").pop()));
  }
  if (enc.onnx_sha256) parts.push(" ", h("code", { title: enc.onnx_sha256 }, shortHash(enc.onnx_sha256)));
  parts.push(" · ", t(prov.query_vector_cached ? "prov.vector_cached" : "prov.vector_encoded"));
  return h("span", {}, ...parts);
}

function provenancePanel(prov) {
  const row = (key, value) => [h("dt", {}, t(key)), h("dd", {}, value)];
  return h("details", { class: "provenance", open: true },
    h("summary", {}, t("prov.title")),
    h("dl", {},
      row("prov.model", prov.preset),
      row("prov.weights", h("code", { title: prov.weights_sha256 }, shortHash(prov.weights_sha256))),
      row("prov.k", String(prov.k)),
      row("prov.candidates", String(prov.candidates)),
      row("prov.truncated", t(prov.truncated ? "common.yes" : "common.no")),
      row("prov.shards", prov.shards_searched.length
        ? prov.shards_searched.map((name) => {
          const type = (prov.shard_index_types || {})[name];
          return type ? `${name} (${type})` : name;
        }).join(", ") : t("prov.no_shards")),
      (prov.shards_left_out || []).length ? row("prov.left_out", h("ul", {},
        prov.shards_left_out.map((s) => h("li", {}, h("code", {}, s.shard), " — ", s.reason))))
        : [],
      (prov.shards_scored_from_database || []).length
        ? row("prov.shards_from_db", prov.shards_scored_from_database.join(", ")) : [],
      prov.frames_of_another_model
        ? row("prov.other_model", String(prov.frames_of_another_model)) : [],
      row("prov.from_db", String(prov.frames_scored_from_database)),
      row("prov.waiting", String(prov.frames_waiting_for_embedding)),
      row("prov.clip_text", prov.clip_text || "—"),
      prov.text_encoder ? row("prov.text_encoder", textEncoderLabel(prov)) : [],
      prov.image_tower ? row("prov.image_tower", h("span", {}, prov.image_tower.preset, " ",
        h("code", { title: prov.image_tower.weights_sha256 },
          shortHash(prov.image_tower.weights_sha256)), " — ",
        prov.image_tower.backend || t("prov.backend_not_recorded"))) : [],
      row("prov.elapsed", t("unit.ms", { n: formatNumber(prov.elapsed_ms, 0) }))));
}

// A partial answer says so above the results: some shards in scope did not answer.
function partialNotice(prov) {
  if (!prov.partial) return [];
  const left = (prov.shards_left_out || []).length;
  return h("p", { class: ["card", "warning", "partial"], role: "status" },
    h("strong", {}, t("search.partial_title")), " ",
    left ? t("search.partial_shards", { n: left }) : "",
    prov.frames_of_another_model
      ? ` ${t("search.partial_other_model", { n: prov.frames_of_another_model })}` : "");
}

function noModel(error) {
  return h("section", { class: ["card", "warning"], role: "alert" },
    h("h2", {}, t("search.no_model_title")), h("p", {}, t("search.no_model_body")),
    h("p", {}, t("search.no_model_admin")), h("pre", {}, h("code", {}, t("search.no_model_cmd"))),
    h("p", { class: "muted" }, error.message));
}

export function render({ query, navigate }) {
  const values = readQuery(query);
  const error = errorLine();
  const status = statusLine();
  const chips = h("ul", { class: "chips", "aria-label": t("search.chips") });
  const results = h("ol", { class: "results", "aria-label": t("search.results") });
  const provenance = h("div", {});
  const partial = h("div", {});
  let image = null;

  const text = h("input", { type: "search", name: "text", value: values.text, id: "q",
    placeholder: t("search.text_placeholder") });
  const purpose = h("input", { name: "purpose", value: values.purpose, required: true,
    minlength: 3, id: "purpose", placeholder: t("search.purpose_placeholder") });
  const cameras = cameraPicker(values.cameras);
  const districts = [...new Set((store.get("cameras") || []).map((c) => c.district).filter(Boolean))];
  const district = h("select", { name: "district" }, h("option", { value: "" }, t("common.any")),
    districts.map((d) => h("option", { value: d, selected: d === values.district }, d)));
  const from = h("input", { type: "datetime-local", name: "from", value: values.from });
  const to = h("input", { type: "datetime-local", name: "to", value: values.to });
  const phase = h("select", { name: "phase" }, h("option", { value: "" }, t("common.any")),
    PHASES.map((p) => h("option", { value: p, selected: p === values.phase }, t(`phase.${p}`))));
  const k = h("input", { type: "number", name: "k", min: 1, max: 500, value: values.k });
  const drop = imageDrop((file) => { image = file; });

  const formValues = () => ({ text: text.value.trim(), purpose: purpose.value.trim(),
    cameras: cameras.values(), district: district.value, from: from.value, to: to.value,
    phase: phase.value, k: k.value || "50", similar: values.similar });

  function show(result) {
    store.set("lastSearch", result);
    const moments = result.moments;
    clear(chips, filterChips(result.provenance.filters, removeFilter));
    clear(results, moments.map((m, i) => momentCard(m, i, result.search_id, findSimilar)));
    clear(provenance, provenancePanel(result.provenance));
    clear(partial, partialNotice(result.provenance));
    status.textContent = moments.length ? t("search.found", { n: moments.length })
      : t("search.none");
  }

  async function run(body, file) {
    error.show(null);
    clear(provenance);
    clear(partial);
    status.textContent = t("search.running");
    try {
      let result;
      if (file) {
        const form = new FormData();
        form.append("image", file);
        for (const [key, value] of Object.entries(body)) {
          if (Array.isArray(value)) value.forEach((v) => form.append(key, v));
          else if (value !== null && value !== undefined && value !== "") form.append(key, value);
        }
        result = await api.upload("/api/search/image", form);
      } else {
        result = await api.post("/api/search", body);
      }
      show(result);
    } catch (problem) {
      status.textContent = "";
      clear(chips);
      clear(results);
      if (problem.code === "no_model") clear(provenance, noModel(problem));
      else error.show(problem);
    }
  }

  function body(v) {
    return { text: v.text || null, purpose: v.purpose, cameras: v.cameras,
      districts: v.district ? [v.district] : [], from: v.from || null, to: v.to || null,
      day_phase: v.phase || null, k: Number(v.k) || 50,
      similar_to_frame_id: v.similar ? Number(v.similar) : null };
  }

  function submit(v) {
    if (v.purpose) store.set("lastPurpose", v.purpose);
    if (image) {
      const file = image;
      image = null;
      drop.clearImage();
      const b = body(v);
      delete b.similar_to_frame_id;
      run(b, file);
      return;
    }
    navigate("/search", toUrl(v));
  }

  function removeFilter(filter, phrases) {
    const v = formValues();
    if (phrases.length) {
      let words = v.text;
      for (const phrase of phrases) {
        words = words.replace(new RegExp(phrase.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "iu"), " ");
      }
      v.text = words.replace(/\s+/g, " ").trim();
    } else if (filter.name === "cameras") v.cameras = [];
    else if (filter.name === "districts") v.district = "";
    else if (filter.name === "day_phase") v.phase = "";
    else if (filter.name === "from") v.from = "";
    else if (filter.name === "to") v.to = "";
    submit(v);
  }

  function findSimilar(moment) {
    const v = formValues();
    submit({ ...v, text: "", similar: String(moment.best_frame_id) });
  }

  const form = h("form", { class: "search-form", onsubmit: (event) => {
    event.preventDefault();
    submit({ ...formValues(), similar: "" });
  } },
  h("div", { class: "query-row" },
    field(t("search.text"), text), field(t("search.purpose"), purpose, t("search.purpose_hint")),
    h("button", { type: "submit", class: "primary" }, t("search.submit"))),
  drop,
  h("div", { class: "filters" }, cameras,
    h("div", { class: "filter-grid" }, field(t("search.district"), district),
      field(t("search.from"), from), field(t("search.to"), to), field(t("search.phase"), phase),
      field(t("search.k"), k))));

  form.addEventListener("paste", (event) => {
    const file = [...event.clipboardData.files].find((f) => f.type.startsWith("image/"));
    if (file) { event.preventDefault(); drop.take(file); }
  });
  const similarNote = values.similar ? h("p", { class: "notice" },
    t("search.similar_to", { frame: values.similar })) : null;
  if ((values.text || values.similar) && values.purpose) run(body(values));
  return h("div", { class: "search-page" }, pageHead("search.title"),
    h("div", { class: "search-layout" },
      h("aside", { class: "search-side" }, form),
      h("section", { class: "search-main", "aria-labelledby": "page-title" }, similarNote,
        status, error, partial, chips, results, provenance)));
}
