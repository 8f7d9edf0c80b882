//! Token counts the gateway works out itself: the estimate a request is admitted on (its prompt
//! plus its output bound), and the figures of a call whose provider gave none (an
//! OpenAI-compatible server without usage, a stream the client left before the provider's final
//! count). Counted with OpenAI's `o200k_base` encoding ([`bpe_openai`]); for other providers'
//! models it is an estimate within some percent, and call records mark it so.

use super::openai::{ChatRequest, Content, Message, Part};

/// Tokens each message adds besides its text (role and separators, as OpenAI counts them).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime every reply.
const REPLY_PRIMING: u64 = 3;
/// What an image part counts as when its size is unknown (OpenAI's low-detail figure).
const PER_IMAGE: u64 = 85;

/// Tokens of `text`.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe_openai::o200k_base().count(text) as u64
}

/// Loads the encoding (once per process, some milliseconds), so that the first request that
/// needs it does not wait for it on a shard.
pub fn warm() {
    let _ = count("warm");
}

/// Tokens of a chat request's prompt: messages, tool definitions, tool calls.
pub fn prompt(req: &ChatRequest) -> u64 {
    let content = |c: &Content| -> u64 {
        match c {
            Content::Text(t) => count(t),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => count(text),
                    Part::ImageUrl { .. } => PER_IMAGE,
                    Part::Other => 0,
                })
                .sum(),
        }
    };
    let mut n = REPLY_PRIMING;
    for m in &req.messages {
        n += PER_MESSAGE;
        n += match m {
            Message::System { content: c }
            | Message::Developer { content: c }
            | Message::User { content: c } => content(c),
            Message::Tool { content: c, .. } => content(c),
            Message::Assistant {
                content: c,
                tool_calls,
            } => {
                c.as_ref().map_or(0, content)
                    + tool_calls
                        .iter()
                        .map(|t| count(&t.function.name) + count(&t.function.arguments))
                        .sum::<u64>()
            }
        };
    }
    for t in &req.tools {
        n += count(&t.function.name)
            + t.function.description.as_deref().map_or(0, count)
            + t.function
                .parameters
                .as_ref()
                .map_or(0, |p| count(&p.to_string()));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_text_and_prompts() {
        assert_eq!(count(""), 0);
        assert_eq!(count("Hello, world!"), 4);
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hello, world!"}]
        }))
        .unwrap();
        // 3 priming + 2 × 3 per message + "Be brief." (4) + "Hello, world!" (4).
        assert_eq!(prompt(&req), 3 + 6 + count("Be brief.") + 4);
    }
}
