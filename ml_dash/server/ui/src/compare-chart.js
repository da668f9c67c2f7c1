// One chart of several runs: a line per run (its own colour, optional dash), or per group a mean
// line inside its band (min/max or ± std). The values of every line at the cursor's x are listed
// under the chart (uPlot's cursor gives the index; the readout is plain DOM).
import uPlot from "uplot";

import {h} from "./dom.js";
import {formatNumber} from "./lib/format.js";

function axisColors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {axis: v("--muted", "#666"), grid: v("--grid", "rgba(128,128,128,0.15)")};
}

/** "#rrggbb" + alpha → rgba(). */
export function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/**
 * @param {HTMLElement} target
 * @param {{lines: {label: string, color: string, dash?: number[], x: number[], y: (number|null)[]}[],
 *   bands: {label: string, color: string, x: number[], mean: (number|null)[], lo: (number|null)[], hi: (number|null)[]}[]}} data
 * @param {{width: number, height: number, time: boolean, logY: boolean, xLabel: string, syncKey: string}} opts
 */
export function compareChart(target, data, opts) {
  const {axis, grid} = axisColors();
  const tables = [];
  const series = [{}];
  const shown = []; // [series index, label, color] of the lines the readout lists
  const bands = [];
  for (const b of data.bands) {
    tables.push([b.x, b.hi, b.lo, b.mean]);
    const base = series.length;
    series.push({label: `${b.label} max`, stroke: withAlpha(b.color, 0.35), width: 1, points: {show: false}},
      {label: `${b.label} min`, stroke: withAlpha(b.color, 0.35), width: 1, points: {show: false}},
      {label: b.label, stroke: b.color, width: 2, points: {show: false}});
    bands.push({series: [base, base + 1], fill: withAlpha(b.color, 0.15)});
    shown.push([base + 2, b.label, b.color]);
  }
  for (const l of data.lines) {
    tables.push([l.x, l.y]);
    series.push({label: l.label, stroke: l.color, width: 1.5, dash: l.dash, spanGaps: true});
    shown.push([series.length - 1, l.label, l.color]);
  }
  const aligned = tables.length ? uPlot.join(tables) : [[]];
  const readout = h("div", {class: "readout"});
  const plotBox = h("div");
  target.replaceChildren(plotBox, readout);
  const values = shown.map(([, label, color]) => {
    const value = h("span", {class: "num"}, "–");
    readout.append(h("span", {class: "item"}, h("i", {class: "swatch", style: `background:${color}`}), label, " ", value));
    return value;
  });
  const show = (idx) => {
    shown.forEach(([s], i) => {
      const column = aligned[s];
      const k = idx === null || idx === undefined ? lastIndex(column) : near(column, idx);
      values[i].textContent = k === null ? "–" : formatNumber(column[k]);
    });
  };
  const u = new uPlot({
    width: opts.width, height: opts.height, legend: {show: false},
    cursor: {sync: {key: opts.syncKey}, drag: {x: true, y: false}},
    scales: {x: {time: opts.time, distr: opts.logX ? 3 : 1}, y: {distr: opts.logY ? 3 : 1}},
    axes: [{stroke: axis, grid: {stroke: grid}, ticks: {stroke: grid}, label: opts.xLabel, labelSize: 18, size: 36},
      {stroke: axis, grid: {stroke: grid}, ticks: {stroke: grid}, size: 56}],
    series, bands,
    hooks: {setCursor: [(self) => show(self.cursor.idx)]},
  }, aligned, plotBox);
  show(null);
  return {
    plot: u,
    resize(width) {
      u.setSize({width, height: opts.height});
    },
    destroy() {
      u.destroy();
    },
  };
}

function lastIndex(column) {
  if (!column) return null;
  for (let k = column.length - 1; k >= 0; k--) if (column[k] !== null && column[k] !== undefined) return k;
  return null;
}

/** The index nearest to k where the line has a value (lines logged at other x leave gaps in the join). */
function near(column, k) {
  if (!column) return null;
  for (let d = 0; d < 64; d++) {
    if (column[k - d] !== null && column[k - d] !== undefined) return k - d;
    if (column[k + d] !== null && column[k + d] !== undefined) return k + d;
  }
  return null;
}
