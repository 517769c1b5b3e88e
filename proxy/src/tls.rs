//! TLS for players (rustls, with the `ring` provider): the certificate store that follows its
//! files on disk, and a sans-IO TLS transport for telnet sessions.
//!
//! **Certificates** come from PEM files (a chain and its key, as Let's Encrypt writes them).
//! A key file other users can read is refused at start, with the reason. The files are looked
//! at again (at most once a second, when a TLS connection arrives): a certificate renewed on
//! disk is used for every connection from then on, and connections already open keep theirs.
//! A file that cannot be read or does not parse is logged and the last good certificate kept.
//!
//! **The transport** is rustls's `ServerConnection` (bytes in, bytes out) over the same
//! non-blocking socket reads and queued writes as plain telnet: encrypted records go into the
//! session's write queue, so writes stay cancel safe. What a TLS session cannot do is move to
//! another process: its keys and record counters live in this one (rustls can extract them,
//! but nothing can import them, and this kernel has no kTLS to hand them to). So a TLS session
//! is not handed over by a proxy upgrade and not kept through a proxy crash: at an upgrade
//! its player is told and the connection closed (the client reconnects), and a crash closes it.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerConnection};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;

use crate::close::CloseReason;
use crate::session::{CarriedSocket, Transport, Unsent, within_write_timeout};

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the TLS key {} can be read by other users (mode {mode:o}); make it private (chmod 600) \
         and start again",
        path.display()
    )]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("{} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable private key", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no usable certificate", path.display())]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and the key do not go together")]
    Mismatch(#[source] rustls::Error),
    #[error("cannot set up TLS")]
    Setup(#[source] rustls::Error),
}

/// What the files looked like when last read, to notice a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: i64,
    modified_ns: i64,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        modified: meta.mtime(),
        modified_ns: meta.mtime_nsec(),
        len: meta.len(),
    })
}

/// The certificate in use, and where it came from; the `ResolvesServerCert` rustls asks.
#[derive(Debug)]
pub struct Certificates {
    files: CertificateFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when `current` was read, and when they were last looked at.
    seen: Mutex<(Option<Stamp>, Option<Stamp>, Instant)>,
}

impl Certificates {
    /// Reads the files; refuses a key other users can read.
    pub fn load(files: CertificateFiles) -> Result<Arc<Certificates>, TlsError> {
        let key = read(&files)?;
        let seen = (stamp(&files.chain), stamp(&files.key), Instant::now());
        Ok(Arc::new(Certificates {
            files,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// The server side of rustls with these certificates: TLS 1.3 and 1.2, safe defaults.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let config =
            ServerConfig::builder_with_provider(tether_protocol::link_tls::crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Setup)?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }

    /// Reads the files again if they changed since they were last read (looked at no more
    /// than once a second); keeps the current certificate if the new one is unusable.
    pub fn refresh(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.2.elapsed() < Duration::from_secs(1) {
            return;
        }
        seen.2 = Instant::now();
        let now = (stamp(&self.files.chain), stamp(&self.files.key));
        if (seen.0, seen.1) == now {
            return;
        }
        match read(&self.files) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                (seen.0, seen.1) = now;
                tracing::info!(
                    chain = %self.files.chain.display(),
                    "TLS certificate reloaded; new connections use it"
                );
            }
            Err(error) => {
                tracing::warn!(
                    error = %format!("{:#}", anyhow::Error::new(error)),
                    "the TLS certificate files changed but cannot be used; keeping the last good one"
                );
                // Tried once for this change; tried again when the files change again.
                (seen.0, seen.1) = now;
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn read(files: &CertificateFiles) -> Result<CertifiedKey, TlsError> {
    let shared = tether_protocol::private::shared(&files.key).map_err(|source| TlsError::Read {
        path: files.key.clone(),
        source,
    })?;
    if let Some(mode) = shared {
        return Err(TlsError::KeyNotPrivate {
            path: files.key.clone(),
            mode,
        });
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.chain)
        .and_then(|certs| certs.collect())
        .map_err(|source| TlsError::BadCertificate {
            path: files.chain.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.chain.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::BadKey {
        path: files.key.clone(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, &tether_protocol::link_tls::crypto_provider())
        .map_err(TlsError::Mismatch)
}

/// What a TLS listener serves its connections with.
#[derive(Clone)]
pub struct TlsDoor {
    pub certificates: Arc<Certificates>,
    pub config: Arc<ServerConfig>,
}

impl TlsDoor {
    pub fn new(certificates: Arc<Certificates>) -> Result<TlsDoor, TlsError> {
        let config = certificates.server_config()?;
        Ok(TlsDoor {
            certificates,
            config,
        })
    }
}

/// TLS over a socket, sans-IO underneath: rustls's `ServerConnection` between the socket
/// and whoever reads and writes plaintext (a telnet session, or a WebSocket's frames).
pub struct TlsWire {
    stream: TcpStream,
    tls: Box<ServerConnection>,
    /// Encrypted records for the socket, in order.
    unsent: Unsent,
    /// The client ended its side (close_notify or end of stream).
    ended: bool,
}

impl TlsWire {
    pub fn new(stream: TcpStream, config: Arc<ServerConfig>) -> Result<TlsWire, CloseReason> {
        let tls = ServerConnection::new(config)
            .map_err(|error| CloseReason::ReadFailed(format!("TLS: {error}")))?;
        Ok(TlsWire::from_parts(stream, tls))
    }

    /// A connection whose handshake was done elsewhere (hyper, over tokio-rustls).
    pub fn from_parts(stream: TcpStream, tls: ServerConnection) -> TlsWire {
        TlsWire {
            stream,
            tls: Box::new(tls),
            unsent: Unsent::default(),
            ended: false,
        }
    }

    /// Moves what rustls has to send into the write queue.
    fn collect_records(&mut self) -> std::io::Result<()> {
        let mut records = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut records)?;
        }
        if !records.is_empty() {
            self.unsent.push(records);
        }
        Ok(())
    }

    /// Plaintext rustls has decrypted, if any.
    fn plaintext(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        let mut plain = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match self.tls.reader().read(&mut buffer) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => plain.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                // The peer closed the TCP connection without close_notify: an end like any.
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.ended = true;
                    break;
                }
                Err(error) => return Err(CloseReason::ReadFailed(format!("TLS: {error}"))),
            }
        }
        Ok((!plain.is_empty()).then_some(plain))
    }

    /// Gives rustls what came from the socket; answers the handshake.
    fn absorb(&mut self, mut bytes: &[u8]) -> Result<(), CloseReason> {
        let tls_error = |error: rustls::Error| CloseReason::ReadFailed(format!("TLS: {error}"));
        while !bytes.is_empty() {
            self.tls
                .read_tls(&mut bytes)
                .map_err(|error| CloseReason::ReadFailed(format!("TLS: {error}")))?;
            if let Err(error) = self.tls.process_new_packets() {
                // Tell the client why (an alert), as far as the socket takes it now.
                let _ = self.collect_records();
                let _ = self.unsent.write_now(&self.stream);
                return Err(tls_error(error));
            }
        }
        self.collect_records()
            .and_then(|()| self.unsent.write_now(&self.stream))
            .map_err(|error| CloseReason::WriteFailed(error.to_string()))
    }

    /// The next plaintext from the client; `Ok(None)` once it has ended. Cancel safe.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        loop {
            if let Some(plain) = self.plaintext()? {
                return Ok(Some(plain));
            }
            if self.ended {
                return Ok(None);
            }
            // Cancel safe: nothing is read until it is ready.
            if let Err(error) = self.stream.readable().await {
                return Err(CloseReason::ReadFailed(error.to_string()));
            }
            let mut buffer = [0u8; 4096];
            match self.stream.try_read(&mut buffer) {
                Ok(0) => {
                    // End of stream: rustls decides whether that was a clean close.
                    let _ = self.tls.read_tls(&mut &[][..]);
                    let _ = self.tls.process_new_packets();
                    self.ended = true;
                }
                Ok(n) => self.absorb(&buffer[..n])?,
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(CloseReason::ReadFailed(error.to_string())),
            }
        }
    }

    /// Encrypts `bytes` into the write queue; nothing is written yet.
    pub fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Before the handshake ends rustls holds plaintext back, then encrypts it.
        self.tls.writer().write_all(bytes)?;
        self.collect_records()
    }

    /// Writes what the socket takes now: `Ok(true)` once nothing is left.
    pub fn write_now(&mut self) -> std::io::Result<bool> {
        self.collect_records()?;
        self.unsent.write_now(&self.stream)?;
        Ok(self.unsent.is_done())
    }

    /// Writes everything queued, within the write timeout. Cancel safe.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.collect_records()?;
        within_write_timeout(self.unsent.write_all(&self.stream)).await
    }

    /// Says close_notify (briefly waiting for it to go out) and shuts the socket down.
    pub async fn shutdown(&mut self) {
        self.tls.send_close_notify();
        if self.collect_records().is_ok() {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.unsent.write_all(&self.stream))
                    .await;
        }
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await;
    }
}

/// A telnet session over TLS.
pub struct TlsTransport(TlsWire);

impl TlsTransport {
    pub fn new(stream: TcpStream, config: Arc<ServerConfig>) -> Result<TlsTransport, CloseReason> {
        TlsWire::new(stream, config).map(TlsTransport)
    }
}

impl Transport for TlsTransport {
    type In = Vec<u8>;
    type Out = Vec<u8>;

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, CloseReason> {
        self.0.read().await
    }

    fn queue(&mut self, output: Vec<Vec<u8>>) -> std::io::Result<()> {
        for bytes in output.into_iter().filter(|bytes| !bytes.is_empty()) {
            self.0.push(&bytes)?;
        }
        Ok(())
    }

    fn write_now(&mut self) -> std::io::Result<bool> {
        self.0.write_now()
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }

    async fn close(&mut self, _reason: &CloseReason) {
        self.0.shutdown().await;
    }

    /// None: a TLS session cannot be carried on by another process (see the module doc), so
    /// the keeper does not hold it open after a crash.
    fn socket_copy(&self) -> Option<OwnedFd> {
        None
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn into_socket(self) -> Result<CarriedSocket, TlsTransport> {
        Err(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_others_can_read_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = CertificateFiles {
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.chain, "").expect("write");
        std::fs::write(&files.key, "").expect("write");
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let error = Certificates::load(files.clone()).expect_err("refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let error = Certificates::load(files).expect_err("nothing in them");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    }
}
