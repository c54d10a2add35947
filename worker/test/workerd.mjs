// Runs the Worker in real workerd (the npm package pinned in ../package.json) on loopback, in
// front of a local origin that records what it receives. Every wait is bounded.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const jsDir = resolve(process.env.ATTESTGATE_JS_DIR ?? join(repo, "build", "js"));
export const workerdBin = join(repo, "worker", "node_modules", ".bin", "workerd");

/**
 * `count` distinct loopback ports nobody listens on now. Every listener is held until all are
 * chosen: one closed at once may be handed out again, and two sockets on one port would
 * leave one Worker unreachable.
 */
async function freePorts(count) {
  const servers = [];
  for (let i = 0; i < count; i++) {
    const server = net.createServer();
    await new Promise((ok, fail) => server.once("error", fail).listen(0, "127.0.0.1", ok));
    servers.push(server);
  }
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((ok) => server.close(ok))));
  return ports;
}

/** The origin: answers 200 `{"origin":"ok"}` and records every request it receives. */
export async function startOrigin() {
  const received = [];
  // Node refuses over 16 KiB of headers by default; the corpus forwards a 40 KB one.
  const server = http.createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const pairs = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        pairs.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
      }
      received.push({ method: req.method, url: req.url, headers: pairs, body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"origin":"ok"}');
    });
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(0, "127.0.0.1", ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, received, close: () => new Promise((ok) => server.close(ok)) };
}

const capnpText = (s) => JSON.stringify(s); // only used for names and paths we choose

/**
 * Starts one workerd with one Worker per entry of `workers`, each on its own loopback socket.
 * Returns {urls: {name: url}, logs(), stop()}. An entry is {name, bindings: {NAME: text},
 * durableObjects, main}:
 *   - `durableObjects`: [{className, binding, service}]: without `service`, this Worker holds
 *     the Durable Object namespace of its exported class `className` (in memory), bound as
 *     `binding` if given; with `service` (another entry's name), `binding` is that Worker's
 *     namespace of `className`;
 *   - `main`: the source of another main module instead of the Worker (src/index.mjs).
 */
export async function startWorkerd(workers, { timeoutMs = 60_000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "attestgate-workerd-"));
  // The Worker's own modules (index.mjs and what it imports), as `make worker` copies them.
  const sources = readdirSync(join(repo, "worker", "src")).filter((f) => f.endsWith(".mjs")).sort();
  for (const file of sources) copyFileSync(join(repo, "worker", "src", file), join(dir, file));
  copyFileSync(join(jsDir, "attestgate_js.js"), join(dir, "attestgate_js.js"));
  copyFileSync(join(jsDir, "attestgate_js_bg.wasm"), join(dir, "attestgate_js_bg.wasm"));
  const services = [];
  const sockets = [];
  const urls = {};
  const ports = await freePorts(workers.length);
  const serviceOf = (name) => {
    const index = workers.findIndex((w) => w.name === name);
    if (index < 0) throw new Error(`no worker ${name}`);
    return `w${index}`;
  };
  for (const [i, worker] of workers.entries()) {
    const bindings = Object.entries(worker.bindings ?? {}).map(([name, value], j) => {
      const file = `w${i}-b${j}.txt`;
      writeFileSync(join(dir, file), value);
      return `(name = ${capnpText(name)}, text = embed ${capnpText(file)})`;
    });
    const namespaces = [];
    for (const { className, binding, service } of worker.durableObjects ?? []) {
      if (service === undefined) {
        namespaces.push(`(className = ${capnpText(className)}, uniqueKey = ${capnpText(`attestgate-w${i}-${className}`)})`);
      }
      if (binding === undefined) continue;
      const namespace = service === undefined
        ? capnpText(className)
        : `(className = ${capnpText(className)}, serviceName = ${capnpText(serviceOf(service))})`;
      bindings.push(`(name = ${capnpText(binding)}, durableObjectNamespace = ${namespace})`);
    }
    let modules = `
        ${["index.mjs", ...sources.filter((f) => f !== "index.mjs")].map((f) => `(name = ${capnpText(f)}, esModule = embed ${capnpText(f)}),`).join("\n        ")}
        (name = "attestgate_js.js", esModule = embed "attestgate_js.js"),
        (name = "attestgate_js_bg.wasm", wasm = embed "attestgate_js_bg.wasm"),`;
    if (worker.main !== undefined) {
      writeFileSync(join(dir, `w${i}-main.mjs`), worker.main);
      modules = `(name = "main.mjs", esModule = embed "w${i}-main.mjs"),`;
    }
    const storage = namespaces.length > 0
      ? `durableObjectNamespaces = [${namespaces.join(", ")}],
      durableObjectStorage = (inMemory = void),`
      : "";
    services.push(`(name = "w${i}", worker = (
      modules = [${modules}
      ],
      compatibilityDate = "2025-01-01",
      bindings = [${bindings.join(", ")}],
      ${storage}
      globalOutbound = "loopback",
    ))`);
    const port = ports[i];
    sockets.push(`(name = "s${i}", address = "127.0.0.1:${port}", http = (), service = "w${i}")`);
    urls[worker.name] = `http://127.0.0.1:${port}`;
  }
  services.push(`(name = "loopback", network = (allow = ["local"]))`);
  const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [${services.join(",\n")}],
  sockets = [${sockets.join(",\n")}],
);
`;
  writeFileSync(join(dir, "config.capnp"), config);

  let output = "";
  const child = spawn(workerdBin, ["serve", join(dir, "config.capnp"), "--verbose"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));

  const deadline = Date.now() + timeoutMs;
  for (const url of Object.values(urls)) {
    const port = Number(new URL(url).port);
    for (;;) {
      if (exited) throw new Error(`workerd exited (${JSON.stringify(exited)}):\n${output}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`workerd not listening within ${timeoutMs} ms:\n${output}`);
      }
      const up = await new Promise((ok) => {
        const s = net.connect(port, "127.0.0.1", () => (s.end(), ok(true)));
        s.on("error", () => ok(false));
      });
      if (up) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
  return {
    urls,
    logs: () => output,
    stop: async () => {
      if (!exited) {
        child.kill("SIGTERM");
        const gone = await Promise.race([
          new Promise((ok) => child.once("exit", () => ok(true))),
          new Promise((ok) => setTimeout(() => ok(false), 5_000)),
        ]);
        if (!gone) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Sends one request as given: the raw path, headers as [name, value] pairs in order (repeats
 * kept), over HTTP/1.1. Resolves {status, headers, body} within `timeoutMs`.
 */
export function send(base, { method = "GET", path = "/", headers = [], body } = {}, timeoutMs = 10_000) {
  const url = new URL(base);
  return new Promise((ok, fail) => {
    // With headers as an array Node adds no Host: send the test's authority, or the socket's.
    const hasHost = headers.some(([n]) => n.toLowerCase() === "host");
    const flat = [...(hasHost ? [] : ["host", url.host]), ...headers.flatMap(([n, v]) => [n, v])];
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method,
      path,
      headers: flat,
      agent: false,
      timeout: timeoutMs,
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", fail);
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", fail);
    });
    req.end(body);
  });
}

export { mkdirSync };
