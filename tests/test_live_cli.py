"""`voiceclient call --model gpt-live-1` against `serve` on loopback, as a user runs it: the conversation printed as
for a Realtime call, the answer recorded, and the event log valid against `openai.types.live`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, read_events, read_wav
from .test_cli import run_cli

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_call_with_a_live_model_prints_the_turns_and_records_the_answer(tmp_path: Path, transport: str) -> None:
    from openai.types.live import ClientEvent, ServerEvent
    from pydantic import TypeAdapter

    out, log = tmp_path / "answer.wav", tmp_path / "events.jsonl"
    async with RealtimeServer(port=0) as server:
        code, stdout, err = await run_cli(
            "call", "--model", "gpt-live-1", "--transport", transport, "--input",
            str(FIXTURES / "speech" / "sentence_1.wav"), "--output", str(out), "--events", str(log),
            "--base-url", server.base_url, "--api-key", "sk-test", timeout=70,
        )  # fmt: skip
    assert code == 0, err
    assert "(call live_" in stdout
    assert "assistant: Echo of 3." in stdout and "seconds of your audio." in stdout  # (no speech models: no words)
    pcm, rate, _channels = read_wav(out)
    assert rate > 0 and pcm.size / rate > 3.0  # the echo of the 3.5 s sentence was heard and recorded
    lines = read_events(log)
    client: Any = TypeAdapter(ClientEvent)
    server_events: Any = TypeAdapter(ServerEvent)
    for line in lines:
        event = line["event"]
        if line["dir"] == "client":
            client.validate_python(event)
        elif line["dir"] == "server" and event["type"] != "session.output_audio.delta":  # (logged as its length)
            server_events.validate_python(event)
    types = [line["event"]["type"] for line in lines if line["dir"] in ("client", "server")]
    # over the WebSocket the session begins with the client's own session.start (over WebRTC it went in the POST)
    opening = ["session.start", "session.started"] if transport == "websocket" else ["session.started"]
    assert types[: len(opening)] == opening and types[-2:] == ["session.close", "session.closed"]
    history = next(line["event"] for line in lines if line["event"]["type"] == "conversation.history")
    assert [item["role"] for item in history["items"]] == ["assistant"]
    assert history["items"][0]["text"].startswith("Echo of 3.")
