"""OpenAI's Agents SDK (openai-agents, a test extra) against the embedded server, unchanged: a whole voice turn
with a tool over a WebSocket session, and the sideband split (a voiceclient WebRTC call carries the audio, an Agents
SDK backend joins it by call_id and owns the tool)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner

from voiceclient import ClientSettings, VoiceCall
from voiceclient.audio.format import API_RATE, RTP_RATE, tone
from voiceclient.audio.sources import BufferSource
from voiceclient.client.options import Recording

from .conftest import assert_wire_valid, read_events
from .test_websocket import SCENARIO

pytestmark = pytest.mark.timeout(60)


def weather_agent(calls: list[str]) -> RealtimeAgent[Any]:
    @function_tool
    def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        calls.append(city)
        return {"city": city, "forecast": "sunny"}

    return RealtimeAgent(name="weather", instructions="Answer questions about the weather.", tools=[get_weather])


def assistant_said(history: list[Any]) -> list[str]:
    return [
        c.transcript
        for item in history
        if getattr(item, "role", None) == "assistant"
        for c in item.content
        if getattr(c, "transcript", None)
    ]


async def test_the_agents_sdk_runs_a_voice_turn_with_a_tool(voice_server: Any, tmp_path: Path) -> None:
    scenario = tmp_path / "weather.toml"
    scenario.write_text(SCENARIO)
    server = await voice_server(scenario=scenario)
    calls: list[str] = []
    runner = RealtimeRunner(weather_agent(calls))
    session = await runner.run(
        model_config={
            "api_key": "sk-test",
            "url": f"{server.websocket_url}/realtime?model=gpt-realtime",
            "initial_model_settings": {"model_name": "gpt-realtime"},
        }
    )
    seen: list[str] = []
    errors: list[Any] = []
    audio = bytearray()
    async with session:
        # The user's question, as the microphone would send it (PCM16 24 kHz), then silence for the VAD.
        await session.send_audio(
            np.concatenate([np.zeros(4800, np.int16), tone(300, 0.6, API_RATE), np.zeros(16800, np.int16)]).tobytes()
        )

        async def until_answered() -> list[str]:
            async for event in session:
                seen.append(event.type)
                if event.type == "error" or (event.type == "raw_model_event" and event.data.type == "error"):
                    errors.append(event)
                elif event.type == "audio":
                    audio.extend(event.audio.data)
                elif event.type == "history_updated" and any("sunny" in t for t in assistant_said(event.history)):
                    return assistant_said(event.history)
            raise AssertionError("the session ended before the answer")

        said = await asyncio.wait_for(until_answered(), 20)
    assert calls == ["Paris"]  # the SDK ran our tool with the model's arguments
    assert said == ["Let me look that up.", "It is sunny in Paris."]
    assert seen.index("tool_start") < seen.index("tool_end") and "agent_start" in seen
    assert errors == []  # every event parsed by the SDK's own models, no error from the server
    assert len(audio) / 2 / API_RATE > 0.5  # the spoken answer's audio reached the SDK
    session_obj = next(s for s in server.history if s.transport == "websocket")
    assert [t["name"] for t in session_obj.session["tools"]] == ["get_weather"]  # the SDK declared it


async def test_the_sideband_split_one_output_per_call(voice_server: Any, tmp_path: Path) -> None:
    """The WebRTC client declares no tools; the backend joins by call_id with `get_weather`. The model's call is
    answered once, by the backend, and its answer is spoken to the WebRTC client."""
    scenario = tmp_path / "weather.toml"
    scenario.write_text(SCENARIO)
    server = await voice_server(scenario=scenario)
    settings = ClientSettings(base_url=server.base_url, api_key="sk-test", connect_timeout=10)
    calls: list[str] = []
    async with VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl")) as call:
        stream = call.events()
        runner = RealtimeRunner(weather_agent(calls))
        backend = await runner.run(
            model_config={
                "api_key": "sk-backend",
                "call_id": call.call_id,
                "url": f"{server.websocket_url}/realtime?call_id={call.call_id}",
            }
        )
        async with backend:

            async def drain() -> None:
                async for _ in backend:
                    pass

            reader = asyncio.get_running_loop().create_task(drain())
            # The backend's session.update (its tool, its instructions) reaches the call before the user speaks.
            while True:
                updated = await stream.next_of("session.updated")
                if [t.get("name") for t in updated.session.get("tools") or []] == ["get_weather"]:
                    break
            call.set_source(BufferSource(np.concatenate([tone(300, 0.6, RTP_RATE), np.zeros(RTP_RATE, np.int16)])))
            while True:
                said = await stream.next_of("response.output_audio_transcript.done")
                if said.transcript == "It is sunny in Paris.":
                    break
            await stream.next_of("output_audio_buffer.stopped")
            reader.cancel()
        assert calls == ["Paris"]
        ((name, call_id),) = call.foreign_tool_calls
        assert name == "get_weather" and call.tool_calls == 0
        heard = call.meter.speech_received_seconds
    log = read_events(tmp_path / "events.jsonl")
    outputs = [
        e["event"]
        for e in log
        if e["dir"] == "server"
        and e["event"]["type"] == "conversation.item.added"
        and e["event"]["item"]["type"] == "function_call_output"
    ]
    assert [o["item"]["call_id"] for o in outputs] == [call_id]  # one output, the backend's
    assert json.loads(outputs[0]["item"]["output"]) == {"city": "Paris", "forecast": "sunny"}
    assert not [e for e in log if e["dir"] == "client" and e["event"]["type"] == "conversation.item.create"]
    assert heard > 0.5
    assert_wire_valid(tmp_path / "events.jsonl")
