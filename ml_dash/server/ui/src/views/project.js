// A project: its folder tree beside the experiment table (server-side paging, sorting, filters).
import {api} from "../api.js";
import {debounce, errorBox, fill, h} from "../dom.js";
import {formatDuration, formatNumber, formatTime} from "../lib/format.js";
import {formatHash} from "../lib/route.js";
import {buildTree} from "../lib/tree.js";

const PAGE = 50;
const STATUSES = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const SORTABLE = {name: "Name", status: "Status", createdAt: "Created", startedAt: "Started", endedAt: "Ended",
  duration: "Duration"};

/** The id of the control that had focus when a filter re-rendered the page (typing goes on there). */
let refocus = "";

export function renderProject(root, ctx) {
  const {ns, project} = ctx.state;
  const q = ctx.state.query || {};
  const cols = (q.cols || "").split(",").filter(Boolean);
  const metricCols = cols.filter((c) => c.startsWith("m:")).map((c) => c.slice(2));
  const paramCols = cols.filter((c) => c.startsWith("p:")).map((c) => c.slice(2));
  const page = Math.max(0, Number(q.page || 0) | 0);
  const controller = new AbortController();
  let timer = 0;

  const go = (changes) => {
    refocus = document.activeElement && document.activeElement.id ? document.activeElement.id : "";
    const query = {...q, ...changes};
    if (!("page" in changes)) delete query.page;
    for (const key of Object.keys(query)) if (query[key] === "" || query[key] === undefined) delete query[key];
    ctx.navigate({view: "project", ns, project, query}, true);
  };

  const tree = h("nav", {class: "tree", "aria-label": "Folders"}, h("p", {class: "muted"}, "Loading folders…"));
  const tableBox = h("div", {class: "table-box"}, h("p", {class: "muted"}, "Loading experiments…"));
  const search = h("input", {type: "search", id: "search", placeholder: "Search name, description, tags", value: q.q || "",
    "aria-label": "Search experiments", oninput: debounce(() => go({q: search.value.trim()}), 300)});
  const tag = h("input", {type: "search", id: "tag-filter", placeholder: "tags (a,b)", value: q.tag || "", size: 12,
    "aria-label": "Filter by tags", oninput: debounce(() => go({tag: tag.value.trim()}), 400)});
  const chosen = new Set((q.status || "").split(",").filter(Boolean));
  const statusBox = h("fieldset", {class: "statuses"}, h("legend", {class: "sr-only"}, "Status"),
    STATUSES.map((s) => h("label", null, h("input", {type: "checkbox", id: `status-${s}`, checked: chosen.has(s), onchange: (e) => {
      if (e.target.checked) chosen.add(s);
      else chosen.delete(s);
      go({status: [...chosen].join(",")});
    }}), h("span", {class: `status ${s}`}, s.toLowerCase()))));
  const colsBox = h("details", {class: "cols"}, h("summary", null, "Columns"), h("p", {class: "muted"}, "…"));
  // Ticked runs stay ticked across pages and filters (per project, for this browser tab).
  const store = `ml-dash-compare:${ns}/${project}`;
  const picked = new Set(JSON.parse(sessionStorage.getItem(store) || "[]"));
  const compareButton = h("button", {type: "button", id: "compare", class: "primary", onclick: () => ctx.navigate(
    {view: "compare", ns, project, query: {ids: [...picked].join(",")}})});
  const folderButton = h("button", {type: "button", id: "compare-folder", onclick: () => ctx.navigate(
    {view: "compare", ns, project, query: {folder: q.folder || ""}})}, "Compare this folder");
  const clearButton = h("button", {type: "button", id: "compare-clear", onclick: () => {
    picked.clear();
    sessionStorage.removeItem(store);
    for (const box of tableBox.querySelectorAll("td.pick input")) box.checked = false;
    showPicked();
  }}, "Clear");
  const showPicked = () => {
    fill(compareButton, `Compare ${picked.size} runs`);
    compareButton.disabled = picked.size < 2;
    clearButton.hidden = picked.size === 0;
  };
  const pick = (id, on) => {
    if (on) picked.add(id);
    else picked.delete(id);
    sessionStorage.setItem(store, JSON.stringify([...picked]));
    showPicked();
  };
  showPicked();
  fill(root, h("div", {class: "project"},
    h("aside", null, h("h2", null, project), tree),
    h("section", null,
      h("div", {class: "toolbar"}, search, tag, statusBox, colsBox, compareButton, clearButton, folderButton),
      tableBox)));
  const again = refocus ? document.getElementById(refocus) : null;
  refocus = "";
  if (again instanceof HTMLInputElement) {
    again.focus();
    if (again.type === "search") again.setSelectionRange(again.value.length, again.value.length);
  }

  api(`/ui/projects/${encodeURIComponent(project)}/folders`, {query: {namespace: ns}, signal: controller.signal})
    .then((doc) => fill(tree, folderList(doc.folders, q.folder || "", (folder) => go({folder}))))
    .catch((err) => err.name !== "AbortError" && fill(tree, errorBox(err, "the folders")));

  const load = async () => {
    const doc = await api(`/ui/projects/${encodeURIComponent(project)}/experiments`, {signal: controller.signal,
      query: {namespace: ns, folder: q.folder, recursive: 1, status: q.status, tag: q.tag, q: q.q,
        sort: q.sort || "createdAt", order: q.order || "desc", offset: page * PAGE, limit: PAGE,
        metrics: metricCols, params: paramCols}});
    const fresh = experimentTable(doc, {ns, project, q, metricCols, paramCols, page, go, picked, pick});
    if (!patchRows(tableBox, fresh)) fill(tableBox, fresh);
    fill(colsBox, h("summary", null, "Columns"), columnChooser(doc, cols, (next) => go({cols: next.join(",")})));
    // A page showing a RUNNING experiment refreshes itself (one page: the cost does not grow).
    clearTimeout(timer);
    if (doc.items.some((e) => e.status === "RUNNING")) {
      timer = setTimeout(() => load().catch(failed), ctx.session.pollSeconds * 1000);
    }
  };
  const failed = (err) => err.name !== "AbortError" && fill(tableBox, errorBox(err, "the experiments"));
  load().catch(failed);
  return () => {
    clearTimeout(timer);
    controller.abort();
  };
}

function folderList(folders, current, choose) {
  // The server lists the folders that hold experiments; the tree adds the folders between them.
  const root = buildTree(folders.map((f) => ({...f})), {folders: true});
  const count = (node) => node.items.reduce((n, f) => n + f.experiments, 0) +
    node.children.reduce((n, child) => n + count(child), 0);
  const link = (path, label, n) => [h("a", {href: "#", class: path === current ? "current" : null,
    "aria-current": path === current ? "true" : null, onclick: (e) => {
      e.preventDefault();
      choose(path);
    }}, label), h("span", {class: "count"}, n)];
  const branch = (node) => h("ul", null, node.children.map((child) => h("li", null,
    link(child.path, child.name, count(child)), child.children.length ? branch(child) : null)));
  return h("ul", null, h("li", null, link("", "All experiments", count(root)), branch(root)));
}

function experimentTable(doc, {ns, project, q, metricCols, paramCols, page, go, picked, pick}) {
  const sort = q.sort || "createdAt";
  const order = q.order || "desc";
  const head = (key, label) => h("th", {scope: "col", "aria-sort": sort === key ? (order === "asc" ? "ascending"
    : "descending") : null}, h("button", {type: "button", class: "sort", onclick: () => go({sort: key,
    order: sort === key && order === "desc" ? "asc" : "desc"})}, label, sort === key ? (order === "asc" ? " ▲"
    : " ▼") : ""));
  const headers = [h("th", {scope: "col", class: "pick"}, h("span", {class: "sr-only"}, "Compare")),
    head("name", "Name"), head("status", "Status"), h("th", {scope: "col"}, "Tags"),
    head("createdAt", SORTABLE.createdAt), head("startedAt", SORTABLE.startedAt), head("endedAt", SORTABLE.endedAt),
    head("duration", SORTABLE.duration),
    metricCols.map((m) => h("th", {scope: "col", class: "num"}, m)),
    paramCols.map((p) => h("th", {scope: "col", class: "num"}, p))];
  const rows = doc.items.map((e) => h("tr", {dataset: {id: e.id}},
    h("td", {class: "pick"}, h("input", {type: "checkbox", "aria-label": `Compare ${e.name}`, checked: picked.has(e.id),
      onchange: (ev) => pick(e.id, ev.target.checked)})),
    h("td", null, h("a", {href: formatHash({view: "experiment", ns, project, id: e.id, tab: "overview"})}, e.name),
      e.folder ? h("div", {class: "muted small"}, e.folder) : null),
    h("td", null, h("span", {class: `status ${e.status}`}, e.status)),
    h("td", null, (e.tags || []).map((t) => h("span", {class: "tag"}, t))),
    h("td", null, formatTime(e.createdAt)), h("td", null, formatTime(e.startedAt)),
    h("td", null, formatTime(e.endedAt)), h("td", {class: "num"}, formatDuration(e.durationSeconds)),
    metricCols.map((m) => h("td", {class: "num"}, formatNumber(e.metrics ? e.metrics[m] : null))),
    paramCols.map((p) => h("td", {class: "num"}, cell(e.params ? e.params[p] : null)))));
  const first = doc.total ? doc.offset + 1 : 0;
  const last = doc.offset + doc.items.length;
  const pager = h("div", {class: "pager"},
    h("button", {type: "button", disabled: page === 0, onclick: () => go({page: String(page - 1)})}, "← Newer"),
    h("span", null, `${first.toLocaleString()}–${last.toLocaleString()} of ${doc.total.toLocaleString()}`),
    h("button", {type: "button", disabled: last >= doc.total, onclick: () => go({page: String(page + 1)})},
      "Older →"));
  if (!doc.items.length) {
    return [h("p", {class: "empty"}, q.q || q.status || q.tag ? "No experiment matches these filters."
      : "No experiments here yet."), pager];
  }
  return [h("table", {class: "grid experiments"}, h("thead", null, h("tr", null, headers)), h("tbody", null, rows)),
    pager];
}

/**
 * A refresh showing the same rows updates their cells in place (not tick boxes, not name links), so focus,
 * selection and element references survive the live refresh; otherwise the caller re-renders.
 */
function patchRows(box, fresh) {
  const table = box.querySelector("table.experiments");
  const next = fresh.find((el) => el.matches && el.matches("table.experiments"));
  if (!table || !next) return false;
  const ids = (t) => [...t.querySelectorAll("tbody tr")].map((r) => r.dataset.id).join(",");
  if (ids(table) !== ids(next) || table.tHead.innerHTML !== next.tHead.innerHTML) return false;
  const oldRows = table.tBodies[0].rows;
  const newRows = next.tBodies[0].rows;
  for (let r = 0; r < oldRows.length; r++) {
    for (let c = 2; c < oldRows[r].cells.length; c++) { // not the tick box nor the name link
      if (oldRows[r].cells[c].innerHTML !== newRows[r].cells[c].innerHTML) {
        oldRows[r].cells[c].replaceWith(newRows[r].cells[c].cloneNode(true));
      }
    }
  }
  box.querySelector(".pager").replaceWith(fresh[fresh.length - 1]);
  return true;
}

function cell(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function columnChooser(doc, cols, apply) {
  const chosen = new Set(cols);
  const box = (prefix, key) => h("label", null, h("input", {type: "checkbox", checked: chosen.has(prefix + key),
    onchange: (e) => {
      if (e.target.checked) chosen.add(prefix + key);
      else chosen.delete(prefix + key);
      apply([...chosen]);
    }}), key);
  const metricKeys = [...new Set([...(doc.metricKeys || []), ...cols.filter((c) => c.startsWith("m:"))
    .map((c) => c.slice(2))])];
  const paramKeys = [...new Set([...(doc.paramKeys || []), ...cols.filter((c) => c.startsWith("p:"))
    .map((c) => c.slice(2))])];
  return h("div", {class: "chooser"},
    h("div", null, h("strong", null, "Metrics (latest)"), metricKeys.length ? metricKeys.map((k) => box("m:", k))
      : h("span", {class: "muted"}, " none")),
    h("div", null, h("strong", null, "Parameters"), paramKeys.length ? paramKeys.map((k) => box("p:", k))
      : h("span", {class: "muted"}, " none")));
}
