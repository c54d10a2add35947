// The playground in headless Chromium (Debian's chromium, driven by playwright-core): it is
// served from localhost as `make playground` serves it (static files from build/playground),
// a token is pasted and checked, and the decision shown is asserted for an allowed and a denied
// token and for a preset switch. Screenshots go to build/playground*.png.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { ag, read, repo } from "./attestgate.mjs";

const root = join(repo, "build", "playground");
const NOW = 1_700_000_000;
const DEMO_SECRET = "1vZVAyqbr8etmMxKkJkbOhlfxFyy2gTBgpLM+v491g8="; // envoy-examples/quickstart
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".rego": "text/plain" };

let server;
let browser;
let page;
let userDataDir;
let url;
const problems = [];

before(async () => {
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const body = readFileSync(join(root, path.endsWith("/") ? `${path}index.html` : path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "text/html" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${server.address().port}/`;
  userDataDir = mkdtempSync(join(tmpdir(), "attestgate-chromium-"));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  page = await browser.newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => msg.type() === "error" && problems.push(`console: ${msg.text()}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** Pastes a token, sets the clock, clicks Check and reads what the page shows. */
async function checkToken(token) {
  await page.fill("#now", String(NOW));
  await page.fill("#token", token);
  await page.click("#check");
  return shown();
}

async function shown() {
  return page.evaluate(() => {
    const box = document.getElementById("decision");
    return {
      state: box.dataset.state,
      reason: box.dataset.reason,
      verdict: document.getElementById("verdict").textContent,
      status: document.getElementById("status-line").textContent,
      reasons: [...document.querySelectorAll("#reasons .chip")].map((c) => c.textContent),
      facts: document.getElementById("decision-facts").textContent,
      steps: [...document.querySelectorAll("#steps li")].map((li) => `${li.dataset.step}:${li.className}`),
      claims: document.getElementById("token-claims").textContent,
      input: document.getElementById("rego-input").textContent,
    };
  });
}

const claims = (name) => JSON.parse(read(`envoy-examples/quickstart/claims/${name}.json`));

test("a pasted good token is allowed", { timeout: 60_000 }, async () => {
  const token = ag.mint(DEMO_SECRET, claims("good"), { expIn: 300, now: NOW });
  const out = await checkToken(token);
  assert.equal(out.verdict, "ALLOWED");
  assert.equal(out.status, "200 · allowed");
  assert.equal(out.state, "allow");
  assert.equal(out.steps.length, 15);
  assert.ok(out.steps.every((s) => s.endsWith(":passed")), out.steps.join(" "));
  assert.match(out.claims, /demo-device-0001/);
  assert.match(out.input, /"method": "GET"/);
  assert.match(out.facts, /upstream x-device-id.*demo-device-0001/);
  await page.screenshot({ path: join(repo, "build", "playground.png"), fullPage: true });
});

test("a pasted rooted token is denied by the policy", { timeout: 60_000 }, async () => {
  const token = ag.mint(DEMO_SECRET, claims("rooted"), { expIn: 300, now: NOW });
  const out = await checkToken(token);
  assert.equal(out.verdict, "DENIED");
  assert.equal(out.status, "403 · policy_denied");
  assert.deepEqual(out.reasons, ["device_rooted", "hooking_detected", "integrity_not_met"]);
  assert.ok(out.steps.includes("policy:failed"), out.steps.join(" "));
  assert.equal(out.steps.at(-1), "mode:skipped");
  await page.screenshot({ path: join(repo, "build", "playground-denied.png"), fullPage: true });
});

test("a token signed with another key fails at the signature step", { timeout: 60_000 }, async () => {
  const forged = ag.mint(btoa("not-the-attestation-service-secret"), claims("good"), { expIn: 300, now: NOW });
  const out = await checkToken(forged);
  assert.equal(out.status, "401 · signature_invalid");
  assert.ok(out.steps.includes("signature:failed"), out.steps.join(" "));
  assert.match(out.claims, /demo-device-0001/); // still decoded, marked unverified
  assert.equal(out.input, "—");
});

test("the step-up example: a demo token, a 401 challenge, and its Rego tests", { timeout: 60_000 }, async () => {
  await page.selectOption("#preset", "step_up");
  await page.click('#scenarios button:has-text("Medium risk (50)")');
  const out = await shown();
  assert.equal(out.status, "401 · policy_denied");
  assert.deepEqual(out.reasons, ["step_up_required"]);
  assert.match(out.facts, /reply www-authenticate.*StepUp realm="attestgate"/);
  await page.click("#run-tests");
  await page.waitForFunction(() => /passed/.test(document.getElementById("test-status").textContent));
  assert.match(await page.textContent("#test-status"), /^\d+ passed, 0 failed$/);
});

test("every demo token of every example shows the outcome it is there for", { timeout: 120_000 }, async () => {
  const presets = await page.evaluate(() => window.attestgatePlayground.presets);
  assert.equal(presets.length, 5);
  let seen = 0;
  for (const preset of presets) {
    await page.selectOption("#preset", preset.id);
    await page.waitForFunction((label) => document.querySelector("#scenarios button")?.textContent === label, preset.scenarios[0].label);
    for (const scenario of preset.scenarios) {
      await page.click(`#scenarios button:text-is("${scenario.label}")`);
      const out = await shown();
      assert.equal(`${out.status}`, scenario.expect, `${preset.id}: ${scenario.label} (${out.reasons.join(", ")})`);
      seen += 1;
    }
  }
  assert.ok(seen >= 20, `only ${seen} demo tokens`);
});

test("a broken config is shown with the core's message", { timeout: 60_000 }, async () => {
  await page.fill("#config", '{"keys": {"approov_secret": "c2hvcnQ="}}');
  await page.click("#check");
  const status = await page.textContent("#config-status");
  assert.match(status, /weak key: HS256 secret is 5 bytes/);
  assert.equal((await shown()).state, "error");
});

test("no errors in the page", () => assert.deepEqual(problems, []));
