// Records what the committed build was made from: tests/ui/test_ui_build.py recomputes it from
// ui/ and fails when the sources changed without `make ui` (the build ships in the package).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const sources = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "src"];

function files(path) {
  return statSync(path).isDirectory()
    ? readdirSync(path).sort().flatMap((name) => files(join(path, name)))
    : [path];
}

const hash = createHash("sha256");
for (const file of sources.flatMap((source) => files(join(root, source)))) {
  hash.update(relative(root, file).split("\\").join("/") + "\0");
  hash.update(readFileSync(file));
  hash.update("\0");
}
const out = join(root, "..", "ledgerflow", "api", "ui", "build-info.json");
writeFileSync(out, JSON.stringify({ sources: hash.digest("hex") }, null, 2) + "\n");
