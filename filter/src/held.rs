//! Requests held for the first JWKS (Envoy).
//!
//! A gate whose keys all come from `keys.remote` answers `keys_unavailable` until its first
//! JWKS lands. That happens whenever a worker starts with no document: at start-up, and when
//! Envoy creates a new VM for a config (it drops the shared data of a VM id with the last VM
//! holding it). While this worker's fetch is on its way, a request is held instead, as the
//! Cloudflare Worker holds its first request: when the fetch lands or fails (within
//! `timeout_ms`), the root context decides every held request as that request's context and
//! resumes or answers it. ngx_wasm_module never resumes a request paused at its headers, so
//! the filter holds nothing there.

use std::cell::RefCell;

use attestgate_policy::Request;

/// At most this many requests held per worker; later ones are decided at once.
pub const MAX_HELD: usize = 1024;

/// One held request: its context and the facts it is decided on.
#[derive(Debug)]
pub struct Held {
    /// The HTTP context to decide it as.
    pub context_id: u32,
    /// Its facts, gathered before it was held.
    pub request: Request,
}

/// The worker's held requests, shared by its root and HTTP contexts.
#[derive(Debug, Default)]
pub struct HeldRequests {
    held: RefCell<Vec<Held>>,
}

impl HeldRequests {
    /// Holds `request` for `context_id`; gives it back when full.
    #[must_use = "a request given back must still be decided"]
    pub fn hold(&self, context_id: u32, request: Request) -> Option<Request> {
        let Ok(mut held) = self.held.try_borrow_mut() else {
            return Some(request);
        };
        if held.len() >= MAX_HELD {
            return Some(request);
        }
        held.push(Held {
            context_id,
            request,
        });
        None
    }

    /// Whether `context_id` is held (its body and trailers must wait too).
    pub fn is_held(&self, context_id: u32) -> bool {
        self.held
            .try_borrow()
            .is_ok_and(|held| held.iter().any(|h| h.context_id == context_id))
    }

    /// Forgets `context_id`: its stream ended while held.
    pub fn release(&self, context_id: u32) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.retain(|h| h.context_id != context_id);
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.try_borrow().map_or(true, |held| held.is_empty())
    }

    /// Every held request, in the order they came; none is held afterwards.
    pub fn take_all(&self) -> Vec<Held> {
        self.held
            .try_borrow_mut()
            .map(|mut held| std::mem::take(&mut *held))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_the_bound_and_releases_by_context() {
        let held = HeldRequests::default();
        for id in 0..MAX_HELD {
            assert!(held.hold(id as u32, Request::default()).is_none());
        }
        assert!(held.hold(9999, Request::default()).is_some());
        assert!(held.is_held(7) && !held.is_held(9999));
        held.release(7);
        assert!(!held.is_held(7));
        // Released, there is room for one more.
        assert!(held.hold(9999, Request::default()).is_none());
        let all = held.take_all();
        assert_eq!(all.len(), MAX_HELD);
        assert_eq!(all.first().map(|h| h.context_id), Some(0));
        assert!(held.is_empty());
    }
}
