// Speed of the JavaScript build in Node, for the README's figures (not a test; nothing is
// asserted). Run after `make js`: node js/bench.mjs
import { ag, read } from "./test/attestgate.mjs";
const NOW = 1_700_000_000;
const S = "1vZVAyqbr8etmMxKkJkbOhlfxFyy2gTBgpLM+v491g8=";
const claims = JSON.parse(read("envoy-examples/quickstart/claims/good.json"));
function bench(name, config, token) {
  const g = new ag.Gate(config);
  for (let i = 0; i < 200; i++) g.check(token, {}, NOW);
  const n = 2000; const t0 = performance.now();
  for (let i = 0; i < n; i++) g.check(token, {}, NOW);
  const us = (performance.now() - t0) / n * 1000;
  const r = g.check(token, {}, NOW).reason;
  console.log(`${name}: ${us.toFixed(1)} µs/check (${r})`);
}
const hs = ag.mint(S, claims, { expIn: 300, now: NOW });
bench("HS256, no policy", { keys: { approov_secret: S } }, hs);
bench("HS256 + device_trust.rego", { keys: { approov_secret: S }, policy: { modules: { "d.rego": read("policies/device_trust.rego") }, data: { device_trust: { allowed_app_ids: ["com.example.shapes"] } } } }, hs);
const es = ag.mint(JSON.parse(read("policy-engine/tests/data/keys/es256.json")), claims, { expIn: 300, now: NOW });
bench("ES256, no policy", { keys: JSON.parse(read("policy-engine/tests/data/keys/es256.pub.json")) }, es);
let t0 = performance.now(); const g = new ag.Gate({ keys: { approov_secret: S }, policy: { modules: { "d.rego": read("policies/device_trust.rego") } } }); console.log(`load gate with device_trust: ${(performance.now()-t0).toFixed(1)} ms`);
