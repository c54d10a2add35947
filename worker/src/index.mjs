// attestgate as a Cloudflare Worker (ES module): the gate in front of an origin.
//
// Built from the JavaScript build of the core (`make js`: build/js/attestgate_js.js and
// attestgate_js_bg.wasm, wasm-bindgen's web target); `make worker` puts the three files side by
// side in build/worker/. The decision AND the header plan come from Rust (`Gate.plan`, the
// proxy-wasm filter's own plan.rs): this file only reads the request and carries the plan out.
//
// Environment:
//   ATTESTGATE_CONFIG  the gate config, JSON (a var, or a secret when it holds keys)
//   APPROOV_SECRET     optional secret: merged in as keys.approov_secret
//   ORIGIN             where allowed requests go, e.g. https://origin.example.com
//   ATTESTGATE_LIMITER a Durable Object namespace of class AttestgateRateLimiter (exported
//                      here): where the buckets of `rules[].rate_limit` live; a config with a
//                      rate limit and no such binding is refused
//
// A config that fetches its keys or denylist (`keys.remote`, `denylist.remote`) is served by
// remote.mjs: fetch() and the Cache API, the last good copy kept in the isolate. Public-key
// signatures (ES256, RS*, the request's install signature) are checked with WebCrypto
// (crypto.mjs) once it has passed the core's known-answer probe; the rest in wasm.
//
// Fails closed: a config that does not load (or no ORIGIN) answers every request with 500
// {"error":"config_invalid","reasons":[]} and logs why with console.error; it never forwards.
import { DurableObject } from "cloudflare:workers";

import wasm from "./attestgate_js_bg.wasm";
import { Gate, initSync, refusal, takeBucket } from "./attestgate_js.js";
import { decide, useWebCrypto } from "./crypto.mjs";
import { readUpTo } from "./read.mjs";
import { afterDecision, refreshDue, sourcesOf } from "./remote.mjs";

/** The gate of this isolate, built once per config text: {key, gate, origin, sources} or
 * {key, error}; `retired` once a newer config replaced it (its fetches then stop). */
let loaded = null;
let wasmReady = false;

export default {
  async fetch(request, env, ctx) {
    const state = current(env);
    if (state.error !== undefined) {
      console.error(`attestgate: config_invalid: ${state.error}`);
      return reply(hostRefusal("config_invalid"));
    }
    try {
      return await gateRequest(request, state, env, ctx);
    } catch (err) {
      console.error(`attestgate: internal_error: ${err?.stack ?? err}`);
      return reply(hostRefusal("internal_error"));
    }
  },
};

/** The loaded gate for this environment, reloaded only when the config text changes. */
function current(env) {
  const config = text(env.ATTESTGATE_CONFIG);
  const key = JSON.stringify([config, text(env.APPROOV_SECRET), text(env.ORIGIN), env.ATTESTGATE_LIMITER !== undefined]);
  if (loaded?.key !== key) {
    if (loaded !== null) loaded.retired = true;
    loaded?.gate?.free();
    loaded = { key, ...load(config, env) };
  }
  return loaded;
}

function load(configText, env) {
  try {
    ensureWasm();
    if (configText === undefined || configText.trim() === "") {
      throw new Error("ATTESTGATE_CONFIG is not set");
    }
    const origin = originOf(env.ORIGIN);
    let config;
    try {
      config = JSON.parse(configText);
    } catch (err) {
      throw new Error(`ATTESTGATE_CONFIG is not JSON: ${err.message}`);
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      throw new Error("ATTESTGATE_CONFIG must be a JSON object");
    }
    const secret = text(env.APPROOV_SECRET);
    if (secret !== undefined) {
      const keys = config.keys ?? {};
      if (keys === null || typeof keys !== "object" || Array.isArray(keys)) {
        throw new Error("ATTESTGATE_CONFIG: keys must be an object to merge APPROOV_SECRET into");
      }
      if ("approov_secret" in keys) {
        throw new Error("keys.approov_secret is set both in ATTESTGATE_CONFIG and as APPROOV_SECRET");
      }
      config = { ...config, keys: { ...keys, approov_secret: secret } };
    }
    // As host "worker": the core refuses what the Worker cannot carry out (hybrid mode,
    // decision logging), naming the field.
    const gate = new Gate(JSON.stringify(config), "worker");
    try {
      requireLimiter(config, env);
      // The load line every host writes: the policy as a compiled plan, or what kept it
      // interpreted (construct and file:line).
      const policy = gate.policySummary();
      if (policy !== undefined) console.log(`attestgate: ${policy}`);
      return { gate, origin, sources: sourcesOf(gate) };
    } catch (err) {
      gate.free();
      throw err;
    }
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
}

function ensureWasm() {
  if (!wasmReady) {
    initSync({ module: wasm });
    wasmReady = true;
  }
}

/** A rate limit is enforced only where its buckets can live: without the Durable Object
 * binding the config is refused, as the core refuses what a host lacks. */
function requireLimiter(config, env) {
  const index = (config.rules ?? []).findIndex((rule) => rule?.rate_limit != null);
  if (index >= 0 && typeof env.ATTESTGATE_LIMITER?.idFromName !== "function") {
    throw new Error(
      `\`rules[${index}].rate_limit\` needs the ATTESTGATE_LIMITER binding, a Durable Object namespace ` +
        "of class AttestgateRateLimiter (worker/README.md); without it the limit would not be enforced",
    );
  }
}

/** ORIGIN as `scheme://host[:port]`: http or https, nothing after the authority. */
function originOf(value) {
  const raw = text(value);
  if (raw === undefined || raw === "") throw new Error("ORIGIN is not set");
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`ORIGIN is not a URL: ${raw}`);
  }
  if (!["http:", "https:"].includes(url.protocol) || url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    throw new Error(`ORIGIN must be http(s)://host[:port] with no path, query or credentials: ${raw}`);
  }
  return url.origin;
}

/** A binding as text: strings as they are, JSON vars (objects) as JSON. */
function text(value) {
  if (value === undefined || value === null) return undefined;
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Decides and answers a request, then writes its one log line (`logDecision`). */
async function gateRequest(request, state, env, ctx) {
  const decided = await decideAndAnswer(request, state, env, ctx);
  logDecision(decided.record, request, decided.response.status);
  return decided.response;
}

/**
 * One structured log line per decision, what `attestgate report` reads: `{"time": RFC 3339,
 * "attestgate": the core's decision record (DecisionRecord: verdict, allowed, mode, status,
 * reason, policy_reasons, rule, device, platform, app_version, ...), method, path, status}`
 * (path without the query; status the reply's). The record's device, platform and app
 * version are only ever the verified token's.
 */
function logDecision(record, request, status) {
  if (record === undefined) return;
  const path = new URL(request.url).pathname;
  console.log(JSON.stringify({ time: new Date().toISOString(), attestgate: record, method: request.method, path, status }));
}

async function decideAndAnswer(request, state, env, ctx) {
  const { gate, origin } = state;
  const path = rawPath(request.url);
  const facts = {
    method: request.method,
    path,
    host: new URL(request.url).host,
    // Workers' Headers: lower-case names, sorted, repeated headers joined with ", ".
    headers: [...request.headers],
  };
  const client = request.headers.get("cf-connecting-ip");
  if (client) facts.source_ip = client;

  const limit = gate.bodyLimit(facts);
  const body = limit === undefined ? undefined : await readUpTo(request.body, limit + 1);
  await refreshDue(state, ctx);
  // Once per gate, before its first decision: WebCrypto's known answers (one log line).
  state.webCrypto ??= useWebCrypto(gate).then((line) => console.log(`attestgate: ${line}`));
  await state.webCrypto;
  const now = Math.floor(Date.now() / 1000);
  let { decision, action, record, rate_limit: rateLimit } = await decide(gate, facts, body, now, undefined);
  if (rateLimit !== undefined) {
    // The plan counted a request taken from this bucket: take it where the buckets live, and
    // if that refuses, plan again with the bucket limited (the same decision at the same
    // `now`, but rate-limited). A limiter that fails throws: 500, nothing forwarded.
    const retryAfter = await takeFromLimiter(env.ATTESTGATE_LIMITER, rateLimit, now);
    if (retryAfter !== undefined) {
      ({ decision, action, record } = await decide(gate, facts, body, now, { bucket: rateLimit.bucket, retry_after: retryAfter }));
    }
  }
  afterDecision(state, decision);
  if (!action.forward) return { record, response: reply(action) };

  // fetch() parses the URL (WHATWG): it resolves `..`, reads `\` as `/` and percent-encodes
  // some bytes. The origin gets the path the gate decided on: its RFC 3986 reading
  // (`action.path`, dot segments resolved), which every reading the gate checked falls under
  // with it. Should the parser still change that, the request is refused rather than sent
  // somewhere the gate did not decide on.
  const target = new URL(origin + action.path);
  if (target.pathname + target.search !== action.path) {
    console.error(`attestgate: path_ambiguous: fetch() would forward ${JSON.stringify(action.path)} as ${JSON.stringify(target.pathname + target.search)}`);
    return { record, response: reply(hostRefusal("path_ambiguous")) };
  }
  const headers = new Headers(request.headers);
  for (const name of action.remove) headers.delete(name);
  for (const [name, value] of action.set) headers.set(name, value);
  const hasBody = !["GET", "HEAD"].includes(request.method);
  const response = await fetch(target, {
    method: request.method,
    headers,
    body: hasBody ? (body ?? request.body) : null,
    redirect: "manual",
  });
  return { record, response };
}

/** Takes one request from `limit.bucket` in its Durable Object: `undefined` when taken, else
 * the seconds to wait. Throws when there is no limiter or it does not answer as it should. */
async function takeFromLimiter(namespace, { bucket, requests, per_seconds }, now) {
  if (namespace === undefined) throw new Error("a rate limit was reached without ATTESTGATE_LIMITER");
  const stub = namespace.get(namespace.idFromName(bucket));
  const { retryAfter } = await stub.take(requests, per_seconds, now);
  if (retryAfter !== undefined && !(Number.isInteger(retryAfter) && retryAfter > 0)) {
    throw new Error(`the rate limiter answered retryAfter ${JSON.stringify(retryAfter)}`);
  }
  return retryAfter;
}

/**
 * The Durable Object that keeps rate-limit buckets, one object per bucket
 * (`idFromName(bucket)`): every isolate of the Worker asks the same one, and it handles one
 * take at a time. The state is the core's 16-byte bucket, in the object's storage; the
 * arithmetic is the core's (`takeBucket`). A bucket is deleted when it has been full again
 * for a while (an alarm `per_seconds` after the last take), which is the same as no bucket.
 */
export class AttestgateRateLimiter extends DurableObject {
  /** `{retryAfter}`: `undefined` when one request was taken at `now`, else seconds to wait. */
  async take(requests, perSeconds, now) {
    ensureWasm();
    const taken = takeBucket(await this.ctx.storage.get("bucket"), requests, perSeconds, now);
    await this.ctx.storage.put("bucket", taken.state);
    await this.ctx.storage.setAlarm(Date.now() + (perSeconds + 1) * 1000);
    return { retryAfter: taken.retryAfter };
  }

  async alarm() {
    await this.ctx.storage.deleteAll();
  }
}

/** The path and query exactly as the request carried them (what the gate decides on). */
function rawPath(url) {
  const authority = url.indexOf("//");
  const slash = url.indexOf("/", authority < 0 ? 0 : authority + 2);
  return slash < 0 ? "/" : url.slice(slash);
}

/** The Rust refusal when the core is loaded, the same reply written out when it is not
 * (`config_invalid` and `internal_error` are 500s). */
function hostRefusal(reason) {
  if (wasmReady) {
    try {
      return refusal(reason);
    } catch {
      // fall through to the literal reply
    }
  }
  return {
    forward: false,
    status: 500,
    headers: [
      ["content-type", "application/json"],
      ["x-attestgate-reason", reason],
    ],
    body: JSON.stringify({ error: reason, reasons: [] }),
  };
}

function reply({ status, headers, body }) {
  return new Response(body, { status, headers });
}
