//! A proxy-wasm HTTP filter that does nothing: the benchmark's floor for any wasm filter.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Nothing) });
}}

struct Nothing;

impl Context for Nothing {}

impl HttpContext for Nothing {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}
