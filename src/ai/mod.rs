//! The AI gateway's wire formats and their translation (issue 14, in progress): the OpenAI Chat
//! Completions format as the unified API, and each provider's own format with the translation
//! both ways. Pure functions over bytes and JSON, no I/O: the request path's AI stage will call
//! them. Streaming uses [`crate::http::sse`].

pub mod alias;
pub mod anthropic;
pub mod anthropic_stream;
pub mod embeddings;
pub mod errors;
pub mod gemini;
pub mod keys;
pub mod openai;
pub mod openai_stream;
pub mod price;
pub mod prompt;
pub mod provider;
pub mod tokens;

/// Why a request cannot be translated (a 400 naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TranslateError {
    pub field: String,
    pub reason: String,
}

pub(crate) fn bad(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
    TranslateError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Appends `items` as a turn of `role`, merged into the last turn when it has the same role
/// (Anthropic and Gemini both want user and model turns alternating).
pub(crate) fn push_turn(
    turns: &mut Vec<(&'static str, Vec<serde_json::Value>)>,
    role: &'static str,
    items: Vec<serde_json::Value>,
) {
    match turns.last_mut() {
        Some((r, b)) if *r == role => b.extend(items),
        _ => turns.push((role, items)),
    }
}
