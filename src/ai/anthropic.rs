//! Anthropic's Messages API (`POST /v1/messages`) and its translation from and to the OpenAI
//! format, for non-streamed calls:
//!
//! - system and developer messages become `system`; user and assistant turns keep their order,
//!   with consecutive turns of one role merged (Anthropic wants them alternating); tool results
//!   (`role: tool`) become `tool_result` blocks of a user turn;
//! - an assistant's `tool_calls` become `tool_use` blocks (their JSON `arguments` parsed);
//! - images: a `data:` URL becomes a base64 source, any other URL a URL source;
//! - `max_tokens` is required by Anthropic: the client's, else [`DEFAULT_MAX_TOKENS`];
//! - `stop` → `stop_sequences`; tools → `input_schema`; `tool_choice` `auto`/`required`/`none`/
//!   a named function → `auto`/`any`/`none`/`tool`;
//! - back: text blocks joined, `tool_use` blocks → `tool_calls`, stop reasons `end_turn`,
//!   `stop_sequence`, `pause_turn` → `stop`, `max_tokens` → `length`, `tool_use` →
//!   `tool_calls`, `refusal` → `content_filter`; usage with cache reads and writes counted as
//!   prompt tokens (cache reads also as `cached_tokens`); errors into OpenAI's shape.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::openai::{
    AssistantMessage, ChatRequest, ChatResponse, Choice, Content, ErrorBody, ErrorDetail,
    FinishReason, FunctionCall, Image, Message, Part, PromptDetails, ResponseFormat, ToolCall,
    ToolChoice, Usage,
};
use super::{TranslateError, bad, push_turn};

/// `max_tokens` sent when the client set none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Messages API request for `req`, calling `model` (the provider's name for it).
pub fn request(req: &ChatRequest, model: &str) -> Result<Value, TranslateError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role, blocks| push_turn(&mut turns, role, blocks);
    for (i, m) in req.messages.iter().enumerate() {
        match m {
            Message::System { content } | Message::Developer { content } => {
                system.push(content.text())
            }
            Message::User { content } => {
                let b = blocks(content, i)?;
                if b.is_empty() {
                    return Err(bad(
                        format!("messages[{i}].content"),
                        "a user message needs some content (Anthropic refuses an empty one)",
                    ));
                }
                push("user", b);
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut b = match content {
                    Some(c) => blocks(c, i)?,
                    None => Vec::new(),
                };
                for (j, t) in tool_calls.iter().enumerate() {
                    let input = t.input(i, j)?;
                    b.push(json!({"type": "tool_use", "id": t.id, "name": t.function.name, "input": input}));
                }
                if b.is_empty() {
                    return Err(bad(
                        format!("messages[{i}]"),
                        "an assistant message needs content or tool_calls",
                    ));
                }
                push("assistant", b);
            }
            Message::Tool {
                content,
                tool_call_id,
            } => push(
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content.text()}),
                ],
            ),
        }
    }
    if turns.is_empty() {
        return Err(bad("messages", "needs at least one user message"));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut out = json!({
        "model": model,
        "max_tokens": req.max_output().unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    let o = out
        .as_object_mut()
        .ok_or_else(|| bad("messages", "internal"))?;
    if let Some(instruction) = req.response_format.as_ref().and_then(json_instruction) {
        system.push(instruction);
    }
    if !system.is_empty() {
        o.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = req.temperature {
        o.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if let Some(s) = &req.stop {
        o.insert("stop_sequences".into(), json!(s.clone().into_vec()));
    }
    if req.stream {
        o.insert("stream".into(), json!(true));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut v = json!({
                    "name": t.function.name,
                    "input_schema": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
                });
                if let (Some(d), Some(m)) = (&t.function.description, v.as_object_mut()) {
                    m.insert("description".into(), json!(d));
                }
                v
            })
            .collect();
        o.insert("tools".into(), json!(tools));
    }
    if let Some(c) = &req.tool_choice {
        let v = match c {
            ToolChoice::Mode(m) => match m.as_str() {
                "auto" => json!({"type": "auto"}),
                "required" => json!({"type": "any"}),
                "none" => json!({"type": "none"}),
                other => {
                    return Err(bad(
                        "tool_choice",
                        format!("{other:?} is not one of none, auto, required"),
                    ));
                }
            },
            ToolChoice::Named { function } => json!({"type": "tool", "name": function.name}),
        };
        o.insert("tool_choice".into(), v);
    }
    if let Some(u) = &req.user {
        o.insert("metadata".into(), json!({"user_id": u}));
    }
    Ok(out)
}

/// JSON mode for a provider without one: the Messages API has no `response_format`, so the
/// request asks for JSON in the system prompt (with the schema, when one is given).
fn json_instruction(f: &ResponseFormat) -> Option<String> {
    match f {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(
            "Respond with a single JSON object and nothing else: no prose, no code fences.".into(),
        ),
        ResponseFormat::JsonSchema { json_schema } => Some(format!(
            "Respond with a single JSON object and nothing else (no prose, no code fences) that \
             validates against this JSON Schema, named {:?}:\n{}",
            json_schema.name,
            json_schema
                .schema
                .as_ref()
                .map_or_else(|| "{}".to_string(), Value::to_string)
        )),
    }
}

/// A message's content as Anthropic content blocks. Empty text is left out: Anthropic refuses an
/// empty text block, and clients send `"content": ""` beside tool calls.
fn blocks(c: &Content, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut out = raw_blocks(c, i)?;
    out.retain(|b| b["type"] != "text" || b["text"].as_str().is_some_and(|t| !t.is_empty()));
    Ok(out)
}

fn raw_blocks(c: &Content, i: usize) -> Result<Vec<Value>, TranslateError> {
    match c {
        Content::Text(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Content::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                Part::Text { text } => Ok(json!({"type": "text", "text": text})),
                Part::Other => Err(bad(
                    format!("messages[{i}].content[{j}]"),
                    "this content part kind cannot be sent to an Anthropic model",
                )),
                Part::ImageUrl { image_url } => Ok(match image_url.image(i, j)? {
                    Image::Url(url) => {
                        json!({"type": "image", "source": {"type": "url", "url": url}})
                    }
                    Image::Inline { media_type, data } => json!({"type": "image",
                        "source": {"type": "base64", "media_type": media_type, "data": data}}),
                }),
            })
            .collect(),
    }
}

/// A Messages API response.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageResponse {
    pub id: String,
    pub model: String,
    pub content: Vec<Block>,
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: AnthropicUsage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking and any block type added later: not part of an OpenAI answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl AnthropicUsage {
    pub fn openai(&self) -> Usage {
        let prompt =
            self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            prompt_tokens_details: (self.cache_read_input_tokens > 0).then_some(PromptDetails {
                cached_tokens: self.cache_read_input_tokens,
            }),
        }
    }
}

/// OpenAI's finish reason for an Anthropic stop reason.
pub fn finish_reason(stop: Option<&str>) -> FinishReason {
    match stop {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The OpenAI answer for a Messages API response; `model` is the name the client asked for.
pub fn response(r: MessageResponse, model: &str, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in r.content {
        match b {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Other => {}
        }
    }
    ChatResponse {
        id: r.id,
        object: "chat.completion",
        created,
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: (!text.is_empty() || calls.is_empty()).then_some(text),
                tool_calls: calls,
            },
            finish_reason: finish_reason(r.stop_reason.as_deref()),
        }],
        usage: r.usage.openai(),
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type":...,"message":...}}`) in OpenAI's
/// shape; a body that is not one keeps its text as the message.
pub fn error(status: u16, body: &[u8]) -> ErrorBody {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: String,
        message: String,
    }
    let (kind, message) = match serde_json::from_slice::<E>(body) {
        Ok(e) => (e.error.kind, e.error.message),
        Err(_) => (
            "api_error".to_string(),
            String::from_utf8_lossy(body).chars().take(500).collect(),
        ),
    };
    let openai_kind = match kind.as_str() {
        "invalid_request_error" => "invalid_request_error",
        "authentication_error" | "permission_error" => "authentication_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "overloaded_error" => "server_error",
        _ if status >= 500 => "server_error",
        _ => "api_error",
    };
    ErrorBody {
        error: ErrorDetail {
            message,
            kind: openai_kind.to_string(),
            param: None,
            code: Some(kind),
        },
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
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Use tools."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris? "},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "stop": "END",
            "max_completion_tokens": 100,
            "temperature": 0.2,
            "user": "u1",
            "some_future_field": true
        }));
        let a = request(&r, "claude-sonnet-4").unwrap();
        assert_eq!(a["model"], "claude-sonnet-4");
        assert_eq!(a["system"], "Be brief.\n\nUse tools.");
        assert_eq!(a["max_tokens"], 100);
        assert_eq!(a["stop_sequences"], json!(["END"]));
        assert_eq!(a["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            a["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(a["metadata"]["user_id"], "u1");
        let m = a["messages"].as_array().unwrap();
        assert_eq!(
            m.len(),
            3,
            "user, assistant, user (tool result and the next user merged)"
        );
        assert_eq!(m[0]["content"][1]["source"]["type"], "base64");
        assert_eq!(m[0]["content"][1]["source"]["media_type"], "image/png");
        assert_eq!(m[0]["content"][2]["source"]["url"], "https://x.test/a.jpg");
        assert_eq!(
            m[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        assert_eq!(m[2]["content"][0]["type"], "tool_result");
        assert_eq!(m[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(
            m[2]["content"][1],
            json!({"type": "text", "text": "Thanks"})
        );
    }

    #[test]
    fn empty_text_is_left_out_and_nulls_are_absent() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "stream": null, "tools": null,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "ok"},
                {"role": "assistant", "content": "done", "tool_calls": null}
            ]
        }))
        .unwrap();
        let out = request(&req, "claude").unwrap();
        let turn = &out["messages"][1];
        assert_eq!(turn["role"], "assistant");
        assert_eq!(turn["content"].as_array().unwrap().len(), 1, "{turn}");
        assert_eq!(turn["content"][0]["type"], "tool_use");
        let empty: ChatRequest = serde_json::from_value(
            json!({"model": "m", "messages": [{"role": "user", "content": ""}]}),
        )
        .unwrap();
        assert_eq!(
            request(&empty, "claude").unwrap_err().field,
            "messages[0].content"
        );
        let audio: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}
        ]}))
        .unwrap();
        assert_eq!(
            request(&audio, "claude").unwrap_err().field,
            "messages[0].content[0]"
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (
                json!({"model": "m", "messages": [{"role": "system", "content": "s"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "u"}], "tool_choice": "always"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
        ];
        for (v, field) in cases {
            let e = request(&req(v), "m").unwrap_err();
            assert_eq!(e.field, field);
        }
    }

    #[test]
    fn responses_and_finish_reasons_translate_back() {
        let r: MessageResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
            "content": [
                {"type": "thinking", "thinking": "..."},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 0}
        }))
        .unwrap();
        let o = response(r, "claude", 1_700_000_000);
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], "Let me check.");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "Paris"})
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "prompt_tokens_details": {"cached_tokens": 90}})
        );
        for (stop, want) in [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("pause_turn"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (None, FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(stop), want, "{stop:?}");
        }
    }

    #[test]
    fn errors_take_openais_shape() {
        let e = error(
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_error"}})
        );
        let e = error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        );
        assert_eq!(e.error.kind, "server_error");
        let e = error(502, b"<html>bad gateway</html>");
        assert_eq!(e.error.kind, "server_error");
        assert_eq!(e.error.message, "<html>bad gateway</html>");
    }
}
