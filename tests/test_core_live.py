"""GPT-Live (`voiceclient/server/live.py`) on the server's session core, through the memory edge: the session as
`session.start` makes it, the model's own turn-taking (no commit, no `input_audio_buffer.*`), transcripts on the
session's timeline, barge-in, input mute, appended context, delegation to the application and to Responses, and
the close. Every event the server sends is validated against the official SDK's `openai.types.live.ServerEvent`
union, and the Responses events inside `response.event` envelopes against `openai.types.responses`'
`ResponseStreamEvent`."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.inbox import SessionExpired
from voiceclient.server.live import LiveDialect
from voiceclient.server.realtime import RealtimeDialect
from voiceclient.server.responders import (
    FunctionCall,
    ResponsePlan,
    ScenarioResponder,
    ScenarioSpec,
    Speech,
    TurnContext,
)
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * API_RATE)), np.int16)


def talk(seconds: float) -> np.ndarray:
    return tone(440, seconds, API_RATE, -12.0)


def start(**session: Any) -> str:
    return json.dumps({"type": "session.start", "event_id": "s1", "session": {"model": "gpt-live-1", **session}})


@functools.cache
def sdk_server_events() -> Any:
    """The SDK's server event union as a validator (built once: it takes seconds)."""
    from openai.types.live import ServerEvent
    from pydantic import TypeAdapter

    return TypeAdapter(ServerEvent)


@functools.cache
def sdk_responses_events() -> Any:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    return TypeAdapter(ResponseStreamEvent)


def assert_live_wire(events: list[dict[str, Any]]) -> None:
    """Every event validates against the SDK's server event union (a `response.event`'s Responses event against
    the Responses API's), and none is a Realtime one."""
    adapter = sdk_server_events()
    for event in events:
        adapter.validate_python(event)
        assert event["event_id"].startswith("event_")
        if event["type"] == "response.event":
            sdk_responses_events().validate_python(event["event"])
    kinds = {e["type"] for e in events} - {"response.event"}
    assert not any(
        k.startswith(("input_audio_buffer.", "response.", "conversation.", "output_audio_buffer.")) for k in kinds
    )


class FakeSpeech:
    """Offline speech that hears a fixed text (no model in the fast lane; the energy VAD decides speech)."""

    def __init__(self, text: str) -> None:
        self.text = text

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
        return self.text

    @property
    def can_synthesize(self) -> bool:
        return False

    async def synthesize_parts(self, text: str) -> AsyncIterator[tuple[str, np.ndarray]]:
        return
        yield  # an async generator that yields nothing


class PacedResponder:
    """Says a second of tone whose words go out as its audio plays."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        return ResponsePlan([Speech("one two three four five", talk(1.0), paced=True)])


class Delegating:
    """Acknowledges, then hands the task to a tool (a function the session never declared)."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        return ResponsePlan([Speech("Let me check.", talk(0.3)), FunctionCall("look_up", '{"what": "weather"}')])


class Forecasting:
    """Says it will check, calls `get_weather`, then says what the tool answered."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            return ResponsePlan([Speech(f"It is {ctx.function_outputs[0][1]} in Paris.", talk(0.5))])
        return ResponsePlan([Speech("Let me check.", talk(0.3)), FunctionCall("get_weather", '{"city": "Paris"}')])


WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
RESPONSES: dict[str, Any] = {
    "type": "responses",
    "responses": {
        "model": "gpt-5.5",
        "instructions": "Answer weather questions.",
        "tools": [WEATHER_TOOL, {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    },
}


def live_responses(responder: Any, playout: bool = False, **kw: Any) -> MemorySession:
    """A GPT-Live session started with Responses delegation (`RESPONSES`)."""
    dialect = LiveDialect()
    session = dialect.start_session(start(delegation=RESPONSES))
    return MemorySession(session, responder, dialect=dialect, playout=playout, **kw)


def live(playout: bool = False, **kw: Any) -> MemorySession:
    return MemorySession(dialect=LiveDialect(), playout=playout, **kw)


# ------------------------------------------------------------------------------------------ session.start
def test_session_start_makes_the_resolved_session() -> None:
    dialect = LiveDialect()
    session = dialect.start_session(
        start(
            instructions="Be brief.",
            audio={"format": {"type": "audio/pcm", "rate": 16000}, "output": {"voice": "cedar"}},
        )
    )
    shown = dialect.session_created(session)[0]
    assert_live_wire([shown])
    resource = shown["session"]
    assert resource["id"].startswith("live_") and resource["status"] == "active" and resource["model"] == "gpt-live-1"
    assert resource["audio"] == {"output": {"voice": "cedar"}, "format": {"type": "audio/pcm", "rate": 16000}}
    assert resource["delegation"] == {"type": "client"} and resource["input"] == []
    assert resource["instructions"] == "Be brief." and resource["expires_at"] > 0
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}  # what the core decodes


@pytest.mark.parametrize(
    ("message", "code", "param"),
    [
        (json.dumps({"type": "session.input_audio.mute", "event_id": "s1"}), "session_not_started", "type"),
        (start(voice="marin"), "unknown_parameter", "session.voice"),
        (start(audio={"output": {"voice": "nobody"}}), "forbidden", "session.audio.output.voice"),
        (start(audio={"format": {"type": "audio/pcm", "rate": 44100}}), "invalid_value", "session.audio.format.rate"),
        (start(delegation={"type": "decisions", "decisions": {}}), "invalid_value", "session.delegation.type"),
        (
            start(delegation={"type": "responses", "responses": {}}),
            "missing_required_parameter",
            "session.delegation.responses.model",
        ),
        (
            start(delegation={"type": "responses", "responses": {"model": "m", "tools": [{"type": "function"}]}}),
            "missing_required_parameter",
            "session.delegation.responses.tools.0.name",
        ),
        (
            json.dumps({"type": "session.start", "event_id": "s1", "session": {}}),
            "missing_required_parameter",
            "session.model",
        ),
    ],
)
def test_a_bad_start_is_refused_naming_the_field_and_the_message(message: str, code: str, param: str) -> None:
    dialect = LiveDialect()
    with pytest.raises(ProtocolError) as refused:
        dialect.start_session(message)
    assert (refused.value.code, refused.value.param, refused.value.event_id) == (code, param, "s1")
    error = dialect.error(refused.value)[0]
    assert_live_wire([error])
    assert error["error"]["client_event_id"] == "s1" and error["error"]["code"] == code


def test_a_model_that_is_not_a_live_one_is_not_found() -> None:
    with pytest.raises(ProtocolError) as refused:
        LiveDialect().start_session(start(model="gpt-realtime"))
    assert refused.value.code == "model_not_found"
    assert LiveDialect().start_session(start(model="gpt-live-1.1"))["model"] == "gpt-live-1.1"
    with pytest.raises(ProtocolError) as refused:  # and the other way round: no GPT-Live model on a Realtime route
        RealtimeDialect().default_session("gpt-live-1")
    assert refused.value.code == "model_not_found"


def test_webrtc_sessions_take_no_audio_format() -> None:
    dialect = LiveDialect()
    with pytest.raises(ProtocolError) as refused:
        dialect.start_session(start(audio={"format": {"type": "audio/pcmu"}}), websocket=False)
    assert refused.value.param == "session.audio.format"
    session = dialect.start_session(start(), websocket=False)
    assert "format" not in dialect.resource(session)["audio"]


# ------------------------------------------------------------------------------------------ turns
async def test_a_turn_is_taken_by_the_vad_and_answered_with_audio_and_timed_transcripts() -> None:
    async with live(speech=FakeSpeech("hello there")) as s:
        assert s.events[0]["type"] == "session.started"
        s.speak(np.concatenate([silence(0.2), talk(0.6), silence(0.8)]))
        heard = await s.next_event("session.input_transcript.delta")
        await s.next_event("session.usage.updated")
        words = s.sent("session.input_transcript.delta")
        assert "".join(w["delta"] for w in words) == "hello there"
        # the turn, on the input audio: from its start (with the VAD's prefix padding) to the silence that ended it
        assert heard["start_ms"] <= 200 and 800 <= heard["end_ms"] <= 1400
        said = s.sent("session.output_transcript.delta")
        assert "".join(w["delta"] for w in said).startswith("Echo of ")
        spans = [(w["start_ms"], w["end_ms"]) for w in said]
        assert spans[0][0] >= heard["end_ms"]  # the answer comes after the turn it answers
        assert all(a <= b for a, b in spans) and all(spans[i][1] <= spans[i + 1][0] + 1 for i in range(len(spans) - 1))
        assert s.sent("session.output_audio.delta")
        assert_live_wire(s.events)


async def test_the_user_speaking_stops_the_answer() -> None:
    async with live(playout=True, responder=PacedResponder()) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        await s.next_event("session.output_transcript.delta")
        s.play(0.3)
        s.speak(talk(0.4))  # barge-in
        await asyncio.wait_for(_until_answered(s), 5)
        assert s.core.responses.responses[s.core.responses.last_response_id or ""].cancel_reason == "turn_detected"
        assert s.play(0.5).max() == 0  # the rest of the answer is gone
        said = "".join(w["delta"] for w in s.sent("session.output_transcript.delta"))
        assert said.startswith("one") and "five" not in said
        assert_live_wire(s.events)


async def _until_answered(s: MemorySession) -> None:
    """Until the running answer has ended (a response ends in the core whatever the dialect shows of it)."""
    while not s.core.responses_done:
        await s.edge.wait()


async def test_muted_input_is_not_heard_until_unmuted() -> None:
    async with live() as s:
        s.send({"type": "session.input_audio.mute", "event_id": "m"})
        muted = await s.next_event("session.input_audio.muted")
        assert muted["client_event_id"] == "m"
        s.speak(np.concatenate([talk(0.6), silence(0.8)]))
        s.send({"type": "session.input_audio.unmute", "event_id": "u"})
        await s.next_event("session.input_audio.unmuted")
        assert s.core.turns.audio_samples == 0 and not s.sent("session.output_audio.delta")
        s.speak(np.concatenate([talk(0.6), silence(0.8)]))
        await s.next_event("session.usage.updated")
        assert s.sent("session.output_audio.delta")
        assert_live_wire(s.events)


# ------------------------------------------------------------------------------------------ context and delegation
async def test_a_planned_call_is_delegated_and_the_applications_commentary_is_spoken() -> None:
    async with live(responder=Delegating()) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        created = await s.next_event("session.delegation.created")
        assert created["delegation"]["target"] == "client" and created["delegation"]["type"] == "delegation"
        await s.next_event("session.usage.updated")
        s.send({"type": "session.thinking.append", "content": "the weather is sunny", "delegation_id": None})
        await s.next_event("session.thinking.appended")
        s.send(
            {
                "type": "session.commentary.append",
                "event_id": "c",
                "content": "It is sunny.",
                "delegation_id": created["delegation"]["id"],
            }
        )
        appended = await s.next_event("session.commentary.appended")
        assert appended["client_event_id"] == "c"
        await s.next_event("session.usage.updated")
        after = s.events[s.events.index(appended) :]
        assert "".join(e["delta"] for e in after if e["type"] == "session.output_transcript.delta") == "It is sunny."
        assert any(e["type"] == "session.output_audio.delta" for e in after)
        assert_live_wire(s.events)


async def test_commentary_during_an_answer_is_spoken_after_it() -> None:
    async with live(playout=True, responder=PacedResponder()) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        await s.next_event("session.output_transcript.delta")
        s.send({"type": "session.commentary.append", "content": "And more.", "delegation_id": None})
        await s.next_event("session.commentary.appended")  # taken at once
        assert s.core.responses.active is not None and len(s.core.queued) == 1  # the answer still plays
        for _ in range(2):  # the answer, then the commentary, each played to its end
            await s.play_through("session.usage.updated")
            await s.next_event("session.usage.updated")
        said = "".join(w["delta"] for w in s.sent("session.output_transcript.delta"))
        assert said == "one two three four fiveAnd more."  # the answer whole, then the commentary
        assert_live_wire(s.events)


async def test_commentary_for_an_unknown_delegation_and_responses_events_are_refused() -> None:
    async with live() as s:
        s.send({"type": "session.commentary.append", "event_id": "c", "content": "hi", "delegation_id": "deleg_x"})
        error = await s.next_event("error")
        assert error["error"]["param"] == "delegation_id" and error["error"]["client_event_id"] == "c"
        s.send({"type": "response.item.create", "event_id": "r", "item": {"type": "message"}})
        error = await s.next_event("error")
        assert error["error"]["message"] == "response.item.create requires Responses delegation."
        s.send({"type": "conversation.item.create", "event_id": "x", "item": {}})
        error = await s.next_event("error")
        assert error["error"]["param"] == "type" and "session.commentary.append" in error["error"]["message"]
        s.send({"type": "session.start", "session": {"model": "gpt-live-1"}})
        assert (await s.next_event("error"))["error"]["code"] == "session_already_started"
        assert_live_wire(s.events)


async def test_instructions_append_steers_what_follows_and_update_changes_only_delegation() -> None:
    async with live() as s:
        s.send({"type": "session.instructions.append", "content": "Speak French.", "delegation_id": None})
        appended = await s.next_event("session.instructions.appended")
        assert appended["start_ms"] <= appended["end_ms"]
        assert s.core.session["instructions"].endswith("Speak French.")
        s.send(
            {"type": "session.update", "session": {"delegation": {"type": "client", "acknowledgement_delay_ms": 300}}}
        )
        updated = await s.next_event("session.updated")
        assert updated["session"]["delegation"] == {"type": "client", "acknowledgement_delay_ms": 300}
        s.send({"type": "session.update", "event_id": "u", "session": {"instructions": "no"}})
        error = await s.next_event("error")
        assert error["error"]["code"] == "unknown_parameter" and error["error"]["param"] == "session.instructions"
        assert_live_wire(s.events)


# ------------------------------------------------------------------------------------------ the end
async def test_close_ends_the_session_with_session_closed_last() -> None:
    async with live() as s:
        s.send({"type": "session.close", "event_id": "bye"})
        await s.until_closed()
        closed = s.events[-1]
        assert closed["type"] == "session.closed" and closed["reason"] == "close_requested"
        assert closed["session"]["id"] == s.events[0]["session"]["id"] and closed["usage"]["seconds"] >= 0
        assert_live_wire(s.events)


async def test_expiry_ends_the_session_as_expired() -> None:
    async with live() as s:
        s.post(SessionExpired())
        await s.until_closed()
        assert s.events[-1]["type"] == "session.closed" and s.events[-1]["reason"] == "expired"
        assert_live_wire(s.events)


# ------------------------------------------------------------------------------------------ Responses delegation
def test_responses_delegation_is_taken_and_shown_as_given() -> None:
    dialect = LiveDialect()
    session = dialect.start_session(start(delegation=RESPONSES))
    shown = dialect.session_created(session)[0]
    assert_live_wire([shown])
    assert shown["session"]["delegation"] == RESPONSES
    assert session["tools"] == [WEATHER_TOOL]  # only function tools are ever called (web search: never)


def responses_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["event"] for e in events if e["type"] == "response.event"]


async def test_a_planned_call_goes_through_the_responses_backend_and_its_answer_is_spoken() -> None:
    async with live_responses(Forecasting()) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        created = await s.next_event("session.delegation.created")
        delegation = created["delegation"]
        assert delegation["target"] == "responses" and delegation["response_id"].startswith("resp_")
        await s.next_event("session.usage.updated")
        first = [e for e in s.events if e["type"] == "response.event"]
        assert {e["delegation_id"] for e in first} == {delegation["id"]}
        kinds = [e["type"] for e in responses_events(first)]
        assert kinds == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        nested = responses_events(first)
        assert nested[0]["response"]["id"] == delegation["response_id"]
        assert [e["sequence_number"] for e in nested] == list(range(len(nested)))
        call = nested[6]["item"]
        assert (call["type"], call["name"], call["arguments"], call["status"]) == (
            "function_call",
            "get_weather",
            '{"city": "Paris"}',
            "completed",
        )
        assert call["id"].startswith("fc_") and call["call_id"].startswith("call_")
        spoken_before = len(s.sent("session.output_transcript.delta"))
        s.send(
            {
                "type": "response.item.create",
                "event_id": "out",
                "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
            }
        )
        s.send({"type": "response.create", "event_id": "go"})
        await s.next_event("session.usage.updated")
        after = s.events[s.events.index(first[-1]) + 1 :]
        second = responses_events(after)
        assert {e["delegation_id"] for e in after if e["type"] == "response.event"} == {delegation["id"]}
        assert second[0]["type"] == "response.created" and second[0]["response"]["id"] != delegation["response_id"]
        message = next(e["item"] for e in second if e["type"] == "response.output_item.done")
        assert message["type"] == "message" and message["content"][0]["text"] == "It is sunny in Paris."
        assert (
            "".join(e["delta"] for e in second if e["type"] == "response.output_text.delta")
            == message["content"][0]["text"]
        )
        assert second[-1]["type"] == "response.completed"
        # the backend writes the answer, then the voice model says it
        said = s.sent("session.output_transcript.delta")[spoken_before:]
        assert "".join(w["delta"] for w in said) == "It is sunny in Paris."
        completed = next(e for e in after if e["type"] == "response.event" and e["event"] is second[-1])
        assert after.index(completed) < after.index(said[0])
        assert any(e["type"] == "session.output_audio.delta" for e in after)
        assert not s.sent("error")
        assert_live_wire(s.events)


class TwoCalls:
    """Calls two tools at once, then says both answers."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            return ResponsePlan([Speech(" and ".join(out for _, out in ctx.function_outputs) + ".", talk(0.3))])
        return ResponsePlan([FunctionCall("get_weather", '{"city": "Paris"}'), FunctionCall("get_weather", "{}")])


async def test_response_create_is_refused_while_a_call_is_unanswered_and_unknown_calls_are_refused() -> None:
    async with live_responses(TwoCalls()) as s:
        s.send({"type": "response.create", "event_id": "early"})  # nothing to continue yet
        refused = await s.next_event("error")
        assert refused["error"]["client_event_id"] == "early" and refused["error"]["param"] == "type"
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        await s.next_event("session.delegation.created")
        await s.next_event("session.usage.updated")
        calls = [e["item"] for e in responses_events(s.events) if e["type"] == "response.output_item.done"]
        assert len(calls) == 2 and len(s.sent("session.delegation.created")) == 1  # one delegation, two calls
        s.send(
            {
                "type": "response.item.create",
                "event_id": "bad",
                "item": {"type": "function_call_output", "call_id": "call_nobody", "output": "x"},
            }
        )
        error = await s.next_event("error")
        assert (error["error"]["client_event_id"], error["error"]["param"]) == ("bad", "item.call_id")
        assert "call_nobody" in error["error"]["message"]
        s.send(
            {
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"},
            }
        )
        s.send({"type": "response.create", "event_id": "too_soon"})
        error = await s.next_event("error")
        assert error["error"]["client_event_id"] == "too_soon"
        assert error["error"]["message"] == f"No tool output found for function call {calls[1]['call_id']}."
        s.send(
            {
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "windy"},
            }
        )
        s.send({"type": "response.item.create", "event_id": "msg", "item": {"type": "message", "role": "user"}})
        error = await s.next_event("error")
        assert (error["error"]["client_event_id"], error["error"]["param"]) == ("msg", "item.type")
        s.send({"type": "response.create"})
        await s.next_event("session.usage.updated")
        said = "".join(w["delta"] for w in s.sent("session.output_transcript.delta"))
        assert said == "sunny and windy."
        assert len(s.sent("error")) == 4
        assert_live_wire(s.events)


class CallingFirst(Forecasting):
    """Calls the tool, then says it is on it while the tool runs (words paced by the playout)."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            return super().plan(ctx)
        call = FunctionCall("get_weather", '{"city": "Paris"}')
        return ResponsePlan([call, Speech("Okay, checking now.", talk(1.0), paced=True)])


async def test_response_create_during_an_answer_waits_for_it() -> None:
    async with live_responses(CallingFirst(), playout=True) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        await s.next_event("session.delegation.created")
        call = next(e["item"] for e in responses_events(s.events) if e["type"] == "response.output_item.done")
        assert s.core.responses.active is not None  # "Okay, checking now." is still playing
        s.send(
            {
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
            }
        )
        s.send({"type": "response.create", "event_id": "go"})
        for _ in range(2):  # the acknowledgement, then the answer, each played to its end
            await s.play_through("session.usage.updated")
            await s.next_event("session.usage.updated")
        assert not s.sent("error")
        said = "".join(w["delta"] for w in s.sent("session.output_transcript.delta"))
        assert said == "Okay, checking now.It is sunny in Paris."
        assert_live_wire(s.events)


async def test_update_keeps_the_delegation_type_and_changes_the_backends_settings() -> None:
    async with live_responses(Forecasting()) as s:
        s.send(
            {"type": "session.update", "session": {"delegation": {"type": "responses", "responses": {"model": "x"}}}}
        )
        updated = await s.next_event("session.updated")
        assert updated["session"]["delegation"]["responses"]["model"] == "x"
        assert updated["session"]["delegation"]["responses"]["tools"] == RESPONSES["responses"]["tools"]
        s.send({"type": "session.update", "event_id": "u", "session": {"delegation": {"type": "client"}}})
        error = await s.next_event("error")
        assert error["error"]["param"] == "session.delegation.type"
        assert_live_wire(s.events)


async def test_a_scenarios_call_and_after_tools_answer_go_through_the_backend() -> None:
    turns = [
        {
            "text": "Let me check.",
            "calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            "after_tools": {"text": "It is {output[forecast]} in {output[city]}."},
        }
    ]
    responder = ScenarioResponder(ScenarioSpec.model_validate({"turns": turns}), Path("."))
    async with live_responses(responder) as s:
        s.speak(np.concatenate([talk(0.5), silence(0.8)]))
        await s.next_event("session.delegation.created")
        await s.next_event("session.usage.updated")
        call = next(e["item"] for e in responses_events(s.events) if e["type"] == "response.output_item.done")
        assert json.loads(call["arguments"]) == {"city": "Paris"}
        output = json.dumps({"forecast": "sunny", "city": "Paris"})
        s.send(
            {
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": call["call_id"], "output": output},
            }
        )
        s.send({"type": "response.create"})
        await s.next_event("session.usage.updated")
        written = [e for e in responses_events(s.events) if e["type"] == "response.output_text.done"]
        assert [e["text"] for e in written] == ["It is sunny in Paris."]
        said = "".join(w["delta"] for w in s.sent("session.output_transcript.delta"))
        assert said == "Let me check.It is sunny in Paris."
        assert_live_wire(s.events)
