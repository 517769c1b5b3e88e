//! Operators steer a live game from outside it: orders posted to the proxy's admin API
//! (`POST /admin/orders`, behind the admin token) reach the running core, and `tether admin`
//! bans and reads the audit trail on the host; players see each of them as they happen.

use std::net::SocketAddr;

use tether_tests::{Tether, http_post_json, wait_for};

/// Posts an order; (status, body).
fn order(http: SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("Authorization", value)])
        .unwrap_or_default();
    let answer = http_post_json(http, "/admin/orders", &headers, body);
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

/// `tether admin <args>` aimed at this game's web listener.
fn cli(tether: &Tether, web: &str, args: &[&str]) -> (bool, String) {
    // Before the action: `wall` takes the rest of the line as its text.
    let mut all = vec!["--http", web];
    all.extend(args);
    tether.admin(&all, "")
}

#[test]
fn orders_from_outside_reach_the_players_and_are_on_record() {
    let mut tether = Tether::start();
    let http = tether.http;
    let (status, _) = order(http, None, r#"{"order":"wall","text":"hi"}"#);
    assert_eq!(status, 403, "no token exists yet");
    let token = tether.admin_token();
    let (status, _) = order(http, Some("nope"), r#"{"order":"wall","text":"hi"}"#);
    assert_eq!(status, 401);
    let (status, body) = order(http, Some(&token), r#"{"order":"dance"}"#);
    assert_eq!(status, 400, "{body}");

    let mut bob = tether.connect();
    bob.create("Bob", "bobs-secret");
    let (status, body) = order(
        http,
        Some(&token),
        r#"{"order":"wall","text":"{red}Maintenance at noon","actor":"host:ops"}"#,
    );
    assert_eq!(status, 200, "{body}");
    bob.expect("[host:ops] {red}Maintenance at noon");

    let (status, body) = order(http, Some(&token), r#"{"order":"kick","name":"Nobody"}"#);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("Nobody is not in the game"), "{body}");
    let (status, body) = order(
        http,
        Some(&token),
        r#"{"order":"kick","name":"bob","reason":"testing kicks"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let last = bob.expect_closed().join("\n");
    assert!(last.contains("Reason: testing kicks"), "{last}");

    // `tether admin` sends the same orders: a ban closes what it covers at once and holds
    // at the next login.
    let web = http.to_string();
    let mut bob = tether.connect();
    bob.login("Bob", "bobs-secret");
    let (ok, text) = cli(
        &tether,
        &web,
        &["ban", "bob", "--for", "1h", "--reason", "cheating"],
    );
    assert!(ok && text.contains("Bob is banned for 1 hour"), "{text}");
    let last = bob.expect_closed().join("\n");
    assert!(
        last.contains("banned for 1 hour. Reason: cheating"),
        "{last}"
    );
    let (ok, text) = tether.admin(&["bans"], "");
    assert!(
        ok && text.contains("Bob") && text.contains("cheating"),
        "{text}"
    );
    let mut again = tether.connect();
    again.send("connect Bob bobs-secret");
    let last = again.expect_closed().join("\n");
    assert!(
        last.contains("banned for 1 hour. Reason: cheating"),
        "{last}"
    );
    let (ok, text) = cli(&tether, &web, &["unban", "bob"]);
    assert!(ok && text.contains("The ban on Bob is lifted"), "{text}");
    let mut bob = tether.connect();
    bob.login("Bob", "bobs-secret");
    let (ok, text) = cli(&tether, &web, &["kick", "nobody"]);
    assert!(!ok && text.contains("Nobody is not in the game"), "{text}");
    let (ok, text) = cli(&tether, &web, &["wall", "back", "in", "five"]);
    assert!(ok, "{text}");
    bob.expect("] back in five");

    // A countdown everyone hears, called off.
    let (ok, text) = cli(&tether, &web, &["shutdown", "10", "--reason", "new areas"]);
    assert!(ok && text.contains("shuts down in 10 minutes"), "{text}");
    bob.expect("The server shuts down in 10 minutes. Reason: new areas");
    let (ok, text) = cli(&tether, &web, &["shutdown", "cancel"]);
    assert!(ok, "{text}");
    bob.expect("The shutdown is called off.");

    let (ok, trail) = tether.admin(&["audit"], "");
    assert!(ok, "{trail}");
    for said in [
        "host:ops         wall",
        "operator         kick               Bob (testing kicks)",
        "ban                Bob (for 1 hour: cheating)",
        "unban              Bob",
        "shutdown           server (in 10 minutes: new areas)",
        "shutdown-cancelled",
    ] {
        assert!(
            trail.contains(said),
            "{said:?} is not in the trail:\n{trail}"
        );
    }

    let (status, body) = order(
        http,
        Some(&token),
        r#"{"order":"shutdown","seconds":2,"reason":"for real"}"#,
    );
    assert_eq!(status, 200, "{body}");
    bob.expect("The server is shutting down now. Reason: for real");
    wait_for("the server to stop", || {
        (!tether.is_running()).then_some(())
    });
}
