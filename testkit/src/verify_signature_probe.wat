;; A proxy-wasm module that hands a list of `verify_signature` calls to its host and logs the
;; answers: how the tests hold Envoy's own verifier (and the harness's stand-in for it) to
;; Project Wycheproof, with the arguments exactly as the filter encodes them.
;;
;; Plugin configuration: hex text of records `u32 little-endian length, VerifySignatureArguments`.
;; At configure it calls `verify_signature` once per record and logs (info) one line,
;; `verify_signature: ` and then a character per record: `1` result true, `0` result false,
;; `E` the call failed (its status not Ok). The HTTP callbacks do nothing (Continue).
(module
  (import "env" "proxy_get_buffer_bytes"
    (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function"
    (func $call_foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))

  (memory (export "memory") 256)
  ;; 0..64: scratch (out pointers); 64..: the function name and the log prefix; from 1 MiB a
  ;; bump allocator for what the host hands back.
  (data (i32.const 64) "verify_signature")
  (data (i32.const 96) "verify_signature: ")
  (global $next (mut i32) (i32.const 1048576))

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_tick") (param i32))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32))

  (func $alloc (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 15))
                               (i32.const -16)))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (i32.sub (global.get $next)
                     (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (local.get $at))

  ;; A hex digit's value.
  (func $nibble (param $c i32) (result i32)
    (if (result i32) (i32.le_u (local.get $c) (i32.const 57))
      (then (i32.sub (local.get $c) (i32.const 48)))
      (else (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 87)))))

  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (local $hex i32) (local $bytes i32) (local $len i32) (local $i i32)
    (local $at i32) (local $end i32) (local $record i32) (local $out i32) (local $n i32)
    (local $status i32) (local $answer i32) (local $answer_len i32) (local $verdict i32)
    ;; The configuration (PluginConfiguration = 7), hex.
    (if (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4))
      (then (return (i32.const 0))))
    (local.set $hex (i32.load (i32.const 0)))
    (local.set $len (i32.div_u (i32.load (i32.const 4)) (i32.const 2)))
    (local.set $bytes (call $alloc (local.get $len)))
    (block $done
      (loop $decode
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (local.get $bytes) (local.get $i))
          (i32.or
            (i32.shl (call $nibble (i32.load8_u (i32.add (local.get $hex) (i32.shl (local.get $i) (i32.const 1)))))
                     (i32.const 4))
            (call $nibble (i32.load8_u (i32.add (local.get $hex)
                     (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $decode)))
    ;; One answer character per record, after the prefix.
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 32))))
    (memory.copy (local.get $out) (i32.const 96) (i32.const 18))
    (local.set $n (i32.const 18))
    (local.set $at (local.get $bytes))
    (local.set $end (i32.add (local.get $bytes) (local.get $len)))
    (block $last
      (loop $each
        (br_if $last (i32.ge_u (i32.add (local.get $at) (i32.const 4)) (local.get $end)))
        (local.set $record (i32.load (local.get $at)))
        (i32.store (i32.const 8) (i32.const 0))
        (i32.store (i32.const 12) (i32.const 0))
        (local.set $status (call $call_foreign (i32.const 64) (i32.const 16)
          (i32.add (local.get $at) (i32.const 4)) (local.get $record) (i32.const 8) (i32.const 12)))
        (local.set $answer (i32.load (i32.const 8)))
        (local.set $answer_len (i32.load (i32.const 12)))
        ;; `result = true` is the two bytes 08 01 (proto3 leaves out an empty `error`).
        (local.set $verdict
          (if (result i32) (local.get $status)
            (then (i32.const 69))
            (else (if (result i32) (i32.and (i32.ge_u (local.get $answer_len) (i32.const 2))
                                            (i32.eq (i32.load16_u (local.get $answer)) (i32.const 264)))
                    (then (i32.const 49)) (else (i32.const 48))))))
        (i32.store8 (i32.add (local.get $out) (local.get $n)) (local.get $verdict))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $at (i32.add (local.get $at) (i32.add (local.get $record) (i32.const 4))))
        (br $each)))
    (drop (call $log (i32.const 2) (local.get $out) (local.get $n)))
    (i32.const 1))
)
