"""The protocol seam (`voiceclient/server/dialect.py`), proved by a second protocol: a made-up one, `Chat`, with its
own client messages, event names and shapes, plugged into the real session core through the memory edge. The edge,
the turn detector and the responder are the usual ones, unchanged; only the dialect differs, and nothing of the
Realtime API reaches the wire."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.dialect import (
    AppendAudio,
    CommitAudio,
    CreateItem,
    CreateResponse,
    Dialect,
    PartIds,
    ResponseRequest,
    UpdateSession,
    Wire,
)
from voiceclient.server.faults import FaultSpec
from voiceclient.server.realtime import RealtimeDialect
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)
CHAT_TYPES = {"hello", "configured", "problem", "heard", "turn.begin", "words", "said", "speech", "turn.end"}


def _nothing(self: Any, *args: Any, **kwargs: Any) -> list[Wire]:
    """A happening this protocol has no event for."""
    return []


class Chat:
    """A second protocol: `say` / `reply` / `audio` / `commit` / `configure` in; `hello`, `heard`, `turn.begin`,
    `words` (text), `said` (a spoken word), `speech` (audio), `turn.end` and `problem` out; nothing else. Its
    session schema is the Realtime one's (the core's own model), so the dialect borrows it."""

    name = "chat"
    audio_fields: Mapping[str, str] = {"audio": "data", "speech": "data"}
    delegates_tools = False
    schema = RealtimeDialect()

    def default_session(self, model: str | None = None) -> dict[str, Any]:
        return self.schema.default_session(model)

    def default_transcription_session(self) -> dict[str, Any]:
        return self.schema.default_transcription_session()

    def apply_update(self, current: dict[str, Any], update: Any, *, audio_started: bool) -> dict[str, Any]:
        return self.schema.apply_update(current, update, audio_started=audio_started)

    def decode(self, message: str | bytes) -> Any:
        data = json.loads(message)
        ref = data.get("ref")
        match data.get("type"):
            case "say":
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": data["text"]}]}
                return CreateItem(item, event_id=ref)
            case "reply":
                return CreateResponse(ResponseRequest(output_modalities=data.get("as")), event_id=ref)
            case "audio":
                return AppendAudio(data["data"], event_id=ref)
            case "commit":
                return CommitAudio(event_id=ref)
            case "configure":
                return UpdateSession(data["session"], event_id=ref)
        refusal = ProtocolError(f"chat has no {data.get('type')!r}", "unknown_message")
        refusal.event_id = ref
        raise refusal

    def session_created(self, session: dict[str, Any]) -> list[Wire]:
        return [{"type": "hello", "voice": session["audio"]["output"]["voice"]}]

    def session_updated(self, session: dict[str, Any]) -> list[Wire]:
        return [{"type": "configured", "modalities": session["output_modalities"]}]

    def error(self, exc: ProtocolError) -> list[Wire]:
        return [{"type": "problem", "code": exc.code, "text": exc.message, "ref": exc.event_id}]

    def speech_started(self, item_id: str, audio_start_ms: int) -> list[Wire]:
        return [{"type": "heard", "at": audio_start_ms}]

    def response_created(self, response: dict[str, Any]) -> list[Wire]:
        return [{"type": "turn.begin", "turn": response["id"]}]

    def response_done(self, response: dict[str, Any]) -> list[Wire]:
        return [{"type": "turn.end", "turn": response["id"], "status": response["status"]}]

    def output_text_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return [{"type": "words", "text": delta}]

    def output_transcript_delta(self, ids: PartIds, delta: str, span_ms: tuple[int, int]) -> list[Wire]:
        return [{"type": "said", "text": delta}]

    def output_audio_delta(self, ids: PartIds, audio: str) -> list[Wire]:
        return [{"type": "speech", "turn": ids["response_id"], "data": audio}]

    speech_stopped = input_committed = input_cleared = input_timed_out = _nothing
    input_transcript_delta = input_transcript_done = input_transcript_failed = _nothing
    item_added = item_done = item_retrieved = item_deleted = item_truncated = _nothing
    output_item_added = output_item_done = content_part_added = content_part_done = message_planned = _nothing
    output_text_done = output_transcript_done = output_audio_done = _nothing
    function_arguments_delta = function_arguments_done = mcp_arguments_delta = mcp_arguments_done = _nothing
    mcp_call_in_progress = mcp_call_finished = mcp_tools_listing = mcp_tools_listed = _nothing
    playout_started = playout_stopped = playout_cleared = _nothing
    session_closed = input_muted = context_appended = _nothing


def chat(**kw: Any) -> MemorySession:
    dialect: Dialect = Chat()
    return MemorySession(dialect=dialect, **kw)


def types(s: MemorySession) -> list[str]:
    return [e["type"] for e in s.events]


def test_the_test_dialect_has_every_method_of_the_seam() -> None:
    """So the tests below cover the whole seam, and a method added to it must be added to a second protocol too."""
    wanted = {n for n, _ in inspect.getmembers(Dialect, inspect.isfunction) if not n.startswith("_")}
    assert wanted and wanted <= set(dir(Chat)) and wanted <= set(dir(RealtimeDialect))
    assert {"name", "audio_fields"} <= set(vars(Chat)) and {"name", "audio_fields"} <= set(vars(RealtimeDialect))


async def test_a_text_turn_runs_through_another_protocol() -> None:
    async with chat(session={"output_modalities": ["text"]}) as s:
        assert s.events == [{"type": "hello", "voice": "alloy"}]  # the greeting, in this protocol's words
        s.send({"type": "say", "text": "hello there"})
        s.send({"type": "reply"})
        begin = await s.next_event("turn.begin")
        end = await s.next_event("turn.end")
        assert end == {"type": "turn.end", "turn": begin["turn"], "status": "completed"}
        assert "hello there" in "".join(e["text"] for e in s.sent("words"))
        assert set(types(s)) <= CHAT_TYPES, types(s)
        assert s.core.conversation.items[-1]["role"] == "assistant"  # the core kept its conversation as ever


async def test_a_spoken_turn_is_heard_answered_and_played_through_another_protocol() -> None:
    async with chat() as s:
        s.speak(
            np.concatenate([np.zeros(API_RATE, np.int16), tone(440, 1.0, API_RATE, -12), np.zeros(API_RATE, np.int16)])
        )
        heard = await s.next_event("heard")
        assert 650 <= heard["at"] <= 720  # the turn detector's timing, as over the Realtime API
        await s.next_event("turn.begin")
        audio = await s.play_through("turn.end")
        assert audio.size > 0 and np.abs(audio).max() > 1000  # the answer's audio played on the edge's playout
        assert s.sent("said")  # the transcript, word by word, as the audio played
        assert set(types(s)) <= CHAT_TYPES, types(s)


async def test_audio_sent_as_events_is_named_by_the_protocol() -> None:
    """The delta output (a WebSocket's) sends its audio through the dialect: `speech`, not an audio delta."""
    async with chat(playout=False) as s:
        s.send({"type": "say", "text": "one two"})
        s.send({"type": "reply", "as": ["audio"]})
        end = await s.next_event("turn.end")
        chunks = s.sent("speech")
        assert chunks and all(c["turn"] == end["turn"] and c["data"] for c in chunks)
        assert set(types(s)) <= CHAT_TYPES, types(s)


async def test_refusals_are_rendered_by_the_protocol_and_name_the_message() -> None:
    async with chat(session={"output_modalities": ["text"]}) as s:
        s.send({"type": "shout", "ref": "m1"})
        assert await s.next_event("problem") == {
            "type": "problem",
            "code": "unknown_message",
            "text": "chat has no 'shout'",
            "ref": "m1",
        }
        s.send({"type": "commit", "ref": "m2"})  # the core's own refusal: no audio to commit
        problem = await s.next_event("problem")
        assert problem["code"] == "input_audio_buffer_commit_empty" and problem["ref"] == "m2"
        s.send({"type": "configure", "session": {"type": "realtime", "output_modalities": ["text"]}, "ref": "m3"})
        assert (await s.next_event("configured"))["modalities"] == ["text"]
        s.send({"type": "configure", "session": {"type": "realtime", "voice": "x"}, "ref": "m4"})
        problem = await s.next_event("problem")
        assert problem["code"] == "unknown_parameter" and problem["ref"] == "m4"


async def test_faults_after_so_many_turns_count_turns_whatever_the_protocol_calls_their_end() -> None:
    async with chat(
        session={"output_modalities": ["text"]}, faults=[FaultSpec(action="expire_session", after_turns=1)]
    ) as s:
        s.send({"type": "say", "text": "hi"})
        s.send({"type": "reply"})
        await s.next_event("turn.end")
        assert (await s.next_event("problem"))["code"] == "session_expired"
        await s.until_closed()
