"""Every event type the server's session core emits round-trips through the client's parser and validates against
the official `openai` types (issue 31).

The scenarios below drive `MemorySession` through the behaviours that make the core speak (audio and text answers,
WebRTC-like and WebSocket-like output, server VAD, manual commits, the idle timeout, barge-in, item operations,
cancels, errors, function and MCP calls, transcription with a stand-in speech-to-text). Every event they collect is
then checked three ways: the client's parser knows its class, its dump keeps everything the server sent, and the
openai `RealtimeServerEvent` union accepts it. The covered types must be exactly `EMITTED`; `EMITTED` and
`NEVER_EMITTED_OFFLINE` together must be exactly `SERVER_EVENT_TYPES`, so a new event type fails here until someone
says which set it belongs to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter, ValidationError

from voiceclient.audio.format import API_RATE, tone
from voiceclient.protocol.events import SERVER_EVENT_TYPES, MalformedEvent, UnknownEvent, parse_server_event
from voiceclient.server.inbox import IdleTimeout
from voiceclient.server.responders import ScenarioResponder, ScenarioSpec
from voiceclient.server.session_rules import default_session
from voiceclient.speech.backends import SpeechBackends
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

ORACLE: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)

# What the scenarios below make the core send.
EMITTED = frozenset(
    {
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.deleted",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "rate_limits.updated",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "error",
    }
)

# Types the client's models know that the core never sends offline (docs/protocol.md, "Server events").
NEVER_EMITTED_OFFLINE = frozenset(
    {
        "conversation.created",  # serve announces no conversation object: its items come with conversation.item.added
        "conversation.item.created",  # serve announces items with conversation.item.added/done (the GA events)
        "conversation.item.input_audio_transcription.segment",  # diarizing transcription models only; none offline
        "input_audio_buffer.dtmf_event_received",  # SIP calls only; serve has no telephony edge
        "mcp_list_tools.failed",  # no MCP server is reached: the listing is the scenario's own tool names
    }
)


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * API_RATE), np.int16)


def talk(seconds: float) -> np.ndarray:
    return tone(440, seconds, API_RATE, -12)


def turn_detection(**fields: Any) -> dict[str, Any]:
    """Session fields whose server VAD has `fields` set directly."""
    audio = default_session()["audio"]
    audio["input"]["turn_detection"].update(fields)
    return {"audio": audio}


def transcribed() -> dict[str, Any]:
    """Session fields asking for the user's transcripts."""
    audio = default_session()["audio"]
    audio["input"]["transcription"] = {"model": "whisper-1"}
    return {"audio": audio}


def scenario(spec: dict[str, Any]) -> ScenarioResponder:
    return ScenarioResponder(ScenarioSpec.model_validate(spec), Path("."))


class StandInStt:
    """Offline speech whose speech-to-text hears the same words in any audio (no model loaded); no voice."""

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
        return "hello there"

    @property
    def can_synthesize(self) -> bool:
        return False

    async def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        return
        yield


def no_stt() -> SpeechBackends:
    """Speech backends without a speech-to-text: asked-for transcription fails (transcription_unavailable)."""
    return SpeechBackends(enabled=False, stt="none")


async def create(s: MemorySession, item: dict[str, Any]) -> dict[str, Any]:
    s.send({"type": "conversation.item.create", "item": item})
    return await s.next_event("conversation.item.done")


# ------------------------------------------------------------------------------------------ the scenarios
async def audio_answer_played_through() -> list[dict[str, Any]]:
    async with MemorySession() as s:
        s.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
        await s.next_event("session.updated")
        await create(s, user_text("hello"))
        s.send({"type": "response.create"})
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("output_audio_buffer.started")
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        await s.next_event("output_audio_buffer.stopped")
        return s.events


async def text_answer() -> list[dict[str, Any]]:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        await create(s, user_text("hello"))
        s.send({"type": "response.create"})
        await s.next_event("response.output_text.done")
        assert (await s.next_event("response.done"))["response"]["status"] == "completed"
        return s.events


async def websocket_audio_answer() -> list[dict[str, Any]]:
    async with MemorySession(playout=False) as s:
        await create(s, user_text("hello"))
        s.send({"type": "response.create"})
        await s.next_event("response.output_audio.delta")
        assert (await s.next_event("response.done"))["response"]["status"] == "completed"
        return s.events


async def spoken_turn_transcribed() -> list[dict[str, Any]]:
    async with MemorySession(transcribed(), speech=StandInStt()) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.7)]))
        committed = await s.next_event("input_audio_buffer.committed")
        completed = await s.next_event("conversation.item.input_audio_transcription.completed")
        assert completed["item_id"] == committed["item_id"] and completed["transcript"] == "hello there"
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        assert s.sent("conversation.item.input_audio_transcription.delta")
        return s.events


async def spoken_turn_without_stt() -> list[dict[str, Any]]:
    async with MemorySession(transcribed(), speech=no_stt()) as s:
        s.speak(np.concatenate([silence(0.5), talk(0.5), silence(0.7)]))
        failed = await s.next_event("conversation.item.input_audio_transcription.failed")
        assert failed["error"]["code"] == "transcription_unavailable"
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        return s.events


async def manual_commit_and_clear() -> list[dict[str, Any]]:
    async with MemorySession() as s:
        s.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
        )
        await s.next_event("session.updated")
        s.speak(talk(0.3))
        s.send({"type": "input_audio_buffer.commit"})
        await s.next_event("input_audio_buffer.committed")
        s.speak(talk(0.3))
        s.send({"type": "input_audio_buffer.clear"})
        await s.next_event("input_audio_buffer.cleared")
        s.send({"type": "input_audio_buffer.commit"})  # the buffer is empty now
        assert (await s.next_event("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        return s.events


async def idle_timeout() -> list[dict[str, Any]]:
    async with MemorySession(turn_detection(idle_timeout_ms=60_000)) as s:
        await create(s, user_text("hello"))
        s.send({"type": "response.create"})
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        s.post(IdleTimeout())  # the timer's message, without waiting a minute for it
        triggered = await s.next_event("input_audio_buffer.timeout_triggered")
        committed = await s.next_event("input_audio_buffer.committed")
        assert committed["item_id"] == triggered["item_id"]
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        return s.events


async def barge_in_and_clear() -> list[dict[str, Any]]:
    async with MemorySession() as s:
        await create(s, user_text("tell me a long story"))
        s.send({"type": "response.create"})
        await s.next_event("response.created")
        s.play(0.2)
        await s.next_event("output_audio_buffer.started")
        s.speak(talk(0.3))  # the user talks over the answer
        await s.next_event("input_audio_buffer.speech_started")
        await s.next_event("conversation.item.truncated")
        await s.next_event("output_audio_buffer.cleared")
        s.speak(silence(0.7))
        await s.next_event("input_audio_buffer.speech_stopped")
        await s.next_event("response.created")
        s.play(0.1)
        await s.next_event("output_audio_buffer.started")
        s.send({"type": "output_audio_buffer.clear"})  # the client cuts the second answer itself
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"]
        return s.events


async def item_operations_cancel_and_errors() -> list[dict[str, Any]]:
    slow = scenario({"turns": [{"text": "after a long think", "delay_ms": 60_000}]})
    async with MemorySession({"output_modalities": ["text"]}, slow) as s:
        first = await create(s, user_text("first"))
        second = await create(s, user_text("second"))
        s.send({"type": "conversation.item.retrieve", "item_id": first["item"]["id"]})
        assert (await s.next_event("conversation.item.retrieved"))["item"]["id"] == first["item"]["id"]
        s.send({"type": "conversation.item.delete", "item_id": second["item"]["id"]})
        assert (await s.next_event("conversation.item.deleted"))["item_id"] == second["item"]["id"]
        s.send({"type": "response.create", "response": {"metadata": {"k": "v"}}})
        created = await s.next_event("response.created")
        s.send({"type": "response.cancel"})
        cancelled = (await s.next_event("response.done"))["response"]
        assert (cancelled["id"], cancelled["status"]) == (created["response"]["id"], "cancelled")
        assert cancelled["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        s.send_raw("{not json")
        s.send({"type": "no.such.event"})
        s.send({"type": "conversation.item.retrieve", "item_id": "item_missing", "event_id": "evt_1"})
        s.send({"type": "response.cancel"})
        errors = [(await s.next_event("error"))["error"] for _ in range(4)]
        codes = [e["code"] for e in errors]
        assert codes == ["invalid_json", "invalid_value", "item_retrieve_invalid_item_id", "response_cancel_not_active"]
        assert errors[2]["event_id"] == "evt_1"
        return s.events


async def truncated_audio_item() -> list[dict[str, Any]]:
    async with MemorySession(playout=False) as s:
        await create(s, user_text("hello"))
        s.send({"type": "response.create"})
        assistant = (await s.next_event("response.done"))["response"]["output"][0]
        s.send(
            {"type": "conversation.item.truncate", "item_id": assistant["id"], "content_index": 0, "audio_end_ms": 100}
        )
        truncated = await s.next_event("conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (assistant["id"], 100)
        return s.events


async def function_call() -> list[dict[str, Any]]:
    spec = {
        "turns": [
            {
                "text": "Let me look.",
                "calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
                "after_tools": {"text": "It is {output[forecast]}."},
            }
        ],
        "after_turns": "silence",
    }
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    async with MemorySession({"output_modalities": ["text"], "tools": [tool]}, scenario(spec)) as s:
        await create(s, user_text("weather?"))
        s.send({"type": "response.create"})
        args = await s.next_event("response.function_call_arguments.done")
        assert json.loads(args["arguments"]) == {"city": "Paris"}
        await s.next_event("response.done")
        output = {"type": "function_call_output", "call_id": args["call_id"], "output": '{"forecast": "sunny"}'}
        await create(s, output)
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["output"][0]["content"][0]["text"] == "It is sunny."
        return s.events


async def mcp_calls() -> list[dict[str, Any]]:
    spec = {
        "turns": [
            {"mcp": {"server_label": "docs", "name": "search", "arguments": {"q": "a"}, "output": "3 results"}},
            {"mcp": {"server_label": "docs", "name": "search", "arguments": {"q": "b"}, "error": "it broke"}},
        ],
        "after_turns": "silence",
    }
    tool = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.invalid/sse"}
    async with MemorySession({"output_modalities": ["text"], "tools": [tool]}, scenario(spec)) as s:
        await s.next_event("mcp_list_tools.completed")
        await create(s, user_text("search a"))
        s.send({"type": "response.create"})
        [request] = (await s.next_event("response.done"))["response"]["output"]
        assert request["type"] == "mcp_approval_request"
        await create(s, {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True})
        s.send({"type": "response.create"})
        await s.next_event("response.mcp_call.completed")
        await s.next_event("response.done")
        await create(s, user_text("search b"))
        s.send({"type": "response.create"})
        [request] = (await s.next_event("response.done"))["response"]["output"]
        await create(s, {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True})
        s.send({"type": "response.create"})
        await s.next_event("response.mcp_call.failed")
        await s.next_event("response.done")
        return s.events


SCENARIOS = [
    audio_answer_played_through,
    text_answer,
    websocket_audio_answer,
    spoken_turn_transcribed,
    spoken_turn_without_stt,
    manual_commit_and_clear,
    idle_timeout,
    barge_in_and_clear,
    item_operations_cancel_and_errors,
    truncated_audio_item,
    function_call,
    mcp_calls,
]


@pytest.fixture(scope="module")
def emitted() -> list[dict[str, Any]]:
    """Every server event of every scenario, in order."""

    async def run_all() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for run in SCENARIOS:
            events.extend(await run())
        return events

    return asyncio.run(run_all())


def grouped_by_type(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    return by_type


def lost_fields(sent: Any, kept: Any, path: str = "") -> list[str]:
    """Where `kept` lacks or changes something of `sent` (paths of the differences)."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [path or "."]
        out: list[str] = []
        for key, value in sent.items():
            if key not in kept:
                out.append(f"{path}.{key}")
            else:
                out.extend(lost_fields(value, kept[key], f"{path}.{key}"))
        return out
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            return [path or "."]
        return [p for i, (a, b) in enumerate(zip(sent, kept, strict=True)) for p in lost_fields(a, b, f"{path}[{i}]")]
    return [] if sent == kept else [path or "."]


# ------------------------------------------------------------------------------------------ the checks
def test_the_scenarios_cover_exactly_the_expected_event_types(emitted: list[dict[str, Any]]) -> None:
    covered = {e["type"] for e in emitted}
    assert covered == EMITTED, f"not covered: {sorted(EMITTED - covered)}; unexpected: {sorted(covered - EMITTED)}"


def test_emitted_and_never_emitted_types_are_exactly_the_known_server_events() -> None:
    assert not EMITTED & NEVER_EMITTED_OFFLINE
    assert EMITTED | NEVER_EMITTED_OFFLINE == SERVER_EVENT_TYPES, (
        f"undecided: {sorted(SERVER_EVENT_TYPES - EMITTED - NEVER_EMITTED_OFFLINE)}; "
        f"unknown to the client: {sorted((EMITTED | NEVER_EMITTED_OFFLINE) - SERVER_EVENT_TYPES)}"
    )


def test_every_emitted_event_parses_to_its_known_class(emitted: list[dict[str, Any]]) -> None:
    for event in emitted:
        parsed = parse_server_event(json.dumps(event))
        assert not isinstance(parsed, (UnknownEvent, MalformedEvent)), (event["type"], parsed)
        assert getattr(parsed, "type", None) == event["type"]


def test_every_emitted_event_keeps_every_field_through_the_client_parser(emitted: list[dict[str, Any]]) -> None:
    for event in emitted:
        dumped = parse_server_event(json.dumps(event)).model_dump(exclude_unset=True, mode="json")
        assert lost_fields(event, dumped) == [], (event["type"], lost_fields(event, dumped))


def test_every_emitted_event_validates_against_the_openai_types(emitted: list[dict[str, Any]]) -> None:
    failures: dict[str, str] = {}
    for kind, events in grouped_by_type(emitted).items():
        for event in events:
            try:
                ORACLE.validate_python(event)
            except ValidationError as exc:  # the first failure of each type, all reported at once
                failures.setdefault(kind, f"{exc}"[:400])
    assert failures == {}
    assert all(e["event_id"].startswith("event_") for e in emitted)
