// Overview: status, times, where it lives, its description and tags (editable), and README.md.
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";
import {formatDuration, formatNumber, formatTime} from "../lib/format.js";
import {markdown} from "../lib/markdown.js";

export function renderOverview(root, ctx) {
  const doc = ctx.experiment;
  const e = doc.experiment;
  const facts = [["Status", h("span", {class: `status ${e.status}`}, e.status)], ["Created", formatTime(e.createdAt)],
    ["Started", formatTime(e.startedAt)], ["Ended", formatTime(e.endedAt)],
    ["Duration", formatDuration(e.durationSeconds)], ["Folder", e.folder || "–"], ["Project", doc.project],
    ["Namespace", doc.namespace], ["Id", h("code", null, e.id)],
    ["Records", doc.counts ? `${formatNumber(doc.counts.metrics)} metrics · ${formatNumber(doc.counts.logs)} log lines · ${
      formatNumber(doc.counts.files)} files` : "–"]];
  const editor = h("div", {class: "editable"});
  const showFields = (exp) => fill(editor,
    h("h2", null, "Description"), h("p", {id: "description"}, exp.description || h("span", {class: "muted"}, "none")),
    h("h2", null, "Tags"), h("p", {id: "tags"}, (exp.tags || []).length ? exp.tags.map((t) => h("span", {class: "tag"}, t))
      : h("span", {class: "muted"}, "none")),
    ctx.session.readOnly ? null : h("button", {type: "button", id: "edit", onclick: () => edit(exp)},
      "Edit description and tags"));
  const edit = (exp) => {
    const description = h("textarea", {id: "edit-description", rows: 4, "aria-label": "Description"});
    description.value = exp.description || "";
    const tags = h("input", {id: "edit-tags", type: "text", value: (exp.tags || []).join(", "),
      "aria-label": "Tags, comma-separated"});
    const problem = h("div");
    fill(editor, h("form", {class: "edit", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const saved = await api(`/ui/experiments/${encodeURIComponent(e.id)}`, {method: "PATCH", body: {
          description: description.value, tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean)}});
        showFields(saved.experiment);
      } catch (err) {
        fill(problem, errorBox(err));
      }
    }}, h("label", {for: "edit-description"}, "Description"), description,
    h("label", {for: "edit-tags"}, "Tags (comma-separated)"), tags,
    h("div", {class: "row"}, h("button", {type: "submit", class: "primary"}, "Save"),
      h("button", {type: "button", onclick: () => showFields(exp)}, "Cancel")), problem));
    description.focus();
  };
  showFields(e);
  const readme = h("article", {class: "readme"});
  if (doc.readme) readme.innerHTML = markdown(doc.readme); // markdown() escapes all text first
  fill(root, h("div", {class: "overview"},
    h("dl", {class: "facts"}, facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])), editor),
  doc.readme ? [h("h2", null, "README.md"), readme] : null);
  return () => {};
}

