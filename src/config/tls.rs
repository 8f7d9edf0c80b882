//! `[tls]`: TLS termination. Listeners on `listen` speak TLS, with the certificates of
//! `certificates` chosen by SNI (the first one for clients without a known name):
//!
//! ```toml
//! [tls]
//! listen = ["0.0.0.0:8443"]
//! versions = ["1.2", "1.3"]          # the default
//! certificates = [
//!     { cert = "certs/example.com.pem", key = "certs/example.com.key" },
//!     { cert = "certs/wildcard.pem", key = "certs/wildcard.key" },
//! ]
//! ```
//!
//! Certificate and key files are read when the config is loaded (so `ringway check` and a reload
//! fail on a bad file, naming it); relative paths are relative to the config file's directory.
//! A reload (SIGHUP) reads them again: new handshakes use the new certificates, connections
//! already open keep theirs. `listen` itself needs a restart, like `[server]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::ConfigError;
use crate::tls::certs::{self, CertInfo, Versions};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Vec<String>,
    pub certificates: Vec<RawCertificate>,
    /// `"1.2"`, `"1.3"`.
    pub versions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// One certificate as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub info: CertInfo,
}

/// Validated `[tls]`.
#[derive(Clone)]
pub struct TlsConfig {
    pub listen: Vec<SocketAddr>,
    pub certificates: Vec<Certificate>,
    pub versions: Versions,
    /// What handshakes use; built once per load.
    pub server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("listen", &self.listen)
            .field("certificates", &self.certificates)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

pub(super) fn tls(raw: RawTls, base: &Path) -> Result<TlsConfig, ConfigError> {
    let mut listen = Vec::with_capacity(raw.listen.len());
    for (i, a) in raw.listen.iter().enumerate() {
        listen.push(a.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid(format!("tls.listen[{i}]"), format!("{a:?}: {e}"))
        })?);
    }
    if listen.is_empty() {
        return Err(ConfigError::invalid(
            "tls.listen",
            "at least one address is required",
        ));
    }
    let versions = match raw.versions {
        None => Versions {
            tls12: true,
            tls13: true,
        },
        Some(v) => {
            let mut out = Versions {
                tls12: false,
                tls13: false,
            };
            for (i, s) in v.iter().enumerate() {
                match s.as_str() {
                    "1.2" => out.tls12 = true,
                    "1.3" => out.tls13 = true,
                    _ => {
                        return Err(ConfigError::invalid(
                            format!("tls.versions[{i}]"),
                            format!("{s:?} is not one of \"1.2\", \"1.3\""),
                        ));
                    }
                }
            }
            if !out.tls12 && !out.tls13 {
                return Err(ConfigError::invalid("tls.versions", "no version left"));
            }
            out
        }
    };
    if raw.certificates.is_empty() {
        return Err(ConfigError::invalid(
            "tls.certificates",
            "at least one { cert, key } is required",
        ));
    }
    let mut loaded = Vec::with_capacity(raw.certificates.len());
    let mut certificates = Vec::with_capacity(raw.certificates.len());
    for (i, c) in raw.certificates.iter().enumerate() {
        let cert = base.join(&c.cert);
        let key = base.join(&c.key);
        let l = certs::load(&cert, &key)
            .map_err(|e| ConfigError::invalid(format!("tls.certificates[{i}]"), e))?;
        certificates.push(Certificate {
            cert,
            key,
            info: l.info.clone(),
        });
        loaded.push(l);
    }
    let server =
        certs::server_config(&loaded, versions).map_err(|e| ConfigError::invalid("tls", e))?;
    Ok(TlsConfig {
        listen,
        certificates,
        versions,
        server,
    })
}

/// `[upstreams.NAME.tls]`: the upstream's targets speak TLS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// Name sent as SNI and verified against the certificate; default: each target's host as
    /// written (`api.example.com` of `api.example.com:443`).
    pub sni: Option<String>,
    /// PEM file of the CA certificates to trust; default: the system's trust store.
    pub ca: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS, with `client_key`.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// Validated `[upstreams.NAME.tls]`.
#[derive(Clone)]
pub struct UpstreamTls {
    pub sni: Option<String>,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The DER of every certificate and key loaded: a reload that reads other files is a change.
    material: Vec<u8>,
    /// Shared by the shards as a template; each shard's upstream clones it with its own
    /// session-resumption store.
    pub client: Arc<rustls::ClientConfig>,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, o: &UpstreamTls) -> bool {
        self.sni == o.sni
            && self.ca == o.ca
            && self.client_cert == o.client_cert
            && self.material == o.material
    }
}

impl Eq for UpstreamTls {}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

pub(super) fn upstream_tls(
    raw: RawUpstreamTls,
    field: &str,
    base: &Path,
) -> Result<UpstreamTls, ConfigError> {
    if let Some(s) = &raw.sni {
        rustls_pki_types::ServerName::try_from(s.as_str())
            .map_err(|e| ConfigError::invalid(format!("{field}.sni"), format!("{s:?}: {e}")))?;
    }
    let ca = raw.ca.as_ref().map(|c| base.join(c));
    let client_cert = match (&raw.client_cert, &raw.client_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                format!("{field}.client_key"),
                "is required with client_cert",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{field}.client_cert"),
                "is required with client_key",
            ));
        }
    };
    let roots = match &ca {
        Some(p) => certs::Roots::File(p),
        None => certs::Roots::System,
    };
    let (client, material) = certs::client_config(
        roots,
        client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .map_err(|e| ConfigError::invalid(field, e))?;
    Ok(UpstreamTls {
        sni: raw.sni,
        ca,
        client_cert,
        material,
        client,
    })
}
