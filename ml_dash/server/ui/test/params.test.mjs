import assert from "node:assert/strict";
import {test} from "node:test";

import {filterParams, flattenParams, groupParams, paramText} from "../src/lib/params.js";

test("flattenParams: nested objects become dotted keys, arrays stay values", () => {
  const params = {lr: 0.001, model: {arch: "resnet", layers: [1, 2, 3], head: {dim: 128}}, seed: null,
    empty: {}, flag: false};
  assert.deepEqual(flattenParams(params), [
    ["lr", 0.001], ["model.arch", "resnet"], ["model.layers", [1, 2, 3]], ["model.head.dim", 128],
    ["seed", null], ["empty", {}], ["flag", false]]);
});

test("flattenParams: nothing to flatten", () => {
  assert.deepEqual(flattenParams({}), []);
  assert.deepEqual(flattenParams(null), []);
  assert.deepEqual(flattenParams(undefined), []);
  assert.deepEqual(flattenParams(/** @type {any} */ ([1, 2])), []);
  assert.deepEqual(flattenParams({a: [{b: 1}]}), [["a", [{b: 1}]]]);
});

test("groupParams: top-level keys first, groups and keys sorted naturally", () => {
  const groups = groupParams([["z", 1], ["model.b", 2], ["a", 3], ["data.path", "x"], ["model.a.c", 4],
    ["layer10.w", 1], ["layer2.w", 2]]);
  assert.deepEqual(groups, [
    {group: "", entries: [["a", 3], ["z", 1]]},
    {group: "data", entries: [["data.path", "x"]]},
    {group: "layer2", entries: [["layer2.w", 2]]},
    {group: "layer10", entries: [["layer10.w", 1]]},
    {group: "model", entries: [["model.a.c", 4], ["model.b", 2]]},
  ]);
  assert.deepEqual(groupParams([]), []);
  assert.deepEqual(groupParams([["model.x", 1]]), [{group: "model", entries: [["model.x", 1]]}]);
});

test("filterParams: case-insensitive on key or value text", () => {
  const entries = flattenParams({lr: 0.001, model: {arch: "ResNet50", layers: [64, 128]}, opt: {name: "adam"},
    flag: true, none: null});
  assert.deepEqual(filterParams(entries, "resnet").map((e) => e[0]), ["model.arch"]);
  assert.deepEqual(filterParams(entries, "MODEL").map((e) => e[0]), ["model.arch", "model.layers"]);
  assert.deepEqual(filterParams(entries, "128").map((e) => e[0]), ["model.layers"]);
  assert.deepEqual(filterParams(entries, "0.001").map((e) => e[0]), ["lr"]);
  assert.deepEqual(filterParams(entries, "true").map((e) => e[0]), ["flag"]);
  assert.deepEqual(filterParams(entries, "null").map((e) => e[0]), ["none"]);
  assert.deepEqual(filterParams(entries, "nothing-like-this"), []);
  assert.equal(filterParams(entries, "").length, entries.length);
  assert.equal(filterParams(entries, "  ").length, entries.length);
  assert.equal(filterParams(entries, null).length, entries.length);
});

test("paramText", () => {
  assert.equal(paramText("a"), "a");
  assert.equal(paramText(1.5), "1.5");
  assert.equal(paramText([1, "x"]), '[1,"x"]');
  assert.equal(paramText(null), "null");
  assert.equal(paramText(undefined), "");
  assert.equal(paramText(NaN), "NaN");
  assert.equal(paramText(-Infinity), "-Infinity");
});
