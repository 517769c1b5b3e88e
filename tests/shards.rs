//! The proxy spreads telnet players over its shards (threads, each with its own link to the
//! core). Players on different shards share one world, and every shard's link comes back
//! after a core reload without a player noticing.

use tether_tests::{Client, Options, Tether, wait_for};

/// The proxy's shard threads, by name, from /proc.
fn shard_threads(proxy_pid: i32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{proxy_pid}/task")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("tether-shard-"))
        .collect();
    names.sort();
    names
}

/// Everyone says something; everyone else hears it.
fn all_hear_all(players: &mut [Client], names: &[&str], round: &str) {
    for speaker in 0..players.len() {
        let token = format!("{round}-from-{}", names[speaker]);
        players[speaker].send(&format!("say {token}"));
        players[speaker].expect(&format!("You say, \"{token}\""));
        for (listener, player) in players.iter_mut().enumerate() {
            if listener != speaker {
                player.expect(&format!("{} says, \"{token}\"", names[speaker]));
            }
        }
    }
}

#[test]
fn players_on_different_shards_share_the_world_across_a_reload() {
    let tether = Tether::start_with(Options {
        proxy_shards: Some(3),
        ..Options::default()
    });
    let proxy = tether.proxy_pid();
    let threads = wait_for("three shard threads", || {
        let threads = shard_threads(proxy);
        (threads.len() == 3).then_some(threads)
    });
    assert_eq!(
        threads,
        ["tether-shard-0", "tether-shard-1", "tether-shard-2"]
    );

    // Connections go round the shards in turn, so three players in a row sit on three.
    let names = ["Ash", "Birch", "Cedar"];
    let mut players: Vec<Client> = names
        .iter()
        .map(|name| {
            let mut player = tether.connect();
            player.create(name, &format!("{}-secret", name.to_lowercase()));
            player
        })
        .collect();
    players[0].expect("Cedar has entered the game.");
    all_hear_all(&mut players, &names, "before");

    let core = tether.core_pid();
    tether.reload();
    tether.wait_for_new_core(core);
    all_hear_all(&mut players, &names, "after");
    for player in &mut players {
        player.send("who");
        player.expect("Cedar");
        assert!(!player.is_closed(), "a player was disconnected");
    }
    assert_eq!(tether.proxy_pid(), proxy, "the proxy was not restarted");
}
