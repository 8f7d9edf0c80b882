//! A streamed Anthropic Messages response (`stream: true`, server-sent events) translated event
//! by event into OpenAI `chat.completion.chunk`s, as bytes arrive: nothing is buffered beyond the
//! event being decoded.
//!
//! | Anthropic event | OpenAI chunk |
//! |---|---|
//! | `message_start` | the first chunk: `delta.role = "assistant"` (input tokens kept for usage) |
//! | `content_block_start` of `tool_use` | `delta.tool_calls[k]` with its id and name |
//! | `content_block_delta` `text_delta` | `delta.content` |
//! | `content_block_delta` `input_json_delta` | `delta.tool_calls[k].function.arguments` |
//! | `message_delta` | `finish_reason` (mapped as in [`super::anthropic::finish_reason`]) |
//! | `message_stop` | with `include_usage`, a chunk with `usage` and no choices; then `[DONE]` |
//! | `error` | `data: {"error": ...}` in OpenAI's shape, then `[DONE]` |
//!
//! `ping`, thinking deltas and unknown events are dropped. [`StreamTranslator::usage`] has the
//! token counts once the stream has given them (`message_start` and `message_delta`), for
//! accounting also when the client left early.

use serde_json::{Value, json};

use super::anthropic::{AnthropicUsage, finish_reason};
use super::openai::FinishReason;
use crate::http::sse::{SseDecoder, SseError, write_event};

/// Largest single event accepted from the provider.
pub const MAX_EVENT: usize = 1 << 20;

pub struct StreamTranslator {
    sse: SseDecoder,
    /// The model name the client asked for (chunks carry it).
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    usage: AnthropicUsage,
    /// Anthropic content block index → OpenAI tool call index.
    tools: Vec<(u64, u64)>,
    done: bool,
    /// The text and tool arguments generated so far (to estimate output tokens when the stream
    /// stops before its final count).
    generated: String,
    /// `message_delta` gave the final output count.
    final_usage: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64, include_usage: bool) -> StreamTranslator {
        StreamTranslator {
            sse: SseDecoder::new(MAX_EVENT),
            model: model.to_string(),
            created,
            include_usage,
            id: String::new(),
            usage: AnthropicUsage::default(),
            tools: Vec::new(),
            done: false,
            generated: String::new(),
            final_usage: false,
        }
    }

    /// What was generated so far, text and tool arguments.
    pub fn generated(&self) -> &str {
        &self.generated
    }

    /// The provider gave its final output token count.
    pub fn has_final_usage(&self) -> bool {
        self.final_usage
    }

    /// Token counts reported so far.
    pub fn usage(&self) -> &AnthropicUsage {
        &self.usage
    }

    /// The stream ended (`message_stop` or an error was translated).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates the next bytes of the provider's stream, appending OpenAI SSE to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        let mut events: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.sse
            .feed(input, |e| events.push((e.event.to_vec(), e.data.to_vec())))?;
        for (_, data) in events {
            if self.done {
                break;
            }
            // The event's JSON carries its own `type`; the SSE `event:` line says the same.
            let Ok(v) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            self.event(&v, out);
        }
        Ok(())
    }

    fn chunk(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        super::openai::chunk(&self.id, self.created, &self.model, delta, finish)
    }

    fn emit(out: &mut Vec<u8>, v: &Value) {
        write_event(out, None, v.to_string().as_bytes());
    }

    fn event(&mut self, v: &Value, out: &mut Vec<u8>) {
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or("").to_string();
                let u = &m["usage"];
                self.usage.input_tokens = num(u, "input_tokens");
                self.usage.cache_read_input_tokens = num(u, "cache_read_input_tokens");
                self.usage.cache_creation_input_tokens = num(u, "cache_creation_input_tokens");
                self.usage.output_tokens = num(u, "output_tokens");
                let c = self.chunk(json!({"role": "assistant", "content": ""}), None);
                Self::emit(out, &c);
            }
            "content_block_start" => {
                let b = &v["content_block"];
                if b["type"] == "tool_use" {
                    let k = self.tools.len() as u64;
                    self.tools.push((num(v, "index"), k));
                    let c = self.chunk(
                        json!({"tool_calls": [{"index": k, "id": b["id"], "type": "function",
                            "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    );
                    Self::emit(out, &c);
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        self.generated.push_str(d["text"].as_str().unwrap_or(""));
                        let c = self.chunk(json!({"content": d["text"]}), None);
                        Self::emit(out, &c);
                    }
                    Some("input_json_delta") => {
                        let index = num(v, "index");
                        self.generated
                            .push_str(d["partial_json"].as_str().unwrap_or(""));
                        if let Some(&(_, k)) = self.tools.iter().find(|(i, _)| *i == index) {
                            let c = self.chunk(
                                json!({"tool_calls": [{"index": k, "function": {"arguments": d["partial_json"]}}]}),
                                None,
                            );
                            Self::emit(out, &c);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"].get("output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = n;
                    self.final_usage = true;
                }
                let stop = v["delta"]["stop_reason"].as_str();
                if stop.is_some() {
                    let c = self.chunk(json!({}), Some(finish_reason(stop)));
                    Self::emit(out, &c);
                }
            }
            "message_stop" => {
                if self.include_usage {
                    let u = serde_json::to_value(self.usage.openai()).unwrap_or(Value::Null);
                    let c = json!({"id": self.id, "object": "chat.completion.chunk",
                        "created": self.created, "model": self.model, "choices": [], "usage": u});
                    Self::emit(out, &c);
                }
                write_event(out, None, b"[DONE]");
                self.done = true;
            }
            "error" => {
                let body = serde_json::to_vec(v).unwrap_or_default();
                let e = super::anthropic::error(500, &body);
                let e = serde_json::to_value(e).unwrap_or(Value::Null);
                Self::emit(out, &e);
                write_event(out, None, b"[DONE]");
                self.done = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as Anthropic documents it: text, then a tool call with its input in pieces.
    const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

    fn chunks(out: &[u8]) -> Vec<String> {
        let mut d = SseDecoder::new(MAX_EVENT);
        let mut v = Vec::new();
        d.feed(out, |e| {
            v.push(String::from_utf8_lossy(e.data).into_owned())
        })
        .unwrap();
        v
    }

    fn translate(pieces: &[&[u8]], usage: bool) -> (Vec<String>, StreamTranslator) {
        let mut t = StreamTranslator::new("claude", 1_700_000_000, usage);
        let mut out = Vec::new();
        for p in pieces {
            t.feed(p, &mut out).unwrap();
        }
        (chunks(&out), t)
    }

    #[test]
    fn the_documented_stream_becomes_openai_chunks() {
        let (c, t) = translate(&[STREAM.as_bytes()], true);
        assert!(t.is_done());
        assert_eq!(c.last().unwrap(), "[DONE]");
        let v: Vec<Value> = c[..c.len() - 1]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        assert_eq!(v[0]["object"], "chat.completion.chunk");
        assert_eq!(v[0]["id"], "msg_1");
        assert_eq!(v[0]["model"], "claude");
        assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = v
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello there");
        let calls: Vec<&Value> = v
            .iter()
            .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
            .collect();
        assert_eq!(calls[0][0]["id"], "toolu_1");
        assert_eq!(calls[0][0]["function"]["name"], "weather");
        let args: String = calls
            .iter()
            .filter_map(|c| c[0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"city": "Paris"})
        );
        let finish = v
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"));
        let usage = &v.last().unwrap()["usage"];
        assert_eq!(usage["prompt_tokens"], 25);
        assert_eq!(usage["completion_tokens"], 15);
        assert_eq!(t.usage().output_tokens, 15);
    }

    #[test]
    fn any_split_gives_the_same_chunks() {
        let (whole, _) = translate(&[STREAM.as_bytes()], false);
        let b = STREAM.as_bytes();
        for cut in (0..b.len()).step_by(7) {
            let (split, _) = translate(&[&b[..cut], &b[cut..]], false);
            assert_eq!(split, whole, "{cut}");
        }
        assert!(
            !whole.iter().any(|c| c.contains("\"usage\"")),
            "no usage chunk unless asked"
        );
    }

    #[test]
    fn an_error_event_ends_the_stream_in_openais_shape() {
        let s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":3}}}\n\n\
                 event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (c, t) = translate(&[s.as_bytes()], false);
        assert!(t.is_done());
        let e: Value = serde_json::from_str(&c[1]).unwrap();
        assert_eq!(e["error"]["message"], "Overloaded");
        assert_eq!(e["error"]["type"], "server_error");
        assert_eq!(c[2], "[DONE]");
        assert_eq!(t.usage().input_tokens, 3);
    }
}
