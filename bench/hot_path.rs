//! Micro-benchmarks of the per-request CPU work that is not I/O: parsing a request head, normalizing
//! its path, looking up its route, building the forwarded head, parsing the upstream response head
//! and building the client response head. `cargo bench --bench hot_path`; figures in perf/RESULTS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ringway::Config;
use ringway::http::buf::Gather;
use ringway::http::normalize::{self, DotSegments, Normalized, Options};
use ringway::http::rewrite::{RequestRewrite, ResponseRewrite, request_head, response_head};
use ringway::http::{Limits, Method, RequestHead, ResponseHead, parse_request, parse_response};

const WRK_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_REQUEST: &[u8] = b"GET /api/v2/users/12345/orders?limit=50&sort=desc HTTP/1.1\r\n\
Host: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n\
Cookie: session=abcdef0123456789; theme=dark; _ga=GA1.2.1234567890.1234567890\r\nConnection: keep-alive\r\n\
X-Forwarded-For: 203.0.113.7\r\nReferer: https://app.example.com/dashboard\r\n\r\n";
const NGINX_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 18:10:11 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n";

fn limits() -> Limits {
    Limits {
        max_head: 16384,
        max_headers: 100,
        max_uri: 8192,
    }
}

fn parse(c: &mut Criterion) {
    let mut head = RequestHead::default();
    c.bench_function("parse_request/wrk", |b| {
        b.iter(|| parse_request(black_box(WRK_REQUEST), &limits(), &mut head).unwrap())
    });
    c.bench_function("parse_request/browser", |b| {
        b.iter(|| parse_request(black_box(BROWSER_REQUEST), &limits(), &mut head).unwrap())
    });
    let mut resp = ResponseHead::default();
    c.bench_function("parse_response/nginx", |b| {
        b.iter(|| parse_response(black_box(NGINX_RESPONSE), false, &mut resp).unwrap())
    });
}

fn normalize(c: &mut Criterion) {
    let opts = Options::default();
    let mut out = Vec::with_capacity(256);
    c.bench_function("normalize/already_normal", |b| {
        b.iter(|| {
            let n = normalize::normalize(black_box(b"/api/v1/users/123?x=1"), &opts, &mut out);
            assert!(matches!(n, Ok(Normalized::Unchanged(_))));
        })
    });
    c.bench_function("normalize/already_normal_long", |b| {
        b.iter(|| {
            let n = normalize::normalize(
                black_box(b"/api/v2/organizations/acme-corp/projects/ringway/builds/20261122-0042/artifacts/x86_64-linux.tar.gz?download=1"),
                &opts,
                &mut out,
            );
            assert!(matches!(n, Ok(Normalized::Unchanged(_))));
        })
    });
    c.bench_function("normalize/rewrite", |b| {
        b.iter(|| {
            let n = normalize::normalize(black_box(b"//api/v1/%75sers//123?x=1"), &opts, &mut out);
            assert!(matches!(n, Ok(Normalized::Rewritten)));
        })
    });
    let resolve = Options {
        dot_segments: DotSegments::Resolve,
        ..Options::default()
    };
    c.bench_function("normalize/rewrite_dot_segments", |b| {
        b.iter(|| {
            let n = normalize::normalize(
                black_box(b"/api/v1/./users/%2e%2e/groups/7/..?x=1"),
                &resolve,
                &mut out,
            );
            assert!(matches!(n, Ok(Normalized::Rewritten)));
        })
    });
}

fn route(c: &mut Criterion) {
    let mut toml = String::from("[upstreams.a]\ntargets = [\"127.0.0.1:1\"]\n");
    for i in 0..200 {
        toml.push_str(&format!(
            "[[routes]]\nhosts = [\"svc{i}.example.com\"]\npath_prefix = \"/api/v{}/\"\nupstream = \"a\"\n",
            i % 7
        ));
        toml.push_str(&format!(
            "[[routes]]\nhosts = [\"*.tenant{i}.example.com\"]\nupstream = \"a\"\n"
        ));
        toml.push_str(&format!(
            "[[routes]]\npath_exact = \"/exact/{i}\"\nupstream = \"a\"\n"
        ));
    }
    toml.push_str("[[routes]]\nupstream = \"a\"\n");
    let config = Config::from_toml(&toml).unwrap();
    let table = config.route_table();
    c.bench_function("route/600_routes_exact_host_prefix", |b| {
        b.iter(|| {
            table.lookup(
                black_box(b"svc123.example.com"),
                black_box(b"/api/v4/users?x=1"),
                Method::Get,
            )
        })
    });
    c.bench_function("route/600_routes_wildcard", |b| {
        b.iter(|| {
            table.lookup(
                black_box(b"a.b.tenant42.example.com:8443"),
                black_box(b"/x"),
                Method::Post,
            )
        })
    });
    c.bench_function("route/600_routes_fallback", |b| {
        b.iter(|| {
            table.lookup(
                black_box(b"unknown.host"),
                black_box(b"/anything/else"),
                Method::Get,
            )
        })
    });
}

fn rewrite(c: &mut Criterion) {
    let mut head = RequestHead::default();
    let mut g = Gather::default();
    g.main.extend_from_slice(BROWSER_REQUEST);
    parse_request(g.main.data(), &limits(), &mut head).unwrap();
    let rw = RequestRewrite {
        client_ip: "198.51.100.23".parse().unwrap(),
        via: Some("1.1 ringway"),
        forwarded_headers: true,
        path_rewrite: None,
        upstream_host: None,
        fallback_host: "127.0.0.1:9000",
        body_prefix: 0,
        path: None,
        https: false,
        extra: &[],
    };
    c.bench_function("rewrite/request_head_browser", |b| {
        b.iter(|| {
            request_head(&mut g, black_box(&head), &rw);
            black_box(g.total())
        })
    });
    let mut resp = ResponseHead::default();
    let mut g = Gather::default();
    g.main.extend_from_slice(NGINX_RESPONSE);
    parse_response(g.main.data(), false, &mut resp).unwrap();
    let rrw = ResponseRewrite {
        extra: b"",
        keep_alive: true,
        client_http10: false,
        dechunk: false,
        body_prefix: 12,
    };
    c.bench_function("rewrite/response_head_nginx", |b| {
        b.iter(|| {
            response_head(&mut g, black_box(&resp), &rrw);
            black_box(g.total())
        })
    });
}

criterion_group!(benches, parse, normalize, route, rewrite);
criterion_main!(benches);
