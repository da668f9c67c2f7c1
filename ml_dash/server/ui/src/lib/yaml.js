// Writes the YAML of a .dashrc built in the browser ("Save as .dashrc"): nested mappings, lists
// and scalars only. Strings are written double-quoted (JSON's escapes are valid YAML), so a
// value never turns into another type when read back.

const BARE_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** @param {any} value @returns {string} */
export function toYaml(value) {
  return `${lines(value, 0).join("\n")}\n`;
}

function scalar(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : v > 0 ? ".inf" : v < 0 ? "-.inf" : ".nan";
  if (typeof v === "boolean") return v ? "true" : "false";
  return JSON.stringify(String(v));
}

const key = (k) => (BARE_KEY.test(k) ? k : JSON.stringify(k));
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function lines(value, depth) {
  const pad = "  ".repeat(depth);
  if (Array.isArray(value)) {
    if (!value.length) return [`${pad}[]`];
    return value.flatMap((item) => {
      if (isObject(item) && Object.keys(item).length) {
        const [first, ...rest] = lines(item, depth + 1);
        return [`${pad}- ${first.trimStart()}`, ...rest];
      }
      if (Array.isArray(item) && item.length) return [`${pad}-`, ...lines(item, depth + 1)];
      return [`${pad}- ${isObject(item) ? "{}" : Array.isArray(item) ? "[]" : scalar(item)}`];
    });
  }
  if (isObject(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (!entries.length) return [`${pad}{}`];
    return entries.flatMap(([k, v]) => {
      if ((isObject(v) && Object.keys(v).length) || (Array.isArray(v) && v.length)) {
        return [`${pad}${key(k)}:`, ...lines(v, depth + 1)];
      }
      return [`${pad}${key(k)}: ${isObject(v) ? "{}" : Array.isArray(v) ? "[]" : scalar(v)}`];
    });
  }
  return [`${pad}${scalar(value)}`];
}

/**
 * A glob of the .dashrc format as a RegExp over "/"-separated paths: `**` any depth (also none),
 * `*` within one segment, `?` one character, `{a,b}` alternatives.
 * @param {string} glob
 */
export function globToRegExp(glob) {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      const slash = glob[i + 2] === "/";
      out += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else if (c === "{") {
      const end = glob.indexOf("}", i);
      if (end < 0) {
        out += "\\{";
        continue;
      }
      out += `(?:${glob.slice(i + 1, end).split(",").map(escape).join("|")})`;
      i = end;
    } else out += escape(c);
  }
  return new RegExp(`^${out}$`, "i");
}

function escape(s) {
  return s.replace(/[.+^$()|[\]\\{}*?]/g, "\\$&");
}
