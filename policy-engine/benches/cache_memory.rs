//! `make bench`: the heap a full decision cache holds. Sends 100 000 distinct tokens (all
//! allowed, as in production most are) through a cache of 100 000 entries, all in one clock
//! second so the whole-decision level fills too, and reports the bytes still live, counted by
//! a wrapping global allocator.

// A global allocator is the one place a bench needs `unsafe`: it forwards to the system
// allocator and only counts.
#![allow(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod fixture;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use attestgate_policy::DecisionCache;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: usize = 100_000;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; this bench takes no other arguments.
    // EdDSA: the token level is kept for asymmetric signatures only (an HMAC costs what its
    // cache key would), and EdDSA is the quickest of them to sign 100 000 times.
    let gate = fixture::gate("EdDSA", true);
    let signer = fixture::signer_for("EdDSA");
    let requests: Vec<_> = (0..ENTRIES as u64)
        .map(|jti| fixture::request(&fixture::token(&signer, jti)))
        .collect();

    let sample = gate.check(&requests[0], fixture::NOW);
    let base = LIVE.load(Ordering::Relaxed);
    let copy = sample.clone();
    println!(
        "cache_memory: one allowed decision holds {} bytes on the heap",
        LIVE.load(Ordering::Relaxed) - base
    );
    let base = LIVE.load(Ordering::Relaxed);
    let claims = copy.claims.clone();
    println!(
        "cache_memory: {} of them its claims (which the token level does not keep)",
        LIVE.load(Ordering::Relaxed) - base
    );
    drop((copy, claims));
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = DecisionCache::new(ENTRIES);
    for request in &requests {
        let (decision, _) = cache.check(&gate, request, fixture::NOW);
        assert!(decision.allow);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let held = after.saturating_sub(before);
    println!(
        "cache_memory: {} verified tokens, {} whole decisions, {} policy outcomes",
        cache.token_entries(),
        cache.decision_entries(),
        cache.outcome_entries()
    );
    println!(
        "cache_memory: {:.1} MiB held ({} bytes per request cached; target: 100k entries at most 20 MB)",
        mib(held),
        held / ENTRIES
    );
    drop(cache);
    let freed = LIVE.load(Ordering::Relaxed);
    println!(
        "cache_memory: {:.1} MiB left after dropping the cache (should be ~0)",
        mib(freed.saturating_sub(before))
    );
}
