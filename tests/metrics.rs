//! `/metrics` on the admin listener: the shards' counters summed per route, upstream and error
//! code, the policy state, the call log's counters; valid Prometheus text (`promtool check
//! metrics`), behind the admin token, with bounded label sets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::admin::{self, TOKEN};
use common::*;

/// Parses the exposition into `name{labels}` → value (labels as written).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(admin: std::net::SocketAddr, token: Option<&str>) -> Response {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    raw_request(
        admin,
        format!("GET /metrics HTTP/1.1\r\nHost: admin\r\n{auth}connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap()
}

fn promtool(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed: apt-get install prometheus");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn counts_every_outcome(driver: Driver) {
    let ok = Mock::ok("fine");
    let dead = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(
        driver,
        1,
        &dir.path().join("m.db"),
        &format!(
            r#"
            [call_log]
            [call_log.file]
            path = "{log}"
            {ok}
            {dead}
            [upstreams.dead.breaker]
            consecutive_failures = 1
            open_duration = "1h"
            max_open_duration = "1h"
            [[routes]]
            name = "limited"
            path_exact = "/limited"
            upstream = "ok"
            [[routes.rate_limits]]
            key = "client_ip"
            limit = 1
            per = "hour"
            [[routes]]
            name = "dead"
            path_prefix = "/dead"
            upstream = "dead"
            [[routes]]
            name = "ok"
            path_prefix = "/ok"
            upstream = "ok"
            "#,
            log = dir.path().join("calls.jsonl").display(),
            ok = upstream("ok", ok.addr),
            dead = upstream("dead", dead.addr),
        ),
    );
    let a = m.proxy();
    for _ in 0..5 {
        assert_eq!(get(a, "/ok").status, 200);
    }
    assert_eq!(get(a, "/nowhere").status, 404);
    assert_eq!(get(a, "/limited").status, 200);
    assert_eq!(get(a, "/limited").status, 429);
    // The breaker opens at the shard's next tick: calls until then fail to connect.
    let dead_502 = std::cell::Cell::new(0.0);
    let sent = std::cell::Cell::new(8.0);
    wait_for("the breaker to open", || {
        sent.set(sent.get() + 1.0);
        match get(a, "/dead").status {
            502 => {
                dead_502.set(dead_502.get() + 1.0);
                false
            }
            s => s == 503,
        }
    });

    assert_eq!(scrape(m.admin, None).status, 401);
    assert_eq!(scrape(m.admin, Some("wrong")).status, 401);
    // Pool gauges and call-log counters move at the shards' tick and the writer's drain.
    let text = std::cell::RefCell::new(String::new());
    wait_for("metrics after a tick", || {
        let r = scrape(m.admin, Some(TOKEN));
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let t = r.text();
        let s = samples(&t);
        *text.borrow_mut() = t;
        s.get(r#"ringway_upstream_pool_idle_connections{upstream="ok"}"#) == Some(&1.0)
            && s.get("ringway_call_log_records_total") == Some(&sent.get())
    });
    let text = text.into_inner();
    let (sent, dead_502) = (sent.get(), dead_502.get());
    let s = samples(&text);
    let v = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in\n{text}"))
    };
    let ok_labels = r#"route="ok",service="",tenant="""#;
    assert_eq!(
        v(&format!(
            "ringway_requests_total{{{ok_labels},class=\"2xx\"}}"
        )),
        5.0
    );
    assert_eq!(
        v(&format!(
            "ringway_request_duration_seconds_count{{{ok_labels}}}"
        )),
        5.0
    );
    assert_eq!(
        v(&format!(
            "ringway_request_duration_seconds_bucket{{{ok_labels},le=\"+Inf\"}}"
        )),
        5.0
    );
    assert!(v(&format!("ringway_response_bytes_total{{{ok_labels}}}")) > 5.0 * 20.0);
    assert_eq!(
        v(r#"ringway_requests_total{route="",service="",tenant="",class="4xx"}"#),
        1.0,
        "the 404 has no route"
    );
    assert_eq!(v(r#"ringway_errors_total{code="route_not_found"}"#), 1.0);
    assert_eq!(v(r#"ringway_errors_total{code="rate_limited"}"#), 1.0);
    assert_eq!(
        v(r#"ringway_errors_total{code="upstream_connect_failed"}"#),
        dead_502
    );
    assert_eq!(v(r#"ringway_errors_total{code="circuit_open"}"#), 1.0);
    assert_eq!(v(r#"ringway_limit_refusals_total{limiter="rate"}"#), 1.0);
    assert_eq!(v(r#"ringway_limit_refusals_total{limiter="breaker"}"#), 1.0);
    assert_eq!(
        v(r#"ringway_breaker_state{upstream="dead",state="open"}"#),
        1.0
    );
    assert_eq!(v(r#"ringway_breaker_trips_total{upstream="dead"}"#), 1.0);
    assert_eq!(v(r#"ringway_upstream_requests_total{upstream="ok"}"#), 6.0);
    assert_eq!(
        v(r#"ringway_upstream_connections_opened_total{upstream="ok"}"#),
        1.0
    );
    assert_eq!(
        v(r#"ringway_upstream_connections_reused_total{upstream="ok"}"#),
        5.0
    );
    assert_eq!(
        v(r#"ringway_upstream_response_duration_seconds_count{upstream="ok"}"#),
        6.0
    );
    assert_eq!(v(r#"ringway_shard_requests_total{shard="0"}"#), sent);
    assert!(v(r#"ringway_connections_accepted_total{shard="0"}"#) >= sent);
    assert!(v(r#"ringway_shard_ticks_total{shard="0"}"#) > 0.0);
    assert_eq!(v(r#"ringway_call_log_dropped_total{stage="shard"}"#), 0.0);
    assert!(v("ringway_config_generation") >= 1.0);
    promtool(&text);
    // The call records say what the breaker did.
    let calls = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = calls
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dead: Vec<&serde_json::Value> = recs.iter().filter(|r| r["route"] == "dead").collect();
    assert!(
        dead.iter()
            .any(|r| r["status"] == 503 && r["breaker"] == "open"),
        "{dead:?}"
    );
    assert!(
        dead.iter()
            .any(|r| r["status"] == 502 && r["breaker"] == "closed"),
        "{dead:?}"
    );
    m.shutdown();
}
both_drivers!(counts_every_outcome, counts_every_outcome);

/// Past `metrics.max_series`, routes share the `_other` series: the label set stays bounded
/// however many routes (or managed services) there are, and the counts still add up.
#[test]
fn series_are_bounded() {
    let ok = Mock::ok("b");
    let dir = tempfile::tempdir().unwrap();
    let mut routes = String::new();
    for i in 0..6 {
        routes.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath_prefix = \"/r{i}\"\nupstream = \"ok\"\n"
        ));
    }
    let m = admin::start(
        Driver::Uring,
        1,
        &dir.path().join("b.db"),
        &format!(
            "[metrics]\nmax_series = 2\n{}\n{routes}",
            upstream("ok", ok.addr)
        ),
    );
    for i in 0..6 {
        assert_eq!(get(m.proxy(), &format!("/r{i}")).status, 200);
    }
    wait_for("six requests counted", || m.g.requests().finished >= 6);
    let text = scrape(m.admin, Some(TOKEN)).text();
    let s = samples(&text);
    let requests: Vec<(&String, &f64)> = s
        .iter()
        .filter(|(k, _)| k.starts_with("ringway_requests_total{"))
        .collect();
    assert_eq!(requests.len(), 3, "two routes and _other: {requests:?}");
    assert_eq!(requests.iter().map(|(_, v)| **v).sum::<f64>(), 6.0);
    assert_eq!(
        s[r#"ringway_requests_total{route="_other",service="",tenant="",class="2xx"}"#],
        4.0
    );
    promtool(&text);
    m.shutdown();
}

/// `[metrics] public = true` serves the endpoint without a token.
#[test]
fn public_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(
        Driver::Uring,
        1,
        &dir.path().join("p.db"),
        "[metrics]\npublic = true\n",
    );
    let r = scrape(m.admin, None);
    assert_eq!(r.status, 200);
    promtool(&r.text());
    m.shutdown();
}

/// A managed service's route series name its service and tenant; with `metrics.per_app`, each
/// calling app has its own series.
#[test]
fn managed_routes_and_per_app_series() {
    use serde_json::json;
    let up = Mock::ok("a");
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(
        Driver::Uring,
        1,
        &dir.path().join("a.db"),
        "[metrics]\nper_app = true\n",
    );
    let t = admin::s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#),
        "id",
    );
    let svc = admin::s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "orders", "approval": "auto",
                "routes": [{"path_prefix": "/orders"}],
                "upstream": {"targets": [up.addr.to_string()]}})
            .to_string(),
        ),
        "id",
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let app = admin::s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": t, "name": "shop"}).to_string(),
        ),
        "id",
    );
    let key = admin::s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    m.settle();
    for _ in 0..3 {
        let r = admin::call(m.proxy(), "/orders/1", &format!("X-API-Key: {key}\r\n"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(admin::call(m.proxy(), "/orders/1", "").status, 401);
    let route = format!(r#"route="{svc}#0",service="{svc}",tenant="{t}""#);
    // A client may read its answer before the gateway has counted the request.
    let four = format!("ringway_requests_total{{{route},class=\"4xx\"}}");
    wait_for("the 401 counted", || {
        samples(&scrape(m.admin, Some(TOKEN)).text()).contains_key(&four)
    });
    let text = scrape(m.admin, Some(TOKEN)).text();
    let s = samples(&text);
    assert_eq!(
        s[&format!("ringway_requests_total{{{route},class=\"2xx\"}}")],
        3.0,
        "{text}"
    );
    assert_eq!(
        s[&format!("ringway_requests_total{{{route},class=\"4xx\"}}")],
        1.0
    );
    assert_eq!(
        s[&format!("ringway_app_requests_total{{app=\"{app}\",tenant=\"{t}\",class=\"2xx\"}}")],
        3.0
    );
    promtool(&text);
    m.shutdown();
}

/// AI routes count their tokens, cost and time to first token.
#[test]
fn ai_tokens_cost_and_time_to_first_token() {
    let provider = common::providers::start(common::providers::anthropic);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "k\n").unwrap();
    let m = admin::start(
        Driver::Uring,
        1,
        &dir.path().join("a.db"),
        &format!(
            "[ai.providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\nkeys_file = {:?}\n\
             [ai.models.claude]\ntargets = [{{ provider = \"an\", model = \"c\" }}]\n\
             [ai.prices.c]\ninput = 3\noutput = 15\n\
             [[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = {{}}\n",
            provider.addr,
            keys.display().to_string()
        ),
    );
    for stream in [false, true] {
        let b = format!(
            r#"{{"model":"claude","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let r = raw_request(
            m.proxy(),
            format!(
                "POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    wait_for("two requests counted", || m.g.requests().finished >= 2);
    let text = scrape(m.admin, Some(TOKEN)).text();
    promtool(&text);
    let s = samples(&text);
    let l = r#"route="ai",service="",tenant="""#;
    assert_eq!(
        s[&format!("ringway_ai_tokens_total{{{l},direction=\"input\"}}")],
        22.0,
        "{text}"
    );
    assert_eq!(
        s[&format!("ringway_ai_tokens_total{{{l},direction=\"output\"}}")],
        4.0
    );
    // 2 × (11 × $3/M + 2 × $15/M) = $0.000126.
    let cost = s[&format!("ringway_ai_cost_usd_total{{{l}}}")];
    assert!((cost - 0.000126).abs() < 1e-12, "{cost}");
    assert_eq!(
        s[&format!("ringway_ai_time_to_first_token_seconds_count{{{l}}}")],
        1.0,
        "the streamed call"
    );
    m.shutdown();
}
