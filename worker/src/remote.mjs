// Fetched documents in the Worker (`keys.remote`, `denylist.remote`): fetch() with the Cache
// API in front, the last good copy held in the isolate (inside the gate, `gate.setDocument`),
// refreshed in the background with ctx.waitUntil. The core parses and checks every body; this
// file only fetches, caches and schedules. Every wait is bounded by the source's timeout_ms.
//
// - An isolate's first request waits (at most timeout_ms) for the first copy, so a new isolate
//   does not refuse with keys_unavailable while one is on its way; later requests are decided
//   with the last good copy while a due refresh runs after the response.
// - A failed fetch (an error, a status other than 200, over max_bytes, a body the core
//   refuses) keeps the last good copy and is retried after 30 s (or the refresh interval, if
//   shorter), so an unreachable key server costs one bounded wait, not one per request.
// - An unknown kid (`key_not_found`) pulls the next JWKS fetch forward, once per refresh
//   interval, as Envoy and NGINX do: rotated keys are picked up early, forged kids cannot make
//   it fetch in a loop.
// - The Cache API (`caches.default`) shares a good copy between the isolates of a location for
//   the rest of its refresh interval; where there is no cache (workerd without a cache
//   service answers every match with a miss), each isolate fetches for itself.

import { readUpTo } from "./read.mjs";

const RETRY_MS = 30_000;
/** The header a cached copy carries: when it was fetched (ms since the epoch). */
const FETCHED_AT = "x-attestgate-fetched-at";

/**
 * The gate's fetches, checked for this host. `upstream` is where fetch() goes: `host:port`
 * (plain HTTP, as NGINX's and Kong's cosocket fetch it) or a URL `http(s)://host[:port]` with
 * no path; `authority` must be its host (and port), because fetch() sends the URL's host and no
 * other. Throws, naming the field, when a source does not fit.
 */
export function sourcesOf(gate) {
  return gate.remoteSources().map((source) => {
    const { field, upstream, authority, path } = source;
    const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(upstream);
    let base;
    try {
      base = new URL(hostPort ? `http://${upstream}` : upstream);
    } catch {
      base = undefined;
    }
    if (base === undefined || !["http:", "https:"].includes(base.protocol) || base.pathname !== "/" || base.search || base.hash || base.username || base.password) {
      throw new Error(`${field}.upstream must be host:port or http(s)://host[:port] in the Worker (where fetch() goes), not ${JSON.stringify(upstream)}`);
    }
    // The URL's host drops a scheme's default port: compare with it written out too.
    const hosts = [base.host, `${base.hostname}:${base.port || (base.protocol === "https:" ? 443 : 80)}`];
    if (!hosts.includes(authority.toLowerCase())) {
      throw new Error(`${field}.authority (${JSON.stringify(authority)}) must be the host of ${field}.upstream (${JSON.stringify(base.host)}) in the Worker: fetch() sends the URL's host`);
    }
    const url = new URL(base.origin + path);
    if (url.pathname + url.search !== path) {
      throw new Error(`${field}.path ${JSON.stringify(path)} would be fetched as ${JSON.stringify(url.pathname + url.search)}: write it as fetch() sends it`);
    }
    return {
      kind: source.kind,
      field,
      url: url.href,
      refreshMs: source.refresh_seconds * 1000,
      timeoutMs: source.timeout_ms,
      maxBytes: source.max_bytes,
      held: false,
      nextAt: 0,
      earlyAt: 0,
      pending: null,
    };
  });
}

/**
 * Before a decision: starts every due fetch of `state.sources`. Resolves once each source
 * has a copy or its first fetch has ended (each bounded by its timeout); a refresh of a source
 * that has a copy goes on after the response (`ctx.waitUntil`).
 */
export async function refreshDue(state, ctx, now = Date.now()) {
  const first = [];
  for (const source of state.sources) {
    if (source.pending === null && now >= source.nextAt) {
      source.pending = refresh(state, source).finally(() => {
        source.pending = null;
      });
      if (source.held) ctx?.waitUntil?.(source.pending);
    }
    if (source.pending !== null && !source.held) first.push(source.pending);
  }
  if (first.length > 0) await Promise.all(first);
}

/** After a decision: an unknown kid brings the next JWKS fetch forward, once per interval. */
export function afterDecision(state, decision, now = Date.now()) {
  if (decision?.reason !== "key_not_found") return;
  for (const source of state.sources) {
    if (source.kind === "jwks" && source.pending === null && now >= source.earlyAt) {
      source.earlyAt = now + source.refreshMs;
      source.nextAt = 0;
    }
  }
}

/** One fetch of one source: the cached copy if fresh, else the upstream's; never throws. */
async function refresh(state, source) {
  try {
    const cached = await fromCache(source);
    const fetchedAt = cached?.fetchedAt ?? Date.now();
    const body = cached?.body ?? (await fromUpstream(source));
    if (state.retired) return;
    let taken;
    try {
      taken = state.gate.setDocument(source.kind, body);
    } catch (err) {
      throw new Error(`refused: ${err?.message ?? err}`);
    }
    for (const message of taken.skipped) console.warn(`attestgate: ${source.field}: skipped a key: ${message}`);
    source.held = true;
    source.nextAt = fetchedAt + source.refreshMs;
    if (cached === undefined) await toCache(source, body, fetchedAt);
  } catch (err) {
    if (state.retired) return;
    const kept = source.held ? "keeping the last good copy" : "no copy yet";
    console.error(`attestgate: ${source.field}: fetching ${source.url} failed (${err?.message ?? err}); ${kept}`);
    source.nextAt = Date.now() + Math.min(RETRY_MS, source.refreshMs);
  }
}

/** The body from the upstream: a 200 within timeout_ms, at most max_bytes + 1 bytes read. */
async function fromUpstream(source) {
  const signal = AbortSignal.timeout(source.timeoutMs);
  const response = await fetch(source.url, {
    headers: { accept: "application/json" },
    redirect: "manual",
    signal,
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`status ${response.status}`);
  }
  // One byte over max_bytes is enough for the core to refuse it as too large.
  return readUpTo(response.body, source.maxBytes + 1);
}

/** The Cache API's copy when it is still within its refresh interval: {body, fetchedAt}. */
async function fromCache(source) {
  const cache = globalThis.caches?.default;
  if (cache === undefined) return undefined;
  try {
    const hit = await cache.match(source.url);
    if (hit === undefined) return undefined;
    const fetchedAt = Number(hit.headers.get(FETCHED_AT));
    if (!Number.isFinite(fetchedAt) || Date.now() >= fetchedAt + source.refreshMs) {
      await hit.body?.cancel();
      return undefined;
    }
    return { body: await readUpTo(hit.body, source.maxBytes + 1), fetchedAt };
  } catch (err) {
    console.warn(`attestgate: ${source.field}: the Cache API failed (${err?.message ?? err}); fetching`);
    return undefined;
  }
}

/** Shares a good copy with the location's other isolates until its refresh is due. */
async function toCache(source, body, fetchedAt) {
  const cache = globalThis.caches?.default;
  if (cache === undefined) return;
  const seconds = Math.max(1, Math.floor((fetchedAt + source.refreshMs - Date.now()) / 1000));
  try {
    await cache.put(
      source.url,
      new Response(body, {
        headers: {
          "content-type": "application/json",
          "cache-control": `max-age=${seconds}`,
          [FETCHED_AT]: String(fetchedAt),
        },
      }),
    );
  } catch (err) {
    console.warn(`attestgate: ${source.field}: the Cache API failed (${err?.message ?? err})`);
  }
}
