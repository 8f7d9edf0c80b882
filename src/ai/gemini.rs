//! Google Gemini's `generateContent` / `streamGenerateContent?alt=sse` and their translation from
//! and to the OpenAI format:
//!
//! - system and developer messages become `systemInstruction`; `assistant` turns are role
//!   `model`; consecutive turns of one role merge; tool results (`role: tool`) become
//!   `functionResponse` parts named after the call they answer (Gemini names calls, OpenAI gives
//!   them ids: the id is looked up in the conversation's earlier tool calls);
//! - images: a `data:` URL becomes `inlineData`, any other URL `fileData`;
//! - parameters go to `generationConfig` (`maxOutputTokens`, `stopSequences`, `temperature`,
//!   `topP`, `seed`); tools to `functionDeclarations`; `tool_choice` to `functionCallingConfig`;
//! - back: text parts joined, `functionCall` parts → `tool_calls` (ids `call_<n>` where Gemini
//!   gives none), `STOP` → `stop` (`tool_calls` when the answer calls a function),
//!   `MAX_TOKENS` → `length`, the safety reasons → `content_filter`; `usageMetadata` → usage.
//!
//! Streams carry no end event: [`StreamTranslator::finish`] writes the usage chunk and `[DONE]`
//! when the provider's stream ends.

use serde_json::{Map, Value, json};

use super::openai::{
    self, ChatRequest, Content, FinishReason, Image, Message, Part, ResponseFormat, ToolChoice,
};
use super::{TranslateError, bad, push_turn};
use crate::http::sse::{SseDecoder, SseError, write_event};

/// The `generateContent` request body for `req`.
pub fn request(req: &ChatRequest) -> Result<Value, TranslateError> {
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool call id → function name, from the assistant turns seen so far.
    let mut names: Vec<(String, String)> = Vec::new();
    let mut push = |role, parts| push_turn(&mut contents, role, parts);
    for (i, m) in req.messages.iter().enumerate() {
        match m {
            Message::System { content } | Message::Developer { content } => {
                system.push(json!({"text": content.text()}))
            }
            Message::User { content } => push("user", parts(content, i)?),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut p = match content {
                    Some(c) => parts(c, i)?,
                    None => Vec::new(),
                };
                for (j, t) in tool_calls.iter().enumerate() {
                    let args = t.input(i, j)?;
                    names.push((t.id.clone(), t.function.name.clone()));
                    p.push(json!({"functionCall": {"name": t.function.name, "args": args}}));
                }
                push("model", p);
            }
            Message::Tool {
                content,
                tool_call_id,
            } => {
                let Some((_, name)) = names.iter().find(|(id, _)| id == tool_call_id) else {
                    return Err(bad(
                        format!("messages[{i}].tool_call_id"),
                        "answers no earlier tool call",
                    ));
                };
                let text = content.text();
                let response = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"content": text}));
                push(
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
        }
    }
    if contents.is_empty() {
        return Err(bad("messages", "needs at least one user message"));
    }
    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(n) = req.max_output() {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(s) = req.seed {
        config.insert("seed".into(), json!(s));
    }
    if let Some(s) = &req.stop {
        config.insert("stopSequences".into(), json!(s.clone().into_vec()));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = &json_schema.schema {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.function.name});
                if let Some(m) = d.as_object_mut() {
                    if let Some(desc) = &t.function.description {
                        m.insert("description".into(), json!(desc));
                    }
                    if let Some(p) = &t.function.parameters {
                        m.insert("parameters".into(), p.clone());
                    }
                }
                d
            })
            .collect();
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(c) = &req.tool_choice {
        let cfg = match c {
            ToolChoice::Mode(m) => match m.as_str() {
                "auto" => json!({"mode": "AUTO"}),
                "required" => json!({"mode": "ANY"}),
                "none" => json!({"mode": "NONE"}),
                other => {
                    return Err(bad(
                        "tool_choice",
                        format!("{other:?} is not one of none, auto, required"),
                    ));
                }
            },
            ToolChoice::Named { function } => {
                json!({"mode": "ANY", "allowedFunctionNames": [function.name]})
            }
        };
        out.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    Ok(Value::Object(out))
}

fn parts(c: &Content, i: usize) -> Result<Vec<Value>, TranslateError> {
    match c {
        Content::Text(s) => Ok(vec![json!({"text": s})]),
        Content::Parts(p) => p
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                Part::Text { text } => Ok(json!({"text": text})),
                Part::Other => Err(bad(
                    format!("messages[{i}].content[{j}]"),
                    "this content part kind cannot be sent to a Gemini model",
                )),
                Part::ImageUrl { image_url } => Ok(match image_url.image(i, j)? {
                    Image::Url(url) => json!({"fileData": {"fileUri": url}}),
                    Image::Inline { media_type, data } => {
                        json!({"inlineData": {"mimeType": media_type, "data": data}})
                    }
                }),
            })
            .collect(),
    }
}

/// OpenAI's finish reason for a Gemini one (`calls`: the answer calls a function).
pub fn finish_reason(reason: Option<&str>, calls: bool) -> FinishReason {
    match reason {
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => FinishReason::ContentFilter,
        _ if calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// OpenAI usage for a `usageMetadata` object.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount");
    let completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    let mut v = json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion});
    let cached = n("cachedContentTokenCount");
    if cached > 0 {
        v["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    v
}

/// The text and tool calls of a response's first candidate (`next_call`: the index to number
/// generated call ids from).
fn candidate(r: &Value, next_call: &mut u64) -> (String, Vec<Value>, Option<String>) {
    let c = &r["candidates"][0];
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in c["content"]["parts"].as_array().into_iter().flatten() {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p["text"].as_str() {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            let id = f["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{next_call}"));
            *next_call += 1;
            calls.push(json!({"id": id, "type": "function", "function": {
                "name": f["name"], "arguments": f.get("args").cloned().unwrap_or(json!({})).to_string()}}));
        }
    }
    (text, calls, c["finishReason"].as_str().map(str::to_string))
}

/// The OpenAI answer for a `generateContent` response.
pub fn response(r: &Value, model: &str, id: &str, created: u64) -> Value {
    let mut n = 0;
    let (text, calls, reason) = candidate(r, &mut n);
    let finish = finish_reason(reason.as_deref(), !calls.is_empty());
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({
        "id": r["responseId"].as_str().unwrap_or(id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(&r["usageMetadata"]),
    })
}

/// A `streamGenerateContent?alt=sse` stream translated chunk by chunk.
pub struct StreamTranslator {
    sse: SseDecoder,
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    started: bool,
    calls: u64,
    usage: Value,
    done: bool,
    /// Text and tool arguments generated so far.
    generated: String,
}

impl StreamTranslator {
    pub fn new(model: &str, id: &str, created: u64, include_usage: bool) -> StreamTranslator {
        StreamTranslator {
            sse: SseDecoder::new(super::anthropic_stream::MAX_EVENT),
            model: model.to_string(),
            id: id.to_string(),
            created,
            include_usage,
            started: false,
            calls: 0,
            usage: Value::Null,
            done: false,
            generated: String::new(),
        }
    }

    /// What was generated so far, text and tool arguments.
    pub fn generated(&self) -> &str {
        &self.generated
    }

    /// The usage the stream reported last (Gemini repeats the running totals), OpenAI-shaped.
    pub fn usage(&self) -> &Value {
        &self.usage
    }

    fn chunk(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        openai::chunk(&self.id, self.created, &self.model, delta, finish)
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        let mut events = Vec::new();
        self.sse.feed(input, |e| events.push(e.data.to_vec()))?;
        for data in events {
            let Ok(r) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            if let Some(u) = r.get("usageMetadata") {
                self.usage = usage(u);
            }
            if !self.started {
                self.started = true;
                let c = self.chunk(json!({"role": "assistant", "content": ""}), None);
                write_event(out, None, c.to_string().as_bytes());
            }
            let first = self.calls;
            let (text, calls, reason) = candidate(&r, &mut self.calls);
            self.generated.push_str(&text);
            for c in &calls {
                self.generated
                    .push_str(c["function"]["arguments"].as_str().unwrap_or(""));
            }
            if !text.is_empty() {
                let c = self.chunk(json!({"content": text}), None);
                write_event(out, None, c.to_string().as_bytes());
            }
            if !calls.is_empty() {
                let indexed: Vec<Value> = calls
                    .into_iter()
                    .enumerate()
                    .map(|(k, mut c)| {
                        c["index"] = json!(first + k as u64);
                        c
                    })
                    .collect();
                let c = self.chunk(json!({"tool_calls": indexed}), None);
                write_event(out, None, c.to_string().as_bytes());
            }
            if let Some(reason) = reason {
                let f = finish_reason(Some(&reason), self.calls > 0);
                let c = self.chunk(json!({}), Some(f));
                write_event(out, None, c.to_string().as_bytes());
            }
        }
        Ok(())
    }

    /// The provider's stream ended: the usage chunk (when asked for) and `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.include_usage && !self.usage.is_null() {
            let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": self.usage});
            write_event(out, None, c.to_string().as_bytes());
        }
        write_event(out, None, b"[DONE]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_conversation_with_tools_translates() {
        let r = req(json!({
            "model": "gemini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\":18}"},
                {"role": "tool", "tool_call_id": "c1", "content": "plain text"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "max_tokens": 50, "stop": ["x", "y"], "seed": 7
        }));
        let g = request(&r).unwrap();
        assert_eq!(g["systemInstruction"]["parts"][0]["text"], "Be brief.");
        let c = g["contents"].as_array().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0]["parts"][1]["inlineData"]["mimeType"], "image/jpeg");
        assert_eq!(c[1]["role"], "model");
        assert_eq!(
            c[1]["parts"][0]["functionCall"],
            json!({"name": "weather", "args": {"city": "Paris"}})
        );
        assert_eq!(
            c[2]["parts"][0]["functionResponse"],
            json!({"name": "weather", "response": {"temp": 18}})
        );
        assert_eq!(
            c[2]["parts"][1]["functionResponse"]["response"],
            json!({"content": "plain text"})
        );
        assert_eq!(
            g["generationConfig"],
            json!({"maxOutputTokens": 50, "seed": 7, "stopSequences": ["x", "y"]})
        );
        assert_eq!(
            g["toolConfig"]["functionCallingConfig"],
            json!({"mode": "ANY", "allowedFunctionNames": ["weather"]})
        );
        let orphan = req(
            json!({"model": "g", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
        );
        assert_eq!(
            request(&orphan).unwrap_err().field,
            "messages[0].tool_call_id"
        );
    }

    #[test]
    fn responses_translate_back() {
        let r = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Calling."},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4, "totalTokenCount": 16, "cachedContentTokenCount": 2},
            "responseId": "r1"
        });
        let o = response(&r, "gemini", "fallback", 1);
        assert_eq!(o["id"], "r1");
        assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(o["choices"][0]["message"]["content"], "Calling.");
        assert_eq!(o["choices"][0]["message"]["tool_calls"][0]["id"], "call_0");
        assert_eq!(
            o["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16, "prompt_tokens_details": {"cached_tokens": 2}})
        );
        for (reason, want) in [
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("OTHER", FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(Some(reason), false), want);
        }
    }

    #[test]
    fn a_stream_becomes_openai_chunks() {
        let s = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":5}}\r\n\r\n\
                 data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2}}\r\n\r\n";
        let mut t = StreamTranslator::new("gemini", "chatcmpl-1", 1, true);
        let mut out = Vec::new();
        for piece in s.as_bytes().chunks(9) {
            t.feed(piece, &mut out).unwrap();
        }
        t.finish(&mut out);
        let mut d = SseDecoder::new(1 << 20);
        let mut c = Vec::new();
        d.feed(&out, |e| {
            c.push(String::from_utf8_lossy(e.data).into_owned())
        })
        .unwrap();
        assert_eq!(c.last().unwrap(), "[DONE]");
        let v: Vec<Value> = c[..c.len() - 1]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = v
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        assert!(v.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
        assert_eq!(v.last().unwrap()["usage"]["completion_tokens"], 2);
        assert_eq!(t.usage()["prompt_tokens"], 5);
    }
}
