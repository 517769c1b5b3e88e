//! A proxy speaking another link protocol version is refused at `attach`, with a message an
//! operator can act on.

mod common;

use common::{FromCore, TestProxy};

#[test]
fn a_mismatched_proxy_is_refused_and_a_matching_one_attaches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("link.sock");
    let _core = common::start_core(dir.path());
    let wrong = tether_protocol::PROTOCOL_VERSION + 1;
    common::run_local(async {
        let mut proxy = TestProxy::connect(&socket).await;
        match proxy.attach(wrong, 7).await {
            FromCore::Refused(reason) => assert!(
                reason.contains("mismatch") && reason.contains(&format!("version {wrong}")),
                "clear message: {reason}"
            ),
            other => panic!("a mismatched proxy must be refused, got {other:?}"),
        }
        assert!(
            proxy.next().await.is_none(),
            "the core closes after refusing"
        );

        let mut proxy = TestProxy::connect(&socket).await;
        match proxy.attach(tether_protocol::PROTOCOL_VERSION, 7).await {
            FromCore::Welcome { core, resumed } => {
                assert!(core.starts_with("tether-core"), "{core}");
                assert!(!resumed, "a first attach resumes nothing");
            }
            other => panic!("a matching proxy attaches, got {other:?}"),
        }
    });
}
