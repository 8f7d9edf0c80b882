//! The Prometheus text exposition of the node: the shards' counters summed at scrape time, the
//! node-global policy state (breakers, outlier ejection, health), the call log's counters and the
//! snapshot publisher's. Served by the control plane at `/metrics` on the admin listener.
//!
//! Nothing here touches a shard: every figure is an atomic the shards write (owner-only) or
//! publish at their tick. A scrape costs O(series × shards).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::Control;
use crate::observe::metrics::{BUCKETS_US, Hist, code_index, codes, get};

/// Renders every family as Prometheus text (version 0.0.4).
pub fn render(c: &Control) -> String {
    let mut out = Out(String::with_capacity(16 * 1024));
    let snap = c.snapshot();
    let shards = &c.metrics;
    let series = &snap.series;

    out.family(
        "ringway_build_info",
        "gauge",
        "The running build (value 1).",
    );
    out.line(
        "ringway_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    // Requests by route (with its managed service and tenant) and status class.
    let labels = &series.route_labels;
    let route_labels = |i: usize| {
        let l = &labels[i];
        [
            ("route", l.route.as_str()),
            ("service", l.service.as_str()),
            ("tenant", l.tenant.as_str()),
        ]
    };
    let used: Vec<usize> = (0..labels.len())
        .filter(|&i| {
            shards.iter().any(|s| {
                s.routes
                    .get(i)
                    .is_some_and(|r| r.by_class.iter().any(|x| get(x) > 0))
            })
        })
        .collect();
    out.family(
        "ringway_requests_total",
        "counter",
        "Finished requests by route and status class (class none: no status was sent).",
    );
    const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];
    for &i in &used {
        for (k, class) in CLASSES.iter().enumerate() {
            let n: u64 = shards.iter().map(|s| get(&s.routes[i].by_class[k])).sum();
            if n > 0 {
                let [a, b, t] = route_labels(i);
                out.line("ringway_requests_total", &[a, b, t, ("class", class)], n);
            }
        }
    }
    for (name, help, pick) in [
        (
            "ringway_request_bytes_total",
            "Request bytes read from clients (head and body), by route.",
            0,
        ),
        (
            "ringway_response_bytes_total",
            "Response bytes written to clients (head and body), by route.",
            1,
        ),
    ] {
        out.family(name, "counter", help);
        for &i in &used {
            let n: u64 = shards
                .iter()
                .map(|s| {
                    let r = &s.routes[i];
                    get(if pick == 0 { &r.bytes_in } else { &r.bytes_out })
                })
                .sum();
            out.line(name, &route_labels(i), n);
        }
    }
    out.family(
        "ringway_request_duration_seconds",
        "histogram",
        "From the complete request head to the last response byte, by route.",
    );
    for &i in &used {
        let h: Vec<&Hist> = shards.iter().map(|s| &s.routes[i].latency).collect();
        out.histogram("ringway_request_duration_seconds", &route_labels(i), &h);
    }

    // AI routes: tokens, cost and time to first token (by model: the analytics API).
    let ai_used: Vec<usize> = used
        .iter()
        .copied()
        .filter(|&i| {
            shards.iter().any(|s| {
                let r = &s.routes[i];
                get(&r.ai_input_tokens) + get(&r.ai_output_tokens) + get(&r.ai_cost_nanos) > 0
                    || r.ai_first_token.buckets.iter().any(|b| get(b) > 0)
            })
        })
        .collect();
    if !ai_used.is_empty() {
        out.family(
            "ringway_ai_tokens_total",
            "counter",
            "AI calls' tokens by route and direction (input, output).",
        );
        for &i in &ai_used {
            for (dir, pick) in [("input", 0), ("output", 1)] {
                let n: u64 = shards
                    .iter()
                    .map(|s| {
                        let r = &s.routes[i];
                        get(if pick == 0 {
                            &r.ai_input_tokens
                        } else {
                            &r.ai_output_tokens
                        })
                    })
                    .sum();
                let [a, b, t] = route_labels(i);
                out.line("ringway_ai_tokens_total", &[a, b, t, ("direction", dir)], n);
            }
        }
        out.family(
            "ringway_ai_cost_usd_total",
            "counter",
            "AI calls' cost in USD by route (at the configured prices).",
        );
        for &i in &ai_used {
            let nanos: u64 = shards.iter().map(|s| get(&s.routes[i].ai_cost_nanos)).sum();
            out.line_f64(
                "ringway_ai_cost_usd_total",
                &route_labels(i),
                nanos as f64 / 1e9,
            );
        }
        out.family(
            "ringway_ai_time_to_first_token_seconds",
            "histogram",
            "From the complete request head to the first token sent to the client, by route (streamed AI calls).",
        );
        for &i in &ai_used {
            let h: Vec<&Hist> = shards.iter().map(|s| &s.routes[i].ai_first_token).collect();
            out.histogram(
                "ringway_ai_time_to_first_token_seconds",
                &route_labels(i),
                &h,
            );
        }
    }

    // Calling apps (`metrics.per_app`).
    if snap.config.metrics.per_app {
        out.family(
            "ringway_app_requests_total",
            "counter",
            "Finished requests by calling app and status class (metrics.per_app).",
        );
        let apps = &snap.catalog.app_series;
        for (i, (app, tenant)) in apps.iter().enumerate().skip(1) {
            for (k, class) in CLASSES.iter().enumerate() {
                let n: u64 = shards
                    .iter()
                    .map(|s| s.apps.get(i).map_or(0, |a| get(&a.by_class[k])))
                    .sum();
                if n > 0 {
                    out.line(
                        "ringway_app_requests_total",
                        &[("app", app), ("tenant", tenant), ("class", class)],
                        n,
                    );
                }
            }
        }
    }

    // Upstreams.
    let ups = &series.upstream_labels;
    let up_used: Vec<usize> = (1..ups.len())
        .filter(|&i| {
            shards.iter().any(|s| {
                s.upstreams.get(i).is_some_and(|u| {
                    get(&u.requests) > 0 || get(&u.open) > 0 || get(&u.connected) > 0
                })
            })
        })
        .collect();
    type Pick = fn(&crate::observe::metrics::UpstreamSeries) -> u64;
    let upstream_counters: [(&str, &str, &str, Pick); 7] = [
        (
            "ringway_upstream_requests_total",
            "counter",
            "Requests sent to the upstream (last try's upstream).",
            |u| get(&u.requests),
        ),
        (
            "ringway_upstream_retries_total",
            "counter",
            "Tries after the first.",
            |u| get(&u.retries),
        ),
        (
            "ringway_upstream_retries_denied_total",
            "counter",
            "Retries the retry budget refused.",
            |u| get(&u.retries_denied),
        ),
        (
            "ringway_upstream_connections_reused_total",
            "counter",
            "Tries sent on a pooled keep-alive connection.",
            |u| get(&u.reused),
        ),
        (
            "ringway_upstream_connections_opened_total",
            "counter",
            "Tries that opened a new connection.",
            |u| get(&u.connected),
        ),
        (
            "ringway_upstream_pool_idle_connections",
            "gauge",
            "Idle pooled connections (as of each shard's last tick).",
            |u| get(&u.idle),
        ),
        (
            "ringway_upstream_pool_open_connections",
            "gauge",
            "Open upstream connections, idle and in use (as of each shard's last tick).",
            |u| get(&u.open),
        ),
    ];
    for (name, kind, help, pick) in upstream_counters {
        out.family(name, kind, help);
        for &i in &up_used {
            let n: u64 = shards.iter().map(|s| pick(&s.upstreams[i])).sum();
            out.line(name, &[("upstream", ups[i].as_str())], n);
        }
    }
    out.family(
        "ringway_upstream_response_duration_seconds",
        "histogram",
        "From the request sent to the first byte of the upstream's response head.",
    );
    for &i in &up_used {
        let h: Vec<&Hist> = shards.iter().map(|s| &s.upstreams[i].first_byte).collect();
        out.histogram(
            "ringway_upstream_response_duration_seconds",
            &[("upstream", ups[i].as_str())],
            &h,
        );
    }

    // Node-global policy state of the upstreams the snapshot serves.
    let cfg = &snap.config;
    out.family(
        "ringway_breaker_state",
        "gauge",
        "Circuit breaker state (1 for the current state).",
    );
    for (i, b) in snap.breakers.iter().enumerate() {
        if let Some(b) = b {
            let s = b.state();
            for (name, st) in [
                ("closed", crate::upstream::breaker::State::Closed),
                ("open", crate::upstream::breaker::State::Open),
                ("half_open", crate::upstream::breaker::State::HalfOpen),
            ] {
                out.line(
                    "ringway_breaker_state",
                    &[
                        ("upstream", cfg.upstreams[i].name.as_str()),
                        ("state", name),
                    ],
                    u64::from(s == st),
                );
            }
        }
    }
    out.family(
        "ringway_breaker_trips_total",
        "counter",
        "Times the breaker opened.",
    );
    for (i, b) in snap.breakers.iter().enumerate() {
        if let Some(b) = b {
            out.line(
                "ringway_breaker_trips_total",
                &[("upstream", cfg.upstreams[i].name.as_str())],
                b.trips(),
            );
        }
    }
    out.family(
        "ringway_outlier_ejections_total",
        "counter",
        "Targets ejected by outlier detection.",
    );
    for (i, o) in snap.outliers.iter().enumerate() {
        if let Some(o) = o {
            out.line(
                "ringway_outlier_ejections_total",
                &[("upstream", cfg.upstreams[i].name.as_str())],
                o.ejections(),
            );
        }
    }
    out.family(
        "ringway_outlier_ejected_targets",
        "gauge",
        "Targets ejected now.",
    );
    for (i, o) in snap.outliers.iter().enumerate() {
        if let Some(o) = o {
            out.line(
                "ringway_outlier_ejected_targets",
                &[("upstream", cfg.upstreams[i].name.as_str())],
                u64::from(o.ejected()),
            );
        }
    }
    out.family(
        "ringway_upstream_healthy_targets",
        "gauge",
        "Targets the health checks find healthy.",
    );
    for (i, h) in snap.health.iter().enumerate() {
        if let Some(h) = h {
            let n = (0..cfg.upstreams[i].targets.len())
                .filter(|&t| h.is_healthy(t))
                .count();
            out.line(
                "ringway_upstream_healthy_targets",
                &[("upstream", cfg.upstreams[i].name.as_str())],
                n as u64,
            );
        }
    }

    // Errors and refusals.
    out.family(
        "ringway_errors_total",
        "counter",
        "Requests that ended in an error, by error code (the code of the JSON error body).",
    );
    for (k, code) in codes().iter().enumerate() {
        let n: u64 = shards.iter().map(|s| get(&s.errors[k])).sum();
        if n > 0 {
            out.line("ringway_errors_total", &[("code", code)], n);
        }
    }
    out.family(
        "ringway_limit_refusals_total",
        "counter",
        "Requests refused by a limiter or the breaker.",
    );
    for (limiter, code) in [
        ("rate", "rate_limited"),
        ("caller_concurrency", "too_many_concurrent_requests"),
        ("upstream_concurrency", "concurrency_limit"),
        ("upstream_pending", "pending_limit"),
        ("breaker", "circuit_open"),
    ] {
        let k = code_index(code);
        let n: u64 = shards.iter().map(|s| get(&s.errors[k])).sum();
        out.line("ringway_limit_refusals_total", &[("limiter", limiter)], n);
    }

    // Connections, TLS, shards.
    out.family(
        "ringway_connections_open",
        "gauge",
        "Open client connections (as of each shard's last tick).",
    );
    let shard_name: Vec<String> = (0..shards.len()).map(|i| i.to_string()).collect();
    for (i, conns) in c.connections.iter().enumerate() {
        out.line(
            "ringway_connections_open",
            &[("shard", &shard_name[i])],
            conns.load(Ordering::Relaxed) as u64,
        );
    }
    out.family(
        "ringway_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    for (i, s) in shards.iter().enumerate() {
        out.line(
            "ringway_connections_accepted_total",
            &[("shard", &shard_name[i])],
            get(&s.accepted),
        );
    }
    out.family(
        "ringway_tls_handshakes_total",
        "counter",
        "TLS handshakes with clients, by result.",
    );
    for (result, pick) in [("ok", 0), ("failed", 1)] {
        let n: u64 = shards
            .iter()
            .map(|s| get(if pick == 0 { &s.tls_ok } else { &s.tls_failed }))
            .sum();
        out.line("ringway_tls_handshakes_total", &[("result", result)], n);
    }
    out.family(
        "ringway_shard_requests_total",
        "counter",
        "Finished requests per shard.",
    );
    for (i, r) in c.requests.iter().enumerate() {
        out.line(
            "ringway_shard_requests_total",
            &[("shard", &shard_name[i])],
            r.finished.load(Ordering::Relaxed),
        );
    }
    out.family(
        "ringway_shard_ticks_total",
        "counter",
        "Housekeeping ticks each shard ran.",
    );
    for (i, s) in shards.iter().enumerate() {
        out.line(
            "ringway_shard_ticks_total",
            &[("shard", &shard_name[i])],
            get(&s.ticks),
        );
    }
    out.family(
        "ringway_shard_tick_lag_seconds",
        "histogram",
        "How late each shard's tick ran: time its event loop was too busy to get to it.",
    );
    for (i, s) in shards.iter().enumerate() {
        out.histogram(
            "ringway_shard_tick_lag_seconds",
            &[("shard", &shard_name[i])],
            &[&s.tick_lag],
        );
    }

    // Config and catalog.
    out.family(
        "ringway_config_generation",
        "gauge",
        "Generation of the newest published snapshot (config + catalog).",
    );
    out.line("ringway_config_generation", &[], c.generation());
    out.family(
        "ringway_shard_config_generation",
        "gauge",
        "Generation each shard serves.",
    );
    for (i, g) in c.applied.iter().enumerate() {
        out.line(
            "ringway_shard_config_generation",
            &[("shard", &shard_name[i])],
            g.load(Ordering::Relaxed),
        );
    }
    let p = &c.published;
    out.family(
        "ringway_snapshot_publications_total",
        "counter",
        "Snapshots published (reloads and control-plane changes).",
    );
    out.line(
        "ringway_snapshot_publications_total",
        &[],
        p.count.load(Ordering::Relaxed),
    );
    out.family(
        "ringway_snapshot_build_seconds_total",
        "counter",
        "Time spent building published snapshots.",
    );
    out.seconds(
        "ringway_snapshot_build_seconds_total",
        &[],
        p.total_us.load(Ordering::Relaxed),
    );
    out.family(
        "ringway_snapshot_last_build_seconds",
        "gauge",
        "How long the last published snapshot took to build.",
    );
    out.seconds(
        "ringway_snapshot_last_build_seconds",
        &[],
        p.last_us.load(Ordering::Relaxed),
    );
    out.family(
        "ringway_catalog_services",
        "gauge",
        "Managed services in the catalog.",
    );
    out.line(
        "ringway_catalog_services",
        &[],
        snap.catalog.services.entries.len() as u64,
    );
    out.family(
        "ringway_catalog_api_keys",
        "gauge",
        "API keys in the catalog.",
    );
    out.line(
        "ringway_catalog_api_keys",
        &[],
        snap.catalog.keys.len() as u64,
    );

    // The call log.
    out.family(
        "ringway_call_log_records_total",
        "counter",
        "Call records the log writer took from the shards.",
    );
    let stats = c.call_log.get();
    out.line(
        "ringway_call_log_records_total",
        &[],
        stats.map_or(0, |s| s.records.load(Ordering::Relaxed)),
    );
    out.family(
        "ringway_call_log_dropped_total",
        "counter",
        "Call records lost: a shard's buffer was full (stage shard), or a sink fell behind or failed.",
    );
    let shard_drops: u64 = c
        .requests
        .iter()
        .map(|r| r.log_dropped.load(Ordering::Relaxed))
        .sum();
    out.line(
        "ringway_call_log_dropped_total",
        &[("stage", "shard")],
        shard_drops,
    );
    use crate::observe::calllog::Sink;
    for k in [Sink::File, Sink::Stdout, Sink::Otlp] {
        out.line(
            "ringway_call_log_dropped_total",
            &[("stage", k.as_str())],
            stats.map_or(0, |s| s.dropped(k)),
        );
    }
    out.family(
        "ringway_call_log_written_total",
        "counter",
        "Call records a sink wrote.",
    );
    for k in [Sink::File, Sink::Stdout, Sink::Otlp] {
        out.line(
            "ringway_call_log_written_total",
            &[("sink", k.as_str())],
            stats.map_or(0, |s| s.written(k)),
        );
    }
    out.family(
        "ringway_call_log_rotations_total",
        "counter",
        "Call-log file rotations.",
    );
    out.line(
        "ringway_call_log_rotations_total",
        &[],
        stats.map_or(0, |s| s.rotations.load(Ordering::Relaxed)),
    );
    out.0
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.0.push('{');
        for (i, (k, v)) in labels.iter().copied().chain(extra).enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(k);
            self.0.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        self.0.push('}');
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {v}");
    }

    fn line_f64(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {v}");
    }

    fn seconds(&mut self, name: &str, labels: &[(&str, &str)], us: u64) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", us as f64 / 1e6);
    }

    /// A histogram summed over `parts` (one per shard).
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], parts: &[&Hist]) {
        let mut cum = 0u64;
        for (k, le) in BUCKETS_US
            .iter()
            .map(|&b| (b as f64 / 1e6).to_string())
            .chain(std::iter::once("+Inf".to_string()))
            .enumerate()
        {
            cum += parts.iter().map(|h| get(&h.buckets[k])).sum::<u64>();
            self.0.push_str(name);
            self.0.push_str("_bucket");
            self.labels(labels, Some(("le", &le)));
            let _ = writeln!(self.0, " {cum}");
        }
        let sum: u64 = parts.iter().map(|h| get(&h.sum_us)).sum();
        let _ = write!(self.0, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", sum as f64 / 1e6);
        let _ = write!(self.0, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {cum}");
    }
}
