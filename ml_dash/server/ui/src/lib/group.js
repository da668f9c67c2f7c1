// Grouping runs (seeds of one config, a folder): each member's line is resampled onto one grid of
// x positions by linear interpolation (never extrapolated past its own first and last x), then
// per grid position the mean and a band (min/max of the members, or mean ± std) over the members
// that cover it. Members logged at different x positions can so be averaged.

/**
 * @param {{x: number[], y: (number|null)[]}[]} members each sorted by x
 * @param {{grid?: number, band?: "minmax"|"std"}} [options]
 * @returns {{x: number[], mean: (number|null)[], lo: (number|null)[], hi: (number|null)[], n: number[]}}
 */
export function groupSeries(members, options = {}) {
  const grid = Math.max(2, options.grid ?? 300);
  const band = options.band ?? "minmax";
  const lines = members.map(finitePairs).filter((m) => m.x.length > 0);
  const out = {x: [], mean: [], lo: [], hi: [], n: []};
  if (!lines.length) return out;
  const x0 = Math.min(...lines.map((m) => m.x[0]));
  const x1 = Math.max(...lines.map((m) => m.x[m.x.length - 1]));
  const steps = x0 === x1 ? 1 : grid;
  const cursors = lines.map(() => 0);
  for (let g = 0; g < steps; g++) {
    const x = steps === 1 ? x0 : x0 + ((x1 - x0) * g) / (steps - 1);
    const values = [];
    lines.forEach((m, i) => {
      const v = at(m, x, cursors, i);
      if (v !== null) values.push(v);
    });
    out.x.push(x);
    out.n.push(values.length);
    if (!values.length) {
      out.mean.push(null);
      out.lo.push(null);
      out.hi.push(null);
      continue;
    }
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    out.mean.push(mean);
    if (band === "std") {
      const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
      out.lo.push(mean - sd);
      out.hi.push(mean + sd);
    } else {
      out.lo.push(Math.min(...values));
      out.hi.push(Math.max(...values));
    }
  }
  return out;
}

/** The finite (x, y) pairs of a line, in x order. */
function finitePairs(m) {
  const pairs = [];
  for (let i = 0; i < m.x.length; i++) {
    const x = m.x[i];
    const y = m.y[i];
    if (Number.isFinite(x) && typeof y === "number" && Number.isFinite(y)) pairs.push([x, y]);
  }
  pairs.sort((a, b) => a[0] - b[0]);
  return {x: pairs.map((p) => p[0]), y: pairs.map((p) => p[1])};
}

/** y of line m at x by linear interpolation; cursors[i] walks forward as x grows (one pass). */
function at(m, x, cursors, i) {
  const xs = m.x;
  if (x < xs[0] || x > xs[xs.length - 1]) return null;
  let k = cursors[i];
  while (k + 1 < xs.length && xs[k + 1] <= x) k++;
  cursors[i] = k;
  if (xs[k] === x || k + 1 >= xs.length) return m.y[k];
  const t = (x - xs[k]) / (xs[k + 1] - xs[k]);
  return m.y[k] + t * (m.y[k + 1] - m.y[k]);
}

/**
 * Experiments into groups by a key: "folder", or "params.NAME" (flattened parameter); members
 * without the key form the group "(none)". Groups keep the order of first appearance.
 * @param {{id: string, folder?: string|null, params: Record<string, any>}[]} runs
 * @param {string} key
 * @returns {{label: string, ids: string[]}[]}
 */
export function groupRuns(runs, key) {
  const groups = new Map();
  for (const run of runs) {
    let value;
    if (key === "folder") value = run.folder || "(root)";
    else if (key.startsWith("params.")) {
      const v = run.params[key.slice(7)];
      value = v === undefined || v === null ? "(none)" : typeof v === "string" ? v : JSON.stringify(v);
    } else value = "(all)";
    const label = key === "folder" ? value : `${key.slice(7)}=${value}`;
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(run.id);
  }
  return [...groups].map(([label, ids]) => ({label, ids}));
}

/**
 * The parameter keys whose values are not all equal over the runs (a key missing in some run
 * differs): the "differences only" rows.
 * @param {Record<string, any>[]} paramsList flattened parameters per run
 */
export function differingKeys(paramsList) {
  const keys = new Set(paramsList.flatMap((p) => Object.keys(p)));
  return [...keys].filter((key) => {
    const seen = new Set(paramsList.map((p) => (key in p ? JSON.stringify(p[key]) : "\u0000missing")));
    return seen.size > 1;
  }).sort();
}
