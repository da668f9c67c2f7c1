// Number, duration, size and time formatting for tables, chart legends and headers.

const DASH = "–";

/**
 * A number with 4 significant digits; exponent notation when very large or small.
 * @param {number | null | undefined} v
 * @returns {string}
 */
export function formatNumber(v) {
  if (v === null || v === undefined) return DASH;
  if (typeof v !== "number") return String(v);
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "∞";
  if (v === -Infinity) return "-∞";
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-4) {
    // "1.235e+7" -> "1.235e7": shorter, and unambiguous next to a minus sign of the mantissa.
    return v.toExponential(3).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  if (Number.isInteger(v) && abs < 1e6) return String(v);
  // toPrecision may itself pick exponent form near the limits; parseFloat drops trailing zeros.
  return String(parseFloat(v.toPrecision(4)));
}

/**
 * A duration in human units: "850 ms", "12 s", "3 min 5 s", "2 h 4 min", "3 d 2 h".
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  const sign = seconds < 0 ? "-" : "";
  const s = Math.abs(seconds);
  if (s < 1) return `${sign}${Math.round(s * 1000)} ms`;
  if (s < 60) return `${sign}${s < 10 ? parseFloat(s.toFixed(1)) : Math.round(s)} s`;
  const total = Math.round(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d > 0) return `${sign}${d} d${h ? ` ${h} h` : ""}`;
  if (h > 0) return `${sign}${h} h${m ? ` ${m} min` : ""}`;
  return `${sign}${m} min${sec ? ` ${sec} s` : ""}`;
}

const UNITS = ["KB", "MB", "GB", "TB"];

/**
 * A byte count, 1024-based: "812 B", "1.2 KB", "3.4 MB".
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  if (Math.abs(n) < 1024) return `${n} B`;
  let v = n;
  let unit = -1;
  while (Math.abs(v) >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit += 1;
  }
  return `${v < 10 ? parseFloat(v.toFixed(1)) : Math.round(v)} ${UNITS[unit]}`;
}

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/**
 * An ISO timestamp in local time: "2026-11-30 05:12:03".
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function formatTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * How long ago (or until) a time is: "just now", "5 s ago", "3 min ago", "2 h ago", "4 d ago",
 * "in 3 min"; a date for anything older than 30 days.
 * @param {string | null | undefined} iso
 * @param {Date | number} [now]
 * @returns {string}
 */
export function relativeTime(iso, now = Date.now()) {
  if (!iso) return DASH;
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return DASH;
  const nowMs = typeof now === "number" ? now : now.getTime();
  const diff = (nowMs - t) / 1000;
  const abs = Math.abs(diff);
  if (abs < 2) return "just now";
  if (abs >= 30 * 86400) return formatTime(iso).slice(0, 10);
  let text;
  if (abs < 60) text = `${Math.floor(abs)} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)} h`;
  else text = `${Math.floor(abs / 86400)} d`;
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}
