"""GPT-Live tools end to end against a real `serve` on loopback: the server's scenario plans a function call, and
voiceclient's client answers it with its own `@tool`, from the library (`VoiceCall`) and from the command line
(`voiceclient call --model gpt-live-1 --tools`), over WebRTC and WebSocket.

- Responses delegation (a call with tools): the call comes in `response.event` envelopes, the tool runs, its output
  goes back as `response.item.create` and one `response.create` follows; the backend's answer, the scenario's
  `after_tools` filled with the output, is said.
- Delegation to the application (`ClientSettings(delegation="client")`): `session.delegation.created`, the call's
  first tool runs with what the user said, and its output is appended as commentary (said) or thinking (silent).

Every event the client sends validates against `openai.types.live.ClientEvent`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.call_events import DelegationRequested, TranscriptTurn
from voiceclient.client.options import Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder
from voiceclient.tools import tool

from .conftest import FIXTURES, read_events
from .test_cli import run_cli

pytestmark = [pytest.mark.timeout(120), pytest.mark.webrtc]
SPEECH = FIXTURES / "speech" / "sentence_1.wav"
TRANSPORTS = ["webrtc", "websocket"]
SCENARIO = """
after_turns = "silence"

[[turns]]
text = "Let me check the weather."

  [[turns.calls]]
  name = "get_weather"
  arguments = { city = "Paris" }

  [turns.after_tools]
  text = "It is {output[forecast]} in {output[city]}."
"""
TOOLS_FILE = '''
from voiceclient import tool


@tool
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "forecast": "sunny"}
'''
OUTPUT = '{"city": "Paris", "forecast": "sunny"}'


def scenario(tmp_path: Path) -> ScenarioResponder:
    path = tmp_path / "weather.toml"
    path.write_text(SCENARIO)
    return ScenarioResponder.from_file(path)


def settings(server: RealtimeServer, transport: str, **more: Any) -> ClientSettings:
    return ClientSettings.model_validate(
        {"base_url": server.base_url, "api_key": "sk-test", "transport": transport, **more}
    )


def live_session() -> SessionConfig:
    return SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1"})


def client_events(log: Path) -> list[dict[str, Any]]:
    """What the client sent, each validated against the SDK's `ClientEvent` union."""
    from openai.types.live import ClientEvent
    from pydantic import TypeAdapter

    adapter: Any = TypeAdapter(ClientEvent)
    sent = [line["event"] for line in read_events(log) if line["dir"] == "client"]
    for event in sent:
        adapter.validate_python(event)
    return sent


def server_items(server: RealtimeServer, kind: str) -> list[dict[str, Any]]:
    """The items of `kind` in the conversation of the server's latest session."""
    return [item for item in server.history[-1].conversation.items if item.get("type") == kind]


async def said_until(turns: list[TranscriptTurn], text: str, timeout: float) -> str:
    """The assistant's words, once they include `text` (turns end when the other side speaks or it is quiet)."""

    def words() -> str:
        return " ".join(t.text for t in turns if t.role == "assistant")

    async with asyncio.timeout(timeout):
        while text not in words():
            await asyncio.sleep(0.05)
    return words()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_tool_answers_a_call_delegated_to_the_responses_backend(tmp_path: Path, transport: str) -> None:
    ran: list[str] = []

    @tool
    def get_weather(city: str) -> dict:
        """Current weather for a city."""
        ran.append(city)
        return {"city": city, "forecast": "sunny"}

    log = tmp_path / "events.jsonl"
    turns: list[TranscriptTurn] = []
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        call = VoiceCall(
            settings(server, transport),
            live_session(),
            source=WavSource(SPEECH),
            tools=[get_weather],
            recording=Recording(events_jsonl=log),
        )
        async with call:
            call.on(TranscriptTurn, turns.append)
            said = await said_until(turns, "It is sunny in Paris.", 60)
            assert await call.run_until_idle(idle_seconds=1.0, max_duration=80) == "idle"
        assert ran == ["Paris"] and call.tool_calls == 1
        assert "Let me check the weather." in said
        calls = server_items(server, "function_call")
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Paris"})]
        outputs = server_items(server, "function_call_output")
        assert [(o["call_id"], o["output"]) for o in outputs] == [(calls[0]["call_id"], OUTPUT)]
        assert call.effective_session is not None
        assert call.effective_session["delegation"]["type"] == "responses"
    sent = client_events(log)
    kinds = [e["type"] for e in sent]
    assert kinds.count("response.item.create") == 1 and kinds.count("response.create") == 1
    assert kinds.index("response.item.create") < kinds.index("response.create")
    item = next(e["item"] for e in sent if e["type"] == "response.item.create")
    assert item == {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": OUTPUT}


@pytest.mark.subprocess
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_cli_runs_its_tools_in_a_live_call(tmp_path: Path, transport: str) -> None:
    tools = tmp_path / "weather_tools.py"
    tools.write_text(TOOLS_FILE)
    log = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        code, stdout, err = await run_cli(
            "call", "--model", "gpt-live-1", "--transport", transport, "--tools", str(tools),
            "--input", str(SPEECH), "--events", str(log), "--idle-exit", "3",
            "--base-url", server.base_url, "--api-key", "sk-test", timeout=100,
        )  # fmt: skip
        assert code == 0, err
        outputs = server_items(server, "function_call_output")
    assert [o["output"] for o in outputs] == [OUTPUT]
    assert f'tool: get_weather({{"city": "Paris"}}) -> {OUTPUT}' in stdout
    assert "It is sunny in Paris." in stdout
    kinds = [e["type"] for e in client_events(log)]
    assert kinds.index("response.item.create") < kinds.index("response.create")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_task_delegated_to_the_application_is_answered_with_commentary(tmp_path: Path, transport: str) -> None:
    asked: list[str] = []

    @tool
    def look_up(request: str) -> str:
        """Look up what the user asked."""
        asked.append(request)
        return "It is sunny in Paris."

    log = tmp_path / "events.jsonl"
    turns: list[TranscriptTurn] = []
    requested: list[DelegationRequested] = []
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        call = VoiceCall(
            settings(server, transport, delegation="client"),
            live_session(),
            source=WavSource(SPEECH),
            tools=[look_up],
            recording=Recording(events_jsonl=log),
        )
        async with call:
            call.on(TranscriptTurn, turns.append)
            call.on(DelegationRequested, requested.append)
            assert call.effective_session is not None and call.effective_session["delegation"] == {"type": "client"}
            said = await said_until(turns, "It is sunny in Paris.", 60)
            assert await call.run_until_idle(idle_seconds=1.0, max_duration=80) == "idle"
        assert "Let me check the weather." in said
        assert not server_items(server, "function_call_output")  # (nothing is a function call's output here)
    assert len(requested) == 1 and requested[0].tool == "look_up"
    assert asked == [requested[0].request]  # the user's words (none here: no speech-to-text in this server)
    sent = client_events(log)
    appended = [e for e in sent if e["type"] == "session.commentary.append"]
    assert appended == [
        {
            "type": "session.commentary.append",
            "event_id": appended[0]["event_id"],
            "content": "It is sunny in Paris.",
            "delegation_id": requested[0].delegation_id,
        }
    ]
    assert not any(e["type"].startswith("response.") for e in sent)
    received = [line["event"] for line in read_events(log) if line["dir"] == "server"]
    created = next(e for e in received if e["type"] == "session.delegation.created")
    assert created["delegation"]["id"] == requested[0].delegation_id and created["delegation"]["target"] == "client"
    assert any(e["type"] == "session.commentary.appended" for e in received)


async def test_a_silent_tool_answers_with_thinking_and_nothing_more_is_said(tmp_path: Path) -> None:
    @tool(spoken=False)
    def note(request: str) -> str:
        """Note what the user asked."""
        return "The user is in Paris."

    log = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        call = VoiceCall(
            settings(server, "websocket", delegation="client"),
            live_session(),
            source=WavSource(SPEECH),
            tools=[note],
            recording=Recording(events_jsonl=log),
        )
        async with call:
            thought = call.events()
            await thought.next_of("session.thinking.appended", timeout=60)
            assert await call.run_until_idle(idle_seconds=1.5, max_duration=80) == "idle"
    sent = client_events(log)
    thinking = [e for e in sent if e["type"] == "session.thinking.append"]
    assert [e["content"] for e in thinking] == ["The user is in Paris."]
    assert not any(e["type"] == "session.commentary.append" for e in sent)
    words = [
        line["event"]["delta"]
        for line in read_events(log)
        if line["event"]["type"] == "session.output_transcript.delta"
    ]
    assert "".join(words) == "Let me check the weather."  # (the thinking is not said)


async def test_without_a_tool_the_application_answers_the_delegation_itself(tmp_path: Path) -> None:
    turns: list[TranscriptTurn] = []
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        call = VoiceCall(settings(server, "websocket"), live_session(), source=WavSource(SPEECH))

        def answer(event: DelegationRequested) -> None:
            assert event.tool is None
            call.append_commentary("Sunny, all day.", event.delegation_id)

        async with call:
            call.on(TranscriptTurn, turns.append)
            call.on(DelegationRequested, answer)
            said = await said_until(turns, "Sunny, all day.", 60)
            assert await call.run_until_idle(idle_seconds=1.0, max_duration=80) == "idle"
    assert said.startswith("Let me check the weather.")
    assert isinstance(call.session_closed, live.SessionClosed)
