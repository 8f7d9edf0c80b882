//! `[admin]` (the admin API's listener and bootstrap token) and `[store]` (the embedded store's
//! file). Either one turns the control plane on; the admin listener defaults to loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Where the admin API listens when `[admin]` names no address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9080";
/// The store's file when `[store]` names none (next to the config file).
pub const DEFAULT_STORE_PATH: &str = "ringway.db";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `HOST:PORT`; default 127.0.0.1:9080.
    pub listen: Option<String>,
    /// File holding the bootstrap admin token (used when `RINGWAY_ADMIN_TOKEN` is not set).
    pub token_file: Option<String>,
    /// Let managed services' targets and JWKS URLs point at this host (development only).
    pub allow_loopback: Option<bool>,
    /// How long a console or `/login` session lasts (`12h` by default, at most 30 days).
    pub session_ttl: Option<String>,
    /// Mark the console's session cookie `Secure` (sent over HTTPS only). Default: on with `tls`.
    /// Turn it on when a TLS terminator in front serves the console.
    pub cookie_secure: Option<bool>,
    /// Serve the admin API and console over TLS: `{ cert = "chain.pem", key = "key.pem" }`.
    pub tls: Option<RawAdminTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminTls {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// SQLite file; relative paths are relative to the config file.
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub allow_loopback: bool,
    pub session_ttl: Duration,
    pub cookie_secure: bool,
    /// `[admin] tls`: the certificate chain and key files (checked when the config loads, read
    /// again when the listener starts).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Session lifetime when `[admin] session_ttl` is not set.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

pub(super) fn admin(a: RawAdmin, base: &Path) -> Result<AdminConfig, ConfigError> {
    let listen_s = a.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = listen_s.parse().map_err(|_| {
        ConfigError::invalid(
            "admin.listen",
            format!("{listen_s:?} is not an address such as \"127.0.0.1:9080\""),
        )
    })?;
    let token_file = match a.token_file {
        Some(f) if f.is_empty() => {
            return Err(ConfigError::invalid(
                "admin.token_file",
                "must not be empty",
            ));
        }
        Some(f) => Some(base.join(f)),
        None => None,
    };
    let session_ttl = match a.session_ttl.as_deref() {
        None => DEFAULT_SESSION_TTL,
        Some(s) => {
            let d = humantime::parse_duration(s).map_err(|_| {
                ConfigError::invalid(
                    "admin.session_ttl",
                    format!("{s:?} is not a duration such as \"12h\""),
                )
            })?;
            if d < Duration::from_secs(1) || d > MAX_SESSION_TTL {
                return Err(ConfigError::invalid(
                    "admin.session_ttl",
                    "must be 1s to 30 days",
                ));
            }
            d
        }
    };
    let tls = match a.tls {
        None => None,
        Some(t) => {
            let (cert, key) = (base.join(&t.cert), base.join(&t.key));
            crate::tls::certs::load(&cert, &key)
                .map_err(|e| ConfigError::invalid("admin.tls", e))?;
            Some((cert, key))
        }
    };
    Ok(AdminConfig {
        listen,
        token_file,
        allow_loopback: a.allow_loopback.unwrap_or(false),
        session_ttl,
        cookie_secure: a.cookie_secure.unwrap_or(tls.is_some()),
        tls,
    })
}

pub(super) fn store(s: Option<RawStore>, base: &Path) -> Result<StoreConfig, ConfigError> {
    let path = s
        .and_then(|s| s.path)
        .unwrap_or_else(|| DEFAULT_STORE_PATH.to_string());
    if path.is_empty() {
        return Err(ConfigError::invalid("store.path", "must not be empty"));
    }
    Ok(StoreConfig {
        path: base.join(path),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The console's settings refuse bad values naming the field, and default safely.
    #[test]
    fn console_settings() {
        let base = "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        for (extra, field) in [
            ("session_ttl = \"soon\"", "admin.session_ttl"),
            ("session_ttl = \"0s\"", "admin.session_ttl"),
            ("session_ttl = \"31d\"", "admin.session_ttl"),
            (
                "tls = { cert = \"/nonexistent.pem\", key = \"/nonexistent.key\" }",
                "admin.tls",
            ),
        ] {
            let err = Config::from_toml(&format!("{base}{extra}\n"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(field), "{extra}: {err}");
        }
        let c = Config::from_toml(base).ok().and_then(|c| c.admin);
        let a = c
            .as_ref()
            .map(|a| (a.session_ttl, a.cookie_secure, a.tls.is_none()));
        assert_eq!(a, Some((super::DEFAULT_SESSION_TTL, false, true)));
        let c = Config::from_toml(&format!(
            "{base}session_ttl = \"30m\"\ncookie_secure = true\n"
        ))
        .ok()
        .and_then(|c| c.admin);
        let a = c.map(|a| (a.session_ttl.as_secs(), a.cookie_secure));
        assert_eq!(a, Some((1800, true)));
    }
}
