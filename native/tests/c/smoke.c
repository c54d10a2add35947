/* A C host of libattestgate.so (native/tests/c_abi.rs): prints the header's struct layouts for
 * the Rust side to compare, then loads a gate and decides one request. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "attestgate.h"

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))

static attestgate_str s(const char *text) {
    attestgate_str v = {text, strlen(text)};
    return v;
}

int main(int argc, char **argv) {
    SIZE(attestgate_str);
    SIZE(attestgate_header);
    SIZE(attestgate_request);
    SIZE(attestgate_decision);
    OFF(attestgate_request, headers);
    OFF(attestgate_request, headers_len);
    OFF(attestgate_request, client_addr);
    OFF(attestgate_request, body);
    OFF(attestgate_request, has_body);
    OFF(attestgate_request, now);
    OFF(attestgate_decision, status);
    OFF(attestgate_decision, reason);
    OFF(attestgate_decision, body);
    OFF(attestgate_decision, remove);
    OFF(attestgate_decision, set);
    OFF(attestgate_decision, set_len);
    OFF(attestgate_decision, counters);
    OFF(attestgate_decision, counters_len);
    OFF(attestgate_decision, record);
    OFF(attestgate_decision, record_fields);
    OFF(attestgate_decision, record_fields_len);
    SIZE(attestgate_remote_source);
    OFF(attestgate_remote_source, path);
    OFF(attestgate_remote_source, refresh_seconds);
    OFF(attestgate_remote_source, timeout_ms);
    OFF(attestgate_remote_source, max_bytes);
    if (argc < 2) {
        return 2;
    }
    printf("version %s\n", attestgate_version());

    attestgate_gate *gate = NULL;
    attestgate_str *error = NULL;
    const char *bad = "{\"modee\":1}";
    int code = attestgate_gate_new(bad, strlen(bad), &gate, &error);
    printf("bad %d %.*s\n", code, error ? (int)error->len : 0, error ? error->ptr : "");
    attestgate_string_free(error);

    code = attestgate_gate_new(argv[1], strlen(argv[1]), &gate, &error);
    if (code != ATTESTGATE_OK) {
        printf("gate %d %.*s\n", code, (int)error->len, error->ptr);
        return 1;
    }
    attestgate_header headers[] = {{s("X-Device-Id"), s("spoofed")}};
    attestgate_request request = {0};
    request.method = s("GET");
    request.path = s("/v1/shapes");
    request.host = s("api.example.com");
    request.headers = headers;
    request.headers_len = 1;
    request.now = 1700000000;
    attestgate_decision *decision = NULL;
    code = attestgate_decide(gate, &request, &decision, &error);
    if (code != ATTESTGATE_OK) {
        printf("decide %d\n", code);
        return 1;
    }
    printf("decision %d %u %.*s %.*s\n", decision->allow, decision->status,
           (int)decision->reason.len, decision->reason.ptr, (int)decision->body.len,
           decision->body.ptr);
    for (size_t i = 0; i < decision->set_len; i++) {
        printf("header %.*s: %.*s\n", (int)decision->set[i].name.len, decision->set[i].name.ptr,
               (int)decision->set[i].value.len, decision->set[i].value.ptr);
    }
    for (size_t i = 0; i < decision->counters_len; i++) {
        printf("counter %.*s\n", (int)decision->counters[i].len, decision->counters[i].ptr);
    }
    printf("record %.*s\n", (int)decision->record.len, decision->record.ptr);
    for (size_t i = 0; i < decision->record_fields_len; i++) {
        printf("field %.*s=%.*s\n", (int)decision->record_fields[i].name.len,
               decision->record_fields[i].name.ptr, (int)decision->record_fields[i].value.len,
               decision->record_fields[i].value.ptr);
    }
    attestgate_decision_free(decision);
    attestgate_gate_free(gate);
    return 0;
}
