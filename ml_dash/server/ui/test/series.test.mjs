import assert from "node:assert/strict";
import {test} from "node:test";

import {ema} from "../src/lib/ema.js";
import {appendTail, pickDefaultX, toChartData} from "../src/lib/series.js";

const doc = () => ({
  x: [0, 10, 20, 30], y: [1, 2, null, 4], min: [0.5, -1, null, 3], max: [1.5, 100, null, 5],
  count: [10, 10, 3, 10], nonFinite: [0, 0, 3, 1], total: 33, cursor: "c1", last: {x: 39, y: 4},
  xField: "step", yField: "value", exact: false,
});

test("toChartData: columns, gaps and marks", () => {
  assert.deepEqual(toChartData(doc()), {
    x: [0, 10, 20, 30], y: [1, 2, null, 4], raw: [1, 2, null, 4], lo: [0.5, -1, null, 3], hi: [1.5, 100, null, 5],
    marks: [20, 30]});
});

test("toChartData: empty or missing documents", () => {
  const empty = {x: [], y: [], raw: [], lo: [], hi: [], marks: []};
  assert.deepEqual(toChartData(null), empty);
  assert.deepEqual(toChartData(undefined), empty);
  assert.deepEqual(toChartData(/** @type {any} */ ({})), empty);
  assert.deepEqual(toChartData({x: [], y: [], min: [], max: [], count: []}), empty);
});

test("toChartData: buckets without a finite x are dropped, non-finite values are gaps", () => {
  const d = {x: [null, 1, Infinity, 2], y: [5, NaN, 7, Infinity], min: [5, 1, 7, -Infinity], max: [5, 2, 7, 9],
    count: [1, 1, 1, 1]};
  assert.deepEqual(toChartData(/** @type {any} */ (d)), {x: [1, 2], y: [null, null], raw: [null, null], lo: [1, null], hi: [2, 9],
    marks: []});
});

test("toChartData: smoothing applies to the mean only; the envelope stays raw", () => {
  const d = doc();
  const out = toChartData(d, {smooth: 0.6});
  assert.deepEqual(out.y, ema(d.y, 0.6));
  assert.deepEqual(out.raw, d.y, "the unsmoothed line is there too");
  assert.deepEqual(out.lo, d.min);
  assert.deepEqual(out.hi, d.max, "the spike of 100 stays visible");
  assert.deepEqual(toChartData(d, {smooth: 0}).y, d.y);
});

test("toChartData: log y turns values ≤ 0 into gaps", () => {
  const out = toChartData(doc(), {logY: true});
  assert.deepEqual(out.y, [1, 2, null, 4]);
  assert.deepEqual(out.raw, [1, 2, null, 4]);
  assert.deepEqual(out.lo, [0.5, null, null, 3]);
  assert.deepEqual(out.hi, [1.5, 100, null, 5]);
  const neg = toChartData({x: [1, 2, 3], y: [-1, 0, 1e-300], min: [-5, 0, 1e-300], max: [0, 0, 1], count: [1, 1, 1]},
    {logY: true});
  assert.deepEqual(neg, {x: [1, 2, 3], y: [null, null, 1e-300], raw: [null, null, 1e-300],
    lo: [null, null, 1e-300], hi: [null, null, 1], marks: []});
});

test("toChartData: smoothing with log y smooths first, then drops non-positive results", () => {
  const out = toChartData({x: [1, 2], y: [-10, 1], min: [-10, 1], max: [-10, 1], count: [1, 1]}, {smooth: 0.9, logY: true});
  assert.deepEqual(out.y, [null, null], "the smoothed -10 -> 1 stays below 0");
  assert.deepEqual(out.raw, [null, 1]);
});

test("toChartData: a non-monotone x is sorted for uPlot; smoothing follows index order", () => {
  const d = {x: [3, 1, 2, 1], y: [30, 10, 20, 11], min: [29, 9, 19, 10], max: [31, 11, 21, 12], count: [1, 1, 1, 1],
    nonFinite: [1, 0, 1, 0]};
  assert.deepEqual(toChartData(d), {x: [1, 1, 2, 3], y: [10, 11, 20, 30], raw: [10, 11, 20, 30], lo: [9, 10, 19, 29],
    hi: [11, 12, 21, 31], marks: [2, 3]});
  const smooth = ema(d.y, 0.5);
  const out = toChartData(d, {smooth: 0.5});
  assert.deepEqual(out.y, [smooth[1], smooth[3], smooth[2], smooth[0]]);
  assert.deepEqual(out.raw, [10, 11, 20, 30]);
});

test("toChartData does not mutate its input", () => {
  const d = doc();
  const before = JSON.stringify(d);
  toChartData(d, {smooth: 0.5, logY: true});
  assert.equal(JSON.stringify(d), before);
});

test("appendTail: concatenates new buckets and takes total/cursor/last from the tail", () => {
  const tail = {x: [40, 50], y: [6, 7], min: [6, 7], max: [6, 8], count: [2, 3], nonFinite: [0, 1], total: 38,
    cursor: "c2", last: {x: 52, y: 7}};
  const held = doc();
  const merged = appendTail(held, tail);
  assert.deepEqual(merged.x, [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(merged.y, [1, 2, null, 4, 6, 7]);
  assert.deepEqual(merged.min, [0.5, -1, null, 3, 6, 7]);
  assert.deepEqual(merged.max, [1.5, 100, null, 5, 6, 8]);
  assert.deepEqual(merged.count, [10, 10, 3, 10, 2, 3]);
  assert.deepEqual(merged.nonFinite, [0, 0, 3, 1, 0, 1]);
  assert.equal(merged.total, 38);
  assert.equal(merged.cursor, "c2");
  assert.deepEqual(merged.last, {x: 52, y: 7});
  assert.equal(merged.xField, "step");
  assert.deepEqual(held, doc(), "the held document is not mutated");
  assert.deepEqual(toChartData(merged).marks, [20, 30, 50]);
});

test("appendTail: a tail bucket at the held last x is combined with it", () => {
  const tail = {x: [30, 40], y: [10, 1], min: [-2, 1], max: [10, 1], count: [10, 1], nonFinite: [2, 0], total: 44,
    cursor: "c3", last: {x: 40, y: 1}};
  const merged = appendTail(doc(), tail);
  assert.deepEqual(merged.x, [0, 10, 20, 30, 40]);
  assert.deepEqual(merged.y, [1, 2, null, 7, 1]);
  assert.deepEqual(merged.min, [0.5, -1, null, -2, 1]);
  assert.deepEqual(merged.max, [1.5, 100, null, 10, 1]);
  assert.deepEqual(merged.count, [10, 10, 3, 20, 1]);
  assert.deepEqual(merged.nonFinite, [0, 0, 3, 3, 0]);
});

test("appendTail: combining with null means and extremes keeps the finite side", () => {
  const held = {x: [1], y: [null], min: [null], max: [null], count: [2], nonFinite: [2], total: 2, cursor: 1};
  const merged = appendTail(held, {x: [1], y: [3], min: [3], max: [3], count: [1], nonFinite: [0], total: 3, cursor: 2});
  assert.deepEqual([merged.y, merged.min, merged.max, merged.count, merged.nonFinite], [[3], [3], [3], [3], [2]]);
});

test("appendTail: the held document is empty", () => {
  const tail = {x: [1, 2], y: [3, 4], min: [3, 4], max: [3, 4], count: [1, 1], total: 2, cursor: "c", last: {x: 2, y: 4},
    xField: "step"};
  for (const held of [null, undefined, {x: [], y: [], min: [], max: [], count: [], nonFinite: [], total: 0, cursor: null,
    last: null}]) {
    const merged = appendTail(held, tail);
    assert.deepEqual(merged.x, [1, 2]);
    assert.deepEqual(merged.y, [3, 4]);
    assert.deepEqual(merged.nonFinite, [0, 0], "a missing nonFinite column is zeros");
    assert.equal(merged.total, 2);
    assert.equal(merged.cursor, "c");
    assert.deepEqual(merged.last, {x: 2, y: 4});
    assert.equal(merged.xField, "step");
  }
});

test("appendTail: an empty tail only moves the cursor", () => {
  const merged = appendTail(doc(), {x: [], y: [], min: [], max: [], count: [], nonFinite: [], total: 33, cursor: "c9",
    last: null});
  assert.deepEqual(merged.x, doc().x);
  assert.equal(merged.cursor, "c9");
  assert.deepEqual(merged.last, doc().last, "a null last does not erase the known last point");
  assert.deepEqual(appendTail(doc(), null), doc());
});

test("appendTail: a tail without a total adds its counts", () => {
  const merged = appendTail(doc(), {x: [99], y: [1], min: [1], max: [1], count: [4]});
  assert.equal(merged.total, 37);
});

test("pickDefaultX: step, then epoch, then index, else the first field", () => {
  assert.equal(pickDefaultX(["timestamp", "index", "epoch", "step"]), "step");
  assert.equal(pickDefaultX(["timestamp", "index", "epoch"]), "epoch");
  assert.equal(pickDefaultX(["timestamp", "index"]), "index");
  assert.equal(pickDefaultX(["timestamp", "lr"]), "timestamp");
  assert.equal(pickDefaultX([]), "index");
  assert.equal(pickDefaultX(null), "index");
});
