import assert from "node:assert/strict";
import {test} from "node:test";

import {TABS, formatHash, parseHash} from "../src/lib/route.js";

const base = {ns: null, project: null, id: null, tab: null, query: {}};

test("login, home and namespace", () => {
  assert.deepEqual(parseHash(""), {...base, view: "home"});
  assert.deepEqual(parseHash("#"), {...base, view: "home"});
  assert.deepEqual(parseHash("#/"), {...base, view: "home"});
  assert.deepEqual(parseHash("#/login"), {...base, view: "login"});
  assert.deepEqual(parseHash("#/login?error=bad-token"), {...base, view: "login", query: {error: "bad-token"}});
  assert.deepEqual(parseHash("#/ns/alice"), {...base, view: "namespace", ns: "alice"});
  assert.deepEqual(parseHash("/ns/alice"), {...base, view: "namespace", ns: "alice"}, "without '#'");
  assert.deepEqual(parseHash("#/ns/alice/"), {...base, view: "namespace", ns: "alice"}, "trailing slash");
});

test("project with its query", () => {
  const s = parseHash("#/ns/alice/p/vision?folder=a/b&q=res net&status=RUNNING,FAILED&tag=t1,t2" +
    "&sort=createdAt&order=desc&page=3&cols=train.loss,lr");
  assert.deepEqual(s, {...base, view: "project", ns: "alice", project: "vision", query: {
    folder: "a/b", q: "res net", status: "RUNNING,FAILED", tag: "t1,t2", sort: "createdAt", order: "desc",
    page: "3", cols: "train.loss,lr"}});
});

test("experiment: every tab, a missing tab is the overview", () => {
  for (const tab of TABS) {
    assert.deepEqual(parseHash(`#/ns/a/p/b/e/123/${tab}`), {...base, view: "experiment", ns: "a", project: "b",
      id: "123", tab});
  }
  assert.equal(parseHash("#/ns/a/p/b/e/123").tab, "overview");
  assert.equal(formatHash(parseHash("#/ns/a/p/b/e/123")), "#/ns/a/p/b/e/123/overview");
});

test("unknown shapes are notfound", () => {
  for (const h of ["#/nope", "#/ns", "#/ns/a/x/b", "#/ns/a/p", "#/ns/a/p/b/e", "#/ns/a/p/b/x/1",
    "#/ns/a/p/b/e/1/charts", "#/ns/a/p/b/e/1/metrics/extra", "#/ns//p/b", "#ns/a", "#/login/x"]) {
    assert.deepEqual(parseHash(h), {view: "notfound"}, h);
  }
});

/** Names with URI-special and non-ASCII characters, as users type them. */
const NASTY = ["a b", "a/b", "a?b", "a#b", "a&b=c", "100%", "ü-ñ-日本", "a+b", "a,b", "x%2Fy", "..", "."];

test("round trip of every route shape, names with URI-special characters", () => {
  const states = [
    {...base, view: "login"},
    {...base, view: "login", query: {error: "bad-token"}},
    {...base, view: "home"},
  ];
  for (const name of NASTY) {
    states.push(
      {...base, view: "namespace", ns: name},
      {...base, view: "project", ns: name, project: name},
      {...base, view: "project", ns: "ns", project: name, query: {folder: name, q: name, tag: name, cols: `${name},lr`}},
      {...base, view: "experiment", ns: name, project: name, id: name, tab: "metrics"},
      {...base, view: "experiment", ns: "n", project: "p", id: "1", tab: "metrics",
        query: {m: `${name},loss.value`, x: "step", log: "1", smooth: "0.6", zoom: "10,2000.5"}},
      {...base, view: "experiment", ns: "n", project: "p", id: "1", tab: "logs",
        query: {level: "info,warn", q: name}},
      {...base, view: "experiment", ns: "n", project: "p", id: "1", tab: "files", query: {file: name}},
    );
  }
  for (const s of states) {
    const hash = formatHash(s);
    assert.ok(hash.startsWith("#/"), hash);
    assert.ok(!hash.slice(1).includes("#"), `a raw '#' in ${hash}`);
    assert.equal(hash.split("?").length <= 2, true, `a raw '?' in ${hash}`);
    assert.deepEqual(parseHash(hash), s, hash);
    assert.equal(formatHash(parseHash(hash)), hash);
  }
});

test("formatHash writes query keys in a fixed order and drops empty ones", () => {
  const a = formatHash({view: "project", ns: "n", project: "p", query: {order: "asc", q: "x", folder: "f", page: ""}});
  assert.equal(a, "#/ns/n/p/p?folder=f&q=x&order=asc");
  const b = formatHash({view: "experiment", ns: "n", project: "p", id: "9", tab: "metrics",
    query: {zoom: "1,2", m: "loss.value", x: "epoch", smooth: "0", extra: "1", another: "z"}});
  assert.equal(b, "#/ns/n/p/p/e/9/metrics?m=loss.value&x=epoch&smooth=0&zoom=1,2&another=z&extra=1");
  assert.equal(formatHash({view: "home", query: {}}), "#/");
  assert.equal(formatHash({view: "home"}), "#/");
  assert.equal(formatHash({view: "login"}), "#/login");
  assert.equal(formatHash({view: "notfound"}), "#/");
});

test("formatHash accepts partial states and defaults the tab", () => {
  assert.equal(formatHash({view: "namespace", ns: "alice"}), "#/ns/alice");
  assert.equal(formatHash({view: "experiment", ns: "a", project: "b", id: "1"}), "#/ns/a/p/b/e/1/overview");
  assert.throws(() => formatHash({view: "project", ns: "a"}), /project/);
  assert.throws(() => formatHash({view: "namespace", ns: ""}), /ns/);
});

test("parseHash tolerates encodings browsers produce and malformed escapes", () => {
  assert.equal(parseHash("#/ns/a%20b").ns, "a b");
  assert.equal(parseHash("#/ns/a/p/b?q=x%2Cy").query?.q, "x,y");
  assert.equal(parseHash("#/ns/a/p/b?q=a+b").query?.q, "a b");
  assert.equal(parseHash("#/ns/100%").ns, "100%");
  assert.deepEqual(parseHash("#/ns/a/p/b?flag&q=").query, {flag: "", q: ""});
  assert.deepEqual(parseHash("#/ns/a/p/b?&&q=1&").query, {q: "1"});
});

test("the compare view: parse, format, round trip", () => {
  const s = parseHash("#/ns/a/p/sweep%201/compare?ids=1,2,3&group=params.lr&band=std&diff=1");
  assert.equal(s.view, "compare");
  assert.equal(s.project, "sweep 1");
  assert.deepEqual(s.query, {ids: "1,2,3", group: "params.lr", band: "std", diff: "1"});
  assert.equal(formatHash(s), "#/ns/a/p/sweep%201/compare?ids=1,2,3&group=params.lr&band=std&diff=1");
  assert.equal(parseHash("#/ns/a/p/b/other").view, "notfound");
  assert.equal(parseHash("#/ns/a/p/b/compare/x").view, "notfound");
});
