//! A proxy speaking another link protocol version is refused at `attach`, with a message an
//! operator can act on.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use tether_protocol::link_capnp::{core, proxy};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// A proxy callback that never receives anything in this test.
struct Silent;
impl proxy::Server for Silent {}

async fn attach_with(socket: &std::path::Path, version: u32) -> Result<String, capnp::Error> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (reader, writer) = stream.into_split();
    let network = twoparty::VatNetwork::new(
        reader.compat(),
        writer.compat_write(),
        Side::Client,
        Default::default(),
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let core: core::Client = rpc.bootstrap(Side::Server);
    tokio::task::spawn_local(rpc);
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-core"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--link")
        .arg(&socket)
        .env_remove("TETHER_LINK_FD")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the core");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("READY");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let wrong = tether_protocol::PROTOCOL_VERSION + 1;
    let refused = local.block_on(&runtime, attach_with(&socket, wrong));
    let error = refused.expect_err("a mismatched proxy must be refused");
    assert!(
        error.to_string().contains("mismatch")
            && error.to_string().contains(&format!("version {wrong}")),
        "clear message: {error}"
    );
    let accepted = local.block_on(
        &runtime,
        attach_with(&socket, tether_protocol::PROTOCOL_VERSION),
    );
    assert!(accepted.expect("attach").starts_with("tether-core"));

    let _ = child.kill();
    let _ = child.wait();
}
