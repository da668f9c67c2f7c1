// A tree of "/"-separated paths: the folder tree of a project and the files tab.

/**
 * @template T
 * @typedef {object} TreeNode
 * @property {string} name the last segment ("" for the root)
 * @property {string} path the full folder path ("" for the root)
 * @property {TreeNode<T>[]} children sub-folders, sorted by name
 * @property {T[]} items the items in this folder, sorted by path
 */

const collator = new Intl.Collator("en", {numeric: true});

/** @param {string} path */
const segments = (path) => String(path ?? "").split("/").filter((s) => s !== "" && s !== ".");

/**
 * Items with a `path` into a tree of folders.
 * By default `path` names a file ("a/b/c.png" is an item of folder "a/b"); with
 * `{folders: true}` it names a folder ("a/b" is an item of folder "a/b", "" of the root).
 * Leading, trailing and doubled slashes are ignored.
 * @template {{path: string}} T
 * @param {T[]} items
 * @param {{folders?: boolean}} [options]
 * @returns {TreeNode<T>}
 */
export function buildTree(items, options = {}) {
  /** @type {TreeNode<T>} */
  const root = {name: "", path: "", children: [], items: []};
  /** @type {Map<string, TreeNode<T>>} */
  const nodes = new Map([["", root]]);
  /** @param {string[]} segs */
  const folder = (segs) => {
    let node = root;
    for (let i = 0; i < segs.length; i++) {
      const path = segs.slice(0, i + 1).join("/");
      let child = nodes.get(path);
      if (!child) {
        child = {name: segs[i], path, children: [], items: []};
        nodes.set(path, child);
        node.children.push(child);
      }
      node = child;
    }
    return node;
  };
  for (const item of items) {
    const segs = segments(item.path);
    folder(options.folders ? segs : segs.slice(0, -1)).items.push(item);
  }
  for (const node of nodes.values()) {
    node.children.sort((a, b) => collator.compare(a.name, b.name));
    node.items.sort((a, b) => collator.compare(a.path, b.path));
  }
  return root;
}

/**
 * How many items a node holds, its sub-folders included.
 * @template T
 * @param {TreeNode<T>} node
 * @returns {number}
 */
export function countItems(node) {
  return node.items.length + node.children.reduce((n, c) => n + countItems(c), 0);
}
