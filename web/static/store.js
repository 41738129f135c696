// The app's one store: the signed-in user, language, theme, the last purpose and the last
// search answer (for the moment view's strip and previous/next). Persisted keys live in
// localStorage under "oko.*"; everything else is memory only.

const PERSISTED = ["lang", "theme", "lastPurpose"];
const state = {
  user: null,
  lang: "uk",
  theme: "dark",
  lastPurpose: "",
  lastSearch: null,
  cameras: null,
};
const listeners = new Set();

for (const key of PERSISTED) {
  try {
    const saved = localStorage.getItem(`oko.${key}`);
    if (saved !== null) state[key] = saved;
  } catch (error) { /* storage disabled: defaults */ }
}

export function get(key) {
  return state[key];
}

export function set(key, value) {
  state[key] = value;
  if (PERSISTED.includes(key)) {
    try { localStorage.setItem(`oko.${key}`, value); } catch (error) { /* ignore */ }
  }
  for (const listener of listeners) listener(key, value);
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function may(permission) {
  return Boolean(state.user && state.user.permissions.includes(permission));
}
