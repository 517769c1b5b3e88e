//! `/metrics`: refused to anyone without the admin token, in the Prometheus text format (as
//! the Prometheus project's own parser reads it), and counting what players do in the proxy,
//! where a core reload resets nothing.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use tether_tests::{Tether, http_get_with, wait_for};

/// The answer to `GET /metrics`, with the token if one is given: (status, body).
fn scrape(http: SocketAddr, token: Option<&str>) -> (u16, String) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("Authorization", value)])
        .unwrap_or_default();
    let answer = http_get_with(http, "/metrics", &headers);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// The value of the sample written exactly `sample` (name and labels as the proxy writes
/// them, e.g. `tether_sessions{transport="telnet"}`); 0 when it is not there yet.
fn value(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(sample)?.strip_prefix(' ')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0.0)
}

/// `tether admin token [--rotate]`: the token it printed.
fn admin_token(tether: &Tether, rotate: bool) -> String {
    let args: &[&str] = if rotate {
        &["token", "--rotate"]
    } else {
        &["token"]
    };
    let (ok, text) = tether.admin(args, "");
    assert!(ok, "tether admin token: {text}");
    text.lines()
        .find(|line| line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no token in {text:?}"))
        .to_owned()
}

#[test]
fn metrics_are_refused_without_the_admin_token() {
    let tether = Tether::start();
    let (status, body) = scrape(tether.http, None);
    assert_eq!(status, 403, "no token is set yet: {body}");
    assert!(body.contains("tether admin token"), "says how: {body}");
    assert!(!body.contains("tether_"), "no metric leaks: {body}");

    let token = admin_token(&tether, false);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tether.data_dir().join("admin-token"))
            .expect("the token's file")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "only the game's user reads the token");
    assert_eq!(admin_token(&tether, false), token, "asked again, the same");

    for wrong in [None, Some("0".repeat(64)), Some(format!("{token}x"))] {
        let (status, body) = scrape(tether.http, wrong.as_deref());
        assert_eq!(status, 401, "{wrong:?}: {body}");
        assert!(!body.contains("tether_"), "no metric leaks: {body}");
    }
    assert_eq!(scrape(tether.http, Some(&token)).0, 200);

    let rotated = admin_token(&tether, true);
    assert_ne!(rotated, token);
    assert_eq!(scrape(tether.http, Some(&token)).0, 401, "the old token");
    assert_eq!(scrape(tether.http, Some(&rotated)).0, 200, "the new one");
}

#[test]
fn metrics_count_what_players_do_and_survive_a_core_reload() {
    let tether = Tether::start();
    let token = admin_token(&tether, false);
    let metrics = || {
        let (status, body) = scrape(tether.http, Some(&token));
        assert_eq!(status, 200, "{body}");
        body
    };
    let before = metrics();
    assert_eq!(value(&before, "tether_core_attached"), 1.0, "{before}");
    assert_eq!(value(&before, "tether_core_attaches_total"), 1.0);

    let mut player = tether.connect().with_mccp2();
    player.expect("connect <name>");
    player.create("Counted", "counted1");
    let mut stranger = tether.connect();
    stranger.send("connect Counted guessed1");
    stranger.expect("Wrong name or password");
    for n in 0..5 {
        player.send(&format!("say count {n}"));
        player.expect(&format!("You say, \"count {n}\""));
    }
    // Not UTF-8: replaced, the player told, and counted.
    player.send_raw(b"say caf\xe9\r\n");
    player.expect("not valid UTF-8");

    let playing = metrics();
    assert_eq!(value(&playing, "tether_logins_total"), 1.0, "{playing}");
    assert_eq!(value(&playing, "tether_login_failures_total"), 1.0);
    assert_eq!(
        value(&playing, "tether_players"),
        1.0,
        "the stranger is not playing"
    );
    let lines = value(&playing, "tether_lines_total");
    assert!(
        lines >= 8.0,
        "name, password twice, five says, one more: {lines}"
    );
    assert_eq!(
        value(&playing, "tether_sessions{transport=\"telnet\"}"),
        2.0,
        "{playing}"
    );
    assert_eq!(
        value(&playing, "tether_sessions_with{feature=\"mccp2\"}"),
        1.0,
        "{playing}"
    );
    let telnet_connections = "tether_connections_total{transport=\"telnet\",tls=\"false\"}";
    assert_eq!(
        value(&playing, telnet_connections) - value(&before, telnet_connections),
        2.0,
        "two more connections (the harness's readiness probe was one before)"
    );
    assert!(
        value(
            &playing,
            "tether_received_bytes_total{transport=\"telnet\",tls=\"false\"}"
        ) > 50.0
    );
    assert!(
        value(
            &playing,
            "tether_sent_bytes_total{transport=\"telnet\",tls=\"false\"}"
        ) > 100.0
    );
    assert!(value(&playing, "tether_mccp2_saved_bytes_total") > 0.0);
    assert_eq!(
        value(&playing, "tether_input_refused_total{why=\"invalid_utf8\"}"),
        1.0
    );
    // Every line answered was timed, from reaching the proxy to the core's acknowledgement.
    wait_for("every answered line timed", || {
        let body = metrics();
        (value(&body, "tether_round_trip_seconds_count") >= lines - 1.0).then_some(())
    });

    let core = tether.core_pid();
    tether.reload();
    assert_ne!(tether.wait_for_new_core(core), core);
    player.send("say after the reload");
    player.expect("You say, \"after the reload\"");
    let after = wait_for("the new core counted as attached", || {
        let body = metrics();
        (value(&body, "tether_core_attaches_total") == 2.0).then_some(body)
    });
    assert!(
        value(&after, "tether_lines_total") > lines,
        "the counters carried on through the reload: {after}"
    );
    assert_eq!(
        value(&after, "tether_core_gap_seconds_count"),
        1.0,
        "{after}"
    );
    assert_eq!(
        value(&after, "tether_input_refused_total{why=\"invalid_utf8\"}"),
        1.0
    );
    assert_eq!(value(&after, "tether_sessions{transport=\"telnet\"}"), 2.0);
    // The new core told the proxy again who plays; that was no new login.
    assert_eq!(value(&after, "tether_players"), 1.0, "{after}");
    assert_eq!(value(&after, "tether_logins_total"), 1.0);

    // A new proxy process starts its counters afresh, and learns who plays from the core.
    let proxy = tether.proxy_pid();
    tether.upgrade_proxy();
    assert_ne!(tether.wait_for_new_proxy(proxy), proxy);
    let upgraded = wait_for("the new proxy told who plays", || {
        let body = metrics();
        (value(&body, "tether_players") == 1.0).then_some(body)
    });
    assert_eq!(value(&upgraded, "tether_logins_total"), 0.0, "{upgraded}");
    assert_eq!(value(&upgraded, "tether_proxy_handovers_total"), 1.0);
    player.send("say upgraded");
    player.expect("You say, \"upgraded\"");
    let before = metrics();
    drop(stranger);

    drop(player);
    let closed = "tether_disconnects_total{reason=\"client_closed\"}";
    // The session's compressor goes with its task, just after the disconnect is counted.
    let ended = wait_for(
        "the session counted as ended, its compression with it",
        || {
            let body = metrics();
            (value(&body, closed) == value(&before, closed) + 2.0
                && value(&body, "tether_sessions_with{feature=\"mccp2\"}") == 0.0)
                .then_some(body)
        },
    );
    assert_eq!(value(&ended, "tether_sessions{transport=\"telnet\"}"), 0.0);

    parsed_by_prometheus(&ended);
    // Before the upgrade: a new proxy writes no sample of a family nobody counted into yet.
    dashboard_names_only_real_metrics(&after);
}

/// The sample Grafana dashboard (`scripts/grafana/tether.json`) asks only for metrics a
/// proxy has: a renamed metric would leave a panel silently empty.
fn dashboard_names_only_real_metrics(body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/grafana/tether.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut named = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            let mut rest = expr;
            while let Some(at) = rest.find("tether_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                named.push(name);
            }
        }
    }
    assert!(named.len() >= 10, "the dashboard names metrics: {named:?}");
    for name in named {
        let written = body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .any(|line| {
                line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
            });
        assert!(
            written,
            "the dashboard asks for {name}, which no scrape has:\n{body}"
        );
    }
}

/// Checks the whole scrape with the Prometheus project's parser (Python `prometheus_client`),
/// a reader that is not ours: every family parses, with the type we meant.
fn parsed_by_prometheus(body: &str) {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !tether_tests::real_client("prometheus_client (Python)", found) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/prometheus_parse.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("writing the scrape");
    let output = child.wait_with_output().expect("the parser");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape: {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON from the parser"))
        .collect();
    let type_of = |name: &str| {
        families
            .iter()
            .find(|family| family["name"] == name)
            .map(|family| family["type"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no family {name} in {families:?}"))
    };
    assert_eq!(type_of("tether_lines"), "counter");
    assert_eq!(type_of("tether_round_trip_seconds"), "histogram");
    assert_eq!(type_of("tether_sessions"), "gauge");
    assert_eq!(type_of("tether_disconnects"), "counter");
}
