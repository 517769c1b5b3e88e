//! Faults on demand, for the tests, as the core has them (`tether_engine::fault`): only in a
//! debug build (`debug_assertions`; in a release build this does nothing) *and* with
//! `TETHER_FAULTS=1` in the proxy's environment.
//!
//! `TETHER_FAULT_TAKE_OVER_READY_MS=<ms>`: a proxy that has taken everything over waits that
//! long before it says READY, as a loaded machine can make it; the old proxy's exit then
//! reaches the supervisor first, which must not take it for a crash.

use std::time::Duration;

/// Sleeps before a taker's READY, if asked to.
pub fn late_ready_after_take_over() {
    if let Some(ms) = setting("TETHER_FAULT_TAKE_OVER_READY_MS") {
        tracing::warn!(ms, "injected fault: READY comes late after a take-over");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(debug_assertions)]
fn setting(name: &str) -> Option<u64> {
    if std::env::var("TETHER_FAULTS").as_deref() != Ok("1") {
        return None;
    }
    std::env::var(name).ok()?.parse().ok()
}

#[cfg(not(debug_assertions))]
fn setting(_: &str) -> Option<u64> {
    None
}
