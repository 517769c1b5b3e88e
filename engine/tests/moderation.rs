//! The administrators' tools in the game: kick, bans by name and by address with expiry,
//! `@wall`, a shutdown countdown that outlives a reload and can be called off, promote and
//! demote, and the audit trail that records all of it.

use std::time::Duration;

use tether_engine::AdminRequest;
use tether_engine::testing::{TestGame, WORLD, disconnect_of, key, text, texts};
use tether_engine::{Db, Rules};

/// Root (an administrator, session 1) and Bob (a player, session 2), both in the game.
fn game() -> TestGame {
    let mut game = TestGame::new(Rules::new());
    game.create(1, "root");
    game.create(2, "bob");
    assert_eq!(game.db().set_admin("root", true).unwrap(), Some(false));
    game
}

/// The last words session `n` was sent, as text.
fn farewell(out: &tether_engine::Outbox, n: u64) -> Option<String> {
    disconnect_of(out, n).map(str::to_owned)
}

fn everything(out: &tether_engine::Outbox, n: u64) -> String {
    texts(out, n).join("\n")
}

#[test]
fn a_kick_closes_the_players_connection_with_the_reason() {
    let mut game = game();
    let out = game.send(2, "@kick root");
    assert_eq!(disconnect_of(&out, 1), None, "players cannot kick");
    let out = game.send(1, "@kick bob shouting in caps");
    assert_eq!(
        farewell(&out, 2).as_deref(),
        Some("An administrator has disconnected you. Reason: shouting in caps")
    );
    assert_eq!(text(&out, 1), "Bob has been disconnected.");
    game.close(2);
    assert_eq!(
        text(&game.send(1, "@kick bob"), 1),
        "Bob is not in the game."
    );
    assert_eq!(
        text(&game.send(1, "@kick root"), 1),
        "You cannot do that to yourself."
    );
    assert_eq!(
        text(&game.send(1, "@kick"), 1),
        "Usage: @kick <name> [reason]"
    );
}

#[test]
fn a_name_ban_keeps_the_character_out_until_it_expires_or_is_lifted() {
    let mut game = game();
    let out = game.send(1, "@ban bob 1h cheating");
    assert_eq!(
        text(&out, 1),
        "Bob is banned for 1 hour. 1 connection was closed."
    );
    assert_eq!(
        farewell(&out, 2).as_deref(),
        Some("This character is banned for 1 hour. Reason: cheating")
    );
    game.close(2);

    // The right password only learns of the ban; a wrong one learns nothing.
    game.open(3);
    let out = game.send(3, "connect bob wrongpass");
    assert_eq!(disconnect_of(&out, 3), None);
    let out = game.send(3, "connect bob secret1");
    assert!(
        disconnect_of(&out, 3).is_some_and(|why| why.contains("banned")),
        "{out:?}"
    );
    game.close(3);
    // A banned name cannot be made again either (here: a name banned before it exists).
    game.send(1, "@ban mallory");
    game.open(4);
    assert_eq!(
        text(&game.send(4, "create mallory secret1"), 4),
        "The name Mallory cannot be used."
    );
    let listed = text(&game.send(1, "@bans"), 1);
    assert!(
        listed.contains("Bob") && listed.contains("1 hour left, by Root: cheating"),
        "{listed}"
    );
    assert!(
        listed.contains("Mallory") && listed.contains("until lifted"),
        "{listed}"
    );

    // An hour later Bob is back.
    game.advance(Duration::from_secs(3600));
    game.open(5);
    let out = game.send(5, "connect bob secret1");
    assert_eq!(disconnect_of(&out, 5), None);
    assert!(everything(&out, 5).contains("Welcome back"), "{out:?}");

    assert_eq!(
        text(&game.send(1, "@unban mallory"), 1),
        "The ban on Mallory is lifted."
    );
    assert_eq!(
        text(&game.send(1, "@unban mallory"), 1),
        "Mallory is not banned."
    );
    assert_eq!(
        text(&game.send(1, "@ban root"), 1),
        "You cannot do that to yourself."
    );
}

#[test]
fn an_address_ban_closes_every_connection_from_it_and_turns_new_ones_away() {
    let mut game = game();
    game.open_from(3, "203.0.113.9:4100");
    game.open_from(4, "[::ffff:203.0.113.9]:4101");
    game.open_from(5, "198.51.100.1:4102");
    let out = game.send(1, "@ban 203.0.113.9 7d bots");
    assert_eq!(
        text(&out, 1),
        "address 203.0.113.9 is banned for 1 week. 2 connections were closed."
    );
    for n in [3, 4] {
        assert_eq!(
            farewell(&out, n).as_deref(),
            Some("Connections from your address are banned for 1 week. Reason: bots")
        );
    }
    assert_eq!(disconnect_of(&out, 5), None);
    let out = game.open_from(6, "203.0.113.9:4200");
    assert!(disconnect_of(&out, 6).is_some(), "{out:?}");
    assert!(
        !everything(&out, 6).contains("Welcome"),
        "no banner: {out:?}"
    );
    // The administrator's own address (here every test session's) is refused.
    assert_eq!(
        text(&game.send(1, "@ban 127.0.0.1"), 1),
        "You cannot do that to yourself."
    );
    game.send(1, "@unban 203.0.113.9");
    assert_eq!(
        disconnect_of(&game.open_from(7, "203.0.113.9:4300"), 7),
        None
    );
}

#[test]
fn a_wall_reaches_everyone_and_stays_text() {
    let mut game = game();
    game.open(3);
    let out = game.send(1, "@wall {red}Server restarts at noon");
    for n in [1, 2, 3] {
        assert_eq!(texts(&out, n), ["[Root] {red}Server restarts at noon"]);
    }
    assert!(
        game.send(2, "@wall hi")
            .events
            .iter()
            .all(|(k, _)| *k == key(2))
    );
}

#[test]
fn a_shutdown_counts_down_through_a_reload_and_happens_once() {
    let mut game = game();
    let out = game.send(1, "@shutdown 5 new areas");
    for n in [1, 2] {
        assert_eq!(
            texts(&out, n),
            ["The server shuts down in 5 minutes. Reason: new areas"]
        );
    }
    assert!(out.requests.is_empty());
    let out = game.advance(Duration::from_secs(180));
    assert_eq!(
        texts(&out, 2),
        ["The server shuts down in 2 minutes. Reason: new areas"]
    );
    assert!(
        text(&game.send(2, "@shutdown"), 2).starts_with("Huh?"),
        "players cannot see it"
    );
    assert!(text(&game.send(1, "@shutdown"), 1).contains("as Root planned"));

    // A core reload in the middle: the countdown carries on where it was.
    let blobs = [(1, root_blob(&mut game)), (2, Vec::new())];
    let mut game = game.restart(Rules::new(), WORLD, &blobs);
    let out = game.advance(Duration::from_secs(70));
    assert_eq!(
        texts(&out, 1),
        ["The server shuts down in 1 minute. Reason: new areas"]
    );
    let out = game.advance(Duration::from_secs(60));
    assert_eq!(
        texts(&out, 1),
        [
            "The server shuts down in 30 seconds. Reason: new areas",
            "The server shuts down in 10 seconds. Reason: new areas",
            "The server is shutting down now. Reason: new areas"
        ]
    );
    assert_eq!(out.requests, [(None, AdminRequest::Shutdown)]);
    assert!(game.advance(Duration::from_secs(600)).requests.is_empty());
    assert_eq!(game.db().planned_shutdown().unwrap(), None, "done once");
}

/// Root's session blob, as the proxy would keep it: logging in again gives it.
fn root_blob(game: &mut TestGame) -> Vec<u8> {
    game.open(9);
    let out = game.send(9, "connect root secret1");
    tether_engine::testing::state_of(&out, 9).expect("logged in")
}

#[test]
fn a_shutdown_can_be_called_off_or_made_at_once() {
    let mut game = game();
    game.send(1, "@shutdown 10m");
    let out = game.send(1, "@shutdown cancel");
    assert_eq!(texts(&out, 2), ["The shutdown is called off."]);
    assert!(game.advance(Duration::from_secs(700)).requests.is_empty());
    assert!(text(&game.send(1, "@shutdown cancel"), 1).starts_with("No shutdown is planned"));
    assert_eq!(
        text(&game.send(1, "@shutdown soon"), 1),
        "Usage: @shutdown now|<minutes>|<time>|cancel [reason]"
    );
    let out = game.send(1, "@shutdown now");
    assert_eq!(texts(&out, 2), ["The server is shutting down now."]);
    assert_eq!(out.requests, [(Some(key(1)), AdminRequest::Shutdown)]);
}

#[test]
fn promotions_count_at_once_and_every_action_is_on_record() {
    let mut game = game();
    assert_eq!(
        text(&game.send(1, "@promote bob"), 1),
        "Bob is now an administrator."
    );
    assert_eq!(
        text(&game.send(2, "@demote bob"), 2),
        "You cannot do that to yourself."
    );
    assert_eq!(
        text(&game.send(2, "@demote root"), 2),
        "Root is no longer an administrator."
    );
    assert!(text(&game.send(1, "@audit"), 1).starts_with("Huh?"));
    assert_eq!(
        text(&game.send(2, "@promote nobody"), 2),
        "There is no character named Nobody."
    );
    game.send(2, "@wall hello");
    game.send(2, "@reload");
    let trail = text(&game.send(2, "@audit"), 2);
    let lines: Vec<&str> = trail.lines().skip(1).collect();
    assert_eq!(lines.len(), 4, "{trail}");
    for (line, said) in lines.iter().zip([
        "Root promote Bob",
        "Bob demote Root",
        "Bob wall everyone (hello)",
        "Bob reload server",
    ]) {
        assert!(line.ends_with(said), "{line:?} should end with {said:?}");
    }
}

#[test]
fn bans_and_the_trail_are_in_the_database() {
    let mut game = game();
    game.send(1, "@ban bob 2h");
    let db: &Db = game.db();
    assert_eq!(db.audit_trail(10).unwrap().len(), 1);
    assert_eq!(db.bans(i64::MAX - 1).unwrap().len(), 0, "it expires");
}
