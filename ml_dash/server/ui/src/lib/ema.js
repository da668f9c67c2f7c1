// TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0.

/**
 * @param {ReadonlyArray<number | null | undefined>} ys
 * @param {number} weight in [0, 0.999]; 0 returns the values unchanged (non-finite ones as null)
 * @returns {(number | null)[]}
 */
export function ema(ys, weight) {
  const w = Math.min(Math.max(Number(weight) || 0, 0), 0.999);
  /** @type {(number | null)[]} */
  const out = new Array(ys.length);
  let last = 0;
  let steps = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    // Gaps and NaN/±Inf stay gaps and are skipped, so one bad value never poisons the rest.
    if (y === null || y === undefined || !Number.isFinite(y)) {
      out[i] = null;
      continue;
    }
    if (w === 0) {
      out[i] = y;
      continue;
    }
    last = last * w + (1 - w) * y;
    steps += 1;
    out[i] = last / (1 - Math.pow(w, steps));
  }
  return out;
}
