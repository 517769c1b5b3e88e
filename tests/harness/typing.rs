//! A player who keeps typing while something is disrupted: every line is answered exactly
//! once, in order, and how long the longest one waited.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Client, wait_for};

/// What a typing player saw.
pub struct Typed {
    pub sent: u64,
    pub answered: Vec<u64>,
    pub longest_wait: Duration,
}

/// Types `say tok-N` every 25 ms (40 lines a second, faster than any typist) while `disrupt` runs (on another thread), then until a few
/// more lines were answered after it, and collects the answers.
pub fn type_through(player: &mut Client, disrupt: impl FnOnce() + Send) -> Typed {
    type_on(player, disrupt, false)
}

/// As [`type_through`], for a disruption that may lose what was typed in its last moments (a
/// proxy killed without warning): reading goes on until the last line typed is answered,
/// not until as many lines as were typed are.
pub fn type_through_a_crash(player: &mut Client, disrupt: impl FnOnce() + Send) -> Typed {
    type_on(player, disrupt, true)
}

fn type_on(player: &mut Client, disrupt: impl FnOnce() + Send, lossy: bool) -> Typed {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answered_count = Arc::new(AtomicU64::new(0));
    let sent_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));

    let mut writer = player.writer();
    std::thread::scope(|scope| {
        let typist = {
            let (stop, sent, sent_at) = (stop.clone(), sent.clone(), sent_at.clone());
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    sent_at.lock().unwrap().push(Instant::now());
                    writer.send(&format!("say tok-{n}"));
                    sent.store(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
        };
        let disruptor = {
            let (stop, answered_count) = (stop.clone(), answered_count.clone());
            scope.spawn(move || {
                wait_for("some lines answered before", || {
                    (answered_count.load(Ordering::SeqCst) >= 20).then_some(())
                });
                disrupt();
                let after = answered_count.load(Ordering::SeqCst);
                wait_for("some lines answered after", || {
                    (answered_count.load(Ordering::SeqCst) >= after + 20).then_some(())
                });
                stop.store(true, Ordering::SeqCst);
            })
        };

        let mut answered = Vec::new();
        let mut longest_wait = Duration::ZERO;
        loop {
            let done_typing = typist.is_finished();
            let target = sent.load(Ordering::SeqCst);
            let caught_up = if lossy {
                answered.last().copied().unwrap_or(0) >= target
            } else {
                answered.len() as u64 >= target
            };
            if caught_up {
                if done_typing {
                    break;
                }
                // Everything typed so far is answered: read on without expecting more yet.
                assert!(player.poll(), "the connection closed");
                continue;
            }
            let line = player.expect("You say, \"tok-");
            let n: u64 = line
                .rsplit("tok-")
                .next()
                .and_then(|rest| rest.trim_end_matches('"').parse().ok())
                .unwrap_or_else(|| panic!("unexpected answer {line:?}"));
            if let Some(at) = sent_at.lock().unwrap().get(n as usize - 1) {
                longest_wait = longest_wait.max(at.elapsed());
            }
            answered.push(n);
            answered_count.store(answered.len() as u64, Ordering::SeqCst);
        }
        typist.join().unwrap();
        disruptor.join().unwrap();
        Typed {
            sent: sent.load(Ordering::SeqCst),
            answered,
            longest_wait,
        }
    })
}

pub fn assert_exactly_once_in_order(typed: &Typed) {
    let expected: Vec<u64> = (1..=typed.sent).collect();
    assert_eq!(
        typed.answered, expected,
        "every line must be answered exactly once, in order"
    );
}

/// Every line answered at most once and in order, and the last one answered: what a crash
/// may cost is lines in flight at that moment. Returns how many were lost.
pub fn assert_at_most_once_in_order(typed: &Typed) -> u64 {
    assert!(
        typed.answered.windows(2).all(|pair| pair[0] < pair[1]),
        "lines must be answered at most once, in order: {:?}",
        typed.answered
    );
    assert_eq!(
        typed.answered.last().copied(),
        Some(typed.sent),
        "the last line typed"
    );
    typed.sent - typed.answered.len() as u64
}
