// attestgate playground: the core, built for the web with wasm-bindgen, decides a pasted token.
// No server-side code: `make playground` serves these files, the Rego policies and the .wasm.
import init, * as ag from "./attestgate_js.js";

// The quickstart's DEMO secret (envoy-examples/quickstart), published: never use it for real traffic.
const DEMO_SECRET = "1vZVAyqbr8etmMxKkJkbOhlfxFyy2gTBgpLM+v491g8=";
// A different key, for forged tokens.
const FORGED_SECRET = btoa("not-the-attestation-service-secret");
const SIGNER = "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";

const android = () => ({
  did: "demo-device-0001",
  att: {
    app: { id: "com.example.shapes", version: "2.4.1", installer: "com.android.vending", debuggable: false, signer_sha256: [SIGNER] },
    device: {
      platform: "android", os_version: "14", patch_level: "2024-05-05",
      integrity: ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"],
      rooted: false, emulator: false, bootloader_unlocked: false,
    },
    runtime: { debugger: false, hooks: [], app_tampered: false },
    risk: { score: 8 },
  },
});

const ios = () => ({
  did: "b7c0f3e2-2d8a-4c51-9a0e-5f1d2c3b4a59",
  att: {
    app: { id: "ABCDE12345.com.example.shapes", version: "2.4.1", debuggable: false },
    device: { platform: "ios", os_version: "17.4.1", rooted: false, emulator: false },
    runtime: { debugger: false, hooks: [], app_tampered: false },
    risk: { score: 5 },
  },
});

/** Applies `edit` to fresh claims: scenarios describe only what differs. */
const with_ = (base, edit) => () => {
  const claims = base();
  edit(claims);
  return claims;
};

const quickstartData = {
  device_trust: {
    allowed_app_ids: ["com.example.shapes", "ABCDE12345.com.example.shapes"],
    min_app_version: "2.0.0",
    min_os_version: { android: "11", ios: "15.0" },
  },
};

// Each example: a gate config (modules come from `modules`), a request and demo tokens, each
// with the status and reason it shows (js/test/playground.test.mjs checks them all).
const PRESETS = [
  {
    id: "default",
    title: "Default device-trust policy (quickstart)",
    about: "policies/device_trust.rego with the quickstart's settings: app allow-list, minimum versions, and no root, hooks, emulator or tampering.",
    modules: ["policies/device_trust.rego"],
    tests: ["policies/device_trust_test.rego"],
    config: {
      token: { header: "approov-token" },
      keys: { approov_secret: DEMO_SECRET },
      leeway_seconds: 60,
      policy: { entrypoint: "data.attestgate.decision", data: quickstartData },
      claim_to_headers: [
        { claim: "did", header: "x-device-id" },
        { claim: "att.device.platform", header: "x-device-platform" },
      ],
    },
    request: { method: "GET", path: "/v1/shapes", headers: "user-agent: okhttp/4.12" },
    scenarios: [
      { label: "Good Android device", claims: android, expect: "200 · allowed" },
      { label: "Good iPhone", claims: ios, expect: "200 · allowed" },
      {
        label: "Rooted, with Frida", expect: "403 · policy_denied",
        claims: with_(android, (c) => {
          c.att.device.rooted = true;
          c.att.device.integrity = ["MEETS_BASIC_INTEGRITY"];
          c.att.runtime.hooks = ["frida"];
        }),
      },
      { label: "Outdated app", claims: with_(android, (c) => { c.att.app.version = "1.9.3"; }), expect: "403 · policy_denied" },
      { label: "Expired token", claims: android, expIn: -600, expect: "401 · token_expired" },
      { label: "Forged signature", claims: android, key: "forged", expect: "401 · signature_invalid" },
    ],
  },
  {
    id: "android",
    title: "Android: Play Integrity rules",
    about: "policies/examples/android.rego: a STRONG integrity verdict, an allowed signing certificate, installed from Google Play, patched since 2024-01-01.",
    modules: ["policies/examples/android.rego"],
    tests: ["policies/examples/android_test.rego"],
    config: {
      keys: { approov_secret: DEMO_SECRET },
      policy: {
        entrypoint: "data.attestgate.examples.android.decision",
        data: { android_integrity: { allowed_signers: [SIGNER], min_patch_level: "2024-01-01" } },
      },
    },
    request: { method: "GET", path: "/v1/profile", headers: "" },
    scenarios: [
      { label: "Play-installed Pixel", claims: android, expect: "200 · allowed" },
      { label: "Sideloaded", claims: with_(android, (c) => { c.att.app.installer = null; }), expect: "403 · policy_denied" },
      { label: "Old security patch", claims: with_(android, (c) => { c.att.device.patch_level = "2023-06-05"; }), expect: "403 · policy_denied" },
      {
        label: "Basic integrity only", expect: "403 · policy_denied",
        claims: with_(android, (c) => { c.att.device.integrity = ["MEETS_BASIC_INTEGRITY"]; }),
      },
      { label: "An iPhone", claims: ios, expect: "403 · policy_denied" },
    ],
  },
  {
    id: "ios",
    title: "iOS: App Attest rules",
    about: "policies/examples/ios.rego: an allowed App ID, no jailbreak, iOS 15 or later, no debug build or debugger.",
    modules: ["policies/examples/ios.rego"],
    tests: ["policies/examples/ios_test.rego"],
    config: {
      keys: { approov_secret: DEMO_SECRET },
      policy: {
        entrypoint: "data.attestgate.examples.ios.decision",
        data: { ios_app_attest: { allowed_app_ids: ["ABCDE12345.com.example.shapes"], min_os_version: "15.0" } },
      },
    },
    request: { method: "GET", path: "/v1/profile", headers: "" },
    scenarios: [
      { label: "App Store build", claims: ios, expect: "200 · allowed" },
      { label: "Jailbroken", claims: with_(ios, (c) => { c.att.device.rooted = true; }), expect: "403 · policy_denied" },
      { label: "iOS 14.8", claims: with_(ios, (c) => { c.att.device.os_version = "14.8"; }), expect: "403 · policy_denied" },
      { label: "Debugger attached", claims: with_(ios, (c) => { c.att.runtime.debugger = true; }), expect: "403 · policy_denied" },
    ],
  },
  {
    id: "payments",
    title: "Payments: binding and freshness",
    about: "A route rule sends /v1/payments to policies/examples/payments.rego: everything the default policy checks, plus a risk score under 20, a token bound to the Authorization header and issued in the last 2 minutes.",
    modules: ["policies/device_trust.rego", "policies/examples/payments.rego"],
    tests: ["policies/examples/payments_test.rego"],
    config: {
      keys: { approov_secret: DEMO_SECRET },
      binding: { headers: ["authorization"], claim: "pay" },
      policy: {
        entrypoint: "data.attestgate.decision",
        data: { ...quickstartData, payments: { risk_score_limit: 20 } },
      },
      rules: [{ name: "payments", path_prefix: "/v1/payments", entrypoint: "data.attestgate.examples.payments.decision" }],
    },
    request: { method: "POST", path: "/v1/payments", headers: "authorization: Bearer session-1234" },
    scenarios: [
      { label: "Bound, fresh token", claims: android, bind: true, expect: "200 · allowed" },
      { label: "Risk score 35", claims: with_(android, (c) => { c.att.risk.score = 35; }), bind: true, expect: "403 · policy_denied" },
      { label: "Bound to another session", claims: android, bind: "Bearer session-9999", expect: "401 · binding_mismatch" },
      { label: "Not bound", claims: android, expect: "403 · policy_denied" },
      { label: "Issued 5 minutes ago", claims: android, bind: true, iatAgo: 300, expect: "403 · policy_denied" },
    ],
  },
  {
    id: "step_up",
    title: "Step-up on medium risk",
    about: "policies/examples/step_up.rego: low risk passes, medium risk must step up on POST (401 with a challenge header), high risk is refused.",
    modules: ["policies/examples/step_up.rego"],
    tests: ["policies/examples/step_up_test.rego"],
    config: {
      keys: { approov_secret: DEMO_SECRET },
      policy: { entrypoint: "data.attestgate.examples.step_up.decision" },
    },
    request: { method: "POST", path: "/v1/transfer", headers: "" },
    scenarios: [
      { label: "Low risk (10)", claims: with_(android, (c) => { c.att.risk.score = 10; }), expect: "200 · allowed" },
      { label: "Medium risk (50)", claims: with_(android, (c) => { c.att.risk.score = 50; }), expect: "401 · policy_denied" },
      { label: "High risk (85)", claims: with_(android, (c) => { c.att.risk.score = 85; }), expect: "403 · policy_denied" },
    ],
  },
];

const $ = (id) => document.getElementById(id);
const sources = new Map(); // path → Rego source
let preset = PRESETS[0];

async function source(path) {
  if (!sources.has(path)) {
    const response = await fetch(path);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    sources.set(path, await response.text());
  }
  return sources.get(path);
}

const nowValue = () => Number($("now").value);
const fileName = (path) => path.split("/").pop();

function parseHeaders(text) {
  const headers = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`header line ${i + 1} is not "Name: value"`);
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return headers;
}

function request() {
  return { method: $("method").value, path: $("path").value, host: "localhost", headers: parseHeaders($("headers").value) };
}

/** The config as the core takes it: the editor's JSON with the Rego modules put in. */
function config() {
  const text = $("config").value;
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`the config is not JSON: ${err.message}`);
  }
  const modules = {};
  for (const area of document.querySelectorAll("#modules textarea")) modules[area.dataset.name] = area.value;
  if (!parsed || typeof parsed !== "object" || !parsed.policy || !Object.keys(modules).length) return text;
  return ag.withModules(text, modules);
}

// --- rendering ---------------------------------------------------------------

const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

/** Pretty JSON with a little colour. Outside strings, JSON text has nothing to escape. */
function showJson(element, value) {
  if (value === undefined || value === null) {
    element.textContent = "—";
    return;
  }
  element.innerHTML = JSON.stringify(value, null, 2).replace(
    /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    (m, str, colon, lit, num) => {
      if (str) return colon ? `<span class="k">${escape(str)}</span>${colon}` : `<span class="s">${escape(str)}</span>`;
      if (lit) return `<span class="l">${lit}</span>`;
      return `<span class="n">${num}</span>`;
    },
  );
}

/** Escaped text with `code` spans. */
const rich = (s) => escape(s).replace(/`([^`]+)`/g, "<code>$1</code>");

function ago(seconds) {
  const abs = Math.abs(seconds);
  const text = abs < 120 ? `${abs} s` : abs < 7200 ? `${Math.round(abs / 60)} min` : `${Math.round(abs / 3600)} h`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

function showTimes(claims, now) {
  const parts = [];
  for (const name of ["iat", "nbf", "exp"]) {
    const t = claims?.[name];
    if (typeof t === "number") parts.push(`${name}: ${new Date(t * 1000).toISOString().replace(".000Z", "Z")} (${ago(now - t)})`);
  }
  $("token-times").textContent = parts.join(" · ");
}

const ICONS = { passed: "✓", failed: "✗", skipped: "–" };

function showExplanation(out) {
  const d = out.decision;
  const box = $("decision");
  const monitored = d.allow && d.verdict === "deny";
  box.dataset.state = monitored ? "monitor" : d.allow ? "allow" : "deny";
  box.dataset.allow = String(d.allow);
  box.dataset.reason = d.reason;
  box.dataset.status = String(d.status);
  $("verdict").textContent = monitored ? "ALLOWED (monitor mode: would deny)" : d.allow ? "ALLOWED" : "DENIED";
  $("status-line").textContent = `${d.status} · ${d.reason}`;
  $("reasons").innerHTML = d.reasons.map((r) => `<span class="chip">${escape(r)}</span>`).join("");
  const facts = [["mode", d.mode], ["verdict", d.verdict]];
  if (d.rule) facts.push(["rule", d.rule]);
  for (const [name, value] of Object.entries(d.headers ?? {})) facts.push([d.allow ? `upstream ${name}` : `reply ${name}`, value]);
  if (d.detail) facts.push(["detail", d.detail]);
  $("decision-facts").innerHTML = facts.map(([k, v]) => `<dt>${escape(k)}</dt><dd>${escape(String(v))}</dd>`).join("");
  showJson($("decision-json"), d);

  $("steps").innerHTML = out.steps
    .map((s) => `<li class="${s.status}" data-step="${s.id}"><span class="icon" aria-label="${s.status}">${ICONS[s.status]}</span>` +
      `<span class="title">${escape(s.title)}</span><span class="detail">${rich(s.detail)}</span></li>`)
    .join("");

  const token = out.token;
  showJson($("token-header"), token?.header);
  showJson($("token-claims"), token?.claims);
  showTimes(token?.claims, nowValue());
  $("token-problems").hidden = !token?.problems?.length;
  $("token-problems").textContent = token?.problems?.length ? `Could not decode: ${token.problems.join("; ")}` : "";

  showJson($("rego-input"), out.policy_input);
  $("entrypoint").textContent = out.policy_entrypoint
    ? `for ${out.policy_entrypoint}`
    : "(the policy did not run: an earlier step decided)";
}

function showFailure(message) {
  const box = $("decision");
  box.dataset.state = "error";
  box.dataset.allow = "";
  box.dataset.reason = "";
  $("verdict").textContent = "Cannot check";
  $("status-line").textContent = message;
  $("reasons").innerHTML = "";
  $("decision-facts").innerHTML = "";
  $("decision-json").textContent = "";
  $("steps").innerHTML = "";
  for (const id of ["token-header", "token-claims", "rego-input"]) $(id).textContent = "—";
  $("token-times").textContent = "";
}

// --- actions -----------------------------------------------------------------

function check() {
  let cfg;
  try {
    cfg = config();
  } catch (err) {
    setConfigStatus(false, err.message);
    showFailure(err.message);
    return;
  }
  const loaded = ag.checkConfig(cfg);
  if (!loaded.ok) {
    setConfigStatus(false, loaded.error);
    showFailure("the config is refused (see the config box)");
    return;
  }
  const keys = loaded.keys.map((k) => (k.kid ? `${k.alg} (${k.kid})` : k.alg)).join(", ");
  const entry = loaded.entrypoints.length ? `; policy ${loaded.entrypoints.join(", ")}` : "; no policy";
  setConfigStatus(true, `Config loads: keys ${keys}${entry}; token in ${loaded.token_header}.`);
  try {
    const token = $("token").value.trim() || null;
    showExplanation(ag.explain(cfg, token, request(), nowValue()));
  } catch (err) {
    showFailure(err.message);
  }
}

function setConfigStatus(ok, text) {
  const el = $("config-status");
  el.className = `config-status ${ok ? "ok" : "bad"}`;
  el.textContent = text;
}

let timer;
function scheduleCheck() {
  if (!$("auto").checked) return;
  clearTimeout(timer);
  timer = setTimeout(check, 250);
}

/** Mints from the claims editor with the chosen key; `iatAgo` backdates `iat`. */
function mint(iatAgo = 0) {
  const error = $("mint-error");
  error.hidden = true;
  try {
    const claims = JSON.parse($("claims").value);
    if (iatAgo) claims.iat = nowValue() - iatAgo;
    const key = $("signing-key").value === "forged" ? FORGED_SECRET : signingSecret();
    $("token").value = ag.mint(key, claims, { expIn: Number($("exp-in").value), now: nowValue() });
  } catch (err) {
    error.textContent = `Cannot mint: ${err.message}`;
    error.hidden = false;
  }
}

function signingSecret() {
  try {
    return JSON.parse($("config").value).keys.approov_secret ?? DEMO_SECRET;
  } catch {
    return DEMO_SECRET;
  }
}

function pickScenario(scenario, button) {
  for (const b of document.querySelectorAll("#scenarios button")) b.setAttribute("aria-pressed", String(b === button));
  const claims = scenario.claims();
  if (scenario.bind) {
    const headers = scenario.bind === true ? request().headers : [["authorization", scenario.bind]];
    const pay = ag.bindingHash(["authorization"], { headers });
    if (pay) claims.pay = pay;
  }
  $("claims").value = JSON.stringify(claims, null, 2);
  $("exp-in").value = String(scenario.expIn ?? 300);
  $("signing-key").value = scenario.key ?? "demo";
  mint(scenario.iatAgo ?? 0);
  check();
}

async function loadPreset(next) {
  preset = next;
  $("preset-about").textContent = next.about;
  $("config").value = JSON.stringify(next.config, null, 2);
  $("method").value = next.request.method;
  $("path").value = next.request.path;
  $("headers").value = next.request.headers;
  const modules = $("modules");
  modules.innerHTML = "";
  for (const path of next.modules) {
    const details = document.createElement("details");
    details.open = next.modules.length === 1 || path !== "policies/device_trust.rego";
    const summary = document.createElement("summary");
    summary.textContent = fileName(path);
    const area = document.createElement("textarea");
    area.className = "mono";
    area.rows = 18;
    area.spellcheck = false;
    area.dataset.name = fileName(path);
    area.value = await source(path);
    area.addEventListener("input", scheduleCheck);
    details.append(summary, area);
    modules.append(details);
  }
  $("test-status").textContent = "";
  $("test-failures").hidden = true;
  const scenarios = $("scenarios");
  scenarios.innerHTML = "";
  for (const scenario of next.scenarios) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = scenario.label;
    button.addEventListener("click", () => pickScenario(scenario, button));
    scenarios.append(button);
  }
  pickScenario(next.scenarios[0], scenarios.querySelector("button"));
}

async function runTests() {
  const status = $("test-status");
  const failures = $("test-failures");
  try {
    const modules = [...document.querySelectorAll("#modules textarea")].map((a) => [a.dataset.name, a.value]);
    // payments_test.rego also needs device_trust.rego, which the payments example loads.
    for (const path of preset.tests) modules.push([fileName(path), await source(path)]);
    const out = ag.testPolicies(modules);
    status.textContent = `${out.passed} passed, ${out.failed} failed`;
    status.className = out.failed ? "bad" : "ok";
    const failed = out.tests.filter((t) => !t.passed);
    failures.hidden = !failed.length;
    failures.textContent = failed.map((t) => `FAIL ${t.name}${t.error ? `: ${t.error}` : ""}`).join("\n");
  } catch (err) {
    status.textContent = err.message;
    status.className = "bad";
  }
}

function setNow(seconds) {
  $("now").value = String(seconds);
  $("now-human").textContent = new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

// For the browser test: every demo token and the outcome it is there to show.
window.attestgatePlayground = {
  presets: PRESETS.map((p) => ({ id: p.id, scenarios: p.scenarios.map((s) => ({ label: s.label, expect: s.expect })) })),
};

async function main() {
  await init();
  $("version").textContent = ag.version();
  setNow(Math.floor(Date.now() / 1000));
  const select = $("preset");
  for (const p of PRESETS) select.append(new Option(p.title, p.id));
  select.addEventListener("change", () => loadPreset(PRESETS.find((p) => p.id === select.value)));
  $("check").addEventListener("click", check);
  $("mint").addEventListener("click", () => { mint(); check(); });
  $("run-tests").addEventListener("click", runTests);
  $("now-reset").addEventListener("click", () => { setNow(Math.floor(Date.now() / 1000)); check(); });
  $("now").addEventListener("input", () => { setNow(nowValue()); scheduleCheck(); });
  for (const id of ["token", "config", "method", "path", "headers"]) $(id).addEventListener("input", scheduleCheck);
  $("auto").addEventListener("change", scheduleCheck);
  await loadPreset(PRESETS[0]);
  $("load-status").hidden = true;
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  $("load-status").textContent = `The playground failed to start: ${err.message}`;
  $("load-status").classList.add("error");
});
