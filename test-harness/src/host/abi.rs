//! The host side of the proxy-wasm ABI 0.2.1 (with the 0.2.0 calls the Rust SDK uses) and
//! the few WASI preview1 calls a `wasm32-wasip1` filter imports.
//!
//! Every function reads and writes guest memory through bounds-checked helpers; a bad
//! pointer is answered with `InvalidMemoryAccess`, never a host panic. Calls the `kong`
//! profile lacks trap with "function not yet implemented", as ngx_wasm_module's do.

use rand::RngCore;
use wasmtime::{Caller, Error, Linker, Memory};

use super::state::{decode_pairs, decode_path, encode_pairs, HostState, SharedData};
use super::{LocalResponse, LogLine, PendingHttpCall, Profile};

type Cx<'a> = Caller<'a, HostState>;
type Ret = wasmtime::Result<i32>;

/// proxy-wasm result codes (the spec's `proxy_result_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

fn status(s: Status) -> Ret {
    Ok(s as i32)
}

/// WASI errno values used here.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

/// The trap a Kong host raises for a call ngx_wasm_module does not implement.
fn not_yet_implemented(name: &str) -> Error {
    Error::msg(format!("{name}: function not yet implemented"))
}

fn kong_lacks(caller: &Cx<'_>, name: &str) -> wasmtime::Result<()> {
    if caller.data().profile == Profile::Kong {
        return Err(not_yet_implemented(name));
    }
    Ok(())
}

fn memory(caller: &mut Cx<'_>) -> Option<Memory> {
    caller.get_export("memory").and_then(|e| e.into_memory())
}

fn addr(value: i32) -> usize {
    // Guest pointers and sizes are u32 in wasm32.
    value as u32 as usize
}

/// Reads `len` bytes at `ptr`, or `None` if the range is outside guest memory.
fn read(caller: &mut Cx<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = memory(caller)?;
    let start = addr(ptr);
    let end = start.checked_add(addr(len))?;
    memory.data(&*caller).get(start..end).map(<[u8]>::to_vec)
}

fn read_str(caller: &mut Cx<'_>, ptr: i32, len: i32) -> Option<String> {
    read(caller, ptr, len).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn write(caller: &mut Cx<'_>, ptr: i32, bytes: &[u8]) -> bool {
    match memory(caller) {
        Some(memory) => memory.write(&mut *caller, addr(ptr), bytes).is_ok(),
        None => false,
    }
}

fn write_u32(caller: &mut Cx<'_>, ptr: i32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `data` into memory the guest allocates and stores its address and size at the two
/// return pointers. Empty data is returned as a null pointer, as Envoy does.
fn return_bytes(caller: &mut Cx<'_>, data: &[u8], ptr_out: i32, size_out: i32) -> Ret {
    let mut address = 0u32;
    if !data.is_empty() {
        let Ok(size) = i32::try_from(data.len()) else {
            return status(Status::BadArgument);
        };
        let allocate = caller
            .get_export("proxy_on_memory_allocate")
            .and_then(|e| e.into_func())
            .ok_or_else(|| Error::msg("the guest exports no proxy_on_memory_allocate"))?
            .typed::<i32, i32>(&*caller)?;
        let pointer = allocate.call(&mut *caller, size)?;
        if pointer == 0 || !write(caller, pointer, data) {
            return status(Status::InvalidMemoryAccess);
        }
        address = pointer as u32;
    }
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    if !write_u32(caller, ptr_out, address) || !write_u32(caller, size_out, size) {
        return status(Status::InvalidMemoryAccess);
    }
    status(Status::Ok)
}

/// Header names as the host stores them: Envoy lower-cases, nginx keeps what it was given.
fn stored_name(profile: Profile, name: &str) -> String {
    match profile {
        Profile::Envoy => name.to_ascii_lowercase(),
        Profile::Kong => name.to_owned(),
    }
}

fn map_of(state: &mut HostState, map_type: i32) -> Option<&mut Vec<(String, String)>> {
    if map_type == 6 || map_type == 7 {
        let response = state.call_response.as_mut()?;
        return Some(if map_type == 6 {
            &mut response.headers
        } else {
            &mut response.trailers
        });
    }
    let stream = state.stream_mut()?;
    match map_type {
        0 => Some(&mut stream.request_headers),
        1 => Some(&mut stream.request_trailers),
        2 => Some(&mut stream.response_headers),
        3 => Some(&mut stream.response_trailers),
        _ => None,
    }
}

fn buffer_of(state: &mut HostState, buffer_type: i32) -> Option<&mut Vec<u8>> {
    match buffer_type {
        0 => state.stream_mut().map(|s| &mut s.request_body),
        1 => state.stream_mut().map(|s| &mut s.response_body),
        4 => state.call_response.as_mut().map(|r| &mut r.body),
        6 => Some(&mut state.vm_config),
        7 => Some(&mut state.plugin_config),
        _ => None,
    }
}

/// Envoy names an upstream by cluster; Kong by `host:port`.
fn upstream_known(state: &HostState, upstream: &str) -> bool {
    match state.profile {
        Profile::Envoy => state.clusters.iter().any(|c| c == upstream),
        Profile::Kong => match upstream.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty() && !port.is_empty() && port.parse::<u16>().is_ok()
            }
            None => false,
        },
    }
}

macro_rules! try_mem {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return status(Status::InvalidMemoryAccess),
        }
    };
}

/// Adds every host function to the linker.
pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    define_proxy(linker)?;
    define_wasi(linker)?;
    Ok(())
}

fn define_proxy(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    const M: &str = "env";

    linker.func_wrap(
        M,
        "proxy_log",
        |mut c: Cx<'_>, level: i32, ptr: i32, len: i32| -> Ret {
            let message = try_mem!(read_str(&mut c, ptr, len));
            let context = c.data().current;
            c.data_mut().logs.push(LogLine {
                level: super::LogLevel::from_i32(level),
                context,
                message,
            });
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(M, "proxy_get_log_level", |mut c: Cx<'_>, out: i32| -> Ret {
        kong_lacks(&c, "proxy_get_log_level")?;
        let level = c.data().log_level as u32;
        try_mem!(write_u32(&mut c, out, level).then_some(()));
        status(Status::Ok)
    })?;

    linker.func_wrap(
        M,
        "proxy_get_current_time_nanoseconds",
        |mut c: Cx<'_>, out: i32| -> Ret {
            let now = c.data().now_nanos();
            try_mem!(write(&mut c, out, &now.to_le_bytes()).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_tick_period_milliseconds",
        |mut c: Cx<'_>, period: i32| -> Ret {
            let state = c.data_mut();
            if period == 0 {
                state.tick_period = None;
                state.next_tick = None;
            } else {
                let period = std::time::Duration::from_millis(u64::from(period as u32));
                state.tick_period = Some(period);
                state.next_tick = Some(state.monotonic + period);
            }
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_buffer_bytes",
        |mut c: Cx<'_>, kind: i32, start: i32, max: i32, ptr_out: i32, size_out: i32| -> Ret {
            let slice = {
                let Some(buffer) = buffer_of(c.data_mut(), kind) else {
                    return status(Status::NotFound);
                };
                let start = addr(start).min(buffer.len());
                let end = start.saturating_add(addr(max)).min(buffer.len());
                buffer
                    .get(start..end)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            return_bytes(&mut c, &slice, ptr_out, size_out)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_buffer_bytes",
        |mut c: Cx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| -> Ret {
            let data = try_mem!(read(&mut c, ptr, len));
            let Some(buffer) = buffer_of(c.data_mut(), kind) else {
                return status(Status::NotFound);
            };
            let start = addr(start).min(buffer.len());
            let end = start.saturating_add(addr(size)).min(buffer.len());
            buffer.splice(start..end, data);
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_header_map_pairs",
        |mut c: Cx<'_>, map: i32, ptr_out: i32, size_out: i32| -> Ret {
            let Some(pairs) = map_of(c.data_mut(), map) else {
                return status(Status::NotFound);
            };
            let bytes = encode_pairs(pairs);
            return_bytes(&mut c, &bytes, ptr_out, size_out)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_header_map_pairs",
        |mut c: Cx<'_>, map: i32, ptr: i32, len: i32| -> Ret {
            let bytes = try_mem!(read(&mut c, ptr, len));
            let Some(mut new_pairs) = decode_pairs(&bytes) else {
                return status(Status::SerializationFailure);
            };
            let profile = c.data().profile;
            for (name, _) in &mut new_pairs {
                *name = stored_name(profile, name);
            }
            if let Some(upstream) = ngx_upstream(c.data_mut(), map) {
                // nginx: the old entries stay in its list and are forwarded; the new pairs
                // are added after them (read-only pseudo-headers are refused).
                upstream.extend(
                    new_pairs
                        .iter()
                        .filter(|(n, _)| !n.starts_with(':'))
                        .cloned(),
                );
            }
            let Some(pairs) = map_of(c.data_mut(), map) else {
                return status(Status::NotFound);
            };
            *pairs = new_pairs;
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_header_map_value",
        |mut c: Cx<'_>, map: i32, key: i32, key_len: i32, ptr_out: i32, size_out: i32| -> Ret {
            let key = try_mem!(read_str(&mut c, key, key_len));
            let Some(pairs) = map_of(c.data_mut(), map) else {
                return status(Status::NotFound);
            };
            let Some(value) = pairs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&key))
                .map(|(_, value)| value.clone())
            else {
                return status(Status::NotFound);
            };
            return_bytes(&mut c, value.as_bytes(), ptr_out, size_out)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_replace_header_map_value",
        |c: Cx<'_>, map: i32, key: i32, key_len: i32, value: i32, value_len: i32| -> Ret {
            put_header(c, map, (key, key_len), (value, value_len), true)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_add_header_map_value",
        |c: Cx<'_>, map: i32, key: i32, key_len: i32, value: i32, value_len: i32| -> Ret {
            put_header(c, map, (key, key_len), (value, value_len), false)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_remove_header_map_value",
        |mut c: Cx<'_>, map: i32, key: i32, key_len: i32| -> Ret {
            let key = try_mem!(read_str(&mut c, key, key_len));
            // nginx: the entry is hidden from the filter, but its proxy module still sends
            // it (`ngx_http_proxy_create_request` does not skip removed entries): the
            // upstream view keeps it.
            let Some(pairs) = map_of(c.data_mut(), map) else {
                return status(Status::NotFound);
            };
            pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(&key));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_property",
        |mut c: Cx<'_>, path: i32, path_len: i32, ptr_out: i32, size_out: i32| -> Ret {
            let path = decode_path(&try_mem!(read(&mut c, path, path_len)));
            let state = c.data();
            if state.profile == Profile::Kong && state.stream().is_none() && path.len() > 1 {
                // ngx_wasm_module: "cannot get scoped properties outside of a request".
                return status(Status::InternalFailure);
            }
            let value = state
                .stream()
                .and_then(|s| s.properties.get(&path))
                .or_else(|| state.root_properties.get(&path))
                .cloned();
            match value {
                Some(value) => return_bytes(&mut c, &value, ptr_out, size_out),
                None => status(Status::NotFound),
            }
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_property",
        |mut c: Cx<'_>, path: i32, path_len: i32, value: i32, value_len: i32| -> Ret {
            let raw = try_mem!(read(&mut c, path, path_len));
            let path = decode_path(&raw);
            let value = try_mem!(read(&mut c, value, value_len));
            let state = c.data_mut();
            let envoy = state.profile == Profile::Envoy;
            match state.stream_mut() {
                Some(stream) => {
                    if envoy {
                        // Envoy keeps it in the stream's filter state as `wasm.<path>`, the
                        // path's bytes as the guest sent them.
                        let key = format!("wasm.{}", String::from_utf8_lossy(&raw));
                        stream.filter_state.insert(key, value.clone());
                    }
                    stream.properties.insert(path, value)
                }
                None => state.root_properties.insert(path, value),
            };
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_shared_data",
        |mut c: Cx<'_>, key: i32, key_len: i32, ptr_out: i32, size_out: i32, cas_out: i32| -> Ret {
            let key = try_mem!(read_str(&mut c, key, key_len));
            let found = c.data().shared.lock().data.get(&key).cloned();
            let Some((value, cas)) = found else {
                return status(Status::NotFound);
            };
            let written = return_bytes(&mut c, &value, ptr_out, size_out)?;
            if written != Status::Ok as i32 {
                return Ok(written);
            }
            try_mem!(write_u32(&mut c, cas_out, cas).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_shared_data",
        |mut c: Cx<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: i32| -> Ret {
            let key = try_mem!(read_str(&mut c, key, key_len));
            let value = try_mem!(read(&mut c, value, value_len));
            let shared: SharedData = c.data().shared.clone();
            let mut inner = shared.lock();
            let cas = cas as u32;
            if cas != 0 {
                if let Some((_, current)) = inner.data.get(&key) {
                    if *current != cas {
                        return status(Status::CasMismatch);
                    }
                }
            }
            inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
            let next = inner.next_cas;
            inner.data.insert(key, (value, next));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_register_shared_queue",
        |mut c: Cx<'_>, name: i32, name_len: i32, id_out: i32| -> Ret {
            let name = try_mem!(read_str(&mut c, name, name_len));
            let id = {
                let shared = c.data().shared.clone();
                let mut inner = shared.lock();
                let next = u32::try_from(inner.queue_names.len() + 1).unwrap_or(u32::MAX);
                let id = *inner
                    .queue_names
                    .entry((String::new(), name))
                    .or_insert(next);
                inner.queues.entry(id).or_default();
                id
            };
            try_mem!(write_u32(&mut c, id_out, id).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_resolve_shared_queue",
        |mut c: Cx<'_>, vm: i32, vm_len: i32, name: i32, name_len: i32, id_out: i32| -> Ret {
            kong_lacks(&c, "proxy_resolve_shared_queue")?;
            let _vm_id = try_mem!(read_str(&mut c, vm, vm_len));
            let name = try_mem!(read_str(&mut c, name, name_len));
            // One VM id per host here: queues are found by name.
            let id = c
                .data()
                .shared
                .lock()
                .queue_names
                .get(&(String::new(), name))
                .copied();
            let Some(id) = id else {
                return status(Status::NotFound);
            };
            try_mem!(write_u32(&mut c, id_out, id).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_enqueue_shared_queue",
        |mut c: Cx<'_>, id: i32, ptr: i32, len: i32| -> Ret {
            let data = try_mem!(read(&mut c, ptr, len));
            let shared = c.data().shared.clone();
            let mut inner = shared.lock();
            match inner.queues.get_mut(&(id as u32)) {
                Some(queue) => {
                    queue.push_back(data);
                    status(Status::Ok)
                }
                None => status(Status::NotFound),
            }
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_dequeue_shared_queue",
        |mut c: Cx<'_>, id: i32, ptr_out: i32, size_out: i32| -> Ret {
            let item = {
                let shared = c.data().shared.clone();
                let mut inner = shared.lock();
                match inner.queues.get_mut(&(id as u32)) {
                    Some(queue) => queue.pop_front(),
                    None => return status(Status::NotFound),
                }
            };
            match item {
                Some(data) => return_bytes(&mut c, &data, ptr_out, size_out),
                None => status(Status::Empty),
            }
        },
    )?;

    linker.func_wrap(M, "proxy_continue_stream", |c: Cx<'_>, kind: i32| -> Ret {
        if c.data().profile == Profile::Kong && kind >= 2 {
            // "NYI - continue stream type: 2": an error status, not a trap.
            return status(Status::InternalFailure);
        }
        continue_current(c)
    })?;

    // ABI 0.1.0's name, which some SDKs still call.
    linker.func_wrap(M, "proxy_continue_response", |c: Cx<'_>| -> Ret {
        kong_lacks(&c, "proxy_continue_response")?;
        continue_current(c)
    })?;

    linker.func_wrap(
        M,
        "proxy_close_stream",
        |mut c: Cx<'_>, _kind: i32| -> Ret {
            kong_lacks(&c, "proxy_close_stream")?;
            match c.data_mut().stream_mut() {
                Some(stream) => {
                    stream.closed = true;
                    status(Status::Ok)
                }
                None => status(Status::BadArgument),
            }
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_send_local_response",
        |mut c: Cx<'_>,
         code: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32|
         -> Ret {
            let details = try_mem!(read_str(&mut c, details, details_len));
            let body = try_mem!(read(&mut c, body, body_len));
            let raw_headers = try_mem!(read(&mut c, headers, headers_len));
            let Some(headers) = decode_pairs(&raw_headers) else {
                return status(Status::SerializationFailure);
            };
            let Some(stream) = c.data_mut().stream_mut() else {
                return status(Status::BadArgument);
            };
            stream.local_response = Some(LocalResponse {
                status: code as u32,
                details,
                headers,
                body,
                grpc_status,
            });
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_http_call",
        |mut c: Cx<'_>,
         upstream: i32,
         upstream_len: i32,
         headers: i32,
         headers_len: i32,
         body: i32,
         body_len: i32,
         trailers: i32,
         trailers_len: i32,
         timeout_ms: i32,
         token_out: i32|
         -> Ret {
            let upstream = try_mem!(read_str(&mut c, upstream, upstream_len));
            let raw_headers = try_mem!(read(&mut c, headers, headers_len));
            let body = try_mem!(read(&mut c, body, body_len));
            let raw_trailers = try_mem!(read(&mut c, trailers, trailers_len));
            let (Some(headers), Some(trailers)) =
                (decode_pairs(&raw_headers), decode_pairs(&raw_trailers))
            else {
                return status(Status::SerializationFailure);
            };
            if !upstream_known(c.data(), &upstream) {
                return status(Status::BadArgument);
            }
            let has = |name: &str| headers.iter().any(|(n, _)| n == name);
            if !(has(":method") && has(":path")) {
                return status(Status::BadArgument);
            }
            let state = c.data_mut();
            state.next_token = state.next_token.wrapping_add(1).max(1);
            let token = state.next_token;
            let context = state.current;
            state.pending_calls.insert(
                token,
                PendingHttpCall {
                    token,
                    context,
                    upstream,
                    headers,
                    body,
                    trailers,
                    timeout_ms: timeout_ms as u32,
                },
            );
            try_mem!(write_u32(&mut c, token_out, token).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_grpc_call",
        |c: Cx<'_>,
         upstream: i32,
         upstream_len: i32,
         _service: i32,
         _service_len: i32,
         _method: i32,
         _method_len: i32,
         _meta: i32,
         _meta_len: i32,
         _message: i32,
         _message_len: i32,
         _timeout: i32,
         _token_out: i32|
         -> Ret { grpc_unsupported(c, "proxy_grpc_call", upstream, upstream_len) },
    )?;

    linker.func_wrap(
        M,
        "proxy_grpc_stream",
        |c: Cx<'_>,
         upstream: i32,
         upstream_len: i32,
         _service: i32,
         _service_len: i32,
         _method: i32,
         _method_len: i32,
         _meta: i32,
         _meta_len: i32,
         _token_out: i32|
         -> Ret { grpc_unsupported(c, "proxy_grpc_stream", upstream, upstream_len) },
    )?;

    linker.func_wrap(
        M,
        "proxy_grpc_send",
        |c: Cx<'_>, _token: i32, _ptr: i32, _len: i32, _end: i32| -> Ret {
            kong_lacks(&c, "proxy_grpc_send")?;
            status(Status::NotFound)
        },
    )?;
    linker.func_wrap(M, "proxy_grpc_cancel", |c: Cx<'_>, _token: i32| -> Ret {
        kong_lacks(&c, "proxy_grpc_cancel")?;
        status(Status::NotFound)
    })?;
    linker.func_wrap(M, "proxy_grpc_close", |c: Cx<'_>, _token: i32| -> Ret {
        kong_lacks(&c, "proxy_grpc_close")?;
        status(Status::NotFound)
    })?;

    linker.func_wrap(
        M,
        "proxy_get_status",
        |mut c: Cx<'_>, code_out: i32, ptr_out: i32, size_out: i32| -> Ret {
            kong_lacks(&c, "proxy_get_status")?;
            try_mem!(write_u32(&mut c, code_out, 0).then_some(()));
            return_bytes(&mut c, &[], ptr_out, size_out)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_set_effective_context",
        |mut c: Cx<'_>, id: i32| -> Ret {
            let id = id as u32;
            let state = c.data_mut();
            if id == state.root_id || state.streams.contains_key(&id) {
                state.current = id;
                status(Status::Ok)
            } else {
                status(Status::BadArgument)
            }
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_call_foreign_function",
        |mut c: Cx<'_>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         ptr_out: i32,
         size_out: i32|
         -> Ret {
            let name = try_mem!(read_str(&mut c, name, name_len));
            if c.data().profile == Profile::Kong {
                // ngx_wasm_module knows `resolve_lua` only and traps on anything else.
                return Err(Error::msg(format!("unknown foreign function `{name}`")));
            }
            if name != "verify_signature" {
                return status(Status::NotFound);
            }
            let arguments = try_mem!(read(&mut c, args, args_len));
            match super::foreign::verify_signature(c.data().verify_signature, &arguments) {
                Ok(answer) => {
                    c.data_mut().foreign_calls += 1;
                    return_bytes(&mut c, &answer, ptr_out, size_out)
                }
                Err(super::foreign::Refused::NotFound) => status(Status::NotFound),
                Err(super::foreign::Refused::BadArgument) => status(Status::BadArgument),
            }
        },
    )?;

    linker.func_wrap(M, "proxy_done", |c: Cx<'_>| -> Ret {
        kong_lacks(&c, "proxy_done")?;
        status(Status::Ok)
    })?;

    linker.func_wrap(
        M,
        "proxy_define_metric",
        |mut c: Cx<'_>, kind: i32, name: i32, name_len: i32, id_out: i32| -> Ret {
            let name = try_mem!(read_str(&mut c, name, name_len));
            if !(0..=2).contains(&kind) {
                return status(Status::BadArgument);
            }
            let metrics = &mut c.data_mut().metrics;
            let index = match metrics
                .iter()
                .position(|m| m.name == name && m.kind == kind)
            {
                Some(index) => index,
                None => {
                    metrics.push(super::state::Metric {
                        name,
                        kind,
                        value: 0,
                    });
                    metrics.len() - 1
                }
            };
            let id = u32::try_from(index).unwrap_or(u32::MAX);
            try_mem!(write_u32(&mut c, id_out, id).then_some(()));
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_increment_metric",
        |mut c: Cx<'_>, id: i32, offset: i64| -> Ret {
            let Some(metric) = c.data_mut().metrics.get_mut(addr(id)) else {
                return status(Status::NotFound);
            };
            if metric.kind == 2 {
                return status(Status::BadArgument);
            }
            metric.value = metric.value.saturating_add_signed(offset);
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_record_metric",
        |mut c: Cx<'_>, id: i32, value: i64| -> Ret {
            let Some(metric) = c.data_mut().metrics.get_mut(addr(id)) else {
                return status(Status::NotFound);
            };
            metric.value = value as u64;
            status(Status::Ok)
        },
    )?;

    linker.func_wrap(
        M,
        "proxy_get_metric",
        |mut c: Cx<'_>, id: i32, out: i32| -> Ret {
            let Some(value) = c.data().metrics.get(addr(id)).map(|m| m.value) else {
                return status(Status::NotFound);
            };
            try_mem!(write(&mut c, out, &value.to_le_bytes()).then_some(()));
            status(Status::Ok)
        },
    )?;

    Ok(())
}

/// Adds a header, or with `replace` first drops every value of that name.
fn put_header(
    mut c: Cx<'_>,
    map: i32,
    (key, key_len): (i32, i32),
    (value, value_len): (i32, i32),
    replace: bool,
) -> Ret {
    let key = try_mem!(read_str(&mut c, key, key_len));
    let value = try_mem!(read_str(&mut c, value, value_len));
    let name = stored_name(c.data().profile, &key);
    if let Some(upstream) = ngx_upstream(c.data_mut(), map) {
        ngx_put_upstream(upstream, &name, &value, replace);
    }
    let kong = c.data().profile == Profile::Kong;
    let Some(pairs) = map_of(c.data_mut(), map) else {
        return status(Status::NotFound);
    };
    let copies = pairs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(&key))
        .count();
    match (replace, copies) {
        // nginx replaces the one entry where it is.
        (true, 1) if kong => {
            if let Some(entry) = pairs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&key)) {
                entry.1 = value;
            }
        }
        // ngx_wasm_module's replace on a repeated header: the filter's map then shows none
        // of them (what reaches the upstream: `ngx_put_upstream`).
        (true, 2..) if kong => pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(&key)),
        (true, _) => {
            pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(&key));
            pairs.push((name, value));
        }
        (false, _) => pairs.push((name, value)),
    }
    status(Status::Ok)
}

/// Kong: the list nginx's proxy module forwards, when `map` is the request headers.
fn ngx_upstream(state: &mut HostState, map: i32) -> Option<&mut Vec<(String, String)>> {
    if state.profile != Profile::Kong || map != 0 {
        return None;
    }
    state.stream_mut()?.upstream_headers.as_mut()
}

/// What ngx_wasm_module's add and replace do to what the upstream receives, as seen in a real
/// host (ngx_wasm_module at Kong 3.10's pin, nginx 1.27.4): add appends; replace changes the
/// first entry of that name in place (and leaves any later ones), or appends when there is
/// none.
fn ngx_put_upstream(upstream: &mut Vec<(String, String)>, name: &str, value: &str, replace: bool) {
    let first = upstream
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name));
    match (replace, first) {
        (true, Some(entry)) => entry.1 = value.to_owned(),
        _ => upstream.push((name.to_owned(), value.to_owned())),
    }
}

/// Resumes the current stream (`proxy_continue_stream` and its ABI 0.1.0 name).
fn continue_current(mut c: Cx<'_>) -> Ret {
    match c.data_mut().stream_mut() {
        Some(stream) => {
            stream.continued += 1;
            status(Status::Ok)
        }
        None => status(Status::BadArgument),
    }
}

fn grpc_unsupported(mut c: Cx<'_>, name: &str, upstream: i32, upstream_len: i32) -> Ret {
    kong_lacks(&c, name)?;
    let upstream = try_mem!(read_str(&mut c, upstream, upstream_len));
    if !upstream_known(c.data(), &upstream) {
        return status(Status::BadArgument);
    }
    // The harness does not emulate gRPC; say so rather than pretend.
    status(Status::Unimplemented)
}

fn define_wasi(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    const W: &str = "wasi_snapshot_preview1";

    linker.func_wrap(
        W,
        "fd_write",
        |mut c: Cx<'_>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         written_out: i32|
         -> wasmtime::Result<i32> {
            if fd != 1 && fd != 2 {
                return Ok(ERRNO_BADF);
            }
            let Some(table) = addr(iovs_len)
                .checked_mul(8)
                .and_then(|len| i32::try_from(len).ok())
                .and_then(|len| read(&mut c, iovs, len))
            else {
                return Ok(ERRNO_FAULT);
            };
            let mut total = 0u32;
            for entry in table.chunks_exact(8) {
                let word = |at: usize| -> i32 {
                    entry
                        .get(at..at + 4)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_le_bytes)
                        .unwrap_or(0)
                };
                let Some(bytes) = read(&mut c, word(0), word(4)) else {
                    return Ok(ERRNO_FAULT);
                };
                total = total.saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                c.data_mut().stdout.extend_from_slice(&bytes);
            }
            if !write_u32(&mut c, written_out, total) {
                return Ok(ERRNO_FAULT);
            }
            Ok(ERRNO_SUCCESS)
        },
    )?;

    linker.func_wrap(
        W,
        "random_get",
        |mut c: Cx<'_>, buf: i32, len: i32| -> wasmtime::Result<i32> {
            let mut bytes = vec![0u8; addr(len)];
            c.data_mut().rng.fill_bytes(&mut bytes);
            Ok(if write(&mut c, buf, &bytes) {
                ERRNO_SUCCESS
            } else {
                ERRNO_FAULT
            })
        },
    )?;

    linker.func_wrap(
        W,
        "clock_time_get",
        |mut c: Cx<'_>, clock: i32, _precision: i64, out: i32| -> wasmtime::Result<i32> {
            let nanos = match clock {
                0 => c.data().now_nanos(),
                1..=3 => u64::try_from(c.data().monotonic.as_nanos()).unwrap_or(u64::MAX),
                _ => return Ok(ERRNO_INVAL),
            };
            Ok(if write(&mut c, out, &nanos.to_le_bytes()) {
                ERRNO_SUCCESS
            } else {
                ERRNO_FAULT
            })
        },
    )?;

    linker.func_wrap(
        W,
        "environ_sizes_get",
        |mut c: Cx<'_>, count_out: i32, size_out: i32| -> wasmtime::Result<i32> {
            // An empty environment: the filter must not depend on one.
            Ok(
                if write_u32(&mut c, count_out, 0) && write_u32(&mut c, size_out, 0) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_FAULT
                },
            )
        },
    )?;

    linker.func_wrap(
        W,
        "environ_get",
        |_c: Cx<'_>, _environ: i32, _buf: i32| -> wasmtime::Result<i32> { Ok(ERRNO_SUCCESS) },
    )?;

    linker.func_wrap(
        W,
        "proc_exit",
        |_c: Cx<'_>, code: i32| -> wasmtime::Result<()> {
            Err(Error::msg(format!("the guest called proc_exit({code})")))
        },
    )?;

    Ok(())
}
