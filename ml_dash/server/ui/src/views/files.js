// Files: a tree by path; the selected file shows its size, checksum, a download link and a
// preview (image, video/gif, text, Markdown, JSON, CSV).
import {api} from "../api.js";
import {errorBox, fill, h} from "../dom.js";
import {formatBytes, formatTime} from "../lib/format.js";
import {buildTree} from "../lib/tree.js";
import {markdown} from "../lib/markdown.js";

const PREVIEW_LIMIT = 1024 * 1024;
const IMAGE = /\.(png|jpe?g|gif|webp|svg|bmp)$/i;
const VIDEO = /\.(mp4|webm|mov|m4v|ogv)$/i;
const TEXT = /\.(txt|log|md|markdown|json|jsonl|csv|tsv|ya?ml|toml|ini|cfg|py|sh|dashrc)$/i;

export function renderFiles(root, ctx) {
  const exp = ctx.experiment.experiment.id;
  const q = ctx.state.query || {};
  const tree = h("nav", {class: "tree files", "aria-label": "Files"}, h("p", {class: "muted"}, "Loading files…"));
  const preview = h("section", {class: "preview", "aria-live": "polite"});
  fill(root, h("div", {class: "split"}, tree, preview));
  api(`/experiments/${encodeURIComponent(exp)}/files`, {signal: ctx.signal}).then((doc) => {
    const files = doc.files.map((f) => ({...f, full: fullPath(f)}));
    if (!files.length) {
      fill(tree, h("p", {class: "empty"}, "This experiment has no files."));
      return;
    }
    const select = (f) => ctx.setQuery({...q, file: f.id});
    fill(tree, folder(buildTree(files.map((f) => ({...f, path: f.full}))), q.file, select));
    const chosen = files.find((f) => f.id === q.file);
    if (chosen) show(preview, exp, chosen, ctx.signal);
    else fill(preview, h("p", {class: "muted"}, `${files.length} files: choose one to see it.`));
  }).catch((err) => err.name !== "AbortError" && fill(tree, errorBox(err, "the files")));
  return () => {};
}

function fullPath(f) {
  const dir = (f.path || "").replace(/^\/+|\/+$/g, "");
  return dir ? `${dir}/${f.filename}` : f.filename;
}

function folder(node, current, select) {
  const list = h("ul", null,
    (node.children || []).map((child) => h("li", null, h("details", {open: true},
      h("summary", null, child.name), folder(child, current, select)))),
    (node.items || []).map((f) => h("li", null, h("a", {href: "#", class: f.id === current ? "current" : null,
      "aria-current": f.id === current ? "true" : null, dataset: {file: f.full}, onclick: (e) => {
        e.preventDefault();
        select(f);
      }}, f.filename), h("span", {class: "count"}, formatBytes(f.sizeBytes)))));
  return list;
}

function show(box, exp, f, signal) {
  const base = `/experiments/${encodeURIComponent(exp)}/files/${encodeURIComponent(f.id)}/download`;
  const inline = `${base}?inline=1`;
  const view = h("div", {class: "view", id: "file-view"}, h("p", {class: "muted"}, "Loading preview…"));
  fill(box, h("h2", null, f.full),
    h("dl", {class: "facts"}, h("dt", null, "Size"), h("dd", null, `${formatBytes(f.sizeBytes)} (${
      f.sizeBytes.toLocaleString()} bytes)`), h("dt", null, "Checksum"), h("dd", null, h("code", null, f.checksum)),
    h("dt", null, "Type"), h("dd", null, f.contentType || "–"), h("dt", null, "Uploaded"),
    h("dd", null, formatTime(f.uploadedAt))),
    h("p", null, h("a", {href: base, download: f.filename, class: "button", id: "download"}, "Download")), view);
  const type = (f.contentType || "").toLowerCase();
  if (IMAGE.test(f.filename) || type.startsWith("image/")) {
    fill(view, h("img", {src: inline, alt: f.full, class: "media"}));
  } else if (VIDEO.test(f.filename) || type.startsWith("video/")) {
    fill(view, h("video", {src: inline, controls: true, loop: true, muted: true, class: "media"}));
  } else if (TEXT.test(f.filename) || type.startsWith("text/") || type.includes("json")) {
    if (f.sizeBytes > PREVIEW_LIMIT) {
      fill(view, h("p", {class: "muted"}, `Too large to preview (${formatBytes(f.sizeBytes)}): download it.`));
      return;
    }
    fetch(inline, {credentials: "same-origin", signal}).then(async (r) => {
      if (!r.ok) throw new Error(`the server answered ${r.status}`);
      fill(view, textPreview(f.filename, await r.text()));
    }).catch((err) => err.name !== "AbortError" && fill(view, errorBox(err, "the preview")));
  } else {
    fill(view, h("p", {class: "muted"}, "No preview for this kind of file: download it."));
  }
}

function textPreview(name, text) {
  if (/\.(md|markdown)$/i.test(name)) {
    const article = h("article", {class: "readme"});
    article.innerHTML = markdown(text); // escapes all text first
    return article;
  }
  if (/\.json$/i.test(name)) {
    try {
      return h("pre", null, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      return h("pre", null, text);
    }
  }
  if (/\.(csv|tsv)$/i.test(name)) {
    const sep = /\.tsv$/i.test(name) ? "\t" : ",";
    const rows = text.split(/\r?\n/).filter(Boolean).slice(0, 201).map((line) => splitCsv(line, sep));
    const [head, ...rest] = rows;
    return h("table", {class: "grid csv"}, h("thead", null, h("tr", null, (head || []).map((c) => h("th", null, c)))),
      h("tbody", null, rest.map((r) => h("tr", null, r.map((c) => h("td", null, c))))));
  }
  return h("pre", null, text);
}

/** One CSV line into cells (double quotes group, "" is a quote). */
function splitCsv(line, sep) {
  const cells = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) {
      cells.push(cell);
      cell = "";
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}
