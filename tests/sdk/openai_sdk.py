"""Drives the gateway's OpenAI-compatible AI route with the official `openai` SDK.

Usage: openai_sdk.py BASE_URL API_KEY   (BASE_URL like http://127.0.0.1:PORT/ai/v1)

Exits 0 and prints "ok" when every check passes; otherwise raises (non-zero exit) with a message
naming the model and the check that failed. Every check runs; each failure's traceback goes to
stdout, the list of failed checks to stderr.
"""

import array
import base64
import json
import sys
import traceback

import openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
USER = [{"role": "user", "content": "Say hello"}]
CHAT_MODELS = ["fast", "claude", "gem"]


def check_usage(usage, what):
    assert usage is not None, f"{what}: no usage"
    assert usage.prompt_tokens == 11, f"{what}: prompt_tokens {usage.prompt_tokens!r}, want 11"
    assert usage.completion_tokens == 2, f"{what}: completion_tokens {usage.completion_tokens!r}, want 2"
    assert usage.total_tokens == 13, f"{what}: total_tokens {usage.total_tokens!r}, want 13"


def chat_plain(client, model):
    what = f"{model} chat"
    r = client.chat.completions.create(model=model, messages=USER)
    assert len(r.choices) == 1, f"{what}: {len(r.choices)} choices, want 1: {r}"
    c = r.choices[0]
    assert c.message.content == "Hello world", f"{what}: content {c.message.content!r}"
    assert c.message.role == "assistant", f"{what}: role {c.message.role!r}"
    assert c.finish_reason == "stop", f"{what}: finish_reason {c.finish_reason!r}"
    check_usage(r.usage, what)


def chat_stream(client, model, include_usage):
    what = f"{model} stream (include_usage={include_usage})"
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(model=model, messages=USER, stream=True, **kwargs)
    chunks = list(stream)
    assert chunks, f"{what}: no chunks"
    text = ""
    stops = 0
    for ch in chunks:
        for choice in ch.choices:
            if choice.delta is not None and choice.delta.content:
                text += choice.delta.content
            if choice.finish_reason is not None:
                assert choice.finish_reason == "stop", f"{what}: finish_reason {choice.finish_reason!r}"
                stops += 1
    assert text == "Hello world", f"{what}: deltas join to {text!r}"
    assert stops == 1, f"{what}: {stops} chunks carry a finish_reason, want 1"
    if include_usage:
        last = chunks[-1]
        assert last.choices == [], f"{what}: final chunk has choices {last.choices!r}, want []"
        check_usage(last.usage, what + " final chunk")
        early = [i for i, ch in enumerate(chunks[:-1]) if ch.usage is not None]
        assert not early, f"{what}: chunks {early} before the final one carry usage"
    else:
        with_usage = [i for i, ch in enumerate(chunks) if ch.usage is not None]
        assert not with_usage, f"{what}: chunks {with_usage} carry usage though it was not asked for"


def chat_tools(client, model):
    what = f"{model} tools"
    r = client.chat.completions.create(model=model, messages=USER, tools=TOOLS, tool_choice="auto")
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", f"{what}: finish_reason {c.finish_reason!r}"
    calls = c.message.tool_calls
    assert calls and len(calls) == 1, f"{what}: tool_calls {calls!r}, want one"
    call = calls[0]
    assert isinstance(call.id, str) and call.id, f"{what}: tool call id {call.id!r}"
    assert call.type == "function", f"{what}: tool call type {call.type!r}"
    assert call.function.name == "get_weather", f"{what}: function name {call.function.name!r}"
    args = json.loads(call.function.arguments)
    assert args == {"city": "Paris"}, f"{what}: arguments {call.function.arguments!r}"

    # The follow-up turn: the assistant's tool call and the tool's answer go back.
    what = f"{model} tool follow-up"
    messages = USER + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp":21}'},
    ]
    r = client.chat.completions.create(model=model, messages=messages)
    c = r.choices[0]
    assert c.message.content == "Hello world", f"{what}: content {c.message.content!r}"
    assert c.finish_reason == "stop", f"{what}: finish_reason {c.finish_reason!r}"


def chat_json_mode(client, model):
    what = f"{model} response_format json_object"
    r = client.chat.completions.create(
        model=model, messages=USER, response_format={"type": "json_object"}
    )
    assert r.choices[0].message.content == "Hello world", f"{what}: content {r.choices[0].message.content!r}"


def models(client):
    ids = [m.id for m in client.models.list()]
    for want in ["fast", "claude", "gem", "embed"]:
        assert want in ids, f"models.list: {want!r} missing from {ids!r}"
    m = client.models.retrieve("fast")
    assert m.id == "fast", f"models.retrieve: id {m.id!r}"


def embeddings(client):
    # Without encoding_format the SDK asks for base64 and decodes it into floats itself (a
    # server that answers floats anyway is passed through as they are).
    r = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(r.data) == 2, f"embeddings: {len(r.data)} embeddings, want 2"
    for i, e in enumerate(r.data):
        v = e.embedding
        assert isinstance(v, list) and len(v) == 3, f"embeddings[{i}]: {v!r}, want 3 floats"
        assert all(isinstance(x, float) for x in v), f"embeddings[{i}]: {v!r} are not all floats"
    assert r.usage.prompt_tokens == 2, f"embeddings: prompt_tokens {r.usage.prompt_tokens!r}, want 2"

    # With encoding_format="base64" given, the SDK returns what the server sent untouched:
    # base64 of little-endian float32s (or, from a server that ignores the format, floats).
    r = client.embeddings.create(model="embed", input="a", encoding_format="base64")
    assert len(r.data) == 1, f"embeddings base64: {len(r.data)} embeddings, want 1"
    v = r.data[0].embedding
    if isinstance(v, str):
        raw = base64.b64decode(v, validate=True)
        assert len(raw) == 12, f"embeddings base64: {len(raw)} bytes, want 12 (3 float32s)"
        floats = array.array("f", raw).tolist()
    else:
        floats = v
    assert isinstance(floats, list) and len(floats) == 3, f"embeddings base64: {v!r}, want 3 floats"


def errors(client):
    try:
        client.chat.completions.create(model="nope", messages=USER)
    except openai.NotFoundError as e:
        assert e.status_code == 404, f"unknown model: status {e.status_code}"
        assert "nope" in str(e.body) or "nope" in e.message, f"unknown model: error does not name it: {e.body!r}"
    else:
        raise AssertionError("unknown model: no NotFoundError")

    # A body without `messages` (sent raw: the SDK's create() insists on the argument).
    try:
        client.post("/chat/completions", body={"model": "fast"}, cast_to=object)
    except openai.BadRequestError as e:
        assert e.status_code == 400, f"missing messages: status {e.status_code}"
        assert isinstance(e.body, dict) and e.body.get("message"), f"missing messages: error body {e.body!r}"
    else:
        raise AssertionError("missing messages: no BadRequestError")


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL API_KEY")
    client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=10)
    checks = []
    for model in CHAT_MODELS:
        checks += [
            (f"{model} chat", lambda m=model: chat_plain(client, m)),
            (f"{model} stream", lambda m=model: chat_stream(client, m, False)),
            (f"{model} stream+usage", lambda m=model: chat_stream(client, m, True)),
            (f"{model} tools", lambda m=model: chat_tools(client, m)),
            (f"{model} json_object", lambda m=model: chat_json_mode(client, m)),
        ]
    checks += [
        ("models", lambda: models(client)),
        ("embeddings", lambda: embeddings(client)),
        ("errors", lambda: errors(client)),
    ]
    failed = []
    for name, check in checks:
        try:
            check()
        except Exception:
            failed.append(name)
            print(f"FAIL {name}:", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
    if failed:
        sys.exit(f"openai SDK checks failed: {', '.join(failed)}")
    print("ok")


if __name__ == "__main__":
    main()
