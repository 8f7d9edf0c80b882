//! The one error type of the request path and the one place that maps an error to a status code,
//! a stable machine-readable `code`, and a message for the JSON body
//! `{"error":{"code":"...","message":"..."}}`.
//!
//! Each error knows which side caused it (client, upstream, gateway), which decides the log level;
//! where it happened (a static context string for logs); whether repeating the request elsewhere is
//! safe ([`Retry`]); and the I/O error behind it, if any (kind and errno, so the type stays `Copy`).

use std::fmt;
use std::io;

use crate::http::chunked::ChunkError;
use crate::http::normalize::PathError;
use crate::http::{HeadError, ResponseError};

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Gateway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Request head refused while parsing.
    Head(HeadError),
    /// Request body framing broken (chunked syntax).
    BadChunk(ChunkError),
    /// The path was refused by normalization (dot segments, encoded separators, bad escapes, ...).
    BadPath(PathError),
    /// 413: body larger than the route allows.
    BodyTooLarge,
    /// 408: the client was too slow sending its request head.
    HeaderTimeout,
    /// 408: the client stalled while sending its body.
    BodyTimeout,
    /// 404.
    RouteNotFound,
    /// 405: a route matches the path but not the method.
    MethodNotAllowed,
    /// The client closed or reset its connection mid-request (nothing can be answered).
    ClientGone,
    /// 502: connecting to the upstream failed.
    UpstreamConnect,
    /// 504: connecting to the upstream timed out.
    UpstreamConnectTimeout,
    /// 502: the upstream closed or reset the connection before a complete response head.
    UpstreamReset,
    /// 502: the upstream response could not be parsed or framed.
    UpstreamBadResponse(ResponseError),
    /// 504: no response head within `response_timeout`, or a stalled body.
    UpstreamTimeout,
    /// 503: every target is at `max_connections` and none freed up in time.
    UpstreamSaturated,
    /// 503: every target failed its health checks and the upstream does not fail open.
    NoHealthyUpstream,
    /// 503: the upstream's circuit breaker is open.
    CircuitOpen,
    /// 503: the upstream's `max_in_flight` is reached.
    ConcurrencyLimit,
    /// 503: `max_pending` requests already wait for an upstream connection.
    PendingLimit,
    /// 503: the gateway is shutting down.
    ShuttingDown,
    /// 429: a rate limit of the route refused the request.
    RateLimited,
    /// 429: the caller has too many requests in flight on the route.
    TooManyConcurrent,
    /// 401: a managed service's route was called without a credential.
    CredentialMissing,
    /// 401: the credential is unknown, expired or revoked.
    CredentialInvalid,
    /// 403: the calling app has no approved subscription to the service.
    SubscriptionRequired,
    /// 403: the calling app's subscription waits for approval.
    SubscriptionPending,
    /// 410: the service is retired.
    ServiceRetired,
    /// 429: the shard checks no more uncached credentials this second (password hashing is
    /// bounded).
    CredentialCheckBusy,
    /// 411: a signed request with a chunked body (its digest needs the length first).
    LengthRequired,
    /// 400: an AI request the gateway cannot take (not JSON, a field of the wrong type, a
    /// request a provider's format cannot express).
    AiBadRequest,
    /// 404: the model is not an alias this route serves.
    ModelNotFound,
    /// A model provider answered this error status (passed on in OpenAI's error shape).
    ProviderError(u16),
    /// 503: every key of the providers that could serve the model is cooling down or disabled.
    ProviderKeysUnavailable,
    /// 429: an AI limit (requests or tokens per minute, a token or cost budget) is reached.
    AiLimited,
}

/// Whether a request that failed with this error may be sent again (to another connection or
/// target) without risk of the upstream acting on it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached an upstream application (refused connect, connect timeout).
    Safe,
    /// A pooled connection turned out dead before any response byte: the upstream most likely closed
    /// it while idle, so the request was probably not seen, but that is not certain. Safe to resend
    /// only when the request is idempotent (RFC 9110 §9.2.2).
    IfIdempotent,
    /// The upstream may have acted on the request.
    Unsafe,
}

/// The I/O error behind a [`GatewayError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoSource {
    pub kind: io::ErrorKind,
    pub errno: Option<i32>,
}

impl fmt::Display for IoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(n) => write!(f, "{}", io::Error::from_raw_os_error(n)),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// A request-path error; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct GatewayError {
    pub kind: ErrorKind,
    /// Where it happened ("reading the response head"); empty when the kind says it all.
    pub context: &'static str,
    pub retry: Retry,
    pub io: Option<IoSource>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind) -> GatewayError {
        GatewayError {
            kind,
            context: "",
            retry: Retry::Unsafe,
            io: None,
        }
    }

    pub fn io(kind: ErrorKind, e: &io::Error) -> GatewayError {
        GatewayError::new(kind).with_io(e)
    }

    /// The I/O error behind this one.
    pub fn with_io(mut self, e: &io::Error) -> GatewayError {
        self.io = Some(IoSource {
            kind: e.kind(),
            errno: e.raw_os_error(),
        });
        self
    }

    /// Where the error happened.
    pub fn context(mut self, context: &'static str) -> GatewayError {
        self.context = context;
        self
    }

    pub fn retry(mut self, retry: Retry) -> GatewayError {
        self.retry = retry;
        self
    }

    /// Whether the request may be sent again after this error (`idempotent`: its method is).
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self.retry {
            Retry::Safe => true,
            Retry::IfIdempotent => idempotent,
            Retry::Unsafe => false,
        }
    }

    /// The status code sent to the client.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::Head(h) => match h {
                HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
                HeadError::UriTooLong => 414,
                HeadError::Version => 505,
                HeadError::Expectation => 417,
                HeadError::Connect => 405,
                HeadError::Malformed(_)
                | HeadError::BadFraming(_)
                | HeadError::MissingHost
                | HeadError::BadHost(_) => 400,
            },
            ErrorKind::BadChunk(_) | ErrorKind::BadPath(_) => 400,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::HeaderTimeout | ErrorKind::BodyTimeout => 408,
            ErrorKind::RouteNotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::ClientGone => 499,
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamBadResponse(_) => 502,
            ErrorKind::UpstreamConnectTimeout | ErrorKind::UpstreamTimeout => 504,
            ErrorKind::UpstreamSaturated
            | ErrorKind::NoHealthyUpstream
            | ErrorKind::CircuitOpen
            | ErrorKind::ConcurrencyLimit
            | ErrorKind::PendingLimit
            | ErrorKind::ShuttingDown => 503,
            ErrorKind::RateLimited | ErrorKind::TooManyConcurrent => 429,
            ErrorKind::CredentialMissing | ErrorKind::CredentialInvalid => 401,
            ErrorKind::SubscriptionRequired | ErrorKind::SubscriptionPending => 403,
            ErrorKind::ServiceRetired => 410,
            ErrorKind::CredentialCheckBusy => 429,
            ErrorKind::LengthRequired => 411,
            ErrorKind::AiBadRequest => 400,
            ErrorKind::ModelNotFound => 404,
            ErrorKind::ProviderError(s) => s,
            ErrorKind::ProviderKeysUnavailable => 503,
            ErrorKind::AiLimited => 429,
        }
    }

    /// Stable machine-readable code for the JSON body and logs.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::Head(h) => match h {
                HeadError::HeadTooLarge => "header_too_large",
                HeadError::TooManyHeaders => "too_many_headers",
                HeadError::UriTooLong => "uri_too_long",
                HeadError::Malformed(_) => "bad_request",
                HeadError::BadFraming(_) => "bad_framing",
                HeadError::MissingHost => "missing_host",
                HeadError::BadHost(_) => "bad_host",
                HeadError::Version => "http_version_not_supported",
                HeadError::Expectation => "expectation_failed",
                HeadError::Connect => "method_not_allowed",
            },
            ErrorKind::BadChunk(_) => "bad_chunked_body",
            ErrorKind::BadPath(_) => "bad_path",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::HeaderTimeout => "header_timeout",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::RouteNotFound => "route_not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::ClientGone => "client_closed",
            ErrorKind::UpstreamConnect => "upstream_connect_failed",
            ErrorKind::UpstreamConnectTimeout => "upstream_connect_timeout",
            ErrorKind::UpstreamReset => "upstream_reset",
            ErrorKind::UpstreamBadResponse(_) => "upstream_bad_response",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamSaturated => "upstream_saturated",
            ErrorKind::NoHealthyUpstream => "no_healthy_upstream",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::ConcurrencyLimit => "concurrency_limit",
            ErrorKind::PendingLimit => "pending_limit",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::TooManyConcurrent => "too_many_concurrent_requests",
            ErrorKind::CredentialMissing => "credential_missing",
            ErrorKind::CredentialInvalid => "credential_invalid",
            ErrorKind::SubscriptionRequired => "subscription_required",
            ErrorKind::SubscriptionPending => "subscription_pending",
            ErrorKind::ServiceRetired => "service_retired",
            ErrorKind::CredentialCheckBusy => "too_many_credential_checks",
            ErrorKind::LengthRequired => "length_required",
            ErrorKind::AiBadRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::ProviderError(_) => "provider_error",
            ErrorKind::ProviderKeysUnavailable => "provider_keys_unavailable",
            ErrorKind::AiLimited => "ai_limit_exceeded",
        }
    }

    /// Human-readable message for the JSON body.
    pub fn message(&self) -> &'static str {
        match self.kind {
            ErrorKind::Head(h) => h.reason(),
            ErrorKind::BadChunk(c) => c.reason(),
            ErrorKind::BadPath(p) => p.reason(),
            ErrorKind::BodyTooLarge => "request body is larger than this route allows",
            ErrorKind::HeaderTimeout => "request head not received in time",
            ErrorKind::BodyTimeout => "request body not received in time",
            ErrorKind::RouteNotFound => "no route matches this request",
            ErrorKind::MethodNotAllowed => "the route does not allow this method",
            ErrorKind::ClientGone => "client closed the connection",
            ErrorKind::UpstreamConnect => "could not connect to the upstream",
            ErrorKind::UpstreamConnectTimeout => "connecting to the upstream timed out",
            ErrorKind::UpstreamReset => "upstream closed the connection before responding",
            ErrorKind::UpstreamBadResponse(r) => r.reason(),
            ErrorKind::UpstreamTimeout => "upstream did not respond in time",
            ErrorKind::UpstreamSaturated => "upstream connection limit reached",
            ErrorKind::NoHealthyUpstream => "no healthy upstream target",
            ErrorKind::CircuitOpen => "the upstream's circuit breaker is open",
            ErrorKind::ConcurrencyLimit => "too many requests in flight to the upstream",
            ErrorKind::PendingLimit => "too many requests waiting for an upstream connection",
            ErrorKind::ShuttingDown => "gateway is shutting down",
            ErrorKind::RateLimited => "rate limit exceeded",
            ErrorKind::TooManyConcurrent => "too many requests in flight for this caller",
            ErrorKind::CredentialMissing => {
                "this API needs a credential: an API key in X-API-Key or Authorization: Bearer"
            }
            ErrorKind::CredentialInvalid => "the credential is unknown, expired or revoked",
            ErrorKind::SubscriptionRequired => {
                "the calling app has no approved subscription to this API"
            }
            ErrorKind::SubscriptionPending => {
                "the calling app's subscription to this API waits for approval"
            }
            ErrorKind::ServiceRetired => "this API is retired",
            ErrorKind::CredentialCheckBusy => {
                "too many new credentials to check right now; retry shortly"
            }
            ErrorKind::LengthRequired => "a signed request's body needs Content-Length",
            ErrorKind::AiBadRequest => "the request is not one this AI API takes",
            ErrorKind::ModelNotFound => "the model does not exist or this route does not serve it",
            ErrorKind::ProviderError(_) => "the model provider answered with an error",
            ErrorKind::ProviderKeysUnavailable => {
                "every key of the model's providers is cooling down or disabled"
            }
            ErrorKind::AiLimited => "an AI limit of this caller is reached",
        }
    }

    /// A request refused by a policy on purpose (breaker open, a concurrency or pending cap, a rate
    /// limit, a missing credential or subscription, a retired service), as opposed to something failing.
    pub fn is_policy_refusal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::CircuitOpen
                | ErrorKind::ConcurrencyLimit
                | ErrorKind::PendingLimit
                | ErrorKind::RateLimited
                | ErrorKind::TooManyConcurrent
                | ErrorKind::CredentialMissing
                | ErrorKind::CredentialInvalid
                | ErrorKind::SubscriptionRequired
                | ErrorKind::SubscriptionPending
                | ErrorKind::ServiceRetired
                | ErrorKind::CredentialCheckBusy
                | ErrorKind::AiLimited
        )
    }

    pub fn side(&self) -> Side {
        match self.kind {
            ErrorKind::Head(_)
            | ErrorKind::BadChunk(_)
            | ErrorKind::BadPath(_)
            | ErrorKind::BodyTooLarge
            | ErrorKind::HeaderTimeout
            | ErrorKind::BodyTimeout
            | ErrorKind::RouteNotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::ClientGone
            | ErrorKind::RateLimited
            | ErrorKind::TooManyConcurrent
            | ErrorKind::CredentialMissing
            | ErrorKind::CredentialInvalid
            | ErrorKind::SubscriptionRequired
            | ErrorKind::SubscriptionPending
            | ErrorKind::ServiceRetired
            | ErrorKind::CredentialCheckBusy
            | ErrorKind::LengthRequired
            | ErrorKind::AiBadRequest
            | ErrorKind::ModelNotFound
            | ErrorKind::AiLimited => Side::Client,
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamConnectTimeout
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamBadResponse(_)
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamSaturated
            | ErrorKind::NoHealthyUpstream
            | ErrorKind::CircuitOpen
            | ErrorKind::ConcurrencyLimit
            | ErrorKind::PendingLimit
            | ErrorKind::ProviderError(_)
            | ErrorKind::ProviderKeysUnavailable => Side::Upstream,
            ErrorKind::ShuttingDown => Side::Gateway,
        }
    }
}

impl From<HeadError> for GatewayError {
    fn from(e: HeadError) -> Self {
        GatewayError::new(ErrorKind::Head(e))
    }
}

impl From<ChunkError> for GatewayError {
    fn from(e: ChunkError) -> Self {
        GatewayError::new(ErrorKind::BadChunk(e))
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status(), self.message())?;
        if !self.context.is_empty() {
            write!(f, " while {}", self.context)?;
        }
        if let Some(io) = self.io {
            write!(f, ": {io}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GatewayError {}
