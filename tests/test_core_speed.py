"""`audio.output.speed` through the memory edge (`voiceclient.testing.MemorySession`): an answer played faster or
slower at the same pitch, its transcript, truncation and `max_output_tokens` on the time-scaled audio, and an
update while a response runs applying from the next one."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.server.responders import Responder, ResponsePlan, Speech, TurnContext
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

HELLO = "hello there"
ECHO = f"You said: {HELLO}"  # the echo's answer: a 440 Hz tone of 60 ms a character (1.26 s)
ECHO_SAMPLES = round(0.06 * len(ECHO) * API_RATE)


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def ask(s: MemorySession, text: str = HELLO) -> None:
    s.send({"type": "conversation.item.create", "item": user_text(text)})
    s.send({"type": "response.create"})


async def set_speed(s: MemorySession, speed: float) -> None:
    s.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": speed}}}})
    updated = await s.next_event("session.updated")
    assert updated["session"]["audio"]["output"]["speed"] == speed


def audio_of(s: MemorySession, response_id: str) -> np.ndarray:
    """The response's audio as its `response.output_audio.delta` events carried it (24 kHz PCM16)."""
    deltas = [e["delta"] for e in s.sent("response.output_audio.delta") if e["response_id"] == response_id]
    return np.frombuffer(b"".join(base64.b64decode(d) for d in deltas), "<i2")


async def answer(s: MemorySession, text: str = HELLO) -> tuple[dict[str, Any], np.ndarray]:
    """Ask, and the finished response with its audio (WebSocket-like output)."""
    ask(s, text)
    done = await s.next_event("response.done")
    return done["response"], audio_of(s, done["response"]["id"])


def transcript(response: dict[str, Any]) -> str:
    return str(response["output"][0]["content"][0]["transcript"])


async def test_an_answer_at_speed_1_5_lasts_two_thirds_as_long_at_the_same_pitch() -> None:
    async with MemorySession(playout=False) as s:
        plain, normal = await answer(s)
        await set_speed(s, 1.5)
        faster_response, faster = await answer(s)
        await set_speed(s, 0.5)
        _, slower = await answer(s)
    assert normal.size == ECHO_SAMPLES
    assert faster.size == round(ECHO_SAMPLES / 1.5) and slower.size == ECHO_SAMPLES * 2
    for pcm in (normal, faster, slower):
        assert dominant_frequency(pcm[2400:-2400], API_RATE) == pytest.approx(440, abs=1)
    assert transcript(faster_response) == transcript(plain) == ECHO
    assert faster_response["status"] == "completed"
    # the usage estimate (10 tokens a second) counts the audio that was sent
    assert faster_response["usage"]["output_token_details"]["audio_tokens"] == int(faster.size / API_RATE * 10)


async def test_the_echo_of_the_users_audio_is_time_scaled_too() -> None:
    async with MemorySession(playout=False) as s:
        await set_speed(s, 1.5)
        s.speak(np.concatenate([tone(300, 1.0, API_RATE), np.zeros(API_RATE, np.int16)]))
        committed = await s.next_event("input_audio_buffer.committed")
        done = await s.next_event("response.done")
        said = s.core.conversation.audio[committed["item_id"]].pcm
        pcm = audio_of(s, done["response"]["id"])
    assert pcm.size == round(said.size / 1.5)
    assert dominant_frequency(pcm, API_RATE) == pytest.approx(300, abs=2)


async def test_a_barge_in_at_speed_1_5_truncates_on_the_played_timeline() -> None:
    """The echo's 1.26 s is 840 ms at 1.5: 500 ms played is "You said: hello" ("hello" starts at 10/21 of it,
    400 ms; at speed 1 it would start at 600 ms, after the cut)."""
    async with MemorySession() as s:
        await set_speed(s, 1.5)
        ask(s)
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        assert s.core.conversation.audio[item_id].ms == 840
        s.play(0.5)
        s.send({"type": "output_audio_buffer.clear"})
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated == {**truncated, "item_id": item_id, "audio_end_ms": 500}
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == "You said: hello"
        assert s.core.conversation.audio[item_id].ms == 500


async def test_max_output_tokens_counts_the_audio_as_it_is_played() -> None:
    """10 tokens a second of audio and a token for four characters: with a cap of 8, "You " (1 + 2.4 tokens) and
    "said: " (1.5 + 3.6) do not both fit at speed 1; at 1.5 their audio costs two thirds as much (1.6 and 2.4),
    and they do, with 400 ms of audio."""
    kept = {}
    for speed in (1.0, 1.5):
        async with MemorySession({"max_output_tokens": 8}, playout=False) as s:
            await set_speed(s, speed)
            response, pcm = await answer(s)
            assert response["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
            kept[speed] = (transcript(response), pcm.size)
    assert kept[1.0] == ("You ", round(ECHO_SAMPLES * 4 / 21))
    assert kept[1.5] == ("You said: ", round(ECHO_SAMPLES / 1.5) * 10 // 21)


class GatedResponder:
    """Thinks until `gate` is set, then answers with a 0.5 s tone."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def plan(self, ctx: TurnContext) -> ResponsePlan:
        await self.gate.wait()
        self.gate.clear()
        return ResponsePlan([Speech("Here.", tone(440, 0.5, API_RATE))])


async def test_a_speed_update_while_a_response_runs_applies_from_the_next_response() -> None:
    """[docs] `audio.output.speed` "can only be changed in between model turns, not while a response is in
    progress": the update is taken, and the response already running keeps its speed."""
    responder = GatedResponder()
    async with MemorySession(responder=cast(Responder, responder), playout=False) as s:
        ask(s)
        await s.next_event("response.created")
        await set_speed(s, 1.5)
        responder.gate.set()
        done = await s.next_event("response.done")
        assert audio_of(s, done["response"]["id"]).size == API_RATE // 2
        ask(s, "again")
        responder.gate.set()
        done = await s.next_event("response.done")
        assert audio_of(s, done["response"]["id"]).size == API_RATE // 3
        assert not s.sent("error")
