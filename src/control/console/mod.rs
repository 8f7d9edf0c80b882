//! The web console and developer portal: a page and its scripts, embedded in the binary and
//! served by the admin listener (`/` and `/assets/...`), so the README's run command gives a
//! working UI with no Node toolchain anywhere. The page is plain ES modules over the admin API;
//! it has no power of its own: every action is an admin API call, checked there.
//!
//! Every admin response carries a strict Content-Security-Policy (scripts, styles, images and
//! calls from this origin only; no inline script or style; no framing) and the usual hardening
//! headers. Assets are revalidated by ETag (`no-cache`): a new binary never serves a stale page.

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

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = crate::catalog::hash_key(a.bytes);
                let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
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
    let (a, tag) = (&ASSETS[i], &etags()[i]);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    (StatusCode::OK, h, a.bytes).into_response()
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
        assert_eq!(etags().len(), ASSETS.len());
    }
}
