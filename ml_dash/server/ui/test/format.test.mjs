import assert from "node:assert/strict";
import {test} from "node:test";

process.env.TZ = "UTC"; // formatTime shows local time; pin it (node re-reads TZ when it changes)

const {formatBytes, formatDuration, formatNumber, formatTime, relativeTime} = await import("../src/lib/format.js");

test("formatNumber: missing and non-finite values", () => {
  assert.equal(formatNumber(null), "–");
  assert.equal(formatNumber(undefined), "–");
  assert.equal(formatNumber(NaN), "NaN");
  assert.equal(formatNumber(Infinity), "∞");
  assert.equal(formatNumber(-Infinity), "-∞");
});

test("formatNumber: 4 significant digits", () => {
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(-0), "0");
  assert.equal(formatNumber(1), "1");
  assert.equal(formatNumber(0.123456), "0.1235");
  assert.equal(formatNumber(3.14159), "3.142");
  assert.equal(formatNumber(-2.5), "-2.5");
  assert.equal(formatNumber(123.456), "123.5");
  assert.equal(formatNumber(12345.678), "12350");
  assert.equal(formatNumber(0.0001), "0.0001");
  assert.equal(formatNumber(0.1 + 0.2), "0.3");
});

test("formatNumber: integers below a million are shown whole", () => {
  assert.equal(formatNumber(42), "42");
  assert.equal(formatNumber(999999), "999999");
  assert.equal(formatNumber(-12345), "-12345");
});

test("formatNumber: large and small magnitudes in exponent form", () => {
  assert.equal(formatNumber(1e6), "1e6");
  assert.equal(formatNumber(12345678), "1.235e7");
  assert.equal(formatNumber(-1.5e20), "-1.5e20");
  assert.equal(formatNumber(0.00001234), "1.234e-5");
  assert.equal(formatNumber(5e-324), "4.941e-324");
  assert.equal(formatNumber(Number.MAX_VALUE), "1.798e308");
});

test("formatNumber: non-numbers pass through as text", () => {
  assert.equal(formatNumber(/** @type {any} */ ("abc")), "abc");
});

test("formatDuration", () => {
  assert.equal(formatDuration(null), "–");
  assert.equal(formatDuration(undefined), "–");
  assert.equal(formatDuration(NaN), "–");
  assert.equal(formatDuration(Infinity), "–");
  assert.equal(formatDuration(0), "0 ms");
  assert.equal(formatDuration(0.85), "850 ms");
  assert.equal(formatDuration(0.0004), "0 ms");
  assert.equal(formatDuration(1), "1 s");
  assert.equal(formatDuration(2.25), "2.3 s");
  assert.equal(formatDuration(12), "12 s");
  assert.equal(formatDuration(59.4), "59 s");
  assert.equal(formatDuration(60), "1 min");
  assert.equal(formatDuration(185), "3 min 5 s");
  assert.equal(formatDuration(3600), "1 h");
  assert.equal(formatDuration(2 * 3600 + 4 * 60 + 7), "2 h 4 min");
  assert.equal(formatDuration(3 * 86400 + 2 * 3600 + 59), "3 d 2 h");
  assert.equal(formatDuration(86400), "1 d");
  assert.equal(formatDuration(-12), "-12 s");
});

test("formatBytes: 1024-based", () => {
  assert.equal(formatBytes(null), "–");
  assert.equal(formatBytes(NaN), "–");
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(812), "812 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1 KB");
  assert.equal(formatBytes(1229), "1.2 KB");
  assert.equal(formatBytes(3.4 * 1024 * 1024), "3.4 MB");
  assert.equal(formatBytes(150 * 1024 * 1024), "150 MB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5 GB");
  assert.equal(formatBytes(2 * 1024 ** 4), "2 TB");
  assert.equal(formatBytes(3000 * 1024 ** 4), "3000 TB");
});

test("formatTime: local time, seconds precision", () => {
  assert.equal(formatTime("2026-11-30T05:12:03.456Z"), "2026-11-30 05:12:03");
  assert.equal(formatTime("2026-01-02T03:04:05+02:00"), "2026-01-02 01:04:05");
  assert.equal(formatTime(null), "–");
  assert.equal(formatTime(""), "–");
  assert.equal(formatTime("not a time"), "–");
});

test("relativeTime", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");
  assert.equal(relativeTime("2026-11-30T12:00:00Z", now), "just now");
  assert.equal(relativeTime("2026-11-30T11:59:55Z", now), "5 s ago");
  assert.equal(relativeTime("2026-11-30T11:57:00Z", now), "3 min ago");
  assert.equal(relativeTime("2026-11-30T10:00:00Z", now), "2 h ago");
  assert.equal(relativeTime("2026-11-26T12:00:00Z", new Date(now)), "4 d ago");
  assert.equal(relativeTime("2026-11-30T12:03:00Z", now), "in 3 min");
  assert.equal(relativeTime("2026-01-05T12:00:00Z", now), "2026-01-05");
  assert.equal(relativeTime(null, now), "–");
  assert.equal(relativeTime("garbage", now), "–");
});
