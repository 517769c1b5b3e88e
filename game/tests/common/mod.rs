//! What the core's integration tests share: a core process on a private socket, and a link
//! connection to it with the test playing the proxy.

// Every test file compiles its own copy and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tether_protocol::framing::MessageReader;
use tether_protocol::message::{
    self, Attach, CoreMessage, Delivery, Hello, ProxyEvent, ProxyMessage, SessionEvent,
    SessionInfo, Transport,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

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
    start_core_with(dir, &[])
}

/// A core that also takes proxies over TCP with the link's TLS, on a free loopback port:
/// the core, that port, and the files a proxy needs (made as `tether link-certs` does).
pub fn start_core_on_tcp(dir: &Path) -> (CoreProcess, std::net::SocketAddr, std::path::PathBuf) {
    let core_files = dir
        .join("data")
        .join(tether_protocol::link_tls::DIR_IN_DATA);
    tether_protocol::link_tls::init(&core_files).expect("making the link authority");
    let proxy_files = dir.join("proxy-link-tls");
    tether_protocol::link_tls::issue_proxy(&core_files, "test", &proxy_files)
        .expect("signing the proxy's certificate");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let core = start_core_with(dir, &["--link-listen", &addr.to_string()]);
    (core, addr, proxy_files)
}

fn start_core_with(dir: &Path, more: &[&str]) -> CoreProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-core"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--link")
        .arg(dir.join("link.sock"))
        .args(more)
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
    Welcome {
        core: String,
        /// The core kept this proxy id's sessions from its `detach`.
        resumed: bool,
    },
    Detached,
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
    reader: MessageReader<Box<dyn AsyncRead + Unpin>>,
    writer: Box<dyn AsyncWrite + Unpin>,
}

impl TestProxy {
    pub async fn connect(socket: &Path) -> TestProxy {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect");
        let (reader, writer) = stream.into_split();
        TestProxy {
            reader: MessageReader::new(Box::new(reader)),
            writer: Box::new(writer),
        }
    }

    /// Connects over TCP with the link's TLS, proving the certificate in `files`.
    pub async fn connect_tls(addr: std::net::SocketAddr, files: &Path) -> TestProxy {
        let config = tether_protocol::link_tls::client_config(files).expect("the proxy's files");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(tether_protocol::link_tls::core_server_name(), tcp)
            .await
            .expect("TLS handshake");
        let (reader, writer) = tokio::io::split(tls);
        TestProxy {
            reader: MessageReader::new(Box::new(reader)),
            writer: Box::new(writer),
        }
    }

    /// Attaches as `proxy_id` with no sessions; the core's first answer.
    pub async fn attach(&mut self, version: u32, proxy_id: u64) -> FromCore {
        let mut bytes = Vec::new();
        ProxyMessage::Attach(Attach {
            hello: Hello {
                protocol_version: version,
                proxy_id,
                proxy_name: "test".into(),
            },
            sessions: Vec::new(),
        })
        .encode(&mut bytes);
        self.write(&bytes).await;
        self.next().await.expect("an answer to attach")
    }

    /// Submits lines `seqs` of session 1, announcing the session first if `open`.
    pub async fn submit(&mut self, open: bool, seqs: std::ops::RangeInclusive<u64>) {
        let bytes = Self::submit_bytes(open, seqs);
        self.write(&bytes).await;
    }

    /// As `submit`, then `detach`, in one write: the core reads the detach before its pump
    /// has written anything the lines produced.
    pub async fn submit_and_detach(&mut self, open: bool, seqs: std::ops::RangeInclusive<u64>) {
        let mut bytes = Self::submit_bytes(open, seqs);
        ProxyMessage::Detach.encode(&mut bytes);
        self.write(&bytes).await;
    }

    fn submit_bytes(open: bool, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut events = Vec::new();
        if open {
            events.push(ProxyEvent {
                session: 1,
                event: SessionEvent::Opened(SessionInfo {
                    transport: Transport::Telnet,
                    remote_addr: "127.0.0.1:5000".into(),
                }),
            });
        }
        for seq in seqs {
            events.push(ProxyEvent {
                session: 1,
                event: SessionEvent::Line {
                    seq,
                    text: "xyzzy".into(),
                },
            });
        }
        let mut bytes = Vec::new();
        message::encode_submit(&events, &mut bytes);
        bytes
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .await
            .expect("write to the core");
    }

    /// The next message; `None` once the core has closed the connection.
    pub async fn next(&mut self) -> Option<FromCore> {
        let message = self.reader.next().await.expect("a readable stream")?;
        Some(
            match CoreMessage::decode(&message).expect("a known core message") {
                CoreMessage::Welcome(welcome) => FromCore::Welcome {
                    core: welcome.core_name,
                    resumed: welcome.resumed,
                },
                CoreMessage::Detached => FromCore::Detached,
                CoreMessage::Refused(reason) => FromCore::Refused(reason),
                CoreMessage::Accepted => FromCore::Accepted,
                CoreMessage::Declined(reason) => FromCore::Declined(reason),
                CoreMessage::Deliver(events) => FromCore::Deliver {
                    last_ack: events
                        .iter()
                        .filter_map(|event| match event.delivery {
                            Delivery::Ack(seq) => Some(seq),
                            _ => None,
                        })
                        .max(),
                    events: events.len(),
                },
                CoreMessage::GameStatus(_) => FromCore::GameStatus,
            },
        )
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
