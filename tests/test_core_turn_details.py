"""Turn timing and details of the server's session core (issue 32, item 8), through the memory edge: the idle
timeout's span, `semantic_vad`'s wait by whether the user sounds finished, and `conversation.item.retrieve` with
the item's audio in the session's formats."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE, tone
from voiceclient.server.session_rules import default_session
from voiceclient.server.turns import sounds_finished
from voiceclient.server.vad import SpeechProbability
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * API_RATE)), np.int16)


def talk(seconds: float) -> np.ndarray:
    return tone(440, seconds, API_RATE, -12.0)


def with_turn_detection(**fields: Any) -> dict[str, Any]:
    """Session fields whose turn detection has `fields` set directly (without `session.update`'s checks)."""
    audio = default_session()["audio"]
    audio["input"]["turn_detection"].update(fields)
    return {"audio": audio}


async def retrieve(s: MemorySession, item_id: str) -> dict[str, Any]:
    s.send({"type": "conversation.item.retrieve", "item_id": item_id})
    return (await s.next_event("conversation.item.retrieved"))["item"]


# ------------------------------------------------------------------------------------------ idle timeout
async def test_the_idle_timeout_spans_the_silence_after_the_assistant_audio() -> None:
    """[SDK] InputAudioBufferTimeoutTriggered: `audio_start_ms` is the input audio offset after the playback of
    the last response, `audio_end_ms` the offset when the timeout triggered, so the span roughly matches the
    timeout; a user item is committed (`input_audio_buffer.committed`) and answered. (The item has no audio here,
    where the real one has the silent segment: docs/differences.md.)"""
    async with MemorySession(with_turn_detection(idle_timeout_ms=5000)) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.5)]))
        await s.next_event("response.created")
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        s.speak(silence(6.0))  # the track keeps bringing (silent) audio, as WebRTC does
        timeout = await s.next_event("input_audio_buffer.timeout_triggered")
        committed = await s.next_event("input_audio_buffer.committed")
        assert timeout["audio_start_ms"] == 1500  # where the silence after the answer began
        assert timeout["audio_end_ms"] == 1500 + 5000  # the trigger
        assert committed["item_id"] == timeout["item_id"]
        await s.next_event("response.created")
        await s.play_through("output_audio_buffer.stopped")
        answer = await s.next_event("response.done")
        assert answer["response"]["output"][0]["content"][0]["transcript"] == "I heard nothing."
        assert len(s.sent("input_audio_buffer.timeout_triggered")) == 1


async def test_an_idle_timeout_with_create_response_off_commits_and_leaves_the_answer_to_the_client() -> None:
    """[SDK] ServerVad.create_response: whether a response is made when the VAD ends a turn; off, the idle
    timeout's turn is committed like any other, and nothing answers it until the client asks."""
    async with MemorySession(with_turn_detection(idle_timeout_ms=5000, create_response=False)) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.5)]))
        await s.next_event("input_audio_buffer.committed")
        s.send({"type": "response.create"})
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        s.speak(silence(6.0))
        await s.next_event("input_audio_buffer.timeout_triggered")
        committed = await s.next_event("input_audio_buffer.committed")
        item = await retrieve(s, committed["item_id"])  # (in order behind anything the timeout started)
        assert item["role"] == "user" and len(s.sent("response.created")) == 1


# ------------------------------------------------------------------------------------------ semantic_vad
def test_a_trailing_conjunction_or_filler_does_not_sound_finished() -> None:
    """[SDK] SemanticVad: the model waits while the user does not sound finished (our rule: a trailing
    conjunction, filler, article or preposition, or a trailing comma or ellipsis, is unfinished)."""
    for text in ("I want to go and", "so", "um", "because", "Book me the", "I think, ", "well...", "it is, uh"):
        assert not sounds_finished(text), text
    for text in ("I want to go home.", "What time is it?", "Thanks", "book a table for two"):
        assert sounds_finished(text), text
    assert sounds_finished("")  # nothing heard: no reason to wait


class FakeSpeech:
    """A stand-in for `OfflineSpeech` (the protocol in server/speech_port.py): no model runs in the fast lane,
    so `transcribe` gives a fixed text (the energy VAD decides speech)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.heard: asyncio.Queue[int] = asyncio.Queue()

    def start_loading(self) -> None:
        pass

    async def ready(self) -> None:
        pass

    def vad(self) -> SpeechProbability | None:
        return None

    @property
    def can_transcribe(self) -> bool:
        return True

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        self.heard.put_nowait(pcm24k.size)
        return self.text

    @property
    def can_synthesize(self) -> bool:
        return False

    async def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        return
        yield  # an async generator that yields nothing


SEMANTIC = {"type": "semantic_vad", "create_response": True, "interrupt_response": True}


async def semantic_stop(text: str | None, eagerness: str, pause_s: float) -> int | None:
    """Speak 1 s, wait until the pause is being transcribed (with STT), then `pause_s` of silence: the
    `speech_stopped` offset, or None when the turn had not ended."""
    audio = default_session()["audio"]
    audio["input"]["turn_detection"] = {**SEMANTIC, "eagerness": eagerness}
    speech = FakeSpeech(text) if text is not None else None
    session: dict[str, Any] = {"audio": audio}
    async with MemorySession(session, speech=speech) as s:
        s.speak(np.concatenate([silence(0.5), talk(1.0), silence(0.2)]))
        await s.next_event("input_audio_buffer.speech_started")
        if speech is not None:
            await speech.heard.get()  # the pause is being transcribed
            assert s.core.turns.speculative is not None
            await s.core.turns.speculative[1]  # the verdict on the pause is in
        s.speak(silence(pause_s))
        s.send({"type": "input_audio_buffer.clear", "event_id": "marker"})  # handled after all the above
        await s.next_event(
            lambda e: e.get("type") in ("input_audio_buffer.cleared", "input_audio_buffer.speech_stopped")
        )
        stopped = s.sent("input_audio_buffer.speech_stopped")
        return stopped[0]["audio_end_ms"] if stopped else None


async def test_semantic_vad_ends_a_finished_sentence_after_the_short_pause() -> None:
    """[SDK] SemanticVad: `high` responds quickly. A finished-sounding transcript ends the turn after the
    eagerness' short pause (high 300 ms, medium/auto 600 ms, low 1200 ms), counted from the end of speech."""
    assert await semantic_stop("Book a table for two.", "high", 1.0) == 1500 + 300
    assert await semantic_stop("Book a table for two.", "low", 2.0) == 1500 + 1200


async def test_semantic_vad_waits_up_to_its_maximum_while_the_user_sounds_unfinished() -> None:
    """[SDK] SemanticVad: "`low`, `medium`, and `high` have max timeouts of 8s, 4s, and 2s respectively"; a
    transcript ending on "and" does not sound finished, so the turn runs on until that maximum."""
    assert await semantic_stop("I would like a table and", "high", 1.5) is None  # not yet at 2 s
    assert await semantic_stop("I would like a table and", "high", 2.5) == 1500 + 2000
    assert await semantic_stop("so um", "medium", 4.5) == 1500 + 4000


async def test_semantic_vad_without_speech_to_text_keeps_a_fixed_pause_per_eagerness() -> None:
    """Without an offline STT there is no transcript to judge: a fixed pause per eagerness (high 300 ms,
    medium/auto 600 ms, low 1200 ms), as docs/differences.md says."""
    assert await semantic_stop(None, "high", 1.0) == 1500 + 300
    assert await semantic_stop(None, "auto", 1.0) == 1500 + 600


# ------------------------------------------------------------------------------------------ item retrieve
async def test_retrieve_returns_the_assistant_audio_in_the_output_format() -> None:
    """[SDK] ConversationItemRetrieved: "the full content of the Item, including audio data", assistant items
    included; the audio in the session's output format (here G.711 mu-law at 8 kHz), the user's in the input
    format (PCM16 at 24 kHz)."""
    audio = default_session()["audio"]
    audio["output"]["format"] = {"type": "audio/pcmu"}
    async with MemorySession({"audio": audio}) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.5)]))
        committed = await s.next_event("input_audio_buffer.committed")
        await s.play_through("output_audio_buffer.stopped")
        done = await s.next_event("response.done")
        answer = done["response"]["output"][0]
        item = await retrieve(s, answer["id"])
        part = item["content"][0]
        assert part["type"] == "output_audio" and part["transcript"]
        pcm = g711.decode(base64.b64decode(part["audio"]), "ulaw")
        stored = s.core.conversation.audio[answer["id"]]
        assert abs(pcm.size - stored.ms * 8) <= 8  # 8 kHz: the whole answer
        assert np.abs(pcm.astype(np.int32)).max() > 1000  # its sound, not silence
        user = await retrieve(s, committed["item_id"])
        user_pcm = np.frombuffer(base64.b64decode(user["content"][0]["audio"]), "<i2")
        assert user_pcm.size > 0.5 * API_RATE


async def test_retrieve_returns_the_user_audio_in_the_input_format() -> None:
    """[SDK] ConversationItemRetrieved: the input audio in the session's input format (G.711 A-law here)."""
    audio = default_session()["audio"]
    audio["input"]["format"] = {"type": "audio/pcma"}
    async with MemorySession({"audio": audio}) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.5)]))
        committed = await s.next_event("input_audio_buffer.committed")
        user = await retrieve(s, committed["item_id"])
        pcm = g711.decode(base64.b64decode(user["content"][0]["audio"]), "alaw")
        stored = s.core.conversation.audio[committed["item_id"]]
        assert abs(pcm.size - stored.ms * 8) <= 8
