//! The demo game played through the engine's test harness: every command, what the room
//! hears, what is saved, what a restart keeps, and the engine's login and session rules under
//! a real game.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tether_engine::testing::{
    TestGame, WORLD, acks, disconnect_of, gmcp_of, key, markups, prompts, state_of, text, texts,
};
use tether_engine::{ClientInfo, Db};
use tether_protocol::markup::ColorDepth;
use tether_protocol::message::{Delivery, DisplayPrefs};

type Outbox = tether_engine::testing::Outbox;

fn game() -> TestGame {
    TestGame::new(tether_core::rules())
}

const GUEST_HINT: &str =
    "You are not logged in. Use \"connect <name>\" or \"create <name>\" (\"help\" for more).";
const HUH: &str = "Huh? Type \"help\" for commands.";
/// Lines a session may send while its password is checked (the engine's bound).
const MAX_QUEUED_LINES: usize = 256;
const FULL_PROMPT: &str = "100/100hp 100/100mp > ";
const FULL_PROMPT_MARKUP: &str = "{green}100{/}/100hp {green}100{/}/100mp > ";

#[test]
fn banner_then_create_then_connect() {
    let mut h = game();
    assert!(text(&h.open(1), 1).contains("Welcome to Testville!"));

    let out = h.send_only(1, "create alice secret1");
    assert_eq!(out.jobs.len(), 1);
    assert!(
        out.events.is_empty(),
        "nothing, not even the ack, before the hash"
    );
    let mut out = out;
    h.run_jobs(&mut out);
    let blob = state_of(&out, 1).unwrap();
    assert_eq!(blob, br#"{"character":1}"#);
    let shown = text(&out, 1);
    assert!(shown.contains("Welcome to Testville, Alice! Your character has been created."));
    assert!(shown.contains("Great Hall\nA draughty hall.\nExits: north."));
    assert_eq!(acks(&out, 1), [1]);
    // State comes before the text, the ack comes last.
    assert!(matches!(out.events.first(), Some((_, Delivery::State(_)))));
    assert!(matches!(out.events.last(), Some((_, Delivery::Ack(1)))));

    h.send(1, "quit");
    h.game().session_closed(key(1), &mut Outbox::new());
    h.open(2);
    let out = h.send(2, "connect ALICE secret1");
    assert!(text(&out, 2).starts_with("Welcome back, Alice.\nGreat Hall"));
    assert_eq!(state_of(&out, 2).unwrap(), blob);
}

#[test]
fn wrong_password_and_unknown_name_get_the_same_answer() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let wrong = h.send(2, "connect alice secret2");
    let unknown = h.send(2, "connect zed secret1");
    assert_eq!(texts(&wrong, 2), ["Wrong name or password."]);
    assert_eq!(texts(&unknown, 2), ["Wrong name or password."]);
    assert_eq!(state_of(&wrong, 2), None);
    assert_eq!(text(&h.send(2, "look"), 2), GUEST_HINT);
}

#[test]
fn create_refuses_taken_and_bad_names_and_short_passwords() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let cases = [
        ("create ALICE secret1", "The name Alice is already taken."),
        (
            "create al secret1",
            "Names must be at least 3 letters long.",
        ),
        (
            "create abcdefghijklmnopqrstu secret1",
            "Names can be at most 20 letters long.",
        ),
        (
            "create b0b secret1",
            "Names may contain only the letters A to Z.",
        ),
        (
            "create bob short",
            "Passwords must be at least 6 characters long.",
        ),
        ("create", "Usage: create <name> [password]"),
        ("connect", "Usage: connect <name> [password]"),
        ("create alice", "The name Alice is already taken."),
        ("connect b0b", "Names may contain only the letters A to Z."),
    ];
    for (line, expected) in cases {
        let out = h.send(2, line);
        assert!(out.jobs.is_empty());
        assert_eq!(texts(&out, 2), [expected], "{line}");
        assert_eq!(acks(&out, 2).len(), 1);
    }
}

#[test]
fn say_and_emote_reach_the_room_only() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.create(3, "carol");
    h.send(3, "north");

    let out = h.send(1, "say Hello \x1b[31mthere\x1b[0m!");
    assert_eq!(texts(&out, 1), ["You say, \"Hello there!\""]);
    assert_eq!(texts(&out, 2), ["Alice says, \"Hello there!\""]);
    assert!(texts(&out, 3).is_empty());

    let out = h.send(2, "'hi");
    assert_eq!(texts(&out, 1), ["Bob says, \"hi\""]);
    let out = h.send(2, ":waves.");
    assert_eq!(texts(&out, 1), ["Bob waves."]);
    assert_eq!(texts(&out, 2), ["Bob waves."]);
    let out = h.send(2, "emote 's hat falls off");
    assert_eq!(texts(&out, 1), ["Bob's hat falls off"]);
    assert_eq!(texts(&h.send(2, "say   "), 2), ["Say what?"]);
}

#[test]
fn arrivals_are_announced_and_look_shows_titles() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let out = h.send(2, "create bob secret1");
    assert_eq!(texts(&out, 1), ["Bob has entered the game."]);
    assert!(text(&out, 2).ends_with("Exits: north.\nAlice is here."));
    h.send(1, "title the Brave");
    let look = text(&h.send(2, "look"), 2);
    assert!(look.ends_with("Alice the Brave is here."), "{look}");
    assert_eq!(
        texts(&h.send(2, "look ALICE"), 2),
        ["You see Alice the Brave."]
    );
    assert_eq!(
        texts(&h.send(2, "look zed"), 2),
        ["You don't see \"zed\" here."]
    );
}

#[test]
fn tell_and_who() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.send(2, "north");
    let out = h.send(1, "tell BOB meet me\tat noon");
    assert_eq!(texts(&out, 1), ["You tell Bob, \"meet me at noon\""]);
    assert_eq!(texts(&out, 2), ["Alice tells you, \"meet me at noon\""]);
    assert_eq!(
        texts(&h.send(1, "tell zed hi"), 1),
        ["No one called \"zed\" is online."]
    );
    assert_eq!(texts(&h.send(1, "tell bob"), 1), ["Tell Bob what?"]);

    h.send(2, "title the Quick");
    let who = text(&h.send(1, "who"), 1);
    assert_eq!(
        who,
        "Players online:\n  Alice\n  Bob the Quick\n2 players online."
    );
}

#[test]
fn movement_is_seen_from_both_sides() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.create(3, "carol");
    h.send(3, "n");
    let out = h.send(1, "go north");
    assert_eq!(texts(&out, 2), ["Alice leaves north."]);
    assert_eq!(texts(&out, 3), ["Alice arrives."]);
    assert_eq!(
        text(&out, 1),
        "Courtyard\nA muddy yard.\nExits: south.\nCarol is here."
    );
    // A compass word with no exit here is a direction, not nonsense.
    assert_eq!(texts(&h.send(1, "west"), 1), ["You can't go that way."]);
    assert_eq!(texts(&h.send(1, "xyzzy"), 1), [HUH]);
    assert_eq!(texts(&h.send(1, "go west"), 1), ["You can't go that way."]);
    let out = h.send(1, "S");
    assert_eq!(texts(&out, 3), ["Alice leaves south."]);
    assert_eq!(texts(&out, 2), ["Alice arrives."]);
}

#[test]
fn reload_restores_room_and_title_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("game.db");
    let (alice, bob) = {
        let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
        let alice = h.create(1, "alice");
        let bob = h.create(2, "bob");
        h.send(1, "north");
        h.send(1, "title the Brave");
        (alice, bob)
    };

    // A brand-new core over the same file, handed the sessions back by the proxy.
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    let mut out = Outbox::new();
    h.game()
        .session_restored(key(1), "192.0.2.1:4000", &alice, &mut out);
    h.game()
        .session_restored(key(2), "192.0.2.1:4000", &bob, &mut out);
    h.game()
        .session_restored(key(3), "192.0.2.1:4000", b"", &mut out);
    assert!(out.is_empty(), "{:?}", out.events);
    assert_eq!(h.game().session_count(), 3);

    let look = text(&h.send(1, "look"), 1);
    assert!(look.starts_with("Courtyard"), "{look}");
    let who = text(&h.send(2, "who"), 2);
    assert!(
        who.contains("Alice the Brave") && who.contains("Bob"),
        "{who}"
    );
    assert_eq!(text(&h.send(3, "look"), 3), GUEST_HINT);
}

#[test]
fn unreadable_or_stale_state_means_logged_out() {
    let mut h = game();
    let mut out = Outbox::new();
    h.game()
        .session_restored(key(1), "192.0.2.1:4000", b"\xff{not json", &mut out);
    h.game()
        .session_restored(key(2), "192.0.2.1:4000", br#"{"character":42}"#, &mut out);
    assert!(out.is_empty());
    assert_eq!(text(&h.send(1, "who"), 1), GUEST_HINT);
    assert_eq!(text(&h.send(2, "who"), 2), GUEST_HINT);
}

#[test]
fn character_in_a_vanished_room_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("game.db");
    let blob = {
        let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
        let blob = h.create(1, "alice");
        h.db().set_room(1, "dungeon").unwrap();
        blob
    };
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    h.game()
        .session_restored(key(1), "192.0.2.1:4000", &blob, &mut Outbox::new());
    assert!(text(&h.send(1, "look"), 1).starts_with("Great Hall"));
    let db = Db::open(Path::new(&path)).unwrap();
    assert_eq!(db.character(1).unwrap().unwrap().room, "hall");
}

#[test]
fn lines_during_a_password_job_wait_their_turn() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let mut out = h.send_only(2, "create bob secret1");
    for line in ["say one", "", "say two"] {
        let more = h.send_only(2, line);
        assert!(more.is_empty(), "queued line produced output");
    }
    let job = out.jobs.pop().unwrap();
    h.game().password_done(job.run(), &mut out);
    assert_eq!(acks(&out, 2), [1, 2, 3, 4]);
    assert_eq!(
        texts(&out, 1),
        [
            "Bob has entered the game.",
            "Bob says, \"one\"",
            "Bob says, \"two\""
        ]
    );
    let welcome = out.events.iter().position(
        |e| matches!(e, (k, Delivery::Output(t)) if *k == key(2) && t.starts_with("Welcome")),
    );
    let ack1 = out
        .events
        .iter()
        .position(|e| *e == (key(2), Delivery::Ack(1)));
    assert!(welcome < ack1);
    assert_eq!(
        h.send(2, "").events,
        [
            (key(2), Delivery::Prompt(FULL_PROMPT_MARKUP.to_owned())),
            (key(2), Delivery::Ack(5))
        ]
    );
}

#[test]
fn flooding_during_a_password_job_disconnects() {
    let mut h = game();
    h.open(1);
    let out = h.send_only(1, "create alice secret1");
    for _ in 0..MAX_QUEUED_LINES {
        assert!(h.send_only(1, "look").is_empty());
    }
    let flood = h.send_only(1, "look");
    assert_eq!(
        disconnect_of(&flood, 1),
        Some("Too much input while logging in.")
    );
    let mut done = Outbox::new();
    for job in out.jobs {
        h.game().password_done(job.run(), &mut done);
    }
    // The pending line is still acknowledged; the account is not created for a dying session.
    assert_eq!(done.events, [(key(1), Delivery::Ack(1))]);
}

#[test]
fn queued_connect_after_failed_create_runs_in_turn() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let mut out = h.send_only(2, "connect alice nope123");
    out.events
        .extend(h.send_only(2, "connect alice secret1").events);
    h.run_jobs(&mut out);
    assert_eq!(acks(&out, 2), [1, 2]);
    let shown = texts(&out, 2);
    assert_eq!(shown[0], "Wrong name or password.");
    assert!(shown[1].starts_with("Welcome back, Alice."));
    // The second connect took over session 1.
    assert_eq!(disconnect_of(&out, 1), Some("Logged in from elsewhere."));
}

#[test]
fn only_an_account_made_admin_on_the_host_is_one() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    // Being first makes nobody an administrator.
    assert_eq!(texts(&h.send(1, "@reload"), 1), [HUH]);
    assert!(!text(&h.send(1, "help"), 1).contains("@reload"));
    // What `tether admin promote` does, while Alice plays: it counts at once.
    assert_eq!(h.db().set_admin("alice", true).unwrap(), Some(false));
    let out = h.send(1, "@reload");
    assert_eq!(
        out.requests,
        [(Some(key(1)), tether_engine::AdminRequest::Reload)]
    );
    assert_eq!(texts(&out, 1), ["Reloading the game core..."]);
    let out = h.send(1, "@shutdown now");
    assert_eq!(
        out.requests,
        [(Some(key(1)), tether_engine::AdminRequest::Shutdown)]
    );
    assert_eq!(texts(&out, 1), ["The server is shutting down now."]);
    let out = h.send(2, "@reload");
    assert!(out.requests.is_empty());
    assert_eq!(texts(&out, 2), [HUH]);
    assert!(text(&h.send(1, "help"), 1).contains("@reload"));
    assert!(!text(&h.send(2, "help"), 2).contains("@reload"));
    // `tether admin demote` counts at once too.
    assert_eq!(h.db().set_admin("Alice", false).unwrap(), Some(true));
    let out = h.send(1, "@reload");
    assert!(out.requests.is_empty());
}

#[test]
fn failed_logins_close_the_connection_and_make_the_address_and_account_wait() {
    let mut h = game();
    h.create(1, "alice");
    // Three wrong passwords on one connection: the third closes it.
    h.open_from(2, "203.0.113.9:4000");
    for attempt in 1..=3 {
        let out = h.send(2, "connect alice wrong-one");
        assert_eq!(texts(&out, 2), ["Wrong name or password."], "{attempt}");
        let closed = disconnect_of(&out, 2);
        assert_eq!(closed, (attempt == 3).then_some("Too many failed logins."));
    }
    // From the same address, the fourth failure in a row makes the next attempt wait, and a
    // waiting attempt is refused before any password is checked.
    h.open_from(3, "203.0.113.9:4001");
    let out = h.send(3, "connect alice wrong-one");
    assert_eq!(texts(&out, 3), ["Wrong name or password."]);
    let out = h.send_only(3, "connect alice secret1");
    assert!(
        out.jobs.is_empty(),
        "no password work for a throttled attempt"
    );
    let said = text(&out, 3);
    assert!(
        said.starts_with("Too many failed logins from your address. Please try again in"),
        "{said}"
    );
    // Retrying while told to wait counts against the connection as well.
    let out = h.send_only(3, "connect alice secret1");
    assert_eq!(
        disconnect_of(&out, 3),
        Some("Too many failed logins."),
        "the third refusal on one connection closes it"
    );
    // Another address may still log in as Alice (her own count is below its limit), and
    // that success clears it.
    h.open_from(4, "198.51.100.4:4000");
    let out = h.send(4, "connect alice secret1");
    assert!(text(&out, 4).starts_with("Welcome back, Alice."));
    assert_eq!(h.db().login_failures("account:alice").unwrap(), None);
    let (failures, _) = h
        .db()
        .login_failures("address:203.0.113.9")
        .unwrap()
        .expect("the address is counted");
    assert_eq!(failures, 4);
    // A loopback peer is not counted by address (the operator's own, or a local proxy).
    h.open(5);
    for _ in 0..2 {
        h.send(5, "connect nobody wrong-one");
    }
    assert_eq!(h.db().login_failures("address:127.0.0.1").unwrap(), None);
    assert_eq!(h.db().login_failures("account:nobody").unwrap(), None);
}

#[test]
fn connections_that_do_not_log_in_are_closed_in_time() {
    let mut h = game();
    h.game().set_login_limits(tether_engine::LoginLimits {
        total: Duration::from_secs(300),
        idle: Duration::from_secs(120),
    });
    h.create(1, "alice");
    h.open(2);
    h.open(3);
    let out = h.advance(Duration::from_secs(60));
    assert!(out.is_empty(), "nobody is late yet: {:?}", out.events);
    // Session 3 types something (not a login) a minute in; session 2 says nothing.
    h.send(3, "help");
    let out = h.advance(Duration::from_secs(61));
    assert_eq!(
        disconnect_of(&out, 2),
        Some("Nothing typed for too long while logging in.")
    );
    assert_eq!(disconnect_of(&out, 3), None);
    assert_eq!(
        disconnect_of(&out, 1),
        None,
        "a player is never timed out here"
    );
    // Session 3 keeps typing, but not logging in.
    h.send(3, "help");
    h.advance(Duration::from_secs(100));
    h.send(3, "help");
    let out = h.advance(Duration::from_secs(80));
    assert_eq!(disconnect_of(&out, 3), Some("You took too long to log in."));
    assert_eq!(disconnect_of(&out, 1), None);
}

#[test]
fn takeover_disconnects_the_old_session_quietly() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.open(3);
    let out = h.send(3, "connect alice secret1");
    assert_eq!(disconnect_of(&out, 1), Some("Logged in from elsewhere."));
    assert!(
        text(&out, 3).starts_with("Welcome back, Alice. Your other connection has been closed.")
    );
    assert!(texts(&out, 2).is_empty(), "Alice never left the room");
    assert!(state_of(&out, 3).is_some());

    let mut out = Outbox::new();
    h.game().session_closed(key(1), &mut out);
    assert!(
        out.is_empty(),
        "the old connection closing is not a departure"
    );
    let out = h.send(3, "say still here");
    assert_eq!(texts(&out, 2), ["Alice says, \"still here\""]);
}

#[test]
fn quit_and_close_tell_the_room() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    let out = h.send(2, "quit");
    // One goodbye: the disconnect's last words.
    assert!(texts(&out, 2).is_empty(), "{:?}", texts(&out, 2));
    assert_eq!(
        disconnect_of(&out, 2),
        Some("Farewell, Bob. Come back soon!")
    );
    assert_eq!(acks(&out, 2), [2]);
    // Lines already in flight after quit are acknowledged and ignored.
    let late = h.send(2, "say too late");
    assert_eq!(late.events, [(key(2), Delivery::Ack(3))]);
    let mut out = Outbox::new();
    h.game().session_closed(key(2), &mut out);
    assert_eq!(texts(&out, 1), ["Bob has left the game."]);
    assert_eq!(h.game().session_count(), 1);
}

#[test]
fn detached_proxy_and_stale_jobs_are_forgotten() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let out = h.send_only(2, "create bob secret1");
    h.game().proxy_detached(1);
    assert_eq!(h.game().session_count(), 0);
    let mut after = Outbox::new();
    for job in out.jobs {
        h.game().password_done(job.run(), &mut after);
    }
    assert!(after.is_empty());
}

#[test]
fn titles_are_limited_and_cleared() {
    let mut h = game();
    h.create(1, "alice");
    let long = format!("title {}", "x".repeat(61));
    assert_eq!(
        texts(&h.send(1, &long), 1),
        ["Titles can be at most 60 characters long."]
    );
    assert_eq!(
        texts(&h.send(1, "title the \x1b]0;pwned\x07Wise"), 1),
        ["You are now known as Alice the Wise."]
    );
    assert_eq!(
        texts(&h.send(1, "title"), 1),
        ["Your title has been cleared."]
    );
    assert_eq!(
        text(&h.send(1, "look alice"), 1),
        "You see yourself: Alice."
    );
}

#[test]
fn empty_lines_and_unknown_commands() {
    let mut h = game();
    h.open(1);
    // An empty line gets nothing but a fresh prompt, as players expect.
    assert_eq!(
        h.send(1, "   ").events,
        [
            (key(1), Delivery::Prompt("{bold}login>{/} ".to_owned())),
            (key(1), Delivery::Ack(1))
        ]
    );
    h.send(1, "create alice secret1");
    assert_eq!(
        h.send(1, "").events,
        [
            (key(1), Delivery::Prompt(FULL_PROMPT_MARKUP.to_owned())),
            (key(1), Delivery::Ack(3))
        ]
    );
    assert_eq!(
        texts(&h.send(1, "dance wildly"), 1),
        ["Huh? Type \"help\" for commands."]
    );
}

// ---- Markup ----

#[test]
fn player_text_cannot_inject_markup() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    let out = h.send(1, "say {red}hi");
    assert_eq!(
        markups(&out, 2),
        ["{bright-yellow}Alice says, \"{{red}hi\"{/}"]
    );
    assert_eq!(texts(&out, 2), ["Alice says, \"{red}hi\""]);
    assert_eq!(texts(&out, 1), ["You say, \"{red}hi\""]);

    // A fake line needs a line break, which sanitizing already turned into a space.
    let out = h.send(1, "say a\n[tether] The game is shutting down!");
    assert_eq!(markups(&out, 2).concat().matches('\n').count(), 0);

    let out = h.send(1, "tell bob {/}{bg:red}psst{{");
    assert!(markups(&out, 2)[0].contains("{{/}{{bg:red}psst{{{{"));
    let out = h.send(2, ":{bold}grins");
    assert_eq!(markups(&out, 1), ["Bob {{bold}grins"]);
    let out = h.send(1, "look {red}x");
    assert_eq!(texts(&out, 1), ["You don't see \"{red}x\" here."]);

    h.send(1, "title the {bright-red}Admin{/}");
    let look = markups(&h.send(2, "look"), 2).concat();
    assert!(
        look.contains("{yellow}Alice the {{bright-red}Admin{{/} is here.{/}"),
        "{look}"
    );
    let who = markups(&h.send(2, "who"), 2).concat();
    assert!(who.contains("Alice the {{bright-red}Admin{{/}"), "{who}");
    // Names never hold a brace in the first place.
    h.open(3);
    assert_eq!(
        texts(&h.send(3, "create {red}eve secret1"), 3),
        ["Names may contain only the letters A to Z."]
    );
}

// ---- Prompts ----

#[test]
fn every_handled_line_ends_with_a_prompt_then_its_ack() {
    let mut h = game();
    let opened = h.open(1);
    assert_eq!(prompts(&opened, 1), ["login> "]);
    assert!(matches!(
        opened.events.last(),
        Some((_, Delivery::Prompt(_)))
    ));

    let out = h.send(1, "help");
    let tail: Vec<_> = out.events.iter().rev().take(2).map(|(_, e)| e).collect();
    assert!(
        matches!(tail[..], [Delivery::Ack(1), Delivery::Prompt(_)]),
        "{tail:?}"
    );

    let out = h.send(1, "create alice secret1");
    assert_eq!(prompts(&out, 1), ["100/100hp 100/100mp > "]);
    let n = out.events.len();
    assert!(matches!(out.events[n - 2].1, Delivery::Prompt(_)));
    assert!(matches!(out.events[n - 1].1, Delivery::Ack(2)));

    // Bystanders who were shown something get a fresh prompt; others get nothing.
    h.create(2, "bob");
    h.create(3, "carol");
    h.send(3, "north");
    let out = h.send(1, "say hello");
    assert_eq!(prompts(&out, 1).len(), 1);
    assert_eq!(prompts(&out, 2).len(), 1);
    assert!(out.events.iter().all(|(k, _)| *k != key(3)));
    let bob: Vec<_> = out.events.iter().filter(|(k, _)| *k == key(2)).collect();
    assert!(matches!(bob.last(), Some((_, Delivery::Prompt(_)))));

    // A session that is leaving gets no prompt.
    let out = h.send(2, "quit");
    assert!(prompts(&out, 2).is_empty());
    let mut closed = Outbox::new();
    h.game().session_closed(key(2), &mut closed);
    assert_eq!(prompts(&closed, 1).len(), 1);
}

// ---- Passwords at a prompt ----

fn hides(out: &Outbox, n: u64) -> Vec<bool> {
    out.events
        .iter()
        .filter_map(|(k, e)| match e {
            Delivery::HideInput(hide) if *k == key(n) => Some(*hide),
            _ => None,
        })
        .collect()
}

fn assert_never_shown(out: &Outbox, password: &str) {
    let all = format!("{:?} {:?}", out.events, out.jobs);
    assert!(!all.contains(password), "{all}");
}

#[test]
fn connect_asks_for_the_password_with_input_hidden() {
    let mut h = game();
    h.create(1, "alice");
    h.send(1, "quit");
    h.game().session_closed(key(1), &mut Outbox::new());
    h.open(2);

    let out = h.send(2, "connect ALICE");
    assert!(out.jobs.is_empty());
    assert_eq!(
        out.events,
        [
            (
                key(2),
                Delivery::State(br#"{"password_for":{"connect":"Alice"}}"#.to_vec())
            ),
            (key(2), Delivery::HideInput(true)),
            (key(2), Delivery::Prompt("Password: ".into())),
            (key(2), Delivery::Ack(1)),
        ]
    );

    let out = h.send_only(2, "  secret1 ");
    // Echo is back at once; nothing else until the password is checked.
    assert_eq!(
        out.events,
        [
            (key(2), Delivery::HideInput(false)),
            (
                key(2),
                Delivery::State(
                    br#"{"password_for":{"connect":"Alice"},"checking":true}"#.to_vec()
                )
            ),
        ]
    );
    assert_eq!(out.jobs.len(), 1);
    assert_never_shown(&out, "secret1");
    let mut out = out;
    h.run_jobs(&mut out);
    assert_never_shown(&out, "secret1");
    assert_eq!(hides(&out, 2), [false]);
    assert_eq!(state_of(&out, 2).unwrap(), br#"{"character":1}"#);
    assert!(text(&out, 2).starts_with("Welcome back, Alice.\nGreat Hall"));
    assert_eq!(prompts(&out, 2), ["100/100hp 100/100mp > "]);
    assert_eq!(acks(&out, 2), [2]);
}

#[test]
fn failed_and_cancelled_password_prompts_show_input_again() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let cleared = (key(2), Delivery::State(Vec::new()));

    // Unknown names are asked for a password like known ones, and fail the same way.
    for (name, password) in [("alice", "wrong12"), ("zed", "secret1")] {
        let asked = h.send(2, &format!("connect {name}"));
        assert_eq!(hides(&asked, 2), [true]);
        assert_eq!(prompts(&asked, 2), ["Password: "]);
        let out = h.send(2, password);
        assert_eq!(hides(&out, 2), [false]);
        assert_eq!(texts(&out, 2), ["Wrong name or password."]);
        assert!(out.events.contains(&cleared));
        assert_eq!(prompts(&out, 2), ["login> "]);
        assert_never_shown(&out, password);
    }

    h.send(2, "connect alice");
    let out = h.send(2, "");
    assert_eq!(hides(&out, 2), [false]);
    assert_eq!(texts(&out, 2), ["No password given; nothing happened."]);
    assert!(out.events.contains(&cleared));
    // The next line is a command again.
    assert_eq!(texts(&h.send(2, "who"), 2), [GUEST_HINT]);

    h.send(2, "create bob");
    let out = h.send(2, "short");
    assert_eq!(hides(&out, 2), [false]);
    assert_eq!(
        texts(&out, 2),
        ["Passwords must be at least 6 characters long."]
    );
    assert_never_shown(&out, "short");

    // `quit` at the prompt leaves, with echo restored before the goodbye.
    h.send(2, "connect alice");
    let out = h.send(2, "QUIT");
    assert_eq!(hides(&out, 2), [false]);
    assert_eq!(disconnect_of(&out, 2), Some("Farewell!"));
    assert!(out.jobs.is_empty());
    let events: Vec<_> = out.events.iter().map(|(_, e)| e).collect();
    let shown = events
        .iter()
        .position(|e| **e == Delivery::HideInput(false));
    let gone = events
        .iter()
        .position(|e| matches!(e, Delivery::Disconnect(_)));
    assert!(shown < gone);
}

#[test]
fn create_asks_for_a_new_password() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    // A taken name is refused before anyone types a password for it.
    let out = h.send(2, "create Alice");
    assert!(hides(&out, 2).is_empty());
    assert_eq!(texts(&out, 2), ["The name Alice is already taken."]);

    let out = h.send(2, "create bob");
    assert_eq!(hides(&out, 2), [true]);
    assert_eq!(prompts(&out, 2), ["Choose a password: "]);
    assert_eq!(
        state_of(&out, 2).unwrap(),
        br#"{"password_for":{"create":"Bob"}}"#
    );
    let out = h.send(2, "hunter22 with spaces");
    assert_never_shown(&out, "hunter22");
    assert_eq!(hides(&out, 2), [false]);
    assert!(text(&out, 2).contains("Welcome to Testville, Bob! Your character has been created."));
    assert_eq!(state_of(&out, 2).unwrap(), br#"{"character":2}"#);

    // The hash was stored, not the password, and the one-line form finds it.
    let stored = h.db().credentials("bob").unwrap().unwrap();
    assert!(!stored.password_hash.contains("hunter22"));
    h.send(2, "quit");
    h.open(3);
    let out = h.send(3, "connect bob hunter22 with spaces");
    assert!(text(&out, 3).starts_with("Welcome back, Bob."));
}

#[test]
fn hidden_input_is_balanced_across_a_whole_session() {
    let mut h = game();
    h.create(1, "alice");
    h.open(2);
    let mut all = Outbox::new();
    for line in [
        "connect alice",
        "nope123",
        "connect alice",
        "",
        "create bob",
        "x",
        "connect alice",
        "secret1",
        "look",
    ] {
        all.events.extend(h.send(2, line).events);
    }
    let toggles = hides(&all, 2);
    assert_eq!(toggles.len(), 8);
    for pair in toggles.chunks(2) {
        assert_eq!(pair, [true, false]);
    }
}

#[test]
fn a_restarted_core_still_takes_the_next_line_as_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("game.db");
    let (asked, checking) = {
        let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
        h.create(1, "alice");
        h.open(2);
        let asked = state_of(&h.send(2, "connect alice"), 2).unwrap();
        // The core dies while the password is being checked: no ack, so the proxy will
        // hand the line to the next core.
        let checking = h.send_only(2, "secret1");
        assert!(acks(&checking, 2).is_empty());
        (asked, state_of(&checking, 2).unwrap())
    };

    // Restarted while the prompt was up: the proxy still hides input.
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    let mut out = Outbox::new();
    h.game()
        .session_restored(key(2), "192.0.2.1:4000", &asked, &mut out);
    assert!(out.is_empty());
    h.set_last_seq(2, 1);
    let out = h.send(2, "secret1");
    assert_eq!(hides(&out, 2), [false]);
    assert!(text(&out, 2).starts_with("Welcome back, Alice."));
    assert_never_shown(&out, "secret1");

    // Restarted while checking: input is showing already and is not shown "again".
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    let mut out = Outbox::new();
    h.game()
        .session_restored(key(3), "192.0.2.1:4000", &checking, &mut out);
    assert!(out.is_empty());
    h.set_last_seq(3, 1);
    let out = h.send(3, "secret1");
    assert!(hides(&out, 3).is_empty());
    assert!(text(&out, 3).starts_with("Welcome back, Alice."));
}

#[test]
fn flooding_a_hidden_login_still_shows_input_again() {
    let mut h = game();
    h.open(1);
    h.send(1, "create alice");
    let job = h.send_only(1, "secret1");
    for _ in 0..MAX_QUEUED_LINES {
        h.send_only(1, "look");
    }
    let flood = h.send_only(1, "look");
    assert_eq!(
        disconnect_of(&flood, 1),
        Some("Too much input while logging in.")
    );
    let mut all = job.events.clone();
    all.extend(flood.events);
    let mut done = Outbox::new();
    for job in job.jobs {
        h.game().password_done(job.run(), &mut done);
    }
    all.extend(done.events);
    let toggles: Vec<_> = all
        .iter()
        .filter_map(|(_, e)| match e {
            Delivery::HideInput(hide) => Some(*hide),
            _ => None,
        })
        .collect();
    assert_eq!(toggles, [false]);
}

// ---- GMCP ----

#[test]
fn login_and_moves_send_gmcp() {
    let mut h = game();
    h.speaks_gmcp(1);
    h.open(1);
    let out = h.send(1, "create alice secret1");
    let hall = tether_engine::world::derived_num("hall");
    let yard = tether_engine::world::derived_num("yard");
    assert_eq!(
        gmcp_of(&out, 1, "Char.Name"),
        [serde_json::json!({"name": "Alice", "fullname": "Alice"})]
    );
    assert_eq!(
        gmcp_of(&out, 1, "Char.Status"),
        [serde_json::json!({"level": 1, "room": "Great Hall"})]
    );
    assert_eq!(
        gmcp_of(&out, 1, "Char.Vitals"),
        [serde_json::json!({"hp": 100, "maxhp": 100, "mp": 100, "maxmp": 100})]
    );
    assert_eq!(
        gmcp_of(&out, 1, "Room.Info"),
        [serde_json::json!({
            "num": hall,
            "name": "Great Hall",
            "area": "Testville",
            "environment": "",
            "exits": {"north": yard},
        })]
    );

    let out = h.send(1, "n");
    let info = &gmcp_of(&out, 1, "Room.Info")[0];
    assert_eq!(
        (info["num"].as_u64(), info["exits"]["south"].as_u64()),
        (Some(yard.into()), Some(hall.into()))
    );
    assert_eq!(gmcp_of(&out, 1, "Char.Status")[0]["room"], "Courtyard");
    assert!(gmcp_of(&h.send(1, "look"), 1, "Room.Info").is_empty());

    let out = h.send(1, "title the {Brave}");
    assert_eq!(
        gmcp_of(&out, 1, "Char.Name"),
        [serde_json::json!({"name": "Alice", "fullname": "Alice the {Brave}"})]
    );
    assert_eq!(gmcp_of(&h.send(1, "rest"), 1, "Char.Vitals").len(), 1);
}

#[test]
fn say_and_tell_go_to_chat_windows() {
    let mut h = game();
    for n in 1..=3 {
        h.speaks_gmcp(n);
    }
    h.create(1, "alice");
    h.create(2, "bob");
    h.create(3, "carol");
    // Dave's client never agreed to GMCP: he reads the room, and is sent no GMCP at all.
    h.create(4, "dave");
    h.send(3, "north");
    let out = h.send(1, "say {red}hi");
    assert_eq!(text(&out, 4), "Alice says, \"{red}hi\"");
    assert!(
        out.events
            .iter()
            .all(|(k, e)| *k != key(4) || !matches!(e, Delivery::Gmcp { .. }))
    );
    assert_eq!(
        gmcp_of(&out, 1, "Comm.Channel.Text"),
        [serde_json::json!({"channel": "say", "talker": "Alice", "text": "You say, \"{red}hi\""})]
    );
    assert_eq!(
        gmcp_of(&out, 2, "Comm.Channel.Text"),
        [
            serde_json::json!({"channel": "say", "talker": "Alice", "text": "Alice says, \"{red}hi\""})
        ]
    );
    assert!(gmcp_of(&out, 3, "Comm.Channel.Text").is_empty());

    let out = h.send(1, "tell carol psst");
    assert_eq!(
        gmcp_of(&out, 3, "Comm.Channel.Text"),
        [
            serde_json::json!({"channel": "tell", "talker": "Alice", "text": "Alice tells you, \"psst\""})
        ]
    );
    assert_eq!(
        gmcp_of(&out, 1, "Comm.Channel.Text")[0]["text"],
        "You tell Carol, \"psst\""
    );
    assert!(gmcp_of(&out, 2, "Comm.Channel.Text").is_empty());
}

// ---- Client info ----

#[test]
fn client_shows_what_the_proxy_reported() {
    let mut h = game();
    // The proxy may report before the session is open.
    h.game().session_client(
        key(1),
        ClientInfo {
            client_name: Some("TINTIN++".into()),
            client_version: Some("2.02".into()),
            terminal_type: Some("tmux-256color".into()),
            mtts: Some(271),
            width: Some(120),
            height: Some(40),
            charset: tether_protocol::message::Charset::Utf8,
            screen_reader: false,
            gmcp: true,
        },
    );
    h.open(1);
    assert_eq!(
        texts(&h.send(1, "client"), 1),
        ["Client: TINTIN++ 2.02, terminal tmux-256color, 120x40, UTF-8, MTTS 271, GMCP on"]
    );
    h.send(1, "create alice secret1");
    h.game().session_client(
        key(1),
        ClientInfo {
            client_name: Some("Mudlet".into()),
            ..ClientInfo::default()
        },
    );
    assert_eq!(
        texts(&h.send(1, "client"), 1),
        ["Client: Mudlet, UTF-8, GMCP off"]
    );
    h.game().session_closed(key(1), &mut Outbox::new());
    assert_eq!(h.game().client_count(), 0);
}

// ---- Display settings ----

fn displays(out: &Outbox, n: u64) -> Vec<DisplayPrefs> {
    out.events
        .iter()
        .filter_map(|(k, e)| match e {
            Delivery::Display(prefs) if *k == key(n) => Some(*prefs),
            _ => None,
        })
        .collect()
}

#[test]
fn display_settings_are_saved_and_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("game.db");
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    h.open(1);
    let out = h.send(1, "create alice secret1");
    assert_eq!(displays(&out, 1), [DisplayPrefs::default()]);
    let shown = text(&h.send(1, "config"), 1);
    assert!(
        shown.contains("wrap   on") && shown.contains("color  auto"),
        "{shown}"
    );

    let out = h.send(1, "config wrap off");
    let off = DisplayPrefs {
        wrap: false,
        color: None,
    };
    assert_eq!(displays(&out, 1), [off]);
    assert_eq!(texts(&out, 1), ["Line wrapping is now off."]);
    // The proxy applies the settings before it shows the confirmation.
    let display = out
        .events
        .iter()
        .position(|(_, e)| matches!(e, Delivery::Display(_)));
    let confirm = out
        .events
        .iter()
        .position(|(_, e)| matches!(e, Delivery::Output(_)));
    assert!(display < confirm);

    let out = h.send(1, "config COLOR 256");
    let both = DisplayPrefs {
        wrap: false,
        color: Some(ColorDepth::Ansi256),
    };
    assert_eq!(displays(&out, 1), [both]);
    for bad in ["config color purple", "config wrap maybe", "config size 3"] {
        let out = h.send(1, bad);
        assert!(displays(&out, 1).is_empty(), "{bad}");
        assert_eq!(
            texts(&out, 1),
            ["Usage: config [wrap on|off | color auto|none|16|256|truecolor]"]
        );
    }

    // Saved with the character: a new core sends them at login, not at restore.
    let blob = state_of(&h.send(1, "config"), 1);
    assert!(blob.is_none());
    drop(h);
    let mut h = TestGame::with_db(tether_core::rules(), WORLD, Db::open(&path).unwrap());
    let mut out = Outbox::new();
    h.game()
        .session_restored(key(1), "192.0.2.1:4000", br#"{"character":1}"#, &mut out);
    assert!(out.is_empty());
    h.open(2);
    let out = h.send(2, "connect alice secret1");
    assert_eq!(displays(&out, 2), [both]);
    let display = out
        .events
        .iter()
        .position(|(_, e)| matches!(e, Delivery::Display(_)));
    let state = out
        .events
        .iter()
        .position(|(_, e)| matches!(e, Delivery::State(_)));
    let welcome = out
        .events
        .iter()
        .position(|(_, e)| matches!(e, Delivery::Output(_)));
    assert!(state < display && display < welcome);
}

// ---- MSSP ----

#[test]
fn mssp_counts_players() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.open(3);
    assert_eq!(h.game().players_online(), 2);
    let mssp: HashMap<String, String> = h
        .game()
        .mssp()
        .into_iter()
        .map(|var| (var.name, var.value))
        .collect();
    assert_eq!(mssp["NAME"], "Testville");
    assert_eq!(mssp["PLAYERS"], "2");
    assert_eq!(mssp["CODEBASE"], "tether");
    assert_eq!(mssp["ROOMS"], "2");
    assert!(!mssp.contains_key("UPTIME"));
    h.send(2, "quit");
    assert_eq!(
        h.game()
            .mssp()
            .iter()
            .find(|var| var.name == "PLAYERS")
            .unwrap()
            .value,
        "1"
    );
}

// ---- Playing the demo ----

#[test]
fn help_lists_commands_and_explains_one() {
    let mut h = game();
    h.create(1, "alice");
    let index = text(&h.send(1, "help"), 1);
    for line in [
        "look [me | <name> | <thing>]",
        "ooc <text>",
        "train",
        "quit",
    ] {
        assert!(index.contains(line), "{line} missing from:\n{index}");
    }
    assert!(
        !index.contains("@reload"),
        "admin commands are hidden: {index}"
    );
    assert!(index.contains("Topics: channels, movement"), "{index}");
    let page = text(&h.send(1, "help tell"), 1);
    assert!(page.starts_with("Usage: tell <name> <text>"), "{page}");
    let page = text(&h.send(1, "help L"), 1);
    assert!(
        page.starts_with("Usage: look") && page.contains("Also: l"),
        "{page}"
    );
    assert!(text(&h.send(1, "help channels"), 1).contains("ooc <text>"));
    assert_eq!(
        texts(&h.send(1, "help @reload"), 1),
        ["There is no help on \"@reload\"."]
    );
    assert_eq!(
        texts(&h.send(1, "help xyzzy"), 1),
        ["There is no help on \"xyzzy\"."]
    );
}

#[test]
fn look_at_yourself_and_at_the_rooms_details() {
    let mut h = game();
    h.create(1, "alice");
    h.send(1, "title the Curious");
    assert_eq!(
        texts(&h.send(1, "look me"), 1),
        ["You see yourself: Alice the Curious."]
    );
    assert_eq!(
        texts(&h.send(1, "look at tapestry"), 1),
        ["A faded hunting scene."]
    );
    assert_eq!(
        texts(&h.send(1, "l TAPESTRY"), 1),
        ["A faded hunting scene."]
    );
    assert_eq!(
        texts(&h.send(1, "look unicorn"), 1),
        ["You don't see \"unicorn\" here."]
    );
}

#[test]
fn ooc_reaches_everyone_and_chat_windows() {
    let mut h = game();
    h.create(1, "alice");
    h.create(2, "bob");
    h.speaks_gmcp(2);
    h.send(2, "north");
    let out = h.send(1, "ooc hello {red}all");
    for n in [1, 2] {
        assert_eq!(texts(&out, n), ["[ooc] Alice: hello {red}all"]);
    }
    assert_eq!(
        gmcp_of(&out, 2, "Comm.Channel.Text"),
        [
            serde_json::json!({"channel": "ooc", "talker": "Alice", "text": "[ooc] Alice: hello {red}all"})
        ]
    );
    assert!(gmcp_of(&out, 1, "Comm.Channel.Text").is_empty());
    assert_eq!(texts(&h.send(1, "ooc"), 1), ["Usage: ooc <text>"]);
}

#[test]
fn energy_spent_comes_back_on_the_tick_and_survives_a_restart() {
    let mut h = game();
    let blob = h.create(1, "alice");
    h.speaks_gmcp(1);
    let out = h.send(1, "train");
    assert_eq!(texts(&out, 1), ["You train hard and feel it in your arms."]);
    assert_eq!(prompts(&out, 1), ["100/100hp 75/100mp > "]);
    assert_eq!(gmcp_of(&out, 1, "Char.Vitals")[0]["mp"], 75);
    for _ in 0..3 {
        h.send(1, "train");
    }
    assert_eq!(
        texts(&h.send(1, "tra"), 1),
        ["You are too tired to train. Rest, or wait a little."]
    );

    // Saved with the character: a reloaded core still sees a tired Alice.
    let mut h = h.restart(tether_core::rules(), WORLD, &[(1, blob)]);
    h.speaks_gmcp(1);
    assert_eq!(prompts(&h.send(1, "look"), 1), ["100/100hp 0/100mp > "]);

    // The regeneration tick gives some back to those below full, and tells their gauges.
    let out = h.advance(tether_core::REGEN_EVERY);
    assert_eq!(gmcp_of(&out, 1, "Char.Vitals")[0]["mp"], 10);
    assert_eq!(prompts(&h.send(1, "look"), 1), ["100/100hp 10/100mp > "]);
    let out = h.advance(tether_core::REGEN_EVERY * 20);
    assert_eq!(prompts(&h.send(1, "look"), 1), [FULL_PROMPT]);
    // Full: the tick writes nothing more and tells nobody.
    assert!(gmcp_of(&out, 1, "Char.Vitals").len() <= 10);
    assert!(h.advance(tether_core::REGEN_EVERY).is_empty());
}
