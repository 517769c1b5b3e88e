//! Proxies on other hosts: a core that also listens on TCP (`--link-listen`), and a second
//! `tether` that runs only a proxy (`--core`), attached over TCP with TLS where each side
//! proves its certificate, made by `tether link-certs`. Loopback stands in for the network.
//!
//! Everything the local link does holds over it: players on both proxies share one world;
//! reloads and a `kill -9` of the core lose nothing on either; the edge proxy's upgrade (a
//! TLS link cannot move between processes, so it detaches and its successor attaches again)
//! loses nothing either. A proxy whose certificate another authority signed is refused, and
//! the core's log says so.
//!
//! A second `tether` on the core's own host runs one more proxy on the core's link socket
//! (`--core DATA/link.sock`, for more players than one process's open files allow): the same
//! holds there, its upgrade moving the socket itself to the new proxy.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use tether_tests::typing::{Typed, assert_exactly_once_in_order, type_through};
use tether_tests::{Client, Options, Tether, binary, free_port, wait_for};

/// Runs `tether link-certs <args> --data <data>`, which must succeed.
fn link_certs(data: &Path, args: &[&str]) -> String {
    let output = Command::new(binary("tether"))
        .arg("link-certs")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("running tether link-certs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "tether link-certs {args:?}: {text}"
    );
    text
}

/// A game whose core takes proxies on `link_port`, and an edge host's tether in front of it.
fn core_and_edge() -> (Tether, Tether, u16, tempfile::TempDir) {
    let dirs = tempfile::tempdir().expect("temp dir");
    let core_root = dirs.path().join("core-host");
    let edge_root = dirs.path().join("edge-host");
    let said = link_certs(&core_root.join("data"), &["init"]);
    assert!(said.contains("link authority"), "{said}");
    link_certs(
        &core_root.join("data"),
        &[
            "proxy",
            "edge-1",
            "--out",
            edge_root
                .join("data/link-tls")
                .to_str()
                .expect("utf-8 path"),
        ],
    );
    let link_port = free_port();
    let core_host = Tether::start_with(Options {
        root: Some(core_root),
        capture_log: true,
        args: vec!["--link-listen".into(), format!("127.0.0.1:{link_port}")],
        ..Options::default()
    });
    // Started, it has shown a player the banner: it is attached over TCP.
    let edge = Tether::start_with(Options {
        root: Some(edge_root),
        capture_log: true,
        args: vec!["--core".into(), format!("127.0.0.1:{link_port}")],
        ..Options::default()
    });
    core_host.expect_log(&["a proxy on another host proved its certificate"]);
    (core_host, edge, link_port, dirs)
}

/// Both players type through `disrupt` at once; each line of each answered exactly once.
fn both_type_through(
    local: &mut Client,
    remote: &mut Client,
    disrupt: impl FnOnce() + Send,
) -> (Typed, Typed) {
    let disrupted = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let local_typing = scope.spawn(|| {
            type_through(local, || {
                wait_for("the disruption", || {
                    disrupted.load(Ordering::SeqCst).then_some(())
                })
            })
        });
        let remote_typed = type_through(remote, || {
            disrupt();
            disrupted.store(true, Ordering::SeqCst);
        });
        let local_typed = local_typing.join().expect("the local typist");
        assert_exactly_once_in_order(&local_typed);
        assert_exactly_once_in_order(&remote_typed);
        (local_typed, remote_typed)
    })
}

#[test]
fn a_proxy_on_another_host_plays_through_reloads_crashes_and_its_own_upgrade() {
    let (core_host, edge, _link_port, _dirs) = core_and_edge();
    assert!(
        edge.status().contains("another supervisor runs it"),
        "{}",
        edge.status()
    );
    let (refused, said) = edge.ctl(&["reload"]);
    assert!(
        !refused && said.contains("reload it there"),
        "an edge host has no core to reload: {said}"
    );

    let mut alice = core_host.connect();
    alice.create("Alice", "wonderland");
    let mut bob = edge.connect();
    bob.create("Bob", "builder1");
    bob.send("say hello from the edge");
    alice.expect("Bob says, \"hello from the edge\"");
    alice.send("say and hello from the core's host");
    bob.expect("Alice says, \"and hello from the core's host\"");

    let (local, remote) = both_type_through(&mut alice, &mut bob, || {
        core_host.reload();
    });
    eprintln!(
        "reload: local {} lines (longest {:?}), remote {} lines (longest {:?})",
        local.sent, local.longest_wait, remote.sent, remote.longest_wait
    );

    let doomed = core_host.core_pid();
    let (local, remote) = both_type_through(&mut alice, &mut bob, || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(doomed),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 the core");
        core_host.wait_for_new_core(doomed);
    });
    eprintln!(
        "kill -9: local {} lines (longest {:?}), remote {} lines (longest {:?})",
        local.sent, local.longest_wait, remote.sent, remote.longest_wait
    );

    // The edge's proxy hands over to a new one: its TLS link detaches, and the core keeps
    // Bob's session and what it says to him until the new proxy attaches.
    let old_edge_proxy = edge.proxy_pid();
    let (local, remote) = both_type_through(&mut alice, &mut bob, || {
        edge.upgrade_proxy();
    });
    assert_ne!(
        edge.proxy_pid(),
        old_edge_proxy,
        "the edge proxy was replaced"
    );
    core_host.expect_log(&["proxy attached again after its detach"]);
    eprintln!(
        "edge upgrade: local {} lines (longest {:?}), remote {} lines (longest {:?})",
        local.sent, local.longest_wait, remote.sent, remote.longest_wait
    );

    // Still one world, and Bob still speaks as Bob: he was never logged out.
    bob.send("say still here");
    alice.expect("Bob says, \"still here\"");
}

#[test]
fn a_second_proxy_on_the_core_host_attaches_over_the_link_socket() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let core_host = Tether::start_with(Options {
        root: Some(dirs.path().join("first")),
        ..Options::default()
    });
    let socket = core_host.data_dir().join("link.sock");
    let second = Tether::start_with(Options {
        root: Some(dirs.path().join("second")),
        args: vec!["--core".into(), socket.display().to_string()],
        ..Options::default()
    });
    assert!(
        second.status().contains("another supervisor runs it"),
        "{}",
        second.status()
    );

    let mut alice = core_host.connect();
    alice.create("Alice", "wonderland");
    let mut bob = second.connect();
    bob.create("Bob", "builder1");
    bob.send("say hello from the second proxy");
    alice.expect("Bob says, \"hello from the second proxy\"");

    let (local, other) = both_type_through(&mut alice, &mut bob, || {
        core_host.reload();
    });
    eprintln!(
        "reload: first {} lines (longest {:?}), second {} lines (longest {:?})",
        local.sent, local.longest_wait, other.sent, other.longest_wait
    );

    // Its upgrade hands the link socket itself to the new proxy, as on the core's host.
    let old_proxy = second.proxy_pid();
    both_type_through(&mut alice, &mut bob, || {
        second.upgrade_proxy();
    });
    assert_ne!(
        second.proxy_pid(),
        old_proxy,
        "the second proxy was replaced"
    );
    bob.send("say still here");
    alice.expect("Bob says, \"still here\"");
}

/// The benchmark's players, as it runs them at 20,000 and more: `tether-bots` spread over two
/// proxies (`--target A,B`), each bot taking MCCP2 and GMCP as Mudlet does. Every bot logs in,
/// is compressed and hears GMCP, and every command is answered.
#[test]
fn bots_play_on_two_proxies_compressed_and_with_gmcp() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let first = Tether::start_with(Options {
        root: Some(dirs.path().join("first")),
        capture_log: true,
        ..Options::default()
    });
    let second = Tether::start_with(Options {
        root: Some(dirs.path().join("second")),
        args: vec![
            "--core".into(),
            first.data_dir().join("link.sock").display().to_string(),
        ],
        ..Options::default()
    });
    let output = Command::new(binary("tether-bots"))
        .arg("--target")
        .arg(format!("{},{}", first.telnet, second.telnet))
        .args(["--sessions", "4", "--rate", "0.5", "--warmup", "0.5"])
        .args([
            "--duration",
            "2",
            "--mix",
            "say=50,look=50",
            "--mccp2",
            "--gmcp",
        ])
        .args(["--json", "--no-progress"])
        .output()
        .expect("running tether-bots");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tether-bots: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .expect("tether-bots' JSON report");
    let all = &report["summary"]["all"];
    assert_eq!(report["logged_in"], 4, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert_eq!(report["compressed"], 4, "{report}");
    assert!(report["gmcp_messages"].as_u64() >= Some(4), "{report}");
    assert!(all["answered"].as_u64() > Some(0), "{report}");
    assert_eq!(all["answered"], all["sent"], "{report}");
    assert_eq!(all["lost"], 0, "{report}");
    // Both proxies held players: the core names each session by its proxy's id. (The bots
    // have left; the core may not have logged the last of them yet.)
    let per_proxy = wait_for("the core to log four bots leaving", || {
        let log = first.log();
        let mut per_proxy = std::collections::BTreeMap::<String, usize>::new();
        for line in log.lines().filter(|line| line.contains("left the game")) {
            if let Some(proxy) = line
                .split("session=")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
            {
                *per_proxy.entry(proxy.to_owned()).or_default() += 1;
            }
        }
        (per_proxy.values().sum::<usize>() == 4).then_some(per_proxy)
    });
    assert_eq!(
        per_proxy.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "two bots on each proxy: {per_proxy:?}"
    );
}

#[test]
fn a_proxy_another_authority_signed_is_refused_and_the_core_says_why() {
    let (core_host, _edge, link_port, dirs) = core_and_edge();
    // Another game's authority, and a proxy certificate from it.
    let stranger = dirs.path().join("stranger");
    link_certs(&stranger.join("data"), &["init"]);
    let rogue_files = stranger.join("rogue");
    link_certs(
        &stranger.join("data"),
        &[
            "proxy",
            "rogue",
            "--out",
            rogue_files.to_str().expect("utf-8 path"),
        ],
    );
    // Trusting its own authority, it refuses our core's certificate.
    let said = run_rogue(link_port, &rogue_files, "cannot attach to the core", || {
        core_host.expect_log(&["refused a proxy link from 127.0.0.1", "another game's"])
    });
    assert!(
        said.contains("cannot attach to the core: TLS: invalid peer certificate"),
        "the rogue proxy says it refused the core: {said}"
    );
    // The authority's certificate is no secret: trusting ours, as an attacker who copied it
    // would, it shows the core a certificate ours did not sign, and is refused.
    std::fs::copy(
        core_host.data_dir().join("link-tls/ca.pem"),
        rogue_files.join("ca.pem"),
    )
    .expect("copying the authority's certificate");
    let said = run_rogue(
        link_port,
        &rogue_files,
        "the core refused this proxy",
        || {
            core_host.expect_log(&[
                "refused a proxy link from 127.0.0.1",
                "not signed by this game's link authority",
            ])
        },
    );
    assert!(
        said.contains("the core refused this proxy: TLS"),
        "the rogue proxy's log says it was refused over TLS: {said}"
    );
    assert!(
        !core_host.log().contains("proxy=rogue"),
        "nothing from the rogue proxy reached the game"
    );
}

/// Runs a bare proxy with `files` against the core until `until` has seen what it waits for
/// and the proxy has logged `says` (the two sides log at their own pace); what the proxy
/// logged.
fn run_rogue(link_port: u16, files: &Path, says: &str, until: impl FnOnce() -> String) -> String {
    let rogue = Command::new(binary("tether-proxy"))
        .arg("--telnet")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http")
        .arg("off")
        .arg("--core")
        .arg(format!("127.0.0.1:{link_port}"))
        .arg("--link-tls")
        .arg(files)
        .arg("--name")
        .arg("rogue")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the rogue proxy");
    // Killed however this ends: a failed expectation must not leave it retrying for ever.
    let mut rogue = KillOnDrop(Some(rogue));
    let stderr = rogue
        .0
        .as_mut()
        .and_then(|child| child.stderr.take())
        .expect("the rogue proxy's stderr");
    let logged = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let logged = logged.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut logged = logged.lock().expect("the rogue's log");
                logged.push_str(&line);
                logged.push('\n');
            }
        })
    };
    let line = until();
    eprintln!("the core said: {line}");
    wait_for("the rogue proxy to log why", || {
        let logged = logged.lock().expect("the rogue's log");
        logged.contains(says).then_some(())
    });
    drop(rogue);
    let _ = reader.join();
    logged.lock().expect("the rogue's log").clone()
}

struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
