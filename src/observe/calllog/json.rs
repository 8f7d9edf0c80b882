//! A call record as one JSON line: field names, wall-clock time, the query redacted per config,
//! recorded headers. Runs on the log writer's thread, never on a shard.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::config::observe::{CallLogConfig, QueryMode, REDACTED};
use crate::observe::clock;
use crate::observe::record::{AiUsage, Breaker, Field, Record};

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
    /// An AI call's time to first token.
    pub first_token_us: Option<u64>,
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
            first_token_us: r
                .ai()
                .and_then(|u| (u.first_token != 0).then(|| clock::micros(start, u.first_token))),
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

/// A JSON object written field by field straight into the line buffer: names are constants,
/// strings that need no escaping (the common case: ids, paths, addresses) are copied as they are
/// and the rest go through `serde_json`'s escaping; numbers through `itoa`. Measured 2-3x cheaper
/// per record than serialising a struct of `Cow`s through `serde_json`.
pub struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field (invalid UTF-8 replaced).
    pub fn str(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        string(self.out, v);
    }

    /// A string field, left out when empty.
    pub fn opt_str(&mut self, k: &str, v: &[u8]) {
        if !v.is_empty() {
            self.str(k, v);
        }
    }

    pub fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    pub fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    pub fn hex(&mut self, k: &str, v: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.key(k);
        self.out.push(b'"');
        for b in v {
            self.out.push(HEX[(b >> 4) as usize]);
            self.out.push(HEX[(b & 0xf) as usize]);
        }
        self.out.push(b'"');
    }

    /// A field whose value is already JSON.
    pub fn raw(&mut self, k: &str, json: &[u8]) {
        self.key(k);
        self.out.extend_from_slice(json);
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `v` as a JSON string.
fn string(out: &mut Vec<u8>, v: &[u8]) {
    if v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(v);
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(v));
    }
}

/// `a.b.c.d` or `a.b.c.d:port` for IPv4 without `fmt` (IPv6 goes through `Display`).
fn addr(out: &mut Vec<u8>, ip: std::net::IpAddr, port: Option<u16>) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            out.push(b'"');
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*o).as_bytes());
            }
            if let Some(p) = port {
                out.push(b':');
                out.extend_from_slice(b.format(p).as_bytes());
            }
            out.push(b'"');
        }
        std::net::IpAddr::V6(_) => {
            let s = match port {
                Some(p) => SocketAddr::new(ip, p).to_string(),
                None => ip.to_string(),
            };
            string(out, s.as_bytes());
        }
    }
}

/// Formats wall-clock times as RFC 3339 with microseconds, reusing the text up to the second
/// while the second does not change (records come in time order, many per second).
#[derive(Default)]
pub struct TimeText {
    second: u64,
    prefix: Vec<u8>,
}

impl TimeText {
    pub fn write(&mut self, out: &mut Vec<u8>, t: SystemTime) {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if self.prefix.is_empty() || d.as_secs() != self.second {
            self.second = d.as_secs();
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(d.as_secs());
            // "2026-12-01T13:45:01Z" without its "Z".
            let s = humantime::format_rfc3339_seconds(whole).to_string();
            self.prefix.clear();
            self.prefix
                .extend_from_slice(s.trim_end_matches('Z').as_bytes());
        }
        out.push(b'"');
        out.extend_from_slice(&self.prefix);
        let micros = d.subsec_micros();
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for i in (0..6).rev() {
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.push(b'.');
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"Z\"");
    }
}

/// Recorded headers (`name:value\n` lines) as a JSON object.
fn headers(out: &mut Vec<u8>, h: &[u8]) {
    out.push(b'{');
    for (i, line) in h
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        let (n, v) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        string(out, n);
        out.push(b':');
        string(out, v);
    }
    out.push(b'}');
}

/// Appends `r` as one JSON line (newline included) to `out`.
pub fn write_line(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    f: &Facts,
    cfg: &CallLogConfig,
    times: &mut TimeText,
) {
    let fx = &r.fixed;
    let mut o = Obj::new(out);
    o.key("time");
    times.write(o.out, f.start);
    o.str("request_id", r.field(Field::RequestId));
    if fx.has_trace() {
        o.hex("trace_id", &fx.trace_id);
        o.hex("span_id", &fx.span_id);
        if fx.parent_id != [0; 8] {
            o.hex("parent_span_id", &fx.parent_id);
        }
    }
    o.opt_str("tenant", r.field(Field::Tenant));
    o.opt_str("service", r.field(Field::Service));
    o.opt_str("app", r.field(Field::App));
    o.opt_str("route", r.field(Field::Route));
    o.str("method", r.method().as_bytes());
    o.opt_str("host", r.field(Field::Host));
    let pq = r.field(Field::Path);
    let (path, q) = match pq.iter().position(|&b| b == b'?') {
        Some(i) => (&pq[..i], &pq[i + 1..]),
        None => (pq, &b""[..]),
    };
    o.str("path", path);
    if !q.is_empty() {
        let q = String::from_utf8_lossy(q);
        if let Some(q) = query(&q, cfg) {
            o.str("query", q.as_bytes());
        }
    }
    o.num("status", fx.status as u64);
    let code = r.field(Field::ErrorCode);
    o.opt_str("error", code);
    o.opt_str("error_message", r.field(Field::ErrorMessage));
    o.num("bytes_in", fx.bytes_in);
    o.num("bytes_out", fx.bytes_out);
    o.num("latency_us", f.latency_us);
    o.opt_num("upstream_connect_us", f.connect_us);
    o.opt_num("upstream_first_byte_us", f.first_byte_us);
    o.opt_num("upstream_last_byte_us", f.last_byte_us);
    if let Some(t) = fx.target() {
        o.key("target");
        addr(o.out, t.ip(), Some(t.port()));
    }
    o.num("tries", fx.tries as u64);
    if let Some(b) = breaker_label(fx.breaker()) {
        o.str("breaker", b.as_bytes());
    }
    if let Some(l) = std::str::from_utf8(code).ok().and_then(limiter_of) {
        o.str("limited", l.as_bytes());
    }
    o.key("client_ip");
    addr(o.out, fx.peer().ip(), None);
    o.opt_str("user_agent", r.field(Field::UserAgent));
    if let Some(t) = fx.tls() {
        o.str("tls", t.as_bytes());
    }
    let h = r.field(Field::Headers);
    if !h.is_empty() {
        o.key("headers");
        headers(o.out, h);
    }
    if let Some(u) = r.ai() {
        o.key("ai");
        ai(o.out, r, &u, f);
    }
    for (k, f) in [
        ("request_body", Field::RequestBody),
        ("response_body", Field::ResponseBody),
    ] {
        let b = r.field(f);
        if !b.is_empty() {
            o.str(k, &redact_body(b, &cfg.redact_fields, &cfg.redact_query));
        }
    }
    o.end();
    out.push(b'\n');
}

/// An AI call's object: model, provider, tokens, cost (USD, as a decimal number), time to first
/// token.
fn ai(out: &mut Vec<u8>, r: &Record<'_>, u: &AiUsage, f: &Facts) {
    let mut o = Obj::new(out);
    o.str("model", r.field(Field::AiModel));
    o.opt_str("provider", r.field(Field::AiProvider));
    o.opt_str("provider_model", r.field(Field::AiProviderModel));
    o.num("input_tokens", u.input_tokens);
    if u.cached_input_tokens > 0 {
        o.num("cached_input_tokens", u.cached_input_tokens);
    }
    o.num("output_tokens", u.output_tokens);
    if u.flags & AiUsage::ESTIMATED != 0 {
        o.raw("estimated", b"true");
    }
    let cost = format!("{}.{:09}", u.cost / 1_000_000_000, u.cost % 1_000_000_000);
    o.raw("cost_usd", cost.as_bytes());
    o.opt_num("first_token_us", f.first_token_us);
    o.raw(
        "streamed",
        if u.flags & AiUsage::STREAMED != 0 {
            b"true"
        } else {
            b"false"
        },
    );
    if u.attempts > 1 {
        o.num("attempts", u64::from(u.attempts));
    }
    o.end();
}

/// The JSON line of `r` under the default call-log config (the fuzz target's entry point).
#[doc(hidden)]
pub fn fuzz_line(r: &Record<'_>) -> Vec<u8> {
    static CFG: std::sync::OnceLock<Option<CallLogConfig>> = std::sync::OnceLock::new();
    let cfg = CFG.get_or_init(|| {
        crate::config::Config::from_toml(
            "[[routes]]\npath_prefix = \"/\"\nrespond = { status = 200 }\n[call_log]\n",
        )
        .ok()
        .and_then(|c| c.call_log)
    });
    let mut out = Vec::new();
    if let Some(cfg) = cfg {
        let f = Facts::of(r, &WallClock::now());
        write_line(&mut out, r, &f, cfg, &mut TimeText::default());
    }
    out
}

/// A captured body with the values of secret fields replaced: JSON members named in `fields`
/// (compared case-insensitively, at any depth, also in a body cut short by the capture's size),
/// and parameters of a form (`a=1&password=x`) named in `fields` or `params` (the query list:
/// form bodies carry the same secrets as query strings, e.g. OAuth's `code` and `id_token`).
pub fn redact_body<'a>(b: &'a [u8], fields: &[String], params: &[String]) -> Cow<'a, [u8]> {
    let body = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let first = body.iter().find(|c| !c.is_ascii_whitespace());
    let trimmed = body.trim_ascii();
    match first {
        Some(b'{' | b'[') => Cow::Owned(redact_json_text(body, fields)),
        _ if trimmed.contains(&b'=') && !trimmed.iter().any(|c| c.is_ascii_whitespace()) => {
            let names: Vec<String> = fields.iter().chain(params).cloned().collect();
            match redact_query(&String::from_utf8_lossy(body), &names) {
                Cow::Borrowed(_) => Cow::Borrowed(b),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }
        }
        _ => Cow::Borrowed(b),
    }
}

/// End of the JSON string starting at `b[i] == '"'` (the index after its closing quote), or
/// `None` when it is cut off.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Token-level redaction of JSON text (valid or cut short): a member whose name is in `fields`
/// gets `"[REDACTED]"` for its value, whatever the value was.
fn redact_json_text(b: &[u8], fields: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(end) = string_end(b, i) else {
            out.extend_from_slice(&b[i..]);
            break;
        };
        out.extend_from_slice(&b[i..end]);
        let name = &b[i + 1..end - 1];
        i = end;
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let secret = fields
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(name));
        if j >= b.len() || b[j] != b':' || !secret {
            continue;
        }
        // `name:` then the value: skipped whole (a string, or up to the next `,` `}` `]` at this
        // level for anything else) and replaced.
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        out.extend_from_slice(&b[i..j]);
        let mut depth = 0i32;
        let mut k = j;
        while k < b.len() {
            match b[k] {
                b'"' => match string_end(b, k) {
                    Some(e) => k = e,
                    None => k = b.len(),
                },
                b'{' | b'[' => {
                    depth += 1;
                    k += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    k += 1;
                }
                b',' | b'}' | b']' if depth == 0 => break,
                _ => k += 1,
            }
            if depth == 0 && k > j && b[j] == b'"' {
                break;
            }
        }
        out.extend_from_slice(b"\"[REDACTED]\"");
        i = k;
    }
    out
}

/// The line that stands for records dropped before they reached this sink's writer.
pub fn write_dropped(out: &mut Vec<u8>, at: SystemTime, count: u64, reason: &str) {
    let mut o = Obj::new(out);
    o.key("time");
    TimeText::default().write(o.out, at);
    o.num("dropped", count);
    o.str("reason", reason.as_bytes());
    o.end();
    out.push(b'\n');
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
    fn lines_are_json_whatever_the_bytes() {
        use crate::observe::record::{FIELDS, Fixed, decode, encode};
        use bytemuck::Zeroable;
        let mut fx = Fixed::zeroed();
        fx.status = 200;
        fx.set_peer("[2001:db8::1]:5".parse().unwrap());
        fx.set_target("10.0.0.255:65535".parse().unwrap());
        let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
        fields[Field::Path as usize] = b"/a\"b\\c\x01\xff\xc3\xa9?k=\"v\"";
        fields[Field::UserAgent as usize] = "ua \u{1F600}\t".as_bytes();
        fields[Field::Headers as usize] = b"x-a:1\nx-\"b:\x7f\n";
        let mut buf = Vec::new();
        encode(&mut buf, &fx, &fields);
        let cfg = crate::config::Config::from_toml(
            "[[routes]]\npath_prefix = \"/\"\nrespond = { status = 200 }\n[call_log]\nquery = \"keep\"\n",
        )
        .unwrap()
        .call_log
        .unwrap();
        let r = decode(&buf).next().unwrap();
        let f = Facts::of(&r, &WallClock::now());
        let mut out = Vec::new();
        write_line(&mut out, &r, &f, &cfg, &mut TimeText::default());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\u{1}\u{fffd}\u{e9}");
        assert_eq!(v["query"], "k=\"v\"");
        assert_eq!(v["user_agent"], "ua \u{1F600}\t");
        assert_eq!(v["client_ip"], "2001:db8::1");
        assert_eq!(v["target"], "10.0.0.255:65535");
        assert_eq!(v["headers"]["x-\"b"], "\u{7f}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            v["time"].as_str().unwrap().len(),
            "2026-12-01T13:45:01.123456Z".len()
        );
    }

    #[test]
    fn body_redaction_table() {
        let n = names(crate::config::observe::REDACTED_FIELDS);
        let q = names(crate::config::observe::REDACTED_QUERY);
        let cases: [(&str, &str); 11] = [
            (
                r#"{"user":"u","password":"p"}"#,
                r#"{"user":"u","password":"[REDACTED]"}"#,
            ),
            (
                r#"{"a":{"Token": 12, "b": [1,2]}}"#,
                r#"{"a":{"Token": "[REDACTED]", "b": [1,2]}}"#,
            ),
            (
                r#"[{"secret":{"x":"y","z":[1]}},{"k":1}]"#,
                r#"[{"secret":"[REDACTED]"},{"k":1}]"#,
            ),
            (
                r#"{"api_key":"abc\"def","n":1}"#,
                r#"{"api_key":"[REDACTED]","n":1}"#,
            ),
            (r#"{"password":"cut sh"#, r#"{"password":"[REDACTED]""#),
            (
                r#"{"note":"password","x":1}"#,
                r#"{"note":"password","x":1}"#,
            ),
            ("user=u&password=p", "user=u&password=[REDACTED]"),
            ("plain text password=p", "plain text password=p"),
            (
                "grant_type=x&code=c0de&id_token=t\r\n",
                "grant_type=x&code=[REDACTED]&id_token=[REDACTED]",
            ),
            ("password=p\n", "password=[REDACTED]"),
            (
                "\u{feff}{\"password\":\"p\"}",
                "{\"password\":\"[REDACTED]\"}",
            ),
        ];
        for (b, want) in cases {
            let got = redact_body(b.as_bytes(), &n, &q);
            assert_eq!(String::from_utf8_lossy(&got), want, "{b}");
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
