// Logs tab: level styling and client-side matching of new lines against the active filter.

const LEVELS = new Set(["debug", "info", "warn", "error", "fatal"]);
/** @type {Record<string, string>} */
const ALIASES = {warning: "warn", err: "error", critical: "fatal", trace: "debug"};

/**
 * A normalized level name: "warning" -> "warn"; unknown or missing -> "info".
 * @param {string | null | undefined} level
 * @returns {string}
 */
export function normalizeLevel(level) {
  const l = String(level ?? "").trim().toLowerCase();
  const name = ALIASES[l] ?? l;
  return LEVELS.has(name) ? name : "info";
}

/**
 * The CSS class of a log line's level, e.g. "level-warn".
 * @param {string | null | undefined} level
 * @returns {string}
 */
export function levelClass(level) {
  return `level-${normalizeLevel(level)}`;
}

/**
 * Whether a log entry passes the filter: its level among `levels` (empty = all) and `q`
 * (case-insensitive) in its message or its metadata's JSON.
 * @param {{level?: string | null, message?: string | null, metadata?: unknown}} entry
 * @param {{levels?: string[] | null, q?: string | null}} [filter]
 * @returns {boolean}
 */
export function matchLog(entry, filter = {}) {
  const levels = (filter.levels || []).map(normalizeLevel);
  if (levels.length && !levels.includes(normalizeLevel(entry.level))) return false;
  const q = (filter.q || "").trim().toLowerCase();
  if (!q) return true;
  if (String(entry.message ?? "").toLowerCase().includes(q)) return true;
  if (entry.metadata === null || entry.metadata === undefined) return false;
  let meta;
  try {
    meta = JSON.stringify(entry.metadata);
  } catch {
    meta = String(entry.metadata);
  }
  return (meta ?? "").toLowerCase().includes(q);
}
