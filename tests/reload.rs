//! A player keeps typing while the core is replaced (planned reload) or killed (kill -9): the
//! connection never closes, every line is answered exactly once and in order, and the
//! character's title and room survive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tether_tests::{Client, Tether, wait_for};

/// What a typing player saw.
struct Typed {
    sent: u64,
    answered: Vec<u64>,
    longest_wait: Duration,
}

/// Types `say tok-N` every 25 ms (40 lines a second, faster than any typist) while `disrupt` runs (on another thread), then until a few
/// more lines were answered after it, and collects the answers.
fn type_through(player: &mut Client, disrupt: impl FnOnce() + Send) -> Typed {
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
            if answered.len() as u64 >= target {
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

fn assert_exactly_once_in_order(typed: &Typed) {
    let expected: Vec<u64> = (1..=typed.sent).collect();
    assert_eq!(
        typed.answered, expected,
        "every line must be answered exactly once, in order"
    );
}

/// Logs in, sets a title, walks away from the start room; returns the room's name line.
fn settle(player: &mut Client) -> String {
    player.create("Wanderer", "hunter22");
    player.send("title the Unbroken");
    player.expect("You are now known as");
    player.send("north");
    player.expect("Exits");
    player.send("look");
    player.expect_line("the room name", |line| !line.trim().is_empty())
}

fn assert_survived(player: &mut Client, room: &str) {
    player.send("look");
    player.expect(room);
    player.send("who");
    player.expect("Wanderer the Unbroken");
    assert!(!player.is_closed());
}

#[test]
fn planned_reloads_while_typing_lose_nothing() {
    let tether = Tether::start();
    let mut player = tether.connect();
    let room = settle(&mut player);
    let first_core = tether.core_pid();

    let typed = type_through(&mut player, || {
        for _ in 0..2 {
            tether.reload();
        }
    });
    assert_exactly_once_in_order(&typed);
    assert_ne!(tether.core_pid(), first_core, "the core was replaced");
    assert_survived(&mut player, &room);
    eprintln!(
        "planned reload x2: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
}

#[test]
fn kill_9_of_the_core_while_typing_loses_nothing() {
    let tether = Tether::start();
    let mut player = tether.connect();
    let room = settle(&mut player);
    let doomed = tether.core_pid();

    let typed = type_through(&mut player, || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(doomed),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 the core");
        tether.wait_for_new_core(doomed);
    });
    assert_exactly_once_in_order(&typed);
    assert_survived(&mut player, &room);
    eprintln!(
        "kill -9: {} lines, longest wait {:?}",
        typed.sent, typed.longest_wait
    );
}
