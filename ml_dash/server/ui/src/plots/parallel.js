// Parallel coordinates over chosen parameters and one metric, one polyline per experiment: the
// compare view's "which combination of settings gave the good runs". Direct canvas code on the
// frame of scatter.js (canvas, tooltip, note, theme); the math is lib/plotmath.js.
//
// A run without a value on an axis is not dropped: its line goes, dashed, to a "none" slot just
// below that axis, so every run stays traceable across all axes and the gap is visible.
import {h} from "../dom.js";
import {formatNumber} from "../lib/format.js";
import {
  categoryKey, categoryScale, colorFor, extent, isNumericColumn, linearScale, niceTicks, rampColor,
  segmentDistance2, tickFormatter, toNumber, widen,
} from "../lib/plotmath.js";
import {fitText, listen, plotFrame, plotTheme, runs, stepKeys} from "./scatter.js";

const HIT_DISTANCE = 8; // px: how near the pointer must be to a line to hover it
const MISSING_GAP = 18; // px between an axis' bottom and its "none" slot

/**
 * @typedef {{key: string, label?: string}} ParallelAxis
 * @typedef {{id: any, label?: string, color?: string, values: Record<string, any>}} ParallelRow
 * @typedef {{axes: ParallelAxis[], rows: ParallelRow[]}} ParallelData
 */

/**
 * Draws parallel coordinates into target (replacing its children): one vertical axis per key, left
 * to right in the given order (numeric: nice ticks, low at the bottom; otherwise its distinct
 * values, sorted), one semi-transparent polyline per row in its colour (or coloured by the axis
 * opts.colorBy: a ramp for numbers, the palette for categories). Missing/NaN values: the segments
 * to them are dashed and end in a "none" slot below the axis. Hover/focus highlights the nearest
 * line and shows its label and values; click, Enter or Space calls onPick(id); the arrow keys move
 * between the lines. No axes or no rows → a message. target.dataset.drawn = "1" after every draw.
 * @param {HTMLElement} target
 * @param {ParallelData} data
 * @param {{width?: number, height?: number, colorBy?: string, onPick?: (id: any) => void}} [opts]
 * @returns {{update(data: ParallelData): void, resize(width: number): void, destroy(): void}}
 */
export function renderParallel(target, data, opts = {}) {
  opts = opts || {};
  let current = data;
  /** @type {Line[]} */
  let lines = [];
  /** @type {Axis[]} */
  let axes = [];
  let active = -1; // index into lines: the hovered / keyboard-selected row
  let alive = true;

  const frame = plotFrame(target, opts, () => draw());
  const {canvas} = frame;

  function draw() {
    if (!alive) return;
    try {
      paint();
    } catch (err) {
      // Odd data must never break the page: say so where the plot would be.
      frame.showMessage(`Could not draw this plot: ${err && err.message ? err.message : err}`);
      lines = [];
    }
    target.dataset.drawn = "1";
  }

  function paint() {
    const d = current && typeof current === "object" ? current : /** @type {ParallelData} */ ({axes: [], rows: []});
    const axisList = (Array.isArray(d.axes) ? d.axes : [])
      .filter((a) => a && typeof a === "object" && a.key !== null && a.key !== undefined);
    const rows = (Array.isArray(d.rows) ? d.rows : []).filter((r) => r && typeof r === "object");
    lines = [];
    axes = [];
    frame.setNote("");
    if (!axisList.length || !rows.length) {
      active = -1;
      canvas.setAttribute("aria-label", "Parallel coordinates: nothing to plot");
      frame.showMessage(!axisList.length
        ? "Nothing to plot: choose at least one parameter or metric."
        : "Nothing to plot: no runs.");
      return;
    }
    const valuesOf = (/** @type {ParallelRow} */ r) => (r.values && typeof r.values === "object" ? r.values : {});

    axes = axisList.map((a) => {
      const key = String(a.key);
      const column = rows.map((r) => valuesOf(r)[key]);
      return {key, label: (typeof a.label === "string" && a.label) || key, column,
        numeric: isNumericColumn(column), x: 0, ticks: [], at: () => null, hasMissing: false, extent: null};
    });
    if (axes.every((a) => a.numeric ? extent(a.column) === null : a.column.every((v) => v === null || v === undefined))) {
      active = -1;
      canvas.setAttribute("aria-label", "Parallel coordinates: nothing to plot");
      frame.showMessage(`Nothing to plot: no run has a value for ${axes.map((a) => a.label).join(", ")}.`);
      return;
    }
    frame.showMessage("");
    const ctx = frame.context();
    if (!ctx) {
      frame.showMessage("Nothing to plot: this browser cannot draw on a canvas.");
      return;
    }
    const theme = plotTheme(target);
    const W = frame.width;
    const H = frame.height;
    ctx.font = theme.font;

    // Vertical layout: titles on top, the "none" slot under the axes when some value is missing.
    for (const a of axes) {
      a.hasMissing = a.column.some((v) => (a.numeric ? toNumber(v) === null : v === null || v === undefined));
    }
    const anyMissing = axes.some((a) => a.hasMissing);
    const top = 30;
    const bottom = 10 + (anyMissing ? MISSING_GAP + 8 : 0);
    const y0 = top;
    const y1 = H - bottom;
    const plotH = y1 - y0;
    const yMissing = y1 + MISSING_GAP;

    for (const a of axes) {
      if (a.numeric) {
        const ext = extent(a.column);
        a.extent = ext;
        const [lo, hi] = ext ? widen(ext[0], ext[1]) : [0, 1];
        const scale = linearScale([lo, hi], [y1, y0]);
        a.ticks = ext ? niceTicks(lo, hi, Math.max(2, Math.min(6, Math.floor(plotH / 40)))) : [];
        const fmt = tickFormatter(a.ticks);
        a.tickText = a.ticks.map(fmt);
        a.tickPos = a.ticks.map((t) => /** @type {number} */ (scale(t)));
        a.at = (v) => scale(v);
      } else {
        const cat = categoryScale(a.column, [y1, y0]);
        a.ticks = cat.domain;
        a.tickText = cat.domain;
        a.tickPos = cat.domain.map((c) => /** @type {number} */ (cat(c)));
        a.at = (v) => cat(v);
      }
    }

    // Horizontal layout: the first axis' labels need room on the left, the last title on the right.
    ctx.font = theme.font;
    const spacingGuess = axes.length > 1 ? W / axes.length : W;
    const labelMax = Math.max(40, Math.min(140, spacingGuess * 0.45));
    const widest = Math.max(0, ...axes[0].tickText.map((t) => ctx.measureText(fitText(ctx, t, labelMax)).width));
    const left = Math.max(30, Math.ceil(widest) + 12);
    const right = 30;
    const plotW = W - left - right;
    if (plotW < 20 || plotH < 40) {
      frame.showMessage("Too small to draw this plot.");
      return;
    }
    axes.forEach((a, i) => {
      a.x = axes.length === 1 ? left + plotW / 2 : left + (plotW * i) / (axes.length - 1);
    });
    const spacing = axes.length > 1 ? plotW / (axes.length - 1) : plotW;

    // Colours: the row's own, or by the colorBy axis.
    const by = axes.find((a) => a.key === opts.colorBy) || null;
    const colorOf = colorer(by, rows, valuesOf, theme.muted);
    if (by) {
      frame.setNote(by.numeric && by.extent
        ? h("span", null, `Colour: ${by.label}, `, formatNumber(by.extent[0]), " ",
          h("span", {style: "display:inline-block;width:60px;height:8px;vertical-align:middle;border-radius:2px;" +
            `background:linear-gradient(to right, ${rampColor(0)}, ${rampColor(0.5)}, ${rampColor(1)})`}),
          " ", formatNumber(by.extent[1]))
        : `Colour: ${by.label}.`);
    }

    lines = rows.map((r, i) => {
      const vals = valuesOf(r);
      const pts = axes.map((a) => {
        const v = vals[a.key];
        const y = a.numeric ? a.at(toNumber(v)) : a.at(v);
        const ok = y !== null && Number.isFinite(y);
        return {x: a.x, y: ok ? /** @type {number} */ (y) : yMissing, missing: !ok, value: v};
      });
      const label = (typeof r.label === "string" && r.label) || (r.id !== null && r.id !== undefined ? categoryKey(r.id) : "") ||
        `#${i + 1}`;
      return {id: r.id, label, color: colorOf(r, i), pts};
    });
    if (active >= lines.length) active = -1;
    const missingRows = lines.filter((l) => l.pts.some((p) => p.missing)).length;
    canvas.setAttribute("aria-label", `Parallel coordinates of ${runs(lines.length)} over ` +
      `${axes.map((a) => a.label).join(", ")}` +
      (missingRows ? `; ${runs(missingRows)} without a value on some axis (dashed)` : "") +
      ". Arrow keys move between the lines.");

    // Lines first, faded when one is highlighted; then axes on top so their labels stay readable.
    const alpha = active >= 0 ? 0.12 : Math.max(0.3, Math.min(0.75, 0.85 - lines.length / 300));
    ctx.lineJoin = "round";
    lines.forEach((l, i) => {
      if (i !== active) strokeLine(ctx, l, l.color, 1.5, alpha);
    });

    ctx.strokeStyle = theme.muted;
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    for (const a of axes) {
      const ax = Math.round(a.x) + 0.5;
      ctx.beginPath();
      ctx.moveTo(ax, y0);
      ctx.lineTo(ax, y1);
      ctx.stroke();
      // Tick labels left of the axis, on a halo of the background so lines do not hide them.
      ctx.textAlign = "right";
      const every = Math.max(1, Math.ceil((a.ticks.length * 14) / Math.max(1, plotH)));
      const maxLabel = Math.max(30, Math.min(140, spacing * 0.45));
      a.tickPos.forEach((py, k) => {
        if (k % every !== 0) return;
        const label = fitText(ctx, a.tickText[k], maxLabel);
        ctx.beginPath();
        ctx.moveTo(ax - 3, Math.round(py) + 0.5);
        ctx.lineTo(ax, Math.round(py) + 0.5);
        ctx.stroke();
        haloText(ctx, label, ax - 5, py, theme);
      });
      if (a.hasMissing) {
        ctx.fillStyle = theme.muted;
        ctx.beginPath();
        ctx.arc(ax, yMissing, 2, 0, Math.PI * 2);
        ctx.fill();
        haloText(ctx, "none", ax - 5, yMissing, theme);
      }
      // Title above, centred (the first and last kept inside the canvas).
      ctx.font = theme.bold;
      ctx.textAlign = "center";
      const title = fitText(ctx, a.label, Math.max(30, Math.min(axes.length > 1 ? spacing - 8 : plotW, 200)));
      const tw = ctx.measureText(title).width;
      const tx = Math.min(W - tw / 2 - 2, Math.max(tw / 2 + 2, a.x));
      ctx.fillStyle = theme.fg;
      ctx.fillText(title, tx, 14);
      ctx.font = theme.font;
    }

    if (active >= 0) {
      const l = lines[active];
      strokeLine(ctx, l, theme.bg, 5, 1); // an outline keeps it visible over any colour
      strokeLine(ctx, l, l.color, 2.5, 1);
    }
  }

  function showActive() {
    if (active < 0 || !lines[active]) {
      frame.hideTip();
      return;
    }
    const l = lines[active];
    const text = axes.map((a, k) => {
      const p = l.pts[k];
      const v = p.value;
      const shown = p.missing ? "–" : typeof v === "number" ? formatNumber(v)
        : a.numeric ? formatNumber(toNumber(v)) : categoryKey(v);
      return `${a.label}: ${shown}`;
    });
    // Beside the line's point nearest the pointer's side: its first present point.
    const anchor = l.pts.find((p) => !p.missing) || l.pts[0];
    frame.showTip([l.label, ...text], lastPointer ? lastPointer.x : anchor.x, lastPointer ? lastPointer.y : anchor.y);
  }

  /** @type {{x: number, y: number} | null} */
  let lastPointer = null;

  function setActive(i) {
    if (i === active) return;
    active = i;
    draw();
    showActive();
  }

  /** @param {MouseEvent} e */
  function lineAt(e) {
    const rect = canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    lastPointer = {x: mx, y: my};
    let best = -1;
    let bestD = HIT_DISTANCE * HIT_DISTANCE;
    lines.forEach((l, i) => {
      const d = lineDistance2(l, mx, my);
      if (d <= bestD) { // ties: the later one, drawn on top
        best = i;
        bestD = d;
      }
    });
    return best;
  }

  const onMove = (/** @type {MouseEvent} */ e) => {
    const i = lineAt(e);
    canvas.style.cursor = i >= 0 && opts.onPick ? "pointer" : "";
    if (i === active && i >= 0) showActive(); // follow the pointer along the same line
    else setActive(i);
  };
  const onLeave = () => {
    lastPointer = null;
    setActive(-1);
  };
  const onClick = (/** @type {MouseEvent} */ e) => {
    const i = lineAt(e);
    if (i >= 0 && opts.onPick) opts.onPick(lines[i].id);
  };
  const onKey = (/** @type {KeyboardEvent} */ e) => {
    if (!lines.length) return;
    lastPointer = null;
    stepKeys(e, lines.map((_, i) => i), active, setActive, (i) => opts.onPick && opts.onPick(lines[i].id));
  };
  listen(canvas, {move: onMove, leave: onLeave, click: onClick, key: onKey});

  draw();

  return {
    update(next) {
      current = next;
      active = -1;
      frame.hideTip();
      draw();
    },
    resize(width) {
      frame.setWidth(width);
      frame.hideTip();
      lastPointer = null;
      draw();
      showActive();
    },
    destroy() {
      alive = false;
      canvas.removeEventListener("mousemove", onMove);
      canvas.removeEventListener("mouseleave", onLeave);
      canvas.removeEventListener("click", onClick);
      canvas.removeEventListener("keydown", onKey);
      canvas.removeEventListener("blur", onLeave);
      frame.destroy();
      delete target.dataset.drawn;
    },
  };
}

/**
 * @typedef {{key: string, label: string, column: any[], numeric: boolean, x: number, ticks: any[],
 *   tickText?: string[], tickPos?: number[], at: (v: any) => number | null, hasMissing: boolean,
 *   extent: [number, number] | null}} Axis
 * @typedef {{id: any, label: string, color: string, pts: {x: number, y: number, missing: boolean, value: any}[]}} Line
 */

/**
 * The colour of each row: by the colorBy axis when there is one (numbers on the ramp, categories
 * from the palette, a missing value grey), else the row's own colour, else the palette by index.
 * @param {Axis | null} by
 * @param {ParallelRow[]} rows
 * @param {(r: ParallelRow) => Record<string, any>} valuesOf
 * @param {string} missing the colour of a row without a value on that axis
 * @returns {(r: ParallelRow, i: number) => string}
 */
function colorer(by, rows, valuesOf, missing) {
  const own = (/** @type {ParallelRow} */ r, /** @type {number} */ i) =>
    (typeof r.color === "string" && r.color ? r.color : colorFor(i));
  if (!by) return own;
  if (by.numeric) {
    const ext = by.extent;
    if (!ext) return () => missing;
    const span = ext[1] - ext[0];
    return (r) => {
      const v = toNumber(valuesOf(r)[by.key]);
      if (v === null) return missing;
      return rampColor(span > 0 ? (v - ext[0]) / span : 0.5);
    };
  }
  const domain = categoryScale(rows.map((r) => valuesOf(r)[by.key]), [0, 1]).domain;
  const index = new Map(domain.map((c, i) => [c, i]));
  return (r) => {
    const v = valuesOf(r)[by.key];
    if (v === null || v === undefined) return missing;
    const i = index.get(categoryKey(v));
    return i === undefined ? missing : colorFor(i);
  };
}

/** Strokes a row: solid between present values, dashed to and from the "none" slots. */
function strokeLine(ctx, l, color, width, alpha) {
  // globalAlpha rather than an rgba() colour: rows may come with any CSS colour.
  ctx.globalAlpha = alpha;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = width;
  const pts = l.pts;
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0].x, pts[0].y, width + 1.5, 0, Math.PI * 2);
    ctx.fill();
    ctx.globalAlpha = 1;
    return;
  }
  for (const dashed of [false, true]) {
    ctx.setLineDash(dashed ? [4, 4] : []);
    ctx.beginPath();
    for (let k = 1; k < pts.length; k++) {
      const a = pts[k - 1];
      const b = pts[k];
      if ((a.missing || b.missing) !== dashed) continue;
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
}

/** The squared distance from (x, y) to a row's polyline (or its single point). */
function lineDistance2(l, x, y) {
  const pts = l.pts;
  if (pts.length === 1) return (pts[0].x - x) ** 2 + (pts[0].y - y) ** 2;
  let best = Infinity;
  for (let k = 1; k < pts.length; k++) {
    best = Math.min(best, segmentDistance2(x, y, pts[k - 1].x, pts[k - 1].y, pts[k].x, pts[k].y));
  }
  return best;
}

/** Text with a halo of the background colour, readable over the lines. */
function haloText(ctx, text, x, y, theme) {
  ctx.save();
  ctx.lineWidth = 3;
  ctx.lineJoin = "round";
  ctx.strokeStyle = theme.bg;
  ctx.setLineDash([]);
  ctx.strokeText(text, x, y);
  ctx.fillStyle = theme.muted;
  ctx.fillText(text, x, y);
  ctx.restore();
}
