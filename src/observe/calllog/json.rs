//! A call record as one JSON line: field names, wall-clock time, the query redacted per config,
//! recorded headers. Runs on the log writer's thread, never on a shard.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::config::observe::{CallLogConfig, QueryMode, REDACTED};
use crate::observe::clock;
use crate::observe::record::{Breaker, Field, Record};

/// Turns clock ticks into wall-clock time: a (wall, tick) pair read together, refreshed by the
/// writer once per drain (so clock drift between the two never exceeds one drain's worth).
#[derive(Clone, Copy)]
pub struct WallClock {
    wall: SystemTime,
    tick: u64,
}

impl WallClock {
    pub fn now() -> WallClock {
        WallClock {
            wall: SystemTime::now(),
            tick: clock::now(),
        }
    }

    /// The wall-clock time of `tick` (a reading taken before this pair).
    pub fn at(&self, tick: u64) -> SystemTime {
        self.wall - Duration::from_micros(clock::micros(tick, self.tick))
    }
}

/// What the record says about itself once decoded: times in microseconds, outcome labels.
pub struct Facts {
    pub start: SystemTime,
    pub latency_us: u64,
    pub connect_us: Option<u64>,
    pub first_byte_us: Option<u64>,
    pub last_byte_us: Option<u64>,
}

impl Facts {
    pub fn of(r: &Record<'_>, clock_pair: &WallClock) -> Facts {
        let t = r.fixed.ticks;
        let start = if t[1] != 0 { t[1] } else { t[0] };
        let since = |x: u64| (x != 0).then(|| clock::micros(start, x));
        Facts {
            start: clock_pair.at(start),
            latency_us: clock::micros(start, t[4]),
            connect_us: since(t[2]),
            first_byte_us: since(t[3]),
            last_byte_us: since(t[3]).and(since(t[4])),
        }
    }
}

/// The limiter that refused the request, named by the error code it answered with.
pub fn limiter_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "rate_limited" => "rate",
        "too_many_concurrent_requests" => "concurrency",
        "concurrency_limit" => "upstream_concurrency",
        "pending_limit" => "upstream_pending",
        _ => return None,
    })
}

pub fn breaker_label(b: Breaker) -> Option<&'static str> {
    match b {
        Breaker::None => None,
        Breaker::Passed => Some("closed"),
        Breaker::Open => Some("open"),
        Breaker::Fallback => Some("fallback"),
    }
}

/// The record's query string as configured: kept, dropped, or with the values of secret
/// parameters replaced.
pub fn query<'a>(q: &'a str, cfg: &CallLogConfig) -> Option<Cow<'a, str>> {
    if q.is_empty() {
        return None;
    }
    match cfg.query {
        QueryMode::Drop => None,
        QueryMode::Keep => Some(Cow::Borrowed(q)),
        QueryMode::Redact => Some(redact_query(q, &cfg.redact_query)),
    }
}

/// Replaces the value of every parameter named in `names` (lower-case; compared
/// case-insensitively, after percent-decoding the name).
pub fn redact_query<'a>(q: &'a str, names: &[String]) -> Cow<'a, str> {
    let secret = |name: &str| {
        let decoded = percent_decode(name);
        names.iter().any(|n| n.eq_ignore_ascii_case(&decoded))
    };
    if !q
        .split('&')
        .any(|p| secret(p.split_once('=').map_or(p, |(n, _)| n)))
    {
        return Cow::Borrowed(q);
    }
    let mut out = String::with_capacity(q.len());
    for (i, p) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match p.split_once('=') {
            Some((n, _)) if secret(n) => {
                out.push_str(n);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(p),
        }
    }
    Cow::Owned(out)
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        let n = self.0.len().min(32);
        for (i, b) in self.0[..n].iter().enumerate() {
            buf[2 * i] = HEX[(b >> 4) as usize];
            buf[2 * i + 1] = HEX[(b & 0xf) as usize];
        }
        s.serialize_str(std::str::from_utf8(&buf[..2 * n]).unwrap_or_default())
    }
}

struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Recorded headers (`name:value\n` lines) as a JSON object.
struct Headers<'a>(&'a [u8]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for line in self.0.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let (n, v) = match line.iter().position(|&b| b == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            };
            m.serialize_entry(&String::from_utf8_lossy(n), &String::from_utf8_lossy(v))?;
        }
        m.end()
    }
}

fn text<'a>(r: &Record<'a>, f: Field) -> Option<Cow<'a, str>> {
    let b = r.field(f);
    (!b.is_empty()).then(|| String::from_utf8_lossy(b))
}

#[derive(Serialize)]
struct Line<'a> {
    time: Shown<humantime::Rfc3339Timestamp>,
    request_id: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<Hex<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<Hex<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<Hex<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<Cow<'a, str>>,
    method: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<Cow<'a, str>>,
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<Cow<'a, str>>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<Cow<'a, str>>,
    bytes_in: u64,
    bytes_out: u64,
    latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_connect_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_first_byte_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_last_byte_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Shown<SocketAddr>>,
    tries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limited: Option<&'static str>,
    client_ip: Shown<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Headers<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<Cow<'a, str>>,
}

/// Appends `r` as one JSON line (newline included) to `out`.
pub fn write_line(out: &mut Vec<u8>, r: &Record<'_>, f: &Facts, cfg: &CallLogConfig) {
    let path_query = r.text(Field::Path);
    let (path, q) = match path_query {
        Cow::Borrowed(s) => {
            let (p, q) = s.split_once('?').unwrap_or((s, ""));
            (
                Cow::Borrowed(p),
                query(q, cfg).map(|c| Cow::Owned(c.into_owned())),
            )
        }
        Cow::Owned(s) => {
            let (p, q) = s.split_once('?').unwrap_or((&s, ""));
            (
                Cow::Owned(p.to_string()),
                query(q, cfg).map(|c| Cow::Owned(c.into_owned())),
            )
        }
    };
    let fx = &r.fixed;
    let trace = fx.has_trace();
    let error = text(r, Field::ErrorCode);
    let limited = error.as_deref().and_then(limiter_of);
    let line = Line {
        time: Shown(humantime::format_rfc3339_micros(f.start)),
        request_id: r.text(Field::RequestId),
        trace_id: trace.then_some(Hex(&fx.trace_id)),
        span_id: trace.then_some(Hex(&fx.span_id)),
        parent_span_id: (trace && fx.parent_id != [0; 8]).then_some(Hex(&fx.parent_id)),
        tenant: text(r, Field::Tenant),
        service: text(r, Field::Service),
        app: text(r, Field::App),
        route: text(r, Field::Route),
        method: r.method(),
        host: text(r, Field::Host),
        path,
        query: q,
        status: fx.status,
        error,
        error_message: text(r, Field::ErrorMessage),
        bytes_in: fx.bytes_in,
        bytes_out: fx.bytes_out,
        latency_us: f.latency_us,
        upstream_connect_us: f.connect_us,
        upstream_first_byte_us: f.first_byte_us,
        upstream_last_byte_us: f.last_byte_us,
        target: fx.target().map(Shown),
        tries: fx.tries,
        breaker: breaker_label(fx.breaker()),
        limited,
        client_ip: Shown(fx.peer().ip()),
        user_agent: text(r, Field::UserAgent),
        tls: fx.tls(),
        headers: (!r.field(Field::Headers).is_empty()).then(|| Headers(r.field(Field::Headers))),
        request_body: text(r, Field::RequestBody),
        response_body: text(r, Field::ResponseBody),
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// The line that stands for records dropped before they reached this sink's writer.
pub fn write_dropped(out: &mut Vec<u8>, at: SystemTime, count: u64, reason: &str) {
    #[derive(Serialize)]
    struct Dropped<'a> {
        time: Shown<humantime::Rfc3339Timestamp>,
        dropped: u64,
        reason: &'a str,
    }
    let d = Dropped {
        time: Shown(humantime::format_rfc3339_micros(at)),
        dropped: count,
        reason,
    };
    if serde_json::to_writer(&mut *out, &d).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn query_redaction_table() {
        let n = names(crate::config::observe::REDACTED_QUERY);
        let cases = [
            ("a=1&b=2", "a=1&b=2"),
            ("api_key=abc", "api_key=[REDACTED]"),
            ("API_KEY=abc&x=1", "API_KEY=[REDACTED]&x=1"),
            ("x=1&token=t&y=2", "x=1&token=[REDACTED]&y=2"),
            ("%74oken=t", "%74oken=[REDACTED]"),
            ("access%5Ftoken=t", "access%5Ftoken=[REDACTED]"),
            ("token", "token"),
            ("token=", "token=[REDACTED]"),
            ("tokens=1", "tokens=1"),
            ("a=token", "a=token"),
            ("&&key=1&", "&&key=[REDACTED]&"),
            ("password=p%20w&sig=s", "password=[REDACTED]&sig=[REDACTED]"),
        ];
        for (q, want) in cases {
            assert_eq!(redact_query(q, &n), want, "{q}");
        }
    }

    #[test]
    fn percent_decoding_never_panics() {
        for s in ["%", "%4", "%zz", "a%", "%%41", "+", "%41"] {
            let _ = percent_decode(s);
        }
        assert_eq!(percent_decode("%41b+c"), "Ab c");
    }
}
