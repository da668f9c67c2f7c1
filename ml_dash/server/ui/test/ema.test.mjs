import assert from "node:assert/strict";
import {test} from "node:test";

import {ema} from "../src/lib/ema.js";

/** @param {(number|null)[]} a @param {(number|null)[]} b */
function close(a, b) {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => {
    if (b[i] === null) assert.equal(v, null, `index ${i}`);
    else assert.ok(v !== null && Math.abs(v - /** @type {number} */ (b[i])) < 1e-12, `index ${i}: ${v} vs ${b[i]}`);
  });
}

test("weight 0 is the identity (non-finite values become gaps)", () => {
  assert.deepEqual(ema([1, 5, 3], 0), [1, 5, 3]);
  assert.deepEqual(ema([1, NaN, Infinity, null, 2], 0), [1, null, null, null, 2]);
});

test("empty input", () => {
  assert.deepEqual(ema([], 0.6), []);
});

test("debiased: the first value is kept and a constant stays constant", () => {
  close(ema([4], 0.9), [4]);
  close(ema([7, 7, 7, 7], 0.99), [7, 7, 7, 7]);
});

test("matches TensorBoard's formula", () => {
  const w = 0.6;
  const ys = [1, 2, 4, 8];
  let last = 0;
  const want = ys.map((y, i) => {
    last = last * w + (1 - w) * y;
    return last / (1 - w ** (i + 1));
  });
  close(ema(ys, w), want);
  // the second value: (0.4*1*0.6 + 0.4*2) / (1 - 0.36)
  close(ema([1, 2], 0.6).slice(1), [(0.24 + 0.8) / 0.64]);
});

test("gaps stay gaps and do not poison later values", () => {
  const smooth = ema([1, null, NaN, -Infinity, Infinity, 3, undefined], 0.5);
  close(smooth, [1, null, null, null, null, ema([1, 3], 0.5)[1], null]);
  assert.ok(smooth.every((v) => v === null || Number.isFinite(v)));
});

test("leading gaps: the first finite value starts the average", () => {
  close(ema([null, NaN, 5, 5], 0.9), [null, null, 5, 5]);
});

test("weight is clamped to [0, 0.999]", () => {
  close(ema([1, 2], -1), [1, 2]);
  close(ema([1, 2], 5), ema([1, 2], 0.999));
  close(ema([1, 2], /** @type {any} */ (undefined)), [1, 2]);
});

test("smoothing reduces the spread of noise", () => {
  const ys = Array.from({length: 200}, (_, i) => (i % 2 ? 1 : -1));
  const smooth = /** @type {number[]} */ (ema(ys, 0.9));
  assert.ok(Math.max(...smooth.slice(50).map(Math.abs)) < 0.2);
});
