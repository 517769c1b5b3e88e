//! What the core's integration tests share: a core process on a private socket, and a link
//! connection to it with the test playing the proxy.

// Every test file compiles its own copy and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use tether_protocol::link_capnp::core;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// The core process, killed when the test ends, passed or not.
pub struct CoreProcess(Child);

impl CoreProcess {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the core to exit (after the test has told it to).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait for the core")
    }
}

impl Drop for CoreProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the core with its data and `link.sock` in `dir` and waits for its `READY`.
pub fn start_core(dir: &Path) -> CoreProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-core"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--link")
        .arg(dir.join("link.sock"))
        .env_remove("TETHER_LINK_FD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the core");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("READY");
    assert_eq!(ready.trim(), "READY");
    CoreProcess(child)
}

/// A new link connection's bootstrap capability; the connection runs as a local task.
pub async fn connect(socket: &Path) -> core::Client {
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
    let core = rpc.bootstrap(Side::Server);
    tokio::task::spawn_local(rpc);
    core
}

/// Runs `test` on a single-threaded runtime, as capnp-rpc needs.
pub fn run_local(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&runtime, test);
}
