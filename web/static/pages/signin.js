// Sign-in: a cookie session (HttpOnly) plus the CSRF token the API client echoes.

import { h, field } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../api.js";
import { errorLine, pageHead } from "../ui.js";
import { signedIn } from "../app.js";

export function render({ query }) {
  const error = errorLine();
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password",
    autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, t("signin.submit"));
  const form = h("form", { class: ["card", "narrow"], onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.show(null);
    try {
      await api.post("/api/auth/login", { username: username.value, password: password.value });
      signedIn(await api.get("/api/auth/me"), query.get("next"));
    } catch (problem) {
      error.show(problem);
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  } }, field(t("signin.username"), username), field(t("signin.password"), password), submit);
  const expired = query.get("expired") ? h("p", { class: "notice" }, t("signin.expired")) : null;
  setTimeout(() => username.focus(), 0);
  return h("section", { class: "signin" }, pageHead("signin.title"), expired,
    h("p", { class: "lead" }, t("signin.lead")), form, error);
}
