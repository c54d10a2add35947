/*
 * attestgate.h: the C API of libattestgate.so, the attestgate core as a native library.
 *
 * A host (NGINX through LuaJIT's FFI: native/lua/attestgate.lua) loads a gate from its JSON
 * config once, then asks it about each request and carries out the answer: go on upstream
 * after removing and setting request headers, or answer locally with the status, the headers
 * and the JSON body. The planning is the one every attestgate host uses
 * (attestgate_policy::plan), so NGINX strips, sets and refuses exactly as Envoy does.
 *
 * Rules of the boundary:
 * - Strings are byte pointers with a length (no NUL terminator needed); a NULL pointer is
 *   allowed only with length 0. Request text that is not UTF-8 is read lossily (U+FFFD), as
 *   the proxy-wasm filter does; the config must be UTF-8.
 * - Lengths are capped (ATTESTGATE_MAX_*); a longer input is refused with
 *   ATTESTGATE_ERR_TOO_LARGE, never read.
 * - Every function returns a status code (0 = ATTESTGATE_OK) or a documented value, and never
 *   unwinds into the caller. Errors may come with a message (attestgate_string_free frees it).
 * - A gate keeps its per-worker decision cache: use a gate from the thread that created it
 *   (any other thread gets ATTESTGATE_ERR_THREAD). A forked child (an NGINX worker) holds its
 *   own copy, cache included.
 * - Everything the library allocates has a free function; free functions accept NULL.
 */
#ifndef ATTESTGATE_H
#define ATTESTGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define ATTESTGATE_OK 0
#define ATTESTGATE_ERR_NULL (-1)      /* a required pointer is NULL (or NULL with a length) */
#define ATTESTGATE_ERR_UTF8 (-2)      /* the config is not UTF-8 */
#define ATTESTGATE_ERR_TOO_LARGE (-3) /* a length over its cap */
#define ATTESTGATE_ERR_CONFIG (-4)    /* the gate refuses the config (the message says why) */
#define ATTESTGATE_ERR_THREAD (-5)    /* the gate was created on another thread */
#define ATTESTGATE_ERR_INTERNAL (-6)  /* a bug inside the library: fail closed */
#define ATTESTGATE_ERR_DOCUMENT (-7)  /* a fetched document refused: the last good one is kept */

/* Kinds of fetched documents. */
#define ATTESTGATE_DOC_JWKS 1         /* keys.remote */
#define ATTESTGATE_DOC_DENYLIST 2     /* denylist.remote */

/* Caps on what the library reads. */
#define ATTESTGATE_MAX_CONFIG_BYTES (64u << 20) /* config JSON */
#define ATTESTGATE_MAX_FIELD_BYTES (16u << 20)  /* one method, path, host, name or value */
#define ATTESTGATE_MAX_HEADERS 16384u           /* header fields of one request */
#define ATTESTGATE_MAX_BODY_BYTES (256u << 20)  /* a body handed over (only the route's */
                                                /* max_body_bytes + 1 are read) */
#define ATTESTGATE_MAX_DOCUMENT_BYTES (64u << 20) /* a fetched document (max_bytes first) */

/* A byte string: ptr may be NULL only when len is 0. */
typedef struct attestgate_str {
    const char *ptr;
    size_t len;
} attestgate_str;

/* One header field. */
typedef struct attestgate_header {
    attestgate_str name;
    attestgate_str value;
} attestgate_header;

/* One request, as the host read it. */
typedef struct attestgate_request {
    attestgate_str method;            /* "GET" */
    attestgate_str path;              /* the request target as received, query included */
    attestgate_str host;              /* Host / :authority (a "host" header overrides it) */
    const attestgate_header *headers; /* in arrival order; repeated names repeat */
    size_t headers_len;
    attestgate_str client_addr;       /* "203.0.113.7", with or without a port; len 0: none */
    const uint8_t *body;              /* the request body, when has_body is 1 */
    size_t body_len;
    int has_body;                     /* 1: body/body_len is the complete body */
    int64_t now;                      /* unix seconds: the host's clock */
} attestgate_request;

/* The answer; read-only, owned by the library until attestgate_decision_free. */
typedef struct attestgate_decision {
    int allow;                        /* 1: go on upstream; 0: answer locally */
    int monitored;                    /* 1: monitor mode let a denial through */
    uint16_t status;                  /* 200 when allowed; the reply status otherwise */
    attestgate_str reason;            /* stable reason code: "allowed", "token_expired", ... */
    attestgate_str body;              /* the JSON reply body of a denial (empty when allowed) */
    const attestgate_str *remove;     /* allowed: request headers to remove (lower case) */
    size_t remove_len;
    const attestgate_header *set;     /* allowed: request headers to set, after removing; */
    size_t set_len;                   /* denied: the reply's headers (content-type included) */
    const attestgate_str *counters;   /* the counters this decision increments, by name: */
    size_t counters_len;              /* "attestgate.allowed", "attestgate.denied.<reason>", */
                                      /* "attestgate.cache.hits", ... (as the Envoy filter's) */
    attestgate_str record;            /* the decision record as one JSON object (the core's */
                                      /* DecisionRecord: verdict, allowed, mode, status, */
                                      /* reason, policy_reasons, ..., device, platform, */
                                      /* app_version, cache): what a host logs */
    const attestgate_header *record_fields; /* the same record as text, in DecisionRecord */
    size_t record_fields_len;         /* ::FIELDS order (name, value): absent values empty, */
                                      /* booleans true/false, policy reasons joined with "," */
} attestgate_decision;

/* Where a fetched document comes from, as the config says (views into the gate). */
typedef struct attestgate_remote_source {
    attestgate_str upstream;          /* host:port */
    attestgate_str authority;         /* the request's Host */
    attestgate_str path;              /* the request target */
    uint32_t refresh_seconds;         /* seconds between fetches */
    uint32_t timeout_ms;              /* how long one fetch may take */
    size_t max_bytes;                 /* the largest body accepted */
} attestgate_remote_source;

typedef struct attestgate_gate attestgate_gate;

/* The library's version, a static NUL-terminated string ("0.1.0"). */
const char *attestgate_version(void);

/*
 * Loads a gate from its JSON config (the filter's config). On success *out is the gate; on
 * error *out is NULL and, when error is not NULL, *error is a message (free it with
 * attestgate_string_free).
 */
int attestgate_gate_new(const char *config, size_t config_len, attestgate_gate **out,
                        attestgate_str **error);

/* Frees a gate (NULL is fine). */
void attestgate_gate_free(attestgate_gate *gate);

/*
 * The gate's load log line about its policy: which entrypoints run as a compiled plan and which
 * stay interpreted, with the construct and file:line that kept them so. Empty without a policy
 * (or for NULL). The bytes live as long as the gate.
 */
attestgate_str attestgate_gate_policy_summary(const attestgate_gate *gate);

/*
 * Whether the request must be decided on its body (a signature it carries covers
 * content-digest): *needs_body is 1 or 0, and *max_body_bytes the most body bytes the route
 * reads (a longer body is denied with body_too_large). The body fields are not read.
 */
int attestgate_needs_body(const attestgate_gate *gate, const attestgate_request *request,
                          int *needs_body, size_t *max_body_bytes);

/*
 * Decides a request through the gate's decision cache. On success *out is the decision (free
 * it with attestgate_decision_free). On error *out is NULL: the host must refuse the request
 * (fail closed), e.g. with 500.
 */
int attestgate_decide(const attestgate_gate *gate, const attestgate_request *request,
                      attestgate_decision **out, attestgate_str **error);

/*
 * Where the gate's document of `kind` (ATTESTGATE_DOC_*) is fetched from: *present is 1 and
 * *out filled when the config has that source (keys.remote, denylist.remote), else 0. The
 * strings live as long as the gate. The library fetches nothing: the host does, on its timer.
 */
int attestgate_gate_remote(const attestgate_gate *gate, int kind, attestgate_remote_source *out,
                           int *present);

/*
 * Hands the gate the body of a good (200) response to its fetch of `kind`. A JWKS with a
 * usable key or a denylist {"devices": [...]} replaces what the gate held (a changed one
 * empties the decision cache); anything else, or more than the source's max_bytes, is
 * ATTESTGATE_ERR_DOCUMENT with a message, and the gate keeps its last good document.
 */
int attestgate_gate_set_document(const attestgate_gate *gate, int kind, const uint8_t *body,
                                 size_t body_len, attestgate_str **error);

/* Frees a decision (NULL is fine). */
void attestgate_decision_free(attestgate_decision *decision);

/* Frees an error message (NULL is fine). */
void attestgate_string_free(attestgate_str *string);

#ifdef __cplusplus
}
#endif

#endif /* ATTESTGATE_H */
