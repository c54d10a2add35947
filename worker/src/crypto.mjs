// The Worker's signature checks with WebCrypto (workerd's BoringSSL) instead of the wasm
// build's pure-Rust ones: ES256 (and RFC 9421 ecdsa-p256-sha256) and RS256/384/512.
//
// The gate decides synchronously and WebCrypto answers asynchronously, so the core asks and
// the Worker answers between plans: `Gate.plan` names the checks it lacks (`signatures`) and
// counts them invalid for now, which ends that decision before anything they protect is read;
// the Worker checks them here and plans again with the verdicts (`decide`, at most three
// rounds: the token's signature, the request's, the last). Before the first request, the core's
// known-answer probe: each scheme moves to WebCrypto only if it accepts a fixed valid signature
// and refuses it over another message (`useWebCrypto`); the rest stays built in.
import { knownAnswerChecks } from "./attestgate_js.js";

const SCHEMES = {
  ES256: { key: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } },
  RS256: { key: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  RS384: { key: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  RS512: { key: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
};
/** Imported keys by scheme and SPKI, so a key is imported once: tokens' keys are few, install
 * keys one per device. Bounded: the oldest goes first. */
const MAX_KEYS = 1024;
const imported = new Map();
/** Plans of one request: the token's signature, the request's, the decision. */
const MAX_ROUNDS = 3;

function bytes(base64) {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

async function keyFor(scheme, spki) {
  const name = `${scheme} ${spki}`;
  let key = imported.get(name);
  if (key === undefined) {
    key = await crypto.subtle.importKey("spki", bytes(spki), SCHEMES[scheme].key, false, ["verify"]);
    if (imported.size >= MAX_KEYS) imported.delete(imported.keys().next().value);
    imported.set(name, key);
  }
  return key;
}

/** Each check with `valid`: WebCrypto's verdict, or `null` when it could not check (an
 * unknown scheme, a key it would not import): the core's built-in verifier then decides. */
export async function verifyAll(checks) {
  return Promise.all(
    checks.map(async (check) => {
      let valid = null;
      try {
        const scheme = SCHEMES[check.scheme];
        if (scheme !== undefined) {
          const key = await keyFor(check.scheme, check.public_key);
          valid = await crypto.subtle.verify(scheme.verify, key, bytes(check.signature), bytes(check.message));
        }
      } catch {
        valid = null;
      }
      return { ...check, valid };
    }),
  );
}

/** Offers WebCrypto to `gate` after checking the core's known answers with it; the log line. */
export async function useWebCrypto(gate) {
  return gate.useHostVerifier(await verifyAll(knownAnswerChecks()));
}

/** `gate.plan` with WebCrypto answering the signature checks it asks for. */
export async function decide(gate, facts, body, now, limited) {
  let verdicts = [];
  let planned = gate.plan(facts, body, now, limited, verdicts);
  for (let round = 1; round < MAX_ROUNDS && planned.signatures !== undefined; round++) {
    verdicts = verdicts.concat(await verifyAll(planned.signatures));
    planned = gate.plan(facts, body, now, limited, verdicts);
  }
  return planned;
}
