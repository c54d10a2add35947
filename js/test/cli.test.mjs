// The JavaScript build's check() returns the same decision JSON as `attestgate check`, byte for
// byte, on the Envoy examples (configs rendered to JSON by `attestgate render`, as the filter
// takes them). Needs the CLI: $ATTESTGATE_CLI, default target/release/attestgate (`make cli`).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ag, read, repo } from "./attestgate.mjs";

const cli = process.env.ATTESTGATE_CLI ?? join(repo, "target", "release", "attestgate");
const NOW = 1_700_000_000;

test("the CLI is built", () => assert.ok(existsSync(cli), `${cli} is missing: run \`make cli\``));

const run = (args) => spawnSync(cli, args, { cwd: repo, encoding: "utf8" });

/** [example, claims file, exp in seconds, request]: one CLI run and one JS run each. */
const cases = [
  ["quickstart", "good.json", 300, { method: "GET", path: "/v1/shapes", headers: [] }],
  ["quickstart", "rooted.json", 300, { method: "GET", path: "/v1/shapes", headers: [] }],
  ["quickstart", "good.json", -600, { method: "GET", path: "/v1/shapes", headers: [] }],
  ["quickstart", null, 0, { method: "GET", path: "/", headers: [["user-agent", "okhttp"]] }],
  ["per-route", "good.json", 300, { method: "POST", path: "/login", headers: [] }],
  ["per-route", "medium-risk.json", 300, { method: "POST", path: "/login", headers: [] }],
  ["per-route", "rooted.json", 300, { method: "GET", path: "/beta/x", headers: [] }],
  ["per-route", null, 0, { method: "GET", path: "/health", headers: [] }],
  ["token-binding", "good.json", 300, { method: "GET", path: "/", headers: [["authorization", "Bearer abc"]] }],
];

for (const [example, claims, expIn, request] of cases) {
  const name = `${example}: ${claims ?? "no token"} (exp in ${expIn}) ${request.method} ${request.path}`;
  test(name, () => {
    const dir = `envoy-examples/${example}`;
    const config = execFileSync(cli, ["render", "--config", `${dir}/attestgate.yaml`], { cwd: repo, encoding: "utf8" });
    let token = null;
    if (claims) {
      const secret = JSON.parse(config).keys.approov_secret;
      token = ag.mint(secret, JSON.parse(read(`${dir}/claims/${claims}`)), { expIn, now: NOW });
    }
    const args = ["check", "--config", `${dir}/attestgate.yaml`, "--now", String(NOW), "--method", request.method, "--path", request.path];
    for (const [n, v] of request.headers) args.push("-H", `${n}: ${v}`);
    if (token) args.push("--token", token);
    const native = run(args);
    assert.ok(native.status === 0 || native.status === 1, native.stderr);
    const js = ag.check(config, token, { ...request, host: "localhost" }, NOW);
    assert.equal(JSON.stringify(js), native.stdout.trim());
    assert.equal(native.status, js.allow ? 0 : 1);
  });
}
