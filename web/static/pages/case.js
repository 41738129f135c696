// One case: its clips, notes and custody timeline; exports with live progress, approval
// and download; sharing with a prosecutor; recording a transfer of a finished bundle.

import { h, field, clear } from "../dom.js";
import { t, formatBytes, formatNumber } from "../i18n.js";
import { api } from "../api.js";
import * as store from "../store.js";
import { errorLine, statusLine, pageHead, timeEl, cameraZone, shortHash, busy } from "../ui.js";

const POLL_MS = 1000;
const RUNNING = ["queued", "running", "awaiting_approval"];

function clipsTable(detail) {
  if (!detail.clips.length) return h("p", { class: "muted" }, t("case.no_clips"));
  return h("table", {}, h("caption", {}, t("case.clips")),
    h("thead", {}, h("tr", {}, ["case.camera", "case.start", "case.end", "case.note",
      "case.origin", store.may("export") ? "case.redaction" : null].filter(Boolean)
      .map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, detail.clips.map((clip, index) => {
      const zone = cameraZone(clip.camera_id);
      return h("tr", {}, h("td", { class: "mono" }, clip.camera_id),
        h("td", {}, timeEl(clip.start_utc, zone, { seconds: true })),
        h("td", {}, timeEl(clip.end_utc, zone, { seconds: true })),
        h("td", {}, clip.note || "—"),
        h("td", {}, clip.source === "search" ? t("case.from_search", {
          id: clip.provenance.search_id ?? "?" }) : t("case.by_hand")),
        store.may("export") ? h("td", {}, h("a", { href: `#/cases/${detail.id}/redact/${index + 1}`,
          class: "redact-link" }, t("case.redact"))) : null);
    })));
}

function custodyTimeline(detail) {
  return h("ol", { class: "timeline-list", "aria-label": t("case.custody") },
    detail.custody.map((entry) => h("li", {},
      h("span", { class: "badge" }, t(`custody.${entry.action}`)), " ",
      timeEl(entry.recorded_at, undefined, { seconds: true }), " · ", entry.actor,
      entry.details && entry.details.note ? h("p", { class: "note" }, entry.details.note) : null,
      entry.details && entry.details.recipient
        ? h("p", { class: "muted" }, t("case.recipient", { name: entry.details.recipient })) : null,
      h("code", { class: "hash", title: entry.entry_hash }, shortHash(entry.entry_hash)))));
}

export function exportRow(caseId, job, onApprove) {
  const download = `/api/cases/${caseId}/exports/${job.id}/download`;
  return h("li", { class: "export", dataset: { status: job.status } },
    h("div", {}, h("strong", {}, t("case.export_n", { id: job.id })), " ",
      h("span", { class: "badge" }, t(`export_status.${job.status}`)), " ",
      timeEl(job.created_at)),
    RUNNING.includes(job.status) && job.status !== "awaiting_approval"
      ? h("progress", { max: 1, value: job.progress, "aria-label": t("case.progress", {
        id: job.id }) }) : null,
    job.stage ? h("span", { class: "muted" }, `${job.stage} · ${formatNumber(job.progress * 100)}%`) : null,
    job.message ? h("p", { class: job.status === "failed" ? "error" : "muted" }, job.message) : null,
    job.status === "done" ? h("p", {}, h("a", { href: download, download: "", class: "button" },
      t("case.download", { size: formatBytes(job.size_bytes) })), " ",
    h("code", { title: job.bundle_sha256 }, shortHash(job.bundle_sha256))) : null,
    job.status === "awaiting_approval" && store.may("approve_export") && onApprove
      ? h("button", { type: "button", onclick: () => onApprove(job) }, t("case.approve")) : null);
}

export async function render({ params }) {
  const caseId = Number(params.id);
  const error = errorLine();
  let detail;
  try {
    detail = await api.get(`/api/cases/${caseId}`);
  } catch (problem) {
    error.show(problem);
    return h("div", {}, pageHead("case.title"), error);
  }
  const exportsList = h("ul", { class: "exports", "aria-live": "polite" });
  const exportError = errorLine();
  let timer = null;
  let jobs = [];

  async function refresh() {
    try {
      jobs = await api.get(`/api/cases/${caseId}/exports`);
      clear(exportsList, jobs.length ? jobs.map((job) => exportRow(caseId, job, approve))
        : h("li", { class: "muted" }, t("case.no_exports")));
      fillTransfer();
      if (jobs.some((job) => job.status === "queued" || job.status === "running")) {
        timer = setTimeout(refresh, POLL_MS);
      }
    } catch (problem) { exportError.show(problem); }
  }
  async function approve(job) {
    try {
      await api.post(`/api/cases/${caseId}/exports/${job.id}/approve`);
      refresh();
    } catch (problem) { exportError.show(problem); }
  }

  // the report's language (Ukrainian unless English is chosen) and the trusted timestamp
  const exportLang = h("select", { id: "export-lang" },
    h("option", { value: "uk", lang: "uk" }, t("lang.uk")),
    h("option", { value: "en", lang: "en" }, t("lang.en")));
  const noTimestamp = h("input", { type: "checkbox", id: "export-no-timestamp",
    "aria-describedby": "export-no-timestamp-hint" });
  const exportButton = h("button", { type: "button", class: "primary", id: "start-export",
    onclick: () => busy(exportButton, exportError, async () => {
      await api.post(`/api/cases/${caseId}/exports`, { lang: exportLang.value,
        no_timestamp: noTimestamp.checked });
      clearTimeout(timer);
      await refresh();
    }) }, t("case.export"));
  const exportOptions = h("div", { class: "export-options" },
    field(t("case.export_lang"), exportLang),
    h("div", { class: "field" },
      h("label", {}, noTimestamp, " ", t("case.no_timestamp")),
      h("p", { class: "hint", id: "export-no-timestamp-hint" }, t("case.no_timestamp_hint"))),
    exportButton);

  const shareName = h("input", { id: "share-user", required: true, autocomplete: "off" });
  const shareStatus = statusLine();
  const shareError = errorLine();
  const shareButton = h("button", { type: "submit" }, t("case.share_button"));
  const shareForm = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(shareButton, shareError, async () => {
      await api.post(`/api/cases/${caseId}/shares`, { username: shareName.value.trim() });
      shareStatus.textContent = t("case.shared", { name: shareName.value.trim() });
    });
  } }, h("h2", {}, t("case.share")), field(t("case.share_user"), shareName, t("case.share_hint")),
  shareButton, shareStatus, shareError);

  const recipient = h("input", { id: "transfer-recipient", required: true });
  const transferExport = h("select", { id: "transfer-export", required: true });
  const transferNote = h("input", { id: "transfer-note" });
  const transferStatus = statusLine();
  const transferError = errorLine();
  const transferButton = h("button", { type: "submit" }, t("case.transfer_button"));
  function fillTransfer() {
    const done = jobs.filter((job) => job.status === "done");
    const chosen = transferExport.value;
    clear(transferExport, done.map((job) => h("option", { value: job.id,
      selected: String(job.id) === chosen }, t("case.export_n", { id: job.id }))));
  }
  const transferForm = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(transferButton, transferError, async () => {
      await api.post(`/api/cases/${caseId}/transfers`, { recipient: recipient.value.trim(),
        export_id: Number(transferExport.value), note: transferNote.value });
      transferStatus.textContent = t("case.transferred", { name: recipient.value.trim() });
      const again = await api.get(`/api/cases/${caseId}`);
      clear(custodyBox, custodyTimeline(again));
    });
  } }, h("h2", {}, t("case.transfer")), field(t("case.transfer_recipient"), recipient),
  field(t("case.transfer_export"), transferExport), field(t("case.note"), transferNote),
  transferButton, transferStatus, transferError);

  const custodyBox = h("div", {}, custodyTimeline(detail));
  const manage = store.may("manage_cases");
  const mayExport = store.may("export");
  await refresh();
  return {
    el: h("div", { class: "case-page" }, pageHead("case.title",
      h("p", { class: "lead" }, `${detail.number} · ${detail.title}`)), error,
    h("dl", { class: "facts" }, h("dt", {}, t("cases.legal_basis")), h("dd", {}, detail.legal_basis),
      h("dt", {}, t("cases.agency")), h("dd", {}, detail.agency),
      h("dt", {}, t("cases.status")), h("dd", {}, t(`case_status.${detail.status}`))),
    h("div", { class: "two-col" },
      h("section", {}, clipsTable(detail),
        h("h2", {}, t("case.exports")), mayExport ? exportOptions : null, exportError,
        exportsList,
        h("h2", {}, t("case.custody")), custodyBox),
      h("aside", {}, manage ? shareForm : null, mayExport ? transferForm : null))),
    cleanup: () => clearTimeout(timer),
  };
}
