// Oko web UI: sign in (cookie session + CSRF header), search with a purpose, play moments.
"use strict";

const CSRF_COOKIE = "oko_csrf";
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const match = document.cookie.split("; ").find((c) => c.startsWith(CSRF_COOKIE + "="));
  return match ? decodeURIComponent(match.split("=")[1]) : "";
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    // Oko errors: {detail: "sentence", details: [...]}; request validation: {detail: [{msg}]}
    const detail = typeof data.detail === "string"
      ? [data.detail, ...(data.details || [])].join("\n")
      : (data.detail || []).map((d) => d.msg).join("; ") || response.statusText;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

function showError(message) { $("error").textContent = message || ""; }

function showSignedIn(user) {
  $("login-view").hidden = true;
  $("whoami").hidden = false;
  $("whoami-name").textContent = `${user.full_name || user.username} (${user.role}, ${user.agency})`;
  const canSearch = user.permissions.includes("search");
  $("search-view").hidden = !canSearch;
  if (!canSearch) showError(`Your role (${user.role}) may not search footage.`);
  if (canSearch) loadCameras();
}

function showSignedOut() {
  $("login-view").hidden = false;
  $("whoami").hidden = true;
  $("search-view").hidden = true;
  $("results").replaceChildren();
  $("player").removeAttribute("src");
}

async function loadCameras() {
  const select = document.querySelector("#search-form select[name=cameras]");
  try {
    const cameras = await api("GET", "/api/cameras");
    select.replaceChildren(...cameras.map((camera) => {
      const option = document.createElement("option");
      option.value = camera.id;
      option.textContent = `${camera.id}: ${camera.name}`;
      return option;
    }));
  } catch (error) { showError(error.message); }
}

function localToIso(value) {
  // datetime-local gives "YYYY-MM-DDTHH:MM[:SS]" without a zone: the API reads it as the
  // cameras' local time, so it is sent as is
  return value || null;
}

function renderMoment(moment) {
  const item = document.createElement("li");
  item.tabIndex = 0;
  const image = document.createElement("img");
  image.src = moment.thumbnail_url;
  image.alt = `Frame from ${moment.camera_name}`;
  image.loading = "lazy";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${moment.camera_name} (${moment.district}) · ` +
    `${moment.start_local.replace("T", " ").slice(0, 19)} · score ${moment.score.toFixed(3)}`;
  item.append(image, meta);
  const play = () => playMoment(moment);
  item.addEventListener("click", play);
  item.addEventListener("keydown", (event) => { if (event.key === "Enter") play(); });
  return item;
}

function playMoment(moment) {
  const player = $("player");
  player.src = `${moment.video_url}#t=${moment.offset_in_segment_s.toFixed(2)}`;
  $("player-caption").textContent =
    `${moment.camera_name}: ${moment.start_local.replace("T", " ").slice(0, 19)}`;
  $("player-box").hidden = false;
  player.play().catch(() => {});
}

async function onSearch(event) {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  const body = {
    text: form.get("text") || null,
    purpose: form.get("purpose"),
    cameras: form.getAll("cameras"),
    districts: form.get("district") ? [form.get("district")] : [],
    from: localToIso(form.get("from")),
    to: localToIso(form.get("to")),
    day_phase: form.get("day_phase") || null,
    k: Number(form.get("k")) || 50,
  };
  $("search-status").textContent = "Searching…";
  try {
    const result = await api("POST", "/api/search", body);
    const moments = result.moments || [];
    $("results").replaceChildren(...moments.map(renderMoment));
    $("search-status").textContent = `${moments.length} moment(s)` +
      (result.provenance && result.provenance.truncated ? " (more frames matched than ranked)" : "");
  } catch (error) {
    $("search-status").textContent = "";
    if (error.status === 401) showSignedOut();
    showError(error.message);
  }
}

async function onLogin(event) {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  try {
    await api("POST", "/api/auth/login",
      { username: form.get("username"), password: form.get("password") });
    event.target.reset();
    showSignedIn(await api("GET", "/api/auth/me"));
  } catch (error) { showError(error.message); }
}

async function onLogout() {
  try { await api("POST", "/api/auth/logout"); } catch (error) { /* already signed out */ }
  showSignedOut();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", onLogin);
  $("search-form").addEventListener("submit", onSearch);
  $("logout").addEventListener("click", onLogout);
  $("player").addEventListener("error", () => {
    if ($("player").getAttribute("src")) {
      showError("This video cannot be played here: the session may have ended, or the " +
        "browser cannot decode this segment's format.");
    }
  });
  try { showSignedIn(await api("GET", "/api/auth/me")); } catch (error) { showSignedOut(); }
});
