#!/usr/bin/env python3
"""The official SDKs against Firefly, unmodified.

Installs nothing itself: run it with a Python that has the `openai` and `anthropic`
packages (`.ci/run` makes a virtual environment from the Python registry). Starts the mock
upstream and Firefly (debug binaries from target/debug unless given), sets Firefly up with
one OpenAI-compatible, one Anthropic and one Gemini channel, and then, with each SDK's
plain client pointed at Firefly's base URL:

  - openai:    chat completions (whole and streamed, with usage) on all three channels,
               models.list, embeddings, an error surfacing as the SDK's exception type
  - anthropic: messages.create (whole and streamed) on all three channels,
               messages.count_tokens, models.list, an error as the SDK's exception type

Exits non-zero on the first mismatch. Everything listens on 127.0.0.1.

    python tests/sdk/check.py [--firefly target/debug/firefly] [--mock target/debug/firefly-mock]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import relay as harness  # noqa: E402  (bench/relay.py: process and HTTP helpers)

import anthropic  # noqa: E402
import openai  # noqa: E402

SENTENCE = "Firefly mock says hello from the local upstream."
CHANNELS = {
    "via-openai": ("openai", "/v1", "gpt-4o-mini"),
    "via-anthropic": ("anthropic", "", "claude-sonnet-4-5"),
    "via-gemini": ("gemini", "", "gemini-2.0-flash"),
}
EMBED = "text-embedding-3-small"


def setup(port: int, mock_origin: str) -> str:
    """Channels to the mock in three formats, prices, credits; returns an API key."""
    login = harness.expect(port, "POST", "/api/auth/login", 200,
                           {"email": harness.ADMIN_EMAIL, "password": harness.ADMIN_PASSWORD})
    token, admin_id = login["access_token"], login["user"]["id"]
    for model, (provider, suffix, upstream) in CHANNELS.items():
        models = [model] + ([EMBED] if provider == "openai" else [])
        channel = {"name": model, "provider": provider, "base_url": mock_origin + suffix, "keys": ["sk-sdk"],
                   "models": models, "model_map": {model: upstream}}
        harness.expect(port, "POST", "/api/admin/channels", 201, channel, token)
    for model in list(CHANNELS) + [EMBED]:
        harness.expect(port, "PUT", f"/api/admin/models/{model}", 200,
                       {"input_per_mtok": 1_000, "output_per_mtok": 2_000}, token)
    harness.expect(port, "POST", f"/api/admin/users/{admin_id}/credits", 201,
                   {"kind": "grant", "amount": 1_000_000_000, "note": "sdk check"}, token)
    return harness.expect(port, "POST", "/api/keys", 201, {"name": "sdk-check"}, token)["key"]


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok  {what}", flush=True)


def openai_sdk(base: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    for model in CHANNELS:
        done = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello there!"}])
        check(done.choices[0].message.content == SENTENCE and done.usage.completion_tokens == 8,
              f"openai SDK: chat on {model}")
        text, usage = "", None
        for chunk in client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                                    messages=[{"role": "user", "content": "Hello there!"}]):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            usage = chunk.usage or usage
        check(text == SENTENCE and usage is not None and usage.completion_tokens == 8,
              f"openai SDK: streamed chat on {model}")
    ids = sorted(m.id for m in client.models.list())
    check(ids == sorted(list(CHANNELS) + [EMBED]), "openai SDK: models.list")
    vectors = client.embeddings.create(model=EMBED, input=["one", "two"])
    check(len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0, "openai SDK: embeddings")
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        check(False, "openai SDK: an unknown model raises")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and "no-such-model" in str(e), "openai SDK: an unknown model raises NotFoundError")


def anthropic_sdk(base: str, key: str) -> None:
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    for model in CHANNELS:
        message = client.messages.create(model=model, max_tokens=64,
                                         messages=[{"role": "user", "content": "Hello there!"}])
        text = "".join(block.text for block in message.content if block.type == "text")
        check(text == SENTENCE and message.stop_reason == "end_turn" and message.usage.output_tokens == 8,
              f"anthropic SDK: messages on {model}")
        with client.messages.stream(model=model, max_tokens=64,
                                    messages=[{"role": "user", "content": "Hello there!"}]) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        check(streamed == SENTENCE and final.stop_reason == "end_turn" and final.usage.output_tokens == 8,
              f"anthropic SDK: streamed messages on {model}")
    count = client.messages.count_tokens(model="via-anthropic", messages=[{"role": "user", "content": "Hello there!"}])
    check(count.input_tokens == 3, "anthropic SDK: count_tokens")
    ids = sorted(m.id for m in client.models.list())
    check(ids == sorted(list(CHANNELS) + [EMBED]), "anthropic SDK: models.list")
    try:
        client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        check(False, "anthropic SDK: an unknown model raises")
    except anthropic.NotFoundError as e:
        check(e.status_code == 404, "anthropic SDK: an unknown model raises NotFoundError")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--firefly", type=Path, default=REPO / "target" / "debug" / "firefly")
    p.add_argument("--mock", type=Path, default=REPO / "target" / "debug" / "firefly-mock")
    args = p.parse_args()
    # The children run in a temporary directory: relative paths are the caller's.
    args.firefly, args.mock = args.firefly.resolve(), args.mock.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="firefly-sdk-"))
    children = []
    try:
        mock = harness.Child("mock", [str(args.mock), "--listen", f"{harness.HOST}:0"], workdir)
        children.append(mock)
        mock_origin = mock.first_line().rstrip("/").removesuffix("/v1")
        firefly, port = harness.start_firefly(args.firefly, workdir, [])
        children.append(firefly)
        harness.wait_ready(firefly, port)
        key = setup(port, mock_origin)
        base = f"http://{harness.HOST}:{port}"
        openai_sdk(base, key)
        anthropic_sdk(base, key)
        print("SDK check passed", flush=True)
        return 0
    finally:
        for child in reversed(children):
            child.stop()


if __name__ == "__main__":
    sys.exit(main())
