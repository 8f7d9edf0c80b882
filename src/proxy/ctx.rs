//! The per-request context: one typed record of what happened to a request, owned by the connection
//! task, filled by the stages as the request moves through them and read once, complete, by
//! [`super::finish`].
//!
//! Nothing in it points into the connection's buffer: the head's spans are only valid until the
//! request's bytes are consumed (a body relay does that early), so whatever the end of a request
//! needs from the head (its request id, method) is copied here when the head is read.
//!
//! Performance: a plain struct on the request future's stack (no allocation); timings are TSC
//! readings ([`crate::observe::clock`]) taken only at the points that happen anyway.

use std::net::SocketAddr;

use crate::error::GatewayError;
use crate::http::Method;
use crate::observe::clock;

/// Longest client `X-Request-Id` kept for the gateway's own answers and logs. A longer one is still
/// forwarded upstream unchanged; the gateway then names the request by a generated id.
pub const MAX_REQUEST_ID: usize = 128;

/// A request's id: the client's `X-Request-Id` when it sent a usable one, else generated on demand
/// (a request that succeeds and is not logged never pays for one).
#[derive(Clone)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID],
}

impl RequestId {
    fn empty() -> RequestId {
        RequestId {
            len: 0,
            bytes: [0; MAX_REQUEST_ID],
        }
    }

    /// Keeps `v` if it fits; otherwise leaves the id to be generated.
    pub fn set_client(&mut self, v: &[u8]) {
        if !v.is_empty() && v.len() <= MAX_REQUEST_ID {
            self.bytes[..v.len()].copy_from_slice(v);
            self.len = v.len() as u8;
        }
    }

    pub fn is_set(&self) -> bool {
        self.len != 0
    }

    /// Sets a generated id (24 hex digits).
    pub fn set_generated(&mut self, id: &[u8; 24]) {
        self.bytes[..24].copy_from_slice(id);
        self.len = 24;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// When each phase of a request happened, in [`crate::observe::clock`] ticks (differences turn into
/// microseconds with `clock::micros`); 0 = did not happen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// The connection was accepted.
    pub accepted: u64,
    /// The request head was complete.
    pub head: u64,
    /// An upstream connection was in hand (leased from the pool or newly connected), last try.
    pub upstream_connected: u64,
    /// The first byte of the upstream's response head arrived (last try).
    pub upstream_first_byte: u64,
    /// The last byte of the response was written to the client (or the request ended otherwise).
    pub last_byte: u64,
}

/// What the end of a request needs to know about its head, copied out of it when it is read (see the
/// module docs: the head itself is gone once its bytes are consumed).
#[derive(Debug, Clone, Copy)]
pub struct HeadFacts {
    pub method: Method,
    pub http10: bool,
    /// The client asked to close after this request (or is HTTP/1.0 without keep-alive).
    pub close: bool,
    /// HTTP/1.0 client that asked for keep-alive (needs `connection: keep-alive` back).
    pub keep_alive_10: bool,
}

/// A short text copied out of something that may be gone when the request ends (an app's id:
/// the catalog it came from may be replaced meanwhile). Longer texts are cut.
#[derive(Clone, Copy)]
pub struct ShortText {
    len: u8,
    bytes: [u8; 64],
}

impl ShortText {
    pub const fn empty() -> ShortText {
        ShortText {
            len: 0,
            bytes: [0; 64],
        }
    }

    pub fn set(&mut self, v: &[u8]) {
        let n = v.len().min(self.bytes.len());
        self.bytes[..n].copy_from_slice(&v[..n]);
        self.len = n as u8;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The request's place in a W3C trace: its trace id, the span the gateway's hop is (sent upstream
/// as the parent), and the caller's span when it sent a valid `traceparent`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace {
    pub set: bool,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero: the trace started here.
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// The app a credential identified (store numbers, stable across catalog rebuilds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub app: i64,
    pub tenant: i64,
    /// The app's metric series slot.
    pub series: u32,
}

/// What happened to the request, filled as it goes.
pub struct RequestCtx {
    pub id: RequestId,
    pub head: HeadFacts,
    /// The request's bytes (head and any body) are no longer in the connection buffer: the head's
    /// spans must not be read, and the connection cannot be kept alive after an error.
    pub consumed: bool,
    /// The request was read whole before it was consumed (an AI route buffers its body): the
    /// connection can stay open after its answer.
    pub read_whole: bool,
    pub peer: SocketAddr,
    /// The client connection's TLS version (`"TLSv1.3"`), `None` for plain connections.
    pub tls: Option<&'static str>,
    /// Index of the matched route in the snapshot's config.
    pub route: Option<usize>,
    /// Bytes of the (normalized) path the route's prefix matched.
    pub matched: usize,
    /// The routing path differs from the path as sent (the normalized form is in `Kit::path`).
    pub path_rewritten: bool,
    /// The managed service the route belongs to (its index in the catalog's services); `None` for
    /// the config file's routes.
    pub service: Option<u32>,
    /// Who is calling, once the auth stage identified them.
    pub caller: Option<Caller>,
    /// The calling app's id (for the call record).
    pub app_id: ShortText,
    pub trace: Trace,
    /// The caller's quota table (index in the catalog's quotas), from its subscription.
    pub quota: Option<u32>,
    /// Index of the upstream that served (the fallback upstream when the breaker sent it there).
    pub upstream: Option<usize>,
    /// Target of the last try.
    pub target: Option<SocketAddr>,
    /// Connections tried against the upstream, failed connects included (0 when it never got that
    /// far).
    pub tries: u32,
    pub timings: Timings,
    /// Request bytes read from the client (head and body).
    pub bytes_in: u64,
    /// Response bytes written to the client (head and body).
    pub bytes_out: u64,
    /// Status sent to the client (0: none was sent).
    pub status: u16,
    /// Why the request did not end in a complete upstream response, when it did not.
    pub error: Option<GatewayError>,
    /// What an AI route's call used and cost (`None` for every other route).
    pub ai: Option<Box<AiCall>>,
}

/// An AI call's accounting: which provider and model served it, its tokens and cost.
#[derive(Debug, Clone, Default)]
pub struct AiCall {
    /// The alias the client asked for.
    pub alias: String,
    /// The provider (its name in `[ai.providers]`) and its model that served, or were tried last.
    pub provider: String,
    pub model: String,
    pub tokens: crate::ai::price::Tokens,
    /// The token counts are the gateway's estimate (the provider gave none, or the client left
    /// before the provider's final count).
    pub estimated: bool,
    pub cost: crate::ai::price::Nanos,
    /// When the first token reached the client ([`clock::now`] ticks; 0: none did).
    pub first_token: u64,
    pub streamed: bool,
    /// Candidates tried (fallbacks: more than 1).
    pub attempts: u32,
}

impl RequestCtx {
    pub fn new(peer: SocketAddr, accepted: u64) -> RequestCtx {
        RequestCtx {
            id: RequestId::empty(),
            head: HeadFacts {
                method: Method::Get,
                http10: false,
                close: true,
                keep_alive_10: false,
            },
            consumed: false,
            read_whole: false,
            peer,
            tls: None,
            route: None,
            matched: 0,
            path_rewritten: false,
            service: None,
            caller: None,
            app_id: ShortText::empty(),
            trace: Trace::default(),
            quota: None,
            upstream: None,
            target: None,
            tries: 0,
            timings: Timings {
                accepted,
                ..Timings::default()
            },
            bytes_in: 0,
            bytes_out: 0,
            status: 0,
            error: None,
            ai: None,
        }
    }

    /// Takes what the request's end needs from a freshly parsed head.
    pub fn read_head(&mut self, req: &crate::http::RequestHead, data: &[u8]) {
        self.head = HeadFacts {
            method: req.method,
            http10: req.http10,
            close: req.close,
            keep_alive_10: req.keep_alive_10,
        };
        self.bytes_in = req.len as u64;
        self.timings.head = clock::now();
        if let Some(id) = req.request_id {
            self.id.set_client(id.of(data));
        }
    }

    /// Records the error the request ended with (the first one wins: later ones are consequences).
    pub fn fail(&mut self, e: GatewayError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}
