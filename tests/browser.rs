//! The browser client end to end: Debian's Chromium, driven headless by Playwright
//! (`tests/web/browser.mjs`), against the real binaries, next to a telnet player, through a
//! core reload, a proxy upgrade and a proxy crash (the WebSocket stays up each time), and
//! proxies that keep crashing until the connection is let go (the page reconnects by itself).
//! It also takes the screenshot in `docs/`.

use std::path::Path;
use std::process::Command;

use tether_tests::{Tether, binary, real_client};

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[test]
fn a_browser_player_plays_with_a_telnet_player_through_a_reload() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !real_client("node", node)
        || !real_client("chromium", Path::new(&chromium()).exists())
        || !real_client(
            "playwright-core (npm ci in tests/web)",
            web.join("node_modules/playwright-core").exists(),
        )
    {
        return;
    }
    let tether = Tether::start();
    let reload = format!(
        "'{}' reload --data '{}'",
        binary("tether").display(),
        tether.data_dir().display()
    );
    let screenshot = tether.data_dir().join("web-client.png");
    let upgrade_proxy = format!(
        "'{}' upgrade-proxy --data '{}'",
        binary("tether").display(),
        tether.data_dir().display()
    );
    // The pids are looked up when the commands run.
    let status = format!(
        "'{}' status --data '{}'",
        binary("tether").display(),
        tether.data_dir().display()
    );
    let proxy_pid = format!("{status} | sed -n 's/^proxy: pid \\([0-9]*\\).*/\\1/p'");
    let crash_proxy = format!("kill -9 $({proxy_pid})");
    // Kills each new proxy as soon as it runs, until one starts afresh instead of carrying
    // the connections on (a recovered proxy dying within seconds three times in a row makes
    // the keeper let them go): the connections close. Polls for the next proxy; no fixed wait.
    let restart_proxy = format!(
        "pid() {{ {proxy_pid}; }}; recoveries() {{ {status} | sed -n 's/.*recoveries \\([0-9]*\\).*/\\1/p'; }}; \
         for i in $(seq 10); do r=$(recoveries); p=$(pid); kill -9 \"$p\"; \
         until q=$(pid) && [ -n \"$q\" ] && [ \"$q\" != \"$p\" ]; do sleep 0.02; done; \
         [ \"$(recoveries)\" = \"$r\" ] && exit 0; done; exit 1"
    );
    let output = Command::new("node")
        .current_dir(&web)
        .arg("browser.mjs")
        .arg("--web")
        .arg(format!("http://{}", tether.http))
        .arg("--telnet")
        .arg(tether.telnet.to_string())
        .arg("--reload-cmd")
        .arg(&reload)
        .arg("--screenshot")
        .arg(&screenshot)
        .arg("--upgrade-proxy-cmd")
        .arg(&upgrade_proxy)
        .arg("--crash-proxy-cmd")
        .arg(&crash_proxy)
        .arg("--restart-proxy-cmd")
        .arg(&restart_proxy)
        .env("CHROMIUM", chromium())
        .output()
        .expect("running node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "browser test failed:\n{said}");
    assert!(screenshot.exists(), "a screenshot was taken");
    // Refresh the committed screenshot when asked (TETHER_UPDATE_SCREENSHOT=1).
    if std::env::var_os("TETHER_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/web-client.png");
        std::fs::copy(&screenshot, docs).expect("copying the screenshot");
    }
}

#[test]
fn the_dashboard_shows_and_steers_a_live_game() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !real_client("node", node)
        || !real_client("chromium", Path::new(&chromium()).exists())
        || !real_client(
            "playwright-core (npm ci in tests/web)",
            web.join("node_modules/playwright-core").exists(),
        )
    {
        return;
    }
    let tether = Tether::start();
    let token = tether.admin_token();
    let screenshot = tether.data_dir().join("dashboard.png");
    let output = Command::new("node")
        .current_dir(&web)
        .arg("dashboard.mjs")
        .arg("--web")
        .arg(format!("http://{}", tether.http))
        .arg("--telnet")
        .arg(tether.telnet.to_string())
        .arg("--token")
        .arg(&token)
        .arg("--screenshot")
        .arg(&screenshot)
        .env("CHROMIUM", chromium())
        .output()
        .expect("running node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "dashboard test failed:\n{said}");
    assert!(screenshot.exists(), "a screenshot was taken");
    let (ok, trail) = tether.admin(&["audit"], "");
    assert!(
        ok && trail.contains("dashboard") && trail.contains("kick") && trail.contains("reload"),
        "the page's actions are on record:\n{trail}"
    );
    if std::env::var_os("TETHER_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::copy(&screenshot, docs).expect("copying the screenshot");
    }
}
