// Parity in real workerd: the Worker decides the shared request corpus (corpus/) over HTTP the
// way the native core does. Every case whose runners include "workerd" is sent to the Worker of
// its gate (one workerd, one Worker per gate, each with the gate's config as
// ATTESTGATE_CONFIG), and the reply compared with the expectation the native runner checks:
// a denial's status, `x-attestgate-reason` and JSON body, with nothing reaching the origin; an
// allowance's 200 from the origin, which got exactly one request, with the headers Envoy's
// filter gives it (token and client copies of gate headers gone, verified claim headers set,
// monitor mode's decision headers).
//
// The corpus JSON comes from $ATTESTGATE_CORPUS; `make worker-test` writes it to
// build/worker/corpus.json, minted at the current time with --stable-for (workerd's clock is
// the real one): a case must be sent before that window ends.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { ag } from "./core.mjs";
import { repo, send, startOrigin, startWorkerd } from "./workerd.mjs";

const corpusFile = process.env.ATTESTGATE_CORPUS ?? `${repo}/build/worker/corpus.json`;
const stableFor = Number(process.env.ATTESTGATE_CORPUS_STABLE_FOR ?? 120);
const corpus = JSON.parse(readFileSync(corpusFile, "utf8"));
assert.equal(typeof corpus.now, "number", `${corpusFile}: no "now"`);

let ran = 0;
let refusedHere = 0;
const skipped = [];
let origin;
let workerd;

before(async () => {
  origin = await startOrigin();
  workerd = await startWorkerd(
    corpus.gates.map((g) => ({
      name: g.name,
      bindings: { ATTESTGATE_CONFIG: JSON.stringify(g.config), ORIGIN: origin.origin },
      // As deployed (wrangler.toml): the Durable Object that keeps rate-limit buckets.
      durableObjects: [{ className: "AttestgateRateLimiter", binding: "ATTESTGATE_LIMITER" }],
    })),
  );
});
after(async () => {
  await workerd?.stop();
  await origin?.close();
});

const lower = (s) => s.toLowerCase();
const values = (headers, name) => headers.filter(([n]) => n === name).map(([, v]) => v);

for (const gateCase of corpus.gates) {
  if (gateCase.refused?.workerd !== undefined) {
    // The Worker lacks what this gate needs (the core's capability model): every request is
    // answered 500 config_invalid and nothing reaches the origin, whatever the case expects
    // elsewhere.
    for (const c of gateCase.cases) {
      test(`${gateCase.name}/${c.name}: refused at load`, async () => {
        const r = c.request;
        const before = origin.received.length;
        const res = await send(workerd.urls[gateCase.name], { method: r.method, path: r.path, headers: [["host", r.authority], ...r.headers] });
        assert.deepEqual([res.status, res.headers["x-attestgate-reason"]], [500, "config_invalid"], res.body);
        assert.equal(origin.received.length, before, "a request reached the origin");
        // The core's refusal, as the corpus computed it for this host, is what the Worker logs.
        const logged = `attestgate: config_invalid: ${gateCase.refused.workerd}`;
        const deadline = Date.now() + 5_000;
        while (!workerd.logs().includes(logged) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
        assert.ok(workerd.logs().includes(logged), `not logged: ${logged}`);
        refusedHere += 1;
      });
    }
    continue;
  }
  describe(gateCase.name, () => {
    const config = gateCase.config;
    const tokenHeader = lower(config.token?.header ?? "approov-token");
    const claimHeaders = (config.claim_to_headers ?? []).map((m) => lower(m.header));
    let native;
    before(() => (native = new ag.Gate(JSON.stringify(config), "worker")));
    after(() => native?.free());

    for (const c of gateCase.cases) {
      if (!c.runners.includes("workerd")) {
        skipped.push(`${gateCase.name}/${c.name} (runners: ${c.runners.join(", ")})`);
        continue;
      }
      test(c.name, async () => {
        const age = Math.floor(Date.now() / 1000) - corpus.now;
        assert.ok(age < stableFor, `the corpus was minted ${age}s ago, past its --stable-for ${stableFor}s`);
        const expect = c.overrides?.workerd ?? c.expect;
        const r = c.request;
        const before = origin.received.length;
        const res = await send(workerd.urls[gateCase.name], {
          method: r.method,
          path: r.path,
          headers: [["host", r.authority], ...r.headers],
        });
        const got = origin.received.slice(before);
        const what = `${gateCase.name}/${c.name}${c.why ? ` (${c.why})` : ""}`;
        if (!expect.allow) {
          assert.deepEqual(
            [res.status, res.headers["x-attestgate-reason"]],
            [expect.status, expect.reason],
            `${what}: got ${res.status} ${res.headers["x-attestgate-reason"]} ${res.body}`,
          );
          assert.equal(res.headers["content-type"], "application/json", what);
          assert.equal(JSON.parse(res.body).error, expect.reason, what);
          assert.equal(got.length, 0, `${what}: a denied request reached the origin`);
        } else {
          assert.equal(res.status, 200, `${what}: got ${res.status} ${res.headers["x-attestgate-reason"]} ${res.body}`);
          assert.equal(res.body, '{"origin":"ok"}', what);
          assert.equal(got.length, 1, `${what}: the origin got ${got.length} requests`);
          const [up] = got;
          // The origin gets the path the gate decided on: its RFC 3986 reading (the path
          // as sent where that has no dot segment or unreserved escape).
          const facts = { method: r.method, path: r.path, host: r.authority, headers: r.headers };
          const { action } = native.plan(facts, undefined, corpus.now);
          assert.equal(up.url, action.path, `${what}: the origin got another path than the gate decided on`);
          // The decision the core makes for this request, for the headers it vouches for.
          const decision = native.check(null, facts, corpus.now);
          assert.equal(decision.allow, true, what);
          if (!config.forward) {
            assert.deepEqual(values(up.headers, tokenHeader), [], `${what}: the token reached the origin`);
          }
          const monitored = (expect.verdict ?? decision.verdict) === "deny";
          assert.deepEqual(values(up.headers, "x-attestgate-decision"), monitored ? ["deny"] : [], what);
          assert.deepEqual(values(up.headers, "x-attestgate-reason"), monitored ? [expect.reason] : [], what);
          const claimed = Object.fromEntries(Object.entries(decision.headers ?? {}).map(([n, v]) => [lower(n), v]));
          for (const name of claimHeaders) {
            assert.deepEqual(values(up.headers, name), name in claimed ? [claimed[name]] : [], `${what}: ${name}`);
          }
        }
        ran += 1;
      });
    }
  });
}

test("the corpus ran", () => {
  for (const note of skipped) console.log(`skipped, not a workerd case: ${note}`);
  console.log(`workerd parity: ${ran} corpus cases decided by the Worker in workerd, ${refusedHere} refused at load, ${skipped.length} skipped`);
  assert.ok(ran > 0, "zero corpus cases ran");
});
