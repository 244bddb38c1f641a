"""WebSocket sessions (`GET /v1/realtime?model=M`) driven by the official openai SDK, unchanged, over real HTTP on
127.0.0.1. Every server event a test reads is validated against the SDK's own types (the schema oracle)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, VoiceCall
from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.audio.resample import resample
from voiceclient.audio.sources import load_audio
from voiceclient.client.options import Recording
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(60)
SCENARIO = """
after_turns = "repeat"
[[turns]]
text = "Let me look that up."
  [[turns.calls]]
  name = "get_weather"
  arguments = { city = "Paris" }
  [turns.after_tools]
  text = "It is {output[forecast]} in {output[city]}."
"""


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * API_RATE), np.int16)


class Wire:
    """The SDK's connection, with every received event validated against `RealtimeServerEvent` first."""

    def __init__(self, conn: Any) -> None:
        from openai.types.realtime import RealtimeServerEvent
        from pydantic import TypeAdapter

        self.conn = conn
        self.adapter: Any = TypeAdapter(RealtimeServerEvent)
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

    async def append(self, pcm: np.ndarray, chunk: int = 2400, law: str | None = None) -> None:
        for i in range(0, pcm.size, chunk):
            piece = pcm[i : i + chunk]
            data = g711.encode(piece, law) if law else piece.astype("<i2").tobytes()
            await self.conn.input_audio_buffer.append(audio=base64.b64encode(data).decode())


def audio_of(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")


def sdk(server: RealtimeServer, key: str = "sk-test") -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key=key, base_url=server.base_url)


@contextlib.asynccontextmanager
async def session_of(
    server: RealtimeServer, model: str = "gpt-realtime", **session: Any
) -> AsyncIterator[tuple[Any, Wire]]:
    """An SDK WebSocket session past its `session.created` (and, given fields, its `session.updated`)."""
    client = sdk(server)
    try:
        async with client.realtime.connect(model=model) as conn:
            wire = Wire(conn)
            assert (await wire.recv()).type == "session.created"
            if session:
                await conn.session.update(session={"type": "realtime", **session})
                await wire.until("session.updated")
            yield conn, wire
    finally:
        await client.close()


async def test_a_voice_turn_over_the_sdk_comes_back_as_audio_deltas_and_a_transcript(server: RealtimeServer) -> None:
    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)
    client = sdk(server)
    async with client.realtime.connect(model="gpt-realtime-mini") as conn:
        wire = Wire(conn)
        created = await wire.recv()
        assert created.type == "session.created" and created.session.model == "gpt-realtime-mini"
        assert created.session.audio.input.format.type == "audio/pcm"
        await wire.append(np.concatenate([silence(0.3), speech, silence(0.8)]))  # faster than real time
        events = await wire.until("response.done")
        kinds = [e.type for e in events if e.type != "response.output_audio.delta"]
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
        assert [k for k in kinds if k in order] == order
        deltas = [i for i, e in enumerate(events) if e.type == "response.output_audio.delta"]
        assert deltas and deltas[-1] < [e.type for e in events].index("response.output_audio.done")
        assert not any(e.type.startswith("output_audio_buffer.") for e in events)  # WebRTC only
        done = events[-1].response
        assert done.status == "completed" and done.output[0].content[0].type == "output_audio"
        # The echo is the committed turn itself, sample for sample: the speech with its prefix padding.
        echoed = np.frombuffer(audio_of(events), "<i2")
        sent = np.concatenate([silence(0.3), speech, silence(0.8)])
        offset = int(np.flatnonzero(sent)[0] - np.flatnonzero(echoed)[0])
        assert echoed.size >= np.ptp(np.flatnonzero(speech)) and offset >= 0
        assert np.array_equal(echoed, sent[offset : offset + echoed.size])
        transcript = next(e for e in events if e.type == "response.output_audio_transcript.done").transcript
        assert transcript == f"Echo of {echoed.size / API_RATE:.1f} seconds of your audio."
    await client.close()


async def test_g711_in_and_out_at_8_khz(server: RealtimeServer) -> None:
    for fmt, law in (("audio/pcmu", "ulaw"), ("audio/pcma", "alaw")):
        async with session_of(
            server, audio={"input": {"format": {"type": fmt}}, "output": {"format": {"type": fmt}}}
        ) as (_conn, wire):
            assert wire.seen[-1].session.audio.output.format.type == fmt
            await wire.append(
                np.concatenate([np.zeros(2400, np.int16), tone(440, 1.0, g711.G711_RATE), np.zeros(8000, np.int16)]),
                chunk=800,
                law=law,
            )
            events = await wire.until("response.done")
            back = g711.decode(audio_of(events), law)  # one byte a sample, 8 kHz
            assert 0.9 < back.size / g711.G711_RATE < 1.8
            assert abs(dominant_frequency(back, g711.G711_RATE) - 440) < 5


async def test_a_function_tool_round_trip(voice_server: Any, tmp_path: Path) -> None:
    scenario = tmp_path / "weather.toml"
    scenario.write_text(SCENARIO)
    server = await voice_server(scenario=scenario)
    async with session_of(
        server,
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }
        ],
    ) as (conn, wire):
        await wire.append(np.concatenate([silence(0.2), tone(300, 0.6, API_RATE), silence(0.6)]))
        first = await wire.until("response.done")
        call = next(e for e in first if e.type == "response.function_call_arguments.done")
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"city": "Paris", "forecast": "sunny"}),
            }
        )
        added = await wire.until("conversation.item.done")
        assert added[-1].item.type == "function_call_output" and added[-1].item.call_id == call.call_id
        await conn.response.create()
        second = await wire.until("response.done")
        said = next(e for e in second if e.type == "response.output_audio_transcript.done").transcript
        assert said == "It is sunny in Paris." and audio_of(second)


async def test_a_hosted_mcp_call_with_approval(voice_server: Any) -> None:
    server = await voice_server(scenario=FIXTURES / "scenarios" / "mcp.toml")
    async with session_of(server) as (conn, wire):
        await conn.session.update(
            session={
                "type": "realtime",
                "tools": [
                    {
                        "type": "mcp",
                        "server_label": "docs",
                        "server_url": "https://mcp.example/docs",
                        "authorization": "secret-token-123",
                        "require_approval": "always",
                    }
                ],
            }
        )
        listed = await wire.until("mcp_list_tools.completed")
        updated = next(e for e in listed if e.type == "session.updated")
        assert "secret-token-123" not in updated.model_dump_json()  # credentials are never echoed
        await wire.append(np.concatenate([silence(0.2), tone(300, 0.5, API_RATE), silence(0.6)]))
        first = await wire.until("response.done")
        request = next(
            e.item for e in first if e.type == "response.output_item.done" and e.item.type == "mcp_approval_request"
        )
        assert request.server_label == "docs" and request.name == "search"
        await conn.conversation.item.create(
            item={"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        )
        await conn.response.create()
        second = await wire.until("response.done")
        kinds = [e.type for e in second]
        assert kinds.index("response.mcp_call.in_progress") < kinds.index("response.mcp_call.completed")
        said = [e.transcript for e in second if e.type == "response.output_audio_transcript.done"]
        assert said[-1] == "The docs say: WebRTC needs ICE."


async def test_barge_in_the_client_truncates_what_it_played(server: RealtimeServer) -> None:
    """As the real service: the answer arrives at once, the client plays it, and on `speech_started` it stops and
    truncates the item at what it had played; the server cuts the item and answers the new turn."""
    async with session_of(server) as (conn, wire):
        await wire.append(np.concatenate([silence(0.2), tone(300, 2.0, API_RATE), silence(0.6)]))
        first = await wire.until("response.done")
        item_id = first[-1].response.output[0].id
        assert len(audio_of(first)) / 2 / API_RATE > 2.0  # all of it already here, faster than real time
        played_ms = 700  # what our pretend speaker had played when the user spoke again
        await wire.append(tone(500, 0.5, API_RATE))
        started = await wire.until("input_audio_buffer.speech_started")
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=played_ms)
        truncated = await wire.until("conversation.item.truncated")
        assert truncated[-1].item_id == item_id and truncated[-1].audio_end_ms == played_ms
        assert not any(e.type.startswith("output_audio_buffer.") for e in wire.seen)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=60_000)
        error = await wire.until("error")
        assert error[-1].error.param == "audio_end_ms" or "audio_end_ms" in error[-1].error.message
        await wire.append(silence(0.8))
        second = await wire.until("response.done")
        assert started and second[-1].response.status == "completed"
        assert 0.4 < len(audio_of(second)) / 2 / API_RATE < 1.4  # the echo of the new turn


async def test_paced_audio_is_cut_at_barge_in(voice_server: Any) -> None:
    """`--pace-websocket-audio`: the answer leaves in real time, so speech mid-answer cancels it (reason
    `turn_detected`) and the unsent rest never arrives."""
    server = await voice_server(scenario=FIXTURES / "scenarios" / "long_reply.toml", pace_websocket_audio=True)
    async with session_of(server) as (_conn, wire):
        await wire.append(np.concatenate([silence(0.2), tone(300, 0.5, API_RATE), silence(0.6)]))
        received = 0
        while received < 10:  # 10 deltas of 40 ms: the answer is 0.4 s in (of 3 s)
            event = await wire.recv()
            received += event.type == "response.output_audio.delta"
        await wire.append(tone(500, 0.5, API_RATE))
        rest = await wire.until("response.done")
        done = rest[-1].response
        assert done.status == "cancelled" and done.status_details.reason == "turn_detected"
        total = 10 * 0.04 + len(audio_of(rest)) / 2 / API_RATE
        assert total < 1.5, f"{total:.2f} s of a 3 s answer arrived"
        assert any(e.type == "input_audio_buffer.speech_started" for e in rest)


async def test_the_session_goes_on_after_bad_events(server: RealtimeServer) -> None:
    async with session_of(server) as (conn, wire):
        await conn.send({"type": "input_audio_buffer.append", "audio": "not base64!", "event_id": "e1"})
        error = (await wire.until("error"))[-1].error
        assert error.event_id == "e1" and error.param == "audio" and "base64" in error.message
        await conn.send({"type": "output_audio_buffer.clear", "event_id": "e2"})
        error = (await wire.until("error"))[-1].error
        assert error.event_id == "e2" and "WebRTC" in error.message
        await conn.send({"type": "no.such.event", "event_id": "e3"})
        assert (await wire.until("error"))[-1].error.param == "type"
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "still there?"}]}
        )
        await conn.response.create()
        said = await wire.until("response.output_audio_transcript.done")
        assert said[-1].transcript == "You said: still there?"


async def test_push_to_talk_and_the_idle_timer(server: RealtimeServer) -> None:
    """Turn detection off: the client commits and asks; then server VAD with `idle_timeout_ms`, whose timer starts
    once the answer's audio would have played at the client, not when its deltas were sent."""
    async with session_of(server, audio={"input": {"turn_detection": None}}) as (conn, wire):
        await wire.append(tone(600, 0.5, API_RATE))
        await conn.input_audio_buffer.commit()
        committed = await wire.until("input_audio_buffer.committed")
        assert not [e for e in committed if e.type.startswith("input_audio_buffer.speech")]
        await conn.response.create()
        answer = audio_of(await wire.until("response.done"))
        assert len(answer) / 2 / API_RATE == pytest.approx(0.5, abs=0.02)
        assert abs(dominant_frequency(np.frombuffer(answer, "<i2"), API_RATE) - 600) < 5
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}},
            }
        )
        await wire.until("session.updated")
        await wire.append(np.concatenate([silence(0.2), tone(300, 1.5, API_RATE), silence(0.5)]))
        await wire.until("response.output_audio.delta")
        first_delta = asyncio.get_running_loop().time()
        await wire.until("response.done")
        timeout = (await wire.until("input_audio_buffer.timeout_triggered", timeout=15))[-1]
        waited = asyncio.get_running_loop().time() - first_delta
        assert waited >= 1.5 + 5.0 - 0.05  # the answer's audio played out, then the idle timeout
        assert timeout.item_id.startswith("item_")
        # The empty turn is answered (create_response); reading it also lets the client's close handshake through
        # (websockets stops reading a socket whose messages nobody takes, and the close frame waits behind them).
        answered = await wire.until("response.output_audio_transcript.done")
        assert answered[-1].transcript == "I heard nothing."
        await wire.until("response.done")


# ----------------------------------------------------------------------------------------------- the handshake
async def test_keys_are_checked_as_the_real_service_checks_them() -> None:
    import httpx
    import websockets

    async with RealtimeServer(port=0, api_key="sk-right") as server:
        url = f"{server.websocket_url}/realtime?model=gpt-realtime"
        # No key at all: refused before the upgrade.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 401
        # A wrong key: the upgrade, an error event, then close code 3000.
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer sk-wrong"}) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 3000 and ws.close_reason == "invalid_request_error.invalid_api_key"
        # The browser form: the key as a subprotocol beside "realtime", which the server selects.
        async with websockets.connect(url, subprotocols=["realtime", "openai-insecure-api-key.sk-right"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "realtime"
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "session.created"
        # An ephemeral key carries its session (and model); the query's model is not needed.
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            secret = (
                await http.post(
                    "/realtime/client_secrets",
                    headers={"Authorization": "Bearer sk-right"},
                    json={
                        "session": {
                            "type": "realtime",
                            "model": "gpt-realtime-mini",
                            "audio": {"output": {"voice": "cedar"}},
                        }
                    },
                )
            ).json()
        async with websockets.connect(
            f"{server.websocket_url}/realtime", additional_headers={"Authorization": f"Bearer {secret['value']}"}
        ) as ws:
            session = json.loads(await asyncio.wait_for(ws.recv(), 5))["session"]
            assert session["model"] == "gpt-realtime-mini" and session["audio"]["output"]["voice"] == "cedar"
        # The beta protocol is gone, as on the real service.
        with pytest.raises(websockets.InvalidStatus) as beta:
            await websockets.connect(
                url, additional_headers={"Authorization": "Bearer sk-right", "OpenAI-Beta": "realtime=v1"}
            )
        assert beta.value.response.status_code == 400


async def test_the_session_cap_and_injected_faults_end_a_websocket_session(voice_server: Any) -> None:
    import websockets

    from voiceclient.server.faults import FaultSpec

    server = await voice_server(
        max_call_seconds=1.0, faults=[FaultSpec(action="drop_connection", call=2, at_seconds=0.3)]
    )
    headers = {"Authorization": "Bearer sk-x"}
    url = f"{server.websocket_url}/realtime?model=gpt-realtime"
    async with websockets.connect(url, additional_headers=headers) as ws:  # session 1: the cap
        events = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "session_expired"
        assert ws.close_code == 1000
    async with websockets.connect(url, additional_headers=headers) as ws:  # session 2: the connection drops
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "session.created"
        with pytest.raises(websockets.ConnectionClosedError):  # no close frame
            await asyncio.wait_for(ws.recv(), 5)
    async with asyncio.timeout(5):
        while server.sessions:
            await asyncio.sleep(0.02)


async def test_websocket_sessions_and_a_webrtc_call_at_once(server: RealtimeServer, tmp_path: Path) -> None:
    """Each session hears only its own audio: three WebSocket sessions with tones of their own, and a WebRTC call
    beside them, all at the same time on one server."""
    from .conftest import assert_wire_valid

    async def one(frequency: float) -> float:
        async with session_of(server) as (_conn, wire):
            await wire.append(np.concatenate([silence(0.2), tone(frequency, 0.8, API_RATE), silence(0.6)]))
            return dominant_frequency(np.frombuffer(audio_of(await wire.until("response.done")), "<i2"), API_RATE)

    async def webrtc() -> str:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", connect_timeout=10)
        async with VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl")) as call:
            stream = call.events()
            call.send_text("hello from WebRTC")
            said = await stream.next_of("response.output_audio_transcript.done")
            return said.transcript

    results = await asyncio.gather(one(350), one(550), one(750), webrtc())
    assert [round(f) for f in results[:3]] == [350, 550, 750]
    assert results[3] == "You said: hello from WebRTC"
    assert_wire_valid(tmp_path / "events.jsonl")
    assert len([s for s in server.history if s.transport == "websocket"]) == 3


# SHA-256 of CPython 3.11's audioop (the ITU/Sun reference) over every 16-bit sample (lin2ulaw, lin2alaw) and
# every code (ulaw2lin, alaw2lin); audioop itself is gone in Python 3.13.
AUDIOOP_SHA256 = {
    "lin2ulaw": "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a",
    "lin2alaw": "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b",
    "ulaw2lin": "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827",
    "alaw2lin": "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174",
}


def test_g711_matches_the_reference_codec() -> None:
    """Every 16-bit sample and every code, bit for bit against the reference's output."""
    import hashlib

    pcm = np.arange(-32768, 32768, dtype=np.int16)
    codes = bytes(range(256))
    ours = {
        "lin2ulaw": g711.encode(pcm, "ulaw"),
        "lin2alaw": g711.encode(pcm, "alaw"),
        "ulaw2lin": g711.decode(codes, "ulaw").astype("<i2").tobytes(),
        "alaw2lin": g711.decode(codes, "alaw").astype("<i2").tobytes(),
    }
    assert {k: hashlib.sha256(v).hexdigest() for k, v in ours.items()} == AUDIOOP_SHA256
    # and a tone survives the round trip at 8 kHz
    t = resample(tone(440, 0.5, API_RATE), API_RATE, g711.G711_RATE)
    assert abs(dominant_frequency(g711.decode(g711.encode(t, "ulaw"), "ulaw"), g711.G711_RATE) - 440) < 3


async def test_the_readme_example_against_voiceclient_serve(tmp_path: Path) -> None:
    """`scripts/websocket_example.py` (the README's) against a `voiceclient serve` process: the echo answers."""
    import sys
    import wave

    root = Path(__file__).resolve().parents[1]
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceclient",
        "serve",
        "--port",
        "0",
        "--no-speech",
        "--vad",
        "energy",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert serve.stdout is not None
        line = (await asyncio.wait_for(serve.stdout.readline(), 30)).decode()
        base_url = line.split("listening on ", 1)[1].split()[0]
        example = await asyncio.create_subprocess_exec(
            sys.executable,
            str(root / "scripts" / "websocket_example.py"),
            "--base-url",
            base_url,
            "--input",
            str(FIXTURES / "hello.wav"),
            "--output",
            str(tmp_path / "answer.wav"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(example.communicate(), 30)
        assert example.returncode == 0, err.decode()
        assert "assistant: Echo of" in out.decode()
        with wave.open(str(tmp_path / "answer.wav")) as w:
            answer = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        hello = load_audio(FIXTURES / "hello.wav", API_RATE)
        assert answer.size > 0.5 * hello.size and np.abs(answer).max() > 1000
    finally:
        serve.terminate()
        await serve.wait()


async def test_conversation_operations_answer_as_the_real_service(server: RealtimeServer) -> None:
    """`previous_item_id` as the service reports it (null for an item put first with "root"), and the error codes
    pipecat and LiveKit Agents branch on, with the client's `event_id` echoed (pipecat reads its item id from it)."""
    async with session_of(server) as (conn, wire):
        await conn.conversation.item.create(
            item={
                "id": "item_b",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "second"}],
            }
        )
        added = (await wire.until("conversation.item.added"))[-1]
        assert added.previous_item_id is None  # the first item follows nothing
        await conn.conversation.item.create(
            previous_item_id="root",
            item={
                "id": "item_a",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "first"}],
            },
        )
        added = (await wire.until("conversation.item.added"))[-1]
        assert added.item.id == "item_a" and added.previous_item_id is None  # never "root"
        await conn.conversation.item.create(
            previous_item_id="item_a",
            item={
                "id": "item_c",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "mid"}],
            },
        )
        assert (await wire.until("conversation.item.added"))[-1].previous_item_id == "item_a"
        cases = [
            (
                conn.conversation.item.retrieve(item_id="gone", event_id="rci_gone"),
                "rci_gone",
                "item_retrieve_invalid_item_id",
                "Error retrieving item: the item with id 'gone' does not exist.",
            ),
            (
                conn.conversation.item.delete(item_id="gone", event_id="del_gone"),
                "del_gone",
                "item_delete_invalid_item_id",
                "Error deleting item: the item with id 'gone' does not exist.",
            ),
            (
                conn.conversation.item.create(
                    event_id="dup_b",
                    item={
                        "id": "item_b",
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "again"}],
                    },
                ),
                "dup_b",
                "item_create_duplicate_item_id",
                "Error adding item: an item with id 'item_b' already exists.",
            ),
        ]
        for send, event_id, code, message in cases:
            await send
            error = (await wire.until("error"))[-1].error
            assert (error.type, error.code, error.message, error.param, error.event_id) == (
                "invalid_request_error",
                code,
                message,
                None,
                event_id,
            )
        await conn.conversation.item.retrieve(item_id="item_c")
        retrieved = (await wire.until("conversation.item.retrieved"))[-1]
        assert retrieved.item.id == "item_c"
