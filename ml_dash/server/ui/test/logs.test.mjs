import assert from "node:assert/strict";
import {test} from "node:test";

import {levelClass, matchLog, normalizeLevel} from "../src/lib/logs.js";

test("levelClass and normalizeLevel", () => {
  assert.equal(levelClass("info"), "level-info");
  assert.equal(levelClass("WARN"), "level-warn");
  assert.equal(levelClass("warning"), "level-warn");
  assert.equal(levelClass("error"), "level-error");
  assert.equal(levelClass("fatal"), "level-fatal");
  assert.equal(levelClass("debug"), "level-debug");
  assert.equal(levelClass(null), "level-info");
  assert.equal(levelClass("<script>"), "level-info");
  assert.equal(normalizeLevel(" Critical "), "fatal");
});

const entry = {seq: 1, level: "warn", message: "GPU memory at 95%", metadata: {gpu: 3, host: "node-7"}};

test("matchLog: levels", () => {
  assert.equal(matchLog(entry), true);
  assert.equal(matchLog(entry, {levels: []}), true);
  assert.equal(matchLog(entry, {levels: ["warn", "error"]}), true);
  assert.equal(matchLog(entry, {levels: ["WARNING"]}), true);
  assert.equal(matchLog(entry, {levels: ["info"]}), false);
});

test("matchLog: text in message or metadata, case-insensitive", () => {
  assert.equal(matchLog(entry, {q: "gpu memory"}), true);
  assert.equal(matchLog(entry, {q: "NODE-7"}), true);
  assert.equal(matchLog(entry, {q: "\"gpu\":3"}), true);
  assert.equal(matchLog(entry, {q: "cpu"}), false);
  assert.equal(matchLog(entry, {q: "  "}), true);
  assert.equal(matchLog(entry, {levels: ["info"], q: "gpu"}), false);
  assert.equal(matchLog({level: "info", message: "x", metadata: null}, {q: "null"}), false);
  assert.equal(matchLog({level: "info", message: null}, {q: "x"}), false);
  assert.equal(matchLog({message: "hello"}, {levels: ["info"], q: "hell"}), true);
});
