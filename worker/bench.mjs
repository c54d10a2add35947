// The Worker's signed requests in real workerd (issue #28), for docs/performance.md: not a
// test, nothing asserted but that every answer is the expected one. `make bench-worker` (after
// `make worker cli`); part of `make bench`.
//
// One workerd, one Worker (HS256 secret; `/signed` requires the install signature as Approov's
// SDK sends it), driven from Node over loopback with 8 requests in flight:
//   repeated   one token, repeated, no signature
//   signed     the same token, a fresh install signature on every request (signed beforehand
//              by the CLI's signer), checked with WebCrypto
//   es256      a fresh ES256 token every request (another Worker, the ES256 key), WebCrypto
// Prints requests/s and the mean time a request per case; the difference between `signed` and
// `repeated` is what the install signature costs the Worker.
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";

import { ag } from "./test/core.mjs";
import { repo, send, startOrigin, startWorkerd } from "./test/workerd.mjs";

const cli = process.env.ATTESTGATE_CLI ?? `${repo}/target/release/attestgate`;
const count = Number(process.env.BENCH_REQUESTS ?? 600);
const SECRET = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const keyFile = (name) => `${repo}/policy-engine/tests/data/keys/${name}.json`;
const key = (name) => JSON.parse(readFileSync(keyFile(name), "utf8"));
const now = Math.floor(Date.now() / 1000);
const ipk = createPublicKey({ key: key("es256"), format: "jwk" }).export({ type: "spki", format: "der" }).toString("base64");

const origin = await startOrigin();
const env = (config) => ({ ATTESTGATE_CONFIG: JSON.stringify(config), ORIGIN: origin.origin });
const workerd = await startWorkerd([
  { name: "hs", bindings: env({ keys: { approov_secret: SECRET }, rules: [{ name: "signed", path_prefix: "/signed", signature: { mode: "required" } }] }) },
  { name: "es", bindings: env({ keys: { keys: [key("es256.pub").keys[0]] } }) },
]);
try {
  const host = new URL(workerd.urls.hs).host;
  const token = ag.mint(SECRET, { did: "bench-device", ipk }, { expIn: 600, now });
  console.log(`bench-worker: signing ${count} requests with the CLI, minting ${count} ES256 tokens`);
  const signed = Array.from({ length: count }, () => {
    const lines = execFileSync(cli, ["sign", "--install-key", keyFile("es256"), "--approov", "--method", "GET",
      "--path", "/signed/shapes", "--host", host, "-H", `approov-token: ${token}`, "--now", String(now)], { encoding: "utf8" });
    return lines.trim().split("\n").map((line) => [line.slice(0, line.indexOf(": ")), line.slice(line.indexOf(": ") + 2)]);
  });
  const es = Array.from({ length: count }, (_, i) =>
    ag.mint(key("es256"), { did: `bench-${i}`, jti: String(i) }, { expIn: 600, now }));

  const cases = {
    repeated: { url: workerd.urls.hs, request: () => ({ path: "/signed-not/shapes", headers: [["approov-token", token]] }) },
    signed: { url: workerd.urls.hs, request: (i) => ({ path: "/signed/shapes", headers: [["approov-token", token], ...signed[i]] }) },
    es256: { url: workerd.urls.es, request: (i) => ({ path: "/shapes", headers: [["approov-token", es[i]]] }) },
  };
  for (const [name, { url, request }] of Object.entries(cases)) {
    await send(url, request(0)); // the probe and the first decision, before the clock
    let next = 1;
    const start = performance.now();
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < count) {
        const res = await send(url, request(next++));
        if (res.status !== 200) throw new Error(`${name}: ${res.status} ${res.headers["x-attestgate-reason"]}`);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const rps = (count - 1) / seconds;
    console.log(`bench-worker: ${name.padEnd(9)} ${rps.toFixed(0).padStart(6)} req/s  ${(1e6 / rps).toFixed(0).padStart(6)} µs a request`);
  }
} finally {
  await workerd.stop();
  await origin.close();
}
