//! What a game on the open internet needs from its host and its players' text: private files,
//! and nothing typed that draws one thing and says another.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tether_tests::{Options, Tether};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_and_the_database_are_the_owners_alone() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = || Options {
        root: Some(root.path().to_path_buf()),
        capture_log: true,
        ..Options::default()
    };
    let tether = Tether::start_with(options());
    let mut player = tether.connect();
    player.create("Hashed", "secret-one");
    let data = tether.data_dir();
    let db = data.join("tether.db");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&data.join("tether.db-wal")), 0o600);
    assert!(!tether.log().contains("open to other users"));
    drop(player);
    drop(tether);

    // Files an older tether (or an operator's cp) left readable are tightened at start.
    for (path, open) in [
        (data.clone(), 0o755),
        (db.clone(), 0o644),
        (data.join("tether.db-wal"), 0o644),
    ] {
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).expect("chmod");
        }
    }
    let tether = Tether::start_with(options());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    tether.expect_log(&["data directory was open to other users (mode 755); made it 700"]);
    tether.expect_log(&[
        "tether.db",
        "was open to other users (mode 644); made it 600",
    ]);
    let mut player = tether.connect();
    player.login("Hashed", "secret-one");
}

#[test]
fn characters_that_draw_nothing_never_reach_another_screen() {
    let tether = Tether::start();
    let mut alice = tether.connect();
    alice.create("Alice", "wonderland");
    let mut bob = tether.connect();
    bob.create("Bob", "builder1");

    bob.send("title \u{200b}the\u{200d} Bo\u{feff}ld");
    bob.expect("You are now known as");
    alice.send("who");
    let who = alice.expect("Bob the");
    assert!(who.contains("Bob the Bold"), "{who:?}");

    bob.send("emote wa\u{200b}ves as A\u{200c}lice");
    let emote = alice.expect("waves");
    assert!(emote.contains("Bob waves as Alice"), "{emote:?}");

    bob.send("tell alice \u{2060}hi\u{feff}");
    let tell = alice.expect("tells you");
    assert!(tell.ends_with("\"hi\""), "{tell:?}");
}
