"""OpenAI's Agents SDK over WebRTC: a `RealtimeRunner` whose model is `voiceclient.agents.WebRTCModel`, against the
embedded server, the SDK unchanged. A handoff and a tool (the SDK runs both), the same conversation over the SDK's
own WebSocket model for comparison, an interrupt in a long answer, an output guardrail, push-to-talk audio from the
app, a reconnect reported as connection status, a failed call ending the SDK's stream, and bad input."""

from __future__ import annotations

import asyncio
import json
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agents import GuardrailFunctionOutput, function_tool, output_guardrail
from agents.exceptions import UserError
from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from agents.realtime.model import RealtimeModelListener
from agents.realtime.model_events import RealtimeModelEvent
from agents.realtime.model_inputs import RealtimeModelSendRawMessage

from voiceclient.agents import WebRTCModel, base_url_from
from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.audio.sources import SilenceSource, WavSource
from voiceclient.client.options import Continuity, Recording
from voiceclient.errors import AuthenticationError, ConnectionLostError
from voiceclient.server.faults import FaultSpec

from .conftest import FIXTURES, assert_wire_valid, loud_spans, read_events, read_wav
from .test_cli import TOOLS, run_cli

pytestmark = pytest.mark.timeout(60)
QUESTION = FIXTURES / "tone_440_16k_stereo.wav"  # 0.5 s silence, 1 s 440 Hz, 0.5 s silence: one VAD turn
ANSWERS = ["One moment.", "This is the weather desk.", "Let me look that up.", "It is sunny in Paris."]


def agents_pair(calls: list[str]) -> RealtimeAgent[Any]:
    """A triage agent that hands off to a weather agent with a tool."""

    @function_tool
    def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        calls.append(city)
        return {"city": city, "forecast": "sunny"}

    weather = RealtimeAgent(name="weather", instructions="Answer questions about the weather.", tools=[get_weather])
    return RealtimeAgent(name="triage", instructions="Send weather questions to the weather desk.", handoffs=[weather])


def spoken_turn(frequency: float = 300, seconds: float = 0.6) -> bytes:
    """A user turn as the SDK's `send_audio` takes it: PCM16, 24 kHz, then silence for the VAD."""
    return np.concatenate(
        [np.zeros(4800, np.int16), tone(frequency, seconds, API_RATE), np.zeros(24000, np.int16)]
    ).tobytes()


class Seen:
    """What the application sees of a `RealtimeSession`: every event, the audio by item, the transcripts."""

    def __init__(self, websocket: bool = False) -> None:
        self.websocket = websocket
        self.types: list[str] = []
        self.audio: dict[str, bytearray] = {}
        self.history: list[Any] = []
        self.errors: list[Any] = []
        self.handoffs: list[tuple[str, str]] = []
        self.interrupted: list[str] = []
        self.tripped: list[str] = []
        self.server: list[dict[str, Any]] = []

    def said(self) -> list[str]:
        return [
            c.transcript
            for item in self.history
            if getattr(item, "role", None) == "assistant"
            for c in item.content
            if getattr(c, "transcript", None)
        ]

    def seconds(self) -> float:
        return sum(len(b) for b in self.audio.values()) / 2 / API_RATE

    async def until(self, session: RealtimeSession, done: Callable[[], bool], timeout: float = 15) -> None:
        async def run() -> None:
            async for event in session:
                self.types.append(event.type)
                if event.type == "audio":
                    self.audio.setdefault(event.item_id, bytearray()).extend(event.audio.data)
                elif event.type == "history_updated":
                    self.history = list(event.history)
                elif event.type == "error":
                    self.errors.append(event.error)
                elif event.type == "handoff":
                    self.handoffs.append((event.from_agent.name, event.to_agent.name))
                elif event.type == "audio_interrupted":
                    self.interrupted.append(event.item_id)
                elif event.type == "guardrail_tripped":
                    self.tripped.append(event.message)
                elif event.type == "raw_model_event" and event.data.type == "raw_server_event":
                    self.server.append(event.data.data)
                if done():
                    return
            raise AssertionError(f"the session ended first; seen {self.types[-20:]}")

        await asyncio.wait_for(run(), timeout)

    def server_types(self) -> list[str]:
        return [e["type"] for e in self.server]

    def played(self) -> int:
        """Answers heard to the end: over WebRTC `output_audio_buffer.stopped`; over the WebSocket (no playout
        events) the answers whose audio is done."""
        if self.websocket:
            return self.types.count("audio_end")
        return self.server_types().count("output_audio_buffer.stopped")


def shape(history: list[Any]) -> list[tuple[Any, ...]]:
    """The SDK-level history without ids: type, role, tool name, arguments, output, and the words."""
    out = []
    for item in history:
        words = tuple(
            getattr(c, "transcript", None) or getattr(c, "text", None) for c in getattr(item, "content", None) or []
        )
        out.append(
            (
                item.type,
                getattr(item, "role", None),
                getattr(item, "name", None),
                getattr(item, "arguments", None),
                getattr(item, "output", None),
                words,
            )
        )
    return out


def client_sent(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["event"] for e in log if e["dir"] == "client" and e["event"]["type"] == kind]


def server_sent(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["event"] for e in log if e["dir"] == "server" and e["event"]["type"] == kind]


async def two_turns(session: RealtimeSession, seen: Seen, first: bytes | None = None) -> None:
    """The question (from the model's source, or `first` sent by the app), then the weather question by the app."""
    if first is not None:
        await session.send_audio(first)
    await seen.until(session, lambda: seen.said()[-1:] == [ANSWERS[1]] and seen.played() == 2)
    await session.send_audio(spoken_turn())
    await seen.until(session, lambda: seen.said()[-1:] == [ANSWERS[3]] and seen.played() == 4)


async def test_a_runner_over_webrtc_hands_off_and_the_sdk_runs_the_tool(voice_server: Any, tmp_path: Path) -> None:
    server = await voice_server(scenario=FIXTURES / "scenarios" / "agents.toml")
    calls: list[str] = []
    model = WebRTCModel(
        source=WavSource(QUESTION),
        output_wav=str(tmp_path / "answer.wav"),
        recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
    )
    session = await RealtimeRunner(agents_pair(calls), model=model).run(
        model_config={"api_key": "sk-test", "url": server.base_url}
    )
    seen = Seen()
    async with session:
        await two_turns(session, seen)
        call = model.call
        # over WebRTC, and voiceclient's own tool runner stayed off
        assert type(call.transport).__name__ == "WebRTCTransport" and call.tool_calls == 0
    assert calls == ["Paris"]  # the SDK ran the weather agent's tool with the model's arguments
    assert seen.handoffs == [("triage", "weather")]
    assert seen.said() == ANSWERS
    assert seen.types.index("tool_start") < seen.types.index("tool_end")
    assert seen.errors == [] and "exception" not in seen.types  # every event parsed by the SDK's own types
    # The handoff reached the server: the session now has the weather agent's instructions and tool.
    session_now = server.history[-1].session
    assert session_now["instructions"] == "Answer questions about the weather."
    assert [t["name"] for t in session_now["tools"]] == ["get_weather"]
    # The answers' audio reached the SDK as PCM (24 kHz), item by item: the scenario's 440 Hz tones, as long as
    # the server made them (60 ms a character).
    assert len(seen.audio) == 4
    for text, pcm in zip(ANSWERS, seen.audio.values()):
        samples = np.frombuffer(bytes(pcm), np.int16)
        assert abs(dominant_frequency(samples, API_RATE) - 440) < 5
        assert abs(samples.size / API_RATE - max(0.5, 0.06 * len(text))) < 0.15, (text, samples.size / API_RATE)
    log = read_events(tmp_path / "events.jsonl")
    outputs = [
        e["item"] for e in client_sent(log, "conversation.item.create") if e["item"]["type"] == "function_call_output"
    ]
    assert [json.loads(o["output"]) for o in outputs][1] == {"city": "Paris", "forecast": "sunny"}
    assert len(outputs) == 2  # the handoff's and the tool's: one output per call, the SDK's
    # Over WebRTC the audio is on the track: nothing appended, nothing truncated on the client's guess.
    assert not client_sent(log, "input_audio_buffer.append") and not client_sent(log, "conversation.item.truncate")
    assert_wire_valid(tmp_path / "events.jsonl")


async def test_the_same_conversation_over_the_sdks_websocket_model_gives_the_same_history(voice_server: Any) -> None:
    server = await voice_server(scenario=FIXTURES / "scenarios" / "agents.toml")
    histories = []
    for model_config, model in (
        ({"api_key": "sk-test", "url": f"{server.websocket_url}/realtime?model=gpt-realtime"}, None),
        ({"api_key": "sk-test", "url": server.base_url}, WebRTCModel(source=WavSource(QUESTION), playback=False)),
    ):
        calls: list[str] = []
        session = await RealtimeRunner(agents_pair(calls), model=model).run(model_config=model_config)  # type: ignore[arg-type]
        seen = Seen(websocket=model is None)
        async with session:
            await two_turns(session, seen, first=spoken_turn(440, 1.0) if model is None else None)
            await asyncio.sleep(0)
        assert calls == ["Paris"] and seen.handoffs == [("triage", "weather")] and seen.errors == []
        histories.append(shape(seen.history))
    websocket, webrtc = histories
    assert webrtc == websocket
    assert [h[0] for h in webrtc] == [
        "message",
        "message",
        "function_call",
        "message",
        "message",
        "message",
        "function_call",
        "message",
    ]


LONG_ANSWER = """
after_turns = "silence"
[[turns]]
text = "Here is a long story about the weather in Paris over the years."
tone = { frequency = 660, seconds = 4.0 }
"""


async def scripted(voice_server: Any, tmp_path: Path, scenario: str) -> tuple[Any, WebRTCModel]:
    """A server playing `scenario`, and a model that says the question and logs every event."""
    path = tmp_path / "scenario.toml"
    path.write_text(scenario)
    server = await voice_server(scenario=path)
    return server, WebRTCModel(
        source=WavSource(QUESTION), playback=False, recording=Recording(events_jsonl=tmp_path / "events.jsonl")
    )


async def test_an_interrupt_in_a_long_answer_stops_it_where_it_was_heard(voice_server: Any, tmp_path: Path) -> None:
    server, model = await scripted(voice_server, tmp_path, LONG_ANSWER)
    session = await RealtimeRunner(
        RealtimeAgent(name="storyteller", instructions="Tell long stories."), model=model
    ).run(model_config={"api_key": "sk-test", "url": server.base_url})
    seen = Seen()
    async with session:
        await seen.until(session, lambda: seen.seconds() >= 1.0)  # a second of the 4 s answer has played
        await session.interrupt()
        heard = seen.seconds()
        await seen.until(session, lambda: "conversation.item.truncated" in seen.server_types())
    (item_id,) = seen.audio
    assert seen.interrupted == [item_id]  # the app was told to stop its playback
    samples = np.frombuffer(bytes(seen.audio[item_id]), np.int16)
    assert abs(dominant_frequency(samples, API_RATE) - 660) < 5
    assert samples.size / API_RATE < heard + 0.3  # the audio stopped at the interrupt (of 4 s)
    log = read_events(tmp_path / "events.jsonl")
    assert len(client_sent(log, "output_audio_buffer.clear")) == 1
    # The server had made the whole answer before it had played a second of it: there was no response to cancel.
    (done,) = server_sent(log, "response.done")
    assert done["response"]["status"] == "completed" and not client_sent(log, "response.cancel")
    (truncated,) = server_sent(log, "conversation.item.truncated")
    assert truncated["item_id"] == item_id and abs(truncated["audio_end_ms"] / 1000 - heard) < 0.3
    assert not client_sent(log, "conversation.item.truncate")  # the server truncated, from what it played
    assert_wire_valid(tmp_path / "events.jsonl")


GUARDED = """
after_turns = "silence"
[[turns]]
text = "The secret password is swordfish, and more words follow it here."
tone = { frequency = 550, seconds = 3.0 }
"""


async def test_an_output_guardrail_stops_the_answer(voice_server: Any, tmp_path: Path) -> None:
    server, model = await scripted(voice_server, tmp_path, GUARDED)

    @output_guardrail
    def no_secrets(ctx: Any, agent: Any, text: str) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="swordfish" in text)

    agent = RealtimeAgent(name="desk", instructions="Never tell secrets.", output_guardrails=[no_secrets])
    session = await RealtimeRunner(
        agent, model=model, config={"guardrails_settings": {"debounce_text_length": 20}}
    ).run(model_config={"api_key": "sk-test", "url": server.base_url})
    seen = Seen()
    async with session:
        await seen.until(session, lambda: bool(seen.tripped))
        await seen.until(session, lambda: seen.server_types().count("response.done") >= 2)  # and the feedback's
    assert "swordfish" in seen.tripped[0]
    assert seen.seconds() < 1.5  # of the 3 s answer
    log = read_events(tmp_path / "events.jsonl")
    (cancel,) = client_sent(log, "response.cancel")
    first = server_sent(log, "response.done")[0]["response"]
    assert cancel.get("response_id") == first["id"]
    # The server may have made the whole answer before the guardrail ran (it makes audio faster than it plays,
    # as the real service does): then the cancel is refused, and the audio is stopped all the same.
    refused = [e for e in server_sent(log, "error") if e["error"]["code"] == "response_cancel_not_active"]
    assert first["status"] == "cancelled" or refused
    assert len(client_sent(log, "output_audio_buffer.clear")) == 1
    feedback = [e["item"]["content"][0]["text"] for e in client_sent(log, "conversation.item.create")]
    assert feedback == ["guardrail triggered: no_secrets"]  # the SDK told the model, as it does
    assert_wire_valid(tmp_path / "events.jsonl")


async def test_audio_from_the_app_is_sent_on_the_track_and_committed_after_it(
    voice_server: Any, tmp_path: Path
) -> None:
    """Push-to-talk: no turn detection; the app sends 1 s of 520 Hz and commits; the echo answer is that second."""
    server = await voice_server()
    model = WebRTCModel(
        playback=False,
        source=WavSource(FIXTURES / "tone_880_44k_float.wav"),
        recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
    )
    session = await RealtimeRunner(RealtimeAgent(name="echo", instructions="Repeat."), model=model).run(
        model_config={"api_key": "sk-test", "url": server.base_url, "initial_model_settings": {"turn_detection": None}}
    )
    seen = Seen()
    async with session:
        await asyncio.sleep(0)
        await session.send_audio(tone(520, 1.0, API_RATE).tobytes(), commit=True)
        await session.model.send_event(RealtimeModelSendRawMessage(message={"type": "response.create"}))
        await seen.until(session, lambda: "output_audio_buffer.stopped" in seen.server_types())
    (pcm,) = seen.audio.values()
    samples = np.frombuffer(bytes(pcm), np.int16)
    assert abs(dominant_frequency(samples, API_RATE) - 520) < 5  # the app's audio, not the WAV source's 880 Hz
    loud = np.abs(samples.astype(np.int32)) > 1000
    assert 0.9 < np.count_nonzero(loud) / API_RATE < 1.1 or abs(samples.size / API_RATE - 1.0) < 0.15
    log = read_events(tmp_path / "events.jsonl")
    assert len(client_sent(log, "input_audio_buffer.commit")) == 1 and not client_sent(log, "input_audio_buffer.append")


class StatusListener(RealtimeModelListener):
    """The model's connection status events (the SDK's session does not pass them on)."""

    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.changed = asyncio.Event()

    async def on_event(self, event: RealtimeModelEvent) -> None:
        if event.type == "connection_status":
            self.statuses.append(event.status)
            self.changed.set()

    async def until(self, statuses: list[str], timeout: float = 20) -> None:
        async def wait() -> None:
            while self.statuses != statuses:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def test_a_reconnect_is_connection_status_and_the_conversation_goes_on(voice_server: Any) -> None:
    """The connection drops after the handoff's two responses; the call reconnects with the conversation replayed
    (typed turns: a replayed audio turn without a transcript is not carried) and the weather agent's session."""
    server = await voice_server(
        scenario=FIXTURES / "scenarios" / "agents.toml",
        faults=[FaultSpec(action="drop_connection", call=1, after_turns=2)],
    )
    calls: list[str] = []
    listener = StatusListener()
    model = WebRTCModel(source=SilenceSource(), playback=False, continuity=Continuity(reconnect=2, media_timeout=1.0))
    model.add_listener(listener)
    session = await RealtimeRunner(agents_pair(calls), model=model).run(
        model_config={"api_key": "sk-test", "url": server.base_url}
    )
    seen = Seen()
    async with session:
        await session.send_message("What is the weather like?")
        await seen.until(session, lambda: seen.said()[-1:] == [ANSWERS[1]])
        await listener.until(["connecting", "connected", "connecting", "connected"])
        assert model.call.switches == 1 and model.call.replayed == 5
        await session.send_message("In Paris, please.")
        await seen.until(session, lambda: seen.said()[-1:] == [ANSWERS[3]])
    assert calls == ["Paris"] and seen.errors == []
    assert len(server.history) == 2
    # the new connection got the weather agent's session (the handoff's update) before the conversation
    assert [t["name"] for t in server.history[-1].session["tools"]] == ["get_weather"]
    users = [it for it in server.history[-1].conversation.items if it.get("role") == "user"]
    assert [it["content"][0]["text"] for it in users] == ["What is the weather like?", "In Paris, please."]


async def test_a_call_that_fails_ends_the_sdks_stream_with_the_reason(voice_server: Any) -> None:
    server = await voice_server(faults=[FaultSpec(action="drop_connection", call=1, at_seconds=0.5)])
    model = WebRTCModel(source=WavSource(QUESTION), playback=False, continuity=Continuity(reconnect=0))
    session = await RealtimeRunner(RealtimeAgent(name="a"), model=model).run(
        model_config={"api_key": "sk-test", "url": server.base_url}
    )
    async with session:
        with pytest.raises(ConnectionLostError, match="the oai-events data channel closed"):
            await Seen().until(session, lambda: False)  # the SDK raises what ended the call
    assert model._call is None  # and the session's exit closed the model


async def test_bad_input_is_a_clear_error(voice_server: Any) -> None:
    assert base_url_from("wss://api.openai.com/v1/realtime?model=gpt-realtime") == "https://api.openai.com/v1"
    assert base_url_from("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    with pytest.raises(UserError, match="neither an http"):
        base_url_from("ftp://example.com")
    server = await voice_server(api_key="sk-right")
    with pytest.raises(UserError, match="makes its own call"):
        async with await RealtimeRunner(RealtimeAgent(name="a"), model=WebRTCModel(playback=False)).run(
            model_config={"api_key": "sk-test", "call_id": "rtc_u1_x"}
        ):
            pass
    model = WebRTCModel(source=WavSource(QUESTION), playback=False)
    with pytest.raises(AuthenticationError):
        async with await RealtimeRunner(RealtimeAgent(name="a"), model=model).run(
            model_config={"api_key": "sk-wrong", "url": server.base_url}
        ):
            pass
    # the model is reusable after a failed connect, as the SDK's is
    async with await RealtimeRunner(RealtimeAgent(name="a"), model=model).run(
        model_config={"api_key": "sk-right", "url": server.base_url}
    ):
        assert model.call.call_id is not None


def two_questions(path: Path) -> Path:
    """Two user turns, the second after the first's two answers have played: 24 kHz mono."""
    pcm = np.concatenate(
        [
            np.zeros(6000, np.int16),
            tone(440, 1.0, API_RATE),
            np.zeros(5 * API_RATE, np.int16),
            tone(440, 1.0, API_RATE),
            np.zeros(API_RATE, np.int16),
        ]
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(API_RATE)
        w.writeframes(pcm.tobytes())
    return path


async def test_voiceclient_call_with_an_agent(voice_server: Any, tmp_path: Path) -> None:
    server = await voice_server(scenario=FIXTURES / "scenarios" / "agents.toml")
    code, out, err = await run_cli(
        "call",
        "--agent",
        f"{FIXTURES}/agents/weather.py:triage",
        "--input",
        str(two_questions(tmp_path / "q.wav")),
        "--output",
        str(tmp_path / "answer.wav"),
        "--events",
        str(tmp_path / "events.jsonl"),
        "--base-url",
        server.base_url,
        "--api-key",
        "sk-test",
        "--idle-exit",
        "1.5",
        "--voice",
        "marin",
    )
    assert code == 0, err
    lines = [line.split("] ", 1)[1] for line in out.splitlines() if "] " in line]
    assert "agent: handoff triage -> weather" in lines
    assert 'agent: weather calls get_weather({"city": "Paris"})' in lines
    assert any(line.startswith("agent: get_weather -> ") and "sunny" in line for line in lines)
    assert [line for line in lines if line.startswith("assistant:")] == [f"assistant: {a}" for a in ANSWERS]
    assert not [line for line in lines if "not a tool of this client" in line]  # the SDK owns the tools
    assert server.history[-1].session["audio"]["output"]["voice"] == "marin"  # the flags apply over the agent's
    assert_wire_valid(tmp_path / "events.jsonl")


async def test_voiceclient_call_with_a_bad_agent_says_why(tmp_path: Path) -> None:
    wav = str(two_questions(tmp_path / "q.wav"))
    tools = tmp_path / "weather_tools.py"
    tools.write_text(TOOLS)
    for agent, extra, message in (
        ("nosuch_module_here:agent", [], "--agent nosuch_module_here:agent: cannot import nosuch_module_here"),
        (f"{FIXTURES}/agents/weather.py:nobody", [], "weather.py has no nobody"),
        (f"{FIXTURES}/agents/weather.py:get_weather", [], "expected a RealtimeAgent, not FunctionTool"),
        ("triage", [], "expected module:attr"),
        (f"{FIXTURES}/agents/weather.py:triage", ["--tools", str(tools)], "not both"),
    ):
        code, _out, err = await run_cli(
            "call", "--agent", agent, "--input", wav, *extra, "--base-url", "http://127.0.0.1:9/v1"
        )
        assert code == 2, (agent, err)
        assert err.strip().splitlines() == [f"voiceclient: error: {err.split('error: ', 1)[1].strip()}"]
        assert message in err, err


async def test_the_readme_example_against_voiceclient_serve(voice_server: Any, tmp_path: Path) -> None:
    server = await voice_server(scenario=FIXTURES / "scenarios" / "agents.toml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FIXTURES.parent / "scripts" / "agents_example.py"),
        "--base-url",
        server.base_url,
        "--input",
        str(QUESTION),
        "--output",
        str(tmp_path / "answer.wav"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 45)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    # The SDK runs a tool (the handoff is one) when its call arrives and ends the agent's turn at `response.done`, on
    # two tasks: which of each pair of lines comes first is the SDK's scheduling (both orders seen under load), not
    # the conversation's order.
    assert sorted(lines[:2]) == ["handoff: triage -> weather", "triage: One moment."]
    assert lines[2] == "weather: This is the weather desk."
    assert sorted(lines[3:5]) == [
        "tool: get_weather -> {'city': 'Paris', 'forecast': 'sunny'}",
        "weather: Let me look that up.",
    ]
    assert lines[5:] == ["weather: It is sunny in Paris."]
    pcm = read_wav(tmp_path / "answer.wav")[0][:, 0]
    answered = sum(b - a for a, b in loud_spans(pcm, API_RATE))
    assert 4.3 < answered < 5.0  # the four answers, played to the end (0.66 + 1.5 + 1.2 + 1.26 s)


async def test_the_url_and_key_come_from_the_sdks_options_or_the_environment(
    voice_server: Any, monkeypatch: Any
) -> None:
    server = await voice_server(api_key="sk-right")
    agent = RealtimeAgent(name="a")
    # the SDK's `headers` carry the credential (as for Azure's `api-key`): no Authorization is made up
    model = WebRTCModel(source=SilenceSource(), playback=False)
    async with await RealtimeRunner(agent, model=model).run(
        model_config={"url": server.base_url, "headers": {"Authorization": "Bearer sk-right"}}
    ):
        assert model.call.settings.api_key is None and model.call.call_id is not None
    # nothing given: OPENAI_BASE_URL and OPENAI_API_KEY, as the SDK and voiceclient read them
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    model = WebRTCModel(source=SilenceSource(), playback=False)
    async with await RealtimeRunner(agent, model=model).run():
        assert model.call.settings.base_url == server.base_url
    # the SDK's own WebSocket URL is accepted too, and names the same server
    monkeypatch.delenv("OPENAI_BASE_URL")
    model = WebRTCModel(source=SilenceSource(), playback=False)
    ws = server.base_url.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    async with await RealtimeRunner(agent, model=model).run(model_config={"url": ws}):
        assert model.call.settings.base_url == server.base_url


TOOL_THEN_LONG_ANSWER = """
after_turns = "silence"
[[turns]]
text = "Let me look that up."
  [[turns.calls]]
  name = "get_weather"
  arguments = { city = "Paris" }
  [turns.after_tools]
  text = "It is {output[forecast]} in {output[city]}, and here is a long story about its weather."
  tone = { frequency = 660, seconds = 4.0 }
"""


async def test_a_tool_call_turn_then_an_interrupt_through_the_sdks_session(voice_server: Any, tmp_path: Path) -> None:
    """One turn through the SDK's `RealtimeSession` over WebRTC, on the model's public interface alone: the user's
    message, the model's function call, the SDK's tool and its output, the answer after it (asked for only once the
    first response is done), then `session.interrupt()` a second into that answer."""
    server, model = await scripted(voice_server, tmp_path, TOOL_THEN_LONG_ANSWER)
    calls: list[str] = []
    weather = agents_pair(calls).handoffs[0]
    assert isinstance(weather, RealtimeAgent)
    session = await RealtimeRunner(weather, model=model).run(
        model_config={"api_key": "sk-test", "url": server.base_url, "initial_model_settings": {"turn_detection": None}}
    )
    seen = Seen()
    async with session:
        await session.send_message("What is the weather in Paris?")
        await seen.until(session, lambda: "tool_end" in seen.types and len(seen.audio) == 2 and seen.seconds() >= 2.0)
        answer_item = list(seen.audio)[1]
        await session.interrupt()
        heard = len(seen.audio[answer_item]) / 2 / API_RATE
        await seen.until(session, lambda: "conversation.item.truncated" in seen.server_types())
        await seen.until(session, lambda: any(i.type == "function_call" and i.output for i in seen.history))
    # the session's exit closed the model: nothing of it still runs, and closing again is nothing
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("WebRTCModel")]
    await model.close()
    assert calls == ["Paris"] and seen.errors == [] and "exception" not in seen.types
    assert seen.interrupted == [answer_item]
    (tool_item,) = [i for i in seen.history if i.type == "function_call"]
    assert tool_item.name == "get_weather" and json.loads(tool_item.arguments) == {"city": "Paris"}
    assert json.loads(tool_item.output) == {"city": "Paris", "forecast": "sunny"}  # the SDK's output of the tool
    samples = np.frombuffer(bytes(seen.audio[answer_item]), np.int16)
    assert abs(dominant_frequency(samples, API_RATE) - 660) < 5 and samples.size / API_RATE < heard + 0.3
    log = read_events(tmp_path / "events.jsonl")
    order = [
        (e["dir"], e["event"]["type"])
        for e in log
        if e["event"]["type"] in ("response.create", "response.done", "conversation.item.create")
    ]
    # the message and its response; the tool's output, and the response after it only once the first is done
    assert order == [
        ("client", "conversation.item.create"),
        ("client", "response.create"),
        ("client", "conversation.item.create"),
        ("server", "response.done"),
        ("client", "response.create"),
        ("server", "response.done"),
    ] or order == [
        ("client", "conversation.item.create"),
        ("client", "response.create"),
        ("server", "response.done"),
        ("client", "conversation.item.create"),
        ("client", "response.create"),
        ("server", "response.done"),
    ], order
    (truncated,) = server_sent(log, "conversation.item.truncated")
    assert truncated["item_id"] == answer_item and abs(truncated["audio_end_ms"] / 1000 - heard) < 0.3
    assert len(client_sent(log, "output_audio_buffer.clear")) == 1 and not client_sent(
        log, "conversation.item.truncate"
    )
    assert_wire_valid(tmp_path / "events.jsonl")


async def session_held(model: WebRTCModel | None, model_config: Any, updates: int) -> dict[str, Any]:
    """The session the server confirmed last, once `model` (None: the SDK's WebSocket model) has connected with
    the triage agent and has had `updates` session updates confirmed."""
    session = await RealtimeRunner(agents_pair([]), model=model).run(model_config=model_config)
    seen = Seen()
    async with session:
        await seen.until(session, lambda: seen.server_types().count("session.updated") >= updates)
    last = [e for e in seen.server if e["type"] == "session.updated"][-1]["session"]
    return {k: v for k, v in last.items() if k not in ("id", "object", "expires_at", "model")}


async def test_the_session_is_the_one_the_sdks_websocket_model_sends(voice_server: Any) -> None:
    """The session the server holds once each model has connected with the same agent and settings: the same
    (but the model's name: the SDK's model names its default one, `WebRTCModel` leaves it to the server)."""
    server = await voice_server()
    settings = {"voice": "marin", "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}
    # the SDK's WebSocket model sends the agent's session, then the tracing apart (after session.created)
    websocket = await session_held(
        None,
        {
            "api_key": "sk-test",
            "url": f"{server.websocket_url}/realtime?model=gpt-realtime",
            "initial_model_settings": settings,
        },
        updates=2,
    )
    webrtc = await session_held(
        WebRTCModel(source=SilenceSource(), playback=False),
        {"api_key": "sk-test", "url": server.base_url, "initial_model_settings": settings},
        updates=1,
    )
    assert webrtc == websocket
    assert webrtc["instructions"] == "Send weather questions to the weather desk."
    assert [t["name"] for t in webrtc["tools"]] == ["transfer_to_weather"]
    assert webrtc["audio"]["output"]["voice"] == "marin" and webrtc["tracing"] == "auto"
