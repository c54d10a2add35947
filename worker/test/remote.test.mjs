// Fetched keys and denylists in the Worker, in real workerd, against a local document server
// whose answers the tests change: rotation at the refresh interval, an unknown kid fetching
// early, the last good copy kept through errors, garbage, oversized bodies and the server going
// down, a bounded wait when it never answers, `host:port` and URL upstreams, and sources the
// Worker cannot fetch refused at load. Nothing denied reaches the recording origin.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { ag } from "./core.mjs";
import { send, startOrigin, startWorkerd } from "./workerd.mjs";

/** HS256 secrets (standard base64, as `mint` takes them) and their JWKs. */
const secret = (text) => Buffer.from(text.padEnd(32, "-")).toString("base64");
const SECRETS = { k1: secret("first key of the rotation"), k2: secret("second key of the rotation"), k3: secret("third key, fetched early") };
const jwk = (kid) => ({ kty: "oct", alg: "HS256", kid, k: Buffer.from(SECRETS[kid], "base64").toString("base64url") });
const jwks = (...kids) => JSON.stringify({ keys: kids.map(jwk) });
const SECRET = SECRETS.k1;

const now = () => Math.floor(Date.now() / 1000);
/** A token signed with `kid`'s secret and naming it (`approov` : the denylist Worker's own secret, no kid). */
const token = (kid, claims = { did: "device-1" }) =>
  kid === "approov" ? ag.mint(SECRET, claims, { expIn: 300, now: now() }) : ag.mint(SECRETS[kid], claims, { kid, expIn: 300, now: now() });
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** The document server: per path, an answer `{status, body}` the tests set, or `hang`. */
async function startDocuments() {
  const answers = new Map();
  const hits = new Map();
  const server = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1);
    const answer = answers.get(req.url) ?? { status: 404, body: "not found" };
    if (answer === "hang") return; // never answers: the Worker's timeout_ms must end the wait
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(answer.body);
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(0, "127.0.0.1", ok));
  const host = `127.0.0.1:${server.address().port}`;
  return {
    host,
    origin: `http://${host}`,
    set: (path, status, body) => answers.set(path, { status, body }),
    hang: (path) => answers.set(path, "hang"),
    hits: (path) => hits.get(path) ?? 0,
    close: () => new Promise((ok) => (server.closeAllConnections(), server.close(ok))),
  };
}

let origin;
let documents;
/** A second server, for the test that takes it down. */
let vanishing;
let workerd;
let url;

const source = (path, extra = {}) => ({ upstream: documents.origin, authority: documents.host, path, ...extra });

before(async () => {
  origin = await startOrigin();
  documents = await startDocuments();
  documents.set("/rotating.json", 200, jwks("k1"));
  documents.set("/early.json", 200, jwks("k1"));
  documents.set("/static.json", 200, jwks("k1"));
  documents.set("/denied.json", 200, JSON.stringify({ devices: ["stolen-device"] }));
  documents.hang("/hang.json");
  vanishing = await startDocuments();
  vanishing.set("/jwks.json", 200, jwks("k1"));
  const env = (config) => ({ ATTESTGATE_CONFIG: JSON.stringify(config), ORIGIN: origin.origin });
  workerd = await startWorkerd([
    { name: "rotating", bindings: env({ keys: { remote: source("/rotating.json", { refresh_seconds: 2, max_bytes: 1024 }) } }) },
    { name: "early", bindings: env({ keys: { remote: source("/early.json", { refresh_seconds: 600 }) } }) },
    { name: "denylist", bindings: env({ keys: { approov_secret: SECRET }, denylist: { remote: source("/denied.json") } }) },
    {
      name: "vanishing",
      bindings: env({ keys: { remote: { upstream: vanishing.origin, authority: vanishing.host, path: "/jwks.json", refresh_seconds: 1 } } }),
    },
    { name: "hanging", bindings: env({ keys: { remote: source("/hang.json", { timeout_ms: 300 }) } }) },
    { name: "host_port", bindings: env({ keys: { remote: { upstream: documents.host, authority: documents.host, path: "/static.json" } } }) },
    { name: "cluster_name", bindings: env({ keys: { remote: { upstream: "keyserver", authority: "keys.example.com", path: "/jwks.json" } } }) },
    { name: "other_authority", bindings: env({ keys: { remote: source("/rotating.json", { authority: "keys.example.com" }) } }) },
  ]);
  url = workerd.urls;
});
after(async () => {
  await workerd?.stop();
  await documents?.close();
  await vanishing?.close();
  await origin?.close();
});

/** Sends a request with `kid`'s token; the reply and whether the origin got it. */
async function withKey(worker, kid, claims) {
  const before = origin.received.length;
  const res = await send(url[worker], { path: "/v1/shapes", headers: [["approov-token", token(kid, claims)]] });
  const reached = origin.received.length - before;
  assert.ok(reached <= 1);
  if (res.status !== 200) assert.equal(reached, 0, `a ${res.status} reached the origin`);
  return { status: res.status, reason: res.headers["x-attestgate-reason"] ?? (res.status === 200 ? "allowed" : undefined), reached };
}

/** Polls `check` until it holds, for at most `ms`: background refreshes land after a reply. */
async function eventually(check, ms = 5_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await check();
    if (last === true || Date.now() > deadline) return last;
    await sleep(100);
  }
}

describe("fetched keys (keys.remote)", () => {
  test("the first request waits for the first fetch; keys rotate at the refresh interval; the last good keys survive bad answers", async () => {
    assert.deepEqual(await withKey("rotating", "k1"), { status: 200, reason: "allowed", reached: 1 });
    assert.equal(documents.hits("/rotating.json"), 1);
    assert.equal((await withKey("rotating", "k2")).reason, "key_not_found");

    // Rotated at the source: within the refresh interval the held keys still decide...
    documents.set("/rotating.json", 200, jwks("k2"));
    assert.equal((await withKey("rotating", "k1")).status, 200);
    // ...and after it, a request starts the refresh (answered with the last good keys) and
    // the next ones see the new set.
    await sleep(2_100);
    const rotated = await eventually(async () => (await withKey("rotating", "k2")).status === 200);
    assert.equal(rotated, true, "k2 was never accepted after the refresh interval");
    assert.equal((await withKey("rotating", "k1")).reason, "key_not_found");

    // Bad answers: each is refused and logged, k2 keeps deciding.
    for (const [status, body, logged] of [
      [500, "upstream error", "status 500"],
      [200, "<html>502</html>", "refused"],
      [200, JSON.stringify({ keys: [jwk("k1")], padding: "x".repeat(2048) }), "over max_bytes (1024)"],
    ]) {
      documents.set("/rotating.json", status, body);
      const hits = documents.hits("/rotating.json");
      await sleep(2_100);
      const tried = await eventually(async () => {
        assert.equal((await withKey("rotating", "k2")).status, 200, `after ${logged}`);
        return documents.hits("/rotating.json") > hits && workerd.logs().includes(logged);
      });
      assert.equal(tried, true, `no refresh that logged ${logged}`);
      assert.equal((await withKey("rotating", "k1")).reason, "key_not_found", `after ${logged}`);
    }
    assert.match(workerd.logs(), /keys\.remote: fetching http:\/\/127\.0\.0\.1:\d+\/rotating\.json failed \(status 500\); keeping the last good copy/);

  });

  test("an unknown kid fetches the JWKS early, once per refresh interval", async () => {
    assert.equal((await withKey("early", "k1")).status, 200);
    const hits = documents.hits("/early.json");
    documents.set("/early.json", 200, jwks("k1", "k3"));
    // The refresh interval is 600 s: only the unknown kid brings the fetch forward.
    assert.equal((await withKey("early", "k3")).reason, "key_not_found");
    const fetched = await eventually(async () => (await withKey("early", "k3")).status === 200);
    assert.equal(fetched, true, "k3 was not fetched early");
    assert.equal(documents.hits("/early.json"), hits + 1);
    // Forged kids do not make it fetch again within the interval.
    for (let i = 0; i < 5; i++) assert.equal((await withKey("early", "k2")).reason, "key_not_found");
    await sleep(300);
    assert.equal(documents.hits("/early.json"), hits + 1, "forged kids made it refetch");
  });

  test("the last good keys stay when the key server goes away", async () => {
    assert.equal((await withKey("vanishing", "k1")).status, 200);
    await vanishing.close();
    await sleep(1_100);
    const failed = await eventually(async () => {
      assert.equal((await withKey("vanishing", "k1")).status, 200);
      return /\/jwks\.json failed \([^)]*\); keeping the last good copy/.test(workerd.logs().split(vanishing.origin).slice(1).join(""));
    });
    assert.equal(failed, true, "no failed fetch was logged");
    await sleep(1_100);
    assert.equal((await withKey("vanishing", "k1")).status, 200, "after a second failed refresh");
  });

  test("a server that never answers costs one wait bounded by timeout_ms, then keys_unavailable until the retry", async () => {
    const started = Date.now();
    const first = await withKey("hanging", "k1");
    assert.deepEqual([first.status, first.reason], [503, "keys_unavailable"]);
    assert.ok(Date.now() - started < 3_000, `waited ${Date.now() - started} ms`);
    const again = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await withKey("hanging", "k1")).reason, "keys_unavailable");
    assert.ok(Date.now() - again < 1_000, "a later request waited for the fetch again");
    // A failed fetch is retried after 30 s (the refresh interval here is 300 s), not per request.
    assert.equal(documents.hits("/hang.json"), 1);
    assert.match(workerd.logs(), /keys\.remote: fetching .*\/hang\.json failed .*; no copy yet/);
  });
});

describe("a fetched denylist (denylist.remote)", () => {
  test("listed devices are refused with 403 before the origin; others go on", async () => {
    assert.deepEqual(await withKey("denylist", "approov", { did: "stolen-device" }), { status: 403, reason: "device_denied", reached: 0 });
    assert.equal((await withKey("denylist", "approov", { did: "device-1" })).status, 200);
  });
});

describe("where the Worker fetches from", () => {
  test("host:port is plain HTTP there, as in NGINX and Kong", async () => {
    assert.equal((await withKey("host_port", "k1")).status, 200);
    assert.equal(documents.hits("/static.json"), 1);
  });
  for (const [worker, message] of [
    ["cluster_name", /config_invalid: keys\.remote\.upstream must be host:port or http\(s\):\/\/host\[:port\] in the Worker/],
    ["other_authority", /config_invalid: keys\.remote\.authority \("keys\.example\.com"\) must be the host of keys\.remote\.upstream/],
  ]) {
    test(`refused at load: ${worker}`, async () => {
      const res = await withKey(worker, "k1");
      assert.deepEqual([res.status, res.reason], [500, "config_invalid"]);
      assert.match(workerd.logs(), message);
    });
  }
});
