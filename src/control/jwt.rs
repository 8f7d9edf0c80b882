//! JWT credentials on the control plane: their keys built from what the store holds (a PEM public
//! key, a sealed HS256 secret) or from a JWKS document fetched over HTTP(S), and the refresh of
//! those documents. The data plane's side (verification, the per-shard cache) is
//! [`crate::catalog::jwt`].

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::catalog::AppEntry;
use crate::catalog::jwt::{JwtCred, JwtKey, key_from_pem, keys_from_jwks};

use super::keyring::Keyring;
use super::model::CredentialRow;

/// Largest JWKS document read.
const MAX_JWKS: usize = 1024 * 1024;
/// How often JWKS documents are fetched again.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET: usize = 32;

/// The HTTP client JWKS documents are fetched with (system roots, 5 s timeout, no redirects: a
/// redirect could lead anywhere the URL check did not look). Its resolver refuses a host name that
/// resolves to an address a target may not have, at every connection: the URL check when the
/// credential is made is not enough, since the name can resolve elsewhere at the next refresh
/// (DNS rebinding).
pub fn client(allow_loopback: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver { allow_loopback }))
        .build()
        .unwrap_or_default()
}

/// See [`client`]. (A URL with an IP address is not resolved; its address was checked when the
/// credential was made and cannot change.)
struct CheckedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                crate::config::managed::check_target_ip(a.ip(), allow).map_err(
                    |e| -> Box<dyn std::error::Error + Send + Sync> {
                        format!("{host} resolves to a refused address: {e}").into()
                    },
                )?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A JWKS URL must be `https://` to a host that does not resolve to this machine, a link-local or
/// an unspecified address; with `allow_loopback` (development), `http://` to a loopback address
/// is accepted too.
pub fn check_jwks_url(url: &str, allow_loopback: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("no host")?;
    let port = parsed.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback => {}
        _ => return Err("must be https://".into()),
    }
    for a in &addrs {
        crate::config::managed::check_target_ip(a.ip(), allow_loopback)?;
    }
    Ok(())
}

/// Fetches a JWKS document.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS {
            return Err(format!(
                "{url}: the document is larger than {MAX_JWKS} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub fn algorithm(s: &str) -> Result<Algorithm, String> {
    match s {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "HS256" => Ok(Algorithm::HS256),
        other => Err(format!(
            "{other:?} is not supported (RS256, ES256 or HS256)"
        )),
    }
}

/// The verification keys of a stored credential; `jwks` is its fetched document, if it has a URL.
pub fn keys(
    row: &CredentialRow,
    keyring: &Keyring,
    jwks: Option<&[u8]>,
) -> Result<Vec<JwtKey>, String> {
    let c = row.jwt();
    if c.jwks_url.is_some() {
        return match jwks {
            Some(doc) => keys_from_jwks(doc),
            None => Ok(Vec::new()),
        };
    }
    let alg = algorithm(c.algorithm.as_deref().unwrap_or(""))?;
    let key = match (&c.public_key, &c.secret_sealed) {
        (Some(pem), _) => key_from_pem(alg, pem.as_bytes())?,
        (None, Some(sealed)) => {
            let secret = keyring
                .open(sealed)
                .ok_or("the secret does not open with the store key")?;
            DecodingKey::from_secret(&secret)
        }
        (None, None) => return Err("no key".into()),
    };
    Ok(vec![JwtKey {
        kid: None,
        algorithm: alg,
        key,
    }])
}

pub fn cred(row: &CredentialRow, app: Arc<AppEntry>, keys: Vec<JwtKey>) -> Arc<JwtCred> {
    Arc::new(JwtCred {
        issuer: row.lookup.as_str().into(),
        app,
        audience: row.jwt().audience,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    fn resolve(allow_loopback: bool, host: &str) -> Result<Vec<std::net::SocketAddr>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let name: reqwest::dns::Name = host.parse().map_err(|_| "bad name".to_string())?;
        rt.block_on(CheckedResolver { allow_loopback }.resolve(name))
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_resolver_refuses_names_of_this_host_at_every_lookup() {
        let refused = resolve(false, "localhost").unwrap_err();
        assert!(refused.contains("refused address"), "{refused}");
        let allowed = resolve(true, "localhost").unwrap();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }
}
