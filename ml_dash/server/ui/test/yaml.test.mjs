import assert from "node:assert/strict";
import {test} from "node:test";

import {globToRegExp, toYaml} from "../src/lib/yaml.js";

test("toYaml: nested mappings, lists of mappings, scalars quoted safely", () => {
  const text = toYaml({charts: [{ctype: "line", yKey: "train.loss", bins: 200, logY: true,
    series: [{experimentId: "12", color: "#1f77b4"}]}], metrics: {fields: ["train*"]}});
  assert.equal(text, [
    "charts:",
    '  - ctype: "line"',
    '    yKey: "train.loss"',
    "    bins: 200",
    "    logY: true",
    "    series:",
    '      - experimentId: "12"',
    '        color: "#1f77b4"',
    "metrics:",
    "  fields:",
    '    - "train*"',
    ""].join("\n"));
});

test("toYaml: empty containers, null, odd keys and strings", () => {
  assert.equal(toYaml({a: [], b: {}, c: null, "odd key": 'say "hi"\n'}),
    'a: []\nb: {}\nc: null\n"odd key": "say \\"hi\\"\\n"\n');
  assert.equal(toYaml([1, [2, 3]]), "- 1\n-\n  - 2\n  - 3\n");
});

test("globToRegExp: the .dashrc defaults and the usual shapes", () => {
  const images = globToRegExp("**/*.{png,jpg,jpeg,gif,webp}");
  assert.ok(images.test("a.png") && images.test("plots/x/a.JPG") && !images.test("a.mp4"));
  assert.ok(globToRegExp("plots/*.png").test("plots/a.png"));
  assert.ok(!globToRegExp("plots/*.png").test("plots/x/a.png"));
  assert.ok(globToRegExp("frame-?.png").test("frame-1.png"));
  assert.ok(globToRegExp("a.b{").test("a.b{"));
});
