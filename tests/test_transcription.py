"""Transcription sessions (`session.type: "transcription"`, issue 32): input audio committed by turn detection or by
hand and transcribed, no model responses; opened by `client_secrets`, `?intent=transcription` or `/calls`. Every
server event is checked against the official `openai` types (the oracle), the session object against the SDK's
transcription session types."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import (
    RealtimeServerEvent,
    RealtimeTranscriptionSessionCreateRequest,
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import TypeAdapter

from voiceclient.audio.format import API_RATE, tone
from voiceclient.audio.sources import load_audio
from voiceclient.server import RealtimeServer
from voiceclient.server.turns import NO_SPEECH, NO_STT
from voiceclient.speech.backends import SpeechBackends
from voiceclient.testing import MemorySession

from .conftest import FIXTURES, NEEDS_AGENT

pytestmark = pytest.mark.timeout(20)
ORACLE: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
TRANSCRIPTION = {"type": "transcription"}
HEARD = "the quick brown fox"


class StandInStt:
    """An `OfflineSpeech` double whose speech-to-text hears `HEARD` in any audio (no model); no voice."""

    def __init__(self) -> None:
        self.heard: list[int] = []  # the samples of each audio it was given

    def start_loading(self) -> None:
        pass

    async def ready(self) -> None:
        pass

    def vad(self) -> None:
        return None

    @property
    def can_transcribe(self) -> bool:
        return True

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        self.heard.append(pcm24k.size)
        return HEARD

    @property
    def can_synthesize(self) -> bool:
        return False

    async def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        return
        yield


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * API_RATE), np.int16)


def talk(seconds: float) -> np.ndarray:
    return tone(440, seconds, API_RATE, -12)


def oracle_checked(events: list[dict[str, Any]]) -> list[Any]:
    """Every event as the openai SDK parses it (raises on any it refuses); transcription sessions' objects are the
    SDK's transcription session type."""
    parsed = [ORACLE.validate_python(e) for e in events]
    for event in parsed:
        if event.type in ("session.created", "session.updated"):
            assert isinstance(event.session, RealtimeTranscriptionSessionCreateRequest), event.session
    return parsed


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# ------------------------------------------------------------------------------------------ the core, in memory
async def test_a_spoken_turn_is_committed_and_transcribed_and_never_answered() -> None:
    stt = StandInStt()
    async with MemorySession(TRANSCRIPTION, speech=stt) as s:
        created = s.events[0]
        assert created["type"] == "session.created" and created["session"]["type"] == "transcription"
        assert "model" not in created["session"] and "instructions" not in created["session"]
        assert created["session"]["audio"]["input"]["transcription"]["model"]  # on by default
        s.speak(np.concatenate([silence(0.5), talk(0.6), silence(1.0)]))
        started = await s.next_event("input_audio_buffer.speech_started")
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        committed = await s.next_event("input_audio_buffer.committed")
        completed = await s.next_event("conversation.item.input_audio_transcription.completed")
        assert started["item_id"] == stopped["item_id"] == committed["item_id"] == completed["item_id"]
        assert completed["transcript"] == HEARD and completed["content_index"] == 0
        assert completed["usage"]["type"] == "duration" and 0.5 < completed["usage"]["seconds"] < 2.0
        deltas = s.sent("conversation.item.input_audio_transcription.delta")
        assert "".join(d["delta"] for d in deltas).split() == HEARD.split()
        assert all(d["item_id"] == committed["item_id"] for d in deltas)
        await asyncio.sleep(0.3)  # time for a response that must not come
        assert not [t for t in types(s.events) if t.startswith("response.") or t.startswith("output_audio_buffer.")]
        assert len(stt.heard) == 1 and stt.heard[0] > 0.5 * API_RATE
        oracle_checked(s.events)


async def test_response_create_and_conversation_events_are_refused() -> None:
    async with MemorySession(TRANSCRIPTION, speech=StandInStt()) as s:
        for event in (
            {"type": "response.create", "event_id": "ev_1"},
            {"type": "response.cancel", "event_id": "ev_2"},
            {
                "type": "conversation.item.create",
                "event_id": "ev_3",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            },
        ):
            s.send(event)
            error = (await s.next_event("error"))["error"]
            name = event["type"]
            assert error["event_id"] == event["event_id"] and error["code"] == "invalid_value"
            assert error["message"].startswith(f"{name} is not supported in a transcription session")
        assert not [t for t in types(s.events) if t.startswith("response.") or t.startswith("conversation.item.")]
        oracle_checked(s.events)


async def test_session_update_with_a_transcription_object_and_a_manual_commit() -> None:
    async with MemorySession(TRANSCRIPTION, speech=StandInStt()) as s:
        s.send(
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "whisper-1", "language": "en", "prompt": "fox"},
                            "noise_reduction": {"type": "near_field"},
                            "turn_detection": None,
                        }
                    },
                    "include": ["item.input_audio_transcription.logprobs"],
                },
            }
        )
        updated = (await s.next_event("session.updated"))["session"]
        assert updated["type"] == "transcription" and updated["include"] == ["item.input_audio_transcription.logprobs"]
        audio_in = updated["audio"]["input"]
        assert audio_in["transcription"] == {"model": "whisper-1", "language": "en", "prompt": "fox"}
        assert audio_in["turn_detection"] is None and audio_in["noise_reduction"] == {"type": "near_field"}
        s.speak(np.concatenate([silence(0.3), talk(0.5), silence(0.8)]))
        await asyncio.sleep(0.2)
        assert "input_audio_buffer.committed" not in types(s.events)  # no turn detection: nothing commits alone
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        completed = await s.next_event("conversation.item.input_audio_transcription.completed")
        assert completed["item_id"] == committed["item_id"] and completed["transcript"] == HEARD
        s.send(
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}},
            }
        )
        td = (await s.next_event("session.updated"))["session"]["audio"]["input"]["turn_detection"]
        assert td == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
        oracle_checked(s.events)


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"type": "transcription", "model": "gpt-realtime"}, "unknown_parameter", "session.model"),
        ({"type": "transcription", "instructions": "hi"}, "unknown_parameter", "session.instructions"),
        (
            {"type": "transcription", "audio": {"output": {"voice": "alloy"}}},
            "unknown_parameter",
            "session.audio.output",
        ),
        ({"type": "transcription", "include": ["nope"]}, "invalid_value", "session.include.0"),
        ({"type": "realtime", "instructions": "hi"}, "invalid_value", "session.type"),
        ({"audio": {"input": {"turn_detection": None}}}, "missing_required_parameter", "session.type"),
    ],
)
async def test_refused_updates_leave_the_session_as_it_was(session: dict[str, Any], code: str, param: str) -> None:
    async with MemorySession(TRANSCRIPTION, speech=StandInStt()) as s:
        before = s.core.session
        s.send({"type": "session.update", "session": session})
        error = (await s.next_event("error"))["error"]
        assert (error["code"], error["param"]) == (code, param), error
        assert s.core.session == before


async def test_a_realtime_session_does_not_become_a_transcription_session() -> None:
    async with MemorySession() as s:
        s.send({"type": "session.update", "session": {"type": "transcription"}})
        error = (await s.next_event("error"))["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "session.type")
        assert "cannot be changed" in error["message"] and s.core.session["type"] == "realtime"


async def test_without_speech_to_text_each_turn_fails_saying_what_to_install() -> None:
    async with MemorySession(TRANSCRIPTION, speech=SpeechBackends(enabled=False, stt="none")) as s:
        s.speak(np.concatenate([silence(0.3), talk(0.5), silence(1.0)]))
        committed = await s.next_event("input_audio_buffer.committed")
        failed = await s.next_event("conversation.item.input_audio_transcription.failed")
        assert failed["item_id"] == committed["item_id"]
        assert failed["error"]["message"] == NO_STT and "pip install 'voiceclient[agent]'" in NO_STT
        assert "\n" not in NO_STT and failed["error"]["code"] == "transcription_unavailable"
        oracle_checked(s.events)
    async with MemorySession(TRANSCRIPTION) as s:  # no offline speech at all (serve --no-speech)
        s.speak(np.concatenate([silence(0.3), talk(0.5), silence(1.0)]))
        failed = await s.next_event("conversation.item.input_audio_transcription.failed")
        assert failed["error"]["message"] == NO_SPEECH and "--no-speech" in NO_SPEECH
    realtime = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    async with MemorySession() as s:  # a realtime session that asked for transcripts is told why none come
        s.send({"type": "session.update", "session": realtime})
        await s.next_event("session.updated")
        s.speak(np.concatenate([silence(0.3), talk(0.5), silence(1.0)]))
        committed = await s.next_event("input_audio_buffer.committed")
        failed = await s.next_event("conversation.item.input_audio_transcription.failed")
        assert failed["item_id"] == committed["item_id"] and failed["error"]["message"] == NO_SPEECH
    async with MemorySession() as s:  # one that did not ask gets nothing about it
        s.speak(np.concatenate([silence(0.3), talk(0.5), silence(1.0)]))
        await s.next_event("response.done")
        assert not s.sent("conversation.item.input_audio_transcription.failed")


# ------------------------------------------------------------------------------------------ over HTTP, the SDK
async def appended(conn: Any, pcm: np.ndarray) -> None:
    for i in range(0, pcm.size, 4800):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 4800].tobytes()).decode())


async def until(conn: Any, kind: str, seen: list[Any]) -> Any:
    """The next event of `kind` as the SDK parses it (each one read kept in `seen`)."""
    while True:
        event = await conn.recv()
        seen.append(event)
        if event.type == kind:
            return event


async def test_the_sdk_opens_a_transcription_session_with_an_ephemeral_key_and_by_intent() -> None:
    session = {
        "type": "transcription",
        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe", "language": "en"}}},
    }
    async with RealtimeServer(port=0, speech=StandInStt(), vad="energy") as server:
        backend = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
        secret = await backend.realtime.client_secrets.create(session=session)  # type: ignore[arg-type]
        assert isinstance(secret.session, RealtimeTranscriptionSessionCreateResponse)
        assert secret.value.startswith("ek_") and secret.session.type == "transcription"
        assert secret.session.audio and secret.session.audio.input and secret.session.audio.input.transcription
        assert secret.session.audio.input.transcription.model == "gpt-4o-transcribe"
        await backend.close()
        for client, query in (
            (AsyncOpenAI(api_key=secret.value, base_url=server.base_url), {}),
            (AsyncOpenAI(api_key="sk-test", base_url=server.base_url), {"intent": "transcription"}),
        ):
            async with client.realtime.connect(extra_query=query) as conn:
                seen: list[Any] = []
                created = await until(conn, "session.created", seen)
                assert isinstance(created.session, RealtimeTranscriptionSessionCreateRequest)
                await appended(conn, np.concatenate([silence(0.3), talk(0.6), silence(1.0)]))
                completed = await until(conn, "conversation.item.input_audio_transcription.completed", seen)
                assert completed.transcript == HEARD and completed.usage.type == "duration"
                await conn.response.create()
                error = await until(conn, "error", seen)
                assert error.error.message.startswith("response.create is not supported in a transcription session")
                assert not [e for e in seen if e.type.startswith("response.")]
            await client.close()


# ------------------------------------------------------------------------------------------ the real thing
@pytest.mark.agent
@pytest.mark.timeout(120)
@NEEDS_AGENT
async def test_the_sdk_transcribes_a_spoken_sentence_in_a_transcription_session() -> None:
    """The official SDK opens `?intent=transcription` against a server with the offline models, appends a recorded
    sentence and gets its words back, with no response."""
    from voiceclient.testing import speech_backends

    spoken = load_audio(FIXTURES / "speech" / "sentence_1.wav", API_RATE)  # "The quick brown fox jumps over ..."
    async with RealtimeServer(port=0, speech=speech_backends()) as server:
        client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            seen: list[Any] = []
            created = await until(conn, "session.created", seen)
            assert isinstance(created.session, RealtimeTranscriptionSessionCreateRequest)
            await conn.session.update(
                session={"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
            )
            await until(conn, "session.updated", seen)
            await appended(conn, np.concatenate([silence(0.5), spoken, silence(1.5)]))
            async with asyncio.timeout(60):
                completed = await until(conn, "conversation.item.input_audio_transcription.completed", seen)
        await client.close()
    heard = re.findall(r"[a-z]+", completed.transcript.lower())
    assert {"quick", "brown", "fox", "lazy", "dog"} <= set(heard), completed.transcript
    committed = [e for e in seen if e.type == "input_audio_buffer.committed"]
    assert len(committed) == 1 and committed[0].item_id == completed.item_id
    assert not [e for e in seen if e.type.startswith("response.")]


# ------------------------------------------------------------------------------------------ over WebRTC
def spoken_track() -> Any:
    """An aiortc audio track: 0.5 s of silence, 1 s of a tone, then silence, in real time (48 kHz, 20 ms frames)."""
    import fractions

    import av
    from aiortc.mediastreams import MediaStreamTrack

    class Spoken(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pcm = np.concatenate([np.zeros(24000, np.int16), tone(440, 1.0, 48000, -12)])
            self.sent = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            loop = asyncio.get_running_loop()
            if self.start is None:
                self.start = loop.time()
            wait = self.start + self.sent / 48000 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = self.pcm[self.sent : self.sent + 960]
            chunk = np.pad(chunk, (0, 960 - chunk.size))
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent, fractions.Fraction(1, 48000)
            self.sent += 960
            return frame

    return Spoken()


@pytest.mark.webrtc
@pytest.mark.timeout(40)
async def test_a_webrtc_call_with_a_transcription_session_transcribes_and_never_answers() -> None:
    """A browser-like peer (aiortc) posts a transcription session to `/calls`, speaks over RTP and reads the data
    channel: the session is a transcription session, the turn is transcribed, and nothing answers."""
    import json

    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    async with RealtimeServer(port=0, speech=StandInStt(), vad="energy") as server:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(spoken_track())
        channel = pc.createDataChannel("oai-events")
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        channel.on("message", lambda text: events.put_nowait(json.loads(text)))
        await pc.setLocalDescription(await pc.createOffer())
        session = {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            resp = await http.post(
                "/realtime/calls",
                headers={"Authorization": "Bearer sk-test"},
                files={"sdp": (None, pc.localDescription.sdp), "session": (None, json.dumps(session))},
            )
        assert resp.status_code == 201
        await pc.setRemoteDescription(RTCSessionDescription(resp.text, "answer"))
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(20):
                while not seen or seen[-1]["type"] != "conversation.item.input_audio_transcription.completed":
                    seen.append(await events.get())
            await asyncio.sleep(0.3)  # time for a response that must not come
            while not events.empty():
                seen.append(events.get_nowait())
        finally:
            await pc.close()
    assert seen[0]["type"] == "session.created" and seen[0]["session"]["type"] == "transcription"
    committed = [e for e in seen if e["type"] == "input_audio_buffer.committed"]
    assert len(committed) == 1
    completed = next(e for e in seen if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert completed["item_id"] == committed[0]["item_id"] and completed["transcript"] == HEARD
    assert not [e for e in seen if e["type"].startswith(("response.", "output_audio_buffer."))]
    oracle_checked(seen)
