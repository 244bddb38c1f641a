"""The server's session core through the memory edge (`voiceclient.testing.MemorySession`): no socket, no peer."""

from __future__ import annotations

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)


def user_text(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * API_RATE), np.int16)


async def test_a_session_greets_with_session_created() -> None:
    async with MemorySession() as s:
        [created] = s.sent("session.created")
        assert created["session"]["type"] == "realtime" and created["session"]["object"] == "realtime.session"


async def test_a_text_turn_is_echoed() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello there")})
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        text = done["response"]["output"][0]["content"][0]["text"]
        assert "hello there" in text


async def test_a_spoken_turn_is_detected_committed_and_answered() -> None:
    async with MemorySession() as s:
        s.speak(np.concatenate([silence(1.0), tone(440, 1.0, API_RATE, -12), silence(1.0)]))
        started = await s.next_event("input_audio_buffer.speech_started")
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        # audio_start_ms includes the 300 ms prefix padding; audio_end_ms the silence that ended the turn
        assert 650 <= started["audio_start_ms"] <= 720 and 2000 <= stopped["audio_end_ms"] <= 2700
        await s.next_event("input_audio_buffer.committed")
        await s.next_event("response.created")
        heard = await s.play_through("output_audio_buffer.stopped")
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        assert heard.size > 0 and np.abs(heard).max() > 1000  # the echo's audio was played
        stopped = await s.next_event("output_audio_buffer.stopped")
        assert stopped["response_id"] == done["response"]["id"]
