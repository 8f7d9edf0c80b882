//! A model provider's error answer in OpenAI's error shape, whatever the provider's own shape:
//! OpenAI and compatible servers (`{"error":{"message","type","param","code"}}`), Anthropic
//! (`{"type":"error","error":{"type","message"}}`) and Gemini (`{"error":{"code","message",
//! "status"}}`). A body that is none of these keeps (the start of) its text as the message.

use serde::Deserialize;
use serde_json::Value;

use super::openai::ErrorDetail;
use super::provider::Kind;

/// The most of a provider's error text kept as a message.
const MAX_MESSAGE: usize = 1000;

/// The error a provider answered with `status` and `body`, OpenAI-shaped.
pub fn provider_error(kind: &Kind, status: u16, body: &[u8]) -> ErrorDetail {
    let mut e = match kind {
        Kind::Anthropic => super::anthropic::error(status, body).error,
        Kind::Gemini => gemini(status, body),
        Kind::OpenAi | Kind::Compatible { .. } | Kind::Azure { .. } => openai(status, body),
    };
    // A provider's own shape with an empty message still gets one.
    if e.message.trim().is_empty() {
        e.message = format!("the provider answered {status} without a reason");
    }
    e.message = e.message.chars().take(MAX_MESSAGE).collect();
    e
}

fn text(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.is_empty() {
        "the provider gave no reason".to_string()
    } else {
        s.chars().take(MAX_MESSAGE).collect()
    }
}

fn kind_for(status: u16) -> &'static str {
    match status {
        401 | 403 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn openai(status: u16, body: &[u8]) -> ErrorDetail {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        param: Option<String>,
        #[serde(default)]
        code: Option<Value>,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(E { error: e }) => ErrorDetail {
            message: e.message.unwrap_or_else(|| text(body)),
            kind: e.kind.unwrap_or_else(|| kind_for(status).to_string()),
            param: e.param,
            code: e.code.map(|c| match c {
                Value::String(s) => s,
                other => other.to_string(),
            }),
        },
        Err(_) => ErrorDetail {
            message: text(body),
            kind: kind_for(status).to_string(),
            param: None,
            code: None,
        },
    }
}

fn gemini(status: u16, body: &[u8]) -> ErrorDetail {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        status: Option<String>,
    }
    // Gemini answers some errors as a one-element array of the same object.
    // (serde would read a struct out of an array by position: look at the first byte.)
    let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if array {
        serde_json::from_slice::<Vec<E>>(body)
            .ok()
            .and_then(|v| v.into_iter().next())
    } else {
        serde_json::from_slice::<E>(body).ok()
    };
    match parsed {
        Some(E { error: e }) => ErrorDetail {
            message: e.message.unwrap_or_else(|| text(body)),
            kind: kind_for(status).to_string(),
            param: None,
            code: e.status.map(|s| s.to_ascii_lowercase()),
        },
        None => ErrorDetail {
            message: text(body),
            kind: kind_for(status).to_string(),
            param: None,
            code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_becomes_openai_shaped() {
        let e = provider_error(
            &Kind::OpenAi,
            400,
            br#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"x"}}"#,
        );
        assert_eq!(
            (e.message.as_str(), e.kind.as_str()),
            ("bad", "invalid_request_error")
        );
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(e.code.as_deref(), Some("x"));
        let e = provider_error(
            &Kind::Anthropic,
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(e.message, "slow down");
        assert_eq!(e.kind, "rate_limit_error");
        let e = provider_error(
            &Kind::Gemini,
            400,
            br#"[{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}]"#,
        );
        assert_eq!(e.message, "API key not valid");
        assert_eq!(e.code.as_deref(), Some("invalid_argument"));
        let e = provider_error(&Kind::OpenAi, 502, b"<html>bad gateway</html>");
        assert_eq!(e.message, "<html>bad gateway</html>");
        assert_eq!(e.kind, "server_error");
        let e = provider_error(&Kind::Gemini, 500, b"");
        assert_eq!(e.message, "the provider gave no reason");
        let e = provider_error(&Kind::OpenAi, 400, br#"{"error":{"message":" "}}"#);
        assert_eq!(e.message, "the provider answered 400 without a reason");
    }
}
