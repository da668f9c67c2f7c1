// The only place that talks to the server: JSON in and out, the CSRF header on writes, and one
// error type whose message and hint are shown in place.

export class ApiError extends Error {
  constructor(status, code, message, hint, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.line = details.line ?? null; // where a .dashrc went wrong (422 of the .dashrc routes)
    this.key = details.key ?? null;
  }
}

let csrf = "";
/** Set by main.js from GET /ui/session. */
export function setCsrf(token) {
  csrf = token || "";
}

/** Called on 401: main.js shows the login page. */
let onUnauthenticated = () => {};
export function whenUnauthenticated(fn) {
  onUnauthenticated = fn;
}

/**
 * @param {string} path
 * @param {{method?: string, body?: any, query?: Record<string, any>, signal?: AbortSignal, quiet401?: boolean}} [opts]
 */
export async function api(path, opts = {}) {
  const method = opts.method || "GET";
  const headers = {Accept: "application/json"};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    const qs = queryString(opts.query);
    response = await fetch(qs && path.includes("?") ? `${path}&${qs.slice(1)}` : path + qs, {
      method, headers, credentials: "same-origin", signal: opts.signal,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", "the server did not answer", "is `ml-dash serve` still running?");
  }
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!response.ok) {
    const e = (doc && doc.error) || {};
    if (response.status === 401 && !opts.quiet401) onUnauthenticated();
    throw new ApiError(response.status, e.code || "http", e.message || `${response.status} ${response.statusText}`,
      e.hint || "", e);
  }
  return doc;
}

/** @param {Record<string, any> | undefined} query */
export function queryString(query) {
  if (!query) return "";
  const parts = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(Array.isArray(value) ? value.join(",") : value)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}
