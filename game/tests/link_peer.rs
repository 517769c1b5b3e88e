//! The core's side of the link when a proxy misbehaves or moves: a proxy that falls behind on
//! reading its deliveries has its input held back instead of growing the core's memory, and
//! input on a connection that a newer attach replaced is declined, not handled twice, and a
//! proxy that detaches for a successor has its sessions and their output kept for it.
//!
//! The peer here is a test-side proxy speaking the real link protocol to the real core
//! binary, because only it can stop reading or attach twice on purpose; on the link socket,
//! and over TCP with the link's TLS as a proxy on another host is.

mod common;

use common::{FromCore, TestProxy, run_local, start_core, start_core_on_tcp};
use tether_engine::{HIGH_WATER, MAX_BATCH};
use tether_protocol::PROTOCOL_VERSION;

/// Guest lines in the first batch. Each one answers with at least three events (a hint, a
/// prompt, an ack), so the backlog is several times the high-water mark.
const LINES: u64 = 120_000;

async fn attached(socket: &std::path::Path) -> TestProxy {
    let mut proxy = TestProxy::connect(socket).await;
    match proxy.attach(PROTOCOL_VERSION, 7).await {
        FromCore::Welcome { .. } => proxy,
        other => panic!("attach: {other:?}"),
    }
}

/// Reads until `stop` says so, counting delivered events; the count when it stopped.
async fn read_until(
    proxy: &mut TestProxy,
    mut stop: impl FnMut(&FromCore) -> bool,
    delivered: &mut usize,
) -> FromCore {
    loop {
        let message = proxy.next().await.expect("the core closed the link");
        if let FromCore::Deliver { events, .. } = &message {
            *delivered += events;
        }
        if stop(&message) {
            return message;
        }
    }
}

#[test]
fn a_backed_up_proxy_waits_to_submit_until_the_backlog_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _core = start_core(dir.path());
    run_local(async {
        backed_up(attached(&dir.path().join("link.sock")).await).await;
    });
}

/// The same over TCP with TLS, as a proxy on another host is connected: the flow control is
/// the connection's own buffer there too.
#[test]
fn a_backed_up_proxy_on_another_host_waits_the_same_way() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_core, addr, files) = start_core_on_tcp(dir.path());
    run_local(async {
        let mut proxy = TestProxy::connect_tls(addr, &files).await;
        match proxy.attach(PROTOCOL_VERSION, 7).await {
            FromCore::Welcome { .. } => {}
            other => panic!("attach over TLS: {other:?}"),
        }
        backed_up(proxy).await;
    });
}

async fn backed_up(mut proxy: TestProxy) {
    let mut delivered = 0;

    // Taken at once: nothing is queued yet. It leaves a backlog far past the mark.
    proxy.submit(true, 1..=LINES).await;
    read_until(
        &mut proxy,
        |m| matches!(m, FromCore::Accepted),
        &mut delivered,
    )
    .await;

    // Not reading from here on: the core's writes fill the socket and stop, with most of
    // the backlog still queued, when the second batch arrives.
    proxy.submit(false, LINES + 1..=LINES + 1).await;
    read_until(
        &mut proxy,
        |m| matches!(m, FromCore::Accepted),
        &mut delivered,
    )
    .await;
    let at_answer = delivered;
    read_until(
        &mut proxy,
        |m| matches!(m, FromCore::Deliver { last_ack: Some(seq), .. } if *seq == LINES + 1),
        &mut delivered,
    )
    .await;

    let backlog = 3 * LINES as usize;
    assert!(
        at_answer + HIGH_WATER + 2 * MAX_BATCH >= backlog,
        "answered with only {at_answer} of at least {backlog} events delivered"
    );
    assert!(delivered > backlog, "every line answered");
}

#[test]
fn input_on_a_link_replaced_by_a_newer_attach_is_declined() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _core = start_core(dir.path());
    run_local(async {
        let socket = dir.path().join("link.sock");
        let mut old = attached(&socket).await;
        let mut new = attached(&socket).await;

        old.submit(true, 1..=1).await;
        let mut delivered = 0;
        match read_until(
            &mut old,
            |m| matches!(m, FromCore::Declined(_) | FromCore::Accepted),
            &mut delivered,
        )
        .await
        {
            FromCore::Declined(reason) => {
                assert!(reason.contains("replaced"), "says why: {reason}")
            }
            other => panic!("the replaced link takes input: {other:?}"),
        }
        assert_eq!(delivered, 0, "nothing handled on the old link");

        new.submit(true, 1..=1).await;
        read_until(
            &mut new,
            |m| matches!(m, FromCore::Accepted),
            &mut delivered,
        )
        .await;
        read_until(
            &mut new,
            |m| {
                matches!(
                    m,
                    FromCore::Deliver {
                        last_ack: Some(1),
                        ..
                    }
                )
            },
            &mut delivered,
        )
        .await;
    });
}

#[test]
fn a_detached_proxys_successor_carries_its_sessions_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _core = start_core(dir.path());
    run_local(async {
        let socket = dir.path().join("link.sock");
        let mut old = attached(&socket).await;
        old.submit_and_detach(true, 1..=3).await;
        let mut delivered = 0;
        let mut acked_on_old = None;
        loop {
            match old.next().await.expect("the core answers the detach") {
                FromCore::Detached => break,
                FromCore::Deliver { events, last_ack } => {
                    delivered += events;
                    acked_on_old = last_ack.max(acked_on_old);
                }
                FromCore::Accepted | FromCore::GameStatus => {}
                other => panic!("before `detached`: {other:?}"),
            }
        }
        assert_eq!(
            (delivered, acked_on_old),
            (0, None),
            "the detach was read before the output was written, so all of it waits"
        );
        assert!(old.next().await.is_none(), "nothing follows `detached`");

        // The successor: same proxy id, no sessions in its snapshot (the core's are used).
        let mut new = TestProxy::connect(&socket).await;
        match new.attach(PROTOCOL_VERSION, 7).await {
            FromCore::Welcome { resumed: true, .. } => {}
            other => panic!("the successor's attach: {other:?}"),
        }
        read_until(
            &mut new,
            |m| {
                matches!(
                    m,
                    FromCore::Deliver {
                        last_ack: Some(3),
                        ..
                    }
                )
            },
            &mut delivered,
        )
        .await;
        // The session is the same one: its next line is handled, not refused as unknown.
        new.submit(false, 4..=4).await;
        read_until(
            &mut new,
            |m| {
                matches!(
                    m,
                    FromCore::Deliver {
                        last_ack: Some(4),
                        ..
                    }
                )
            },
            &mut delivered,
        )
        .await;

        // Any other attach by that id starts afresh, as before.
        let mut third = TestProxy::connect(&socket).await;
        match third.attach(PROTOCOL_VERSION, 7).await {
            FromCore::Welcome { resumed: false, .. } => {}
            other => panic!("an attach with no detach before it: {other:?}"),
        }
    });
}
