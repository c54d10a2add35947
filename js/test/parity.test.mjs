// Parity: the JavaScript build decides the shared request corpus (corpus/, `attestgate-corpus`)
// the way the native core does. Every case whose runners include "js" is decided here and its
// allow / status / reason (and verdict, when the case gives one) compared with the expectation
// the native runner checks. Cases not meant for JS are skipped with a note; zero cases run is a
// failure.
//
// The corpus JSON comes from $ATTESTGATE_CORPUS (a file written by
// `attestgate-corpus --now N`); `make js-test` writes it to build/js/corpus.json.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, test } from "node:test";

import { ag, buildDir } from "./attestgate.mjs";

const corpusFile = process.env.ATTESTGATE_CORPUS ?? `${buildDir}/corpus.json`;
const corpus = JSON.parse(readFileSync(corpusFile, "utf8"));
assert.equal(typeof corpus.now, "number", `${corpusFile}: no "now"`);
assert.ok(Array.isArray(corpus.gates), `${corpusFile}: no "gates"`);

let ran = 0;
const skipped = [];

/** The corpus request as the JS API takes it. */
function request(r) {
  return { method: r.method, path: r.path, host: r.authority, headers: r.headers };
}

for (const gateCase of corpus.gates) {
  if (gateCase.refused?.js !== undefined) {
    // The JS build lacks what this gate needs (the core's capability model): refused at
    // load with the core's message, and none of its cases runs here.
    test(`${gateCase.name}: refused at load`, () => {
      const checked = ag.checkConfig(gateCase.config);
      assert.deepEqual(checked, { ok: false, error: gateCase.refused.js });
      assert.throws(() => new ag.Gate(gateCase.config), { message: gateCase.refused.js });
    });
    for (const c of gateCase.cases) skipped.push(`${gateCase.name}/${c.name} (refused at load)`);
    continue;
  }
  describe(gateCase.name, () => {
    let gate;
    test("config loads", () => {
      const checked = ag.checkConfig(gateCase.config);
      assert.equal(checked.ok, true, checked.error);
      gate = new ag.Gate(gateCase.config);
    });
    for (const c of gateCase.cases) {
      if (!c.runners.includes("js")) {
        skipped.push(`${gateCase.name}/${c.name} (runners: ${c.runners.join(", ")})`);
        continue;
      }
      test(c.name, () => {
        assert.ok(gate, "the gate did not load");
        const expect = c.overrides?.js ?? c.expect;
        const got = gate.check(null, request(c.request), corpus.now);
        const fields = ["allow", "status", "reason", ...("verdict" in expect ? ["verdict"] : [])];
        const pick = (o) => Object.fromEntries(fields.map((f) => [f, o[f]]));
        assert.deepEqual(
          pick(got),
          pick(expect),
          `${gateCase.name}/${c.name} differs from the native core${c.why ? ` (${c.why})` : ""}: ` +
            `got ${JSON.stringify(pick(got))}, expected ${JSON.stringify(pick(expect))}` +
            (got.reasons?.length ? `; reasons ${JSON.stringify(got.reasons)}` : ""),
        );
        ran += 1;
      });
    }
    after(() => gate?.free());
  });
}

test("the corpus ran", () => {
  for (const note of skipped) console.log(`skipped, not a js case: ${note}`);
  console.log(`parity: ${ran} corpus cases decided by the JS build, ${skipped.length} skipped`);
  assert.ok(ran > 0, "zero corpus cases ran");
});
