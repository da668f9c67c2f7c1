// Hash routing: the address holds the whole view state, so every page is a deep link.
//   #/login                      the login page (query: error)
//   #/                           home: namespaces (owner) or the session's projects
//   #/ns/{ns}                    projects of a namespace
//   #/ns/{ns}/p/{project}        experiment table   (query: folder q status tag sort order page cols)
//   #/ns/{ns}/p/{project}/e/{id}/{tab}             (query: m x log smooth zoom level q file)
//   #/ns/{ns}/p/{project}/compare  compare runs    (query: ids folder m x group band log smooth diff pc sx sy)

/** @typedef {"login"|"home"|"namespace"|"project"|"experiment"|"compare"|"notfound"} View */
/** @typedef {"overview"|"params"|"metrics"|"logs"|"files"} Tab */
/**
 * @typedef {object} RouteState
 * @property {View} view
 * @property {string | null} [ns]
 * @property {string | null} [project]
 * @property {string | null} [id]
 * @property {Tab | null} [tab]
 * @property {Record<string, string>} [query]
 */

export const TABS = /** @type {const} */ (["overview", "params", "metrics", "logs", "files"]);

/** Query keys in the order they are written, per view; other keys follow alphabetically. */
const QUERY_ORDER = {
  login: ["error"],
  project: ["folder", "q", "status", "tag", "sort", "order", "page", "cols"],
  experiment: ["m", "x", "log", "smooth", "zoom", "level", "q", "file"],
  compare: ["ids", "folder", "m", "x", "group", "band", "log", "smooth", "diff", "pc", "sx", "sy"],
};

/** @param {string} s */
function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a malformed escape is shown as typed rather than breaking the page
  }
}

/** Path components: everything but unreserved characters escaped (a "/" in a name stays one segment). */
const encodePart = encodeURIComponent;

/** Query values keep "," "/" ":" readable (comma lists, folders, zoom ranges). */
const encodeValue = (/** @type {string} */ s) =>
  encodeURIComponent(s).replace(/%2C/gi, ",").replace(/%2F/gi, "/").replace(/%3A/gi, ":");

/**
 * @param {string} text the part after "?"
 * @returns {Record<string, string>}
 */
function parseQuery(text) {
  /** @type {Record<string, string>} */
  const query = {};
  for (const pair of text.split("&")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    const key = decode((eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, " "));
    query[key] = eq < 0 ? "" : decode(pair.slice(eq + 1).replace(/\+/g, " "));
  }
  return query;
}

/**
 * @param {Record<string, unknown> | undefined} query
 * @param {string[]} order
 */
function formatQuery(query, order) {
  if (!query) return "";
  const keys = Object.keys(query).filter((k) => query[k] !== undefined && query[k] !== null && query[k] !== "");
  keys.sort((a, b) => {
    const ia = order.indexOf(a);
    const ib = order.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib);
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const text = keys.map((k) => `${encodeValue(k)}=${encodeValue(String(query[k]))}`).join("&");
  return text ? `?${text}` : "";
}

/**
 * @param {string} hash location.hash ("#/ns/a/p/b?q=x"), with or without "#"
 * @returns {RouteState}
 */
export function parseHash(hash) {
  let text = hash.startsWith("#") ? hash.slice(1) : hash;
  const qi = text.indexOf("?");
  const query = qi < 0 ? {} : parseQuery(text.slice(qi + 1));
  if (qi >= 0) text = text.slice(0, qi);
  if (text === "" || text === "/") return state("home", {query});
  if (!text.startsWith("/")) return {view: "notfound"};
  const parts = text.slice(1).split("/");
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop(); // a trailing slash
  if (parts.some((p) => p === "")) return {view: "notfound"};
  const [k0, ns, k1, project, k2, id, tab, ...rest] = parts.map(decode);
  const n = parts.length;
  if (n === 1 && k0 === "login") return state("login", {query});
  if (k0 !== "ns") return {view: "notfound"};
  if (n === 2) return state("namespace", {ns, query});
  if (k1 !== "p") return {view: "notfound"};
  if (n === 4) return state("project", {ns, project, query});
  if (n === 5 && k2 === "compare") return state("compare", {ns, project, query});
  if (k2 !== "e" || n < 6 || rest.length > 0) return {view: "notfound"};
  const t = tab ?? "overview";
  if (!TABS.includes(/** @type {Tab} */ (t))) return {view: "notfound"};
  return state("experiment", {ns, project, id, tab: /** @type {Tab} */ (t), query});
}

/**
 * @param {View} view
 * @param {Partial<RouteState>} fields
 * @returns {RouteState}
 */
function state(view, fields) {
  return {view, ns: null, project: null, id: null, tab: null, query: {}, ...fields};
}

/**
 * @param {RouteState} s a state; fields a view does not use are ignored
 * @returns {string} the hash, starting with "#"
 */
export function formatHash(s) {
  const q = s.query;
  switch (s.view) {
    case "login":
      return `#/login${formatQuery(q, QUERY_ORDER.login)}`;
    case "home":
      return `#/${formatQuery(q, [])}`;
    case "namespace":
      return `#/ns/${encodePart(need(s.ns, "ns"))}${formatQuery(q, [])}`;
    case "project":
      return `#/ns/${encodePart(need(s.ns, "ns"))}/p/${encodePart(need(s.project, "project"))}` +
        formatQuery(q, QUERY_ORDER.project);
    case "compare":
      return `#/ns/${encodePart(need(s.ns, "ns"))}/p/${encodePart(need(s.project, "project"))}/compare` +
        formatQuery(q, QUERY_ORDER.compare);
    case "experiment":
      return `#/ns/${encodePart(need(s.ns, "ns"))}/p/${encodePart(need(s.project, "project"))}` +
        `/e/${encodePart(need(s.id, "id"))}/${s.tab || "overview"}${formatQuery(q, QUERY_ORDER.experiment)}`;
    default:
      return "#/";
  }
}

/**
 * @param {string | null | undefined} v
 * @param {string} name
 * @returns {string}
 */
function need(v, name) {
  if (v === null || v === undefined || v === "") throw new Error(`formatHash: '${name}' is required`);
  return v;
}
