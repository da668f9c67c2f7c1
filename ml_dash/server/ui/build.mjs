// Builds the dashboard into dist/ (served by `ml-dash serve`, shipped in the wheel):
//   src/main.js    -> dist/assets/app.js   (one ES module: our code + uPlot)
//   CSS            -> dist/assets/app.css  (CSS imported from JS, e.g. uPlot's, then src/style.css)
//   src/index.html -> dist/index.html      (asset URLs get a content hash so upgrades bypass caches)
// Fails when the assets together are over the gzip budget: users load them on every visit.
import {createHash} from "node:crypto";
import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import {gzipSync} from "node:zlib";

import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const dist = join(here, "dist");
const assets = join(dist, "assets");
const BUDGET_BYTES = 200 * 1000; // the issue's "≤ 200 KB gzip", read strictly

const common = {
  bundle: true,
  minify: true,
  target: "es2020",
  write: false,
  logLevel: "warning",
  legalComments: "eof",
};

/** Bundles the JS; CSS that the JS imports comes back as a second output file. */
async function buildJs() {
  const result = await esbuild.build({
    ...common,
    entryPoints: [join(src, "main.js")],
    outfile: join(assets, "app.js"),
    format: "esm",
    platform: "browser",
  });
  const js = result.outputFiles.find((f) => f.path.endsWith(".js"));
  const css = result.outputFiles.filter((f) => f.path.endsWith(".css")).map((f) => f.text).join("\n");
  if (!js) throw new Error("esbuild produced no JavaScript for src/main.js");
  return {js: js.text, css};
}

/** Bundles src/style.css (its @imports resolved); absent style.css is an empty sheet. */
async function buildCss() {
  const file = join(src, "style.css");
  if (!existsSync(file)) return "";
  const result = await esbuild.build({
    ...common,
    entryPoints: [file],
    outfile: join(assets, "app.css"),
    loader: {".css": "css"},
  });
  return result.outputFiles.map((f) => f.text).join("\n");
}

const shortHash = (text) => createHash("sha256").update(text).digest("hex").slice(0, 12);

async function main() {
  const {js, css: importedCss} = await buildJs();
  // Imported CSS (library defaults) first, so our own sheet overrides it.
  const css = [importedCss, await buildCss()].filter(Boolean).join("\n");
  let html = readFileSync(join(src, "index.html"), "utf8");
  html = html
    .replaceAll('"/assets/app.js"', `"/assets/app.js?v=${shortHash(js)}"`)
    .replaceAll('"/assets/app.css"', `"/assets/app.css?v=${shortHash(css)}"`);

  rmSync(dist, {recursive: true, force: true}); // no stale assets from an older build
  mkdirSync(assets, {recursive: true});
  const files = {"assets/app.js": js, "assets/app.css": css, "index.html": html};
  let total = 0;
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dist, name), text);
    const raw = Buffer.byteLength(text);
    const gz = gzipSync(text, {level: 9}).length;
    total += gz;
    console.log(`${`dist/${name}`.padEnd(22)} ${kb(raw).padStart(9)}  gzip ${kb(gz).padStart(9)}`);
  }
  console.log(`${"total".padEnd(22)} ${"".padStart(9)}  gzip ${kb(total).padStart(9)}` +
    `  (budget ${kb(BUDGET_BYTES)})`);
  if (total > BUDGET_BYTES) {
    rmSync(dist, {recursive: true, force: true}); // nothing over budget ships, and setup.sh retries
    console.error(`build.mjs: the dashboard is ${kb(total)} gzip, over the ${kb(BUDGET_BYTES)} budget ` +
      "(issue 12). Drop a dependency or split what is not needed at first paint.");
    process.exit(1);
  }
}

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;

main().catch((err) => {
  // esbuild has already printed its diagnostics; say which step failed and exit non-zero.
  console.error(`build.mjs: build failed: ${err.message}`);
  process.exit(1);
});
