// Admin: users (create, disable, change role), cameras (add one, import a CSV, allowed
// agencies at registration, recording state and the last day's gaps, retention period)
// and the model status (what search uses, frames waiting).

import { h, field, clear } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, statusLine, pageHead, timeEl, shortHash, busy } from "../ui.js";
import { gapBands, hatch, daySummary, stateMessageText } from "../gaps.js";

const ROLES = ["investigator", "supervisor", "prosecutor", "auditor", "admin"];
const DAY_MS = 24 * 3600 * 1000;
const STRIP_W = 144;

function usersSection() {
  const error = errorLine();
  const body = h("tbody", {});
  async function load() {
    try {
      const users = await api.get("/api/users");
      clear(body, users.map((user) => {
        const role = h("select", { "aria-label": t("admin.role_of", { name: user.username }),
          onchange: () => change(user, { role: role.value }) },
        ROLES.map((r) => h("option", { value: r, selected: r === user.role }, t(`role.${r}`))));
        const toggle = h("button", { type: "button", onclick: () =>
          change(user, { disabled: !user.disabled }) },
        t(user.disabled ? "admin.enable" : "admin.disable"));
        return h("tr", {}, h("td", {}, user.username), h("td", {}, user.full_name),
          h("td", {}, user.agency), h("td", {}, role),
          h("td", {}, t(user.disabled ? "admin.disabled" : "admin.active")), h("td", {}, toggle));
      }));
    } catch (problem) { error.show(problem); }
  }
  async function change(user, changes) {
    try { await api.patch(`/api/users/${user.id}`, changes); } catch (problem) { error.show(problem); }
    load();
  }
  const inputs = { username: h("input", { required: true, autocomplete: "off" }),
    full_name: h("input", {}), agency: h("input", { required: true }),
    password: h("input", { type: "password", required: true, autocomplete: "new-password" }),
    role: h("select", {}, ROLES.map((r) => h("option", { value: r }, t(`role.${r}`)))) };
  const button = h("button", { type: "submit", class: "primary" }, t("admin.create_user"));
  const form = h("form", { class: ["card", "filter-grid"], onsubmit: (event) => {
    event.preventDefault();
    busy(button, error, async () => {
      await api.post("/api/users", Object.fromEntries(Object.entries(inputs)
        .map(([key, el]) => [key, el.value.trim()])));
      form.reset();
      load();
    });
  } }, Object.entries(inputs).map(([key, el]) => field(t(`admin.user_${key}`), el)), button);
  load();
  return h("section", { "aria-labelledby": "users-h" }, h("h2", { id: "users-h" }, t("admin.users")),
    error, h("table", {}, h("thead", {}, h("tr", {}, ["admin.user_username", "admin.user_full_name",
      "admin.user_agency", "admin.user_role", "admin.state", "admin.action"]
      .map((key) => h("th", { scope: "col" }, t(key))))), body), form);
}

function camerasSection() {
  const error = errorLine();
  const status = statusLine();
  const body = h("tbody", {});
  // retention: days, empty for the installation's default; evidence is always kept
  function retentionForm(c) {
    const days = h("input", { type: "number", min: "1", max: "36500", step: "1",
      value: c.retention_days ?? "", placeholder: t("admin.retention_default"),
      "aria-label": t("admin.camera_retention_of", { id: c.id }), class: "narrow" });
    const save = h("button", { type: "submit" }, t("admin.retention_save"));
    return h("form", { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      busy(save, error, async () => {
        const value = days.value.trim();
        const row = await api.put(`/api/cameras/${encodeURIComponent(c.id)}/retention`,
          { retention_days: value === "" ? null : Number(value) });
        status.textContent = row.retention_days === null
          ? t("admin.retention_is_default", { id: row.id })
          : t("admin.retention_set", { id: row.id, days: row.retention_days });
      });
    } }, days, save);
  }
  // recording state (disk_full names the full disk in its message), then the last 24 h:
  // the gaps hatched on a strip, their count and total length
  function recordingCell(c) {
    const cell = h("td", {}, "…");
    api.get(`/api/cameras/${encodeURIComponent(c.id)}/status`).then((s) => {
      const bad = ["disk_full", "failed", "clock_error", "stale"].includes(s.state);
      const said = stateMessageText(s, c.timezone);
      clear(cell, [h("span", { class: bad ? "bad" : "", title: said },
        t(`camera_state.${s.state}`)), bad ? h("div", { class: "hint" }, said) : null,
      s.gaps_last_24h.length ? dayStrip(c, s) : null,
      h("div", { class: ["hint", "gap-summary"] }, daySummary(s))]);
    }).catch(() => clear(cell, ["—"]));
    return cell;
  }
  function dayStrip(c, s) {
    const hi = Date.now();
    const lo = hi - DAY_MS;
    const x = (ms) => 1 + ((ms - lo) / DAY_MS) * (STRIP_W - 2);
    const detail = h("div", { class: "hint", role: "status", "aria-live": "polite" });
    const { defs, fill } = hatch();
    return h("div", { class: "gap-strip" }, h("svg:svg", { viewBox: `0 0 ${STRIP_W} 14`,
      width: STRIP_W, height: 14, role: "group",
      "aria-label": t("gap.strip_label", { id: c.id }) }, defs,
    h("svg:rect", { x: 0.5, y: 0.5, width: STRIP_W - 1, height: 13, fill: "none",
      stroke: "currentColor", "stroke-width": 1 }),
    gapBands(s.gaps_last_24h, { x, lo, hi, y: 1, height: 12, timeZone: c.timezone, fill,
      onShow: (text) => { detail.textContent = text; } })), detail);
  }
  async function load() {
    try {
      clear(body, (await api.get("/api/cameras")).map((c) => h("tr", {},
        h("td", { class: "mono" }, c.id), h("td", {}, c.name), h("td", {}, c.district),
        h("td", {}, `${c.latitude}, ${c.longitude}`), h("td", {}, c.agency),
        h("td", {}, c.allowed_agencies.join(", ") || "—"), h("td", {}, c.timezone),
        recordingCell(c), h("td", {}, retentionForm(c)))));
    } catch (problem) { error.show(problem); }
  }
  const inputs = { id: h("input", { required: true }), name: h("input", { required: true }),
    district: h("input", {}), latitude: h("input", { type: "number", step: "any", required: true }),
    longitude: h("input", { type: "number", step: "any", required: true }),
    agency: h("input", { required: true }), timezone: h("input", { value: "Europe/Kyiv" }),
    allowed_agencies: h("input", {}) };
  const button = h("button", { type: "submit", class: "primary" }, t("admin.add_camera"));
  const form = h("form", { class: ["card", "filter-grid"], onsubmit: (event) => {
    event.preventDefault();
    busy(button, error, async () => {
      const v = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
      await api.post("/api/cameras", { ...v, latitude: Number(v.latitude),
        longitude: Number(v.longitude),
        allowed_agencies: v.allowed_agencies.split(",").map((a) => a.trim()).filter(Boolean) });
      form.reset();
      load();
    });
  } }, Object.entries(inputs).map(([key, el]) => field(t(`admin.camera_${key}`), el,
    key === "allowed_agencies" ? t("admin.allowed_hint") : null)), button);
  const csv = h("input", { type: "file", accept: ".csv,text/csv", required: true });
  const csvButton = h("button", { type: "submit" }, t("admin.import"));
  const csvForm = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(csvButton, error, async () => {
      const data = new FormData();
      data.append("file", csv.files[0]);
      const added = await api.upload("/api/cameras/import", data);
      status.textContent = t("admin.imported", { n: added.length });
      load();
    });
  } }, field(t("admin.csv"), csv, t("admin.csv_hint")), csvButton);
  load();
  return h("section", { "aria-labelledby": "cams-h" }, h("h2", { id: "cams-h" }, t("admin.cameras")),
    error, status, h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {},
      ["admin.camera_id", "admin.camera_name", "admin.camera_district", "admin.position",
        "admin.camera_agency", "admin.camera_allowed_agencies", "admin.camera_timezone",
        "admin.camera_recording", "admin.camera_retention"]
        .map((key) => h("th", { scope: "col" }, t(key))))), body)), form, csvForm);
}

async function modelSection() {
  const error = errorLine();
  let content = null;
  try {
    const status = await api.get("/api/models");
    content = h("dl", { class: "facts" },
      h("dt", {}, t("admin.preset")), h("dd", {}, status.preset),
      h("dt", {}, t("admin.model_state")), h("dd", { class: status.installed ? "good" : "bad" },
        t(status.installed ? "admin.model_ready" : "admin.model_missing")),
      status.installed ? [h("dt", {}, t("prov.weights")), h("dd", {}, h("code",
        { title: status.weights_sha256 }, shortHash(status.weights_sha256))),
      h("dt", {}, t("prov.waiting")), h("dd", {}, String(status.pending_frames))]
        : [h("dt", {}, t("admin.model_todo")), h("dd", {}, status.message)],
      status.models.map((m) => [h("dt", {}, m.preset), h("dd", {}, shortHash(m.weights_sha256),
        " · ", timeEl(m.installed_at))]));
  } catch (problem) { error.show(problem); }
  return h("section", { "aria-labelledby": "model-h" }, h("h2", { id: "model-h" }, t("admin.model")),
    error, content);
}

export async function render() {
  return h("div", {}, pageHead("admin.title"), await modelSection(), usersSection(),
    camerasSection());
}
