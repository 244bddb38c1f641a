"""voiceclient's own client over the WebSocket transport (`ClientSettings(transport="websocket")`,
`voiceclient call --transport websocket`), against the embedded server on loopback: the same call, recordings,
tools and barge-in as over WebRTC, with the playout done by the client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource, build_session, tool
from voiceclient.audio.format import dominant_frequency, tone
from voiceclient.audio.sources import BufferSource
from voiceclient.client.options import Continuity, Recording
from voiceclient.errors import AuthenticationError
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, assert_wire_valid, loud_spans, read_events, read_wav
from .test_cli import run_cli

pytestmark = pytest.mark.timeout(60)


def ws_settings(server: RealtimeServer, **kw: Any) -> ClientSettings:
    return ClientSettings(base_url=server.base_url, api_key="sk-test", transport="websocket", connect_timeout=10, **kw)


async def test_a_voice_turn_over_websocket_is_heard_recorded_and_logged(server: RealtimeServer, tmp_path: Path) -> None:
    out, rec, events = tmp_path / "out.wav", tmp_path / "rec.wav", tmp_path / "events.jsonl"
    async with VoiceCall(
        ws_settings(server),
        source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
        recording=Recording(output_wav=out, record_wav=rec, events_jsonl=events),
    ) as call:
        assert call.call_id is not None and call.call_id.startswith("sess_")  # the session is the connection
        assert await call.run_until_idle(1.0, 30) == "idle"
    [session] = list(server.history)
    assert session.transport == "websocket"
    # What the server heard: the 440 Hz tone, sent as appends.
    heard = session.conversation.user_audio()[0]
    start, end = loud_spans(heard, 24000)[0]
    assert abs(dominant_frequency(heard[int(start * 24000) + 1200 : int(end * 24000) - 1200], 24000) - 440) < 3
    # What the client heard: the echo, played out in real time, once, after the tone.
    pcm, rate, _ = read_wav(out)
    spans = loud_spans(pcm[:, 0], rate)
    assert len(spans) == 1 and 0.9 <= spans[0][1] - spans[0][0] <= 1.1
    s, e = spans[0]
    assert abs(dominant_frequency(pcm[int(s * rate) + 1200 : int(e * rate) - 1200, 0], rate) - 440) < 3
    stereo = read_wav(rec)[0]
    assert loud_spans(stereo[:, 0], 24000)[0][1] < loud_spans(stereo[:, 1], 24000)[0][0]
    # The log: the wire events (validated by the official types), the playout as local events, no audio payloads.
    log = read_events(events)
    assert_wire_valid(events)
    local = [line["event"]["type"] for line in log if line["dir"] == "local"]
    assert local[:2] == ["output_audio_buffer.started", "output_audio_buffer.stopped"]
    deltas = [line["event"]["delta"] for line in log if line["event"]["type"] == "response.output_audio.delta"]
    assert deltas and all(d.startswith("<") and d.endswith("base64 characters>") for d in deltas)
    assert not [line for line in log if line["event"]["type"] == "input_audio_buffer.append"]


async def test_a_session_at_speed_1_5_hears_the_echo_in_two_thirds_of_the_time(
    server: RealtimeServer, tmp_path: Path
) -> None:
    """`--set audio.output.speed=1.5` over a real call: the 1 s tone comes back in 0.67 s, still at 440 Hz."""
    out = tmp_path / "out.wav"
    session = build_session(assignments=["audio.output.speed=1.5"])
    async with VoiceCall(
        ws_settings(server),
        session=session,
        source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
        recording=Recording(output_wav=out),
    ) as call:
        assert call.effective_session is not None and call.effective_session["audio"]["output"]["speed"] == 1.5
        assert await call.run_until_idle(1.0, 30) == "idle"
    [heard_session] = list(server.history)
    heard = heard_session.conversation.user_audio()[0]
    pcm, rate, _ = read_wav(out)
    [(s, e)] = loud_spans(pcm[:, 0], rate)
    [(hs, he)] = loud_spans(heard, 24000)
    assert e - s == pytest.approx((he - hs) / 1.5, abs=0.05)
    assert abs(dominant_frequency(pcm[int(s * rate) + 1200 : int(e * rate) - 1200, 0], rate) - 440) < 3


async def test_barge_in_over_websocket_flushes_the_speaker_and_truncates_at_what_was_heard(tmp_path: Path) -> None:
    """The client's own barge-in: the server cancels (turn_detected); the client drops the unplayed audio and
    truncates the item at the samples the speaker consumed."""
    scenario = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")
    pcm = np.concatenate(
        [
            np.zeros(9600, np.int16),
            tone(440, 0.6, 48000),
            np.zeros(48000, np.int16),
            tone(660, 0.6, 48000),
            np.zeros(48000, np.int16),
        ]
    )
    out, events = tmp_path / "out.wav", tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=scenario) as server:
        async with VoiceCall(
            ws_settings(server), source=BufferSource(pcm), recording=Recording(output_wav=out, events_jsonl=events)
        ) as call:
            await call.run_until_idle(1.0, 30)
        [session] = list(server.history)
        log = read_events(events)
        truncate = next(line["event"] for line in log if line["event"]["type"] == "conversation.item.truncate")
        truncated = next(line["event"] for line in log if line["event"]["type"] == "conversation.item.truncated")
        assert truncated["audio_end_ms"] == truncate["audio_end_ms"] and 500 <= truncate["audio_end_ms"] <= 2000
        # What the item keeps is what the speaker played: the first answer's loud span in the WAV.
        spans = loud_spans(read_wav(out)[0][:, 0], 24000)
        first = spans[0][1] - spans[0][0]
        assert first < 2.0 and abs(first * 1000 - truncate["audio_end_ms"]) < 120
        local = [line["event"]["type"] for line in log if line["dir"] == "local"]
        assert "output_audio_buffer.cleared" in local
        cut = session.conversation.get(truncate["item_id"])
        assert (
            cut is not None
            and cut["content"][0]["transcript"] != "This is a long answer that goes on for three whole seconds."
        )


async def test_a_tool_round_trip_and_a_text_turn_over_websocket(tmp_path: Path) -> None:
    calls: list[str] = []

    @tool
    def get_weather(city: str, unit: str = "celsius") -> dict:
        """Weather for a city."""
        calls.append(city)
        if unit not in ("celsius", "fahrenheit"):
            raise ValueError(f"unknown unit {unit}")
        return {"city": city, "forecast": "sunny", "temperature": 22}

    scenario = ScenarioResponder.from_file(FIXTURES / "scenarios" / "tools.toml")
    session = SessionConfig.model_validate(
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}
    )
    async with RealtimeServer(port=0, responder=scenario) as server:
        async with VoiceCall(
            ws_settings(server), session, source=WavSource(FIXTURES / "hello.wav"), tools=[get_weather]
        ) as call:
            stream = call.events()
            done = await stream.next_of("response.output_audio_transcript.done", timeout=20)  # the preamble
            assert done.transcript == "Checking two cities."
            answer = await stream.next_of("response.output_audio_transcript.done", timeout=20)
            assert answer.transcript == "Paris is sunny, 22 degrees."
            assert calls[:2] == ["Paris", "Tokyo"]


async def test_g711_both_ways_over_websocket(server: RealtimeServer, tmp_path: Path) -> None:
    session = SessionConfig.model_validate(
        {"audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcma"}}}}
    )
    out = tmp_path / "out.wav"
    async with VoiceCall(
        ws_settings(server),
        session,
        source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
        recording=Recording(output_wav=out),
    ) as call:
        assert await call.run_until_idle(1.0, 30) == "idle"
    pcm, rate, _ = read_wav(out)
    [(s, e)] = loud_spans(pcm[:, 0], rate)
    assert abs(dominant_frequency(pcm[int(s * rate) + 1200 : int(e * rate) - 1200, 0], rate) - 440) < 5


async def test_a_wrong_key_over_websocket_is_an_authentication_error() -> None:
    async with RealtimeServer(port=0, api_key="sk-right") as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-wrong", transport="websocket")
        with pytest.raises(AuthenticationError, match="Incorrect API key"):
            async with VoiceCall(settings):
                pass


async def test_call_transport_websocket_from_the_command_line(server: RealtimeServer, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    code, out, err = await run_cli(
        "call",
        "--transport",
        "websocket",
        "--input",
        str(FIXTURES / "tone_440_16k_stereo.wav"),
        "--base-url",
        server.base_url,
        "--api-key",
        "sk-x",
        "--events",
        str(events),
        "--idle-exit",
        "1",
    )
    assert code == 0, err
    assert "sess_" in out
    types = [json.loads(line)["event"]["type"] for line in events.read_text().splitlines()]
    assert types[0] == "session.created" and "response.done" in types


async def test_a_websocket_call_is_recycled_with_its_conversation(server: RealtimeServer, tmp_path: Path) -> None:
    """The recycle path (a second session prepared, the history replayed, the switch at a quiet moment) over the
    WebSocket: the new session knows the words, and its answer is played out by the client."""
    from .conftest import until_switched

    statuses: list[str] = []
    out = tmp_path / "out.wav"
    async with VoiceCall(
        ws_settings(server),
        on_status=statuses.append,
        recording=Recording(output_wav=out, events_jsonl=tmp_path / "events.jsonl"),
        continuity=Continuity(recycle_after=1.5),
    ) as call:
        first = call.call_id
        call.send_text("my name is Ada")
        await call.wait_for(lambda e: e.type == "response.done", 10)
        await until_switched(call, 1, timeout=20)
        assert call.call_id != first and str(call.call_id).startswith("sess_")
        call.send_text("what is my name?")
        done = await call.wait_for(lambda e: e.type == "response.done", 10)
        assert done.response.status == "completed"
        await call.run_until_idle(0.5, 20)
        current = next(s for s in server.history if s.id == call.call_id)
        texts = [
            it["content"][0].get("text") or it["content"][0].get("transcript") for it in current.conversation.items
        ]
        assert texts[:4] == [
            "my name is Ada",
            "You said: my name is Ada",
            "what is my name?",
            "You said: what is my name?",
        ]
    for _ in range(100):  # every session the call opened is closed with it, the retiring one too
        if not server.sessions:
            break
        await asyncio.sleep(0.05)
    assert not server.sessions
    assert statuses[0] == "session recycled, conversation carried over (2 items)"
    log = read_events(tmp_path / "events.jsonl")
    switched = next(line["t"] for line in log if line["event"]["type"] == "call.switched")
    assert [
        line
        for line in log
        if line["dir"] == "local" and line["t"] > switched and line["event"]["type"] == "output_audio_buffer.started"
    ]  # the new session's answer was played
    assert len(loud_spans(read_wav(out)[0][:, 0], 24000)) == 2
