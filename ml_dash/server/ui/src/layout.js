// Chart sizing: two charts a row on wide screens, one on narrow ones.

/** @param {HTMLElement} grid */
export function chartWidth(grid) {
  const width = grid.clientWidth || document.documentElement.clientWidth - 48;
  const columns = width >= 900 ? 2 : 1;
  // 16 px between columns; each figure has 8 px padding and a 1 px border on both sides.
  return Math.max(280, Math.floor((width - (columns - 1) * 16) / columns) - 18);
}
