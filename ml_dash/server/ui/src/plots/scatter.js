// Scatter of one parameter (x) against a metric summary (y), one dot per experiment: the compare
// view's "which learning rate gave the best loss". Direct canvas code, like uPlot's demos: one
// canvas sized for devicePixelRatio, redrawn on data, size and theme changes. The scales and
// ticks are the pure functions of lib/plotmath.js; this module draws and handles the pointer.
// `plotFrame` (canvas, tooltip, note, message, theme) is shared with parallel.js.
import {h} from "../dom.js";
import {formatNumber} from "../lib/format.js";
import {
  categoryKey, categoryScale, colorFor, extent, isNumericColumn, linearScale, logScale, logTicks,
  nearestPoint, niceTicks, tickFormatter, toNumber, widen,
} from "../lib/plotmath.js";

const DEFAULT_WIDTH = 600;
const DEFAULT_HEIGHT = 320;
const HIT_RADIUS = 10; // px: how near the pointer must be to a dot to hover it

/**
 * The theme's colours (CSS custom properties, as chart.js reads them) and the page's font.
 * @param {HTMLElement} el
 */
export function plotTheme(el) {
  const css = getComputedStyle(document.documentElement);
  const v = (/** @type {string} */ name, /** @type {string} */ fallback) => css.getPropertyValue(name).trim() || fallback;
  const family = getComputedStyle(el).fontFamily || "system-ui, sans-serif";
  return {
    fg: v("--fg", "#1f2328"), muted: v("--muted", "#5f6b76"), grid: v("--grid", "rgba(128,128,128,0.15)"),
    line: v("--line", "#d8dee4"), bg: v("--bg", "#ffffff"), panel: v("--panel", "#f6f8fa"),
    accent: v("--accent", "#2563eb"), font: `12px ${family}`, bold: `600 12px ${family}`,
  };
}

/** Cuts text to fit maxWidth px on ctx, with an ellipsis. */
export function fitText(ctx, text, maxWidth) {
  if (maxWidth <= 0) return "";
  if (ctx.measureText(text).width <= maxWidth) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) { // the longest prefix that fits with "…"
    const mid = Math.ceil((lo + hi) / 2);
    if (ctx.measureText(text.slice(0, mid) + "…").width <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return lo > 0 ? text.slice(0, lo) + "…" : "";
}

/**
 * The DOM every plot here uses, put in place of target's children: a canvas (focusable, sized for
 * devicePixelRatio), a tooltip div, a note line under the plot and a message shown instead of the
 * canvas when there is nothing to draw. `redraw` runs again when the theme changes.
 * @param {HTMLElement} target
 * @param {{width?: number, height?: number}} opts
 * @param {() => void} redraw
 */
export function plotFrame(target, opts, redraw) {
  const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", {tabindex: "0", role: "img",
    style: "display:block;outline-offset:2px"}));
  const tip = h("div", {class: "plot-tip", role: "status", style:
    "position:absolute;display:none;pointer-events:none;z-index:2;max-width:320px;padding:4px 8px;" +
    "font-size:12px;line-height:1.4;background:var(--panel);color:var(--fg);border:1px solid var(--line);" +
    "border-radius:4px;box-shadow:0 2px 6px rgba(0,0,0,0.15);white-space:nowrap;overflow:hidden;" +
    "text-overflow:ellipsis"});
  const message = h("div", {class: "empty plot-message", role: "status", style: "display:none"});
  const note = h("div", {class: "muted small plot-note", style: "display:none;margin-top:2px"});
  const wrap = h("div", {class: "plot", style: "position:relative"}, canvas, tip, message, note);
  target.replaceChildren(wrap);

  let width = sizeOr(opts.width, target.clientWidth, DEFAULT_WIDTH);
  const height = sizeOr(opts.height, 0, DEFAULT_HEIGHT);

  // The theme toggle sets data-theme on <html>; follow it (and the OS scheme) without a re-render.
  // A plot whose view was replaced without destroy() stops listening at the next change.
  const onTheme = () => {
    if (wrap.isConnected) redraw();
    else unlisten();
  };
  const themeObserver = new MutationObserver(onTheme);
  themeObserver.observe(document.documentElement, {attributes: true, attributeFilter: ["data-theme", "class"]});
  const scheme = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  scheme?.addEventListener?.("change", onTheme);
  const unlisten = () => {
    themeObserver.disconnect();
    scheme?.removeEventListener?.("change", onTheme);
  };

  return {
    wrap, canvas, tip, note, message,
    get width() { return width; },
    height,
    setWidth(/** @type {number} */ w) {
      width = sizeOr(w, target.clientWidth, width);
    },
    /** A 2D context scaled so that drawing is in CSS pixels; null if canvases are unavailable. */
    context() {
      const dpr = window.devicePixelRatio || 1;
      const pw = Math.max(1, Math.round(width * dpr));
      const ph = Math.max(1, Math.round(height * dpr));
      if (canvas.width !== pw) canvas.width = pw;
      if (canvas.height !== ph) canvas.height = ph;
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      const ctx = canvas.getContext("2d");
      if (!ctx) return null;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      return ctx;
    },
    /** A message in place of the plot ("Nothing to plot: ..."); "" shows the canvas again. */
    showMessage(/** @type {string} */ text) {
      message.textContent = text;
      message.style.display = text ? "" : "none";
      canvas.style.display = text ? "none" : "block";
      if (text) tip.style.display = "none";
    },
    setNote(/** @type {(string|Node)[]} */ ...parts) {
      note.replaceChildren(...parts.filter((p) => p !== "" && p !== null && p !== undefined));
      note.style.display = note.childNodes.length ? "" : "none";
    },
    /** The tooltip beside (x, y) (canvas px), kept inside the plot. lines: [bold title, ...rest]. */
    showTip(/** @type {string[]} */ lines, /** @type {number} */ x, /** @type {number} */ y) {
      tip.replaceChildren(...lines.map((line, i) => h("div", i === 0 ? {style: "font-weight:600"} : null, line)));
      tip.style.display = "block";
      tip.style.left = "0px";
      tip.style.top = "0px";
      const tw = tip.offsetWidth;
      const th = tip.offsetHeight;
      let left = x + 12;
      if (left + tw > width) left = Math.max(0, x - 12 - tw);
      let top = y + 12;
      if (top + th > height) top = Math.max(0, y - 12 - th);
      tip.style.left = `${Math.round(left)}px`;
      tip.style.top = `${Math.round(top)}px`;
    },
    hideTip() {
      tip.style.display = "none";
    },
    destroy() {
      unlisten();
      wrap.remove();
    },
  };
}

/** A usable size in px: the given one, else the measured one, else the fallback. */
function sizeOr(given, measured, fallback) {
  if (Number.isFinite(given) && given > 0) return Math.round(given);
  if (Number.isFinite(measured) && measured > 0) return Math.round(measured);
  return fallback;
}

/** "1 run" / "3 runs". */
export function runs(n) {
  return `${n} run${n === 1 ? "" : "s"}`;
}

/**
 * @typedef {{id: any, label?: string, x: any, y: any, color?: string}} ScatterPoint
 * @typedef {{points: ScatterPoint[], xLabel?: string, yLabel?: string, logX?: boolean, logY?: boolean}} ScatterData
 */

/**
 * Draws a scatter into target (replacing its children).
 * x: numeric when every present value is a number or numeric string, else categories (sorted,
 * evenly spaced). y: numeric. Points without a usable x or y (null, NaN, ±Inf, text for y, ≤ 0 on
 * a log axis) are left out and counted in a note under the plot. Nothing left → a message.
 * Hover/focus shows a tooltip (label, x, y); click, Enter or Space calls onPick(id); the arrow
 * keys move between the points. target.dataset.drawn = "1" after every draw.
 * @param {HTMLElement} target
 * @param {ScatterData} data
 * @param {{width?: number, height?: number, onPick?: (id: any) => void}} [opts]
 * @returns {{update(data: ScatterData): void, resize(width: number): void, destroy(): void}}
 */
/**
 * Keyboard stepping over drawn items: arrows move along `order` (item indexes), Home/End jump,
 * Enter/Space pick, Escape clears. Returns whether the key was one of these.
 * @param {KeyboardEvent} e @param {number[]} order @param {number} active
 * @param {(i: number) => void} setActive @param {(i: number) => void} pick
 */
export function stepKeys(e, order, active, setActive, pick) {
  const n = order.length;
  const at = order.indexOf(active);
  if (e.key === "ArrowRight" || e.key === "ArrowDown") setActive(order[(at + 1) % n]);
  else if (e.key === "ArrowLeft" || e.key === "ArrowUp") setActive(order[at <= 0 ? n - 1 : at - 1]);
  else if (e.key === "Home") setActive(order[0]);
  else if (e.key === "End") setActive(order[n - 1]);
  else if ((e.key === "Enter" || e.key === " ") && active >= 0) pick(active);
  else if (e.key === "Escape") setActive(-1);
  else return false;
  e.preventDefault();
  return true;
}

/** The canvas's pointer and keyboard listeners (leaving or blurring hides the hover). */
export function listen(canvas, {move, leave, click, key}) {
  canvas.addEventListener("mousemove", move);
  canvas.addEventListener("mouseleave", leave);
  canvas.addEventListener("click", click);
  canvas.addEventListener("keydown", key);
  canvas.addEventListener("blur", leave);
}

export function renderScatter(target, data, opts = {}) {
  opts = opts || {};
  let current = data;
  /** @type {{id: any, label: string, x: number|string, y: number, color: string, px: number, py: number}[]} */
  let drawn = [];
  let active = -1; // index into drawn: the hovered / keyboard-selected point
  let xLabel = "x";
  let yLabel = "y";
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
      drawn = [];
    }
    target.dataset.drawn = "1";
  }

  function paint() {
    const d = current && typeof current === "object" ? current : /** @type {ScatterData} */ ({points: []});
    const points = Array.isArray(d.points) ? d.points : [];
    xLabel = text(d.xLabel) || "x";
    yLabel = text(d.yLabel) || "y";
    const numericX = isNumericColumn(points.map((p) => (p && typeof p === "object" ? p.x : null)));
    const logX = Boolean(d.logX) && numericX;
    const logY = Boolean(d.logY);

    let missing = 0;
    let nonPositive = 0;
    /** @type {{id: any, label: string, x: number|string, y: number, color: string}[]} */
    const kept = [];
    points.forEach((p, i) => {
      if (!p || typeof p !== "object") {
        missing += 1;
        return;
      }
      const y = toNumber(p.y);
      const x = numericX ? toNumber(p.x) : (p.x === null || p.x === undefined || p.x === "" ? null : p.x);
      if (x === null || y === null) {
        missing += 1;
        return;
      }
      if ((logX && /** @type {number} */ (x) <= 0) || (logY && y <= 0)) {
        nonPositive += 1;
        return;
      }
      kept.push({id: p.id, label: text(p.label) || text(p.id) || `#${i + 1}`, x, y,
        color: typeof p.color === "string" && p.color ? p.color : colorFor(i)});
    });

    const skipped = [];
    if (missing) skipped.push(`${runs(missing)} without a value`);
    if (nonPositive) skipped.push(`${runs(nonPositive)} with a value ≤ 0 (not on a log axis)`);
    frame.setNote(skipped.length ? `Not shown: ${skipped.join("; ")}.` : "");
    canvas.setAttribute("aria-label", `Scatter plot of ${yLabel} against ${xLabel}: ${runs(kept.length)}` +
      (skipped.length ? `; not shown: ${skipped.join("; ")}` : "") +
      ". Arrow keys move between the points.");

    drawn = [];
    if (!kept.length) {
      active = -1;
      frame.showMessage(points.length
        ? `Nothing to plot: no run has both ${xLabel} and ${yLabel}.`
        : "Nothing to plot: no runs.");
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
    ctx.textBaseline = "middle";

    // y: padded so no dot sits on the frame.
    const ys = kept.map((p) => /** @type {number} */ (p.y));
    const yAxis = numericAxis(/** @type {[number, number]} */ (extent(ys)), logY, 5);
    const yTickText = yAxis.ticks.map(tickFormatter(yAxis.ticks));
    const yTickWidth = Math.max(0, ...yTickText.map((t) => ctx.measureText(t).width));

    const top = 10;
    const right = 16;
    const left = Math.ceil(yTickWidth) + 8 + 20;
    const bottom = 20 + 20;
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    if (plotW < 40 || plotH < 40) {
      frame.showMessage("Too small to draw this plot.");
      return;
    }
    const x0 = left;
    const x1 = left + plotW;
    const y0 = top;
    const y1 = top + plotH;
    const sy = yAxis.scale([y1, y0]);

    /** @type {(v: any) => number | null} */
    let sx;
    /** @type {{pos: number, text: string}[]} */
    let xTicks;
    if (numericX) {
      const xs = kept.map((p) => /** @type {number} */ (p.x));
      const xAxis = numericAxis(/** @type {[number, number]} */ (extent(xs)), logX, Math.max(2, Math.floor(plotW / 90)));
      sx = xAxis.scale([x0, x1]);
      const fmt = tickFormatter(xAxis.ticks);
      xTicks = xAxis.ticks.map((t) => ({pos: /** @type {number} */ (sx(t)), text: fmt(t)}));
    } else {
      const cat = categoryScale(kept.map((p) => p.x), [x0, x1]);
      sx = cat;
      xTicks = cat.domain.map((c) => ({pos: /** @type {number} */ (cat(c)), text: c}));
    }

    // Grid and frame.
    ctx.lineWidth = 1;
    ctx.strokeStyle = theme.grid;
    ctx.beginPath();
    for (const t of yAxis.ticks) {
      const py = Math.round(/** @type {number} */ (sy(t))) + 0.5;
      ctx.moveTo(x0, py);
      ctx.lineTo(x1, py);
    }
    for (const t of xTicks) {
      const px = Math.round(t.pos) + 0.5;
      ctx.moveTo(px, y0);
      ctx.lineTo(px, y1);
    }
    ctx.stroke();
    ctx.strokeStyle = theme.line;
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, plotW - 1, plotH - 1);

    // Tick labels.
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "right";
    yAxis.ticks.forEach((t, i) => ctx.fillText(yTickText[i], x0 - 6, /** @type {number} */ (sy(t))));
    ctx.textAlign = "center";
    // Categories narrower than their labels: every k-th one, with room for up to ~12 characters.
    const slot = plotW / Math.max(1, xTicks.length);
    const widest = Math.min(100, Math.max(0, ...xTicks.map((t) => ctx.measureText(t.text).width)));
    const every = numericX ? 1 : Math.max(1, Math.ceil((widest + 6) / slot));
    const room = numericX ? 160 : Math.min(every * slot - 6, 160);
    let lastRight = -Infinity;
    xTicks.forEach((t, k) => {
      if (k % every !== 0) return;
      const label = fitText(ctx, t.text, room);
      const w = ctx.measureText(label).width;
      if (!label || t.pos - w / 2 < lastRight + 6) return; // would overlap its left neighbour
      ctx.fillText(label, t.pos, y1 + 11);
      lastRight = t.pos + w / 2;
    });

    // Axis titles.
    ctx.fillStyle = theme.fg;
    ctx.fillText(fitText(ctx, xLabel + (logX ? " (log)" : ""), plotW), x0 + plotW / 2, H - 9);
    ctx.save();
    ctx.translate(10, y0 + plotH / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(fitText(ctx, yLabel + (logY ? " (log)" : ""), plotH), 0, 0);
    ctx.restore();

    // Dots, clipped to the plot area.
    drawn = kept.map((p) => ({...p, px: /** @type {number} */ (sx(p.x)), py: /** @type {number} */ (sy(p.y))}))
      .filter((p) => Number.isFinite(p.px) && Number.isFinite(p.py));
    if (active >= drawn.length) active = -1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, plotW, plotH);
    ctx.clip();
    ctx.lineWidth = 1;
    ctx.strokeStyle = theme.bg;
    drawn.forEach((p, i) => {
      if (i === active) return; // drawn last, on top
      ctx.beginPath();
      ctx.arc(p.px, p.py, 4, 0, Math.PI * 2);
      ctx.fillStyle = p.color;
      ctx.fill();
      ctx.stroke();
    });
    if (active >= 0) {
      const p = drawn[active];
      ctx.beginPath();
      ctx.arc(p.px, p.py, 6, 0, Math.PI * 2);
      ctx.fillStyle = p.color;
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = theme.fg;
      ctx.stroke();
    }
    ctx.restore();
  }

  function showActive() {
    if (active < 0 || !drawn[active]) {
      frame.hideTip();
      return;
    }
    const p = drawn[active];
    frame.showTip([p.label, `${xLabel}: ${typeof p.x === "number" ? formatNumber(p.x) : categoryKey(p.x)}`,
      `${yLabel}: ${formatNumber(p.y)}`], p.px, p.py);
  }

  function setActive(i) {
    if (i === active) return;
    active = i;
    draw();
    showActive();
  }

  /** @param {MouseEvent} e */
  function pointAt(e) {
    const rect = canvas.getBoundingClientRect();
    return nearestPoint(drawn.map((p) => ({x: p.px, y: p.py})), e.clientX - rect.left, e.clientY - rect.top,
      HIT_RADIUS);
  }

  const onMove = (/** @type {MouseEvent} */ e) => {
    const i = pointAt(e);
    canvas.style.cursor = i >= 0 && opts.onPick ? "pointer" : "";
    setActive(i);
  };
  const onLeave = () => setActive(-1);
  const onClick = (/** @type {MouseEvent} */ e) => {
    const i = pointAt(e);
    if (i >= 0 && opts.onPick) opts.onPick(drawn[i].id);
  };
  const onKey = (/** @type {KeyboardEvent} */ e) => {
    if (!drawn.length) return;
    // Left to right, then bottom to top: the order a reader scans the plot in.
    const order = drawn.map((_, i) => i).sort((a, b) => drawn[a].px - drawn[b].px || drawn[b].py - drawn[a].py);
    stepKeys(e, order, active, setActive, (i) => opts.onPick && opts.onPick(drawn[i].id));
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

/** A label from anything: strings as they are, numbers formatted, objects as JSON, null → "". */
function text(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : categoryKey(v);
}

/**
 * A numeric axis over a data extent: domain padded by 5% (in log space on a log axis) so no dot
 * sits on the frame, its ticks, and a scale factory for a pixel range.
 * @param {[number, number]} ext
 * @param {boolean} log
 * @param {number} count
 */
function numericAxis(ext, log, count) {
  if (log) {
    let [l0, l1] = [Math.log10(ext[0]), Math.log10(ext[1])];
    if (l0 === l1) [l0, l1] = [l0 - 0.5, l1 + 0.5];
    const pad = (l1 - l0) * 0.05;
    /** @type {[number, number]} */
    const domain = [Math.pow(10, l0 - pad), Math.pow(10, l1 + pad)];
    return {ticks: logTicks(domain[0], domain[1], count),
      scale: (/** @type {[number, number]} */ range) => logScale(domain, range)};
  }
  const [lo, hi] = widen(ext[0], ext[1]);
  const pad = (hi - lo) * 0.05;
  /** @type {[number, number]} */
  const domain = Number.isFinite(hi - lo) && Number.isFinite(lo - pad) && Number.isFinite(hi + pad)
    ? [lo - pad, hi + pad] : [lo, hi];
  return {ticks: niceTicks(domain[0], domain[1], count),
    scale: (/** @type {[number, number]} */ range) => linearScale(domain, range)};
}
