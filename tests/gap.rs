//! When the core is away for a while: one notice, bounded queueing with a clear refusal, and
//! every accepted line delivered once the core is back. Also: rebuilding the core binary
//! hot-deploys it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tether_tests::{Options, Tether, binary, wait_for};

/// A core "binary" that waits while `hold` exists before starting the real core (a core that
/// takes as long to start as the test wants), and fails at once while `<hold>.broken` exists
/// (a broken build).
fn held_core(dir: &Path) -> (PathBuf, PathBuf) {
    let hold = dir.join("hold");
    let script = dir.join("core.sh");
    write_script(&script, &hold, "");
    (script, hold)
}

fn write_script(script: &Path, hold: &Path, comment: &str) {
    let body = format!(
        "#!/bin/sh\n# {comment}\n\
         if [ -e '{hold}.broken' ]; then echo 'this build is broken' >&2; exit 3; fi\n\
         while [ -e '{hold}' ]; do sleep 0.02; done\nexec '{core}' \"$@\"\n",
        hold = hold.display(),
        core = binary("tether-core").display()
    );
    // Write aside and rename, as cargo does, so the supervisor never runs a half-written file.
    let staging = script.with_extension("new");
    std::fs::write(&staging, body).expect("writing the core script");
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&staging, script).expect("installing the core script");
}

#[test]
fn a_long_gap_is_announced_once_and_queued_lines_are_delivered() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let (script, hold) = held_core(scratch.path());
    let tether = Tether::start_with(Options {
        core_bin: Some(script),
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Patience", "waiting1");

    std::fs::write(&hold, b"").expect("holding the next core");
    let doomed = tether.core_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the core");

    for n in 1..=100 {
        player.send(&format!("say queued {n}"));
    }
    player.send("say one too many");
    player.expect("was not accepted");
    player.expect("The game is restarting");

    std::fs::remove_file(&hold).expect("releasing the core");
    player.expect("The game is back.");
    for n in 1..=100 {
        player.expect(&format!("You say, \"queued {n}\""));
    }
    player.send("say after the gap");
    player.expect("You say, \"after the gap\"");
    let transcript = player.transcript.join("\n");
    assert_eq!(transcript.matches("The game is restarting").count(), 1);
    assert!(
        !transcript.contains("one too many\""),
        "the refused line was not said"
    );
}

#[test]
fn rebuilding_the_core_binary_hot_deploys_it() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let (script, hold) = held_core(scratch.path());
    let tether = Tether::start_with(Options {
        core_bin: Some(script.clone()),
        watch: true,
        ..Options::default()
    });
    let mut player = tether.connect();
    player.create("Builder", "compile1");
    let before = tether.core_pid();

    write_script(&script, &hold, "rebuilt");
    let after = tether.wait_for_new_core(before);
    assert_ne!(before, after);
    wait_for("the old core to be gone", || {
        (!Path::new(&format!("/proc/{before}")).exists()).then_some(())
    });
    player.send("say new code");
    player.expect("You say, \"new code\"");
    assert!(!player.is_closed());
}

#[test]
fn a_broken_build_never_takes_the_game_down() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let (script, hold) = held_core(scratch.path());
    let tether = Tether::start_with(Options {
        core_bin: Some(script),
        ..Options::default()
    });
    let mut admin = tether.connect();
    admin.create("Admin", "adminpw1");
    tether.promote("Admin");
    let serving = tether.core_pid();

    std::fs::write(hold.with_extension("broken"), b"").expect("breaking the build");
    admin.send("@reload");
    admin.expect("Reloading");
    admin.expect("The reload did not happen: reload failed");
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(!ok && text.contains("reload failed"), "{text}");

    assert_eq!(tether.core_pid(), serving, "the old core keeps serving");
    admin.send("say still in business");
    admin.expect("You say, \"still in business\"");
}

#[test]
fn a_failed_reload_says_why_everywhere() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let world = scratch.path().join("world.toml");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("world/default.toml"),
    )
    .expect("the built-in world");
    std::fs::write(&world, &good).expect("writing the world");
    let tether = Tether::start_with(Options {
        world: Some(world.clone()),
        capture_log: true,
        ..Options::default()
    });
    let mut admin = tether.connect();
    admin.create("Builder", "builder1");
    tether.promote("Builder");
    let serving = tether.core_pid();

    // A dangling exit: the reason names the room, the exit and where it leads.
    let dangling = good.replacen("east = \"market\"", "east = \"nowhere\"", 1);
    assert_ne!(dangling, good, "the world has an exit to break");
    std::fs::write(&world, dangling).expect("breaking the world");
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(!ok, "tether reload exits 1: {text}");
    assert!(
        text.contains("reload failed")
            && text.contains("leads to \"nowhere\", which is not a room"),
        "{text}"
    );
    admin.send("@reload");
    let told = admin.expect("The reload did not happen");
    assert!(
        told.contains("leads to \"nowhere\", which is not a room"),
        "{told}"
    );
    tether.expect_log(&["reload failed", "leads to \"nowhere\""]);

    // A TOML syntax error: the reason has the line.
    std::fs::write(&world, "[rooms.square\nname = \"x\"\n").expect("breaking the world");
    let (ok, text) = tether.ctl(&["reload"]);
    assert!(!ok && text.contains("line 1"), "{text}");

    assert_eq!(tether.core_pid(), serving, "the old core keeps serving");
    admin.send("say still standing");
    admin.expect("You say, \"still standing\"");
}
