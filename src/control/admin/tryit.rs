//! `POST /api/v1/services/{id}/try`: the developer portal's try-it panel. The control plane
//! sends the request to the gateway's own plain listener, so it goes through everything a real
//! call does (route, the caller's key, subscription, quota, call log, analytics) and nothing
//! else: the gateway's own route table must send the path to one of the service's routes, and the
//! request carries only the headers and key the caller gave. It adds no power: the key decides what the gateway serves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, Body, Need, Principal};
use crate::catalog::Services;
use crate::config::managed::ServiceRoute;
use crate::control::model::ServiceSpec;
use crate::http::Method;
use crate::http::normalize;
use crate::route::{Lookup, RouteTable};

pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/v1/services/{id}/try", axum::routing::post(try_call))
}

/// Most bytes of the answer's body shown.
const MAX_SHOWN: usize = 256 * 1024;
const MAX_REQUEST_BODY: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A request to send through the gateway.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    /// GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    pub method: String,
    /// Path and query, one the gateway routes to one of the service's routes.
    pub path: String,
    /// Header names and values (no Host, Content-Length, Transfer-Encoding, Connection).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The API key to call with, sent as `Authorization: Bearer`.
    pub key: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryResponse {
    /// The call's request id (the caller's `X-Request-Id`, else one made here): it finds the
    /// call in the call log.
    pub request_id: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced), at most 256 KiB.
    pub body: String,
    pub truncated: bool,
    pub duration_ms: f64,
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const REFUSED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// Checks a try-it request's own fields (method, path syntax, headers, key, body); where the path
/// goes is [`reaching`]'s to say.
pub(super) fn check(req: &TryRequest) -> Result<(), ApiError> {
    if !METHODS.contains(&req.method.as_str()) {
        return Err(ApiError::field(
            "method",
            "one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ));
    }
    let p = &req.path;
    let printable = p.bytes().all(|b| b.is_ascii_graphic());
    if !p.starts_with('/') || p.len() > 4096 || !printable || p.contains('#') {
        return Err(ApiError::field(
            "path",
            "a path starting with / (printable ASCII, no spaces or #, at most 4096 bytes)",
        ));
    }
    let bare = p.split('?').next().unwrap_or("");
    // What the route check sees must be what is sent: an HTTP client resolves dot segments
    // (also percent-encoded ones) and backslashes before sending, and a percent-encoded slash
    // is a separator to some servers. Such a path is refused rather than reinterpreted.
    let lower = bare.to_ascii_lowercase();
    let dots = bare.split('/').any(|seg| seg == "." || seg == "..");
    if dots || bare.contains('\\') || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return Err(ApiError::field(
            "path",
            "dot segments, backslashes and percent-encoded dots or slashes are not allowed",
        ));
    }
    if req.headers.len() > 50 {
        return Err(ApiError::field("headers", "at most 50"));
    }
    for (i, (name, value)) in req.headers.iter().enumerate() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(ApiError::field(
                format!("headers[{i}][0]"),
                "not a header name",
            ));
        }
        if REFUSED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::field(
                format!("headers[{i}][0]"),
                "the gateway sets this header itself",
            ));
        }
        if value.len() > 8192 || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(ApiError::field(
                format!("headers[{i}][1]"),
                "not a header value (at most 8192 bytes, no control characters)",
            ));
        }
    }
    if let Some(k) = &req.key {
        if k.is_empty() || k.len() > 1024 || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::field("key", "not an API key"));
        }
    }
    if req
        .body
        .as_ref()
        .is_some_and(|b| b.len() > MAX_REQUEST_BODY)
    {
        return Err(ApiError::field("body", "larger than 1 MiB"));
    }
    Ok(())
}

/// The Host to send so that the gateway routes `req` to the service `service_id`: the first of
/// the service's routes whose host, with the path normalized as the gateway normalizes it, the
/// gateway's own route table sends to one of that service's routes. So "under the service" means
/// what the gateway does with the request, also where another service has a more specific route
/// under this one's prefix (that path is refused: it would reach the other service). `None`: send
/// no Host of our own, so the client sends the gateway's address, whose host name is
/// `default_host` (`127.0.0.1`, `[::1]`); routes with no hosts are checked with that name, since
/// a route on exactly that host would win in the gateway.
pub(super) fn reaching(
    req: &TryRequest,
    service_id: &str,
    routes: &[ServiceRoute],
    table: &RouteTable,
    services: &Services,
    normalize_opts: &normalize::Options,
    default_host: &str,
) -> Result<Option<String>, ApiError> {
    let mut out = Vec::new();
    let target = normalize::normalize(req.path.as_bytes(), normalize_opts, &mut out)
        .map_err(|e| ApiError::field("path", e.reason()))?
        .bytes(&out);
    let method = Method::from_bytes(req.method.as_bytes());
    let mut denied = false;
    for host in routes.iter().flat_map(hosts_for) {
        let name = host.as_deref().unwrap_or(default_host).as_bytes();
        match table.lookup_name(name, target, method) {
            Lookup::Found { route, .. } => {
                if services
                    .of_route(route)
                    .is_some_and(|s| &*s.id == service_id)
                {
                    return Ok(host);
                }
            }
            Lookup::MethodNotAllowed => denied = true,
            Lookup::NotFound => {}
        }
    }
    if denied {
        return Err(ApiError::field(
            "method",
            format!("no route of the service takes {} here", req.method),
        ));
    }
    let known: Vec<&str> = routes
        .iter()
        .filter_map(|r| r.path_prefix.as_deref().or(r.path_exact.as_deref()))
        .collect();
    Err(ApiError::field(
        "path",
        format!(
            "the gateway does not route this path to the service (its routes: {})",
            known.join(", ")
        ),
    ))
}

/// The Host values to try for `route`, in order: its exact host names, then a one-label stand-in
/// for each wildcard (`*.example.com` → `try.example.com`); `None` alone when it takes any host.
fn hosts_for(route: &ServiceRoute) -> Vec<Option<String>> {
    let Some(hosts) = route.hosts.as_ref().filter(|h| !h.is_empty()) else {
        return vec![None];
    };
    let exact = hosts.iter().filter(|h| !h.starts_with('*')).cloned();
    let wild = hosts
        .iter()
        .filter_map(|h| h.strip_prefix("*."))
        .map(|rest| format!("try.{rest}"));
    exact.chain(wild).map(Some).collect()
}

/// Where the gateway listens, as this host reaches it.
fn gateway_addr(st: &AdminState) -> Option<SocketAddr> {
    let mut a = *st.publisher.listening().first()?;
    if a.ip().is_unspecified() {
        a.set_ip(match a.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Some(a)
}

fn client() -> Result<&'static reqwest::Client, ApiError> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| ApiError::internal("no HTTP client"))
}

#[utoipa::path(post, path = "/api/v1/services/{id}/try", request_body = TryRequest,
    responses((status = 200, body = TryResponse, description = "what the gateway answered"),
        (status = 404), (status = 422), (status = 502, description = "the gateway could not be reached")))]
pub async fn try_call(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(req): Body<TryRequest>,
) -> Result<Json<TryResponse>, ApiError> {
    let service = super::services::visible(&st, &p, &id).await?;
    // Reading through the gateway is a read; anything else may change the API's data.
    let read = matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    p.require(if read { Need::Read } else { Need::Develop })?;
    let spec: ServiceSpec = serde_json::from_str(&service.spec)
        .map_err(|_| ApiError::internal("cannot decode the service's spec"))?;
    check(&req)?;
    let addr = gateway_addr(&st).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_plain_listener",
            "the gateway has no plain HTTP listener to send through",
        )
    })?;
    let default_host = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let snap = st.publisher.current();
    let host = reaching(
        &req,
        &service.id,
        &spec.routes,
        &snap.routes,
        &snap.catalog.services,
        &snap.config.http.normalize.options,
        &default_host,
    )?;
    drop(snap);
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| ApiError::field("method", "not a method"))?;
    let url = reqwest::Url::parse(&format!("http://{addr}{}", req.path))
        .map_err(|_| ApiError::field("path", "not a path and query"))?;
    if url.path() != req.path.split('?').next().unwrap_or("") {
        return Err(ApiError::field(
            "path",
            "the path would be sent otherwise than written",
        ));
    }
    let mut b = client()?.request(method, url);
    if let Some(h) = host {
        b = b.header(reqwest::header::HOST, h);
    }
    let request_id = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("try-{}", ulid::Ulid::new().to_string().to_lowercase()));
    b = b.header("x-request-id", request_id.as_str());
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("x-request-id") {
            b = b.header(k.as_str(), v.as_str());
        }
    }
    if let Some(k) = &req.key {
        b = b.bearer_auth(k);
    }
    if let Some(body) = req.body {
        b = b.body(body);
    }
    let started = Instant::now();
    let mut res = b.send().await.map_err(|e| {
        // Without the URL: its query may hold a secret the caller typed.
        tracing::warn!(error = %e.without_url(), "try-it could not reach the gateway");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_unreachable",
            "the gateway did not answer",
        )
    })?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = res.chunk().await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_unreachable",
            "the gateway's answer broke off",
        )
    })? {
        let room = MAX_SHOWN - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Json(TryResponse {
        request_id,
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        truncated,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> TryRequest {
        TryRequest {
            method: "GET".into(),
            path: path.into(),
            headers: vec![],
            key: None,
            body: None,
        }
    }

    /// A route table of (service, host, path prefix, methods) and the services it belongs to.
    fn table(routes: &[(&str, Option<&str>, &str, &[Method])]) -> (RouteTable, Services) {
        use crate::route::{HostPattern, PathMatch, RouteMatch};
        let hosts: Vec<Vec<HostPattern>> = routes
            .iter()
            .map(|r| {
                r.1.map(|h| HostPattern::Exact(h.into()))
                    .into_iter()
                    .collect()
            })
            .collect();
        let paths: Vec<PathMatch> = routes
            .iter()
            .map(|r| PathMatch::Prefix(r.2.into()))
            .collect();
        let t = RouteTable::build(routes.iter().enumerate().map(|(i, r)| RouteMatch {
            hosts: &hosts[i],
            path: &paths[i],
            methods: r.3,
        }))
        .expect("no conflicts");
        let mut ids: Vec<&str> = routes.iter().map(|r| r.0).collect();
        ids.dedup();
        let entry = |id: &str| crate::catalog::ServiceEntry {
            seq: 0,
            id: id.into(),
            tenant_seq: 0,
            tenant_id: "t".into(),
            state: crate::catalog::Lifecycle::Published,
            accepts: Default::default(),
            response_headers: Box::default(),
        };
        let services = Services {
            entries: ids.iter().map(|id| entry(id)).collect(),
            by_route: routes
                .iter()
                .map(|r| ids.iter().position(|id| *id == r.0).map(|i| i as u32))
                .collect(),
        };
        (t, services)
    }

    #[test]
    fn the_request_is_checked_before_it_is_sent() {
        assert!(check(&req("/orders/1?x=2")).is_ok());
        assert!(check(&req("orders")).is_err());
        assert!(check(&req("/orders/a b")).is_err());
        for sneaky in [
            "/orders/../x",
            "/orders/%2e%2e/x",
            "/orders/.%2E/x",
            "/orders/..\\x",
            "/orders%2f..%2fx",
            "/orders/./x",
            "/orders#x",
        ] {
            assert!(check(&req(sneaky)).is_err(), "{sneaky}");
        }
        let mut r = req("/orders");
        r.method = "TRACE".into();
        assert!(check(&r).is_err());
        let mut r = req("/orders");
        r.headers = vec![("Host".into(), "evil".into())];
        assert!(check(&r).is_err());
        r.headers = vec![("X-A".into(), "a\r\nb".into())];
        assert!(check(&r).is_err());
    }

    #[test]
    fn only_paths_the_gateway_routes_to_the_service() {
        let (t, services) = table(&[
            ("svc_a", None, "/orders", &[]),
            ("svc_b", None, "/orders/admin", &[]),
            ("svc_c", Some("c.example.com"), "/c", &[Method::Get]),
            // The name the gateway's own address gives as Host: this route wins over svc_a's.
            ("svc_d", Some("127.0.0.1"), "/orders/internal", &[]),
        ]);
        let ours = [ServiceRoute {
            path_prefix: Some("/orders".into()),
            ..Default::default()
        }];
        let opts = normalize::Options::default();
        let host = "127.0.0.1";
        let reach = |path: &str| reaching(&req(path), "svc_a", &ours, &t, &services, &opts, host);
        assert_eq!(reach("/orders/7?x=1").ok(), Some(None));
        // The gateway's prefixes are byte prefixes, and it merges slashes before routing.
        assert!(reach("/ordersx").is_ok());
        assert!(reach("//orders//7").is_ok());
        // Under the prefix, but the gateway sends it to another service's longer route.
        assert!(reach("/orders/admin/users").is_err());
        assert!(reach("//orders//admin").is_err());
        assert!(reach("/other").is_err());
        assert!(
            reach("/orders/internal/x").is_err(),
            "svc_d's, by the Host sent"
        );
        assert!(reach("/orders/%zz").is_err());
        // Another service's routes are not reachable through this one.
        let c = [ServiceRoute {
            path_prefix: Some("/c".into()),
            hosts: Some(vec!["c.example.com".into()]),
            ..Default::default()
        }];
        let got = reaching(&req("/c/1"), "svc_c", &c, &t, &services, &opts, host);
        assert_eq!(got.ok(), Some(Some("c.example.com".to_string())));
        assert!(reaching(&req("/c/1"), "svc_a", &c, &t, &services, &opts, host).is_err());
        let mut post = req("/c/1");
        post.method = "POST".into();
        let err = reaching(&post, "svc_c", &c, &t, &services, &opts, host).unwrap_err();
        assert!(format!("{err:?}").contains("method"), "{err:?}");
    }

    #[test]
    fn the_hosts_tried_are_the_routes() {
        let route = |hosts: &[&str]| ServiceRoute {
            hosts: Some(hosts.iter().map(|h| h.to_string()).collect()),
            ..Default::default()
        };
        let names = |r: &ServiceRoute| -> Vec<Option<String>> { hosts_for(r) };
        let some =
            |v: &[&str]| -> Vec<Option<String>> { v.iter().map(|h| Some(h.to_string())).collect() };
        assert_eq!(
            names(&route(&["api.example.com"])),
            some(&["api.example.com"])
        );
        assert_eq!(
            names(&route(&["*.example.com", "b.example.com"])),
            some(&["b.example.com", "try.example.com"])
        );
        assert_eq!(
            names(&route(&["*.example.com"])),
            some(&["try.example.com"])
        );
        assert_eq!(names(&ServiceRoute::default()), vec![None]);
        assert_eq!(names(&route(&[])), vec![None]);
    }

    #[test]
    fn a_later_host_of_the_route_is_tried_when_the_first_is_taken() {
        let (t, services) = table(&[
            ("svc_a", Some("a.example.com"), "/shop", &[]),
            ("svc_a", Some("b.example.com"), "/shop", &[]),
            ("svc_b", Some("a.example.com"), "/shop/admin", &[]),
        ]);
        let ours = [ServiceRoute {
            path_prefix: Some("/shop".into()),
            hosts: Some(vec!["a.example.com".into(), "b.example.com".into()]),
            ..Default::default()
        }];
        let opts = normalize::Options::default();
        let reach = |path: &str| {
            reaching(
                &req(path),
                "svc_a",
                &ours,
                &t,
                &services,
                &opts,
                "127.0.0.1",
            )
        };
        assert_eq!(
            reach("/shop/admin/x").ok(),
            Some(Some("b.example.com".to_string()))
        );
        let got = reach("/shop/1");
        assert_eq!(got.ok(), Some(Some("a.example.com".to_string())));
    }
}
