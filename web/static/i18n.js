// Message catalogs (web/i18n/<lang>.json) and locale-aware formatting. Ukrainian is the
// default; the choice is kept in the store and reflected in <html lang>.

import * as store from "./store.js";

export const LANGUAGES = ["uk", "en"];
const LOCALES = { uk: "uk-UA", en: "en-GB" };
let catalog = {};

export async function loadLanguage(lang) {
  const chosen = LANGUAGES.includes(lang) ? lang : "uk";
  const response = await fetch(`/i18n/${chosen}.json`, { credentials: "same-origin" });
  catalog = await response.json();
  document.documentElement.lang = chosen;
  store.set("lang", chosen);
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key);
}

/** The message for key, with {name} placeholders filled from params. */
export function t(key, params = {}) {
  const message = has(key) ? catalog[key] : key;
  return message.replace(/\{(\w+)\}/g, (whole, name) =>
    (name in params ? String(params[name]) : whole));
}

/** The sentence to show for an ApiError: the catalog's for its code, else the server's. */
export function errorText(error) {
  const key = `error.${error.code}`;
  if (has(key)) return t(key);
  return error.message || t("error.unknown");
}

function locale() {
  return LOCALES[store.get("lang")] || LOCALES.uk;
}

function parts(date, options) {
  return new Intl.DateTimeFormat(locale(), options).format(date);
}

/** "25.01.2026 21:00" in the camera's time zone (uk), seconds optional. */
export function formatTime(value, timeZone, { seconds = false } = {}) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const zone = timeZone || undefined;
  const day = parts(date, { timeZone: zone, day: "2-digit", month: "2-digit", year: "numeric" });
  const time = parts(date, { timeZone: zone, hour: "2-digit", minute: "2-digit",
    second: seconds ? "2-digit" : undefined, hourCycle: "h23" });
  return `${day} ${time}`;
}

/** "2026-01-25 19:00:00 UTC", the hover text of every shown time. */
export function formatUtc(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function formatNumber(value, digits = 0) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits,
    minimumFractionDigits: digits }).format(value);
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const mib = bytes / (1024 * 1024);
  return mib >= 1 ? t("unit.mib", { n: formatNumber(mib, 1) })
    : t("unit.kib", { n: formatNumber(bytes / 1024, 1) });
}
