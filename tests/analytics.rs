//! Analytics: per-minute rollups in the store that add up to the calls made, kept across a
//! restart, aged by retention; the analytics API scoped per tenant (series, top lists, error
//! breakdown, call search).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::admin::{self, Managed, api, call, s};
use common::*;
use ringway::control::store::{DAY, HOUR, MINUTE, RollupFilter, Store};
use ringway::observe::rollup::{Agg, Key};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn extra(dir: &Path, up: &Mock) -> String {
    format!(
        "[call_log]\n[call_log.file]\npath = \"{}\"\n{}\n[[routes]]\nname = \"file-route\"\npath_prefix = \"/file\"\nupstream = \"up\"\n",
        dir.join("calls.jsonl").display(),
        upstream("up", up.addr)
    )
}

fn start(dir: &Path, up: &Mock) -> Managed {
    admin::start(Driver::Uring, 1, &dir.join("a.db"), &extra(dir, up))
}

/// A tenant with a published service at `path` (auto approval), an app subscribed to it, and a
/// key; and an owner's login token. Returns (tenant, service, app, key, token).
fn tenant(
    m: &Managed,
    up: &Mock,
    name: &str,
    path: &str,
) -> (String, String, String, String, String) {
    let t = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/tenants",
            &json!({"name": name}).to_string(),
        ),
        "id",
    );
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": name, "approval": "auto",
                "routes": [{"path_prefix": path}], "upstream": {"targets": [up.addr.to_string()]},
                "quota": {"per_minute": 3}})
            .to_string(),
        ),
        "id",
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": t, "name": name}).to_string(),
        ),
        "id",
    );
    let key = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    let email = format!("{name}@example.com");
    m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": t, "email": email, "password": PASSWORD, "role": "viewer"})
            .to_string(),
    );
    let (st, v, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": email, "password": PASSWORD}).to_string()),
    );
    assert_eq!(st, 201, "{v}");
    m.settle();
    (t, svc, app, key, s(&v, "token"))
}

fn get_json(m: &Managed, token: &str, path: &str) -> (u16, Value) {
    let (st, v, _) = api(m.admin, token, "GET", path, None);
    (st, v)
}

fn sum(points: &Value, k: &str) -> u64 {
    points["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[k].as_u64().unwrap())
        .sum()
}

/// The rollups count every call once, whatever its outcome, and still do after a restart; the
/// API shows each tenant its own calls only.
#[test]
fn rollups_add_up_survive_a_restart_and_stay_in_their_tenant() {
    let up = Mock::ok("ok");
    let dir = tempfile::tempdir().unwrap();
    let m = start(dir.path(), &up);
    let (ta, sa, appa, keya, toka) = tenant(&m, &up, "alpha", "/alpha");
    let (_tb, sb, _appb, keyb, tokb) = tenant(&m, &up, "beta", "/beta");
    let a = m.proxy();
    // alpha: 3 served, 2 over the per-minute quota, 1 without a key; beta: 2 served; the config
    // file's route: 4 served and 1 404.
    for i in 0..5 {
        let r = call(a, &format!("/alpha/{i}"), &format!("X-API-Key: {keya}\r\n"));
        assert_eq!(r.status, if i < 3 { 200 } else { 429 });
    }
    assert_eq!(call(a, "/alpha/x", "").status, 401);
    for _ in 0..2 {
        assert_eq!(
            call(a, "/beta/1", &format!("X-API-Key: {keyb}\r\n")).status,
            200
        );
    }
    for _ in 0..4 {
        assert_eq!(get(a, "/file/1").status, 200);
    }
    assert_eq!(get(a, "/nowhere").status, 404);
    let total = 13;
    let store = m.store.clone();
    // A stop writes the open minute; the next start reads the history back.
    m.shutdown();
    let m = admin::start_config(
        admin::config(Driver::Uring, 1, &store, &extra(dir.path(), &up)),
        &store,
    );
    let op = admin::TOKEN;
    let (st, all) = get_json(&m, op, "/api/v1/analytics/series?step=1h");
    assert_eq!(st, 200, "{all}");
    assert_eq!(sum(&all, "count"), total, "{all}");
    // Every call is one record in the call log too.
    let lines = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, total);

    let (_, alpha) = get_json(&m, &toka, "/api/v1/analytics/series?step=1h");
    assert_eq!(
        sum(&alpha, "count"),
        6,
        "alpha sees its service's calls only: {alpha}"
    );
    assert_eq!(sum(&alpha, "errors"), 3);
    let (_, beta) = get_json(&m, &tokb, "/api/v1/analytics/series?step=1h");
    assert_eq!(sum(&beta, "count"), 2);
    // Another tenant's id is a 404; another tenant's service filter finds nothing.
    let (st, _) = get_json(
        &m,
        &toka,
        &format!("/api/v1/analytics/series?tenant_id={_tb}"),
    );
    assert_eq!(st, 404);
    let (_, none) = get_json(
        &m,
        &toka,
        &format!("/api/v1/analytics/series?step=1h&service_id={sb}"),
    );
    assert_eq!(sum(&none, "count"), 0);
    let (_, one) = get_json(
        &m,
        op,
        &format!("/api/v1/analytics/series?step=1h&app_id={appa}"),
    );
    assert_eq!(
        sum(&one, "count"),
        3 + 2,
        "the app's calls (the keyless one has no app)"
    );

    // Top services for the operator; for alpha only its own.
    let (_, top) = get_json(&m, op, "/api/v1/analytics/top?by=service&limit=5");
    let items = top["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], sa, "{top}");
    assert_eq!(items[0]["count"], 6);
    assert_eq!(items[0]["tenant"], ta);
    assert!(
        items.iter().any(|i| i["id"] == "" && i["count"] == 5),
        "the file's routes: {top}"
    );
    let (_, top_a) = get_json(&m, &toka, "/api/v1/analytics/top?by=service");
    assert_eq!(top_a["items"].as_array().unwrap().len(), 1);
    let (_, routes) = get_json(
        &m,
        op,
        "/api/v1/analytics/top?by=route&metric=errors&limit=1",
    );
    assert_eq!(routes["items"][0]["errors"], 3);

    // The error breakdown by code.
    let (_, errs) = get_json(&m, &toka, "/api/v1/analytics/errors");
    let by: Vec<(String, u64)> = errs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_string(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by,
        vec![
            ("rate_limited".to_string(), 2),
            ("credential_missing".to_string(), 1)
        ]
    );
    let (_, errs_op) = get_json(&m, op, "/api/v1/analytics/errors");
    assert!(errs_op.to_string().contains("route_not_found"));
    assert!(!errs.to_string().contains("route_not_found"));

    // Call search: by status, by request id, and never across tenants.
    let (st, found) = get_json(&m, &toka, "/api/v1/analytics/calls?status=429");
    assert_eq!(st, 200, "{found}");
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|c| c["tenant"] == ta && c["app"] == appa));
    let rid = items[0]["request_id"].as_str().unwrap().to_string();
    let (_, byid) = get_json(&m, op, &format!("/api/v1/analytics/calls?request_id={rid}"));
    assert_eq!(byid["items"].as_array().unwrap().len(), 1);
    let (_, other) = get_json(
        &m,
        &tokb,
        &format!("/api/v1/analytics/calls?request_id={rid}"),
    );
    assert_eq!(other["items"].as_array().unwrap().len(), 0);
    let (_, mine) = get_json(&m, &tokb, "/api/v1/analytics/calls");
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    m.shutdown();
}

/// Bad parameters are a 422 naming the parameter; no token is a 401.
#[test]
fn bad_parameters_name_the_field() {
    let up = Mock::ok("ok");
    let dir = tempfile::tempdir().unwrap();
    let m = start(dir.path(), &up);
    for (q, field) in [
        ("series?from=yesterday", "from"),
        ("series?to=2026-13-01T00:00:00Z", "to"),
        ("series?from=100&to=50", "from"),
        ("series?step=30s", "step"),
        ("series?step=1m&from=0&to=100000000", "from"),
        ("series?step=1m&from=0&to=30000000", "step"),
        ("top?by=planet", "by"),
        ("top?metric=vibes", "metric"),
        ("top?limit=0", "limit"),
        ("calls?status=42", "status"),
        ("calls?limit=100000", "limit"),
    ] {
        let (st, v) = get_json(&m, admin::TOKEN, &format!("/api/v1/analytics/{q}"));
        assert_eq!(st, 422, "{q}: {v}");
        assert!(v["error"]["fields"].get(field).is_some(), "{q}: {v}");
    }
    let (st, _) = get_json(&m, "", "/api/v1/analytics/series");
    assert_eq!(st, 401);
    m.shutdown();
}

fn key(route: &str, code: &str) -> Key {
    Key {
        tenant: "t".into(),
        service: "s".into(),
        route: route.into(),
        app: "a".into(),
        model: String::new(),
        class: 2,
        code: code.into(),
    }
}

fn agg(n: u64, latency_us: u64) -> Agg {
    let mut a = Agg::new();
    for _ in 0..n {
        a.count += 1;
        a.bytes_in += 10;
        a.latency.saturating_record(latency_us);
    }
    a
}

/// Retention: minutes past `analytics.minutes` become hours, hours past `analytics.hours` become
/// days, days past `analytics.days` are deleted; nothing is counted twice or lost on the way, and
/// the merged histograms keep the percentiles.
#[test]
fn retention_ages_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&dir.path().join("r.db")).await.unwrap();
        let now = 1_800_000_000 - 1_800_000_000 % DAY;
        // 3 days ago (two minutes in one hour), 2 hours ago, 1 minute ago; and 500 days ago.
        let old_day = now - 3 * DAY;
        store
            .add_rollups(MINUTE, old_day, &[(key("r", ""), agg(10, 1000))])
            .await
            .unwrap();
        store
            .add_rollups(MINUTE, old_day + MINUTE, &[(key("r", ""), agg(30, 3000))])
            .await
            .unwrap();
        // The same minute added twice adds up (a restart within a minute).
        store
            .add_rollups(MINUTE, old_day + MINUTE, &[(key("r", ""), agg(5, 3000))])
            .await
            .unwrap();
        store
            .add_rollups(MINUTE, now - 2 * HOUR, &[(key("r", "x"), agg(7, 100))])
            .await
            .unwrap();
        store
            .add_rollups(MINUTE, now - MINUTE, &[(key("r", ""), agg(1, 100))])
            .await
            .unwrap();
        store
            .add_rollups(DAY, now - 500 * DAY, &[(key("r", ""), agg(9, 100))])
            .await
            .unwrap();
        let cfg = ringway::config::observe::AnalyticsConfig {
            minutes: std::time::Duration::from_secs(HOUR as u64),
            hours: std::time::Duration::from_secs(2 * DAY as u64),
            days: std::time::Duration::from_secs(400 * DAY as u64),
        };
        let all = RollupFilter::default();
        let count = |rows: &[ringway::control::store::Rollup]| {
            rows.iter().map(|r| r.agg.count).sum::<u64>()
        };
        let before = store.rollups(0, now + DAY, &all).await.unwrap();
        assert_eq!(count(&before), 10 + 35 + 7 + 1 + 9);
        let (m, h, d) = ringway::control::analytics::maintain_once(&store, &cfg, now)
            .await
            .unwrap();
        assert_eq!(
            (m, h, d),
            (3, 1, 1),
            "minutes merged, hours merged, days deleted"
        );
        let after = store.rollups(0, now + DAY, &all).await.unwrap();
        assert_eq!(
            count(&after),
            10 + 35 + 7 + 1,
            "aged, not lost; the 500-day-old row gone"
        );
        let res: Vec<(i64, i64, u64)> = {
            let mut v: Vec<_> = after
                .iter()
                .map(|r| (r.res, r.bucket, r.agg.count))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            res,
            vec![
                (MINUTE, now - MINUTE, 1),
                (HOUR, now - 2 * HOUR, 7),
                (DAY, old_day, 45),
            ]
        );
        let day = after.iter().find(|r| r.res == DAY).unwrap();
        let p50 = day.agg.latency.value_at_quantile(0.5);
        assert!((2800..=3200).contains(&p50), "p50 of the merged day {p50}");
        assert_eq!(day.agg.bytes_in, 450);
        // Ageing again changes nothing.
        let again = ringway::control::analytics::maintain_once(&store, &cfg, now)
            .await
            .unwrap();
        assert_eq!(again, (0, 0, 0));
    });
}

/// Under load over 2 shards, with served calls, parser refusals, 404s and upstream failures at
/// once, the rollups count exactly the requests made (and so does the call log).
#[test]
fn rollups_count_every_request_under_load() {
    let up = Mock::ok("l");
    let dead = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("l.db");
    let extra = format!(
        "{}\n{}\n[[routes]]\nname = \"dead\"\npath_prefix = \"/dead\"\nupstream = \"dead\"\n",
        extra(dir.path(), &up),
        upstream("dead", dead.addr)
    );
    let m = admin::start(Driver::Uring, 2, &store, &extra);
    let a = m.proxy();
    let (threads, per) = (4, 100);
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut c = Client::connect(a);
                for i in 0..per {
                    match (t + i) % 4 {
                        0 => assert_eq!(get(a, "/dead").status, 502),
                        1 => assert_eq!(c.get("/nowhere").status, 404),
                        2 => assert_eq!(
                            raw_request(a, b"GET /file HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                                .unwrap()
                                .status,
                            400
                        ),
                        _ => assert_eq!(c.get(&format!("/file/{t}/{i}")).status, 200),
                    }
                }
            });
        }
    });
    let sent = (threads * per) as u64;
    wait_for("every request finished", || m.g.requests().finished >= sent);
    m.shutdown();
    let m = admin::start_config(admin::config(Driver::Uring, 2, &store, &extra), &store);
    let (_, all) = get_json(&m, admin::TOKEN, "/api/v1/analytics/series?step=1h");
    assert_eq!(sum(&all, "count"), sent, "{all}");
    assert_eq!(sum(&all, "errors"), sent * 3 / 4);
    let lines = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, sent);
    m.shutdown();
}

/// AI calls roll up by model alias with their tokens and cost; the top list ranks models by
/// cost and the series filters by model.
#[test]
fn ai_calls_roll_up_by_model() {
    let up = Mock::ok("ok");
    let provider = common::providers::start(common::providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "sk-1\n").unwrap();
    let ai = format!(
        "{}\n[ai.providers.oa]\nkind = \"compatible\"\nbase_url = \"http://{}\"\nkeys_file = {:?}\n\
         [ai.models.fast]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n\
         [ai.models.other]\ntargets = [{{ provider = \"oa\", model = \"unpriced\" }}]\n\
         [ai.prices.\"gpt-4o-mini\"]\ninput = 0.15\noutput = 0.6\n\
         [[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = {{}}\n",
        extra(dir.path(), &up),
        provider.addr,
        keys.display().to_string()
    );
    let m = admin::start(Driver::Uring, 1, &dir.path().join("a.db"), &ai);
    let a = m.proxy();
    let post = |model: &str, stream: bool| {
        let b = json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let req = format!(
            "POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
        raw_request(a, req.as_bytes()).unwrap()
    };
    for stream in [false, false, true] {
        assert_eq!(post("fast", stream).status, 200);
    }
    assert_eq!(post("other", false).status, 200);
    let store = m.store.clone();
    m.shutdown();
    let m = admin::start_config(admin::config(Driver::Uring, 1, &store, &ai), &store);
    let op = admin::TOKEN;
    let (st, top) = get_json(&m, op, "/api/v1/analytics/top?by=model&metric=cost");
    assert_eq!(st, 200, "{top}");
    let items = top["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{top}");
    let fast = &items[0];
    assert_eq!(fast["id"], "fast", "{top}");
    assert_eq!(fast["count"], 3);
    assert_eq!(fast["input_tokens"], 33);
    assert_eq!(fast["output_tokens"], 6);
    // 3 × (11 × $0.15/M + 2 × $0.60/M).
    assert_eq!(fast["cost_nano_usd"], 3 * 2850, "{top}");
    assert_eq!(items[1]["id"], "other");
    assert_eq!(
        items[1]["cost_nano_usd"], 0,
        "an unpriced model costs nothing"
    );
    let (_, series) = get_json(&m, op, "/api/v1/analytics/series?step=1h&model=fast");
    assert_eq!(sum(&series, "count"), 3, "{series}");
    assert_eq!(sum(&series, "output_tokens"), 6);
    m.shutdown();
}
