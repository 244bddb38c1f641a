"""GPT-Live WebSocket sessions (`GET /v1/live/sessions`) driven by the official openai SDK's `client.live.connect`,
unchanged, over real HTTP on 127.0.0.1. Every event the server sends is validated against the SDK's own
`openai.types.live.ServerEvent` union (the schema oracle) before a test looks at it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import resample
from voiceclient.audio.sources import load_audio
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(60)
AGENT_RULES = """
[[rules]]
pattern = "."
say = "Let me check that."
call = { name = "look_up", arguments = { what = "{transcript}" } }
"""


def silence(seconds: float, rate: int = API_RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


@functools.cache
def sdk_server_events() -> Any:
    """The SDK's server event union as a validator (built once: it takes seconds)."""
    from openai.types.live import ServerEvent
    from pydantic import TypeAdapter

    return TypeAdapter(ServerEvent)


class LiveWire:
    """The SDK's connection, with every received event validated against `openai.types.live.ServerEvent`."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.adapter = sdk_server_events()
        self.seen: list[Any] = []

    async def recv(self, timeout: float = 10) -> Any:
        data = await asyncio.wait_for(self.conn.recv_bytes(), timeout)
        event = self.adapter.validate_json(data)
        assert json.loads(data)["event_id"].startswith("event_")
        self.seen.append(event)
        return event

    async def until(self, kind: str, timeout: float = 10) -> list[Any]:
        """The events up to and including the next one of `kind`."""
        got = []
        while True:
            event = await self.recv(timeout)
            got.append(event)
            if event.type == kind:
                return got

    async def append(self, pcm: np.ndarray, chunk_ms: int = 50, rate: int = API_RATE, law: str | None = None) -> None:
        """Audio in the session's format, in 50 ms frames (as the captured session sent them)."""
        step = rate * chunk_ms // 1000
        for i in range(0, pcm.size, step):
            piece = pcm[i : i + step]
            data = g711.encode(piece, law) if law else piece.astype("<i2").tobytes()
            await self.conn.session.input_audio.append(audio=base64.b64encode(data).decode())


def sdk(server: RealtimeServer, key: str = "sk-test") -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key=key, base_url=server.base_url)


@contextlib.asynccontextmanager
async def live_session(server: RealtimeServer, **session: Any) -> AsyncIterator[tuple[Any, LiveWire, Any]]:
    """An SDK Live session past its `session.started`: (connection, wire, the started event)."""
    client = sdk(server)
    try:
        async with client.live.connect() as conn:
            wire = LiveWire(conn)
            await conn.session.start(session={"model": "gpt-live-1", **session})
            started = await wire.recv()
            assert started.type == "session.started"
            yield conn, wire, started
    finally:
        await client.close()


async def test_the_sdk_starts_a_session_speaks_hears_the_echo_and_closes(server: RealtimeServer) -> None:
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)
    session = {"instructions": "Be brief.", "audio": {"output": {"voice": "cedar"}}}
    async with live_session(server, **session) as (conn, wire, started):
        resource = started.session
        assert resource.id.startswith("live_") and resource.model == "gpt-live-1" and resource.status == "active"
        assert resource.instructions == "Be brief." and resource.audio.output.voice == "cedar"
        assert resource.audio.format.type == "audio/pcm" and resource.audio.format.rate == 24000
        assert resource.delegation.type == "client" and resource.input == []
        assert resource.expires_at > 0
        await wire.append(np.concatenate([silence(0.3), speech, silence(1.0)]))
        events = await wire.until("session.usage.updated")
        kinds = {e.type for e in events}
        assert "session.output_audio.delta" in kinds and "session.output_transcript.delta" in kinds
        assert not any(k.startswith(("input_audio_buffer.", "response.", "conversation.")) for k in kinds)
        said = "".join(e.delta for e in events if e.type == "session.output_transcript.delta")
        assert said.startswith("Echo of ")
        words = [e for e in events if e.type == "session.output_transcript.delta"]
        assert all(w.start_ms <= w.end_ms for w in words) and words == sorted(words, key=lambda w: w.start_ms)
        # The echo is the user's turn, sample for sample (the speech is in it).
        echoed = np.frombuffer(
            b"".join(base64.b64decode(e.delta) for e in events if e.type == "session.output_audio.delta"), "<i2"
        )
        assert echoed.size >= np.ptp(np.flatnonzero(speech))
        await conn.session.close(event_id="bye")
        closed = await wire.until("session.closed")
        assert closed[-1].reason == "close_requested" and closed[-1].session.id == resource.id
        assert closed[-1].usage.seconds >= 0
        with pytest.raises(ConnectionClosed) as ended:  # then the server closes the socket
            await wire.recv(timeout=5)
        assert ended.value.rcvd is not None and ended.value.rcvd.code == 1000
    assert server.history[-1].closed.is_set()


async def test_the_user_speaking_stops_the_answers_audio() -> None:
    """With the answer's audio paced (`--pace-websocket-audio`), a turn during it stops the deltas: the rest of
    the echo is never sent."""
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)
    long_turn = np.concatenate([speech, speech, speech])  # an echo of several seconds
    async with RealtimeServer(port=0, pace_websocket_audio=True) as server:
        async with live_session(server) as (conn, wire, _):
            await wire.append(np.concatenate([silence(0.3), long_turn, silence(1.0)]))
            await wire.until("session.output_audio.delta")
            await wire.append(np.concatenate([speech[: API_RATE // 2], silence(1.0)]))  # barge-in, then a turn
            events = await wire.until("session.usage.updated", timeout=20)  # the first answer ended
            sent = sum(len(base64.b64decode(e.delta)) for e in wire.seen if e.type == "session.output_audio.delta")
            assert sent / 2 < long_turn.size / 2  # well short of the whole echo
            said = "".join(e.delta for e in events if e.type == "session.output_transcript.delta")
            assert said.startswith("Echo of ")
            await conn.session.close()
            await wire.until("session.closed", timeout=20)


async def test_g711_and_16_khz_sessions_take_and_give_audio_in_their_format(server: RealtimeServer) -> None:
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)
    for fmt, rate, law, width in (
        ({"type": "audio/pcmu"}, 8000, "ulaw", 1),
        ({"type": "audio/pcm", "rate": 16000}, 16000, None, 2),
    ):
        async with live_session(server, audio={"format": fmt}) as (_, wire, started):
            assert started.session.audio.format.rate == rate
            pcm = resample(np.concatenate([silence(0.3), speech, silence(1.0)]), API_RATE, rate)
            await wire.append(pcm, rate=rate, law=law)
            events = await wire.until("session.usage.updated")
            audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "session.output_audio.delta")
            seconds = len(audio) / width / rate
            assert seconds >= speech.size / API_RATE * 0.9  # the echo, in the session's own format


async def test_mute_instructions_and_thinking_are_acknowledged_with_the_clients_ids(
    server: RealtimeServer,
) -> None:
    async with live_session(server) as (conn, wire, _):
        await conn.session.input_audio.mute(event_id="m1")
        muted = await wire.recv()
        assert muted.type == "session.input_audio.muted" and muted.client_event_id == "m1"
        await conn.session.instructions.append(content="Speak French.", delegation_id=None, event_id="i1")
        appended = await wire.recv()
        assert appended.type == "session.instructions.appended" and appended.client_event_id == "i1"
        assert appended.start_ms <= appended.end_ms
        await conn.session.thinking.append(content="The user is in Paris.", delegation_id=None, event_id="t1")
        thought = await wire.recv()
        assert thought.type == "session.thinking.appended" and thought.client_event_id == "t1"
        await conn.session.input_audio.unmute(event_id="u1")
        assert (await wire.recv()).type == "session.input_audio.unmuted"
        await conn.session.close()
        closed = await wire.until("session.closed")
        assert not any(e.type == "session.output_audio.delta" for e in closed)  # thinking is silent


async def test_a_planned_tool_call_is_delegated_and_the_commentary_is_spoken(tmp_path: Any) -> None:
    from voiceclient.speech.agent import AgentResponder

    rules = tmp_path / "agent.toml"
    rules.write_text(AGENT_RULES)
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)

    class Heard(AgentResponder):  # (no speech-to-text here: the turn is heard as this)
        listens = False

        def plan(self, ctx: Any) -> Any:
            ctx.transcript = ctx.transcript or "what is the weather"
            return super().plan(ctx)

    responder = Heard.from_file(rules)
    async with RealtimeServer(port=0, responder=responder) as server:
        async with live_session(server) as (conn, wire, _):
            await wire.append(np.concatenate([silence(0.3), speech, silence(1.0)]))
            events = await wire.until("session.delegation.created")
            created = events[-1]
            assert created.delegation.target == "client" and created.delegation.type == "delegation"
            assert created.offset_ms >= 0
            await wire.until("session.usage.updated")
            await conn.session.commentary.append(
                content="It is sunny in Paris.", delegation_id=created.delegation.id, event_id="c1"
            )
            appended = await wire.until("session.commentary.appended")
            assert appended[-1].client_event_id == "c1"
            spoken = await wire.until("session.usage.updated")
            said = "".join(e.delta for e in spoken if e.type == "session.output_transcript.delta")
            assert said == "It is sunny in Paris."
            assert any(e.type == "session.output_audio.delta" for e in spoken)
            await conn.session.close()
            await wire.until("session.closed")


WEATHER_RULES = """
[[rules]]
pattern = "."
say = "Let me check."
call = { name = "get_weather", arguments = { city = "Paris" } }
answer = "It is {output[forecast]} in Paris."
"""


@functools.cache
def sdk_responses_events() -> Any:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    return TypeAdapter(ResponseStreamEvent)


async def test_the_sdk_drives_the_responses_tool_loop_by_hand(tmp_path: Any) -> None:
    """Responses delegation: the agent's rule calls the backend's function tool, the call comes in
    `response.event` envelopes, the SDK answers it (`response.item.create`, then `response.create`), and the
    backend's answer, the rule's template filled with the tool's output, is spoken."""
    from voiceclient.speech.agent import AgentResponder

    rules = tmp_path / "agent.toml"
    rules.write_text(WEATHER_RULES)
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)

    class Heard(AgentResponder):  # (no speech-to-text here: the turn is heard as this)
        listens = False

        def plan(self, ctx: Any) -> Any:
            ctx.transcript = ctx.transcript or "what is the weather"
            return super().plan(ctx)

    delegation = {
        "type": "responses",
        "responses": {
            "model": "gpt-5.5",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        },
    }
    async with RealtimeServer(port=0, responder=Heard.from_file(rules)) as server:
        async with live_session(server, delegation=delegation) as (conn, wire, started):
            assert started.session.delegation.type == "responses"
            assert started.session.delegation.responses.model == "gpt-5.5"
            await wire.append(np.concatenate([silence(0.3), speech, silence(1.0)]))
            events = await wire.until("session.delegation.created")
            created = events[-1].delegation
            assert created.target == "responses" and created.response_id is not None
            calls = []
            while True:  # the backend's first response, to its end
                event = await wire.recv()
                if event.type != "response.event":
                    continue
                assert event.delegation_id == created.id
                nested = sdk_responses_events().validate_python(event.event)
                if nested.type == "response.output_item.done" and nested.item.type == "function_call":
                    calls.append(nested.item)
                if nested.type == "response.completed":
                    assert nested.response.id == created.response_id
                    break
            assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
            await wire.until("session.usage.updated")  # (the voice response that delegated ends)
            output = json.dumps({"forecast": "sunny"})
            await conn.response.item.create(
                item={"type": "function_call_output", "call_id": calls[0].call_id, "output": output}
            )
            await conn.response.create(event_id="go")
            answer = await wire.until("session.usage.updated")
            assert not any(e.type == "error" for e in answer)
            written = [sdk_responses_events().validate_python(e.event) for e in answer if e.type == "response.event"]
            message = next(e.item for e in written if e.type == "response.output_item.done")
            assert message.type == "message" and message.content[0].text == "It is sunny in Paris."
            said = "".join(e.delta for e in answer if e.type == "session.output_transcript.delta")
            assert said == "It is sunny in Paris."
            assert any(e.type == "session.output_audio.delta" for e in answer)
            await conn.session.close()
            await wire.until("session.closed")


async def test_errors_before_start_for_unknown_events_and_for_a_model_that_is_not_live(
    server: RealtimeServer,
) -> None:
    client = sdk(server)
    try:
        async with client.live.connect() as conn:
            wire = LiveWire(conn)
            await conn.send({"type": "session.input_audio.mute", "event_id": "early"})  # before session.start
            early = await wire.recv()
            assert early.type == "error" and early.error.code == "session_not_started"
            assert early.error.client_event_id == "early"
            await conn.session.start(session={"model": "gpt-live-1", "voice": "marin"})
            unknown = await wire.recv()
            assert unknown.error.code == "unknown_parameter" and unknown.error.param == "session.voice"
            await conn.session.start(session={"model": "gpt-live-1"})
            assert (await wire.recv()).type == "session.started"
            await conn.send_raw(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c"}))
            refused = await wire.recv()
            assert refused.error.code == "invalid_value" and refused.error.client_event_id == "c"
            assert "session.commentary.append" in refused.error.message and "session.close" in refused.error.message
            await conn.send({"type": "response.create", "event_id": "r"})
            refused = await wire.recv()
            assert refused.error.message == "response.create requires Responses delegation."
        async with client.live.connect() as conn:
            wire = LiveWire(conn)
            await conn.session.start(session={"model": "gpt-realtime"})
            bad = await wire.recv()
            assert bad.type == "error" and bad.error.code == "model_not_found"
            with pytest.raises(ConnectionClosed) as ended:
                await wire.recv(timeout=5)  # then the socket closes, as the Realtime path does
            assert ended.value.rcvd is not None and ended.value.rcvd.code == 3000
    finally:
        await client.close()


@pytest.mark.agent
async def test_the_offline_agent_hears_the_turn_delegates_and_speaks_the_commentary(
    voice_server: Any, tmp_path: Any
) -> None:
    """The whole path with the offline speech: the user's words as input transcript deltas, the agent's rule
    delegating the task (a tool no session declared), and the application's commentary spoken in a voice."""
    rules = tmp_path / "agent.toml"
    rules.write_text(
        '[[rules]]\npattern = "(?P<what>fox)"\nsay = "Let me check."\n'
        'call = { name = "look_up", arguments = { what = "{what}" } }\n'
    )
    server = await voice_server(scenario=rules)
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)
    async with live_session(server) as (conn, wire, _):
        await wire.append(np.concatenate([silence(0.3), speech, silence(1.2)]))
        events = await wire.until("session.delegation.created", timeout=60)
        heard = "".join(e.delta for e in events if e.type == "session.input_transcript.delta")
        assert "fox" in heard.lower()
        assert all(e.start_ms <= e.end_ms for e in events if e.type == "session.input_transcript.delta")
        said = "".join(e.delta for e in events if e.type == "session.output_transcript.delta")
        assert said == "Let me check."
        await wire.until("session.usage.updated", timeout=60)
        delegation = events[-1].delegation.id
        await conn.session.commentary.append(content="The fox is brown.", delegation_id=delegation)
        spoken = await wire.until("session.usage.updated", timeout=60)
        assert "".join(e.delta for e in spoken if e.type == "session.output_transcript.delta") == "The fox is brown."
        audio = b"".join(base64.b64decode(e.delta) for e in spoken if e.type == "session.output_audio.delta")
        assert len(audio) / 2 / API_RATE > 0.5  # spoken in a voice, not a blip
        await conn.session.close()
        await wire.until("session.closed")
