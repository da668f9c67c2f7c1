// A few DOM helpers: the whole UI is built from these, no framework.

/**
 * h("a", {href: "#/", class: "x", onclick: fn}, "text", child) → element.
 * Attributes starting with "on" become listeners; null/false children and attributes are skipped.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** @param {HTMLElement} el @param {any[]} children */
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. @param {HTMLElement} el @param {...any} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A readable message in place of what failed to load (never a blank page). */
export function errorBox(err, what = "") {
  const message = err && err.message ? err.message : String(err);
  return h("div", {class: "error", role: "alert"},
    h("strong", null, what ? `Could not load ${what}: ` : "Error: "), message,
    err && err.hint ? h("div", {class: "hint"}, err.hint) : null);
}

/** Debounce a function: runs once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
