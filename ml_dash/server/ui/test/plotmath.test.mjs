import assert from "node:assert/strict";
import {test} from "node:test";

const {
  PALETTE, categories, categoryKey, categoryScale, colorFor, extent, isNumericColumn, linearScale, logScale,
  logTicks, nearestPoint, niceTicks, rampColor, segmentDistance2, tickFormatter, toNumber, widen, withAlpha,
} = await import("../src/lib/plotmath.js");

/** Every gap between ticks is the same 1, 2 or 5 × 10^n step (up to float noise). */
function assertNiceSteps(ticks) {
  assert.ok(ticks.length >= 2, `at least two ticks: ${ticks}`);
  const step = ticks[1] - ticks[0];
  assert.ok(step > 0);
  const mantissa = step / Math.pow(10, Math.floor(Math.log10(step) + 1e-9));
  assert.ok([1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6), `1-2-5 step, got ${step}`);
  for (let i = 1; i < ticks.length; i++) {
    assert.ok(Math.abs(ticks[i] - ticks[i - 1] - step) <= Math.abs(step) * 1e-6, `even steps: ${ticks}`);
  }
}

test("niceTicks: simple ranges give round steps inside the range", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0, 100, 10), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  assert.deepEqual(niceTicks(0, 0.7), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  assert.deepEqual(niceTicks(123456, 123789), [123500, 123550, 123600, 123650, 123700, 123750]);
});

test("niceTicks: no float noise, end ticks kept", () => {
  assert.deepEqual(niceTicks(0.1, 0.3), [0.1, 0.15, 0.2, 0.25, 0.3]);
  assert.deepEqual(niceTicks(1.1, 1.3), [1.1, 1.15, 1.2, 1.25, 1.3]);
  for (const t of niceTicks(0, 0.0007)) assert.equal(t, parseFloat(t.toPrecision(6)));
});

test("niceTicks: negative and crossing zero", () => {
  assert.deepEqual(niceTicks(-0.3, -0.1), [-0.3, -0.25, -0.2, -0.15, -0.1]);
  const ticks = niceTicks(-3, 7);
  assert.ok(ticks.includes(0));
  assertNiceSteps(ticks);
  assert.ok(!ticks.some((t) => Object.is(t, -0)), "no -0 label");
});

test("niceTicks: min == max gives ticks around the value", () => {
  assert.deepEqual(niceTicks(5, 5), [4.6, 4.8, 5, 5.2, 5.4]);
  assert.deepEqual(niceTicks(0, 0), [-1, -0.5, 0, 0.5, 1]);
  assert.ok(niceTicks(-5, -5).includes(-5));
  assert.ok(niceTicks(1e-7, 1e-7).includes(1e-7));
});

test("niceTicks: min > max is swapped", () => {
  assert.deepEqual(niceTicks(3, 1), niceTicks(1, 3));
});

test("niceTicks: tiny and huge ranges", () => {
  for (const [lo, hi] of [[1e-9, 3e-9], [0, 1e-300], [1e20, 5e20], [-1e308, 1e308], [-Number.MAX_VALUE, Number.MAX_VALUE]]) {
    const ticks = niceTicks(lo, hi);
    assertNiceSteps(ticks);
    assert.ok(ticks.every((t) => Number.isFinite(t) && t >= lo && t <= hi), `${lo}..${hi}: ${ticks}`);
    assert.ok(ticks.length >= 2 && ticks.length <= 12, `about 5 ticks: ${ticks}`);
  }
  assert.deepEqual(niceTicks(-1e308, 1e308), [-1e308, -5e307, 0, 5e307, 1e308]);
});

test("niceTicks: ranges below float precision fall back to the ends", () => {
  const ticks = niceTicks(1, 1 + 1e-15);
  assert.ok(ticks.length >= 2);
  assert.ok(ticks.every((t, i) => i === 0 || t > ticks[i - 1]), "strictly ascending");
  const big = niceTicks(Number.MAX_VALUE, Number.MAX_VALUE);
  assert.ok(big.length >= 1 && big.every(Number.isFinite));
});

test("niceTicks: non-finite input gives no ticks, odd counts are tolerated", () => {
  assert.deepEqual(niceTicks(NaN, 1), []);
  assert.deepEqual(niceTicks(0, Infinity), []);
  assert.deepEqual(niceTicks(-Infinity, Infinity), []);
  assertNiceSteps(niceTicks(0, 1, 0));
  assertNiceSteps(niceTicks(0, 1, NaN));
  assertNiceSteps(niceTicks(0, 1, 1));
  assert.ok(niceTicks(0, 1, 1000).length <= 1011);
});

test("niceTicks: about count ticks over many random ranges", () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let i = 0; i < 2000; i++) {
    const scale = Math.pow(10, Math.floor(rand() * 40) - 20);
    const a = (rand() - 0.5) * scale;
    const b = a + rand() * scale;
    const ticks = niceTicks(a, b, 5);
    if (a === b) continue;
    assert.ok(ticks.length >= 2 && ticks.length <= 11, `${a}..${b}: ${ticks}`);
    assert.ok(ticks.every((t) => t >= a && t <= b), `${a}..${b}: ${ticks}`);
    assertNiceSteps(ticks);
  }
});

test("widen: degenerate extents get room, others are ordered", () => {
  assert.deepEqual(widen(0, 0), [-1, 1]);
  assert.deepEqual(widen(10, 10), [9, 11]);
  assert.deepEqual(widen(-10, -10), [-11, -9]);
  assert.deepEqual(widen(1, 2), [1, 2]);
  assert.deepEqual(widen(2, 1), [1, 2]);
  const [lo, hi] = widen(Number.MAX_VALUE, Number.MAX_VALUE);
  assert.ok(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi);
});

test("logTicks: powers of ten, denser over few decades", () => {
  assert.deepEqual(logTicks(1e-5, 1), [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1]);
  assert.deepEqual(logTicks(0.001, 0.5), [0.001, 0.01, 0.1]);
  assert.deepEqual(logTicks(0.01, 0.5), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]);
  assert.deepEqual(logTicks(3e-4, 0.07), [5e-4, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]);
  assert.deepEqual(logTicks(1e-10, 1e10), [1e-10, 1e-6, 0.01, 100, 1e6, 1e10]);
  assert.ok(logTicks(1e-300, 1e300).length <= 7);
  // Less than one decade: linear ticks.
  assert.deepEqual(logTicks(2, 8), niceTicks(2, 8));
  assert.deepEqual(logTicks(8, 2), logTicks(2, 8));
});

test("logTicks: non-positive or non-finite input gives no ticks", () => {
  assert.deepEqual(logTicks(0, 10), []);
  assert.deepEqual(logTicks(-1, 10), []);
  assert.deepEqual(logTicks(1, Infinity), []);
  assert.deepEqual(logTicks(NaN, 10), []);
});

test("tickFormatter: short labels unless they would collide", () => {
  const f = tickFormatter([0, 0.5, 1]);
  assert.deepEqual([0, 0.5, 1].map(f), ["0", "0.5", "1"]);
  const close = niceTicks(1.0001, 1.0009);
  const labels = close.map(tickFormatter(close));
  assert.equal(new Set(labels).size, close.length);
  assert.deepEqual(labels, ["1.0002", "1.0004", "1.0006", "1.0008"]);
  assert.deepEqual([1e-9, 2e-9].map(tickFormatter([1e-9, 2e-9])), ["1e-9", "2e-9"]);
  assert.deepEqual(tickFormatter([])(3), "3");
});

test("linearScale: maps both ways, zero-width domain to the middle", () => {
  const s = linearScale([0, 10], [100, 200]);
  assert.equal(s(0), 100);
  assert.equal(s(5), 150);
  assert.equal(s(10), 200);
  assert.equal(s(-10), 0, "extrapolates");
  const inv = linearScale([0, 1], [300, 20]); // a y axis: top is small pixels
  assert.equal(inv(0), 300);
  assert.equal(inv(1), 20);
  const huge = linearScale([-1e308, 1e308], [0, 100]);
  assert.equal(huge(0), 50, "a domain wider than MAX_VALUE still maps");
  assert.equal(huge(1e308), 100);
  assert.equal(linearScale([NaN, 1], [0, 100])(0.5), 50, "a broken domain maps to the middle");
  const flat = linearScale([3, 3], [0, 100]);
  assert.equal(flat(3), 50);
  assert.equal(flat(1000), 50);
});

test("linearScale: non-numbers give null, numeric strings are accepted", () => {
  const s = linearScale([0, 10], [0, 100]);
  assert.equal(s(null), null);
  assert.equal(s(undefined), null);
  assert.equal(s(NaN), null);
  assert.equal(s(Infinity), null);
  assert.equal(s("abc"), null);
  assert.equal(s(true), null);
  assert.equal(s("5"), 50);
});

test("logScale: decades are evenly spaced, v <= 0 is null", () => {
  const s = logScale([1, 1000], [0, 300]);
  assert.equal(s(1), 0);
  assert.ok(Math.abs(s(10) - 100) < 1e-9);
  assert.ok(Math.abs(s(100) - 200) < 1e-9);
  assert.equal(s(1000), 300);
  assert.equal(s(0), null);
  assert.equal(s(-5), null);
  assert.equal(s(NaN), null);
  assert.equal(s(null), null);
  assert.equal(logScale([10, 10], [0, 100])(10), 50);
  // A domain that cannot be logarithmic never throws: positives go to the middle.
  assert.equal(logScale([0, 10], [0, 100])(5), 50);
  assert.equal(logScale([-1, -10], [0, 100])(5), 50);
});

test("categoryScale: distinct sorted values at band centres", () => {
  const s = categoryScale(["relu", "gelu", "relu", null, "tanh"], [0, 300]);
  assert.deepEqual(s.domain, ["gelu", "relu", "tanh"]);
  assert.equal(s("gelu"), 50);
  assert.equal(s("relu"), 150);
  assert.equal(s("tanh"), 250);
  assert.equal(s("swish"), null);
  assert.equal(s(null), null);
  assert.equal(s(undefined), null);
});

test("categoryScale: numbers-aware order, mixed types, one value, none", () => {
  assert.deepEqual(categoryScale(["b10", "b2", "b1"], [0, 1]).domain, ["b1", "b2", "b10"]);
  const mixed = categoryScale([true, "x", 3, {a: 1}, [1, 2]], [0, 500]);
  assert.equal(mixed.domain.length, 5);
  assert.notEqual(mixed(true), null);
  assert.equal(mixed(true), mixed("true"), "a value and its text are one category");
  assert.notEqual(mixed({a: 1}), null);
  assert.notEqual(mixed([1, 2]), null);
  const one = categoryScale(["only"], [0, 100]);
  assert.equal(one("only"), 50);
  const none = categoryScale([], [0, 100]);
  assert.deepEqual(none.domain, []);
  assert.equal(none("x"), null);
  assert.deepEqual(categoryScale(/** @type {any} */ (null), [0, 1]).domain, []);
  assert.deepEqual(categoryScale([null, undefined], [0, 1]).domain, []);
});

test("categories and categoryKey", () => {
  assert.deepEqual(categories(["B", "a", "A", "b"]), ["A", "a", "B", "b"]);
  assert.equal(categoryKey("x"), "x");
  assert.equal(categoryKey(1.5), "1.5");
  assert.equal(categoryKey({k: [1]}), '{"k":[1]}');
  const cyclic = {};
  cyclic.self = cyclic;
  assert.equal(typeof categoryKey(cyclic), "string");
});

test("isNumericColumn", () => {
  assert.equal(isNumericColumn([1, 2.5, -3]), true);
  assert.equal(isNumericColumn(["0.001", " 1e-3 ", "10"]), true);
  assert.equal(isNumericColumn([1, null, undefined, "2"]), true);
  assert.equal(isNumericColumn([1, NaN, Infinity]), true, "a diverged run keeps the axis numeric");
  assert.equal(isNumericColumn([1, "nan", "inf", "-Infinity"]), true);
  assert.equal(isNumericColumn([1, "relu"]), false);
  assert.equal(isNumericColumn(["relu"]), false);
  assert.equal(isNumericColumn([1, ""]), false);
  assert.equal(isNumericColumn([true, false]), false);
  assert.equal(isNumericColumn([1, {}]), false);
  assert.equal(isNumericColumn([]), false);
  assert.equal(isNumericColumn([null, undefined]), false);
  assert.equal(isNumericColumn(/** @type {any} */ (null)), false);
});

test("toNumber", () => {
  assert.equal(toNumber(3), 3);
  assert.equal(toNumber("3.5"), 3.5);
  assert.equal(toNumber(" -2e3 "), -2000);
  assert.equal(toNumber(""), null);
  assert.equal(toNumber("  "), null);
  assert.equal(toNumber("abc"), null);
  assert.equal(toNumber(NaN), null);
  assert.equal(toNumber(-Infinity), null);
  assert.equal(toNumber("Infinity"), null);
  assert.equal(toNumber(null), null);
  assert.equal(toNumber(true), null);
  assert.equal(toNumber([1]), null);
});

test("extent: finite values only", () => {
  assert.deepEqual(extent([3, 1, 2]), [1, 3]);
  assert.deepEqual(extent([null, 5, NaN, Infinity, -Infinity, "7", "x", undefined]), [5, 7]);
  assert.deepEqual(extent([4]), [4, 4]);
  assert.deepEqual(extent([-1e308, 1e308]), [-1e308, 1e308]);
  assert.equal(extent([]), null);
  assert.equal(extent([null, NaN, "x"]), null);
  assert.equal(extent(/** @type {any} */ (undefined)), null);
});

/** WCAG contrast ratio of two "#rrggbb" colours. */
function contrast(a, b) {
  const lum = (hex) => {
    const [r, g, bl] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/** CIE76 distance of two "#rrggbb" colours in Lab: ~2.3 is just noticeable, 20+ clearly apart. */
function deltaE(a, b) {
  const lab = (hex) => {
    const [r, g, bl] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    const f = (t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
    const x = f((0.4124 * r + 0.3576 * g + 0.1805 * bl) / 0.95047);
    const y = f(0.2126 * r + 0.7152 * g + 0.0722 * bl);
    const z = f((0.0193 * r + 0.1192 * g + 0.9505 * bl) / 1.08883);
    return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
  };
  const [p, q] = [lab(a), lab(b)];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

test("PALETTE: at least 10 distinct colours, readable on both themes", () => {
  assert.ok(PALETTE.length >= 10);
  assert.ok(Object.isFrozen(PALETTE));
  for (const c of PALETTE) {
    assert.match(c, /^#[0-9a-f]{6}$/);
    assert.ok(contrast(c, "#ffffff") >= 2.5, `${c} on the light theme`);
    assert.ok(contrast(c, "#0d1117") >= 2.5, `${c} on the dark theme`);
  }
  for (let i = 0; i < PALETTE.length; i++) {
    for (let j = i + 1; j < PALETTE.length; j++) {
      assert.ok(deltaE(PALETTE[i], PALETTE[j]) >= 25, `${PALETTE[i]} vs ${PALETTE[j]}`);
    }
  }
});

test("colorFor: stable, wraps, never throws", () => {
  assert.equal(colorFor(0), PALETTE[0]);
  assert.equal(colorFor(3), PALETTE[3]);
  assert.equal(colorFor(PALETTE.length), PALETTE[0]);
  assert.equal(colorFor(PALETTE.length + 2), PALETTE[2]);
  assert.equal(colorFor(-1), PALETTE[PALETTE.length - 1]);
  assert.equal(colorFor(2.7), PALETTE[2]);
  assert.equal(colorFor(NaN), PALETTE[0]);
  assert.equal(colorFor(/** @type {any} */ (undefined)), PALETTE[0]);
  assert.equal(colorFor(1e12), PALETTE[1e12 % PALETTE.length]);
});

test("rampColor and withAlpha", () => {
  assert.equal(rampColor(0), "#2563eb");
  assert.equal(rampColor(1), "#ca8a04");
  assert.equal(rampColor(-5), rampColor(0));
  assert.equal(rampColor(9), rampColor(1));
  assert.match(rampColor(0.37), /^#[0-9a-f]{6}$/);
  assert.equal(rampColor(NaN), rampColor(0.5));
  assert.equal(withAlpha("#ff0080", 0.5), "rgba(255, 0, 128, 0.5)");
  assert.equal(withAlpha("red", 0.5), "red");
});

test("segmentDistance2 and nearestPoint", () => {
  assert.equal(segmentDistance2(5, 3, 0, 0, 10, 0), 9);
  assert.equal(segmentDistance2(-3, 4, 0, 0, 10, 0), 25, "beyond an end: distance to the end");
  assert.equal(segmentDistance2(1, 1, 0, 0, 0, 0), 2, "a zero-length segment is a point");
  const pts = [{x: 0, y: 0}, {x: 10, y: 0}, {x: 10, y: 0}];
  assert.equal(nearestPoint(pts, 1, 1, 5), 0);
  assert.equal(nearestPoint(pts, 9, 0, 5), 2, "the one drawn last (on top) wins a tie");
  assert.equal(nearestPoint(pts, 50, 50, 5), -1);
  assert.equal(nearestPoint([], 0, 0, 5), -1);
});
