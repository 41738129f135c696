// Audit (auditors): entries filtered by user, action, camera, case and time (the URL holds
// the filters, so a query can be sent to a colleague), chain verification, the checkpoint
// file, and the PDF / JSON Lines report. The API filters by time, user and action; camera
// and case are matched here within the newest 500 entries that pass those.

import { h, field, clear, saveBlob } from "../dom.js";
import { t } from "../i18n.js";
import { api, query as toQuery } from "../api.js";
import { errorLine, statusLine, pageHead, timeEl, busy } from "../ui.js";

const ACTIONS = ["login", "login_failed", "logout", "search", "view_frame", "view_video",
  "case_change", "export", "download", "verify", "user_change", "camera_change", "ingest",
  "model_change", "key_change", "audit_read", "audit_export", "case_read", "access_denied",
  "not_found", "plate_alert", "watchlist_change", "retention_delete", "disk_alert"];

function mentions(details, key, wanted) {
  if (!wanted) return true;
  const value = details[key] ?? details[`${key}s`];
  return Array.isArray(value) ? value.map(String).includes(wanted) : String(value ?? "") === wanted;
}

function asUtc(local) {
  return local ? new Date(local).toISOString() : "";
}

export async function render({ query, navigate }) {
  const values = Object.fromEntries(["actor", "action", "camera", "case", "from", "to"]
    .map((key) => [key, query.get(key) || ""]));
  const error = errorLine();
  const actor = h("input", { name: "actor", value: values.actor, autocomplete: "off" });
  const action = h("select", { name: "action" }, h("option", { value: "" }, t("common.any")),
    ACTIONS.map((a) => h("option", { value: a, selected: a === values.action }, t(`action.${a}`))));
  const camera = h("input", { name: "camera", value: values.camera, autocomplete: "off" });
  const caseId = h("input", { name: "case", value: values.case, inputmode: "numeric" });
  const from = h("input", { type: "datetime-local", name: "from", value: values.from });
  const to = h("input", { type: "datetime-local", name: "to", value: values.to });
  const form = h("form", { class: ["card", "filter-grid"], onsubmit: (event) => {
    event.preventDefault();
    navigate("/audit", { actor: actor.value.trim(), action: action.value,
      camera: camera.value.trim(), case: caseId.value.trim(), from: from.value, to: to.value });
  } }, field(t("audit.actor"), actor), field(t("audit.action"), action),
  field(t("audit.camera"), camera), field(t("audit.case"), caseId),
  field(t("audit.from"), from), field(t("audit.to"), to),
  h("button", { type: "submit", class: "primary" }, t("audit.apply")));

  const range = { from: asUtc(values.from), to: asUtc(values.to) };
  const rows = h("tbody", {});
  const count = statusLine();
  try {
    const page = await api.get(`/api/audit/events${toQuery({ ...range, actor: values.actor,
      action: values.action, limit: 500 })}`);
    const items = page.items.filter((e) => mentions(e.details, "camera_id", values.camera)
      && mentions(e.details, "case_id", values.case));
    count.textContent = t("audit.count", { shown: items.length, total: page.total });
    clear(rows, items.map((e) => h("tr", {}, h("td", {}, String(e.seq)),
      h("td", {}, timeEl(e.occurred_at, "UTC", { seconds: true })), h("td", {}, e.actor),
      h("td", {}, e.agency), h("td", {}, t(`action.${e.action}`)),
      h("td", {}, h("code", { class: "details" }, JSON.stringify(e.details))))));
  } catch (problem) { error.show(problem); }

  const verifyResult = h("div", { "aria-live": "polite" });
  const verifyError = errorLine();
  const verifyButton = h("button", { type: "button", id: "verify-chain", onclick: () =>
    busy(verifyButton, verifyError, async () => {
      const report = await api.post("/api/audit/verify");
      clear(verifyResult, h("p", { class: report.ok ? "good" : "bad" },
        t(report.ok ? "audit.chain_ok" : "audit.chain_broken", { n: report.entries,
          checkpoints: report.checkpoints })), h("p", {}, report.summary),
      h("ul", {}, report.problems.map((p) => h("li", { class: "bad" }, p.reason)),
        report.warnings.map((w) => h("li", {}, w))));
    }) }, t("audit.verify"));
  const checkpointButton = h("button", { type: "button", onclick: () =>
    busy(checkpointButton, verifyError, async () => {
      const file = await api.get("/api/audit/checkpoints");
      saveBlob(new Blob([JSON.stringify(file, null, 2)], { type: "application/json" }),
        "oko-audit-checkpoints.json");
    }) }, t("audit.checkpoints"));
  const exportLink = (format) => h("a", { class: "button", download: "",
    // The PDF report is written in the language the auditor reads the app in.
    href: `/api/audit/export${toQuery({ ...range, format, lang: document.documentElement.lang || "uk" })}` },
    t(`audit.export_${format}`));

  return h("div", {}, pageHead("audit.title"), form,
    h("div", { class: "row" }, verifyButton, checkpointButton, exportLink("pdf"), exportLink("jsonl")),
    verifyError, verifyResult, error, count,
    h("div", { class: "table-wrap" }, h("table", { class: "audit" },
      h("caption", { class: "sr-only" }, t("audit.title")),
      h("thead", {}, h("tr", {}, ["audit.seq", "audit.time", "audit.actor", "audit.agency",
        "audit.action", "audit.details"].map((key) => h("th", { scope: "col" }, t(key))))), rows)));
}
