//! The web console and developer portal: a page and its scripts, embedded in the binary and
//! served by the admin listener (`/` and `/assets/...`), so the README's run command gives a
//! working UI with no Node toolchain anywhere. The page is plain ES modules over the admin API;
//! it has no power of its own: every action is an admin API call, checked there.
//!
//! Every admin response carries a strict Content-Security-Policy (scripts, styles, images and
//! calls from this origin only; no inline script or style; no framing) and the usual hardening
//! headers. Assets are revalidated by ETag (`no-cache`): a new binary never serves a stale page;
//! scripts, styles and the page go gzipped to clients that take it (compressed once per process).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: its path under `/assets/`, type and bytes.
struct Asset {
    path: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $mime:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            mime: $mime,
            bytes: include_bytes!(concat!("assets/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/ui.js" => JS,
    "js/charts.js" => JS,
    "js/openapi.js" => JS,
    "js/pages/login.js" => JS,
    "js/pages/overview.js" => JS,
    "js/pages/tenants.js" => JS,
    "js/pages/users.js" => JS,
    "js/pages/services.js" => JS,
    "js/pages/apps.js" => JS,
    "js/pages/subscriptions.js" => JS,
    "js/pages/ai.js" => JS,
    "js/pages/audit.js" => JS,
    "js/pages/analytics.js" => JS,
    "js/pages/calls.js" => JS,
    "js/pages/portal.js" => JS,
    "js/pages/sessions.js" => JS,
    "vendor/uplot/uPlot.iife.min.js" => JS,
    "vendor/uplot/uPlot.min.css" => "text/css; charset=utf-8",
    "vendor/uplot/LICENSE" => "text/plain; charset=utf-8",
};

/// The policy every admin response carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Assets of these types are also kept gzipped (images and the licence text are small or
/// already compressed).
fn compressible(mime: &str) -> bool {
    mime.starts_with("text/html") || mime.starts_with("text/css") || mime == JS
}

/// Each asset's bytes as sent: plain, and gzipped where that is smaller, each with its ETag
/// (a strong one per representation, so a cache never mixes them up). Compressed once, on
/// first use.
struct Representations {
    plain_tag: String,
    gzip: Option<(Vec<u8>, String)>,
}

fn representations() -> &'static [Representations] {
    static ALL: OnceLock<Vec<Representations>> = OnceLock::new();
    ALL.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = crate::catalog::hash_key(a.bytes);
                let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
                let gzip = compressible(a.mime)
                    .then(|| gzip(a.bytes))
                    .flatten()
                    .filter(|z| z.len() < a.bytes.len() * 9 / 10)
                    .map(|z| (z, format!("\"{hex}-gz\"")));
                Representations {
                    plain_tag: format!("\"{hex}\""),
                    gzip,
                }
            })
            .collect()
    })
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).ok()?;
    z.finish().ok()
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110 §12.5.3: `gzip`, `x-gzip` or `*`, with a
/// non-zero weight; an explicit `gzip;q=0` refuses it even when `*` is listed).
pub(crate) fn accepts_gzip(req: &HeaderMap) -> bool {
    let mut star = false;
    for v in req.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => return q > 0.0,
                "*" => star = q > 0.0,
                _ => {}
            }
        }
    }
    star
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route("/portal", get(|| async { Redirect::to("/#/portal") }))
        .route(
            "/assets/{*path}",
            get(|Path(p): Path<String>, h: HeaderMap| async move { serve(&p, &h) }),
        )
}

fn serve(path: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return super::admin::ApiError::not_found("no such asset").into_response();
    };
    let (a, r) = (&ASSETS[i], &representations()[i]);
    let gz = r.gzip.as_ref().filter(|_| accepts_gzip(req));
    let (body, tag): (&'static [u8], &str) = match gz {
        Some((z, tag)) => (z.as_slice(), tag),
        None => (a.bytes, &r.plain_tag),
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if r.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gz.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == tag)
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    (StatusCode::OK, h, body).into_response()
}

/// Adds the security headers to every admin response.
pub async fn harden(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_once() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "{} listed twice", a.path);
            assert!(!a.bytes.is_empty(), "{} is empty", a.path);
        }
        assert_eq!(representations().len(), ASSETS.len());
    }

    #[test]
    fn gzip_is_negotiated_by_accept_encoding() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(!accepts_gzip(&HeaderMap::new()));
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "*",
            "x-gzip",
        ] {
            assert!(with(yes), "{yes}");
        }
        for no in [
            "identity",
            "br",
            "gzip;q=0",
            "*, gzip;q=0",
            "gzip; q=0.000",
            "*;q=0",
        ] {
            assert!(!with(no), "{no}");
        }
    }
}
