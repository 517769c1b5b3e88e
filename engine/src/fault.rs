//! Faults on demand, for the tests that prove a bad command cannot take the game down.
//!
//! A line `fault <kind>` makes the core misbehave the way a buggy command would: `panic`,
//! `abort`, `overflow` (the stack), `hang` (never returns) or `sleep <ms>` (slow, then fine);
//! `engine-panic` makes the engine itself panic outside any command, a moment later.
//! It works only in a debug build (`debug_assertions`, which the test suite's binaries have and
//! `--release` ones do not: there `enabled` is a constant `false`) *and* with
//! `TETHER_FAULTS=1` in the core's environment, so neither a release build nor a debug
//! build someone forgot to switch off can be crashed by a player typing `fault abort`.
//!
//! `TETHER_FAULT_START_MS=<ms>` makes the core sleep that long before it prints READY, as a
//! large world would take to load.

use std::time::Duration;

/// One misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Panic,
    Abort,
    Overflow,
    Hang,
    Sleep(Duration),
    EnginePanic,
}

/// Set by `fault engine-panic`, taken by the core's ticker (`main.rs`).
static ENGINE_PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The fault this line asks for, if fault injection is on.
pub fn requested(line: &str) -> Option<Fault> {
    if !enabled() {
        return None;
    }
    let mut words = line.split_whitespace();
    if words.next() != Some("fault") {
        return None;
    }
    match (words.next()?, words.next()) {
        ("panic", None) => Some(Fault::Panic),
        ("abort", None) => Some(Fault::Abort),
        ("overflow", None) => Some(Fault::Overflow),
        ("hang", None) => Some(Fault::Hang),
        ("engine-panic", None) => Some(Fault::EnginePanic),
        ("sleep", Some(ms)) => Some(Fault::Sleep(Duration::from_millis(ms.parse().ok()?))),
        _ => None,
    }
}

/// Behaves as the fault says; returns only for `Sleep` and `EnginePanic`.
pub fn trigger(fault: Fault) {
    tracing::warn!(?fault, "injecting a fault (TETHER_FAULTS is on)");
    match fault {
        Fault::Panic => panic!("injected fault: a command panicked"),
        Fault::Abort => std::process::abort(),
        Fault::Overflow => {
            overflow(0);
        }
        Fault::Hang => loop {
            std::thread::park();
        },
        Fault::Sleep(duration) => std::thread::sleep(duration),
        Fault::EnginePanic => ENGINE_PANIC.store(true, std::sync::atomic::Ordering::SeqCst),
    }
}

/// Whether the engine should panic now, outside any command (`fault engine-panic`).
pub fn engine_panic_due() -> bool {
    ENGINE_PANIC.swap(false, std::sync::atomic::Ordering::SeqCst)
}

/// Sleeps as a slow world load would, if asked to.
pub fn slow_start() {
    if !enabled() {
        return;
    }
    if let Some(ms) = std::env::var("TETHER_FAULT_START_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        tracing::warn!(ms, "injected fault: a slow start");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(debug_assertions)]
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("TETHER_FAULTS").as_deref() == Ok("1"))
}

#[cfg(not(debug_assertions))]
fn enabled() -> bool {
    false
}

/// Recurses until the stack runs out; `black_box` keeps the frames from being optimised away.
#[allow(unconditional_recursion)]
fn overflow(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    overflow(depth + 1) + frame[depth as usize % 64]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_off_unless_asked_for() {
        // The test process does not set TETHER_FAULTS.
        assert_eq!(requested("fault panic"), None);
    }
}
