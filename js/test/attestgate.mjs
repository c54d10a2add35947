// Loads the JavaScript build (build/js, wasm-bindgen's web target) in Node: the same files the
// playground loads in the browser, instantiated synchronously from the .wasm bytes.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const buildDir = resolve(process.env.ATTESTGATE_JS_DIR ?? join(repo, "build", "js"));

const glue = await import(pathToFileURL(join(buildDir, "attestgate_js.js")).href);
glue.initSync({ module: readFileSync(join(buildDir, "attestgate_js_bg.wasm")) });

export const ag = glue;
export const read = (path) => readFileSync(join(repo, path), "utf8");
