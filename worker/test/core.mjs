// The JavaScript build (build/js) in Node, to mint tokens and to know what the core decides.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { jsDir } from "./workerd.mjs";

const glue = await import(pathToFileURL(join(jsDir, "attestgate_js.js")).href);
glue.initSync({ module: readFileSync(join(jsDir, "attestgate_js_bg.wasm")) });

export const ag = glue;
