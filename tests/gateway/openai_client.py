"""The official `openai` client against Arcana's gateway, as a user would point it:
OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=<a personal access token>.

Run by tests/gateway.rs with one phase:
  calls   models, a plain and a streamed completion with usage, a tool call, a fallback
          seen through the raw response's headers, and the error classes
  budget  a spent budget is a RateLimitError (insufficient_quota) the client does not retry
Any failed check raises; the last line says which phase passed.
"""

import sys

import openai

try:  # newer releases of the SDK are built on httpx2, older ones on httpx
    import httpx2 as httpx
except ImportError:
    import httpx


def counting_client():
    """An httpx client that counts the requests the SDK sends (retries included)."""
    sent = []
    http = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.url)]}, timeout=30)
    return openai.OpenAI(http_client=http), sent


def calls():
    client, _ = counting_client()
    ids = [m.id for m in client.models.list()]
    assert "gpt-echo" in ids and "arcana/auto" in ids, ids

    r = client.chat.completions.create(
        model="gpt-echo", messages=[{"role": "user", "content": "hello from python"}]
    )
    assert r.choices[0].message.content == "echo: hello from python", r
    assert r.choices[0].finish_reason == "stop", r
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens > r.usage.prompt_tokens, r.usage

    text, usage = "", None
    for chunk in client.chat.completions.create(
        model="gpt-echo",
        messages=[{"role": "user", "content": "stream from python"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == "echo: stream from python", text
    assert usage is not None and usage.completion_tokens > 0, usage

    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = client.chat.completions.create(
        model="tool", messages=[{"role": "user", "content": "find it"}], tools=tools
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and '"find it"' in call.function.arguments, call

    # The provider rejects its key; Arcana falls back to the default model and says so.
    raw = client.chat.completions.with_raw_response.create(
        model="fail-401", messages=[{"role": "user", "content": "fall back"}]
    )
    assert raw.headers.get("x-arcana-fallback-from") == "invalid_api_key", dict(raw.headers)
    assert raw.headers.get("x-arcana-model") == "gpt-echo", dict(raw.headers)
    assert raw.parse().choices[0].message.content == "echo: fall back"

    wrong = openai.OpenAI(api_key="arc_wrong", max_retries=0)
    try:
        wrong.models.list()
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        assert e.code == "invalid_api_key", e.body

    for model, messages, error in [
        ("no-such-model", [{"role": "user", "content": "x"}], openai.NotFoundError),
        ("gpt-echo", [], openai.BadRequestError),
    ]:
        try:
            client.chat.completions.create(model=model, messages=messages)
            raise AssertionError(f"{model} {messages} succeeded")
        except error as e:
            assert e.body and e.body.get("message"), e.body
    print("ok: all calls")


def budget():
    client, sent = counting_client()
    try:
        client.chat.completions.create(
            model="gpt-echo", messages=[{"role": "user", "content": "over budget"}]
        )
        raise AssertionError("a call over budget succeeded")
    except openai.RateLimitError as e:
        assert e.code == "insufficient_quota", e.body
    assert len(sent) == 1, f"the client retried: {len(sent)} requests"
    print("ok: budget")


if __name__ == "__main__":
    {"calls": calls, "budget": budget}[sys.argv[1]]()
