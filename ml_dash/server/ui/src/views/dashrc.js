// .dashrc in the browser: the charts an experiment's .dashrc declares (line charts, image and
// video grids, header metrics), and the editor — YAML beside a live preview, parsed by the
// server 300 ms after typing stops, the preview refetched 1.5 s after, errors shown with their line.
import {api} from "../api.js";
import {lineChart} from "../chart.js";
import {compareChart} from "../compare-chart.js";
import {debounce, errorBox, fill, h} from "../dom.js";
import {chartWidth} from "../layout.js";
import {formatNumber} from "../lib/format.js";
import {groupRuns, groupSeries} from "../lib/group.js";
import {colorFor} from "../lib/plotmath.js";
import {pickDefaultX, toChartData} from "../lib/series.js";
import {globToRegExp} from "../lib/yaml.js";

/** The .dashrc at `url` ({text, config}), or null when there is none. */
export async function loadDashrc(url, signal) {
  const doc = await api(url, {signal, query: {optional: 1}});
  return doc && doc.text !== null ? doc : null;
}

/** A metric key "train.loss" → its metric and field (split at the last dot). */
export function splitKey(key) {
  const dot = key.lastIndexOf(".");
  return dot < 0 ? {metric: key, field: "value"} : {metric: key.slice(0, dot), field: key.slice(dot + 1)};
}

/** The x-axis a chart's xKey means for one metric ("default": timestamp, then step, epoch, index). */
export function resolveX(xKey, metric) {
  const fields = (metric && metric.xFields) || ["index"];
  if (xKey && xKey !== "default") return fields.includes(xKey) ? xKey : pickDefaultX(fields);
  if (metric && "timestamp" in metric.fields) return "timestamp";
  return pickDefaultX(fields);
}

/**
 * Draws what an experiment's .dashrc declares into `box`.
 * @param {HTMLElement} box
 * @param {any} config the .dashrc as JSON (the server's model)
 * @param {{id: string, index: any[], session: any, signal: AbortSignal}} env
 * @returns {Promise<() => void>} cleanup
 */
export async function renderDeclared(box, config, env) {
  const charts = [];
  const header = config.metrics ? headerRow(config.metrics.fields || ["*"], env.index) : null;
  const grid = h("div", {class: "charts", id: "declared-charts"});
  fill(box, header, grid);
  const lineSpecs = [];
  let files = null;
  for (const [i, chart] of (config.charts || []).entries()) {
    const figure = h("figure", {class: `chart declared ${chart.ctype}`, dataset: {index: String(i)}},
      h("figcaption", null, h("strong", null, chart.title || chart.yKey || (chart.yKeys || []).join(", ") ||
        chart.ctype)), h("div", {class: "plot"}));
    grid.append(figure);
    if (chart.ctype === "line") lineSpecs.push({chart, figure});
    else {
      files = files || (await api(`/experiments/${encodeURIComponent(env.id)}/files`, {signal: env.signal})).files;
      mediaGrid(/** @type {HTMLElement} */ (figure.querySelector(".plot")), chart, files, env.id);
      figure.dataset.drawn = "1";
    }
  }
  // Every line of every declared chart in one batch request.
  const wanted = [];
  for (const spec of lineSpecs) {
    const keys = spec.chart.yKeys || (spec.chart.yKey ? [spec.chart.yKey] : []);
    spec.lines = keys.map((key) => {
      const {metric, field} = splitKey(key);
      const m = env.index.find((x) => x.name === metric);
      const x = resolveX(spec.chart.xKey, m);
      const slot = m && field in m.fields ? wanted.push({experimentId: env.id, metric, y: field, x, points:
        spec.chart.bins}) - 1 : -1;
      return {key, x, slot};
    });
  }
  const answers = await batch(wanted, env);
  for (const spec of lineSpecs) {
    const plot = /** @type {HTMLElement} */ (spec.figure.querySelector(".plot"));
    const found = spec.lines.filter((l) => l.slot >= 0 && answers[l.slot] && !answers[l.slot].error);
    if (!found.length) {
      fill(plot, h("p", {class: "empty"}, `No data for ${spec.lines.map((l) => l.key).join(", ") || "this chart"}.`));
      spec.figure.dataset.drawn = "1";
      continue;
    }
    const opts = {width: chartWidth(grid), height: 220, time: found[0].x === "timestamp", logY: !!spec.chart.logY,
      logX: !!spec.chart.logX,
      xLabel: spec.chart.xLabel || found[0].x, syncKey: `dashrc-${env.id}`, onZoom: () => {}, onReset: () => {}};
    if (found.length === 1) {
      const d = positiveX(toChartData(answers[found[0].slot], {smooth: spec.chart.smoothing || 0,
        logY: !!spec.chart.logY}), spec.chart.logX);
      const smooth = spec.chart.smoothing > 0;
      charts.push(lineChart(plot, {...d, y: smooth ? d.raw : d.y, smooth: smooth ? d.y : null}, opts));
    } else {
      charts.push(compareChart(plot, {bands: [], lines: found.map((l, i) => {
        const d = positiveX(toChartData(answers[l.slot], {smooth: spec.chart.smoothing || 0, logY: !!spec.chart.logY}),
          spec.chart.logX);
        return {label: l.key, color: colorFor(i), x: d.x, y: d.y};
      })}, opts));
    }
    spec.figure.dataset.drawn = "1";
  }
  return () => charts.forEach((c) => c.destroy());
}

/** On a log x-axis, buckets at x ≤ 0 cannot be placed: they are left out. */
function positiveX(d, logX) {
  if (!logX) return d;
  const keep = d.x.map((x) => x > 0);
  const pick = (a) => (a ? a.filter((_, i) => keep[i]) : a);
  return {...d, x: pick(d.x), y: pick(d.y), raw: pick(d.raw), lo: pick(d.lo), hi: pick(d.hi),
    marks: d.marks.filter((x) => x > 0)};
}

/** POST /series for items that may ask for different bucket counts: one request per count. */
async function batch(wanted, env) {
  const out = new Array(wanted.length);
  const byPoints = new Map();
  wanted.forEach((w, i) => {
    const points = Math.min(env.session.maxSeriesPoints, w.points || 200);
    if (!byPoints.has(points)) byPoints.set(points, []);
    byPoints.get(points).push(i);
  });
  for (const [points, slots] of byPoints) {
    const doc = await api("/series", {method: "POST", signal: env.signal, body: {points, series: slots.map((i) => {
      const {points: _, ...item} = wanted[i];
      return item;
    })}});
    doc.series.forEach((s, k) => {
      out[slots[k]] = s;
    });
  }
  return out;
}

function headerRow(globs, index) {
  const patterns = globs.map((g) => globToRegExp(g));
  const cells = [];
  for (const m of index) {
    for (const [field, s] of Object.entries(m.fields)) {
      const key = `${m.name}.${field}`;
      if (patterns.some((p) => p.test(key) || p.test(m.name))) cells.push([key, s.last]);
    }
  }
  return h("dl", {class: "header-metrics", id: "header-metrics"},
    cells.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, formatNumber(v)))));
}

function mediaGrid(box, chart, files, experimentId) {
  const re = globToRegExp(chart.glob);
  const full = (f) => [String(f.path || "").replace(/^\/+|\/+$/g, ""), f.filename].filter(Boolean).join("/");
  const order = {name: (a, b) => full(a).localeCompare(full(b)), size: (a, b) => b.sizeBytes - a.sizeBytes,
    date: (a, b) => String(b.uploadedAt).localeCompare(String(a.uploadedAt))}[chart.sort || "date"];
  const limit = chart.limit || chart.nCols * chart.nRows;
  const chosen = files.filter((f) => re.test(full(f))).sort(order).slice(0, limit);
  if (!chosen.length) {
    fill(box, h("p", {class: "empty"}, `No file matches ${chart.glob}.`));
    return;
  }
  const src = (f) => `/experiments/${encodeURIComponent(experimentId)}/files/${encodeURIComponent(f.id)}/download?inline=1`;
  fill(box, h("div", {class: "media-grid", style: `grid-template-columns: repeat(${chart.nCols}, 1fr)`},
    chosen.map((f) => h("figure", null, chart.ctype === "video"
      ? h("video", {src: src(f), controls: true, muted: true, loop: true, preload: "metadata"})
      : h("img", {src: src(f), alt: full(f), loading: "lazy"}), h("figcaption", {class: "small muted"}, full(f))))));
}

/**
 * The editor: YAML on the left, the preview on the right.
 * @param {HTMLElement} box
 * @param {{text: string, saveUrl: string, title: string, preview: (box: HTMLElement, config: any) => Promise<() => void>,
 *   onSaved: (doc: any) => void, onCancel: () => void, signal: AbortSignal}} opts
 */
export function openEditor(box, opts) {
  const area = h("textarea", {id: "dashrc-text", class: "code", rows: 24, spellcheck: "false",
    "aria-label": ".dashrc (YAML)"});
  area.value = opts.text;
  const problem = h("div", {id: "dashrc-error", "aria-live": "polite"});
  const preview = h("div", {class: "dashrc-preview", id: "dashrc-preview"});
  const saveButton = h("button", {type: "button", class: "primary", id: "dashrc-save"}, "Save .dashrc");
  let config = null;
  let stopPreview = () => {};
  const showPreview = debounce(async () => {
    if (!config) return;
    stopPreview();
    try {
      stopPreview = await opts.preview(preview, config);
    } catch (err) {
      if (err.name !== "AbortError") fill(preview, errorBox(err, "the preview"));
    }
  }, 1500);
  const check = async () => {
    try {
      config = (await api("/ui/dashrc/validate", {method: "POST", body: {text: area.value}, signal: opts.signal})).config;
      fill(problem);
      saveButton.disabled = false;
      showPreview();
      return true;
    } catch (err) {
      if (err.name === "AbortError") return false;
      config = null;
      saveButton.disabled = true;
      fill(problem, h("div", {class: "error", role: "alert"},
        h("strong", null, err.line ? `Line ${err.line}: ` : ""), err.message,
        err.hint ? h("div", {class: "hint"}, err.hint) : null,
        err.line ? h("button", {type: "button", class: "small", onclick: () => goToLine(area, err.line)},
          `Go to line ${err.line}`) : null));
      return false;
    }
  };
  area.addEventListener("input", debounce(check, 300));
  saveButton.addEventListener("click", async () => {
    if (!(await check())) return;
    try {
      opts.onSaved(await api(opts.saveUrl, {method: "PUT", body: {text: area.value}, signal: opts.signal}));
    } catch (err) {
      if (err.name !== "AbortError") fill(problem, errorBox(err, "the .dashrc"));
    }
  });
  fill(box, h("div", {class: "dashrc-editor"},
    h("div", null, h("h2", null, opts.title), area, problem,
      h("div", {class: "row"}, saveButton, h("button", {type: "button", id: "dashrc-cancel", onclick: () => {
        stopPreview();
        opts.onCancel();
      }}, "Cancel"))),
    h("div", null, h("h2", null, "Preview"), preview)));
  check();
  area.focus();
  return () => stopPreview();
}

function goToLine(area, line) {
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

/**
 * The charts of a Compare .dashrc (a folder's): per chart, one line per `series` entry (an
 * experiment, several experiments → their mean, or every run whose folder/name starts with a
 * prefix), with its label, colour and dash; without `series`, one line per run.
 * @param {HTMLElement} box
 * @param {any} config
 * @param {{id: string, name: string, folder: string|null, color: string, metrics: any[]}[]} runs
 * @param {{session: any, signal: AbortSignal}} env
 */
export async function renderDeclaredCompare(box, config, runs, env) {
  const charts = [];
  const grid = h("div", {class: "charts", id: "saved-charts"});
  fill(box, grid);
  const pathOf = (r) => [r.folder, r.name].filter(Boolean).join("/").replace(/^\/+/, "");
  const wanted = [];
  const specs = (config.charts || []).filter((c) => c.ctype === "line").map((chart, ci) => {
    // Explicit series; else a group per value of `groupBy` (its runs' mean); else a line per run.
    const entries = chart.series && chart.series.length ? chart.series
      : chart.groupBy ? groupRuns(runs, chart.groupBy).map((g, i) => ({experimentIds: g.ids, label: g.label,
        color: colorFor(i)}))
        : runs.map((r) => ({experimentId: r.id, label: r.name, color: r.color}));
    const lines = entries.map((entry, i) => {
      const members = entry.experimentId ? runs.filter((r) => r.id === entry.experimentId)
        : entry.experimentIds ? runs.filter((r) => entry.experimentIds.includes(r.id))
          : runs.filter((r) => pathOf(r).startsWith(String(entry.prefix || "").replace(/^\/+/, "")));
      const {metric, field} = splitKey(entry.yKey || chart.yKey || (chart.yKeys || [])[0] || "");
      const slots = members.map((r) => {
        const m = r.metrics.find((x) => x.name === metric);
        if (!m || !(field in m.fields)) return -1;
        return wanted.push({experimentId: r.id, metric, y: field, x: resolveX(entry.xKey || chart.xKey, m)}) - 1;
      }).filter((s) => s >= 0);
      return {label: entry.label || entry.prefix || members.map((r) => r.name).join(", ") || "(no run)",
        color: entry.color || colorFor(i), dash: entry.dash ? String(entry.dash).split(/[\s,]+/).map(Number) : undefined,
        slots};
    });
    const figure = h("figure", {class: "chart saved", dataset: {index: String(ci)}}, h("figcaption", null,
      h("strong", null, chart.title || chart.yKey || "chart")), h("div", {class: "plot"}));
    grid.append(figure);
    return {chart, figure, lines};
  });
  const points = Math.min(env.session.maxSeriesPoints, 400);
  const answers = wanted.length ? (await api("/series", {method: "POST", signal: env.signal,
    body: {points, series: wanted}})).series : [];
  for (const spec of specs) {
    const lines = [];
    const bands = [];
    for (const line of spec.lines) {
      const docs = line.slots.map((s) => answers[s]).filter((d) => d && !d.error);
      if (!docs.length) continue;
      const data = docs.map((d) => toChartData(d, {logY: !!spec.chart.logY, smooth: spec.chart.smoothing || 0}));
      if (data.length > 1 && spec.chart.band) { // several runs with a band: their mean inside it
        bands.push({label: line.label, color: line.color, ...groupSeries(data, {band: spec.chart.band})});
        continue;
      }
      // Several runs in one line: their mean (resampled onto one grid).
      const {x, y} = data.length === 1 ? data[0] : meanLine(data);
      lines.push({label: line.label, color: line.color, dash: line.dash, x, y});
    }
    const plot = /** @type {HTMLElement} */ (spec.figure.querySelector(".plot"));
    if (!lines.length && !bands.length) fill(plot, h("p", {class: "empty"}, "No run has this metric."));
    else {
      charts.push(compareChart(plot, {lines, bands}, {width: chartWidth(grid), height: 240, time: false,
        logY: !!spec.chart.logY, xLabel: spec.chart.xLabel || "", syncKey: "saved"}));
    }
    spec.figure.dataset.drawn = "1";
    spec.figure.dataset.lines = String(lines.length + bands.length);
  }
  return () => charts.forEach((c) => c.destroy());
}

function meanLine(data) {
  const g = groupSeries(data.map((d) => ({x: d.x, y: d.y})), {grid: 300});
  return {x: g.x, y: g.mean};
}
