//! The link between hosts: TCP with TLS 1.3, both ends proven by a private certificate
//! authority that belongs to one game.
//!
//! A proxy on another host speaks for every player it holds, so the core accepts only proxies
//! whose certificate its own authority signed, and a proxy talks only to a core whose
//! certificate that authority signed (no public CA, no system roots: nobody else can issue
//! one). The files:
//!
//! - on the core's host, `link-tls/` in the data directory (made by `tether link-certs init`):
//!   `ca.pem` and `ca.key` (the authority; its key never leaves this directory), `core.pem`
//!   and `core.key` (what the core shows proxies);
//! - on a proxy's host, a directory made by `tether link-certs proxy NAME` and copied there:
//!   `ca.pem`, `proxy.pem`, `proxy.key`.
//!
//! The core's certificate names [`CORE_NAME`] rather than a host: proxies check that name
//! whatever address they dial, so moving the core to another address needs no new
//! certificate. Keys are written owner-only and refused when other users can read them.
//! Certificates are long-lived (the authority is private and pinned); a stolen proxy key is
//! answered by making a new authority and new certificates for every proxy.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The name in the core's certificate, which proxies check.
pub const CORE_NAME: &str = "tether-core";
/// The authority's certificate, on both hosts.
pub const CA_CERT: &str = "ca.pem";
/// The authority's key: only on the core's host.
pub const CA_KEY: &str = "ca.key";
pub const CORE_CERT: &str = "core.pem";
pub const CORE_KEY: &str = "core.key";
pub const PROXY_CERT: &str = "proxy.pem";
pub const PROXY_KEY: &str = "proxy.key";
/// The directory in the core's data directory.
pub const DIR_IN_DATA: &str = "link-tls";

/// The authority's name. Fixed, so that its issuer can be rebuilt from its key alone to sign
/// a new proxy's certificate; another game's authority has the same name and another key,
/// and what it signed fails the signature check.
const CA_NAME: &str = "tether link authority";

#[derive(Debug, thiserror::Error)]
pub enum LinkTlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; remove that directory's link files first to start over", path.display())]
    Exists { path: PathBuf },
    #[error(
        "the link key {} can be read by other users (mode {mode:o}); make it private (chmod 600)",
        path.display()
    )]
    KeyNotPrivate { path: PathBuf, mode: u32 },
    #[error("{} holds no usable certificate", path.display())]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no usable private key", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "a proxy name is 1 to 63 letters, digits, '-' or '.' (it goes into the certificate): {0:?}"
    )]
    BadName(String),
    #[error("making a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("setting up TLS for the link")]
    Setup(#[from] rustls::Error),
    #[error("setting up the check of proxies' certificates")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The cryptography of every TLS in tether (the link's, and players' in the proxy): `ring`,
/// which builds with the Rust toolchain and the C compiler every Rust install has. rustls
/// marks it deprecated for lacking post-quantum key exchange, which its other provider
/// (aws-lc-rs) has at the price of a much heavier native build; for a game's sessions,
/// classical key exchange is what every MUD client speaks anyway.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The name proxies check in the core's certificate.
pub fn core_server_name() -> ServerName<'static> {
    ServerName::DnsName(CORE_NAME.try_into().expect("CORE_NAME is a valid DNS name"))
}

/// Makes a new authority and the core's certificate in `dir` (created owner-only). Refuses to
/// replace an authority that is there: every proxy's certificate depends on it.
pub fn init(dir: &Path) -> Result<(), LinkTlsError> {
    let ca_cert = dir.join(CA_CERT);
    fresh_dir(dir, &ca_cert)?;
    let ca_key = KeyPair::generate()?;
    let ca = ca_params().self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let (core_cert, core_key) = leaf(CORE_NAME, ExtendedKeyUsagePurpose::ServerAuth, &issuer)?;
    // The authority's certificate last: its presence says the directory is complete.
    write_private(&dir.join(CA_KEY), &issuer_key_pem(&issuer))?;
    write_private(&dir.join(CORE_KEY), &core_key)?;
    write_public(&dir.join(CORE_CERT), &core_cert)?;
    write_public(&ca_cert, &ca.pem())?;
    Ok(())
}

/// Signs a certificate for the proxy `name` with the authority in `ca_dir`, and writes what
/// that proxy's host needs into `out`: the authority's certificate, the proxy's certificate
/// and its key.
pub fn issue_proxy(ca_dir: &Path, name: &str, out: &Path) -> Result<(), LinkTlsError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(LinkTlsError::BadName(name.to_string()));
    }
    let ca_cert = read_text(&ca_dir.join(CA_CERT))?;
    let ca_key_path = ca_dir.join(CA_KEY);
    check_private(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&read_text(&ca_key_path)?)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let (cert, key) = leaf(name, ExtendedKeyUsagePurpose::ClientAuth, &issuer)?;
    let proxy_cert = out.join(PROXY_CERT);
    fresh_dir(out, &proxy_cert)?;
    write_private(&out.join(PROXY_KEY), &key)?;
    write_public(&out.join(CA_CERT), &ca_cert)?;
    write_public(&proxy_cert, &cert)?;
    Ok(())
}

/// The core's side: its certificate, and a check that each proxy's was signed by the
/// authority.
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, LinkTlsError> {
    let provider = crypto_provider();
    let roots = Arc::new(roots(&dir.join(CA_CERT))?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let (chain, key) = identity(&dir.join(CORE_CERT), &dir.join(CORE_KEY))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// A proxy's side: its certificate, and a check that the core's was signed by the authority.
pub fn client_config(dir: &Path) -> Result<Arc<ClientConfig>, LinkTlsError> {
    let roots = roots(&dir.join(CA_CERT))?;
    let (chain, key) = identity(&dir.join(PROXY_CERT), &dir.join(PROXY_KEY))?;
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A certificate for `name`, signed by `issuer`: PEM of the certificate and of its new key.
fn leaf(
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), LinkTlsError> {
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Makes `dir` (owner-only) for new files, unless `marker`, the file written last, says a
/// complete set is already there.
fn fresh_dir(dir: &Path, marker: &Path) -> Result<(), LinkTlsError> {
    if marker.exists() {
        return Err(LinkTlsError::Exists {
            path: marker.to_path_buf(),
        });
    }
    crate::private::dir(dir).map_err(|source| LinkTlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

fn read_text(path: &Path) -> Result<String, LinkTlsError> {
    std::fs::read_to_string(path).map_err(|source| LinkTlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

fn roots(path: &Path) -> Result<RootCertStore, LinkTlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkTlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|source| match source {
            rustls::pki_types::pem::Error::Io(source) => LinkTlsError::Read {
                path: path.to_path_buf(),
                source,
            },
            source => LinkTlsError::BadCertificate {
                path: path.to_path_buf(),
                source,
            },
        })?;
    if certs.is_empty() {
        return Err(LinkTlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LinkTlsError> {
    let chain = certificates(cert)?;
    check_private(key)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| match source {
        rustls::pki_types::pem::Error::Io(source) => LinkTlsError::Read {
            path: key.to_path_buf(),
            source,
        },
        source => LinkTlsError::BadKey {
            path: key.to_path_buf(),
            source,
        },
    })?;
    Ok((chain, key))
}

fn check_private(key: &Path) -> Result<(), LinkTlsError> {
    match crate::private::shared(key) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(LinkTlsError::KeyNotPrivate {
            path: key.to_path_buf(),
            mode,
        }),
        Err(source) => Err(LinkTlsError::Read {
            path: key.to_path_buf(),
            source,
        }),
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), LinkTlsError> {
    write(path, text, crate::private::FILE_MODE)
}

fn write_public(path: &Path, text: &str) -> Result<(), LinkTlsError> {
    write(path, text, 0o644)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), LinkTlsError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| LinkTlsError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authority_signs_proxies_that_its_core_accepts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let core = dir.path().join("core");
        init(&core).expect("init");
        assert!(matches!(init(&core), Err(LinkTlsError::Exists { .. })));
        let proxy = dir.path().join("proxy");
        issue_proxy(&core, "edge-1", &proxy).expect("issue");
        server_config(&core).expect("the core's side loads");
        client_config(&proxy).expect("the proxy's side loads");
        for key in [
            core.join(CA_KEY),
            core.join(CORE_KEY),
            proxy.join(PROXY_KEY),
        ] {
            assert_eq!(crate::private::shared(&key).expect("stat"), None, "{key:?}");
        }
        assert!(
            !proxy.join(CA_KEY).exists(),
            "the authority's key stays home"
        );
        assert!(matches!(
            issue_proxy(&core, "no spaces", &dir.path().join("x")),
            Err(LinkTlsError::BadName(_))
        ));
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        init(dir.path()).expect("init");
        let key = dir.path().join(CORE_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = server_config(dir.path()).expect_err("refused");
        assert!(
            matches!(error, LinkTlsError::KeyNotPrivate { .. }),
            "{error}"
        );
    }
}
