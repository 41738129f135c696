// The one API client: JSON in and out, the session cookie plus the CSRF header on unsafe
// requests, and every error answer ({detail, code, details}) raised as an ApiError.

export const CSRF_COOKIE = "oko_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

export class ApiError extends Error {
  constructor(status, code, detail, details = []) {
    super(detail);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function csrfToken() {
  const prefix = `${CSRF_COOKIE}=`;
  const match = document.cookie.split("; ").find((c) => c.startsWith(prefix));
  return match ? decodeURIComponent(match.slice(prefix.length)) : "";
}

let onUnauthorized = () => {};
/** Called with the error when any request answers 401 (the session ended). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * request("POST", "/api/search", {json: body}) -> parsed JSON;
 * {form: FormData} sends multipart; {blob: true} returns {blob, filename}.
 */
export async function request(method, path, { json, form, blob = false } = {}) {
  const headers = { Accept: blob ? "*/*" : "application/json" };
  if (method !== "GET" && method !== "HEAD") headers[CSRF_HEADER] = csrfToken();
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, "network", String(error));
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    const error = new ApiError(response.status, data.code || `http_${response.status}`,
      typeof data.detail === "string" ? data.detail : response.statusText,
      Array.isArray(data.details) ? data.details : []);
    if (response.status === 401 && !path.startsWith("/api/auth/login")) onUnauthorized(error);
    throw error;
  }
  if (blob) {
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    return { blob: await response.blob(), filename: named ? named[1] : "download" };
  }
  return response.json();
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, json) => request("POST", path, { json: json ?? {} }),
  patch: (path, json) => request("PATCH", path, { json }),
  put: (path, json) => request("PUT", path, { json }),
  upload: (path, form) => request("POST", path, { form }),
  download: (path) => request("GET", path, { blob: true }),
};

/** "?a=1&b=2" from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The source the search engine names for the filter the user's access imposes. */
export const POLICY_SOURCE = "access policy";
