"""The session core's response side through the memory edge (`voiceclient.testing.MemorySession`): a response's
event sequence, its parameters, cancellation, barge-in and truncation, and the two kinds of output audio."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import numpy as np
import pytest

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE, RTP_RATE, tone
from voiceclient.server.responders import Responder, ResponsePlan, Speech, TurnContext
from voiceclient.server.session_rules import default_session
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

HELLO = "hello there"
ECHO = f"You said: {HELLO}"  # the echo's answer: a 440 Hz tone of 60 ms a character (1.26 s)
ECHO_SECONDS = 0.06 * len(ECHO)
PACED_WORDS = "one two three four five six"
PACED_SECONDS = 2.0
ENDING = ("response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done")


def user_text(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def ask(s: MemorySession, text: str = HELLO, response: dict[str, Any] | None = None, **extra: Any) -> None:
    """A typed user turn, then `response.create` (with `response` parameters, and `extra` event fields)."""
    s.send({"type": "conversation.item.create", "item": user_text(text)})
    event: dict[str, Any] = {"type": "response.create", **extra}
    if response is not None:
        event["response"] = response
    s.send(event)


class PacedResponder:
    """Says six words over a 2 s tone, each word sent when its audio starts playing (as a speaking agent does):
    the response stays active while its audio plays."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        return ResponsePlan([Speech(PACED_WORDS, tone(440, PACED_SECONDS, API_RATE), paced=True)])


class GatedResponder:
    """Thinks until `gate` is set, then echoes: a response that is active for as long as the test wants."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def plan(self, ctx: TurnContext) -> ResponsePlan:
        await self.gate.wait()
        return ResponsePlan([Speech(f"You said: {ctx.user_text}", tone(440, 0.5, API_RATE))])


def gated() -> tuple[Responder, asyncio.Event]:
    """A `GatedResponder` (the engine awaits a plan that is awaitable; `Responder` types the plain one) and its
    gate."""
    responder = GatedResponder()
    return cast(Responder, responder), responder.gate


# ------------------------------------------------------------------------------------------ the event sequence
async def test_an_audio_response_sends_the_full_event_sequence_with_one_set_of_ids() -> None:
    async with MemorySession() as s:
        ask(s)
        created = await s.next_event("response.created")
        await s.next_event("response.content_part.added")
        heard = await s.play_through("output_audio_buffer.stopped")
        await s.next_event("output_audio_buffer.stopped")
        start = s.events.index(created)
        kinds = [e["type"] for e in s.events[start:]]
        assert kinds == [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "output_audio_buffer.started",
            *["response.output_audio_transcript.delta"] * 4,
            *ENDING,
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
            "output_audio_buffer.stopped",
        ]
        resp_id = created["response"]["id"]
        assert resp_id.startswith("resp_") and created["response"]["status"] == "in_progress"
        added = s.sent("response.output_item.added")[0]
        item_id = added["item"]["id"]
        assert added["item"]["role"] == "assistant" and added["item"]["status"] == "in_progress"
        assert s.sent("conversation.item.added")[-1]["item"]["id"] == item_id
        ids = {"response_id": resp_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        for e in s.events[start:]:
            if e["type"].startswith(("response.content_part", "response.output_audio")):
                assert {k: e[k] for k in ids} == ids, e["type"]
            elif e["type"].startswith(("response.output_item", "output_audio_buffer")):
                assert e["response_id"] == resp_id, e["type"]
        deltas = [e["delta"] for e in s.sent("response.output_audio_transcript.delta")]
        assert "".join(deltas) == ECHO
        assert s.sent("response.output_audio_transcript.done")[0]["transcript"] == ECHO
        assert s.sent("response.content_part.done")[0]["part"] == {"type": "audio", "transcript": ECHO}
        done = s.sent("response.done")[0]["response"]
        assert done["id"] == resp_id and done["status"] == "completed"
        [item] = done["output"]
        assert item["id"] == item_id and item["status"] == "completed"
        assert item["content"] == [{"type": "output_audio", "transcript": ECHO}]
        assert s.sent("response.output_item.done")[0]["item"]["status"] == "completed"
        assert done["usage"]["output_token_details"]["audio_tokens"] > 0
        # what was played is the echo's tone, all of it (at the track's 48 kHz)
        loud = np.flatnonzero(np.abs(heard) > 1000)
        assert abs((loud[-1] - loud[0]) / RTP_RATE - ECHO_SECONDS) < 0.03


async def test_a_text_only_session_answers_with_text_events_and_no_audio() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        ask(s)
        created = await s.next_event("response.created")
        done = await s.next_event("response.done")
        kinds = [e["type"] for e in s.events[s.events.index(created) :]]
        assert kinds == [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            *["response.output_text.delta"] * 4,
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        item_id = done["response"]["output"][0]["id"]
        ids = {"response_id": created["response"]["id"], "item_id": item_id, "output_index": 0, "content_index": 0}
        for kind in ("response.content_part.added", "response.output_text.delta", "response.output_text.done"):
            for e in s.sent(kind):
                assert {k: e[k] for k in ids} == ids, kind
        assert s.sent("response.content_part.added")[0]["part"] == {"type": "text", "text": ""}
        assert "".join(e["delta"] for e in s.sent("response.output_text.delta")) == ECHO
        assert s.sent("response.output_text.done")[0]["text"] == ECHO
        assert done["response"]["output_modalities"] == ["text"]
        assert done["response"]["output"][0]["content"] == [{"type": "output_text", "text": ECHO}]
        assert done["response"]["usage"]["output_token_details"]["audio_tokens"] == 0
        assert s.edge.output.pending() == 0  # no audio was queued for the track


# ------------------------------------------------------------------------------------------ per-response parameters
async def test_a_response_can_ask_for_text_only_in_an_audio_session() -> None:
    async with MemorySession() as s:
        ask(s, response={"output_modalities": ["text"]})
        done = await s.next_event("response.done")
        assert done["response"]["output_modalities"] == ["text"]
        assert done["response"]["output"][0]["content"] == [{"type": "output_text", "text": ECHO}]
        assert not s.sent("response.output_audio_transcript.delta") and s.edge.output.pending() == 0
        # the session's own modality is unchanged: the next response speaks
        ask(s, "again")
        second = await s.next_event("response.created")
        assert second["response"]["output_modalities"] == ["audio"]
        await s.next_event("response.content_part.added")
        await s.play_through("response.done")
        done = await s.next_event("response.done")
        assert done["response"]["output"][0]["content"][0]["type"] == "output_audio"


async def test_response_parameters_are_echoed_in_the_response() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        params = {"instructions": "Answer in French.", "metadata": {"topic": "greeting"}, "max_output_tokens": 256}
        ask(s, response=params)
        created = await s.next_event("response.created")
        done = await s.next_event("response.done")
        for resp in (created["response"], done["response"]):
            assert resp["metadata"] == {"topic": "greeting"}
            assert resp["max_output_tokens"] == 256
            assert resp["conversation_id"] == "conv_" + s.core.id.split("_", 1)[1]
            assert resp["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
        assert done["response"]["status"] == "completed" and not s.sent("error")
        # without parameters the session's own values are used
        ask(s, "again")
        plain = await s.next_event("response.created")
        assert plain["response"]["metadata"] is None and plain["response"]["max_output_tokens"] == "inf"


async def test_a_response_outside_the_conversation_has_no_conversation_id() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        ask(s, response={"conversation": "none"})
        created = await s.next_event("response.created")
        done = await s.next_event("response.done")
        assert created["response"]["conversation_id"] is None
        assert done["response"]["conversation_id"] is None and done["response"]["status"] == "completed"


async def test_a_response_create_with_an_unknown_response_field_is_refused() -> None:
    async with MemorySession() as s:
        ask(s, response={"temperature_scale": 2}, event_id="event_bad")
        error = await s.next_event("error")
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["code"] == "unknown_parameter" and error["error"]["event_id"] == "event_bad"
        assert error["error"]["param"] == "response.temperature_scale"
        # nothing started: a valid response.create right after is not refused as a second response
        s.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        assert len(s.sent("response.created")) == 1 and len(s.sent("error")) == 1


# ------------------------------------------------------------------------------------------ one response at a time
async def test_a_second_response_create_while_one_runs_is_refused() -> None:
    responder, gate = gated()
    async with MemorySession({"output_modalities": ["text"]}, responder) as s:
        ask(s)
        created = await s.next_event("response.created")
        s.send({"type": "response.create", "event_id": "event_second"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "conversation_already_has_active_response"
        assert error["error"]["event_id"] == "event_second"
        assert created["response"]["id"] in error["error"]["message"]
        gate.set()
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"] and done["response"]["status"] == "completed"
        assert len(s.sent("response.created")) == 1


# ------------------------------------------------------------------------------------------ response.cancel
async def test_a_response_cancelled_while_thinking_ends_cancelled_without_output() -> None:
    async with MemorySession({}, gated()[0]) as s:
        ask(s)
        created = await s.next_event("response.created")
        s.send({"type": "response.cancel", "response_id": created["response"]["id"]})
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["response"]["output"] == [] and not s.sent("response.output_item.added")
        assert not s.sent("error")


async def test_a_response_cancelled_mid_answer_closes_its_message_as_incomplete() -> None:
    async with MemorySession({}, PacedResponder()) as s:
        ask(s)
        created = await s.next_event("response.created")
        await s.next_event("response.content_part.added")
        s.play(0.7)  # "one two three" have started playing
        await s.next_event(lambda e: e.get("delta") == "three ")
        s.send({"type": "response.cancel"})
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert done["response"]["output"][0]["status"] == "incomplete"
        assert done["response"]["output"][0]["content"] == [{"type": "output_audio", "transcript": "one two three "}]
        tail = [e["type"] for e in s.events[s.events.index(created) :]][-6:]
        assert tail == [*ENDING, "response.output_item.done", "conversation.item.done", "response.done"]
        assert s.sent("response.output_item.done")[0]["item"]["status"] == "incomplete"


async def test_response_cancel_with_no_response_running_is_refused() -> None:
    async with MemorySession() as s:
        s.send({"type": "response.cancel", "event_id": "event_cancel"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "response_cancel_not_active"
        assert error["error"]["type"] == "invalid_request_error" and error["error"]["event_id"] == "event_cancel"
        assert not s.sent("response.done")


async def test_response_cancel_naming_another_response_is_refused_and_the_active_one_goes_on() -> None:
    responder, gate = gated()
    async with MemorySession({"output_modalities": ["text"]}, responder) as s:
        ask(s)
        created = await s.next_event("response.created")
        s.send({"type": "response.cancel", "response_id": "resp_not_this_one"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "response_cancel_not_active"
        gate.set()
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"] and done["response"]["status"] == "completed"


async def test_after_a_cancel_a_new_response_can_start() -> None:
    responder, gate = gated()
    async with MemorySession({"output_modalities": ["text"]}, responder) as s:
        ask(s, "first")
        first = await s.next_event("response.created")
        s.send({"type": "response.cancel"})
        assert (await s.next_event("response.done"))["response"]["status"] == "cancelled"
        gate.set()
        ask(s, "second")
        second = await s.next_event("response.created")
        done = await s.next_event("response.done")
        assert second["response"]["id"] != first["response"]["id"]
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["text"] == "You said: second"
        assert not s.sent("error")


# ------------------------------------------------------------------------------------------ barge-in
async def test_barge_in_cancels_the_answer_and_truncates_it_at_what_was_played() -> None:
    async with MemorySession({}, PacedResponder()) as s:
        ask(s)
        created = await s.next_event("response.created")
        resp_id = created["response"]["id"]
        await s.next_event("response.content_part.added")
        s.play(0.7)
        await s.next_event(lambda e: e.get("delta") == "three ")
        s.speak(tone(300, 0.3, API_RATE, -12))  # the user talks over the answer
        await s.next_event("input_audio_buffer.speech_started")
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        item_id = done["response"]["output"][0]["id"]
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated == {**truncated, "item_id": item_id, "content_index": 0, "audio_end_ms": 700}
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"] == resp_id
        # the item keeps the words whose audio had started; nothing more plays, and no `stopped`
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == "one two three"
        assert not s.play(0.5).any() and not s.sent("output_audio_buffer.stopped")


async def test_barge_in_after_the_answer_was_made_cuts_the_audio_still_playing() -> None:
    async with MemorySession() as s:
        ask(s)
        await s.next_event("response.content_part.added")
        s.play(0.3)
        done = await s.next_event("response.done")  # the echo is made at once; its audio plays on
        assert done["response"]["status"] == "completed"
        s.speak(tone(300, 0.3, API_RATE, -12))
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated["item_id"] == done["response"]["output"][0]["id"] and truncated["audio_end_ms"] == 300
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"] == done["response"]["id"]
        assert not s.play(0.5).any() and not s.sent("output_audio_buffer.stopped")


async def test_over_websocket_like_output_barge_in_leaves_truncation_to_the_client() -> None:
    async with MemorySession(playout=False) as s:
        ask(s)
        done = await s.next_event("response.done")
        s.speak(np.concatenate([tone(300, 0.3, API_RATE, -12), np.zeros(API_RATE // 2, np.int16)]))
        await s.next_event("input_audio_buffer.speech_started")
        await s.next_event("input_audio_buffer.committed")
        await s.next_event("response.created")  # the user's new turn is answered
        assert done["response"]["status"] == "completed"
        assert not s.sent("conversation.item.truncated")
        assert not [e for e in s.events if e["type"].startswith("output_audio_buffer.")]


# ------------------------------------------------------------------------------------------ output_audio_buffer.clear
async def test_output_audio_buffer_clear_cuts_the_answer_at_what_was_played() -> None:
    async with MemorySession() as s:
        ask(s)
        await s.next_event("response.content_part.added")
        s.play(0.3)
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        s.send({"type": "output_audio_buffer.clear"})
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated["item_id"] == item_id and truncated["audio_end_ms"] == 300
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"] == done["response"]["id"]
        # the echo's words start at 0, 240, 600 and 960 ms: two had started
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == "You said:"
        assert not s.play(0.5).any() and not s.sent("output_audio_buffer.stopped")


async def test_output_audio_buffer_clear_is_refused_over_websocket_like_output() -> None:
    async with MemorySession(playout=False) as s:
        ask(s)
        await s.next_event("response.done")
        s.send({"type": "output_audio_buffer.clear", "event_id": "event_clear"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "invalid_value" and error["error"]["param"] == "type"
        assert error["error"]["event_id"] == "event_clear"
        assert not s.sent("output_audio_buffer.cleared") and not s.sent("conversation.item.truncated")


async def test_output_audio_buffer_clear_before_any_response_is_refused() -> None:
    async with MemorySession() as s:
        s.send({"type": "output_audio_buffer.clear"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "output_audio_buffer_empty"
        assert not s.sent("output_audio_buffer.cleared")


async def test_output_audio_buffer_clear_once_the_answer_has_played_is_refused_and_cuts_nothing() -> None:
    """Nothing plays: the same refusal as before any answer (the real answer is not documented; the stricter one,
    docs/differences.md), and the answer stays whole."""
    async with MemorySession() as s:
        ask(s)
        await s.play_through("output_audio_buffer.stopped")
        done = await s.next_event("response.done")
        await s.next_event("output_audio_buffer.stopped")
        s.send({"type": "output_audio_buffer.clear", "event_id": "event_late_clear"})
        error = await s.next_event("error")
        assert (error["error"]["code"], error["error"]["event_id"]) == ("output_audio_buffer_empty", "event_late_clear")
        assert not s.sent("output_audio_buffer.cleared") and not s.sent("conversation.item.truncated")
        item_id = done["response"]["output"][0]["id"]
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert (
            retrieved["item"]["content"][0]["transcript"] == done["response"]["output"][0]["content"][0]["transcript"]
        )


# ------------------------------------------------------------------------------------------ conversation.item.truncate
async def test_truncating_past_the_end_of_the_audio_is_refused_and_changes_nothing() -> None:
    async with MemorySession(playout=False) as s:
        ask(s)
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        s.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 5000})
        error = await s.next_event("error")
        assert error["error"]["code"] == "invalid_value" and error["error"]["param"] == "audio_end_ms"
        assert "1260ms" in error["error"]["message"]  # the item's audio: 1.26 s
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == ECHO
        assert not s.sent("conversation.item.truncated")


async def test_a_valid_truncate_is_confirmed_and_shortens_the_transcript() -> None:
    async with MemorySession(playout=False) as s:
        ask(s)
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        s.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 700})
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated == {**truncated, "item_id": item_id, "content_index": 0, "audio_end_ms": 700}
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == "You said: hello"  # "there" starts at 960 ms
        assert not s.sent("error")


async def test_truncating_an_unknown_item_is_refused() -> None:
    async with MemorySession() as s:
        s.send({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 0})
        error = await s.next_event("error")
        assert error["error"]["code"] == "item_truncate_invalid_item_id" and "item_nope" in error["error"]["message"]


# ------------------------------------------------------------------------------------------ websocket-like output
async def test_websocket_like_output_sends_the_answer_as_base64_pcm_deltas() -> None:
    async with MemorySession(playout=False) as s:
        ask(s)
        created = await s.next_event("response.created")
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        deltas = s.sent("response.output_audio.delta")
        ids = {"response_id": created["response"]["id"], "item_id": item_id, "output_index": 0, "content_index": 0}
        assert all({k: e[k] for k in ids} == ids for e in deltas)
        data = b"".join(base64.b64decode(e["delta"]) for e in deltas)
        pcm = np.frombuffer(data, "<i2")
        assert pcm.size == round(ECHO_SECONDS * API_RATE)  # 24 kHz PCM16, all of the answer
        assert len(base64.b64decode(deltas[0]["delta"])) == 4800  # 100 ms chunks
        assert 0.2 < np.abs(pcm).max() / 32767 < 0.3  # the echo's -12 dBFS tone
        kinds = [e["type"] for e in s.events]
        assert kinds.index("response.content_part.added") < kinds.index("response.output_audio.delta")
        last_delta = len(kinds) - 1 - kinds[::-1].index("response.output_audio.delta")
        assert last_delta < kinds.index("response.output_audio.done")
        assert not [k for k in kinds if k.startswith("output_audio_buffer.")]


async def test_websocket_like_output_is_g711_when_the_session_asks_for_it() -> None:
    audio = default_session()["audio"]  # (MemorySession's fields replace the default's whole)
    audio["output"]["format"] = {"type": "audio/pcmu"}
    async with MemorySession({"audio": audio}, playout=False) as s:
        ask(s)
        done = await s.next_event("response.done")
        assert done["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        deltas = s.sent("response.output_audio.delta")
        data = b"".join(base64.b64decode(e["delta"]) for e in deltas)
        assert len(data) == round(ECHO_SECONDS * 8000)  # one byte a sample at 8 kHz
        assert len(base64.b64decode(deltas[0]["delta"])) == 800
        pcm = g711.decode(data, "ulaw")
        assert 0.2 < np.abs(pcm).max() / 32767 < 0.3
        # a 440 Hz tone at 8 kHz: about 880 zero crossings a second
        crossings = np.count_nonzero(np.diff(np.signbit(pcm[800:-800].astype(np.int32))))
        assert abs(crossings / ((pcm.size - 1600) / 8000) - 880) < 20


# ------------------------------------------------------------------------------------------ playout and rate limits
async def test_output_audio_buffer_started_and_stopped_name_their_response() -> None:
    async with MemorySession() as s:
        ids = []
        for text in ("first", "second"):
            ask(s, text)
            created = await s.next_event("response.created")
            resp_id = created["response"]["id"]
            ids.append(resp_id)
            await s.next_event("response.content_part.added")
            assert not s.sent("output_audio_buffer.started")[len(ids) - 1 :]  # not before the track reads it
            s.play(0.02)
            started = await s.next_event("output_audio_buffer.started")
            assert started["response_id"] == resp_id
            await s.next_event("response.done")
            assert len(s.sent("output_audio_buffer.stopped")) == len(ids) - 1  # made, not yet played
            await s.play_through("output_audio_buffer.stopped")
            stopped = await s.next_event("output_audio_buffer.stopped")
            assert stopped["response_id"] == resp_id
        assert ids[0] != ids[1]


async def test_rate_limits_are_updated_right_after_each_response_created() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        for text in ("first", "second"):
            ask(s, text)
            await s.next_event("response.done")
        kinds = [e["type"] for e in s.events]
        created_at = [i for i, k in enumerate(kinds) if k == "response.created"]
        assert len(created_at) == 2 and len(s.sent("rate_limits.updated")) == 2
        for i in created_at:
            limits = s.events[i + 1]
            assert limits["type"] == "rate_limits.updated"
            by_name = {r["name"]: r for r in limits["rate_limits"]}
            assert set(by_name) == {"requests", "tokens"}
            for r in by_name.values():
                assert 0 <= r["remaining"] <= r["limit"] and r["reset_seconds"] >= 0


async def test_what_a_truncation_cut_cannot_come_back_with_a_later_one() -> None:
    """Truncation deletes the audio after `audio_end_ms`: a second truncation past that point is refused, and the
    transcript stays cut."""
    async with MemorySession({"output_modalities": ["audio"]}, playout=False) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello there")})
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        item_id = done["response"]["output"][0]["id"]
        s.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 700})
        first = await s.next_event("conversation.item.truncated")
        assert first["audio_end_ms"] == 700
        s.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1200})
        error = await s.next_event("error")
        assert error["error"]["param"] == "audio_end_ms" and "700ms" in error["error"]["message"]
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        item = (await s.next_event("conversation.item.retrieved"))["item"]
        assert item["content"][0]["transcript"] == "You said: hello"


async def test_a_cancel_right_after_create_ends_the_response_and_frees_the_conversation() -> None:
    """`response.cancel` in the same breath as `response.create`: the response still ends, `cancelled`, and the
    next `response.create` is taken (the response once stayed active forever, with no `response.done`)."""
    async with MemorySession({"output_modalities": ["text"]}) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello")})
        s.send({"type": "response.create"})
        s.send({"type": "response.cancel"})
        created = await s.next_event("response.created")
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        s.send({"type": "response.create"})
        again = await s.next_event("response.done")
        assert again["response"]["status"] == "completed"
