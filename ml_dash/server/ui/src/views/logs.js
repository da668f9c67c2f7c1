// Logs: newest first with paging back, filtered by level, text and time range; new lines arrive
// while the experiment runs (only what came after the newest line shown is fetched).
import {api} from "../api.js";
import {debounce, errorBox, fill, h} from "../dom.js";
import {formatTime} from "../lib/format.js";
import {levelClass} from "../lib/logs.js";

const LEVELS = ["debug", "info", "warn", "error", "fatal"];
const PAGE = 100;

export function renderLogs(root, ctx) {
  const id = encodeURIComponent(ctx.experiment.experiment.id);
  const q = ctx.state.query || {};
  const levels = new Set((q.level || "").split(",").filter(Boolean));
  const body = h("tbody");
  const status = h("p", {class: "muted", id: "log-status"}, "Loading logs…");
  const more = h("button", {type: "button", id: "log-more", hidden: true, onclick: () => page().catch(failed)},
    "Older lines");
  const search = h("input", {type: "search", id: "log-search", placeholder: "Search messages", value: q.q || "",
    "aria-label": "Search log messages", oninput: debounce(() => apply({q: search.value.trim()}), 300)});
  const from = h("input", {type: "datetime-local", id: "log-from", step: 1, "aria-label": "From"});
  const to = h("input", {type: "datetime-local", id: "log-to", step: 1, "aria-label": "To"});
  from.addEventListener("change", () => reset().catch(failed));
  to.addEventListener("change", () => reset().catch(failed));
  const apply = (changes) => {
    const query = {...q, ...changes};
    for (const key of Object.keys(query)) if (!query[key]) delete query[key];
    ctx.setQuery(query);
  };
  const levelBox = h("fieldset", {class: "levels"}, h("legend", {class: "sr-only"}, "Levels"),
    LEVELS.map((level) => h("label", null, h("input", {type: "checkbox", id: `level-${level}`,
      checked: levels.has(level), onchange: (e) => {
        if (e.target.checked) levels.add(level);
        else levels.delete(level);
        apply({level: LEVELS.filter((l) => levels.has(l)).join(",")});
      }}), h("span", {class: `level ${levelClass(level)}`}, level))));
  fill(root, h("div", {class: "toolbar"}, levelBox, search, h("label", null, "from ", from),
    h("label", null, "to ", to)), status,
  h("table", {class: "grid logs"}, h("thead", null, h("tr", null, h("th", {scope: "col"}, "Time"),
    h("th", {scope: "col"}, "Level"), h("th", {scope: "col"}, "Message"))), body), more);
  if (q.q) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }

  let next = null;
  let newest = -1;
  let total = 0;
  let timer = 0;
  const filters = () => ({level: [...levels].join(","), q: q.q, from: isoOf(from.value), to: isoOf(to.value)});
  const row = (e) => h("tr", {class: levelClass(e.level), dataset: {seq: e.seq}},
    h("td", {class: "nowrap"}, formatTime(e.timestamp)), h("td", null, h("span", {class: `level ${levelClass(e.level)}`},
      e.level)), h("td", null, h("span", {class: "message"}, e.message),
      e.metadata && Object.keys(e.metadata).length ? h("code", {class: "meta"}, JSON.stringify(e.metadata)) : null));
  const counted = (total) => fill(status, total ? `${total.toLocaleString()} matching lines` : "No log lines match.");

  const page = async () => {
    const doc = await api(`/ui/experiments/${id}/logs`, {signal: ctx.signal,
      query: {...filters(), before: next === null ? undefined : next, limit: PAGE}});
    body.append(...doc.items.map(row));
    if (newest < 0 && doc.items.length) newest = doc.items[0].seq;
    next = doc.next;
    more.hidden = next === null || next === undefined;
    total = doc.total;
    counted(total);
  };
  const reset = async () => {
    body.replaceChildren();
    next = null;
    newest = -1;
    await page();
  };
  const tick = async () => {
    if (ctx.live()) {
      const doc = await api(`/ui/experiments/${id}/logs`, {signal: ctx.signal,
        query: {...filters(), after: newest, limit: 1000}});
      if (doc.items.length) {
        // Oldest first from the server: the newest ends up on top.
        for (const e of doc.items) body.prepend(row(e));
        newest = doc.items[doc.items.length - 1].seq;
        total += doc.items.length;
        counted(total);
      }
    }
    timer = setTimeout(() => tick().catch(failed), ctx.session.pollSeconds * 1000);
  };
  const failed = (err) => err.name !== "AbortError" && fill(status, errorBox(err, "the logs"));
  reset().then(() => {
    timer = setTimeout(() => tick().catch(failed), ctx.session.pollSeconds * 1000);
  }).catch(failed);
  return () => clearTimeout(timer);
}

/** A datetime-local value (local time) as an ISO instant, or undefined. */
function isoOf(value) {
  if (!value) return undefined;
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
}
