//! What the core's integration tests share: a core process on a private socket, and a link
//! connection to it with the test playing the proxy.

// Every test file compiles its own copy and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tether_protocol::framing::{self, MessageReader};
use tether_protocol::link_capnp::{core_event, core_message, proxy_message};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

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

/// What the core sent, decoded as far as these tests look.
#[derive(Debug)]
pub enum FromCore {
    Welcome(String),
    Refused(String),
    Accepted,
    Declined(String),
    /// The number of events, and the highest `ack` among them.
    Deliver {
        events: usize,
        last_ack: Option<u64>,
    },
    GameStatus,
}

/// The test playing a proxy: a link connection speaking the real protocol, one message at a
/// time, so a test can stop reading or attach twice on purpose.
pub struct TestProxy {
    reader: MessageReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl TestProxy {
    pub async fn connect(socket: &Path) -> TestProxy {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect");
        let (reader, writer) = stream.into_split();
        TestProxy {
            reader: MessageReader::new(reader),
            writer,
        }
    }

    /// Attaches as `proxy_id` with no sessions; the core's first answer.
    pub async fn attach(&mut self, version: u32, proxy_id: u64) -> FromCore {
        let mut message = framing::builder();
        let mut attach = message.init_root::<proxy_message::Builder>().init_attach();
        let mut hello = attach.reborrow().init_hello();
        hello.set_protocol_version(version);
        hello.set_proxy_id(proxy_id);
        hello.set_proxy_name("test");
        attach.init_sessions(0);
        self.write(&message).await;
        self.next().await.expect("an answer to attach")
    }

    /// Submits lines `seqs` of session 1, announcing the session first if `open`.
    pub async fn submit(&mut self, open: bool, seqs: std::ops::RangeInclusive<u64>) {
        let mut message = framing::builder();
        let count = seqs.clone().count() + usize::from(open);
        let mut events = message
            .init_root::<proxy_message::Builder>()
            .init_submit(count as u32);
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
        self.write(&message).await;
    }

    async fn write(&mut self, message: &capnp::message::Builder<capnp::message::HeapAllocator>) {
        let mut bytes = Vec::new();
        framing::append(message, &mut bytes);
        self.writer
            .write_all(&bytes)
            .await
            .expect("write to the core");
    }

    /// The next message; `None` once the core has closed the connection.
    pub async fn next(&mut self) -> Option<FromCore> {
        let message = self.reader.next().await.expect("a readable stream")?;
        let root = message
            .get_root::<core_message::Reader>()
            .expect("a core message");
        let text =
            |t: capnp::Result<capnp::text::Reader>| t.expect("text").to_string().expect("utf-8");
        Some(match root.which().expect("a known message") {
            core_message::Welcome(welcome) => {
                FromCore::Welcome(text(welcome.expect("welcome").get_core_name()))
            }
            core_message::Refused(reason) => FromCore::Refused(text(reason)),
            core_message::Accepted(()) => FromCore::Accepted,
            core_message::Declined(reason) => FromCore::Declined(text(reason)),
            core_message::Deliver(events) => {
                let events = events.expect("events");
                let last_ack = events
                    .iter()
                    .filter_map(|event| match event.which() {
                        Ok(core_event::Ack(seq)) => Some(seq),
                        _ => None,
                    })
                    .max();
                FromCore::Deliver {
                    events: events.len() as usize,
                    last_ack,
                }
            }
            core_message::GameStatus(_) => FromCore::GameStatus,
        })
    }
}

/// Runs `test` on a single-threaded runtime, as the core itself runs.
pub fn run_local(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(test);
}
