//! `[admin]` (the admin API's listener and bootstrap token) and `[store]` (the embedded store's
//! file). Either one turns the control plane on; the admin listener defaults to loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

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
    Ok(AdminConfig {
        listen,
        token_file,
        allow_loopback: a.allow_loopback.unwrap_or(false),
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
