// Namespaces (the owner's view) and the projects of one namespace.
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";
import {formatTime, relativeTime} from "../lib/format.js";
import {formatHash} from "../lib/route.js";

export function renderHome(root, ctx) {
  if (!ctx.session.owner) {
    ctx.navigate({view: "namespace", ns: ctx.session.namespace}, true);
    return () => {};
  }
  fill(root, h("h1", null, "Namespaces"), h("p", {class: "muted"}, "Loading…"));
  const controller = new AbortController();
  api("/ui/namespaces", {signal: controller.signal}).then((doc) => {
    const rows = doc.namespaces.map((ns) => h("tr", null,
      h("td", null, h("a", {href: formatHash({view: "namespace", ns: ns.slug})}, ns.slug)),
      h("td", {class: "num"}, ns.projects), h("td", {class: "num"}, ns.experiments)));
    fill(root, h("h1", null, "Namespaces"),
      rows.length ? table(["Namespace", "Projects", "Experiments"], rows)
        : h("p", {class: "empty"}, "No namespaces yet: log or upload an experiment first."));
  }).catch((err) => err.name !== "AbortError" && fill(root, errorBox(err, "the namespaces")));
  return () => controller.abort();
}

export function renderNamespace(root, ctx) {
  const ns = ctx.state.ns;
  fill(root, h("h1", null, ns), h("p", {class: "muted"}, "Loading…"));
  const controller = new AbortController();
  api("/ui/projects", {query: {namespace: ns}, signal: controller.signal}).then((doc) => {
    const now = new Date();
    const rows = doc.projects.map((p) => h("tr", null,
      h("td", null, h("a", {href: formatHash({view: "project", ns, project: p.name})}, p.name)),
      h("td", {class: "num"}, p.experiments),
      h("td", {class: "num"}, p.running ? h("span", {class: "status RUNNING"}, `${p.running} running`) : "–"),
      h("td", {title: formatTime(p.lastActivity)}, relativeTime(p.lastActivity, now))));
    fill(root, h("h1", null, `Projects of ${ns}`),
      rows.length ? table(["Project", "Experiments", "Running", "Last activity"], rows)
        : h("p", {class: "empty"}, "No projects in this namespace yet."));
  }).catch((err) => err.name !== "AbortError" && fill(root, errorBox(err, "the projects")));
  return () => controller.abort();
}

/** A plain table with a header row. */
export function table(headers, rows) {
  return h("table", {class: "grid"},
    h("thead", null, h("tr", null, headers.map((t) => h("th", {scope: "col"}, t)))),
    h("tbody", null, rows));
}
