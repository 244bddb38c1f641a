"""The GPT-Live protocol family through `ScriptedTransport`, in milliseconds: chosen by the model's name or the
`api` setting, `session.started` confirms the session, transcript deltas become the user's and the assistant's
turns, nothing of the Realtime API's turn control is sent, and the close waits for `session.closed`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from voiceclient.client.call import VoiceCall
from voiceclient.client.call_events import TranscriptTurn
from voiceclient.client.family import LiveFamily, RealtimeFamily, family_for
from voiceclient.client.scripted import ScriptedTransport
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import CallError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.tools.registry import tool

pytestmark = pytest.mark.timeout(10)
SETTINGS = ClientSettings(api_key="sk-test")


def live_session(model: str = "gpt-live-1") -> SessionConfig:
    return SessionConfig.model_validate({"type": "realtime", "model": model, "instructions": "Be brief."})


def test_the_family_is_chosen_by_the_model_or_the_setting() -> None:
    assert isinstance(family_for(SETTINGS, live_session()), LiveFamily)
    assert isinstance(family_for(SETTINGS, live_session("gpt-realtime")), RealtimeFamily)
    explicit = SETTINGS.model_copy(update={"api": "live"})
    assert isinstance(family_for(explicit, live_session("my-deployment")), LiveFamily)
    assert isinstance(family_for(SETTINGS.model_copy(update={"api": "realtime"}), live_session()), RealtimeFamily)


async def test_a_live_call_groups_deltas_into_turns_and_closes_with_the_reason() -> None:
    def server(event: dict[str, Any]) -> None:
        if event["type"] == "session.close":
            usage = {"seconds": 3.5}
            transport.emit({"type": "session.closed", "reason": "close_requested", "usage": usage, "session": {}})

    transport = ScriptedTransport(server, live=True, call_id="live_scripted")
    turns: list[TranscriptTurn] = []
    async with VoiceCall(SETTINGS, live_session(), transport=transport) as call:
        call.on(TranscriptTurn, turns.append)
        assert call.effective_session is not None and call.effective_session["status"] == "active"
        script = (("input", 0, ["What ", "time?"]), ("output", 1000, ["It is ", "noon."]), ("input", 3000, ["Thanks"]))
        for role, at, words in script:
            for i, word in enumerate(words):
                kind = f"session.{role}_transcript.delta"
                start = at + i * 300
                transport.emit({"type": kind, "delta": word, "start_ms": start, "end_ms": start + 250})
        await call.events_handled()
        assert [(t.role, t.text) for t in turns] == [("user", "What time?"), ("assistant", "It is noon.")]
        with pytest.raises(CallError, match="Realtime API's"):
            call.send(ev.ConversationItemCreate(item=ev.Item.user_text("hi")))
        with pytest.raises(CallError, match="Realtime API's"):
            call.send(ev.InputAudioBufferCommit())
        with pytest.raises(CallError, match="fixed when it starts"):
            call.update_session(live_session())
        call.interrupt()  # (nothing to cancel: the model takes its own turns)
    assert [(t.role, t.text) for t in turns][-1] == ("user", "Thanks")  # the last turn, finished at the close
    assert transport.sent_types() == ["session.close"]
    assert call.session_closed is not None and call.session_closed.usage.seconds == 3.5
    assert [(item.role, item.text) for item in call.history] == [
        ("user", "What time?"),
        ("assistant", "It is noon."),
        ("user", "Thanks"),
    ]


async def test_the_users_words_arriving_late_still_come_first_and_a_quiet_turn_ends() -> None:
    transport = ScriptedTransport(live=True)
    turns: list[TranscriptTurn] = []
    async with VoiceCall(SETTINGS, live_session(), transport=transport) as call:
        call.on(TranscriptTurn, turns.append)
        for i, word in enumerate(["Echo ", "of ", "you."]):  # the answer's words first, as serve sends an echo's
            transport.emit(
                {
                    "type": "session.output_transcript.delta",
                    "delta": word,
                    "start_ms": 3500 + i * 300,
                    "end_ms": 3700 + i * 300,
                }
            )
        for word in ["The ", "quick ", "fox."]:  # then the user's, spoken before it
            transport.emit({"type": "session.input_transcript.delta", "delta": word, "start_ms": 0, "end_ms": 3400})
        await call.events_handled()
        assert [(item.role, item.text) for item in call.history] == [
            ("user", "The quick fox."),
            ("assistant", "Echo of you."),
        ]
        finished = asyncio.Event()
        call.on(TranscriptTurn, lambda turn: finished.set() if len(turns) == 2 else None)
        await asyncio.wait_for(finished.wait(), 5)  # both turns end after a quiet moment, not only at the close
        assert {(t.role, t.text) for t in turns} == {("user", "The quick fox."), ("assistant", "Echo of you.")}


async def test_a_live_close_without_session_closed_is_bounded() -> None:
    transport = ScriptedTransport(live=True)
    async with VoiceCall(SETTINGS, live_session(), transport=transport) as call:
        pass
    assert transport.sent_types() == ["session.close"] and call.session_closed is None


async def test_live_only_requests_are_refused_in_a_realtime_call() -> None:
    async with VoiceCall(SETTINGS, live_session("gpt-realtime"), transport=ScriptedTransport()) as call:
        with pytest.raises(CallError, match="GPT-Live's"):
            call.mute()
        with pytest.raises(CallError, match="GPT-Live's"):
            call.append_instructions("more")


async def test_tools_answer_calls_delegated_to_a_responses_backend() -> None:
    from openai.types.live import ClientEvent
    from pydantic import TypeAdapter

    @tool
    def get_weather(city: str) -> dict:
        """Weather for a city."""
        return {"city": city, "forecast": "sunny"}

    def envelope(event: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response.event", "delegation_id": "deleg_1", "event": event}

    transport = ScriptedTransport(live=True)
    async with VoiceCall(SETTINGS, live_session(), tools=[get_weather], transport=transport) as call:
        delegation = LiveFamily().session(call.session, websocket=False)["delegation"]
        assert delegation["type"] == "responses"
        assert [t["name"] for t in delegation["responses"]["tools"]] == ["get_weather"]
        transport.emit(envelope({"type": "response.created", "response": {"id": "resp_1"}}))
        for call_id, city in (("call_1", "Paris"), ("call_2", "Oslo")):
            item = {
                "type": "function_call",
                "call_id": call_id,
                "name": "get_weather",
                "arguments": f'{{"city": "{city}"}}',
            }
            transport.emit(envelope({"type": "response.output_item.done", "output_index": 0, "item": item}))
        transport.emit(envelope({"type": "response.completed", "response": {"id": "resp_1"}}))
        await transport.wait_sent("response.create")
        outputs = transport.sent_of("response.item.create")
        assert sorted(o["item"]["call_id"] for o in outputs) == ["call_1", "call_2"]
        assert {o["item"]["output"] for o in outputs} == {
            '{"city": "Paris", "forecast": "sunny"}',
            '{"city": "Oslo", "forecast": "sunny"}',
        }
        assert transport.sent_types()[-1] == "response.create" and len(transport.sent_of("response.create")) == 1
        assert call.tool_calls == 2
    adapter: Any = TypeAdapter(ClientEvent)
    for event in transport.sent:
        adapter.validate_python(event)


async def test_the_first_tool_answers_a_task_delegated_to_the_application() -> None:
    from openai.types.live import ClientEvent
    from pydantic import TypeAdapter

    from voiceclient.client.call_events import DelegationRequested

    asked: list[str] = []

    @tool
    def look_up(request: str, detail: int = 1) -> str:
        """Look up what the user asked."""
        asked.append(request)
        return "Sunny."

    @tool(spoken=False)
    def note(request: str) -> dict:
        """Note it."""
        return {"noted": request}

    def closes(event: dict[str, Any]) -> None:
        if event["type"] == "session.close":
            usage = {"seconds": 1.0}
            transport.emit({"type": "session.closed", "reason": "close_requested", "usage": usage, "session": {}})

    settings = SETTINGS.model_copy(update={"delegation": "client"})
    assert LiveFamily(delegation="client").session(live_session(), websocket=False)["delegation"] == {"type": "client"}
    requested: list[DelegationRequested] = []
    for tools, kind, content in (
        ([look_up, note], "session.commentary.append", "Sunny."),
        ([note], "session.thinking.append", '{"noted": "weather in Paris?"}'),
    ):
        transport = ScriptedTransport(closes, live=True)
        async with VoiceCall(settings, live_session(), tools=tools, transport=transport) as call:
            call.on(DelegationRequested, requested.append)
            transport.emit({"type": "session.input_transcript.delta", "delta": "weather in Paris?", "start_ms": 0,
                            "end_ms": 900})  # fmt: skip
            delegation = {"id": "deleg_1", "type": "delegation", "target": "client"}
            transport.emit({"type": "session.delegation.created", "delegation": delegation, "offset_ms": 1000})
            sent = await transport.wait_sent(kind)
            assert sent == [
                {"type": kind, "event_id": sent[0]["event_id"], "content": content, "delegation_id": "deleg_1"}
            ]
            assert not transport.sent_of("response.create") and not transport.sent_of("response.item.create")
            adapter: Any = TypeAdapter(ClientEvent)
            for event in transport.sent:
                adapter.validate_python(event)
    assert asked == ["weather in Paris?"]
    assert [(r.delegation_id, r.offset_ms, r.request, r.tool) for r in requested] == [
        ("deleg_1", 1000, "weather in Paris?", "look_up"),
        ("deleg_1", 1000, "weather in Paris?", "note"),
    ]


async def test_a_task_delegated_before_the_users_words_waits_for_them() -> None:
    asked: list[str] = []

    @tool
    def look_up(request: str) -> str:
        """Look up what the user asked."""
        asked.append(request)
        return "Sunny."

    def closes(event: dict[str, Any]) -> None:
        if event["type"] == "session.close":
            usage = {"seconds": 1.0}
            transport.emit({"type": "session.closed", "reason": "close_requested", "usage": usage, "session": {}})

    settings = SETTINGS.model_copy(update={"delegation": "client"})
    transport = ScriptedTransport(closes, live=True)
    async with VoiceCall(settings, live_session(), tools=[look_up], transport=transport):
        delegation = {"id": "deleg_1", "type": "delegation", "target": "client"}
        transport.emit({"type": "session.delegation.created", "delegation": delegation, "offset_ms": 1000})
        for i, word in enumerate(["Weather ", "in ", "Paris?"]):  # (the transcript comes after the delegation)
            transport.emit({"type": "session.input_transcript.delta", "delta": word, "start_ms": i * 300,
                            "end_ms": i * 300 + 250})  # fmt: skip
        sent = await transport.wait_sent("session.commentary.append")
        assert sent[0]["content"] == "Sunny." and sent[0]["delegation_id"] == "deleg_1"
    assert asked == ["Weather in Paris?"]
