// Entry point: the session, the header, and which view the address shows.
import "uplot/dist/uPlot.min.css";
import {api, setCsrf, whenUnauthenticated} from "./api.js";
import {errorBox, fill, h} from "./dom.js";
import {formatHash, parseHash} from "./lib/route.js";
import {renderCompare} from "./views/compare.js";
import {renderExperiment} from "./views/experiment.js";
import {renderHome, renderNamespace} from "./views/home.js";
import {renderLogin} from "./views/login.js";
import {renderProject} from "./views/project.js";

const root = /** @type {HTMLElement} */ (document.getElementById("main"));
const crumbs = /** @type {HTMLElement} */ (document.getElementById("crumbs"));
const who = /** @type {HTMLElement} */ (document.getElementById("who"));

setTheme(localStorage.getItem("ml-dash-theme") ||
  (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
document.getElementById("theme")?.addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("ml-dash-theme", next);
  setTheme(next);
});

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  window.dispatchEvent(new Event("ml-dash-theme"));
}

/** @type {{owner: boolean, namespace: string|null, namespaces: string[], csrf: string, pollSeconds: number, maxSeriesPoints: number} | null} */
let session = null;
/** The running view's cleanup (timers, charts, listeners). */
let cleanup = () => {};

whenUnauthenticated(() => {
  session = null;
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
});

export function navigate(state, replace = false) {
  const hash = formatHash(state);
  if (replace) history.replaceState(null, "", hash);
  else if (location.hash !== hash) history.pushState(null, "", hash);
  show();
}

/** Back/forward and typed addresses: Chrome fires both events for one change, so render once. */
function onLocation() {
  if (location.hash !== shown) show();
}

async function loadSession() {
  try {
    const doc = await api("/ui/session", {query: {optional: 1}, quiet401: true});
    session = doc.loggedIn === false ? null : doc;
    if (session) setCsrf(session.csrf);
  } catch (err) {
    session = null;
    if (err.status !== 401) throw err;
  }
}

let shown = "";

async function show() {
  shown = location.hash;
  cleanup();
  cleanup = () => {};
  const state = parseHash(location.hash);
  try {
    if (session === null && state.view !== "login") await loadSession();
  } catch (err) {
    fill(root, errorBox(err, "the session"));
    return;
  }
  header(state);
  if (state.view === "login" || session === null) {
    if (state.view !== "login") history.replaceState(null, "", "#/login");
    cleanup = renderLogin(root, parseHash(location.hash), async () => {
      await loadSession();
      navigate({view: "home"}, true);
    });
    return;
  }
  if (!session.owner && state.ns && state.ns !== session.namespace) {
    fill(root, errorBox({message: `namespace '${state.ns}' is not yours`,
      hint: "an API-key login sees only its own namespace; the server owner's URL sees them all"}));
    return;
  }
  const ctx = {session, navigate, state};
  const views = {
    home: renderHome, namespace: renderNamespace, project: renderProject, experiment: renderExperiment,
    compare: renderCompare,
  };
  const view = views[state.view];
  if (!view) {
    fill(root, errorBox({message: `nothing at ${location.hash}`, hint: "start again from the projects page"}),
      h("p", null, h("a", {href: "#/"}, "Projects")));
    return;
  }
  cleanup = view(root, ctx) || (() => {});
}

function header(state) {
  const parts = [];
  if (state.ns) parts.push(h("a", {href: formatHash({view: "namespace", ns: state.ns})}, state.ns));
  if (state.project) {
    parts.push(h("a", {href: formatHash({view: "project", ns: state.ns, project: state.project})}, state.project));
  }
  fill(crumbs, parts.flatMap((p, i) => (i ? [h("span", {class: "sep"}, "/"), p] : [p])));
  if (!session) {
    fill(who);
    return;
  }
  const logout = h("button", {type: "button", onclick: async () => {
    try {
      await api("/ui/logout", {method: "POST"});
    } finally {
      session = null;
      navigate({view: "login"});
    }
  }}, "Log out");
  let switcher = null;
  if (session.owner) {
    switcher = h("select", {"aria-label": "Namespace", onchange: (e) => {
      const ns = e.target.value;
      navigate(ns ? {view: "namespace", ns} : {view: "home"});
    }}, h("option", {value: ""}, "all namespaces"),
    session.namespaces.map((ns) => h("option", {value: ns, selected: ns === state.ns}, ns)));
  }
  if (session.readOnly) { // ml-dash show: a local tree, no login, nothing to change
    fill(who, h("span", {class: "muted", id: "read-only"}, "local tree · read-only"));
    return;
  }
  fill(who, switcher, h("span", {class: "muted"}, session.owner ? "owner" : session.namespace), logout);
}

window.addEventListener("popstate", onLocation);
window.addEventListener("hashchange", onLocation);
show();
