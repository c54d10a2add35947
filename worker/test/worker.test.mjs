// The Worker in real workerd: headers as Envoy's filter rewrites them, the Approov secret
// merged in from its own binding, bodies passed through, paths forwarded exactly, per-device
// rate limits kept in a Durable Object, and a bad config failing closed (500 JSON, logged,
// nothing reaches the origin).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ag } from "./core.mjs";
import { send, startOrigin, startWorkerd } from "./workerd.mjs";

const SECRET = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const OTHER = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=";
const now = () => Math.floor(Date.now() / 1000);
const token = (claims, secret = SECRET) => ag.mint(secret, claims, { expIn: 300, now: now() });
const values = (headers, name) => headers.filter(([n]) => n === name).map(([, v]) => v);
const claims = [
  { claim: "did", header: "X-Device-Id" },
  { claim: "att.app", header: "X-App-Id" },
];

let origin;
let workerd;
let url;

/** Configs that need what the Worker lacks, and the field the refusal must name. */
const unsupported = {
  host_verification: {
    config: { keys: {}, host_verification: { payload_in_metadata: "approov" } },
    field: "host_verification",
  },
  log_decisions: { config: { keys: { approov_secret: SECRET }, log_decisions: true }, field: "log_decisions" },
};

/** Denies an old app on a rooted device, with both reasons. */
const twoReasonPolicy = `package attestgate
import rego.v1
reasons contains "old_app" if input.token.claims.att.app.version == "1.0"
reasons contains "rooted" if input.token.claims.att.device.rooted
decision := {"allow": count(reasons) == 0, "reasons": sort([r | some r in reasons])}`;

/** Allows every verified token, through a `print` that keeps it out of the compiled plan. */
const interpretedPolicy = `package attestgate
import rego.v1
decision := {"allow": true} if print("deciding")`;

const limiter = { className: "AttestgateRateLimiter", binding: "ATTESTGATE_LIMITER" };
/** 2 requests per 600 s per device on /login; /open has no limit. */
const limitedConfig = (mode) => ({
  mode,
  keys: { approov_secret: SECRET },
  claim_to_headers: claims,
  rules: [
    { name: "open", path: "/open" },
    { name: "login", path: "/login", rate_limit: { requests: 2, per_seconds: 600 } },
  ],
});
/** The Durable Object of a Worker whose limiter is down: every take throws. */
const brokenLimiter = `import { DurableObject } from "cloudflare:workers";
export default { fetch() { return new Response("not a gate", { status: 404 }); } };
export class AttestgateRateLimiter extends DurableObject {
  async take() { throw new Error("the limiter is down"); }
}
`;

before(async () => {
  origin = await startOrigin();
  const env = (config, extra = {}) => ({ ATTESTGATE_CONFIG: JSON.stringify(config), ORIGIN: origin.origin, ...extra });
  const workers = [
    { name: "enforce", bindings: env({ keys: { approov_secret: SECRET }, claim_to_headers: claims }) },
    { name: "monitor", bindings: env({ mode: "monitor", keys: { approov_secret: SECRET }, claim_to_headers: claims }) },
    // Monitor mode with a policy that denies with two reasons (the decision log's test).
    { name: "monitor_policy", bindings: env({ mode: "monitor", keys: { approov_secret: SECRET }, policy: { modules: { "p.rego": twoReasonPolicy } } }) },
    // A policy the compiled path cannot take (`print`): interpreted by regorus, and logged so.
    { name: "interpreted_policy", bindings: env({ keys: { approov_secret: SECRET }, policy: { modules: { "p.rego": interpretedPolicy } } }) },
    { name: "forward", bindings: env({ forward: true, token: { header: "Authorization", prefix: "Bearer " }, keys: { approov_secret: SECRET } }) },
    { name: "secret", bindings: env({ claim_to_headers: claims }, { APPROOV_SECRET: SECRET }) },
    { name: "no_keys", bindings: env({ keys: {} }) },
    { name: "not_json", bindings: env({}, { ATTESTGATE_CONFIG: "{keys:" }) },
    { name: "weak_secret", bindings: env({}, { APPROOV_SECRET: "c2hvcnQ=" }) },
    { name: "secret_twice", bindings: env({ keys: { approov_secret: SECRET } }, { APPROOV_SECRET: SECRET }) },
    { name: "no_origin", bindings: { ATTESTGATE_CONFIG: JSON.stringify({ keys: { approov_secret: SECRET } }) } },
    // What the Worker cannot carry out.
    ...Object.entries(unsupported).map(([name, { config }]) => ({ name, bindings: env(config) })),
    // Rate limits: the buckets in the AttestgateRateLimiter Durable Object (index.mjs).
    { name: "limited", bindings: env(limitedConfig("enforce")), durableObjects: [limiter] },
    { name: "limited_monitor", bindings: env(limitedConfig("monitor")), durableObjects: [limiter] },
    // Another Worker bound to the namespace of "limited": one bucket per device for both.
    { name: "limited_peer", bindings: env(limitedConfig("enforce")), durableObjects: [{ ...limiter, service: "limited" }] },
    // A limiter that fails, and a config with a limit but no binding.
    { name: "broken_limiter", main: brokenLimiter, durableObjects: [{ className: limiter.className }] },
    { name: "limiter_down", bindings: env(limitedConfig("enforce")), durableObjects: [{ ...limiter, service: "broken_limiter" }] },
    { name: "no_limiter", bindings: env(limitedConfig("enforce")) },
    { name: "text_limiter", bindings: env(limitedConfig("enforce"), { ATTESTGATE_LIMITER: "not a namespace" }) },
  ];
  workerd = await startWorkerd(workers);
  url = workerd.urls;
});
after(async () => {
  await workerd?.stop();
  await origin?.close();
});

/** Sends a request and returns the reply and what the origin got (at most one request). */
async function through(worker, request) {
  const before = origin.received.length;
  const res = await send(url[worker], request);
  const got = origin.received.slice(before);
  assert.ok(got.length <= 1, `the origin got ${got.length} requests`);
  return { res, up: got[0] };
}

const spoofed = [
  ["X-Device-Id", "attacker-device"],
  ["x-app-id", "attacker-app"],
  ["X-Attestgate-Decision", "allow"],
  ["x-attestgate-reason", "allowed"],
];

/** Issue #26: seven spellings of a header name that an origin behind CGI, WSGI, Rack, PHP or
 * NGINX's $http_* reads as one (the test kit's `upstream::spellings`). */
const spellings = (name) => {
  const title = (sep) => name.split("-").map((w) => w[0].toUpperCase() + w.slice(1)).join(sep);
  const under = name.replaceAll("-", "_");
  return [name, name.toUpperCase(), title("-"), under, under.toUpperCase(), title("_"), name.replaceAll("-", ".")];
};
/** What a CGI-style origin reads as the header `name` (RFC 3875 §4.1.18). */
const cgi = (name) => `HTTP_${name.toUpperCase().replaceAll("-", "_")}`;
const cgiValues = (headers, name) => headers.filter(([n]) => cgi(n) === cgi(name)).map(([, v]) => v);
const everySpelling = ["x-device-id", "x-app-id", "x-attestgate-decision", "x-attestgate-reason", "approov-token"]
  .flatMap(spellings)
  .filter((n) => n.toLowerCase() !== "approov-token")
  .map((n) => [n, "spoofed"]);

describe("headers as in Envoy", () => {
  test("allowed: the token and client copies of gate headers are stripped, verified claims set", async () => {
    const t = token({ did: "device-1", att: { app: "shapes" } });
    const { res, up } = await through("enforce", {
      path: "/v1/shapes?x=1",
      headers: [...spoofed, ["approov-token", t], ["x-kept", "yes"]],
    });
    assert.equal(res.status, 200, res.body);
    assert.ok(up, "nothing reached the origin");
    assert.equal(up.url, "/v1/shapes?x=1");
    assert.deepEqual(values(up.headers, "approov-token"), []);
    assert.ok(!up.headers.some(([, v]) => v.includes(t)), "the token reached the origin");
    assert.deepEqual(values(up.headers, "x-device-id"), ["device-1"]);
    assert.deepEqual(values(up.headers, "x-app-id"), ["shapes"]);
    assert.deepEqual(values(up.headers, "x-attestgate-decision"), []);
    assert.deepEqual(values(up.headers, "x-attestgate-reason"), []);
    assert.deepEqual(values(up.headers, "x-kept"), ["yes"]);
  });
  test("a claim the token lacks: the client's copy of its header is still stripped", async () => {
    const { res, up } = await through("enforce", { headers: [...spoofed, ["approov-token", token({ did: "device-2" })]] });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(values(up.headers, "x-device-id"), ["device-2"]);
    assert.deepEqual(values(up.headers, "x-app-id"), []);
  });
  test("denied: the JSON reply with its status and reason header; nothing reaches the origin", async () => {
    const { res, up } = await through("enforce", { headers: [...spoofed, ["approov-token", token({ did: "d" }, OTHER)]] });
    assert.equal(up, undefined);
    assert.equal(res.status, 401);
    assert.equal(res.headers["content-type"], "application/json");
    assert.equal(res.headers["x-attestgate-reason"], "signature_invalid");
    const body = JSON.parse(res.body);
    assert.equal(body.error, "signature_invalid");
    assert.ok(Array.isArray(body.reasons));
    const missing = await through("enforce", { headers: spoofed });
    assert.deepEqual([missing.res.status, missing.res.headers["x-attestgate-reason"], missing.up], [401, "token_missing", undefined]);
  });
  test("monitor mode: a failing request goes on with the gate's decision headers, not the client's", async () => {
    const { res, up } = await through("monitor", { headers: [...spoofed, ["approov-token", "not-a-token"]] });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(values(up.headers, "x-attestgate-decision"), ["deny"]);
    assert.deepEqual(values(up.headers, "x-attestgate-reason"), ["token_malformed"]);
    assert.deepEqual(values(up.headers, "x-device-id"), []);
    assert.deepEqual(values(up.headers, "x-app-id"), []);
    assert.deepEqual(values(up.headers, "approov-token"), []);
  });
  test("no spelling of a gate header reaches the origin (`_` for `-`, any case)", async () => {
    const noSpoof = (up) => assert.deepEqual(up.headers.filter(([, v]) => v === "spoofed"), [], JSON.stringify(up.headers));
    const allowed = await through("enforce", { headers: [...everySpelling, ["approov-token", token({ did: "device-1" })]] });
    assert.equal(allowed.res.status, 200, allowed.res.body);
    noSpoof(allowed.up);
    assert.deepEqual(cgiValues(allowed.up.headers, "x-device-id"), ["device-1"]);
    assert.deepEqual(cgiValues(allowed.up.headers, "approov-token"), []);
    assert.deepEqual(cgiValues(allowed.up.headers, "x-attestgate-decision"), []);
    const monitored = await through("monitor", { headers: everySpelling });
    assert.equal(monitored.res.status, 200, monitored.res.body);
    noSpoof(monitored.up);
    assert.deepEqual(cgiValues(monitored.up.headers, "x-attestgate-decision"), ["deny"]);
    assert.deepEqual(cgiValues(monitored.up.headers, "x-attestgate-reason"), ["token_missing"]);
    assert.deepEqual(cgiValues(monitored.up.headers, "x-device-id"), []);
  });
  test("forward: true keeps the token (here in Authorization with a prefix)", async () => {
    const t = token({});
    const { res, up } = await through("forward", { headers: [["authorization", `Bearer ${t}`]] });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(values(up.headers, "authorization"), [`Bearer ${t}`]);
  });
  test("a body is passed through unchanged", async () => {
    const body = JSON.stringify({ shape: "circle", pad: "x".repeat(100_000) });
    const { res, up } = await through("enforce", {
      method: "POST",
      path: "/v1/shapes",
      headers: [["approov-token", token({ did: "d" })], ["content-type", "application/json"]],
      body,
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(up.method, "POST");
    assert.equal(up.body.toString(), body);
  });
  test("a path with dot segments goes on as the reading the gate decided on", async () => {
    // Issue #26: every reading of these falls under one rule, so they are forwarded resolved
    // (what fetch() would send anyway), not refused.
    for (const [path, forwarded] of [["/beta/a/../b", "/beta/b"], ["/a/./b?x=../y", "/a/b?x=../y"], ["/%62eta/x", "/beta/x"]]) {
      const { res, up } = await through("monitor", { path });
      assert.equal(res.status, 200, `${path}: ${res.body}`);
      assert.equal(up?.url, forwarded, path);
    }
  });
  test("a path fetch() would still rewrite is refused, not forwarded as another path", async () => {
    // Monitor mode lets everything through, so only the Worker's own check stands between a
    // backslash and the origin receiving /admin.
    for (const path of ["/a\\..\\admin", "/a{b}", "/x?'"]) {
      const { res, up } = await through("monitor", { path });
      assert.equal(up, undefined, `${path} reached the origin as ${up?.url}`);
      assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [400, "path_ambiguous"], path);
    }
    const { res, up } = await through("monitor", { path: "/a%2Fb?q=%20" });
    assert.equal(res.status, 200);
    assert.equal(up.url, "/a%2Fb?q=%20");
  });
});

describe("config from the environment", () => {
  test("the load line says how the policy runs: a compiled plan, or interpreted and why", async () => {
    for (const worker of ["monitor_policy", "interpreted_policy"]) {
      const { res } = await through(worker, { headers: [["approov-token", token({})]] });
      assert.equal(res.status, 200, worker);
    }
    await logged(/attestgate: policy: data\.attestgate\.decision compiled to a plan$/);
    await logged(/attestgate: policy: data\.attestgate\.decision interpreted by regorus \(p\.rego:3: `print`/);
  });

  test("APPROOV_SECRET is merged into the config's keys", async () => {
    const { res, up } = await through("secret", { headers: [["approov-token", token({ did: "d-s" })]] });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(values(up.headers, "x-device-id"), ["d-s"]);
    const forged = await through("secret", { headers: [["approov-token", token({}, OTHER)]] });
    assert.deepEqual([forged.res.status, forged.res.headers["x-attestgate-reason"], forged.up], [401, "signature_invalid", undefined]);
  });

  const bad = {
    no_keys: /attestgate: config_invalid: no verification keys configured/,
    not_json: /attestgate: config_invalid: ATTESTGATE_CONFIG is not JSON/,
    weak_secret: /attestgate: config_invalid: invalid key approov_secret: weak key/,
    secret_twice: /attestgate: config_invalid: keys\.approov_secret is set both in ATTESTGATE_CONFIG and as APPROOV_SECRET/,
    no_origin: /attestgate: config_invalid: ORIGIN is not set/,
  };
  for (const [worker, logged] of Object.entries(bad)) {
    test(`a bad config fails closed: ${worker}`, async () => {
      for (const request of [{ headers: [["approov-token", token({})]] }, { method: "POST", path: "/x", body: "b" }]) {
        const { res, up } = await through(worker, request);
        assert.equal(up, undefined, "a request reached the origin");
        assert.equal(res.status, 500);
        assert.equal(res.headers["content-type"], "application/json");
        assert.equal(res.headers["x-attestgate-reason"], "config_invalid");
        assert.deepEqual(JSON.parse(res.body), { error: "config_invalid", reasons: [] });
      }
      // Logged per request (bounded wait: workerd writes the console asynchronously).
      const deadline = Date.now() + 5_000;
      while (!logged.test(workerd.logs()) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
      assert.match(workerd.logs(), logged);
    });
  }
});

/** Waits (bounded: workerd writes the console asynchronously) for a log line matching `line`. */
async function logged(line) {
  const found = () => workerd.logs().split("\n").some((l) => line.test(l));
  const deadline = Date.now() + 5_000;
  while (!found() && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
  assert.ok(found(), `no log line matching ${line} in:\n${workerd.logs()}`);
}

/** The decision log lines (`{time, attestgate, method, path, status}`) whose path is `path`,
 * waiting (bounded) for `count` of them: workerd writes the console asynchronously. */
async function decisionLines(path, count = 1) {
  const lines = () =>
    workerd
      .logs()
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes('"attestgate"'))
      .map((l) => JSON.parse(l))
      .filter((l) => l.path === path);
  const deadline = Date.now() + 5_000;
  while (lines().length < count && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
  assert.equal(lines().length, count, `${count} decision lines for ${path} in:\n${workerd.logs()}`);
  return lines();
}

describe("one structured log line per decision (issue #29)", () => {
  /** The DecisionRecord's fields, as serde writes them (policy-engine/src/record.rs). */
  const FIELDS = ["verdict", "allowed", "mode", "status", "reason", "policy_reasons", "policy_reasons_dropped", "rule", "device", "platform", "app_version", "cache"];
  const unique = (name) => `/log/${name}-${Math.random().toString(36).slice(2)}`;
  const check = (line, method, path, status) => {
    assert.deepEqual(Object.keys(line), ["time", "attestgate", "method", "path", "status"]);
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(line.time) - Date.now()) < 60_000, line.time);
    assert.deepEqual([line.method, line.path, line.status], [method, path, status]);
    assert.deepEqual(Object.keys(line.attestgate).sort(), [...FIELDS].sort());
    return line.attestgate;
  };

  test("allowed, denied and a monitored policy denial: the core's record, the verified claims only", async () => {
    const allowedPath = unique("allowed");
    const t = token({ did: "device-log-1", att: { device: { platform: "ios" }, app: { version: "2.4.1" } } });
    const allowed = await through("enforce", { path: `${allowedPath}?q=secret`, headers: [["approov-token", t]] });
    assert.equal(allowed.res.status, 200);
    const [allowedLine] = await decisionLines(allowedPath);
    assert.ok(!JSON.stringify(allowedLine).includes("q=secret"), "the query is not logged");
    assert.deepEqual(check(allowedLine, "GET", allowedPath, 200), {
      verdict: "allow", allowed: true, mode: "enforce", status: 200, reason: "allowed", policy_reasons: [],
      policy_reasons_dropped: 0, rule: null, device: "device-log-1", platform: "ios", app_version: "2.4.1", cache: null,
    });

    const deniedPath = unique("denied");
    const denied = await through("enforce", { method: "POST", path: deniedPath, headers: [["approov-token", ag.mint(SECRET, { did: "device-log-2", exp: now() - 600 })]] });
    assert.equal(denied.res.status, 401);
    const deniedRecord = check((await decisionLines(deniedPath))[0], "POST", deniedPath, 401);
    assert.deepEqual(
      [deniedRecord.verdict, deniedRecord.allowed, deniedRecord.status, deniedRecord.reason, deniedRecord.device],
      ["deny", false, 401, "token_expired", null],
    );

    const monitoredPath = unique("monitored");
    const rooted = token({ did: "device-log-3", att: { device: { platform: "android", rooted: true }, app: { version: "1.0" } } });
    const monitored = await through("monitor_policy", { path: monitoredPath, headers: [["approov-token", rooted]] });
    assert.equal(monitored.res.status, 200, monitored.res.body);
    const record = check((await decisionLines(monitoredPath))[0], "GET", monitoredPath, 200);
    assert.deepEqual(
      [record.verdict, record.allowed, record.mode, record.reason, record.policy_reasons],
      ["deny", true, "monitor", "policy_denied", ["old_app", "rooted"]],
    );
    assert.deepEqual([record.device, record.platform, record.app_version], ["device-log-3", "android", "1.0"]);
  });

  test("a forged or unsigned token's device id never appears, nor a client's header", async () => {
    const forged = token({ did: "device-forged", att: { device: { platform: "android" } } }, OTHER);
    const [head, claimsPart] = forged.split(".");
    const stripped = `${head}.${claimsPart}.`;
    const algNone = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${claimsPart}.`;
    for (const [worker, t, reason, status] of [
      ["enforce", forged, "signature_invalid", 401],
      ["monitor", forged, "signature_invalid", 200],
      ["enforce", stripped, "signature_invalid", 401],
      ["monitor", algNone, "alg_not_allowed", 200],
    ]) {
      const path = unique(`forged-${worker}`);
      const { res } = await through(worker, { path, headers: [["approov-token", t], ["x-device-id", "device-spoofed"]] });
      assert.equal(res.status, status, res.body);
      const [line] = await decisionLines(path);
      const record = check(line, "GET", path, status);
      assert.deepEqual([record.verdict, record.reason, record.device, record.platform], ["deny", reason, null, null]);
    }
    assert.ok(!workerd.logs().includes("device-forged"), workerd.logs());
    assert.ok(!workerd.logs().includes("device-spoofed"), workerd.logs());
  });
});

describe("per-device rate limits, kept in a Durable Object", () => {
  const login = (worker, did, i) => through(worker, { method: "POST", path: `/login?i=${i}`, headers: [["approov-token", token({ did })]] });
  test("rate_limit: a device's 3rd request at 2 per 600 s is 429 with retry-after and never reaches the origin", async () => {
    for (const i of [1, 2]) {
      const { res, up } = await login("limited", "rl-a", i);
      assert.equal(res.status, 200, `request ${i}: ${res.body}`);
      assert.equal(up?.url, `/login?i=${i}`);
      assert.deepEqual(values(up.headers, "x-device-id"), ["rl-a"]);
    }
    for (const i of [3, 4]) {
      const { res, up } = await login("limited", "rl-a", i);
      assert.equal(up, undefined, `request ${i} reached the origin`);
      assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [429, "rate_limited"], res.body);
      assert.equal(res.headers["content-type"], "application/json");
      assert.equal(JSON.parse(res.body).error, "rate_limited");
      // One request comes back every 300 s; a second or two may have passed.
      const wait = Number(res.headers["retry-after"]);
      assert.ok(Number.isInteger(wait) && wait > 290 && wait <= 300, `retry-after: ${res.headers["retry-after"]}`);
    }
    // Another device has its own bucket; a route without a limit takes from none.
    const other = await login("limited", "rl-b", 5);
    assert.equal(other.res.status, 200, other.res.body);
    assert.deepEqual(values(other.up.headers, "x-device-id"), ["rl-b"]);
    const open = await through("limited", { path: "/open", headers: [["approov-token", token({ did: "rl-a" })]] });
    assert.equal(open.res.status, 200, open.res.body);
  });
  test("rate_limit: two Workers bound to one Durable Object namespace count a device together", async () => {
    assert.equal((await login("limited", "rl-shared", 1)).res.status, 200);
    assert.equal((await login("limited_peer", "rl-shared", 2)).res.status, 200);
    for (const worker of ["limited_peer", "limited"]) {
      const { res, up } = await login(worker, "rl-shared", 3);
      assert.equal(up, undefined, `${worker}: the 3rd request reached the origin`);
      assert.equal(res.status, 429, `${worker}: ${res.body}`);
    }
  });
  test("rate_limit in monitor mode: the 3rd request goes on, reported as rate_limited", async () => {
    for (const i of [1, 2, 3]) {
      const { res, up } = await login("limited_monitor", "rl-m", i);
      assert.equal(res.status, 200, `request ${i}: ${res.body}`);
      assert.equal(up?.url, `/login?i=${i}`);
      assert.deepEqual(values(up.headers, "x-device-id"), ["rl-m"]);
      const reported = i === 3 ? { decision: ["deny"], reason: ["rate_limited"] } : { decision: [], reason: [] };
      assert.deepEqual(values(up.headers, "x-attestgate-decision"), reported.decision, `request ${i}`);
      assert.deepEqual(values(up.headers, "x-attestgate-reason"), reported.reason, `request ${i}`);
      assert.deepEqual(values(up.headers, "retry-after"), []);
    }
  });
  test("rate_limit with a failing Durable Object: 500 internal_error, logged, nothing forwarded", async () => {
    const { res, up } = await login("limiter_down", "rl-down", 1);
    assert.equal(up, undefined, "a request reached the origin without its limit");
    assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [500, "internal_error"], res.body);
    assert.deepEqual(JSON.parse(res.body), { error: "internal_error", reasons: [] });
    await logged(/attestgate: internal_error: .*the limiter is down/);
    // A route without a limit does not ask the limiter.
    const open = await through("limiter_down", { path: "/open", headers: [["approov-token", token({ did: "rl-down" })]] });
    assert.equal(open.res.status, 200, open.res.body);
  });
  test("rate_limit without the ATTESTGATE_LIMITER binding: refused at load, 500 config_invalid", async () => {
    // No binding, or one that is not a Durable Object namespace.
    for (const worker of ["no_limiter", "text_limiter"]) {
      for (const path of ["/login", "/open"]) {
        const { res, up } = await through(worker, { path, headers: [["approov-token", token({ did: "rl-none" })]] });
        assert.equal(up, undefined, `${worker}: ${path} reached the origin`);
        assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [500, "config_invalid"], `${worker}: ${res.body}`);
        assert.deepEqual(JSON.parse(res.body), { error: "config_invalid", reasons: [] });
      }
    }
    await logged(/attestgate: config_invalid: `rules\[1\]\.rate_limit` needs the ATTESTGATE_LIMITER binding, a Durable Object namespace/);
  });
});

describe("what the Worker cannot carry out is refused at load, not ignored", () => {
  for (const [worker, { field }] of Object.entries(unsupported)) {
    test(`${field}: every request is 500 config_invalid, nothing reaches the origin`, async () => {
      // Seven requests with a valid token: none goes through.
      const t = token({ did: "device-rl" });
      for (let i = 0; i < 7; i++) {
        const { res, up } = await through(worker, { path: `/v1/shapes?i=${i}`, headers: [["approov-token", t]] });
        assert.equal(up, undefined, `request ${i} reached the origin`);
        assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [500, "config_invalid"], res.body);
        assert.deepEqual(JSON.parse(res.body), { error: "config_invalid", reasons: [] });
      }
      const logged = `attestgate: config_invalid: unsupported \`${field}\``;
      const named = (logs) => logs.split("\n").some((l) => l.includes(logged) && l.includes("which the Cloudflare Worker does not have"));
      const deadline = Date.now() + 5_000;
      while (!named(workerd.logs()) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
      assert.ok(named(workerd.logs()), `no log line naming ${field} and the Worker in:\n${workerd.logs()}`);
    });
  }
});
