// Parameters tab: nested parameter documents as dotted keys, grouped by their first segment.

/** @typedef {[string, unknown]} ParamEntry */

const collator = new Intl.Collator("en", {numeric: true, sensitivity: "base"});

/** @param {unknown} v */
const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * `{model: {arch: "resnet"}, lr: 0.1}` -> `[["model.arch", "resnet"], ["lr", 0.1]]`.
 * Arrays stay values; an empty object stays a value so it is not lost.
 * @param {Record<string, unknown> | null | undefined} obj
 * @param {string} [prefix]
 * @returns {ParamEntry[]}
 */
export function flattenParams(obj, prefix = "") {
  /** @type {ParamEntry[]} */
  const out = [];
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(/** @type {Record<string, unknown>} */ (obj))) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isPlainObject(v) && Object.keys(/** @type {object} */ (v)).length > 0) {
      out.push(...flattenParams(/** @type {Record<string, unknown>} */ (v), key));
    } else {
      out.push([key, v]);
    }
  }
  return out;
}

/**
 * Groups by the first dot segment; keys without a dot form group "" which comes first.
 * Groups and the keys inside them are sorted (numbers inside names in numeric order).
 * @param {ParamEntry[]} entries
 * @returns {{group: string, entries: ParamEntry[]}[]}
 */
export function groupParams(entries) {
  /** @type {Map<string, ParamEntry[]>} */
  const groups = new Map();
  for (const entry of entries) {
    const dot = entry[0].indexOf(".");
    const group = dot < 0 ? "" : entry[0].slice(0, dot);
    if (!groups.has(group)) groups.set(group, []);
    /** @type {ParamEntry[]} */ (groups.get(group)).push(entry);
  }
  return [...groups.keys()]
    .sort((a, b) => (a === "" ? -1 : b === "" ? 1 : collator.compare(a, b)))
    .map((group) => ({
      group,
      entries: /** @type {ParamEntry[]} */ (groups.get(group)).slice().sort((a, b) => collator.compare(a[0], b[0])),
    }));
}

/**
 * A value as shown and searched: strings as they are, everything else as JSON.
 * @param {unknown} v
 * @returns {string}
 */
export function paramText(v) {
  if (typeof v === "string") return v;
  if (v === undefined) return "";
  if (typeof v === "number" && !Number.isFinite(v)) return String(v); // JSON would say null
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Case-insensitive match of `q` in the key or the value's text; an empty query keeps everything.
 * @param {ParamEntry[]} entries
 * @param {string | null | undefined} q
 * @returns {ParamEntry[]}
 */
export function filterParams(entries, q) {
  const needle = (q || "").trim().toLowerCase();
  if (!needle) return entries.slice();
  return entries.filter(([k, v]) => k.toLowerCase().includes(needle) || paramText(v).toLowerCase().includes(needle));
}
