// Verify a bundle: its SHA-256 is computed here with WebCrypto; the checks (fixity,
// completeness, signature, custody chain, provenance) run on the server (POST
// /api/verify), since unpacking a zip and checking the Ed25519 signature chain is not
// done in the browser yet. The page says which part ran where, with the verdict on top.

import { h, field, clear } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, statusLine, pageHead, busy } from "../ui.js";

async function browserSha256(file) {
  if (!window.isSecureContext || !crypto.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function verdictOf(report) {
  if (report.verdict) return String(report.verdict).toLowerCase();
  return report.ok ? "valid" : "invalid";
}

/** The verdict on top, then every check grouped by what it checks. */
export function verdictPanel(report, browserHash) {
  const verdict = verdictOf(report);
  const groups = new Map();
  for (const check of report.checks) {
    if (!groups.has(check.name)) groups.set(check.name, []);
    groups.get(check.name).push(check);
  }
  const trustedTime = (r) => r.trusted_time
    ? t("verify.trusted_time_value", { time: r.trusted_time.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, ""), tsa: r.timestamp_authority })
    : r.timestamp_authority ? t("verify.trusted_time_untrusted", { tsa: r.timestamp_authority })
      : t("verify.trusted_time_none");
  const hashLine = browserHash === null ? t("verify.hash_server_only")
    : browserHash === report.bundle_sha256 ? t("verify.hash_match") : t("verify.hash_mismatch");
  return h("section", { class: ["verdict", `verdict-${verdict}`], "aria-labelledby": "verdict" },
    h("h2", { id: "verdict" }, t(`verdict.${verdict}`)),
    report.summary ? h("p", {}, report.summary) : null,
    h("dl", { class: "facts" },
      h("dt", {}, t("verify.case")), h("dd", {}, report.case_number || "—"),
      h("dt", {}, t("verify.signer")), h("dd", { class: "mono" }, report.signer_fingerprint || "—"),
      h("dt", {}, t("verify.sha256")), h("dd", { class: "mono" }, report.bundle_sha256),
      h("dt", {}, t("verify.how")), h("dd", {}, hashLine),
      h("dt", {}, t("verify.trusted_time")), h("dd", { class: "trusted-time" }, trustedTime(report))),
    [...groups.entries()].map(([name, checks]) => {
      const failed = checks.filter((c) => !c.passed).length;
      return h("details", { class: "check-group", open: failed > 0 },
        h("summary", {}, h("span", { class: failed ? "bad" : "good" },
          failed ? t("verify.group_failed", { n: failed }) : t("verify.group_ok")), " ", name),
        h("ul", {}, checks.map((c) => h("li", { class: c.passed ? "good" : "bad" },
          h("span", { class: "sr-only" }, t(c.passed ? "verify.passed" : "verify.failed")),
          c.detail))));
    }));
}

export function render() {
  const error = errorLine();
  const status = statusLine();
  const result = h("div", {});
  const input = h("input", { type: "file", accept: ".zip,application/zip", id: "bundle-file" });
  const button = h("button", { type: "submit", class: "primary" }, t("verify.submit"));
  const fingerprint = h("input", { id: "fingerprint", autocomplete: "off", class: "mono" });
  let dropped = null;

  async function check(file) {
    clear(result);
    status.textContent = t("verify.hashing");
    const hash = await browserSha256(file);
    status.textContent = hash ? t("verify.hashed", { hash }) : t("verify.no_webcrypto");
    const form = new FormData();
    form.append("bundle", file);
    if (fingerprint.value.trim()) form.append("fingerprint", fingerprint.value.trim());
    const report = await api.upload("/api/verify", form);
    clear(result, verdictPanel(report, hash));
  }
  const form = h("form", { class: ["card", "drop"], onsubmit: (event) => {
    event.preventDefault();
    const file = dropped || input.files[0];
    dropped = null;
    if (file) busy(button, error, () => check(file));
  } }, field(t("verify.bundle"), input, t("verify.bundle_hint")),
  field(t("verify.fingerprint"), fingerprint, t("verify.fingerprint_hint")), button);
  form.addEventListener("dragover", (event) => event.preventDefault());
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    dropped = event.dataTransfer.files[0];
    if (dropped) form.requestSubmit();
  });
  return h("div", {}, pageHead("verify.title"), h("p", { class: "lead" }, t("verify.lead")),
    form, status, error, result);
}
