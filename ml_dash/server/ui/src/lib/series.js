// Series documents (GET .../series) into uPlot's column arrays, and live tails merged into them.

import {ema} from "./ema.js";

/**
 * @typedef {object} SeriesDoc
 * @property {(number|null)[]} x bucket x positions (null = non-finite)
 * @property {(number|null)[]} y bucket means
 * @property {(number|null)[]} min exact bucket minima
 * @property {(number|null)[]} max exact bucket maxima
 * @property {number[]} count points per bucket
 * @property {number[]} [nonFinite] NaN/±Inf values per bucket
 * @property {number} [total] points in the whole series
 * @property {unknown} [cursor] where a `since` request continues
 * @property {{x: number|null, y: number|null} | null} [last]
 * @property {string} [xField]
 * @property {string} [yField]
 * @property {boolean} [exact]
 */

/**
 * @typedef {object} ChartData
 * @property {number[]} x
 * @property {(number|null)[]} y the (smoothed) mean line
 * @property {(number|null)[]} raw the mean line unsmoothed (equal to `y` without smoothing)
 * @property {(number|null)[]} lo the envelope's lower edge (raw minima)
 * @property {(number|null)[]} hi the envelope's upper edge (raw maxima)
 * @property {number[]} marks x positions of buckets that held NaN/±Inf
 */

/** @param {unknown} v */
const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * Chart columns for uPlot. Buckets without a finite x cannot be placed and are dropped; a
 * non-finite y/min/max is a gap (null). Smoothing applies to the mean only: the min/max
 * envelope stays raw so no spike is hidden. With `logY`, values ≤ 0 become gaps. Buckets come
 * in index order; when x is not monotone (x = some logged field) they are sorted by x, since
 * uPlot needs ascending x (smoothing still follows index order).
 * @param {SeriesDoc | null | undefined} doc
 * @param {{smooth?: number, logY?: boolean}} [options]
 * @returns {ChartData}
 */
export function toChartData(doc, options = {}) {
  /** @type {ChartData} */
  const out = {x: [], y: [], raw: [], lo: [], hi: [], marks: []};
  if (!doc || !Array.isArray(doc.x)) return out;
  const {smooth = 0, logY = false} = options;
  /** @type {(number|null)[]} */
  const rawY = [];
  for (let i = 0; i < doc.x.length; i++) {
    const x = finite(doc.x[i]);
    if (x === null) continue;
    out.x.push(x);
    rawY.push(finite(doc.y?.[i]));
    out.lo.push(finite(doc.min?.[i]));
    out.hi.push(finite(doc.max?.[i]));
    if ((doc.nonFinite?.[i] ?? 0) > 0) out.marks.push(x);
  }
  out.raw = rawY;
  out.y = smooth > 0 ? ema(rawY, smooth) : rawY.slice(); // in index order, as the points were logged
  sortByX(out);
  if (logY) {
    const pos = (/** @type {number|null} */ v) => (v !== null && v > 0 ? v : null);
    out.y = out.y.map(pos);
    out.raw = out.raw.map(pos);
    out.lo = out.lo.map(pos);
    out.hi = out.hi.map(pos);
  }
  return out;
}

/**
 * Sorts the columns by x (stable) unless x is already ascending. Marks are x values: their order
 * does not matter to uPlot's drawing, but they are sorted too for a predictable result.
 * @param {ChartData} d
 */
function sortByX(d) {
  let ascending = true;
  for (let i = 1; i < d.x.length && ascending; i++) ascending = d.x[i - 1] <= d.x[i];
  if (ascending) return;
  const order = d.x.map((_, i) => i).sort((a, b) => d.x[a] - d.x[b] || a - b);
  d.x = order.map((i) => d.x[i]);
  for (const k of /** @type {const} */ (["y", "raw", "lo", "hi"])) {
    const col = d[k];
    d[k] = order.map((i) => col[i]);
  }
  d.marks.sort((a, b) => a - b);
}

/** @param {SeriesDoc | null | undefined} doc */
const bucketCount = (doc) => (doc && Array.isArray(doc.x) ? doc.x.length : 0);

/**
 * Merges a `since` answer (buckets of the points that arrived after the held document's
 * cursor) into the held document, returning a new document. A tail bucket at the same x as
 * the held last bucket is combined with it (count-weighted mean, min of minima, max of maxima).
 * `total`, `cursor` and `last` come from the tail: they describe the whole series as of the tail.
 * @param {SeriesDoc | null | undefined} doc
 * @param {SeriesDoc | null | undefined} tail
 * @returns {SeriesDoc}
 */
export function appendTail(doc, tail) {
  const base = copy(doc);
  if (!tail) return base;
  const t = copy(tail);
  let start = 0;
  const n = bucketCount(base);
  if (n > 0 && bucketCount(t) > 0 && base.x[n - 1] !== null && base.x[n - 1] === t.x[0]) {
    const i = n - 1;
    const c0 = base.count[i] ?? 0;
    const c1 = t.count[0] ?? 0;
    const y0 = base.y[i];
    const y1 = t.y[0];
    base.y[i] = y0 === null ? y1 : y1 === null ? y0 : c0 + c1 > 0 ? (y0 * c0 + y1 * c1) / (c0 + c1) : y1;
    base.min[i] = pick(base.min[i], t.min[0], Math.min);
    base.max[i] = pick(base.max[i], t.max[0], Math.max);
    base.count[i] = c0 + c1;
    base.nonFinite[i] = (base.nonFinite[i] ?? 0) + (t.nonFinite[0] ?? 0);
    start = 1;
  }
  for (const k of /** @type {const} */ (["x", "y", "min", "max", "count", "nonFinite"])) {
    base[k] = [...base[k], ...t[k].slice(start)];
  }
  const added = t.count.reduce((a, b) => a + (b ?? 0), 0);
  base.total = tail.total ?? (base.total ?? 0) + added;
  if (tail.cursor !== undefined) base.cursor = tail.cursor;
  if (tail.last !== undefined && tail.last !== null) base.last = tail.last;
  for (const k of /** @type {const} */ (["xField", "yField"])) if (base[k] === undefined && tail[k] !== undefined) base[k] = tail[k];
  return base;
}

/**
 * @param {number|null} a
 * @param {number|null} b
 * @param {(a: number, b: number) => number} f
 */
const pick = (a, b, f) => (a === null ? b : b === null ? a : f(a, b));

/**
 * A shallow copy with every column array present (missing ones filled), so merging never
 * mutates what the caller holds.
 * @param {SeriesDoc | null | undefined} doc
 * @returns {SeriesDoc}
 */
function copy(doc) {
  const n = bucketCount(doc);
  const col = (/** @type {unknown[] | undefined} */ a, /** @type {unknown} */ fill) =>
    Array.isArray(a) ? a.slice() : new Array(n).fill(fill);
  const d = doc || /** @type {SeriesDoc} */ ({});
  return {
    ...d,
    x: col(d.x, null),
    y: col(d.y, null),
    min: col(d.min, null),
    max: col(d.max, null),
    count: col(d.count, 0),
    nonFinite: col(d.nonFinite, 0),
  };
}

/**
 * The default x-axis among a metric's x fields: step, then epoch, then index; else the first.
 * @param {string[] | null | undefined} xFields
 * @returns {string}
 */
export function pickDefaultX(xFields) {
  const fields = xFields || [];
  for (const f of ["step", "epoch", "index"]) if (fields.includes(f)) return f;
  return fields[0] ?? "index";
}
