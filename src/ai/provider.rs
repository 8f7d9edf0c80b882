//! What a chat request becomes on its way to each kind of provider: the request target, the
//! authentication and version headers, and the body (translated, or the client's own with the
//! provider's model name put in).
//!
//! | kind | target | key header |
//! |---|---|---|
//! | OpenAI, and OpenAI-compatible servers (Mistral, DeepSeek, Groq, OpenRouter, Ollama, vLLM) | `{base}/v1/chat/completions` | `authorization: Bearer` |
//! | Azure OpenAI | `{base}/openai/deployments/{model}/chat/completions?api-version=...` | `api-key` |
//! | Anthropic | `{base}/v1/messages` (+ `anthropic-version`) | `x-api-key` |
//! | Gemini | `{base}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`) | `x-goog-api-key` |
//!
//! Streamed OpenAI-format calls ask for usage (`stream_options.include_usage`) where the
//! provider takes it, so every streamed call can be accounted.

use serde_json::{Value, json};

use super::TranslateError;
use super::anthropic;
use super::gemini;
use super::openai::ChatRequest;

/// The `anthropic-version` sent with every Anthropic call.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The Azure OpenAI `api-version` used when the provider sets none.
pub const AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    OpenAi,
    /// An OpenAI-compatible server; `stream_usage`: it takes `stream_options.include_usage`.
    Compatible {
        stream_usage: bool,
    },
    Azure {
        api_version: String,
    },
    Anthropic,
    Gemini,
}

/// A request ready for the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Path and query, `base` prefix included.
    pub target: String,
    /// Header lines to add (the key among them: never log these).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The request for `req` (its JSON as sent: `raw`) to a provider of `kind` whose API lives under
/// `base` (a path prefix, `""` for the host's root), calling `model` with `key`.
pub fn outgoing(
    kind: &Kind,
    base: &str,
    model: &str,
    key: &str,
    req: &ChatRequest,
    raw: &Value,
) -> Result<Outgoing, TranslateError> {
    let base = base.trim_end_matches('/');
    let json_body = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    let openai_body = |usage: bool| {
        let mut v = raw.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), json!(model));
            if req.stream && usage {
                o.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        json_body(&v)
    };
    let bearer = || vec![("authorization", format!("Bearer {key}"))];
    let mut out = match kind {
        Kind::OpenAi => Outgoing {
            target: format!("{base}/v1/chat/completions"),
            headers: bearer(),
            body: openai_body(true),
        },
        Kind::Compatible { stream_usage } => Outgoing {
            target: format!("{base}/v1/chat/completions"),
            headers: bearer(),
            body: openai_body(*stream_usage),
        },
        Kind::Azure { api_version } => {
            let v = if api_version.is_empty() {
                AZURE_API_VERSION
            } else {
                api_version
            };
            Outgoing {
                target: format!(
                    "{base}/openai/deployments/{}/chat/completions?api-version={}",
                    path_segment(model),
                    path_segment(v)
                ),
                headers: vec![("api-key", key.to_string())],
                body: openai_body(true),
            }
        }
        Kind::Anthropic => Outgoing {
            target: format!("{base}/v1/messages"),
            headers: vec![
                ("x-api-key", key.to_string()),
                ("anthropic-version", ANTHROPIC_VERSION.to_string()),
            ],
            body: json_body(&anthropic::request(req, model)?),
        },
        Kind::Gemini => Outgoing {
            target: if req.stream {
                format!(
                    "{base}/v1beta/models/{}:streamGenerateContent?alt=sse",
                    path_segment(model)
                )
            } else {
                format!(
                    "{base}/v1beta/models/{}:generateContent",
                    path_segment(model)
                )
            },
            headers: vec![("x-goog-api-key", key.to_string())],
            body: json_body(&gemini::request(req)?),
        },
    };
    if key.is_empty() {
        // A provider without keys (a local server): no key header at all.
        out.headers.retain(|(name, _)| {
            !matches!(
                *name,
                "authorization" | "api-key" | "x-api-key" | "x-goog-api-key"
            )
        });
    }
    Ok(out)
}

/// The header that carries `key` to a provider of `kind` (none for an empty key: a local server
/// without keys).
pub fn key_header(kind: &Kind, key: &str) -> Option<(&'static str, String)> {
    if key.is_empty() {
        return None;
    }
    Some(match kind {
        Kind::OpenAi | Kind::Compatible { .. } => ("authorization", format!("Bearer {key}")),
        Kind::Azure { .. } => ("api-key", key.to_string()),
        Kind::Anthropic => ("x-api-key", key.to_string()),
        Kind::Gemini => ("x-goog-api-key", key.to_string()),
    })
}

/// `s` percent-encoded for use as one path segment or query value (model and deployment names
/// come from the admin API: they cannot add a `/`, `?` or `#` to the target).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: &Value) -> ChatRequest {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn each_kind_gets_its_target_headers_and_body() {
        let raw = json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "hi"}], "seed": 1});
        let r = req(&raw);
        let o = outgoing(&Kind::OpenAi, "", "gpt-4o-mini", "sk-1", &r, &raw).unwrap();
        assert_eq!(o.target, "/v1/chat/completions");
        assert_eq!(o.headers, [("authorization", "Bearer sk-1".to_string())]);
        let b: Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(b["model"], "gpt-4o-mini");
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        assert_eq!(b["seed"], 1, "the client's other fields pass through");

        let o = outgoing(
            &Kind::Compatible {
                stream_usage: false,
            },
            "/api/",
            "llama3",
            "k",
            &r,
            &raw,
        )
        .unwrap();
        assert_eq!(o.target, "/api/v1/chat/completions");
        let b: Value = serde_json::from_slice(&o.body).unwrap();
        assert!(b.get("stream_options").is_none());

        let o = outgoing(
            &Kind::Azure {
                api_version: String::new(),
            },
            "",
            "my deploy/1",
            "az",
            &r,
            &raw,
        )
        .unwrap();
        assert_eq!(
            o.target,
            "/openai/deployments/my%20deploy%2F1/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(o.headers, [("api-key", "az".to_string())]);

        let o = outgoing(&Kind::Anthropic, "", "claude-sonnet-4", "ak", &r, &raw).unwrap();
        assert_eq!(o.target, "/v1/messages");
        assert!(
            o.headers
                .contains(&("anthropic-version", ANTHROPIC_VERSION.to_string()))
        );
        let b: Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(b["model"], "claude-sonnet-4");
        assert_eq!(b["stream"], true);

        let o = outgoing(&Kind::Gemini, "", "gemini-2.5-flash", "gk", &r, &raw).unwrap();
        assert_eq!(
            o.target,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let unstreamed = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let o = outgoing(
            &Kind::Gemini,
            "",
            "gemini-2.5-flash",
            "gk",
            &req(&unstreamed),
            &unstreamed,
        )
        .unwrap();
        assert_eq!(o.target, "/v1beta/models/gemini-2.5-flash:generateContent");
    }

    #[test]
    fn translation_errors_pass_through() {
        let raw = json!({"model": "m", "messages": [{"role": "system", "content": "only"}]});
        let e = outgoing(&Kind::Anthropic, "", "c", "k", &req(&raw), &raw).unwrap_err();
        assert_eq!(e.field, "messages");
    }
}
