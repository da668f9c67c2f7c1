// One uPlot line chart: the bucket means as a line, the exact min/max of every bucket as a band
// (so no spike is hidden), an optional smoothed line, and red ticks where NaN/±Inf were logged.
// The server already reduced the series to at most ~1,000 buckets: this module only draws.
import uPlot from "uplot";

/** CSS custom properties of the current theme. */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {line: v("--chart-line", "#2563eb"), band: v("--chart-band", "rgba(37,99,235,0.18)"),
    edge: v("--chart-edge", "rgba(37,99,235,0.5)"), smooth: v("--chart-smooth", "#dc2626"), axis: v("--muted", "#666"), grid: v("--grid", "rgba(128,128,128,0.15)"),
    bad: v("--bad", "#dc2626")};
}

/**
 * @param {HTMLElement} target
 * @param {{x: number[], y: (number|null)[], lo: (number|null)[], hi: (number|null)[], smooth: (number|null)[] | null,
 *   marks: number[]}} data
 * @param {{width: number, height: number, time: boolean, logY: boolean, xLabel: string, onZoom: (x0: number, x1: number) => void,
 *   onReset: () => void, syncKey: string}} opts
 */
export function lineChart(target, data, opts) {
  const colors = palette();
  let marks = data.marks;
  const axis = {stroke: colors.axis, grid: {stroke: colors.grid, width: 1}, ticks: {stroke: colors.grid}};
  const u = new uPlot({
    width: opts.width, height: opts.height, legend: {show: false},
    cursor: {drag: {x: true, y: false, setScale: false}, sync: {key: opts.syncKey}},
    scales: {x: {time: opts.time, distr: opts.logX ? 3 : 1}, y: {distr: opts.logY ? 3 : 1}},
    axes: [{...axis, label: opts.xLabel, labelSize: 18, size: 36}, {...axis, size: 56}],
    series: [
      {},
      // The envelope's edges are stroked too: a spike one bucket wide is narrower than a pixel,
      // so a fill alone would leave it faint.
      {label: "max", stroke: colors.edge, width: 1, points: {show: false}},
      {label: "min", stroke: colors.edge, width: 1, points: {show: false}},
      {label: "mean", stroke: data.smooth ? colors.band : colors.line, width: data.smooth ? 1 : 1.5,
        spanGaps: false}, // uPlot shows the points by itself once they are sparse
      {label: "smoothed", stroke: colors.smooth, width: 1.5, show: data.smooth !== null, points: {show: false}},
    ],
    bands: [{series: [1, 2], fill: colors.band}],
    hooks: {
      setSelect: [(self) => {
        if (self.select.width < 3) return;
        const x0 = self.posToVal(self.select.left, "x");
        const x1 = self.posToVal(self.select.left + self.select.width, "x");
        self.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
        opts.onZoom(x0, x1);
      }],
      draw: [(self) => drawMarks(self, marks, colors.bad)],
    },
  }, columns(data), target);
  u.over.addEventListener("dblclick", () => opts.onReset());
  return {
    plot: u,
    /** New data (zoom, a live tick); keeps the chart and its size. */
    update(next) {
      marks = next.marks;
      u.setData(columns(next));
    },
    resize(width) {
      u.setSize({width, height: opts.height});
    },
    destroy() {
      u.destroy();
    },
  };
}

function columns(d) {
  return [d.x, d.hi, d.lo, d.y, d.smooth || d.y.map(() => null)];
}

/** Small red ticks under the plot where buckets held NaN or ±Inf: never a broken line. */
function drawMarks(u, marks, color) {
  if (!marks.length) return;
  const ctx = u.ctx;
  const bottom = u.bbox.top + u.bbox.height;
  const size = 5 * devicePixelRatio;
  ctx.save();
  ctx.fillStyle = color;
  for (const x of marks) {
    const px = u.valToPos(x, "x", true);
    if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(px, bottom - size * 1.6);
    ctx.lineTo(px - size, bottom);
    ctx.lineTo(px + size, bottom);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}
