//! An OpenAI-format stream (OpenAI and compatible providers) passed through event by event:
//! each event goes out as it came, peeked at for its text and usage; the usage chunk the gateway
//! asked for on its own (`stream_options.include_usage`) is dropped when the client did not ask
//! for it.

use serde::Deserialize;

use super::openai::Usage;
use crate::http::sse::{SseDecoder, SseError, write_event};

/// An OpenAI-format stream passed through event by event.
pub struct PassThrough {
    sse: SseDecoder,
    /// The client asked for the usage chunk (else the one the gateway asked for is dropped).
    include_usage: bool,
    usage: Option<Usage>,
    done: bool,
    generated: String,
}

#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    choices: Vec<PeekChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct PeekChoice {
    #[serde(default)]
    delta: Option<PeekDelta>,
}

#[derive(Deserialize)]
struct PeekDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<PeekCall>>,
}

#[derive(Deserialize)]
struct PeekCall {
    #[serde(default)]
    function: Option<PeekFunction>,
}

#[derive(Deserialize)]
struct PeekFunction {
    #[serde(default)]
    arguments: Option<String>,
}

impl PassThrough {
    /// The usage the stream reported, if it did.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// `[DONE]` was seen (or written by [`PassThrough::finish`]).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The text and tool arguments generated so far.
    pub fn generated(&self) -> &str {
        &self.generated
    }

    /// The provider's stream ended: `[DONE]`, if it did not send one.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.done = true;
            write_event(out, None, b"[DONE]");
        }
    }

    pub fn new(include_usage: bool) -> PassThrough {
        PassThrough {
            sse: SseDecoder::new(super::anthropic_stream::MAX_EVENT),
            include_usage,
            usage: None,
            done: false,
            generated: String::new(),
        }
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        let (include_usage, done, usage, generated) = (
            self.include_usage,
            &mut self.done,
            &mut self.usage,
            &mut self.generated,
        );
        self.sse.feed(input, |e| {
            if *done {
                return;
            }
            if e.data == b"[DONE]" {
                *done = true;
                write_event(out, None, b"[DONE]");
                return;
            }
            if let Ok(p) = serde_json::from_slice::<Peek>(e.data) {
                for d in p.choices.iter().filter_map(|c| c.delta.as_ref()) {
                    generated.push_str(d.content.as_deref().unwrap_or(""));
                    for call in d.tool_calls.iter().flatten() {
                        if let Some(a) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                            generated.push_str(a);
                        }
                    }
                }
                if let Some(u) = p.usage {
                    *usage = Some(u);
                    if !include_usage && p.choices.is_empty() {
                        return;
                    }
                }
            }
            let event = (!e.event.is_empty())
                .then(|| std::str::from_utf8(e.event).ok())
                .flatten();
            write_event(out, event, e.data);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_drops_only_the_usage_chunk_the_client_did_not_ask_for() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n",
            "data: [DONE]\n\n"
        );
        for include in [false, true] {
            let mut t = PassThrough::new(include);
            let mut out = Vec::new();
            // Fed in two pieces split inside an event.
            let (a, b) = stream.as_bytes().split_at(30);
            t.feed(a, &mut out).unwrap();
            t.feed(b, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.contains("\"usage\""), include, "{text}");
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(t.generated(), "Hi");
            assert_eq!(t.usage().map(|u| u.prompt_tokens), Some(5));
        }
    }
}
