// Metrics: one chart per metric field. The server answers each chart with at most ~1,000 buckets
// (mean, exact min/max, count); zooming asks it again for the window, and a RUNNING experiment
// asks only for what arrived after each chart's cursor.
import {api} from "../api.js";
import {chartWidth} from "../layout.js";
import {lineChart} from "../chart.js";
import {debounce, errorBox, fill, h} from "../dom.js";
import {formatNumber} from "../lib/format.js";
import {appendTail, pickDefaultX, toChartData} from "../lib/series.js";
import {toYaml} from "../lib/yaml.js";
import {loadDashrc, openEditor, renderDeclared} from "./dashrc.js";

const X_LIKE = new Set(["step", "epoch", "timestamp", "index"]);
const DEFAULT_CHARTS = 40;
const HEIGHT = 220;

export function renderMetrics(root, ctx) {
  const exp = ctx.experiment.experiment.id;
  const q = {...(ctx.state.query || {})};
  const points = Math.min(1000, ctx.session.maxSeriesPoints);
  const status = h("p", {class: "muted", id: "metric-status"}, "Loading metrics…");
  const grid = h("div", {class: "charts", id: "charts"});
  const controls = h("div", {class: "toolbar"});
  fill(root, controls, status, grid);

  /** @type {Map<string, {metric: string, field: string, card: HTMLElement, stats: HTMLElement, doc: any, chart: any}>} */
  const charts = new Map();
  let index = null;
  let timer = 0;
  let alive = true;
  const quiet = (changes) => {
    Object.assign(q, changes);
    for (const key of Object.keys(q)) if (q[key] === "" || q[key] === undefined) delete q[key];
    ctx.setQueryQuietly(q);
  };
  const zoom = () => (q.zoom ? q.zoom.split(",").map(Number) : null);

  const failed = (err) => err.name !== "AbortError" && fill(status, errorBox(err, "the metrics"));

  const dashrcUrl = `/ui/experiments/${encodeURIComponent(exp)}/dashrc`;
  let stopDeclared = () => {};
  /** The .dashrc editor in place of the tab; saving or cancelling shows the tab again. */
  const edit = (text) => {
    alive = false;
    clearTimeout(timer);
    const env = {id: exp, index: index.metrics, session: ctx.session, signal: ctx.signal};
    stopDeclared();
    stopDeclared = openEditor(root, {text, saveUrl: dashrcUrl, title: "This experiment's .dashrc",
      signal: ctx.signal, preview: (box, config) => renderDeclared(box, config, env),
      onSaved: () => ctx.setQuery({...q, auto: ""}), onCancel: () => ctx.setQuery(q)});
  };

  const start = async () => {
    index = await api(`/experiments/${encodeURIComponent(exp)}/series`, {signal: ctx.signal});
    const rc = q.auto === "1" ? null : await loadDashrc(dashrcUrl, ctx.signal);
    if (rc && !rc.config) { // stored, but no longer valid: say so, draw the automatic charts
      root.prepend(h("div", null, errorBox(rc.error || {message: "invalid"}, "this experiment's .dashrc"),
        ctx.session.readOnly ? null : h("button", {type: "button", id: "dashrc-edit", onclick: () => edit(rc.text)},
          "Edit .dashrc")));
    } else if (rc) { // the experiment declares its charts
      fill(controls, h("span", {class: "muted"}, "Charts declared by this experiment's .dashrc"),
        ctx.session.readOnly ? null : h("button", {type: "button", id: "dashrc-edit", onclick: () => edit(rc.text)},
          "Edit .dashrc"),
        h("button", {type: "button", id: "all-metrics", onclick: () => ctx.setQuery({...q, auto: "1"})}, "All metrics"));
      fill(status);
      stopDeclared = await renderDeclared(grid, rc.config,
        {id: exp, index: index.metrics, session: ctx.session, signal: ctx.signal});
      document.body.dataset.chartsDrawn = String(grid.querySelectorAll("figure").length);
      return;
    }
    if (!index.metrics.length) {
      fill(status, h("span", {class: "empty"}, "This experiment has no metrics."));
      return;
    }
    const xFields = [...new Set(index.metrics.flatMap((m) => m.xFields || []))];
    if (!q.x || !xFields.includes(q.x)) q.x = pickDefaultX(xFields);
    const all = index.metrics.flatMap((m) => Object.keys(m.fields).filter((f) => !X_LIKE.has(f) && f !== q.x)
      .map((f) => `${m.name}.${f}`));
    const chosen = q.m ? q.m.split(",").filter((k) => all.includes(k)) : all.slice(0, DEFAULT_CHARTS);
    fill(controls, toolbar(all, chosen, xFields));
    await draw(chosen);
    schedule();
  };

  const toolbar = (all, chosen, xFields) => {
    const picked = new Set(chosen);
    const filter = h("input", {type: "search", id: "metric-filter", placeholder: "Filter metrics",
      "aria-label": "Filter metrics", oninput: () => {
        const text = filter.value.trim().toLowerCase();
        for (const label of list.querySelectorAll("label")) label.hidden = !label.textContent.toLowerCase().includes(text);
      }});
    const list = h("div", {class: "metric-list"}, all.map((key) => h("label", null,
      h("input", {type: "checkbox", checked: picked.has(key), value: key, onchange: (e) => {
        if (e.target.checked) picked.add(key);
        else picked.delete(key);
        const keys = all.filter((k) => picked.has(k));
        quiet({m: keys.length === all.length ? "" : keys.join(",")});
        draw(keys).catch(failed);
      }}), key)));
    const xSelect = h("select", {id: "x-axis", "aria-label": "x-axis", onchange: () => {
      quiet({x: xSelect.value, zoom: ""});
      for (const c of charts.values()) c.x = xOf(c.metric);
      redrawAll().catch(failed);
    }}, xFields.map((f) => h("option", {value: f, selected: f === q.x}, f)));
    const logY = h("input", {type: "checkbox", id: "log-y", checked: q.log === "1", onchange: () => {
      quiet({log: logY.checked ? "1" : ""});
      rebuildCharts();
    }});
    const smooth = h("input", {type: "range", id: "smooth", min: 0, max: 0.99, step: 0.01, value: q.smooth || 0,
      "aria-label": "Smoothing", oninput: debounce(() => {
        quiet({smooth: Number(smooth.value) ? smooth.value : ""});
        for (const c of charts.values()) c.chart && c.chart.update(chartData(c.doc));
      }, 50)});
    const reset = h("button", {type: "button", id: "reset-zoom", onclick: () => setZoom(null)}, "Reset zoom");
    const save = h("button", {type: "button", id: "dashrc-save-as", title: "Write these charts into the experiment's "
      + ".dashrc (opens the editor)", onclick: () => edit(toYaml({metrics: {fields: ["*"]},
      charts: all.filter((k) => picked.has(k)).map((k) => ({ctype: "line", title: k, xKey: q.x, yKey: k,
        ...(q.log === "1" ? {logY: true} : {}), ...(Number(q.smooth) > 0 ? {smoothing: Number(q.smooth)} : {})}))}))},
    "Save as .dashrc");
    return [h("details", {class: "cols"}, h("summary", null, `Metrics (${chosen.length}/${all.length})`), filter, list),
      h("label", null, "x ", xSelect), h("label", null, logY, " log y"),
      h("label", null, "smoothing ", smooth), reset, ctx.session.readOnly ? null : save];
  };

  const chartData = (doc) => {
    const weight = Number(q.smooth || 0);
    const d = toChartData(doc, {smooth: weight, logY: q.log === "1"});
    // Smoothed in logging order by toChartData; the raw mean stays drawn underneath.
    return {...d, y: weight > 0 ? d.raw : d.y, smooth: weight > 0 ? d.y : null};
  };

  /** The chosen x-axis, or the metric's own default when it does not log that field. */
  const xOf = (metric) => {
    const m = index.metrics.find((x) => x.name === metric);
    const fields = (m && m.xFields) || ["index"];
    return fields.includes(q.x) ? q.x : pickDefaultX(fields);
  };

  const request = (c, extra = {}) => {
    const z = c.x === q.x ? zoom() : null; // a zoom is a range of the chosen x-axis
    return {experimentId: exp, metric: c.metric, y: c.field, x: c.x, ...(z ? {start: z[0], end: z[1]} : {}), ...extra};
  };

  const fetchAll = async (list, extra = () => ({})) => {
    if (!list.length) return [];
    const doc = await api("/series", {method: "POST", signal: ctx.signal,
      body: {points, series: list.map((c) => request(c, extra(c)))}});
    return doc.series;
  };

  const draw = async (keys) => {
    for (const [key, c] of charts) {
      if (!keys.includes(key)) {
        c.chart && c.chart.destroy();
        c.card.remove();
        charts.delete(key);
      }
    }
    const fresh = [];
    for (const key of keys) {
      if (charts.has(key)) continue;
      const dot = key.lastIndexOf(".");
      const c = {metric: key.slice(0, dot), field: key.slice(dot + 1), x: xOf(key.slice(0, dot)), card: h("div"),
        stats: h("span"), doc: null, chart: null};
      c.card = h("figure", {class: "chart", dataset: {key}}, h("figcaption", null, h("strong", null, key), " ",
        c.stats), h("div", {class: "plot"}));
      charts.set(key, c);
      fresh.push(c);
    }
    // Keep the chosen order on screen.
    grid.replaceChildren(...keys.map((k) => charts.get(k).card));
    fill(status, keys.length ? "" : "Choose metrics to chart.");
    const docs = await fetchAll(fresh);
    docs.forEach((doc, i) => place(fresh[i], doc));
    document.body.dataset.chartsDrawn = String(charts.size);
    // For bench/dashboard.py and the browser tests: when the charts first stood on the page.
    if (!performance.getEntriesByName("ml-dash:charts-drawn").length) performance.mark("ml-dash:charts-drawn");
  };

  const place = (c, doc) => {
    if (!alive) return;
    const plot = /** @type {HTMLElement} */ (c.card.querySelector(".plot"));
    if (doc.error) {
      fill(plot, errorBox(doc.error, c.metric));
      return;
    }
    c.doc = doc;
    c.chart && c.chart.destroy();
    c.chart = null;
    fill(plot);
    showStats(c);
    c.card.dataset.drawn = "1";
    c.card.dataset.buckets = String(doc.x.length);
    if (!doc.x.length) {
      fill(plot, h("p", {class: "empty"}, doc.total ? `No finite ${c.field} with a numeric ${c.x} in this range.`
        : "No points yet."));
      return;
    }
    c.chart = lineChart(plot, chartData(doc), {width: chartWidth(grid), height: HEIGHT, time: c.x === "timestamp",
      logY: q.log === "1", xLabel: c.x, syncKey: `exp-${exp}-${c.x}`, onZoom: (x0, x1) => setZoom([x0, x1], c.x),
      onReset: () => setZoom(null)});
  };

  const showStats = (c) => {
    const m = index && index.metrics.find((x) => x.name === c.metric);
    const s = m && m.fields[c.field];
    const last = c.doc && c.doc.last ? c.doc.last.y : s ? s.last : null;
    fill(c.stats, h("span", {class: "muted"}, `latest ${formatNumber(last)} · min ${formatNumber(s ? s.min : null)}`
      + ` · max ${formatNumber(s ? s.max : null)} · ${(c.doc ? c.doc.total : 0).toLocaleString("en")} points`),
    c.doc && c.doc.nonFinite && c.doc.nonFinite.some((n) => n > 0) ? h("span", {class: "bad"}, " · NaN/Inf logged")
      : null);
  };

  const setZoom = (range, x = q.x) => {
    quiet({x, zoom: range ? `${range[0]},${range[1]}` : ""});
    for (const c of charts.values()) c.x = xOf(c.metric);
    redrawAll().catch(failed);
  };

  const redrawAll = async () => {
    const list = [...charts.values()];
    const docs = await fetchAll(list);
    docs.forEach((doc, i) => place(list[i], doc));
  };

  const rebuildCharts = () => {
    for (const c of charts.values()) if (c.doc) place(c, c.doc);
  };

  // Live: each tick asks every chart for what came after its cursor (cost independent of history).
  const tick = async () => {
    if (ctx.live() && !zoom()) {
      const list = [...charts.values()].filter((c) => c.doc);
      index = await api(`/experiments/${encodeURIComponent(exp)}/series`, {signal: ctx.signal});
      const tails = await fetchAll(list, (c) => ({since: c.doc.cursor}));
      const regrow = [];
      tails.forEach((tail, i) => {
        const c = list[i];
        if (tail.error) return;
        if (tail.x.length) {
          c.doc = appendTail(c.doc, tail);
          if (c.doc.x.length > 2 * points) regrow.push(c); // too fine now: ask for buckets again
          else if (c.chart) c.chart.update(chartData(c.doc));
          else place(c, c.doc);
        }
        showStats(c);
      });
      if (regrow.length) (await fetchAll(regrow)).forEach((doc, i) => place(regrow[i], doc));
    }
    schedule();
  };
  const schedule = () => {
    clearTimeout(timer);
    if (alive) timer = setTimeout(() => tick().catch(failed), ctx.session.pollSeconds * 1000);
  };

  const onResize = debounce(() => {
    for (const c of charts.values()) c.chart && c.chart.resize(chartWidth(grid));
  }, 100);
  window.addEventListener("resize", onResize);
  window.addEventListener("ml-dash-theme", rebuildCharts);
  start().catch(failed);
  return () => {
    alive = false;
    clearTimeout(timer);
    window.removeEventListener("resize", onResize);
    window.removeEventListener("ml-dash-theme", rebuildCharts);
    for (const c of charts.values()) c.chart && c.chart.destroy();
    stopDeclared();
  };
}

