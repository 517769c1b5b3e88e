//! Playing the game through the real supervisor, proxy and core, as a telnet client would.

use tether_tests::{Options, Tether};

#[test]
fn two_players_meet_talk_and_move() {
    let tether = Tether::start();
    let mut alice = tether.connect();
    alice.create("Alice", "wonderland");
    let mut bob = tether.connect();
    bob.create("Bob", "builder1");
    alice.expect("Bob has entered the game.");

    bob.send("say hi there");
    bob.expect("You say, \"hi there\"");
    alice.expect("Bob says, \"hi there\"");

    alice.send("emote waves.");
    bob.expect("Alice waves.");

    alice.send("tell bob psst");
    alice.expect("You tell Bob, \"psst\"");
    bob.expect("Alice tells you, \"psst\"");

    bob.send("title the Builder");
    bob.expect("You are now known as");
    alice.send("who");
    alice.expect("Bob the Builder");

    alice.send("north");
    bob.expect("Alice leaves north.");
    bob.send("north");
    alice.expect("Bob arrives.");

    bob.send("quit");
    bob.expect_closed();
    alice.expect("Bob has left the game.");
}

#[test]
fn login_errors_are_clear() {
    let tether = Tether::start();
    let mut player = tether.connect();
    player.create("Carol", "correct-horse");
    player.send("quit");
    player.expect_closed();

    let mut again = tether.connect();
    again.send("connect Carol wrong-pass");
    again.expect("Wrong name or password.");
    again.send("create carol another1");
    again.expect("taken");
    again.send("create C4rol! another1");
    again.expect("letters");
    again.send("connect Carol correct-horse");
    again.expect("Welcome back, Carol.");
    again.send("look");
    again.expect("Exits");
}

#[test]
fn only_the_host_makes_an_admin_and_an_admin_can_reload() {
    let tether = Tether::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    tether.expect_log(&["no administrator yet", "tether admin create NAME"]);
    // The first character on a fresh server is nobody special.
    let mut admin = tether.connect();
    admin.create("Root", "toor-toor");
    let mut player = tether.connect();
    player.create("Pleb", "pleb-pleb");
    for who in [&mut admin, &mut player] {
        who.send("@reload");
        who.expect("Huh?");
    }

    // The operator promotes Root on the host; it counts at once, without logging in again.
    tether.promote("root");

    let before = tether.core_pid();
    admin.send("@reload");
    admin.expect("Reloading");
    let after = tether.wait_for_new_core(before);
    assert_ne!(before, after);
    admin.send("say after the reload");
    admin.expect("You say, \"after the reload\"");
    // The old core leaves by itself: the request it sent is not what keeps it alive.
    tether.expect_log(&["reloaded in"]);
    let stopped = tether.expect_log(&[&format!("core (pid {before}) stopped")]);
    assert!(!stopped.contains("signal"), "{stopped}");
}

#[test]
fn shutdown_says_goodbye_and_everything_survives_a_full_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = || Options {
        root: Some(root.path().to_path_buf()),
        ..Options::default()
    };
    let tether = Tether::start_with(options());
    let mut player = tether.connect();
    player.create("Dave", "daisy-daisy");
    player.send("title of the Pod Bay");
    player.expect("You are now known as");
    player.send("north");
    player.expect("Exits");

    let status = tether.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let farewell = player.expect_closed();
    assert!(
        farewell.iter().any(|line| line.contains("shutting down")),
        "players are told: {farewell:?}"
    );

    let tether = Tether::start_with(options());
    let mut player = tether.connect();
    player.login("Dave", "daisy-daisy");
    player.send("who");
    player.expect("Dave of the Pod Bay");
    player.send("south");
    player.expect("Exits");
}

/// A pasted script longer than the queue kept for a core that is away (100 lines): with the
/// core attached, every line is handled, in order, and nothing is refused.
#[test]
fn a_long_paste_is_handled_whole_while_the_core_is_attached() {
    let tether = Tether::start();
    let mut player = tether.connect();
    player.create("Paster", "pasted-in");
    let paste: String = (1..=150).map(|n| format!("say line {n}\r\n")).collect();
    player.send_raw(paste.as_bytes());
    let mut heard = Vec::new();
    while heard.len() < 150 {
        let line = player.expect_line("the pasted lines' answers", |line| {
            line.contains("You say, \"line ") || line.contains("not accepted")
        });
        assert!(!line.contains("not accepted"), "{line}");
        heard.push(line);
    }
    for (n, line) in heard.iter().enumerate() {
        assert!(line.contains(&format!("\"line {}\"", n + 1)), "{n}: {line}");
    }
}
