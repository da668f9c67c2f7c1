import assert from "node:assert/strict";
import {test} from "node:test";

import {buildTree, countItems} from "../src/lib/tree.js";

/** A node as plain names, for compact assertions. @param {any} node @returns {any} */
const shape = (node) => ({
  name: node.name, path: node.path, items: node.items.map((i) => i.path), children: node.children.map(shape),
});

test("files: items sit in their folder, folders and items sorted", () => {
  const root = buildTree([{path: "b/z.txt"}, {path: "a/b/c.png"}, {path: "readme.md"}, {path: "a/b/a.png"},
    {path: "a/x.json"}]);
  assert.deepEqual(shape(root), {name: "", path: "", items: ["readme.md"], children: [
    {name: "a", path: "a", items: ["a/x.json"], children: [
      {name: "b", path: "a/b", items: ["a/b/a.png", "a/b/c.png"], children: []}]},
    {name: "b", path: "b", items: ["b/z.txt"], children: []},
  ]});
  assert.equal(countItems(root), 5);
  assert.equal(countItems(root.children[0]), 3);
});

test("items keep their other fields (the same objects)", () => {
  const file = {path: "m/model.pt", size: 12, id: "f1"};
  const root = buildTree([file]);
  assert.equal(root.children[0].items[0], file);
});

test("empty input and odd slashes", () => {
  assert.deepEqual(shape(buildTree([])), {name: "", path: "", items: [], children: []});
  const root = buildTree([{path: "/a//b/c.txt"}, {path: "./a/d.txt"}]);
  assert.deepEqual(shape(root).children, [{name: "a", path: "a", items: ["./a/d.txt"], children: [
    {name: "b", path: "a/b", items: ["/a//b/c.txt"], children: []}]}]);
});

test("folders mode: each path names a folder, '' is the root", () => {
  const root = buildTree([{path: "a/b", n: 2}, {path: "", n: 1}, {path: "a", n: 3}, {path: "c/d/e", n: 1}],
    {folders: true});
  assert.deepEqual(shape(root), {name: "", path: "", items: [""], children: [
    {name: "a", path: "a", items: ["a"], children: [{name: "b", path: "a/b", items: ["a/b"], children: []}]},
    {name: "c", path: "c", items: [], children: [
      {name: "d", path: "c/d", items: [], children: [{name: "e", path: "c/d/e", items: ["c/d/e"], children: []}]}]},
  ]});
});

test("natural order of names with numbers", () => {
  const root = buildTree([{path: "run10/x"}, {path: "run2/x"}, {path: "run1/x"}]);
  assert.deepEqual(root.children.map((c) => c.name), ["run1", "run2", "run10"]);
});
