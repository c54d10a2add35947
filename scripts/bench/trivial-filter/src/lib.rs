//! The gateway benchmark's floors for any wasm filter. With an empty plugin configuration the
//! filter does nothing (`wasm_trivial`). With the configuration `host_calls_of_a_hit`
//! (`wasm_host_floor`) it makes the host calls attestgate makes for a cached decision and
//! nothing else: read every request header, read the clock, remove the token header, set two
//! claim headers, write one filter-state value and add to three counters. The difference between
//! the two is what those calls cost in this Envoy, before any work of attestgate's own.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, MetricType};

/// A decision record of the size attestgate writes.
const RECORD: &str = r#"{"verdict":"allow","allowed":true,"mode":"enforce","status":200,"reason":"allowed","policy_reasons":[],"policy_reasons_dropped":0,"rule":null,"device":"bench-device-0001","platform":"android","app_version":"2.4.1","cache":"hit"}"#;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { calls: Rc::new(Cell::new(None)) })
    });
}}

/// The three counters' ids, once `host_calls_of_a_hit` is configured.
type Counters = Rc<Cell<Option<(u32, u32, u32)>>>;

struct Root {
    calls: Counters,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let configuration = self.get_plugin_configuration().unwrap_or_default();
        if configuration == b"host_calls_of_a_hit" {
            let define = |name| hostcalls::define_metric(MetricType::Counter, name).unwrap_or(0);
            self.calls.set(Some((
                define("floor.allowed"),
                define("floor.cache.hits"),
                define("floor.config.decisions"),
            )));
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            calls: Rc::clone(&self.calls),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    calls: Counters,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some((allowed, hits, decisions)) = self.calls.get() else {
            return Action::Continue;
        };
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let _ = hostcalls::get_current_time();
        let _ = hostcalls::increment_metric(allowed, 1);
        let _ = hostcalls::increment_metric(hits, 1);
        let _ = hostcalls::increment_metric(decisions, 1);
        let _ = hostcalls::set_property(vec!["attestgate.record"], Some(RECORD.as_bytes()));
        if headers.iter().any(|(name, _)| name == "approov-token") {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "approov-token");
        }
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            "x-device-id",
            Some("bench-device-0001"),
        );
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            "x-device-platform",
            Some("android"),
        );
        Action::Continue
    }
}
