import assert from "node:assert/strict";
import {test} from "node:test";

import {differingKeys, groupRuns, groupSeries} from "../src/lib/group.js";

test("groupSeries: mean and min/max band of lines on the same x", () => {
  const g = groupSeries([{x: [0, 1, 2], y: [1, 2, 3]}, {x: [0, 1, 2], y: [3, 4, 5]}], {grid: 3});
  assert.deepEqual(g.x, [0, 1, 2]);
  assert.deepEqual(g.mean, [2, 3, 4]);
  assert.deepEqual(g.lo, [1, 2, 3]);
  assert.deepEqual(g.hi, [3, 4, 5]);
  assert.deepEqual(g.n, [2, 2, 2]);
});

test("groupSeries: std band, and lines logged at other x are interpolated", () => {
  const g = groupSeries([{x: [0, 2], y: [0, 2]}, {x: [0, 1, 2], y: [2, 2, 2]}], {grid: 3, band: "std"});
  assert.deepEqual(g.mean, [1, 1.5, 2]);
  assert.deepEqual(g.lo, [0, 1, 2]);
  assert.deepEqual(g.hi, [2, 2, 2]);
});

test("groupSeries: no extrapolation past a member's range; gaps and NaN are skipped", () => {
  const g = groupSeries([{x: [0, 10], y: [0, 10]}, {x: [5, 10], y: [NaN, 20]}, {x: [0, 5], y: [null, null]}], {grid: 3});
  assert.deepEqual(g.n, [1, 1, 2]);
  assert.deepEqual(g.mean, [0, 5, 15]);
});

test("groupSeries: empty input, one point", () => {
  assert.deepEqual(groupSeries([]).x, []);
  const g = groupSeries([{x: [3], y: [7]}, {x: [3], y: [9]}]);
  assert.deepEqual(g.x, [3]);
  assert.deepEqual(g.mean, [8]);
});

test("groupRuns: by folder and by a parameter, first-seen order, missing values grouped", () => {
  const runs = [{id: "a", folder: "s/1", params: {lr: 0.1}}, {id: "b", folder: null, params: {lr: 0.2}},
    {id: "c", folder: "s/1", params: {lr: 0.1}}, {id: "d", folder: null, params: {}}];
  assert.deepEqual(groupRuns(runs, "folder"), [{label: "s/1", ids: ["a", "c"]}, {label: "(root)", ids: ["b", "d"]}]);
  assert.deepEqual(groupRuns(runs, "params.lr"), [{label: "lr=0.1", ids: ["a", "c"]}, {label: "lr=0.2", ids: ["b"]},
    {label: "lr=(none)", ids: ["d"]}]);
});

test("differingKeys: equal values hidden, missing counts as different", () => {
  assert.deepEqual(differingKeys([{a: 1, b: "x", c: [1]}, {a: 2, b: "x", c: [1]}, {a: 1, b: "x"}]), ["a", "c"]);
  assert.deepEqual(differingKeys([]), []);
});
