// The prosecutor's inbox: cases shared with them, their finished bundles to download, and
// "confirm receipt": upload the bundle received, which the server verifies and records.

import { h, field } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, pageHead, busy } from "../ui.js";
import { exportRow } from "./case.js";
import { verdictPanel } from "./verify.js";

function receiptForm(item) {
  const file = h("input", { type: "file", accept: ".zip,application/zip", required: true,
    id: `receipt-file-${item.id}` });
  const error = errorLine();
  const result = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, t("inbox.confirm"));
  return h("form", { class: "receipt", onsubmit: (event) => {
    event.preventDefault();
    busy(button, error, async () => {
      const form = new FormData();
      form.append("bundle", file.files[0]);
      const verification = await api.upload(`/api/cases/${item.id}/receipts`, form);
      result.replaceChildren(h("p", { class: "notice" }, t("inbox.recorded")),
        verdictPanel(verification, null));
    });
  } }, field(t("inbox.bundle"), file, t("inbox.bundle_hint")), button, error, result);
}

export async function render() {
  const error = errorLine();
  let cases = [];
  try { cases = await api.get("/api/cases"); } catch (problem) { error.show(problem); }
  const items = await Promise.all(cases.map(async (item) => {
    let jobs = [];
    try { jobs = await api.get(`/api/cases/${item.id}/exports`); } catch (problem) { jobs = []; }
    const done = jobs.filter((job) => job.status === "done");
    return h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/cases/${item.id}` }, `${item.number} · ${item.title}`)),
      h("p", { class: "muted" }, t("inbox.from", { agency: item.agency })),
      done.length ? h("ul", { class: "exports" }, done.map((job) => exportRow(item.id, job, null)))
        : h("p", { class: "muted" }, t("inbox.no_bundles")),
      receiptForm(item));
  }));
  return h("div", {}, pageHead("inbox.title"), h("p", { class: "lead" }, t("inbox.lead")), error,
    items.length ? h("ul", { class: "inbox" }, items) : h("p", { class: "muted" }, t("inbox.none")));
}
