//! The OpenTelemetry sink: call records as OTLP log records, exported over OTLP/HTTP with the
//! JSON encoding (`POST <endpoint>` with `content-type: application/json`, the body an
//! `ExportLogsServiceRequest`), which every OpenTelemetry collector accepts, and with it Loki or
//! Elasticsearch behind one.
//!
//! Attribute names follow the OpenTelemetry semantic conventions where one exists
//! (`http.request.method`, `url.path`, `http.response.status_code`, `client.address`, ...); the
//! rest are under `ringway.`. The record's trace and span ids are the log record's, so a backend
//! links the call to its trace.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::json::{self, Facts};
use crate::config::observe::{CallLogConfig, OtlpConfig};
use crate::observe::record::{Field, Record};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Value {
    StringValue(String),
    /// int64 values are strings in OTLP's JSON encoding (proto3 JSON mapping).
    IntValue(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    key: &'static str,
    value: Value,
}

/// One call as an OTLP log record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    time_unix_nano: String,
    observed_time_unix_nano: String,
    severity_number: u8,
    severity_text: &'static str,
    body: Value,
    attributes: Vec<KeyValue>,
    #[serde(skip_serializing_if = "String::is_empty")]
    trace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    span_id: String,
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Entry {
    pub fn of(r: &Record<'_>, f: &Facts, cfg: &CallLogConfig) -> Entry {
        let mut a = Vec::with_capacity(24);
        let mut s = |key: &'static str, v: String| {
            if !v.is_empty() {
                a.push(KeyValue {
                    key,
                    value: Value::StringValue(v),
                });
            }
        };
        let path_query = r.text(Field::Path);
        let (path, q) = path_query.split_once('?').unwrap_or((&path_query, ""));
        let method = r.method();
        s("http.request.method", method.to_string());
        s("url.path", path.to_string());
        if let Some(q) = json::query(q, cfg) {
            s("url.query", q.into_owned());
        }
        s("server.address", r.text(Field::Host).into_owned());
        s("client.address", r.fixed.peer().ip().to_string());
        s("user_agent.original", r.text(Field::UserAgent).into_owned());
        s("http.route", r.text(Field::Route).into_owned());
        s("error.type", r.text(Field::ErrorCode).into_owned());
        s(
            "ringway.error.message",
            r.text(Field::ErrorMessage).into_owned(),
        );
        s("ringway.request_id", r.text(Field::RequestId).into_owned());
        s("ringway.tenant", r.text(Field::Tenant).into_owned());
        s("ringway.service", r.text(Field::Service).into_owned());
        s("ringway.app", r.text(Field::App).into_owned());
        s(
            "tls.protocol.version",
            r.fixed.tls().unwrap_or("").to_string(),
        );
        if let Some(t) = r.fixed.target() {
            s("ringway.upstream.target", t.to_string());
        }
        if let Some(b) = json::breaker_label(r.fixed.breaker()) {
            s("ringway.breaker", b.to_string());
        }
        if let Some(l) = json::limiter_of(&r.text(Field::ErrorCode)) {
            s("ringway.limited", l.to_string());
        }
        // The GenAI semantic conventions' names for an AI call.
        let ai = r.ai();
        if ai.is_some() {
            s("gen_ai.request.model", r.text(Field::AiModel).into_owned());
            s(
                "gen_ai.response.model",
                r.text(Field::AiProviderModel).into_owned(),
            );
            s(
                "gen_ai.provider.name",
                r.text(Field::AiProvider).into_owned(),
            );
        }
        let mut n = |key: &'static str, v: Option<u64>| {
            if let Some(v) = v {
                a.push(KeyValue {
                    key,
                    value: Value::IntValue(v.to_string()),
                });
            }
        };
        let status = r.fixed.status;
        n(
            "http.response.status_code",
            (status != 0).then_some(status as u64),
        );
        n("ringway.bytes_in", Some(r.fixed.bytes_in));
        n("ringway.bytes_out", Some(r.fixed.bytes_out));
        n("ringway.latency_us", Some(f.latency_us));
        n("ringway.upstream.connect_us", f.connect_us);
        n("ringway.upstream.first_byte_us", f.first_byte_us);
        n("ringway.upstream.last_byte_us", f.last_byte_us);
        n("ringway.tries", Some(r.fixed.tries as u64));
        if let Some(u) = ai {
            n("gen_ai.usage.input_tokens", Some(u.input_tokens));
            n("gen_ai.usage.output_tokens", Some(u.output_tokens));
            n("ringway.ai.cost_nanos_usd", Some(u.cost));
            n("ringway.ai.first_token_us", f.first_token_us);
        }
        let (severity_number, severity_text) = match status {
            100..=399 => (9, "INFO"),
            400..=499 => (13, "WARN"),
            _ => (17, "ERROR"),
        };
        let trace = r.fixed.has_trace();
        Entry {
            time_unix_nano: nanos(f.start),
            observed_time_unix_nano: nanos(SystemTime::now()),
            severity_number,
            severity_text,
            body: Value::StringValue(format!("{method} {path} {status}")),
            attributes: a,
            trace_id: if trace {
                hex(&r.fixed.trace_id)
            } else {
                String::new()
            },
            span_id: if trace {
                hex(&r.fixed.span_id)
            } else {
                String::new()
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_logs: [ResourceLogs<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs<'a> {
    resource: Resource,
    scope_logs: [ScopeLogs<'a>; 1],
}

#[derive(Serialize)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs<'a> {
    scope: Scope,
    log_records: &'a [Entry],
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

/// The body of one export request for `entries`.
pub fn body(entries: &[Entry], service_name: &str) -> Vec<u8> {
    let req = Request {
        resource_logs: [ResourceLogs {
            resource: Resource {
                attributes: vec![KeyValue {
                    key: "service.name",
                    value: Value::StringValue(service_name.to_string()),
                }],
            },
            scope_logs: [ScopeLogs {
                scope: Scope {
                    name: "ringway.call_log",
                    version: env!("CARGO_PKG_VERSION"),
                },
                log_records: entries,
            }],
        }],
    };
    serde_json::to_vec(&req).unwrap_or_default()
}

/// Posts batches to the collector, from the OTLP sink's thread.
pub struct Exporter {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    service_name: String,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot start the exporter: {0}")]
    Start(String),
    #[error("collector unreachable: {0}")]
    Send(#[from] reqwest::Error),
    #[error("collector answered {0}")]
    Status(u16),
}

impl Exporter {
    pub fn new(cfg: &OtlpConfig) -> Result<Exporter, ExportError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ExportError::Start(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExportError::Start(e.to_string()))?;
        let endpoint =
            reqwest::Url::parse(&cfg.endpoint).map_err(|e| ExportError::Start(e.to_string()))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                headers.insert(k, v);
            }
        }
        Ok(Exporter {
            rt,
            client,
            endpoint,
            headers,
            service_name: cfg.service_name.clone(),
        })
    }

    pub fn export(&mut self, entries: &[Entry]) -> Result<(), ExportError> {
        let body = body(entries, &self.service_name);
        let req = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let status = self
            .rt
            .block_on(async { req.send().await.map(|r| r.status()) })?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Status(status.as_u16()))
        }
    }
}
