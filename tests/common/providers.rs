//! Mock model providers speaking each provider's documented wire format: OpenAI's Chat
//! Completions (JSON and `chat.completion.chunk` SSE with the optional usage chunk), Anthropic's
//! Messages API (JSON and its `message_start` … `message_stop` event sequence) and Gemini's
//! `generateContent` / `streamGenerateContent?alt=sse`. Each answers "Hello world" (or a tool call
//! when the request offers tools) with usage 11 in / 2 out, streams in chunked framing with
//! events split across chunks, and records what it was sent.

use serde_json::{Value, json};

use super::{Mock, Reply, SeenRequest};

pub const PROMPT_TOKENS: u64 = 11;
pub const COMPLETION_TOKENS: u64 = 2;

/// A JSON response with `status`.
pub fn json_reply(status: u16, v: &Value) -> Reply {
    let body = v.to_string();
    Reply::Raw(
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// An SSE response in chunked framing, the text cut into pieces of 7 bytes (events and lines
/// split across chunks, as networks deliver them).
pub fn sse_reply(text: &str) -> Reply {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for piece in text.as_bytes().chunks(7) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Reply::Raw(out)
}

pub fn body_json(r: &SeenRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn wants_tool(b: &Value) -> bool {
    b["tools"].as_array().is_some_and(|t| !t.is_empty())
}

/// OpenAI's `/v1/chat/completions` (and OpenAI-compatible servers').
pub fn openai(r: &SeenRequest) -> Reply {
    let b = body_json(r);
    let model = b["model"].as_str().unwrap_or("").to_string();
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS});
    if r.target.ends_with("/embeddings") {
        let n = match &b["input"] {
            Value::Array(a) => a.len(),
            _ => 1,
        };
        let data: Vec<Value> = (0..n)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}))
            .collect();
        return json_reply(
            200,
            &json!({"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": n, "total_tokens": n}}),
        );
    }
    if !r.target.ends_with("/chat/completions") && !r.target.contains("/chat/completions?") {
        return json_reply(
            404,
            &json!({"error": {"message": "unknown path", "type": "invalid_request_error"}}),
        );
    }
    if b["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut text = String::new();
        let mut ev = |v: Value| text.push_str(&format!("data: {v}\n\n"));
        ev(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        ev(chunk(json!({"content": "Hello"}), Value::Null));
        ev(chunk(json!({"content": " world"}), Value::Null));
        ev(chunk(json!({}), json!("stop")));
        if b["stream_options"]["include_usage"] == true {
            ev(
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [], "usage": usage}),
            );
        }
        text.push_str("data: [DONE]\n\n");
        return sse_reply(&text);
    }
    let message = if wants_tool(&b) {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    } else {
        json!({"role": "assistant", "content": "Hello world"})
    };
    let finish = if wants_tool(&b) { "tool_calls" } else { "stop" };
    json_reply(
        200,
        &json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}),
    )
}

/// Anthropic's `/v1/messages`.
pub fn anthropic(r: &SeenRequest) -> Reply {
    let b = body_json(r);
    let model = b["model"].as_str().unwrap_or("").to_string();
    if model == "nope-404" {
        return json_reply(
            404,
            &json!({"type": "error", "error": {"type": "not_found_error", "message": "model: nope-404"}}),
        );
    }
    if r.header("anthropic-version").is_none() || b["max_tokens"].as_u64().is_none() {
        return json_reply(
            400,
            &json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "anthropic-version and max_tokens are required"}}),
        );
    }
    if b["stream"] == true {
        let mut text = String::new();
        let mut ev = |name: &str, v: Value| text.push_str(&format!("event: {name}\ndata: {v}\n\n"));
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}}),
        );
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        );
        ev("ping", json!({"type": "ping"}));
        for t in ["Hello", " world"] {
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": t}}),
            );
        }
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        );
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
            "stop_sequence": null}, "usage": {"output_tokens": COMPLETION_TOKENS}}),
        );
        ev("message_stop", json!({"type": "message_stop"}));
        return sse_reply(&text);
    }
    let (content, stop) = if wants_tool(&b) {
        (
            json!([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]),
            "tool_use",
        )
    } else {
        (json!([{"type": "text", "text": "Hello world"}]), "end_turn")
    };
    json_reply(
        200,
        &json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS}}),
    )
}

/// Gemini's `generateContent` and `streamGenerateContent?alt=sse`.
pub fn gemini(r: &SeenRequest) -> Reply {
    let b = body_json(r);
    let usage = json!({"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": COMPLETION_TOKENS,
        "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS});
    if r.target.contains(":batchEmbedContents") {
        let n = b["requests"].as_array().map_or(0, Vec::len);
        let e: Vec<Value> = (0..n).map(|_| json!({"values": [0.1, 0.2, 0.3]})).collect();
        return json_reply(200, &json!({"embeddings": e}));
    }
    if r.target.contains(":streamGenerateContent") {
        let mut text = String::new();
        let mut ev = |v: Value| text.push_str(&format!("data: {v}\r\n\r\n"));
        ev(
            json!({"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}, "index": 0}],
            "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": 1, "totalTokenCount": PROMPT_TOKENS + 1}}),
        );
        ev(
            json!({"candidates": [{"content": {"parts": [{"text": " world"}], "role": "model"},
            "finishReason": "STOP", "index": 0}], "usageMetadata": usage}),
        );
        return sse_reply(&text);
    }
    let part = if wants_tool(&b) {
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}})
    } else {
        json!({"text": "Hello world"})
    };
    json_reply(
        200,
        &json!({"candidates": [{"content": {"parts": [part], "role": "model"},
        "finishReason": "STOP", "index": 0}], "usageMetadata": usage}),
    )
}

pub fn start(f: fn(&SeenRequest) -> Reply) -> Mock {
    Mock::start(f)
}
