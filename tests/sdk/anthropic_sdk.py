"""Drives the gateway's native Anthropic pass-through route with the official `anthropic` SDK.

Usage: anthropic_sdk.py BASE_URL API_KEY   (BASE_URL like http://127.0.0.1:PORT/anthropic; the
SDK appends /v1/messages)

Exits 0 and prints "ok" when every check passes; otherwise raises (non-zero exit) with a message
naming the check that failed. Every check runs; each failure's traceback goes to stdout, the list
of failed checks to stderr.
"""

import sys
import traceback

import anthropic

MODEL = "claude-haiku-4-5"
USER = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def plain(client):
    what = "messages.create"
    m = client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert m.role == "assistant", f"{what}: role {m.role!r}"
    assert len(m.content) == 1, f"{what}: content {m.content!r}, want one block"
    block = m.content[0]
    assert block.type == "text", f"{what}: block type {block.type!r}"
    assert block.text == "Hello world", f"{what}: text {block.text!r}"
    assert m.stop_reason == "end_turn", f"{what}: stop_reason {m.stop_reason!r}"
    assert m.usage.input_tokens == 11, f"{what}: input_tokens {m.usage.input_tokens!r}, want 11"
    assert m.usage.output_tokens == 2, f"{what}: output_tokens {m.usage.output_tokens!r}, want 2"


def stream_helper(client):
    what = "messages.stream"
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello world", f"{what}: text_stream joins to {text!r}"
    assert final.stop_reason == "end_turn", f"{what}: final stop_reason {final.stop_reason!r}"
    assert final.usage.output_tokens == 2, f"{what}: final output_tokens {final.usage.output_tokens!r}"
    texts = [b.text for b in final.content if b.type == "text"]
    assert texts == ["Hello world"], f"{what}: final content {final.content!r}"


def stream_raw(client):
    what = "messages.create(stream=True)"
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    events = list(stream)
    types = [e.type for e in events]
    # The SDK drops `ping` events itself.
    assert types, f"{what}: no events"
    assert types[0] == "message_start", f"{what}: first event {types[0]!r} ({types})"
    assert types[-1] == "message_stop", f"{what}: last event {types[-1]!r} ({types})"
    for t in ["content_block_start", "content_block_delta", "content_block_stop", "message_delta"]:
        assert t in types, f"{what}: no {t} event in {types}"
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Hello world", f"{what}: text deltas join to {text!r}"
    delta = [e for e in events if e.type == "message_delta"][-1]
    assert delta.delta.stop_reason == "end_turn", f"{what}: stop_reason {delta.delta.stop_reason!r}"
    assert delta.usage.output_tokens == 2, f"{what}: output_tokens {delta.usage.output_tokens!r}"


def tools(client):
    what = "tools"
    m = client.messages.create(model=MODEL, max_tokens=64, messages=USER, tools=TOOLS)
    assert m.stop_reason == "tool_use", f"{what}: stop_reason {m.stop_reason!r}"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1, f"{what}: content {m.content!r}, want one tool_use block"
    use = uses[0]
    assert isinstance(use.id, str) and use.id, f"{what}: tool_use id {use.id!r}"
    assert use.name == "get_weather", f"{what}: name {use.name!r}"
    assert use.input == {"city": "Paris"}, f"{what}: input {use.input!r}"


def errors(client):
    try:
        client.messages.create(model="nope-404", max_tokens=64, messages=USER)
    except anthropic.NotFoundError as e:
        assert e.status_code == 404, f"unknown model: status {e.status_code}"
        assert "nope-404" in str(e.body), f"unknown model: error body {e.body!r} does not name it"
    else:
        raise AssertionError("unknown model: no NotFoundError")


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL API_KEY")
    client = anthropic.Anthropic(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=10)
    checks = [
        ("messages.create", lambda: plain(client)),
        ("messages.stream", lambda: stream_helper(client)),
        ("messages.create stream", lambda: stream_raw(client)),
        ("tools", lambda: tools(client)),
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
        sys.exit(f"anthropic SDK checks failed: {', '.join(failed)}")
    print("ok")


if __name__ == "__main__":
    main()
