import assert from "node:assert/strict";
import {test} from "node:test";

import {markdown} from "../src/lib/markdown.js";

test("markdown: headings, paragraphs, emphasis, code", () => {
  assert.equal(markdown("# Title\n\nSome *soft* and **bold** `code`\nwrapped."),
    "<h1>Title</h1>\n<p>Some <em>soft</em> and <strong>bold</strong> <code>code</code> wrapped.</p>");
});

test("markdown: lists, ordered and not, with continuation lines", () => {
  assert.equal(markdown("- a\n- b\n  more\n\n1. one\n2. two"),
    "<ul><li>a</li><li>b more</li></ul>\n<ol><li>one</li><li>two</li></ol>");
});

test("markdown: fenced code keeps its lines and is escaped", () => {
  assert.equal(markdown("```py\nif a < b:\n    pass\n```"), "<pre><code>if a &lt; b:\n    pass</code></pre>");
});

test("markdown: HTML never passes through", () => {
  const html = markdown('<script>alert(1)</script> <img src=x onerror="y">');
  assert.ok(!html.includes("<script") && !html.includes("<img"), html);
  assert.ok(html.includes("&lt;script&gt;"));
});

test("markdown: only http(s) and in-page links become anchors", () => {
  assert.equal(markdown("[docs](https://example.org/x)"),
    '<p><a href="https://example.org/x" rel="noopener noreferrer" target="_blank">docs</a></p>');
  assert.equal(markdown("[bad](javascript:alert(1))"), "<p>[bad](javascript:alert(1))</p>");
});

test("markdown: empty input, CRLF line ends", () => {
  assert.equal(markdown(""), "");
  assert.equal(markdown("a\r\nb"), "<p>a b</p>");
});
