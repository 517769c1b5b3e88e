//! A proxy speaking another link protocol version is refused at `attach`, with a message an
//! operator can act on.

mod common;

use tether_protocol::link_capnp::proxy;

/// A proxy callback that never receives anything in this test.
struct Silent;
impl proxy::Server for Silent {}

async fn attach_with(socket: &std::path::Path, version: u32) -> Result<String, capnp::Error> {
    let core = common::connect(socket).await;
    let mut request = core.attach_request();
    let mut hello = request.get().init_hello();
    hello.set_protocol_version(version);
    hello.set_proxy_id(7);
    hello.set_proxy_name("test");
    request.get().set_proxy(capnp_rpc::new_client(Silent));
    request.get().init_sessions(0);
    let response = request.send().promise.await?;
    let name = response
        .get()?
        .get_welcome()?
        .get_core_name()?
        .to_string()?;
    Ok(name)
}

#[test]
fn a_mismatched_proxy_is_refused_and_a_matching_one_attaches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("link.sock");
    let _core = common::start_core(dir.path());
    let wrong = tether_protocol::PROTOCOL_VERSION + 1;
    common::run_local(async {
        let refused = attach_with(&socket, wrong).await;
        let error = refused.expect_err("a mismatched proxy must be refused");
        assert!(
            error.to_string().contains("mismatch")
                && error.to_string().contains(&format!("version {wrong}")),
            "clear message: {error}"
        );
        let accepted = attach_with(&socket, tether_protocol::PROTOCOL_VERSION).await;
        assert!(accepted.expect("attach").starts_with("tether-core"));
    });
}
