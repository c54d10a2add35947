// The JavaScript API of build/js: every exported function, on the real policies/ and test keys.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import { ag, read, repo } from "./attestgate.mjs";

const NOW = 1_700_000_000;
const SECRET = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const key = (name) => JSON.parse(read(`policy-engine/tests/data/keys/${name}.json`));
const hsConfig = { keys: { approov_secret: SECRET } };
const hsToken = (claims, expIn = 300) => ag.mint(SECRET, claims, { expIn, now: NOW });

/** Every .rego file under a directory of the repo, as [[path, source], ...]. */
function regoFiles(dir) {
  return readdirSync(join(repo, dir), { recursive: true })
    .filter((f) => f.endsWith(".rego"))
    .sort()
    .map((f) => [`${dir}/${f}`, read(`${dir}/${f}`)]);
}

describe("checkConfig", () => {
  test("a good config reports its keys", () => {
    const pub = key("es256.pub");
    const out = ag.checkConfig({ keys: { keys: pub.keys, approov_secret: SECRET } });
    assert.equal(out.ok, true);
    assert.deepEqual(out.keys, [
      { alg: "ES256", kid: "es" },
      { alg: "HS256", kid: null },
    ]);
  });
  test("a refused config gives the core's message, as text or as an object", () => {
    const weak = ag.checkConfig('{"keys":{"approov_secret":"c2hvcnQ="}}');
    assert.deepEqual(weak, {
      ok: false,
      error: "invalid key approov_secret: weak key: HS256 secret is 5 bytes, at least 32 required",
    });
    const typo = ag.checkConfig({ ...hsConfig, leway_seconds: 5 });
    assert.equal(typo.ok, false);
    assert.match(typo.error, /unknown field `leway_seconds`/);
    const rego = ag.checkConfig({ ...hsConfig, policy: { modules: { "p.rego": "package p\nx := {" } } });
    assert.match(rego.error, /^invalid policy: /);
  });
  test("what the JS build (host js) or the Worker (host worker) cannot carry out is refused", () => {
    const limited = { ...hsConfig, rules: [{ path: "/login", rate_limit: { requests: 1, per_seconds: 600 } }] };
    const js = ag.checkConfig(limited);
    assert.equal(js.ok, false);
    assert.match(js.error, /^unsupported `rules\[0\]\.rate_limit` .* which the JavaScript build does not have/);
    assert.throws(() => new ag.Gate(limited), /unsupported `rules\[0\]\.rate_limit`/);
    // The Worker keeps the buckets in a Durable Object (worker/README.md).
    assert.equal(ag.checkConfig(limited, "worker").ok, true);
    // The Worker fetches documents (worker/src/remote.mjs); the JavaScript build does not.
    const remote = { ...hsConfig, denylist: { remote: { upstream: "u", authority: "a.example", path: "/x" } } };
    assert.match(ag.checkConfig(remote).error, /^unsupported `denylist\.remote` .* which the JavaScript build does not have/);
    assert.throws(() => new ag.Gate(remote), /unsupported `denylist\.remote`/);
    assert.equal(ag.checkConfig(remote, "worker").ok, true);
    const logged = { ...hsConfig, log_decisions: true };
    assert.match(ag.checkConfig(logged, "worker").error, /which the Cloudflare Worker does not have/);
    assert.throws(() => new ag.Gate(logged, "worker"), /unsupported `log_decisions`/);
    // This build is only these two hosts: loading as another would accept what it ignores.
    assert.throws(() => ag.checkConfig(limited, "envoy"), /runs as host `js` or `worker`/);
    assert.equal(ag.checkConfig(hsConfig, "worker").ok, true);
  });
});

describe("rate limits (host worker): plan names the bucket, takeBucket counts it", () => {
  const config = { ...hsConfig, rules: [{ path: "/login", rate_limit: { requests: 2, per_seconds: 600 } }] };
  const request = { path: "/login", headers: [["approov-token", hsToken({ did: "d1" })]] };
  test("plan names the bucket it reached; with that bucket limited it is the 429", () => {
    const gate = new ag.Gate(config, "worker");
    const planned = gate.plan(request, undefined, NOW);
    assert.equal(planned.action.forward, true);
    assert.deepEqual(planned.rate_limit, { bucket: "rule0:device:d1", requests: 2, per_seconds: 600 });
    assert.equal(gate.plan({ path: "/login" }, undefined, NOW).rate_limit, undefined, "token_missing never reaches it");
    const refused = gate.plan(request, undefined, NOW, { bucket: "rule0:device:d1", retry_after: 300 });
    assert.deepEqual([refused.action.forward, refused.action.status, refused.decision.reason], [false, 429, "rate_limited"]);
    assert.deepEqual(refused.action.headers.filter(([n]) => n === "retry-after"), [["retry-after", "300"]]);
    assert.equal(gate.plan(request, undefined, NOW, { bucket: "rule0:device:other", retry_after: 300 }).action.forward, true);
    assert.throws(() => gate.plan(request, undefined, NOW, { bucket: "b" }), /invalid limited/);
    gate.free();
  });
  test("takeBucket: the core's token bucket over a 16-byte state", () => {
    const first = ag.takeBucket(undefined, 2, 600, NOW);
    assert.ok(first.state instanceof Uint8Array && first.state.length === 16);
    assert.equal(first.retryAfter, undefined);
    const second = ag.takeBucket(first.state, 2, 600, NOW);
    assert.equal(second.retryAfter, undefined);
    const third = ag.takeBucket(second.state, 2, 600, NOW);
    assert.equal(third.retryAfter, 300);
    assert.equal(ag.takeBucket(third.state, 2, 600, NOW + 300).retryAfter, undefined);
    assert.equal(ag.takeBucket(null, 1, 60, NOW).retryAfter, undefined);
    assert.throws(() => ag.takeBucket(new Uint8Array(15), 2, 600, NOW), /16 bytes/);
    assert.throws(() => ag.takeBucket(undefined, 0, 600, NOW), /requests must be a whole number/);
    assert.throws(() => ag.takeBucket(undefined, 2, 1.5, NOW), /per_seconds must be a whole number/);
  });
});

describe("check", () => {
  test("allows a good token and returns the CLI's decision object", () => {
    const decision = ag.check(hsConfig, hsToken({ did: "d1" }), { path: "/v1/x" }, NOW);
    assert.deepEqual(Object.keys(decision), ["allow", "status", "reason", "reasons", "mode", "verdict", "claims"]);
    assert.deepEqual(decision.claims, { did: "d1", exp: NOW + 300, iat: NOW });
    assert.equal(decision.allow, true);
  });
  test("denies with the stable reason codes", () => {
    const cases = [
      [null, "token_missing"],
      ["not-a-token", "token_malformed"],
      [hsToken({}, -600), "token_expired"],
      [ag.mint("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=", { exp: NOW + 60 }), "signature_invalid"],
    ];
    for (const [token, reason] of cases) {
      const d = ag.check(hsConfig, token, {}, NOW);
      assert.deepEqual([d.allow, d.status, d.reason], [false, 401, reason], reason);
    }
  });
  test("ES256 with a JWKS: the right key verifies, another key's signature does not", () => {
    const config = { keys: key("es256.pub") };
    const good = ag.mint(key("es256"), { sub: "s" }, { expIn: 60, now: NOW });
    assert.equal(ag.check(config, good, null, NOW).reason, "allowed");
    const other = ag.mint(key("es256_other"), { sub: "s" }, { expIn: 60, now: NOW, kid: "es" });
    assert.equal(ag.check(config, other, null, NOW).reason, "signature_invalid");
  });
  test("a Gate decides many requests; headers, prefix and method reach the policy", () => {
    const gate = new ag.Gate({
      ...hsConfig,
      token: { header: "authorization", prefix: "Bearer " },
      policy: {
        modules: { "p.rego": 'package attestgate\ndecision := {"allow": input.request.method == "GET", "reasons": [input.request.headers["x-app"]]}' },
      },
    });
    try {
      const t = hsToken({});
      const get = gate.check(t, { headers: [["X-App", "shapes"]] }, NOW);
      assert.deepEqual([get.allow, get.reasons], [true, ["shapes"]]);
      const post = gate.check(t, { method: "POST", headers: { "x-app": "shapes" } }, NOW);
      assert.deepEqual([post.allow, post.status, post.reason], [false, 403, "policy_denied"]);
      const noPrefix = gate.check(null, { headers: [["authorization", t]] }, NOW);
      assert.equal(noPrefix.reason, "token_malformed");
    } finally {
      gate.free();
    }
  });
  test("bad arguments throw Errors with the reason", () => {
    assert.throws(() => ag.check({ keys: {} }, null, null, NOW), { message: /no verification keys configured/ });
    assert.throws(() => ag.check(hsConfig, null, { metod: "GET" }, NOW), { message: /unknown field `metod`/ });
    assert.throws(() => ag.check(hsConfig, null, null, 1.5), { message: /whole unix seconds/ });
    assert.throws(() => ag.check("{", null, null, NOW), Error);
  });
  test("without `now` the JavaScript clock is used", () => {
    const t = ag.mint(SECRET, {}, { expIn: 120 }); // minted at the current time too
    assert.equal(ag.check(hsConfig, t, null).allow, true);
    assert.equal(ag.check(hsConfig, t, null, Math.floor(Date.now() / 1000) + 3600).reason, "token_expired");
  });
});

describe("explain", () => {
  test("shows the decoded token, the steps and the Rego input", () => {
    const config = {
      ...hsConfig,
      policy: { modules: { "device_trust.rego": read("policies/device_trust.rego") } },
    };
    const claims = JSON.parse(read("envoy-examples/quickstart/claims/rooted.json"));
    const out = ag.explain(config, hsToken(claims), { method: "POST", path: "/v1/pay" }, NOW);
    assert.deepEqual(out.decision, ag.check(config, hsToken(claims), { method: "POST", path: "/v1/pay" }, NOW));
    assert.equal(out.decision.reason, "policy_denied");
    assert.deepEqual(out.decision.reasons, ["device_rooted", "hooking_detected", "integrity_not_met"]);
    assert.deepEqual(out.steps.map((s) => s.id), [
      "route", "extract", "structure", "key", "signature", "claims", "time", "issuer_audience",
      "host_record", "denylist", "binding", "request_signature", "rate_limit", "policy", "mode",
    ]);
    assert.deepEqual(out.steps.map((s) => s.status), [...Array(13).fill("passed"), "failed", "skipped"]);
    assert.equal(out.token.header.alg, "HS256");
    assert.equal(out.token.claims.did, "demo-device-0666");
    assert.equal(out.policy_entrypoint, "data.attestgate.decision");
    assert.equal(out.policy_input.request.method, "POST");
    assert.deepEqual(out.policy_input.token.claims.att, claims.att);
  });
  test("a forged token is decoded but fails at the signature", () => {
    const forged = ag.mint("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=", { did: "x", exp: NOW + 60 });
    const out = ag.explain(hsConfig, forged, null, NOW);
    const failed = out.steps.filter((s) => s.status === "failed").map((s) => s.id);
    assert.deepEqual(failed, ["signature"]);
    assert.equal(out.token.claims.did, "x");
    assert.equal(out.policy_input, null);
  });
});

describe("evalPolicy", () => {
  const stepUp = { "step_up.rego": read("policies/examples/step_up.rego") };
  const query = "data.attestgate.examples.step_up.decision";
  const value = (out) => out.result[0].expressions[0].value;
  test("the step-up example decides as policies/README.md documents", () => {
    const input = (score, method) => ({ token: { claims: { att: { risk: { score } } } }, request: { method } });
    assert.deepEqual(value(ag.evalPolicy(stepUp, input(10, "POST"), null, query)), { allow: true, reasons: [] });
    assert.deepEqual(value(ag.evalPolicy(stepUp, input(50, "POST"), null, query)), {
      allow: false,
      reasons: ["step_up_required"],
      status: 401,
      headers: { "www-authenticate": 'StepUp realm="attestgate"' },
    });
    assert.deepEqual(value(ag.evalPolicy(stepUp, input(50, "GET"), null, query)).allow, true);
    const strict = ag.evalPolicy(stepUp, input(50, "GET"), { step_up: { step_up_methods: ["GET"] } }, query);
    assert.deepEqual(value(strict).reasons, ["step_up_required"]);
  });
  test("an undefined query gives {}, a broken module throws", () => {
    assert.deepEqual(ag.evalPolicy(stepUp, {}, null, "data.nothing.here"), {});
    assert.throws(() => ag.evalPolicy({ "x.rego": "package x\ny := {" }, null, null, "data.x.y"), { message: /^loading x.rego/ });
  });
});

describe("testPolicies", () => {
  test("every Rego test under policies/ passes, as with `attestgate test policies`", () => {
    const files = regoFiles("policies");
    const out = ag.testPolicies(files);
    const failures = out.tests.filter((t) => !t.passed).map((t) => `${t.name}: ${t.error ?? "false"}`);
    assert.deepEqual(failures, []);
    // As many results as top-level test_ rules in the files (the CLI's discovery rule).
    const expected = new Set();
    for (const [, source] of files) {
      const pkg = source.match(/^package\s+([\w.]+)/m)[1];
      for (const m of source.matchAll(/^(test_\w+)/gm)) expected.add(`data.${pkg}.${m[1]}`);
    }
    assert.equal(out.passed, expected.size);
    assert.ok(out.passed > 50, `only ${out.passed} tests`);
    // Each ran on the compiled plan too (issue #27), which agreed with the interpreter.
    assert.deepEqual(out.tests.filter((t) => t.interpreted_only !== null).map((t) => t.name), []);
  });
  test("a failing test is reported", () => {
    const out = ag.testPolicies({ "t.rego": "package t\ntest_ok if true\ntest_no if false" });
    assert.deepEqual([out.passed, out.failed], [1, 1]);
  });
});

describe("mint and bindingHash", () => {
  test("a token bound to a header passes binding; another header value fails it", () => {
    const config = { ...hsConfig, binding: { headers: ["authorization"], claim: "pay", required: true } };
    const req = { headers: [["authorization", "Bearer session-1"]] };
    const pay = ag.bindingHash(["authorization"], req);
    assert.equal(pay, ag.bindingHash(["Authorization"], { headers: { Authorization: "Bearer session-1" } }));
    const t = hsToken({ pay });
    assert.equal(ag.check(config, t, req, NOW).reason, "allowed");
    const stolen = ag.check(config, t, { headers: [["authorization", "Bearer session-2"]] }, NOW);
    assert.equal(stolen.reason, "binding_mismatch");
    assert.equal(ag.bindingHash(["authorization"], {}), undefined);
  });
  test("mint refuses weak keys, public keys and unknown options", () => {
    assert.throws(() => ag.mint("c2hvcnQ=", {}, null), { message: /weak/ });
    assert.throws(() => ag.mint(key("es256.pub").keys[0], {}, null), { message: /public key/ });
    assert.throws(() => ag.mint(SECRET, {}, { expIN: 5 }), { message: /unknown field `expIN`/ });
  });
  test("withModules puts Rego sources into a config", () => {
    const config = ag.withModules({ ...hsConfig, policy: { entrypoint: "data.p.d" } }, { "p.rego": "package p\nd := false" });
    assert.equal(JSON.parse(config).policy.modules["p.rego"], "package p\nd := false");
    assert.equal(ag.check(config, hsToken({}), null, NOW).reason, "policy_denied");
  });
  test("version", () => assert.match(ag.version(), /^\d+\.\d+\.\d+$/));
});
