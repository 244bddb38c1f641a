"""voiceclient's own client speaking GPT-Live to a real `serve` on loopback: the echo of a spoken WAV over WebRTC and
WebSocket, its transcripts grouped into the user's and the assistant's turns, mute, an instructions append and the
close with its reason and usage. Every event the client sends validates against `openai.types.live.ClientEvent`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.call_events import TranscriptTurn
from voiceclient.client.options import Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import CallError
from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, read_wav

pytestmark = pytest.mark.timeout(90)
SPEECH = FIXTURES / "speech" / "sentence_1.wav"


@pytest.fixture
async def live_server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(port=0) as server:
        yield server


def client_events(log: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line["event"] for line in lines if line.get("dir") == "client"]


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_live_call_hears_the_echo_groups_the_turns_and_closes(
    live_server: RealtimeServer, transport: str, tmp_path: Path
) -> None:
    from openai.types.live import ClientEvent
    from pydantic import TypeAdapter

    settings = ClientSettings(base_url=live_server.base_url, api_key="sk-test", transport=transport)  # type: ignore[arg-type]
    session = SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1", "instructions": "Be brief."})
    turns: list[TranscriptTurn] = []
    recording = Recording(events_jsonl=tmp_path / "events.jsonl", output_wav=tmp_path / "out.wav")
    async with VoiceCall(settings, session, source=WavSource(SPEECH), recording=recording) as call:
        call.on(TranscriptTurn, turns.append)
        assert call.family.name == "live"
        assert call.effective_session is not None and call.effective_session["model"] == "gpt-live-1"
        assert call.call_id is not None and call.call_id.startswith("live_")
        muted = call.events()
        call.mute()
        await muted.next_of("session.input_audio.muted", timeout=10)
        call.unmute()
        await muted.next_of("session.input_audio.unmuted", timeout=10)
        call.append_instructions("Speak slowly.")
        await muted.next_of("session.instructions.appended", timeout=10)
        with pytest.raises(CallError, match="GPT-Live session does not send it"):
            call.send(ev.ResponseCreate())
        with pytest.raises(CallError):
            call.send_text("hello")
        await call.wait_for(lambda e: isinstance(e, live.OutputTranscriptDelta), 30)
        assert await call.run_until_idle(idle_seconds=1.5, max_duration=40) == "idle"
    closed = call.session_closed
    assert closed is not None and closed.reason == "close_requested" and closed.usage.seconds >= 0
    said = [t for t in turns if t.role == "assistant"]
    assert said and said[0].text.startswith("Echo of")
    roles = [item.role for item in call.history]
    assert "assistant" in roles and all(item.audio for item in call.history)
    sent = client_events(tmp_path / "events.jsonl")
    adapter: Any = TypeAdapter(ClientEvent)
    for event in sent:
        adapter.validate_python(event)
    kinds = {e["type"] for e in sent}
    assert "session.close" in kinds
    assert not any(k.startswith(("response.", "conversation.", "input_audio")) for k in kinds)
    heard, _rate, _channels = read_wav(tmp_path / "out.wav")
    assert int(abs(heard.astype(int)).max()) > 1000  # the echo of the speech came back as sound
