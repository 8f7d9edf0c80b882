//! `GET /metrics`: the node's metrics in the Prometheus text format, for a Prometheus on the
//! admin network. It needs the admin token or the scrape token from `RINGWAY_METRICS_TOKEN`
//! (Prometheus: `authorization: { credentials_file: ... }`), unless `[metrics] public = true`.

use axum::Router;
use std::net::IpAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use super::AdminState;
use super::error::ApiError;
use super::listener::Peer;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/metrics", get(metrics))
}

/// Whether the call carries the scrape token or the admin token (the latter under the bootstrap
/// token's guess throttle, see [`super::auth::is_operator_token`]).
async fn allowed(s: &AdminState, peer: IpAddr, headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(super::auth::bearer)
    else {
        return Ok(false);
    };
    let hash = crate::catalog::hash_key(token.as_bytes());
    let scrape = s
        .metrics_token
        .as_deref()
        .is_some_and(|m| bool::from(hash.ct_eq(m)));
    if scrape {
        return Ok(true);
    }
    super::auth::is_operator_token(s, Some(peer), &hash).await
}

async fn metrics(
    State(s): State<AdminState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let public = s.publisher.current().config.metrics.public;
    if !public {
        match allowed(&s, peer.ip(), &headers).await {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::unauthorized(
                    "/metrics needs Authorization: Bearer with the admin token or RINGWAY_METRICS_TOKEN",
                )
                .into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    let body = s.publisher.render_metrics();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
