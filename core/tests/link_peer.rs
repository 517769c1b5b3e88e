//! The core's side of the link when a proxy misbehaves or moves: a proxy that falls behind on
//! deliveries has its input held back instead of growing the core's memory, and input on a
//! link that a newer attach replaced is refused, not handled twice.
//!
//! The peer here is a test-side proxy speaking the real link protocol to the real core
//! binary, because only it can stall `deliver` or attach twice on purpose.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{run_local, start_core};
use tether_core::outbound::{HIGH_WATER, MAX_BATCH};
use tether_protocol::link_capnp::{core_event, link, proxy};
use tokio::sync::watch;

/// Guest lines in the first batch. Each one answers with at least three events (a hint, a
/// prompt, an ack), so the backlog is several times the high-water mark.
const LINES: u64 = 120_000;

/// Counts what the core delivers, and returns from `deliver` only once the gate is open.
struct StalledProxy {
    delivered: Rc<Cell<usize>>,
    last_ack: Rc<Cell<u64>>,
    gate: watch::Receiver<bool>,
}

impl proxy::Server for StalledProxy {
    async fn deliver(
        self: capnp::capability::Rc<Self>,
        params: proxy::DeliverParams,
        _results: proxy::DeliverResults,
    ) -> Result<(), capnp::Error> {
        let events = params.get()?.get_events()?;
        for event in events.iter() {
            if let Ok(core_event::Ack(seq)) = event.which() {
                self.last_ack.set(self.last_ack.get().max(seq));
            }
        }
        self.delivered
            .set(self.delivered.get() + events.len() as usize);
        let mut gate = self.gate.clone();
        gate.wait_for(|open| *open)
            .await
            .map_err(|_| capnp::Error::failed("gate dropped".into()))?;
        Ok(())
    }

    async fn game_status(
        self: capnp::capability::Rc<Self>,
        _params: proxy::GameStatusParams,
        _results: proxy::GameStatusResults,
    ) -> Result<(), capnp::Error> {
        Ok(())
    }
}

fn submit_lines(
    link: &link::Client,
    open: bool,
    seqs: std::ops::RangeInclusive<u64>,
) -> capnp::capability::Request<link::submit_params::Owned, link::submit_results::Owned> {
    let mut request = link.submit_request();
    let count = seqs.clone().count() + usize::from(open);
    let mut events = request.get().init_events(count as u32);
    let mut i = 0;
    if open {
        let mut event = events.reborrow().get(0);
        event.set_session(1);
        event.init_opened().set_remote_addr("127.0.0.1:5000");
        i = 1;
    }
    for seq in seqs {
        let mut event = events.reborrow().get(i);
        event.set_session(1);
        let mut line = event.init_line();
        line.set_seq(seq);
        line.set_text("xyzzy");
        i += 1;
    }
    request
}

/// Connects to the core and attaches as proxy 7 with no sessions.
async fn attach(socket: &std::path::Path, proxy: StalledProxy) -> link::Client {
    let core = common::connect(socket).await;
    let mut attach = core.attach_request();
    let mut hello = attach.get().init_hello();
    hello.set_protocol_version(tether_protocol::PROTOCOL_VERSION);
    hello.set_proxy_id(7);
    hello.set_proxy_name("test");
    attach.get().set_proxy(capnp_rpc::new_client(proxy));
    attach.get().init_sessions(0);
    let attached = attach.send().promise.await.expect("attach");
    attached.get().expect("results").get_link().expect("link")
}

fn proxy(gate: watch::Receiver<bool>) -> (StalledProxy, Rc<Cell<usize>>, Rc<Cell<u64>>) {
    let delivered = Rc::new(Cell::new(0));
    let last_ack = Rc::new(Cell::new(0));
    let proxy = StalledProxy {
        delivered: delivered.clone(),
        last_ack: last_ack.clone(),
        gate,
    };
    (proxy, delivered, last_ack)
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_backed_up_proxy_waits_to_submit_until_the_backlog_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _core = start_core(dir.path());
    run_local(async {
        let (open_gate, gate) = watch::channel(false);
        let (stalled, delivered, last_ack) = proxy(gate);
        let link = attach(&dir.path().join("link.sock"), stalled).await;

        // Taken at once: nothing is queued yet. It leaves a backlog far past the mark, with
        // the first deliver call stuck behind the closed gate.
        submit_lines(&link, true, 1..=LINES)
            .send()
            .promise
            .await
            .expect("first submit");
        until("the first deliver call", || delivered.get() > 0).await;

        let answered_at = Rc::new(Cell::new(None));
        let second = submit_lines(&link, false, LINES + 1..=LINES + 1)
            .send()
            .promise;
        tokio::task::spawn_local({
            let answered_at = answered_at.clone();
            let delivered = delivered.clone();
            async move {
                second.await.expect("second submit");
                answered_at.set(Some(delivered.get()));
            }
        });
        // The second submit is on the wire before the first deliver's return, so the core
        // sees it while backed up.
        open_gate.send(true).expect("open the gate");

        until("the second submit's line to be handled", || {
            last_ack.get() == LINES + 1
        })
        .await;
        until("the second submit's answer", || answered_at.get().is_some()).await;
        let backlog = 3 * LINES as usize;
        let at_answer = answered_at.get().unwrap_or_default();
        assert!(
            at_answer + HIGH_WATER + 2 * MAX_BATCH >= backlog,
            "answered with only {at_answer} of at least {backlog} events delivered"
        );
        assert!(delivered.get() > backlog, "every line answered");
    });
}

#[test]
fn input_on_a_link_replaced_by_a_newer_attach_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _core = start_core(dir.path());
    run_local(async {
        let socket = dir.path().join("link.sock");
        let (_open, gate) = watch::channel(true);
        let (first, _, _) = proxy(gate.clone());
        let old_link = attach(&socket, first).await;
        let (second, _, last_ack) = proxy(gate);
        let new_link = attach(&socket, second).await;

        let refused = submit_lines(&old_link, true, 1..=1).send().promise.await;
        let error = refused.err().expect("the replaced link refuses input");
        assert!(error.to_string().contains("replaced"), "says why: {error}");

        submit_lines(&new_link, true, 1..=1)
            .send()
            .promise
            .await
            .expect("the new link takes input");
        until("the line on the new link to be handled", || {
            last_ack.get() == 1
        })
        .await;
    });
}
