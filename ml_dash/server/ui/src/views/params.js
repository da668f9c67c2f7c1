// Parameters: flattened to dotted keys, grouped by their first segment, searchable.
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";
import {filterParams, flattenParams, groupParams} from "../lib/params.js";

export function renderParams(root, ctx) {
  const id = ctx.experiment.experiment.id;
  const q = ctx.state.query || {};
  const list = h("div", {class: "params"}, h("p", {class: "muted"}, "Loading parameters…"));
  let entries = [];
  const search = h("input", {type: "search", id: "param-search", placeholder: "Search parameters", value: q.q || "",
    "aria-label": "Search parameters", oninput: () => draw()});
  const draw = () => {
    const shown = filterParams(entries, search.value.trim());
    if (!entries.length) {
      fill(list, h("p", {class: "empty"}, "This experiment has no parameters."));
      return;
    }
    if (!shown.length) {
      fill(list, h("p", {class: "empty"}, `No parameter matches “${search.value.trim()}”.`));
      return;
    }
    fill(list, groupParams(shown).map((g) => h("section", {class: "param-group"},
      h("h3", null, g.group || "(top level)"),
      h("table", {class: "grid kv"}, h("tbody", null, g.entries.map(([key, value]) => h("tr", null,
        h("th", {scope: "row"}, key), h("td", null, h("code", null, show(value))))))))));
  };
  fill(root, h("div", {class: "toolbar"}, search, h("span", {class: "muted", id: "param-count"})), list);
  api(`/experiments/${encodeURIComponent(id)}/parameters`, {signal: ctx.signal}).then((doc) => {
    entries = flattenParams(doc.data || {});
    fill(/** @type {HTMLElement} */ (root.querySelector("#param-count")), `${entries.length} parameters`);
    draw();
  }).catch((err) => err.name !== "AbortError" && fill(list, errorBox(err, "the parameters")));
  search.focus();
  return () => {};
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}
