// Copy the browser builds the dashboard needs from node_modules into
// web/static/vendor/, so the app serves them itself: dashboards live on LANs
// without internet, and the CSP allows scripts from 'self' only (never a CDN).
// Run by `npm run vendor` after `npm ci`; the output is gitignored.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const target = join(root, "web", "static", "vendor");

// [package, file inside the package, name under vendor/]
const FILES = [
  ["chart.js", "dist/chart.umd.min.js", "chart.umd.min.js"],
  ["chart.js", "dist/chart.umd.min.js.map", "chart.umd.min.js.map"],
  ["chart.js", "LICENSE.md", "chart.js.LICENSE.md"],
  // The bundle carries its own copy of date-fns, so one classic script is enough.
  [
    "chartjs-adapter-date-fns",
    "dist/chartjs-adapter-date-fns.bundle.min.js",
    "chartjs-adapter-date-fns.bundle.min.js",
  ],
  ["chartjs-adapter-date-fns", "LICENSE.md", "chartjs-adapter-date-fns.LICENSE.md"],
];

function version(pkg) {
  return JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
}

mkdirSync(target, { recursive: true });
const manifest = {};
for (const [pkg, file, name] of FILES) {
  const from = join(modules, pkg, file);
  if (!existsSync(from)) {
    console.error(`vendor: ${from} is missing; run \`npm ci\` first`);
    process.exit(1);
  }
  copyFileSync(from, join(target, name));
  manifest[name] = `${pkg}@${version(pkg)}`;
}
// Which package version each file came from, for whoever debugs a deployed page.
writeFileSync(join(target, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`vendor: ${Object.keys(manifest).length} files -> ${target}`);
