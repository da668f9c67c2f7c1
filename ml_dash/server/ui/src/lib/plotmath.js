// The pure math under the compare view's plots (scatter, parallel coordinates, one colour per
// experiment): ticks, scales, extents, colours. No DOM, so node tests cover it all.
import {formatNumber} from "./format.js";

/**
 * One colour per experiment, in this order. Mid-luminance hues, so each has a contrast of at
 * least 2.5 against both the light (#ffffff) and the dark (#0d1117) page background; the first
 * ones are the most distinct from each other (blue, orange, green, red, ...). Index 10 and
 * beyond wrap around: pair the colour with a dash or a label past ten experiments.
 */
export const PALETTE = Object.freeze([
  "#3b82f6", // blue
  "#f97316", // orange
  "#16a34a", // green
  "#dc2626", // red
  "#9333ea", // purple
  "#0891b2", // cyan
  "#db2777", // pink
  "#ca8a04", // ochre
  "#65a30d", // olive
  "#78716c", // grey
]);

/**
 * The stable colour of the index-th item (experiment, group, category): PALETTE, wrapping.
 * Negative, fractional or non-numeric indexes never throw.
 * @param {number} index
 * @returns {string} "#rrggbb"
 */
export function colorFor(index) {
  const i = Number.isFinite(index) ? Math.floor(index) : 0;
  const n = PALETTE.length;
  return PALETTE[((i % n) + n) % n];
}

// A cool-to-warm ramp of mid-luminance colours: readable on both themes, unlike viridis whose
// dark end vanishes on a dark background.
const RAMP = ["#2563eb", "#7c3aed", "#db2777", "#f97316", "#ca8a04"];

/**
 * A colour on a continuous ramp, for colouring by a numeric value (t in [0, 1], clamped;
 * a non-finite t is the middle).
 * @param {number} t
 * @returns {string} "#rrggbb"
 */
export function rampColor(t) {
  const u = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0.5;
  const pos = u * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(pos));
  const f = pos - i;
  const a = hexToRgb(RAMP[i]);
  const b = hexToRgb(RAMP[i + 1]);
  return rgbToHex(a.map((c, k) => c + (b[k] - c) * f));
}

/** @param {string} hex "#rrggbb" @returns {number[]} */
function hexToRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** @param {number[]} rgb @returns {string} */
function rgbToHex(rgb) {
  return "#" + rgb.map((c) => Math.round(Math.min(255, Math.max(0, c))).toString(16).padStart(2, "0")).join("");
}

/**
 * "#rrggbb" with an alpha, as a CSS colour ("rgba(r, g, b, a)"); anything else is returned as is.
 * @param {string} color
 * @param {number} alpha
 * @returns {string}
 */
export function withAlpha(color, alpha) {
  if (typeof color !== "string" || !/^#[0-9a-f]{6}$/i.test(color)) return color;
  const [r, g, b] = hexToRgb(color);
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/**
 * A finite number from a number or a numeric string ("0.001", " 1e-3 "), else null.
 * Booleans, "", null, NaN and ±Infinity are null.
 * @param {unknown} v
 * @returns {number | null}
 */
export function toNumber(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

// Strings that spell a non-finite number: a column of these plus numbers is still numeric.
const NON_FINITE = new Set(["nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"]);

/**
 * Whether a column (one parameter across runs) can be placed on a numeric axis: every value that
 * is not null/undefined is a number or a numeric string ("NaN"/"inf" spelled out count, so one
 * diverged run does not turn the axis into categories). Needs at least one such value.
 * @param {unknown[]} values
 * @returns {boolean}
 */
export function isNumericColumn(values) {
  if (!Array.isArray(values)) return false;
  let seen = false;
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v === "number") {
      seen = true;
      continue;
    }
    if (typeof v !== "string") return false;
    const s = v.trim();
    if (s === "") return false;
    if (!Number.isNaN(Number(s)) || NON_FINITE.has(s.toLowerCase())) {
      seen = true;
      continue;
    }
    return false;
  }
  return seen;
}

/**
 * [min, max] of the finite numbers among values (numeric strings count); null when there are none.
 * @param {unknown[]} values
 * @returns {[number, number] | null}
 */
export function extent(values) {
  if (!Array.isArray(values)) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    const n = toNumber(v);
    if (n === null) continue;
    if (n < lo) lo = n;
    if (n > hi) hi = n;
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * The range shown for a degenerate extent (min == max): ±10% of the value, ±1 around zero, so
 * one point, or all runs with the same value, sit in the middle of the axis.
 * @param {number} min
 * @param {number} max
 * @returns {[number, number]}
 */
export function widen(min, max) {
  if (min !== max) return min < max ? [min, max] : [max, min];
  const d = min === 0 ? 1 : Math.abs(min) * 0.1;
  const lo = min - d;
  const hi = min + d;
  // Near ±MAX_VALUE the sum overflows: keep the finite side.
  return [Number.isFinite(lo) ? lo : min, Number.isFinite(hi) ? hi : min];
}

/**
 * The 1-2-5 step nearest a raw step (range / count).
 * @param {number} raw > 0, finite
 * @returns {number}
 */
function niceStep(raw) {
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const m = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return m * mag;
}

/** k * step without the binary noise (0.30000000000000004 -> 0.3). */
function tickValue(k, step) {
  const v = k * step;
  return v === 0 ? 0 : parseFloat(v.toPrecision(12));
}

/**
 * "Nice" tick values (multiples of 1, 2 or 5 × 10^n) inside [min, max], about count of them,
 * ascending. min == max gives ticks around the value (see widen), min > max is swapped,
 * non-finite input gives []. Ranges too narrow for the float precision fall back to [min, max].
 * @param {number} min
 * @param {number} max
 * @param {number} [count]
 * @returns {number[]}
 */
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  [min, max] = widen(min, max);
  if (min === max) return [min]; // widen could not widen (±MAX_VALUE)
  const n = Number.isFinite(count) && count >= 1 ? Math.round(count) : 5;
  // Divided before subtracting: max - min overflows for ±1e308.
  const step = niceStep(max / n - min / n);
  if (!Number.isFinite(step) || step <= 0) return [min, max];
  // The epsilon keeps an end tick that the division put a hair outside (0.3 / 0.05 = 5.999...);
  // the rounding below then decides whether it is inside.
  const k0 = Math.ceil(min / step - 1e-9);
  const k1 = Math.floor(max / step + 1e-9);
  if (!Number.isFinite(k0) || !Number.isFinite(k1) || k1 - k0 > 10 * n + 10 || k1 < k0) return [min, max];
  /** @type {number[]} */
  const ticks = [];
  for (let k = k0; k <= k1; k++) {
    const v = tickValue(k, step);
    // The rounding may push an end tick just outside the range, or collapse two ticks.
    if (v < min || v > max || (ticks.length && v <= ticks[ticks.length - 1])) continue;
    ticks.push(v);
  }
  return ticks.length >= 2 ? ticks : [min, max];
}

/**
 * A label function for an axis' ticks: formatNumber's 4 significant digits when they tell the
 * ticks apart, else as many digits as needed (ticks 1.0001, 1.0002 must not both read "1").
 * @param {number[]} ticks
 * @returns {(v: number) => string}
 */
export function tickFormatter(ticks) {
  const distinct = (/** @type {(v: number) => string} */ f) => new Set(ticks.map(f)).size === ticks.length;
  if (distinct(formatNumber)) return formatNumber;
  for (let p = 5; p <= 16; p++) {
    const f = (/** @type {number} */ v) => (Number.isFinite(v) ? String(parseFloat(v.toPrecision(p))) : formatNumber(v));
    if (distinct(f)) return f;
  }
  return (v) => String(v);
}

/**
 * Ticks for a log axis over [min, max] (both > 0): the powers of ten inside (every k-th when
 * there are many, so about count remain); with fewer than three of them, the 1, 2, 5 multiples;
 * linear nice ticks when even those are fewer than three (less than about a decade).
 * Non-positive or non-finite input gives [].
 * @param {number} min
 * @param {number} max
 * @param {number} [count]
 * @returns {number[]}
 */
export function logTicks(min, max, count = 5) {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  const e0 = Math.floor(Math.log10(min));
  const e1 = Math.ceil(Math.log10(max));
  const within = (/** @type {number[]} */ mults) => {
    /** @type {number[]} */
    const out = [];
    for (let e = e0; e <= e1; e++) {
      for (const m of mults) {
        const v = parseFloat((m * Math.pow(10, e)).toPrecision(12));
        if (v >= min && v <= max) out.push(v);
      }
    }
    return out;
  };
  const powers = within([1]);
  if (powers.length >= 3) {
    const every = Math.max(1, Math.ceil((powers.length - 1) / Math.max(1, count)));
    return powers.filter((_, i) => i % every === 0);
  }
  const dense = within([1, 2, 5]);
  return dense.length >= 3 ? dense : niceTicks(min, max, count).filter((t) => t > 0);
}

/**
 * A linear map from domain to range (e.g. pixels); domain may run either way. A zero-width
 * domain maps everything to the middle of range. Non-numbers / non-finite values give null;
 * numeric strings are accepted.
 * @param {[number, number]} domain
 * @param {[number, number]} range
 * @returns {(v: unknown) => number | null}
 */
export function linearScale(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  // Halved first: d1 - d0 overflows for a domain like [-1e308, 1e308].
  const half = d1 / 2 - d0 / 2;
  const mid = (r0 + r1) / 2;
  const flat = !Number.isFinite(half) || half === 0;
  return (v) => {
    const n = toNumber(v);
    if (n === null) return null;
    if (flat) return mid;
    return r0 + ((n / 2 - d0 / 2) / half) * (r1 - r0);
  };
}

/**
 * A log10 map from domain to range. v <= 0 (and non-numbers) give null. A domain with a
 * non-positive end cannot be a log domain: everything positive then maps to the middle.
 * @param {[number, number]} domain both > 0
 * @param {[number, number]} range
 * @returns {(v: unknown) => number | null}
 */
export function logScale(domain, range) {
  const [d0, d1] = domain;
  const ok = d0 > 0 && d1 > 0 && Number.isFinite(d0) && Number.isFinite(d1);
  const inner = linearScale(ok ? [Math.log10(d0), Math.log10(d1)] : [0, 0], range);
  return (v) => {
    const n = toNumber(v);
    if (n === null || n <= 0) return null;
    return inner(Math.log10(n));
  };
}

/** Numbers-aware order for category labels: "2" < "10", "lr=2" < "lr=10". */
const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});

/**
 * The distinct values of a categorical column as strings, sorted (numbers-aware, then
 * case-sensitive to keep "a" and "A" apart), null/undefined left out.
 * @param {unknown[]} values
 * @returns {string[]}
 */
export function categories(values) {
  if (!Array.isArray(values)) return [];
  const seen = new Set();
  for (const v of values) {
    if (v === null || v === undefined) continue;
    seen.add(categoryKey(v));
  }
  return [...seen].sort((a, b) => collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The label of a value on a categorical axis: strings as they are, objects/arrays as JSON.
 * @param {unknown} v
 * @returns {string}
 */
export function categoryKey(v) {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object") {
    try {
      return JSON.stringify(v);
    } catch {
      return String(v);
    }
  }
  return String(v);
}

/**
 * A map from the distinct values (see categories) to evenly spaced positions: the centres of
 * equal bands across range, so no category sits on the plot's edge. Unknown values and
 * null/undefined give null. The sorted values are on the function's `domain` property.
 * @param {unknown[]} values
 * @param {[number, number]} range
 * @returns {((v: unknown) => number | null) & {domain: string[]}}
 */
export function categoryScale(values, range) {
  const domain = categories(values);
  const [r0, r1] = range;
  const band = domain.length ? (r1 - r0) / domain.length : 0;
  const index = new Map(domain.map((v, i) => [v, i]));
  const scale = (/** @type {unknown} */ v) => {
    if (v === null || v === undefined) return null;
    const i = index.get(categoryKey(v));
    return i === undefined ? null : r0 + band * (i + 0.5);
  };
  return Object.assign(scale, {domain});
}

/**
 * Squared distance from point (px, py) to the segment (ax, ay)-(bx, by): hit-testing lines.
 * @returns {number}
 */
export function segmentDistance2(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const x = ax + t * dx - px;
  const y = ay + t * dy - py;
  return x * x + y * y;
}

/**
 * The index of the point nearest (px, py) within maxDist, or -1.
 * @param {{x: number, y: number}[]} points
 * @param {number} px
 * @param {number} py
 * @param {number} maxDist
 * @returns {number}
 */
export function nearestPoint(points, px, py, maxDist) {
  let best = -1;
  let bestD = maxDist * maxDist;
  for (let i = 0; i < points.length; i++) {
    const dx = points[i].x - px;
    const dy = points[i].y - py;
    const d = dx * dx + dy * dy;
    if (d <= bestD) {
      best = i;
      bestD = d;
    }
  }
  return best;
}
