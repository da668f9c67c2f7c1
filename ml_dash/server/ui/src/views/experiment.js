// One experiment: its header (status live while RUNNING) and five tabs, each a deep link.
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";
import {formatDuration} from "../lib/format.js";
import {formatHash} from "../lib/route.js";
import {renderFiles} from "./files.js";
import {renderLogs} from "./logs.js";
import {renderMetrics} from "./metrics.js";
import {renderOverview} from "./overview.js";
import {renderParams} from "./params.js";

const TABS = [["overview", "Overview"], ["params", "Parameters"], ["metrics", "Metrics"], ["logs", "Logs"],
  ["files", "Files"]];
const TAB_VIEWS = {overview: renderOverview, params: renderParams, metrics: renderMetrics, logs: renderLogs,
  files: renderFiles};

export function renderExperiment(root, ctx) {
  const {ns, project, id} = ctx.state;
  const tab = TAB_VIEWS[ctx.state.tab] ? ctx.state.tab : "overview";
  const controller = new AbortController();
  const head = h("div", {class: "exp-head"}, h("h1", null, "…"));
  const body = h("div", {class: "tab-body", role: "tabpanel", id: "tab-panel", "aria-labelledby": `tab-${tab}`});
  const tabs = h("div", {class: "tabs", role: "tablist", "aria-label": "Experiment"},
    TABS.map(([key, label]) => h("a", {role: "tab", id: `tab-${key}`, "aria-selected": key === tab ? "true" : "false",
      "aria-controls": "tab-panel", tabindex: key === tab ? "0" : "-1",
      href: formatHash({view: "experiment", ns, project, id, tab: key, query: keep(ctx.state.query, key)}),
      onkeydown: (e) => arrowKeys(e, tabs)}, label)));
  fill(root, head, tabs, body);

  let timer = 0;
  let stopTab = () => {};
  let doc = null;
  const refresh = async () => {
    doc = await api(`/ui/experiments/${encodeURIComponent(id)}`, {signal: controller.signal});
    fill(head, header(doc));
    clearTimeout(timer);
    if (doc.experiment.status === "RUNNING") timer = setTimeout(() => refresh().catch(failed), ctx.session.pollSeconds * 1000);
    return doc;
  };
  const failed = (err) => err.name !== "AbortError" && fill(head, errorBox(err, "the experiment"));
  refresh().then((first) => {
    const tabCtx = {...ctx, experiment: first, signal: controller.signal,
      live: () => doc !== null && doc.experiment.status === "RUNNING",
      setQuery: (query) => ctx.navigate({view: "experiment", ns, project, id, tab, query}, true),
      // For changes the tab draws itself (smoothing, zoom): the address follows, nothing re-renders.
      setQueryQuietly: (query) => history.replaceState(null, "",
        formatHash({view: "experiment", ns, project, id, tab, query})),
      refresh: () => refresh()};
    stopTab = TAB_VIEWS[tab](body, tabCtx) || (() => {});
  }).catch((err) => {
    if (err.name === "AbortError") return;
    fill(head, h("h1", null, `Experiment ${id}`));
    fill(body, errorBox(err, "the experiment"));
  });
  return () => {
    clearTimeout(timer);
    controller.abort();
    stopTab();
  };
}

/** Which query keys survive a tab switch (the metric selection, x-axis and zoom stay with metrics). */
function keep(query, tab) {
  if (!query) return {};
  const own = {metrics: ["m", "x", "log", "smooth", "zoom"], logs: ["level", "q"], files: ["file"]};
  const out = {};
  for (const key of own[tab] || []) if (query[key] !== undefined) out[key] = query[key];
  return out;
}

function arrowKeys(e, tablist) {
  if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const i = tabs.indexOf(e.currentTarget);
  const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  next.focus();
  next.click();
  e.preventDefault();
}

function header(doc) {
  const e = doc.experiment;
  return [
    h("h1", null, e.name, " ", h("span", {class: `status ${e.status}`, id: "exp-status"}, e.status,
      e.status === "RUNNING" ? h("span", {class: "pulse", "aria-hidden": "true"}) : null)),
    h("p", {class: "muted"}, [doc.namespace, doc.project, e.folder].filter(Boolean).join(" / "),
      " · ", formatDuration(e.durationSeconds), " · id ", h("code", null, e.id)),
  ];
}
