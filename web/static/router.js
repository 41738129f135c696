// A small hash router: "#/path/with/:params?query". Every page has its own URL, so a
// moment, a case or an audit query can be bookmarked; back and forward re-render.

const routes = [];
let renderRoute = () => {};

/** pattern like "/cases/:id"; load returns the page module (a dynamic import). */
export function route(pattern, load, options = {}) {
  const names = [];
  const regex = new RegExp(`^${pattern.replace(/:(\w+)/g, (whole, name) => {
    names.push(name);
    return "([^/]+)";
  })}$`);
  routes.push({ pattern, regex, names, load, ...options });
}

export function current() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  for (const entry of routes) {
    const match = entry.regex.exec(path);
    if (match) {
      const params = Object.fromEntries(entry.names.map((n, i) =>
        [n, decodeURIComponent(match[i + 1])]));
      return { entry, path, params, query: new URLSearchParams(search) };
    }
  }
  return { entry: null, path, params: {}, query: new URLSearchParams(search) };
}

/** Go to path (with an optional query object); replace keeps the history entry. */
export function navigate(path, queryParams = null, { replace = false } = {}) {
  let target = `#${path}`;
  if (queryParams) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(queryParams)) {
      if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
      else if (value !== undefined && value !== null && value !== "") search.set(key, value);
    }
    if (search.toString()) target += `?${search}`;
  }
  if (replace) {
    history.replaceState(null, "", target);
    renderRoute();
  } else if (window.location.hash === target) {
    renderRoute();
  } else {
    window.location.hash = target;
  }
}

export function href(path) {
  return `#${path}`;
}

export function start(render) {
  renderRoute = render;
  window.addEventListener("hashchange", render);
  render();
}
