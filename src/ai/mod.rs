//! The AI gateway's wire formats and their translation (issue 14, in progress): the OpenAI Chat
//! Completions format as the unified API, and each provider's own format with the translation
//! both ways. Pure functions over bytes and JSON, no I/O: the request path's AI stage will call
//! them. Streaming uses [`crate::http::sse`].

pub mod alias;
pub mod anthropic;
pub mod anthropic_stream;
pub mod gemini;
pub mod keys;
pub mod openai;
pub mod price;
pub mod provider;
