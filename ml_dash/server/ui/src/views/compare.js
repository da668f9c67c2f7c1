// Compare runs: one chart per metric field shared by ≥ 2 runs (a line per run, or per group a mean
// inside a band), the parameter table ("differences only"), a scatter of a parameter against a
// metric summary, and parallel coordinates. Everything the runs need comes in two requests:
// POST /ui/compare (who they are, params, metric summaries) and one POST /series for all lines.
import {api} from "../api.js";
import {compareChart} from "../compare-chart.js";
import {debounce, errorBox, fill, h} from "../dom.js";
import {chartWidth} from "../layout.js";
import {differingKeys, groupRuns, groupSeries} from "../lib/group.js";
import {flattenParams, paramText} from "../lib/params.js";
import {colorFor} from "../lib/plotmath.js";
import {formatHash} from "../lib/route.js";
import {appendTail, pickDefaultX, toChartData} from "../lib/series.js";
import {renderParallel} from "../plots/parallel.js";
import {renderScatter} from "../plots/scatter.js";
import {toYaml} from "../lib/yaml.js";
import {loadDashrc, openEditor, renderDeclaredCompare} from "./dashrc.js";

const X_LIKE = new Set(["step", "epoch", "timestamp", "index"]);
const MAX_CHARTS = 24;
const HEIGHT = 240;
const SUMMARIES = ["last", "min", "max"];

export function renderCompare(root, ctx) {
  const {ns, project} = ctx.state;
  const q = {...(ctx.state.query || {})};
  const controller = new AbortController();
  const status = h("p", {class: "muted", id: "compare-status"}, "Loading runs…");
  fill(root, h("h1", null, "Compare"), status);
  const cleanups = [];
  const quiet = (changes) => {
    Object.assign(q, changes);
    for (const key of Object.keys(q)) if (q[key] === "" || q[key] === undefined) delete q[key];
    history.replaceState(null, "", formatHash({view: "compare", ns, project, query: q}));
  };

  const start = async () => {
    let ids = (q.ids || "").split(",").filter(Boolean);
    let rc = null;
    if (!ids.length && q.folder !== undefined) {
      const page = await api(`/ui/projects/${encodeURIComponent(project)}/experiments`, {signal: controller.signal,
        query: {namespace: ns, folder: q.folder, recursive: 1, limit: 500, sort: "name", order: "asc"}});
      ids = page.items.map((e) => e.id);
      // A folder's .dashrc is its saved Compare view: which runs, grouping, and its charts.
      rc = await loadDashrc(folderDashrc(ns, project, q.folder), controller.signal);
      if (rc && !rc.config) {
        root.prepend(errorBox(rc.error || {message: "invalid"}, "the folder's .dashrc"));
        rc = null;
      }
      const saved = rc && rc.config.compare;
      if (saved) {
        if (saved.experiments.length) {
          const pathOf = (e) => [e.folder, e.name].filter(Boolean).join("/").replace(/^\/+/, "");
          ids = page.items.filter((e) => saved.experiments.some((p) => p === e.id ||
            pathOf(e).startsWith(String(p).replace(/^\/+/, "")))).map((e) => e.id);
        }
        if (q.group === undefined && saved.groupBy) q.group = saved.groupBy;
        if (q.band === undefined && saved.band) q.band = saved.band;
        if (q.diff === undefined && saved.differencesOnly) q.diff = "1";
      }
    }
    if (ids.length < 1) {
      fill(status, errorBox({message: "no runs to compare", hint: "tick runs in the experiment table, or pick a folder"}));
      return;
    }
    const doc = await api("/ui/compare", {method: "POST", body: {ids}, signal: controller.signal});
    const runs = doc.experiments.map((e, i) => ({id: e.experiment.id, name: e.experiment.name,
      folder: e.experiment.folder, status: e.experiment.status, color: colorFor(i),
      params: Object.fromEntries(flattenParams(e.params || {})), metrics: e.metrics}));
    draw(runs, rc);
  };

  const draw = (runs, rc) => {
    const keyCount = new Map();
    const xFields = new Set();
    for (const run of runs) {
      for (const m of run.metrics) {
        (m.xFields || []).forEach((f) => xFields.add(f));
        for (const f of Object.keys(m.fields)) {
          if (X_LIKE.has(f)) continue;
          const key = `${m.name}.${f}`;
          keyCount.set(key, (keyCount.get(key) || 0) + 1);
        }
      }
    }
    const need = Math.min(2, runs.length);
    const shared = [...keyCount].filter(([, n]) => n >= need).map(([k]) => k).sort();
    if (!q.x || !xFields.has(q.x)) q.x = pickDefaultX([...xFields]);
    const chosen = q.m ? q.m.split(",").filter((k) => shared.includes(k)) : shared.slice(0, MAX_CHARTS);
    const differing = differingKeys(runs.map((r) => r.params));
    const grid = h("div", {class: "charts", id: "compare-charts"});
    const legend = h("ul", {class: "legend", id: "compare-legend"}, runs.map((r) => h("li", null,
      h("i", {class: "swatch", style: `background:${r.color}`}),
      h("a", {href: formatHash({view: "experiment", ns, project, id: r.id, tab: "metrics"})}, r.name),
      r.folder ? h("span", {class: "muted small"}, ` ${r.folder}`) : null, " ",
      h("span", {class: `status ${r.status}`}, r.status))));
    const groupSelect = h("select", {id: "group-by", "aria-label": "Group by", onchange: () => {
      quiet({group: groupSelect.value});
      charts().catch(failed);
    }}, h("option", {value: ""}, "no grouping"), h("option", {value: "folder", selected: q.group === "folder"}, "folder"),
    differing.map((k) => h("option", {value: `params.${k}`, selected: q.group === `params.${k}`}, k)));
    const bandSelect = h("select", {id: "band", "aria-label": "Band", onchange: () => {
      quiet({band: bandSelect.value === "minmax" ? "" : bandSelect.value});
      charts().catch(failed);
    }}, h("option", {value: "minmax"}, "min/max band"), h("option", {value: "std", selected: q.band === "std"}, "± std band"));
    const xSelect = h("select", {id: "x-axis", "aria-label": "x-axis", onchange: () => {
      quiet({x: xSelect.value});
      charts().catch(failed);
    }}, [...xFields].map((f) => h("option", {value: f, selected: f === q.x}, f)));
    const logY = h("input", {type: "checkbox", id: "log-y", checked: q.log === "1", onchange: () => {
      quiet({log: logY.checked ? "1" : ""});
      charts().catch(failed);
    }});
    const picked = new Set(chosen);
    const metricList = h("details", {class: "cols"}, h("summary", null, `Metrics (${chosen.length}/${shared.length})`),
      h("div", {class: "metric-list"}, shared.map((key) => h("label", null, h("input", {type: "checkbox",
        checked: picked.has(key), onchange: (e) => {
          if (e.target.checked) picked.add(key);
          else picked.delete(key);
          const keys = shared.filter((k) => picked.has(k));
          quiet({m: keys.join(",")});
          charts().catch(failed);
        }}), key))));
    const paramsBox = h("section", {id: "compare-params"});
    const savedBox = h("section", {id: "compare-saved"});
    const folder = q.folder !== undefined ? q.folder : commonFolder(runs);
    const edit = (text) => {
      cleanups.forEach((fn) => fn());
      cleanups.length = 0;
      const env = {session: ctx.session, signal: controller.signal};
      cleanups.push(openEditor(root, {text, saveUrl: folderDashrc(ns, project, folder),
        title: `.dashrc of folder ${folder || "(project root)"}`, signal: controller.signal,
        preview: (box, config) => renderDeclaredCompare(box, config, runs, env),
        onSaved: () => ctx.navigate({view: "compare", ns, project, query: {folder}}),
        onCancel: () => ctx.navigate({view: "compare", ns, project, query: q}, true)}));
    };
    const saveAs = h("button", {type: "button", id: "dashrc-save-as", onclick: () => edit(toYaml({
      compare: {experiments: runs.map((r) => r.id), ...(q.group ? {groupBy: q.group} : {}),
        ...(q.band ? {band: q.band} : {}), ...(q.diff === "1" ? {differencesOnly: true} : {})},
      charts: shared.filter((k) => picked.has(k)).map((k) => ({ctype: "line", title: k, xKey: q.x, yKey: k,
        ...(q.log === "1" ? {logY: true} : {}),
        series: runs.map((r) => ({experimentId: r.id, label: r.name, color: r.color}))}))}))},
    "Save as .dashrc");
    const scatterBox = h("section", {id: "compare-scatter"});
    const parallelBox = h("section", {id: "compare-parallel"});
    fill(root, h("h1", null, `Compare ${runs.length} runs`), legend,
      h("div", {class: "toolbar"}, metricList, h("label", null, "x ", xSelect), h("label", null, "group by ", groupSelect),
        bandSelect, h("label", null, logY, " log y"), ctx.session.readOnly ? null : saveAs),
      savedBox, status, grid, paramsBox, scatterBox, parallelBox);
    if (rc) {
      const charts = h("div");
      fill(savedBox, h("h2", null, `Saved view (.dashrc of ${q.folder || "the project root"})`,
        ctx.session.readOnly ? null : h("button", {type: "button", id: "dashrc-edit", class: "small",
          onclick: () => edit(rc.text)}, "Edit .dashrc")),
      charts);
      renderDeclaredCompare(charts, rc.config, runs, {session: ctx.session, signal: controller.signal})
        .then((stop) => cleanups.push(stop)).catch(failed);
    }
    fill(status);

    let live = [];
    /** @type {{figure: HTMLElement, members: any[], groups: any, chart: any}[]} */
    let held = [];
    /** (Re)draws one chart from its members' held series documents. */
    const paint = (entry) => {
      const {figure, members, groups} = entry;
      const lines = members.map((m) => ({label: m.run.name, color: m.run.color, ...line(m.doc, q.log === "1")}));
      let data = {lines, bands: []};
      if (groups) {
        data = {lines: [], bands: groups.map((g, gi) => {
          const inGroup = lines.filter((_, i) => g.ids.includes(members[i].run.id));
          return {label: `${g.label} (${inGroup.length})`, color: colorFor(gi),
            ...groupSeries(inGroup, {band: q.band === "std" ? "std" : "minmax"})};
        }).filter((b) => b.x.length)};
      }
      if (entry.chart) {
        entry.chart.destroy();
        live = live.filter((c) => c !== entry.chart);
      }
      const plot = /** @type {HTMLElement} */ (figure.querySelector(".plot"));
      entry.chart = compareChart(plot, data, {width: chartWidth(grid), height: HEIGHT, time: q.x === "timestamp",
        logY: q.log === "1", xLabel: q.x, syncKey: "compare"});
      live.push(entry.chart);
      figure.dataset.drawn = "1";
      figure.dataset.lines = String(data.lines.length + data.bands.length);
    };
    // Live: while a run is RUNNING, each tick asks every line for what came after its cursor (one
    // batch; the cost does not grow with history) and redraws the charts that got something.
    let timer = 0;
    const tick = async () => {
      if (runs.some((r) => r.status === "RUNNING") && held.length) {
        const members = held.flatMap((entry) => entry.members.map((m) => ({entry, m})));
        const doc = await api("/series", {method: "POST", signal: controller.signal, body: {points: 1000,
          series: members.map(({m}) => ({...m.item, since: m.doc.cursor}))}});
        const changed = new Set();
        doc.series.forEach((tail, i) => {
          if (tail.error || !tail.x.length) return;
          members[i].m.doc = appendTail(members[i].m.doc, tail);
          changed.add(members[i].entry);
        });
        changed.forEach(paint);
      }
      timer = setTimeout(() => tick().catch(failed), ctx.session.pollSeconds * 1000);
    };
    timer = setTimeout(() => tick().catch(failed), ctx.session.pollSeconds * 1000);
    cleanups.push(() => clearTimeout(timer));
    const charts = async () => {
      for (const c of live) c.destroy();
      live = [];
      const keys = shared.filter((k) => picked.has(k));
      grid.replaceChildren();
      if (!keys.length) {
        fill(status, "Choose metrics to chart.");
        return;
      }
      // One batch for every line of every chart; fewer buckets a line when there are many runs.
      const points = Math.min(ctx.session.maxSeriesPoints, runs.length <= 10 ? 1000 : Math.max(200,
        Math.floor(20000 / runs.length)));
      const wanted = [];
      for (const key of keys) {
        const dot = key.lastIndexOf(".");
        const metric = key.slice(0, dot);
        const field = key.slice(dot + 1);
        for (const run of runs) {
          const m = run.metrics.find((x) => x.name === metric);
          if (!m || !(field in m.fields)) continue;
          const x = (m.xFields || []).includes(q.x) ? q.x : pickDefaultX(m.xFields || ["index"]);
          wanted.push({key, run, x, item: {experimentId: run.id, metric, y: field, x}});
        }
      }
      const doc = await api("/series", {method: "POST", signal: controller.signal,
        body: {points, series: wanted.map((w) => w.item)}});
      const byKey = new Map(keys.map((k) => [k, []]));
      doc.series.forEach((s, i) => {
        if (!s.error) byKey.get(wanted[i].key).push({...wanted[i], doc: s});
      });
      const groups = q.group ? groupRuns(runs, q.group) : null;
      held = [];
      for (const key of keys) {
        const members = byKey.get(key);
        const figure = h("figure", {class: "chart", dataset: {key}}, h("figcaption", null, h("strong", null, key),
          h("span", {class: "muted"}, ` · ${members.length} runs · x ${members[0] ? members[0].x : q.x}`)),
        h("div", {class: "plot"}));
        grid.append(figure);
        const entry = {figure, members, groups, chart: null};
        held.push(entry);
        paint(entry);
      }
      if (!performance.getEntriesByName("ml-dash:compare-drawn").length) performance.mark("ml-dash:compare-drawn");
    };
    cleanups.push(() => live.forEach((c) => c.destroy()));
    const onResize = debounce(() => live.forEach((c) => c.resize(chartWidth(grid))), 100);
    window.addEventListener("resize", onResize);
    cleanups.push(() => window.removeEventListener("resize", onResize));

    paramsTable(paramsBox, runs, differing, q.diff === "1", (diff) => quiet({diff: diff ? "1" : ""}));
    cleanups.push(summaryPlots(scatterBox, parallelBox, runs, differing, shared, q, quiet));
    charts().catch(failed);
  };

  const failed = (err) => err.name !== "AbortError" && fill(status, errorBox(err, "the comparison"));
  start().catch(failed);
  return () => {
    controller.abort();
    cleanups.forEach((fn) => fn());
  };
}

/** The address of a folder's .dashrc. */
function folderDashrc(ns, project, folder) {
  return `/ui/dashrc?namespace=${encodeURIComponent(ns)}&project=${encodeURIComponent(project)}` +
    `&folder=${encodeURIComponent(folder || "")}`;
}

/** The folder every run is in, or "" (the project's root) when they differ. */
function commonFolder(runs) {
  const folders = new Set(runs.map((r) => r.folder || ""));
  return folders.size === 1 ? [...folders][0] : "";
}

/** A run's series as one line (sorted x; bucket means; log y drops values ≤ 0). */
function line(doc, logY) {
  const d = toChartData(doc, {logY});
  return {x: d.x, y: d.y};
}

function paramsTable(box, runs, differing, diffOnly, remember) {
  const all = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const toggle = h("input", {type: "checkbox", id: "diff-only", checked: diffOnly, onchange: () => {
    remember(toggle.checked);
    draw();
  }});
  const table = h("div", {class: "table-box"});
  const draw = () => {
    const keys = toggle.checked ? differing : all;
    fill(table, keys.length ? h("table", {class: "grid params-diff"},
      h("thead", null, h("tr", null, h("th", {scope: "col"}, "parameter"),
        runs.map((r) => h("th", {scope: "col"}, h("i", {class: "swatch", style: `background:${r.color}`}), r.name)))),
      h("tbody", null, keys.map((k) => h("tr", {class: differing.includes(k) ? "differs" : null},
        h("th", {scope: "row"}, k), runs.map((r) => h("td", null, k in r.params ? paramText(r.params[k]) : "–"))))))
      : h("p", {class: "empty"}, toggle.checked ? "All parameters are equal." : "No parameters."));
  };
  fill(box, h("h2", null, "Parameters"), h("label", null, toggle, " differences only"), table);
  draw();
}

/** The scatter (a parameter against a metric summary) and parallel coordinates. */
function summaryPlots(scatterBox, parallelBox, runs, differing, shared, q, quiet) {
  const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  if (!params.length || !shared.length) {
    fill(scatterBox);
    fill(parallelBox);
    return () => {};
  }
  if (!q.sx || !params.includes(q.sx)) q.sx = differing[0] || params[0];
  if (!q.sy) q.sy = `${shared[0]}:last`;
  const value = (run, spec) => {
    const [key, how] = spec.split(":");
    const dot = key.lastIndexOf(".");
    const m = run.metrics.find((x) => x.name === key.slice(0, dot));
    const s = m && m.fields[key.slice(dot + 1)];
    return s ? s[how || "last"] : null;
  };
  const sx = h("select", {id: "scatter-x", "aria-label": "Parameter"}, params.map((p) => h("option", {value: p,
    selected: p === q.sx}, p)));
  const sy = h("select", {id: "scatter-y", "aria-label": "Metric summary"}, shared.flatMap((k) => SUMMARIES.map((s) =>
    h("option", {value: `${k}:${s}`, selected: `${k}:${s}` === q.sy}, `${k} (${s})`))));
  const scatterPlot = h("div", {class: "plot2d", id: "scatter"});
  const pcKeys = (q.pc ? q.pc.split(",") : differing.slice(0, 6)).filter((k) => params.includes(k));
  const pcPicked = new Set(pcKeys);
  const pcList = h("details", {class: "cols"}, h("summary", null, "Axes"), h("div", {class: "metric-list"},
    params.map((p) => h("label", null, h("input", {type: "checkbox", checked: pcPicked.has(p), onchange: (e) => {
      if (e.target.checked) pcPicked.add(p);
      else pcPicked.delete(p);
      quiet({pc: params.filter((k) => pcPicked.has(k)).join(",")});
      drawParallel();
    }}), p))));
  const parallelPlot = h("div", {class: "plot2d", id: "parallel"});
  fill(scatterBox, h("h2", null, "Parameter vs metric"), h("div", {class: "toolbar"}, h("label", null, "x ", sx),
    h("label", null, "y ", sy)), scatterPlot);
  fill(parallelBox, h("h2", null, "Parallel coordinates"), h("div", {class: "toolbar"}, pcList,
    h("span", {class: "muted"}, "last axis: the metric summary chosen above")), parallelPlot);
  const width = () => Math.max(320, scatterBox.clientWidth - 20); // .plot2d: 8 px padding, 1 px border a side
  let scatter = null;
  let parallel = null;
  const drawScatter = () => {
    const data = {xLabel: q.sx, yLabel: q.sy.replace(":", " "), points: runs.map((r) => ({id: r.id, label: r.name,
      x: r.params[q.sx] ?? null, y: value(r, q.sy), color: r.color}))};
    if (scatter) scatter.update(data);
    else scatter = renderScatter(scatterPlot, data, {width: width(), height: 300});
  };
  const drawParallel = () => {
    const axes = [...params.filter((k) => pcPicked.has(k)).map((k) => ({key: k, label: k})),
      {key: "__metric", label: q.sy.replace(":", " ")}];
    const data = {axes, rows: runs.map((r) => ({id: r.id, label: r.name, color: r.color,
      values: {...r.params, __metric: value(r, q.sy)}}))};
    if (parallel) parallel.update(data);
    else parallel = renderParallel(parallelPlot, data, {width: width(), height: 320});
  };
  sx.addEventListener("change", () => {
    quiet({sx: sx.value});
    drawScatter();
  });
  sy.addEventListener("change", () => {
    quiet({sy: sy.value});
    drawScatter();
    drawParallel();
  });
  drawScatter();
  drawParallel();
  return () => {
    if (scatter) scatter.destroy();
    if (parallel) parallel.destroy();
  };
}

