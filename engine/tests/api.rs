//! The game API as a game uses it: commands and how lines find them, events, ticks and
//! timers across restarts, attributes, migrations, and a game's bugs costing only themselves.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_engine::testing::{TestGame, WORLD, prompts, state_of, text, texts};
use tether_engine::{Attribute, Command, CommandError, Db, Rules};

const GOLD: Attribute<u32> = Attribute::new("gold");
const COINS: Attribute<u32> = Attribute::new("coins");
const BELL: Attribute<Bell> = Attribute::new("bell");

#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Bell {
    rung: u32,
}

/// A small game: `gold`, `earn`, `ring` (room data), `boom` (a bug), `inventory`.
fn rules() -> Rules {
    let mut rules = Rules::new();
    rules
        .command(
            Command::new("inventory")
                .alias("i")
                .abbreviate(3)
                .summary("what you carry")
                .run(|ctx, _| {
                    let me = ctx.me().unwrap();
                    let gold = ctx.get(me, &GOLD);
                    ctx.send(me, format!("You carry {gold} gold."));
                    Ok(())
                }),
        )
        .command(
            Command::new("earn")
                .usage("earn <amount>")
                .run(|ctx, args| {
                    let me = ctx.me().unwrap();
                    let amount: u32 = args.text().parse().map_err(|_| CommandError::Usage)?;
                    let gold = ctx.get(me, &GOLD) + amount;
                    ctx.set(me, &GOLD, &gold)?;
                    ctx.send(me, format!("You now have {gold} gold."));
                    Ok(())
                }),
        )
        .command(Command::new("ring").shortcut('!').run(|ctx, _| {
            let me = ctx.me().unwrap();
            let room = ctx.room_of(me).to_owned();
            let mut bell = ctx.room_get(&room, &BELL);
            bell.rung += 1;
            ctx.room_set(&room, &BELL, &bell)?;
            ctx.tell_room(&room, None, &format!("The bell rings ({}).", bell.rung));
            Ok(())
        }))
        .command(Command::new("boom").run(|_, _| panic!("a bug in the game")))
        .command(Command::new("secret").admin_only().run(|ctx, _| {
            ctx.send(ctx.me().unwrap(), "Only for admins.");
            Ok(())
        }))
        .command(Command::new("brew").run(|ctx, args| {
            ctx.after(Duration::from_secs(30), "brewed", &args.text())?;
            ctx.send(ctx.me().unwrap(), "The kettle is on.");
            Ok(())
        }))
        .timer("brewed", |ctx, data| {
            if let Some(me) = ctx.me() {
                ctx.send(
                    me,
                    format!("Your {} is ready.", data.as_str().unwrap_or("?")),
                );
            }
        })
        .prompt(|ctx, me| format!("{}g> ", ctx.get(me, &GOLD)));
    rules
}

#[test]
fn commands_are_found_by_name_alias_abbreviation_and_shortcut() {
    let mut h = TestGame::new(rules());
    h.create(1, "alice");
    for typed in ["inventory", "INVENTORY", "i", "inv", "inve"] {
        assert_eq!(
            texts(&h.send(1, typed), 1),
            ["You carry 0 gold."],
            "{typed}"
        );
    }
    assert_eq!(
        texts(&h.send(1, "in"), 1),
        ["Huh? Type \"help\" for commands."],
        "shorter than the abbreviation allows"
    );
    assert_eq!(texts(&h.send(1, "!"), 1), ["The bell rings (1)."]);
    assert_eq!(texts(&h.send(1, "earn lots"), 1), ["Usage: earn <amount>"]);
    // Admin-only commands do not exist for others.
    assert_eq!(
        texts(&h.send(1, "secret"), 1),
        ["Huh? Type \"help\" for commands."]
    );
    h.db().set_admin("alice", true).unwrap();
    assert_eq!(texts(&h.send(1, "secret"), 1), ["Only for admins."]);
}

#[test]
fn attributes_are_saved_and_read_back_after_a_restart() {
    let mut h = TestGame::new(rules());
    let blob = h.create(1, "alice");
    let out = h.send(1, "earn 5");
    assert_eq!(texts(&out, 1), ["You now have 5 gold."]);
    assert_eq!(prompts(&out, 1), ["5g> "]);
    h.send(1, "ring");
    let mut h = h.restart(rules(), WORLD, &[(1, blob)]);
    assert_eq!(texts(&h.send(1, "i"), 1), ["You carry 5 gold."]);
    assert_eq!(texts(&h.send(1, "ring"), 1), ["The bell rings (2)."]);
}

/// A new core takes a proxy's sessions over all at once (`Game::sessions_restored`, as at a
/// reload), reading their characters together: each gets its own character and data back,
/// and a session whose character is gone, or whose blob cannot be read, is logged out
/// without taking the others with it.
#[test]
fn a_core_taking_over_restores_every_session_at_once() {
    let mut h = TestGame::new(rules());
    let alice = h.create(1, "alice");
    let bob = h.create(2, "bob");
    h.send(1, "earn 5");
    h.send(2, "earn 3");
    h.send(2, "earn 4");
    let gone = br#"{"character":999999}"#.to_vec();
    let garbled = b"{not json".to_vec();
    let mut h = h.restart(
        rules(),
        WORLD,
        &[(1, alice), (2, bob), (3, gone), (4, garbled)],
    );
    assert_eq!(texts(&h.send(1, "i"), 1), ["You carry 5 gold."]);
    assert_eq!(texts(&h.send(2, "i"), 2), ["You carry 7 gold."]);
    for (n, name) in [(3, "carol"), (4, "dave")] {
        let out = h.send(n, &format!("create {name} secret1"));
        assert!(
            state_of(&out, n).is_some(),
            "session {n} is at the login and can create a character: {:?}",
            texts(&out, n)
        );
    }
}

#[test]
fn a_panicking_command_costs_only_its_line() {
    let mut h = TestGame::new(rules());
    h.create(1, "alice");
    let out = h.send(1, "boom");
    assert!(
        text(&out, 1).contains("That command failed"),
        "{}",
        text(&out, 1)
    );
    assert_eq!(prompts(&out, 1), ["0g> "]);
    assert_eq!(texts(&h.send(1, "i"), 1), ["You carry 0 gold."]);
}

#[test]
fn timers_fire_once_even_across_a_restart() {
    let mut h = TestGame::new(rules());
    let blob = h.create(1, "alice");
    h.send(1, "brew mint tea");
    assert!(h.advance(Duration::from_secs(20)).is_empty());
    let mut h = h.restart(rules(), WORLD, &[(1, blob)]);
    let out = h.advance(Duration::from_secs(9));
    assert!(out.is_empty(), "{:?}", out.events);
    let out = h.advance(Duration::from_secs(2));
    assert_eq!(texts(&out, 1), ["Your mint tea is ready."]);
    // A fresh prompt follows text that arrived on its own.
    assert_eq!(prompts(&out, 1), ["0g> "]);
    assert!(h.advance(Duration::from_secs(60)).is_empty());
}

#[test]
fn ticks_keep_their_rhythm_across_restarts() {
    let runs = Rc::new(RefCell::new(0));
    let rules_counting = |runs: &Rc<RefCell<u32>>| {
        let runs = runs.clone();
        let mut rules = Rules::new();
        rules.every("minute", Duration::from_secs(60), move |_| {
            *runs.borrow_mut() += 1;
        });
        rules
    };
    let mut h = TestGame::new(rules_counting(&runs));
    // Restarted every 40 s, more often than the tick's period: it still comes every minute.
    for _ in 0..3 {
        h.advance(Duration::from_secs(40));
        h = h.restart(rules_counting(&runs), WORLD, &[]);
    }
    assert_eq!(*runs.borrow(), 2, "at 60 s and 120 s");
}

#[test]
fn events_follow_a_player_in_and_out() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut rules = Rules::new();
    let log = seen.clone();
    rules.on_event(move |ctx, event| {
        let who = ctx
            .me()
            .map(|me| ctx.name(me).to_owned())
            .unwrap_or_default();
        log.borrow_mut().push(format!("{who}: {event:?}"));
    });
    rules.command(Command::new("north").run(|ctx, _| {
        let me = ctx.me().unwrap();
        ctx.move_to(me, "yard")?;
        Ok(())
    }));
    let mut h = TestGame::new(rules);
    h.create(1, "alice");
    h.send(1, "north");
    h.close(1);
    assert_eq!(
        *seen.borrow(),
        [
            "Alice: LoggedIn { new: true }",
            "Alice: Entered { room: \"hall\", from: None }",
            "Alice: Left { room: \"hall\", to: \"yard\" }",
            "Alice: Entered { room: \"yard\", from: Some(\"hall\") }",
            "Alice: Disconnected",
        ]
    );
}

#[test]
fn migrations_run_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("game.db");
    let blob = {
        let mut h = TestGame::with_db(rules(), WORLD, Db::open(&path).unwrap());
        let blob = h.create(1, "alice");
        h.send(1, "earn 7");
        blob
    };
    // The next version of the game counts coins in copper.
    let next = || {
        let mut rules = rules();
        rules.migration(1, "gold becomes coins, in copper", |m| {
            m.rename_character_attribute("gold", "coins")?;
            for (character, gold) in m.character_values::<u32>("coins")? {
                m.set_character_value(character, "coins", &(gold * 100))?;
            }
            Ok(())
        });
        rules.command(Command::new("purse").run(|ctx, _| {
            let me = ctx.me().unwrap();
            let coins = ctx.get(me, &COINS);
            ctx.send(me, format!("{coins} copper."));
            Ok(())
        }));
        rules
    };
    for _ in 0..2 {
        let mut h = TestGame::with_db(next(), WORLD, Db::open(&path).unwrap());
        let mut out = tether_engine::testing::Outbox::new();
        h.game()
            .session_restored(tether_engine::testing::key(1), "", &blob, &mut out);
        h.set_last_seq(1, 10);
        assert_eq!(texts(&h.send(1, "purse"), 1), ["700 copper."]);
    }
    // A migration that fails leaves nothing half done and says why.
    let mut broken = next();
    broken.migration(2, "impossible", |m| {
        m.rename_character_attribute("coins", "money")?;
        Err(tether_engine::MigrationError::new("no"))
    });
    let error = Db::open(&path)
        .unwrap()
        .run_game_migrations(&broken)
        .unwrap_err();
    assert!(
        error.to_string().contains("migration 2 (impossible)"),
        "{error}"
    );
    let mut h = TestGame::with_db(next(), WORLD, Db::open(&path).unwrap());
    let mut out = tether_engine::testing::Outbox::new();
    h.game()
        .session_restored(tether_engine::testing::key(1), "", &blob, &mut out);
    h.set_last_seq(1, 10);
    assert_eq!(texts(&h.send(1, "purse"), 1), ["700 copper."]);
}
