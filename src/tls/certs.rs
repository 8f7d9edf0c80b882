//! Certificates for TLS termination: PEM chains and keys loaded from files, the names and expiry
//! each certificate is valid for (read with `x509-parser`, for `ringway check` and the SNI index),
//! and the resolver that picks a certificate by the client's SNI name.
//!
//! SNI: an exact name wins over a wildcard (`*.example.com` covers one label); a client that sends
//! no name, or one no certificate covers, gets the first certificate configured.
//!
//! Errors are strings that say which file and why; the config layer adds the field name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What a loaded certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names (subject alternative names, else the subject's common name), lowercased.
    pub names: Vec<String>,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Seconds from now until it expires (negative: expired).
    pub expires_in_s: i64,
}

/// A certificate chain with its key, ready for rustls.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// The process's crypto provider (ring), chosen explicitly rather than by crate features.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain (leaf first) and its PEM private key.
pub fn load(cert: &Path, key: &Path) -> Result<Loaded, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{}: no certificate in the file", cert.display()));
    };
    let info = info(leaf).map_err(|e| format!("{}: {e}", cert.display()))?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: no usable PEM private key: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, der, &provider())
        .map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))?;
    Ok(Loaded {
        key: Arc::new(certified),
        info,
    })
}

/// Names and expiry of a DER certificate.
pub fn info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    let not_after = cert.validity().not_after;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(CertInfo {
        names,
        not_after: not_after
            .to_rfc2822()
            .unwrap_or_else(|_| not_after.to_string()),
        expires_in_s: not_after.timestamp() - now,
    })
}

/// Picks the certificate for a handshake by SNI name.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in config order; the first is the default. `None` without certificates.
    pub fn new(certs: &[Loaded]) -> Option<SniResolver> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for n in &c.info.names {
                match n.strip_prefix("*.") {
                    Some(rest) => wildcard.entry(rest.to_string()),
                    None => exact.entry(n.clone()),
                }
                .or_insert_with(|| c.key.clone());
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for `name` (lowercase ASCII, as rustls hands it over).
    pub fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// TLS protocol versions a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub tls12: bool,
    pub tls13: bool,
}

/// The rustls server config of a TLS listener: certificates by SNI, ALPN `http/1.1`, session
/// resumption by tickets (TLS 1.3 and 1.2) and by a session cache.
pub fn server_config(
    certs: &[Loaded],
    versions: Versions,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let resolver = SniResolver::new(certs).ok_or("at least one certificate is required")?;
    let mut v: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if versions.tls13 {
        v.push(&rustls::version::TLS13);
    }
    if versions.tls12 {
        v.push(&rustls::version::TLS12);
    }
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&v)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    // One TLS 1.3 ticket per full handshake (rustls sends two by default): an HTTP/1.1 client
    // resumes one connection at a time, and each ticket is a record to encrypt and send.
    cfg.send_tls13_tickets = 1;
    Ok(Arc::new(cfg))
}

/// Where an upstream's server certificates are verified against.
pub enum Roots<'a> {
    /// The system's trust store (`/etc/ssl/certs` and the like, via `rustls-native-certs`).
    System,
    /// A PEM file of CA certificates.
    File(&'a Path),
}

/// The rustls client config of a TLS upstream: verification against `roots`, an optional client
/// certificate (mTLS), ALPN `http/1.1`, session resumption (the default in-memory store; each
/// shard gets its own copy of the config, see `Upstream::new`). Returns the config and the DER of
/// everything loaded (so a reload can tell whether a file changed).
pub fn client_config(
    roots: Roots<'_>,
    client: Option<(&Path, &Path)>,
) -> Result<(Arc<rustls::ClientConfig>, Vec<u8>), String> {
    let mut store = rustls::RootCertStore::empty();
    let mut material = Vec::new();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A store entry rustls cannot use is skipped, as every TLS client does.
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(format!(
                    "no usable CA certificate in the system trust store ({} errors); install ca-certificates or set ca",
                    found.errors.len()
                ));
            }
        }
        Roots::File(p) => {
            for c in CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
            {
                let c = c.map_err(|e| format!("{}: not a PEM certificate: {e}", p.display()))?;
                material.extend_from_slice(c.as_ref());
                store
                    .add(c)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", p.display()))?;
            }
            if store.is_empty() {
                return Err(format!("{}: no certificate in the file", p.display()));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
            for c in &chain {
                material.extend_from_slice(c.as_ref());
            }
            let der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("{}: no usable PEM private key: {e}", key.display()))?;
            material.extend_from_slice(der.secret_der());
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))?
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), material))
}
