// Oko web app: boots the language and session, draws the frame (navigation, language,
// theme) and renders the page the URL names. Pages live in pages/, one module each.

import { h, clear } from "./dom.js";
import * as store from "./store.js";
import { t, loadLanguage, LANGUAGES } from "./i18n.js";
import { api, setUnauthorizedHandler } from "./api.js";
import { route, start, current, navigate, href } from "./router.js";

// path, module, the permission it needs (null: any signed-in user), its nav label
const PAGES = [
  ["/signin", () => import("./pages/signin.js"), "public", null],
  ["/search", () => import("./pages/search.js"), "search", "nav.search"],
  ["/plates", () => import("./pages/plates.js"), "search", "nav.plates"],
  ["/plates/:plate", () => import("./pages/plates.js"), "search", null],
  ["/moment/:frame", () => import("./pages/moment.js"), "view_footage", null],
  ["/cases", () => import("./pages/cases.js"), "manage_cases", "nav.cases"],
  ["/cases/:id", () => import("./pages/case.js"), "read_cases", null],
  ["/cases/:id/redact/:clip", () => import("./pages/redaction.js"), "export", null],
  ["/inbox", () => import("./pages/inbox.js"), "receive_bundle", "nav.inbox"],
  ["/audit", () => import("./pages/audit.js"), "read_audit", "nav.audit"],
  ["/admin", () => import("./pages/admin.js"), "manage_users", "nav.admin"],
  ["/watchlist", () => import("./pages/plates.js").then((m) => ({ render: m.renderWatchlist })),
    "manage_watchlist", "nav.watchlist"],
  ["/verify", () => import("./pages/verify.js"), "verify", "nav.verify"],
];
for (const [path, load, permission, nav] of PAGES) route(path, load, { permission, nav });

const content = () => document.getElementById("content");
let cleanup = null;

function applyTheme() {
  document.documentElement.dataset.theme = store.get("theme") === "light" ? "light" : "dark";
}

function homePath() {
  const first = PAGES.find(([, , permission, nav]) => nav && store.may(permission));
  return first ? first[0] : "/verify";
}

function header() {
  const user = store.get("user");
  const here = current().path;
  const links = user ? PAGES.filter(([, , permission, nav]) => nav && store.may(permission))
    .map(([path, , , nav]) => h("li", {}, h("a", {
      href: href(path), "aria-current": here.startsWith(path) ? "page" : null }, t(nav))))
    : [];
  const language = h("select", { id: "lang", onchange: async (event) => {
    await loadLanguage(event.target.value);
    render();
  } }, LANGUAGES.map((code) => h("option", { value: code, selected: store.get("lang") === code },
    t(`lang.${code}`))));
  const theme = h("button", { type: "button", class: "ghost", id: "theme",
    "aria-pressed": store.get("theme") === "light" ? "true" : "false",
    onclick: () => {
      store.set("theme", store.get("theme") === "light" ? "dark" : "light");
      applyTheme();
      render();
    } }, t(store.get("theme") === "light" ? "theme.dark" : "theme.light"));
  const who = user ? [
    h("span", { class: "who" }, `${user.full_name || user.username} · ${t(`role.${user.role}`)}`),
    h("button", { type: "button", class: "ghost", id: "signout", onclick: signOut },
      t("nav.signout")),
  ] : [];
  return [
    h("a", { class: "skip", href: "#content", onclick: (event) => {
      event.preventDefault();
      content().focus();
    } }, t("nav.skip")),
    h("a", { class: "brand", href: href(homePath()) }, t("app.name")),
    h("nav", { "aria-label": t("nav.label") }, h("ul", {}, links)),
    h("div", { class: "tools" }, h("label", { for: "lang", class: "sr-only" }, t("lang.label")),
      language, theme, who),
  ];
}

async function signOut() {
  try { await api.post("/api/auth/logout"); } catch (error) { /* already signed out */ }
  store.set("user", null);
  store.set("lastSearch", null);
  store.set("cameras", null);
  navigate("/signin");
}

async function loadCameras() {
  if (store.get("cameras") === null && store.may("list_cameras")) {
    try { store.set("cameras", await api.get("/api/cameras")); } catch (error) {
      store.set("cameras", []);
    }
  }
}

async function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  const { entry, params, query, path } = current();
  const user = store.get("user");
  if (!entry || (path === "/")) {
    navigate(user ? homePath() : "/signin", null, { replace: true });
    return;
  }
  if (entry.permission !== "public" && !user) {
    navigate("/signin", { next: window.location.hash.slice(1) }, { replace: true });
    return;
  }
  clear(document.getElementById("top"), header());
  const main = content();
  if (entry.permission !== "public" && !store.may(entry.permission)) {
    document.title = `${t("refused.title")} · ${t("app.name")}`;
    clear(main, h("h1", {}, t("refused.title")), h("p", { class: "error", role: "alert" },
      t("refused.role", { role: t(`role.${user.role}`) })),
      h("p", {}, h("a", { href: href(homePath()) }, t("refused.home"))));
    return;
  }
  await loadCameras();
  const module = await entry.load();
  const view = await module.render({ params, query, navigate, rerender: render });
  if (current().path !== path) return; // the page navigated away while loading
  clear(main, view.el || view);
  cleanup = view.cleanup || null;
  main.focus({ preventScroll: true });
}

async function boot() {
  applyTheme();
  await loadLanguage(store.get("lang"));
  setUnauthorizedHandler(() => {
    if (store.get("user")) {
      store.set("user", null);
      navigate("/signin", { next: window.location.hash.slice(1), expired: "1" });
    }
  });
  try { store.set("user", await api.get("/api/auth/me")); } catch (error) { store.set("user", null); }
  start(render);
}

export function signedIn(user, next) {
  store.set("user", user);
  store.set("cameras", null);
  navigate(next || homePath(), null, { replace: true });
}

boot();
