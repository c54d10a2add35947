// Issue #28: the Worker checks public-key signatures with WebCrypto (worker/src/crypto.mjs)
// once WebCrypto has passed the core's known answers: ES256 and RS256 tokens, and the request
// signature Approov's SDK sends (RFC 9421 ecdsa-p256-sha256 with the token's install key,
// signed here by the CLI's signer, `attestgate sign`). The decisions are the built-in
// verifier's: good ones pass, another key's and a changed request's are refused, nothing of a
// refused request reaches the origin. The corpus (corpus.test.mjs) runs every other token case
// through the same path.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { ag } from "./core.mjs";
import { repo, send, startOrigin, startWorkerd } from "./workerd.mjs";

const cli = process.env.ATTESTGATE_CLI ?? `${repo}/target/debug/attestgate`;
const keyFile = (name) => `${repo}/policy-engine/tests/data/keys/${name}.json`;
const key = (name) => JSON.parse(readFileSync(keyFile(name), "utf8"));
const now = () => Math.floor(Date.now() / 1000);
/** The install key's `ipk`: base64 DER SubjectPublicKeyInfo of the test key es256. */
const ipk = createPublicKey({ key: key("es256"), format: "jwk" }).export({ type: "spki", format: "der" }).toString("base64");
const token = (name, did = "device-1") => ag.mint(key(name), { did, ipk }, { expIn: 300, now: now() });

let origin;
let workerd;
let url;

before(async () => {
  origin = await startOrigin();
  const config = {
    keys: { keys: [key("es256.pub").keys[0], key("rs256.pub").keys[0]] },
    rules: [{ name: "signed", path_prefix: "/signed", signature: { mode: "required" } }],
  };
  workerd = await startWorkerd([{ name: "crypto", bindings: { ATTESTGATE_CONFIG: JSON.stringify(config), ORIGIN: origin.origin } }]);
  url = workerd.urls.crypto;
});
after(async () => {
  await workerd?.stop();
  await origin?.close();
});

/** Status, reason and whether the origin got the request. */
async function decide(request) {
  const before = origin.received.length;
  const res = await send(url, request);
  return [res.status, res.headers["x-attestgate-reason"] ?? "allowed", origin.received.length - before];
}

/** A GET of `path` signed as Approov's SDK signs (the CLI's signer), sent to `sentPath`. */
function signed(path, sentPath = path) {
  const host = new URL(url).host;
  const tokenValue = token("es256");
  const lines = execFileSync(cli, ["sign", "--install-key", keyFile("es256"), "--approov", "--method", "GET",
    "--path", path, "--host", host, "-H", `approov-token: ${tokenValue}`, "--now", String(now())], { encoding: "utf8" });
  const headers = lines.trim().split("\n").map((line) => {
    const at = line.indexOf(": ");
    return [line.slice(0, at), line.slice(at + 2)];
  });
  return { path: sentPath, headers: [["approov-token", tokenValue], ...headers] };
}

test("ES256 and RS256 tokens are checked with WebCrypto, as the built-in verifier would", async () => {
  assert.deepEqual(await decide({ headers: [["approov-token", token("es256")]] }), [200, "allowed", 1]);
  // The probe ran before the first decision, and its line names what moved to WebCrypto.
  assert.match(workerd.logs(), /attestgate: signatures: ES256, RS256, RS384, RS512 by the host's verifier/);
  assert.deepEqual(await decide({ headers: [["approov-token", token("rs256")]] }), [200, "allowed", 1]);
  // Another key under the same kid.
  assert.deepEqual(await decide({ headers: [["approov-token", token("es256_other")]] }), [401, "signature_invalid", 0]);
  // One token's header and claims under another token's signature.
  const [head, claims] = token("es256").split(".");
  const otherSignature = token("es256", "device-2").split(".")[2];
  assert.deepEqual(await decide({ headers: [["approov-token", `${head}.${claims}.${otherSignature}`]] }), [401, "signature_invalid", 0]);
});

test("Approov-signed requests are checked with WebCrypto: a changed path is refused", async () => {
  assert.deepEqual(await decide(signed("/signed/x")), [200, "allowed", 1]);
  assert.deepEqual(await decide(signed("/signed/x", "/signed/y")), [401, "request_signature_invalid", 0]);
  const unsigned = { path: "/signed/x", headers: [["approov-token", token("es256")]] };
  assert.deepEqual(await decide(unsigned), [401, "request_signature_missing", 0]);
});
