// Cases: the investigator's list (own, shared, and the agency's for supervisors) and a
// form to open a new one.

import { h, field, clear } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, pageHead, timeEl, busy } from "../ui.js";

function table(cases) {
  if (!cases.length) return h("p", { class: "muted" }, t("cases.none"));
  return h("table", {}, h("caption", { class: "sr-only" }, t("cases.title")),
    h("thead", {}, h("tr", {}, ["cases.number", "cases.case_title", "cases.agency",
      "cases.status", "cases.created"].map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, cases.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `#/cases/${c.id}` }, c.number)), h("td", {}, c.title),
      h("td", {}, c.agency), h("td", {}, t(`case_status.${c.status}`)),
      h("td", {}, timeEl(c.created_at))))));
}

export async function render({ navigate }) {
  const error = errorLine();
  const list = h("div", {});
  try {
    clear(list, table(await api.get("/api/cases")));
  } catch (problem) {
    error.show(problem);
  }
  const number = h("input", { name: "number", required: true, maxlength: 64 });
  const title = h("input", { name: "title", required: true });
  const basis = h("input", { name: "legal_basis", required: true });
  const createError = errorLine();
  const button = h("button", { type: "submit", class: "primary" }, t("cases.create"));
  const form = h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    busy(button, createError, async () => {
      const created = await api.post("/api/cases", { number: number.value.trim(),
        title: title.value.trim(), legal_basis: basis.value.trim() });
      navigate(`/cases/${created.id}`);
    });
  } }, h("h2", {}, t("cases.new")), field(t("cases.number"), number),
  field(t("cases.case_title"), title), field(t("cases.legal_basis"), basis, t("cases.basis_hint")),
  button, createError);
  return h("div", {}, pageHead("cases.title"), error,
    h("div", { class: "two-col" }, h("section", {}, list), h("aside", {}, form)));
}
