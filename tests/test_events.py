from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import TypeAdapter

from voiceclient import SessionConfig
from voiceclient.client.dispatcher import Dispatcher
from voiceclient.protocol import events as ev

pytestmark = pytest.mark.timeout(10)


def test_unknown_and_malformed_never_raise() -> None:
    unknown = ev.parse_server_event('{"type": "brand.new.event", "event_id": "e", "x": 1}')
    assert isinstance(unknown, ev.UnknownEvent) and unknown.type == "brand.new.event"
    for raw in ["{bad", "[]", '{"no": "type"}', b"\xff\xfe", '{"type": 5}']:
        assert isinstance(ev.parse_server_event(raw), ev.MalformedEvent)  # type: ignore[arg-type]
    broken = ev.parse_server_event('{"type": "response.done", "event_id": "e9"}')
    assert isinstance(broken, ev.MalformedEvent) and broken.event_type == "response.done"
    assert broken.event_id == "e9" and "response" in broken.reason


def test_known_events_decode_to_their_models() -> None:
    e = ev.parse_server_event(
        json.dumps(
            {
                "type": "response.function_call_arguments.done",
                "event_id": "e",
                "response_id": "r",
                "item_id": "i",
                "output_index": 0,
                "call_id": "c",
                "name": "f",
                "arguments": "{}",
                "new_field": 1,
            }
        )
    )
    assert isinstance(e, ev.ResponseFunctionCallArgumentsDone) and e.call_id == "c"


def test_the_unions_cover_every_event_of_the_official_sdk() -> None:
    import typing

    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

    def types_of(union: object) -> set[str]:
        members = typing.get_args(typing.get_args(union)[0])
        return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}

    assert types_of(RealtimeServerEvent) <= ev.SERVER_EVENT_TYPES
    assert types_of(RealtimeClientEvent) == ev.CLIENT_EVENT_TYPES


def test_every_client_event_we_emit_validates_against_the_oracle() -> None:
    from openai.types.realtime import RealtimeClientEvent

    oracle = TypeAdapter(RealtimeClientEvent)
    session = SessionConfig.model_validate(
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": None}},
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
        }
    )
    emitted = [
        ev.SessionUpdate(session=session),
        ev.InputAudioBufferAppend(audio="AAAA"),
        ev.InputAudioBufferCommit(),
        ev.InputAudioBufferClear(),
        ev.OutputAudioBufferClear(),
        ev.ConversationItemCreate(item=ev.Item.user_text("hi")),
        ev.ConversationItemCreate(item=ev.Item.function_call_output("call_1", '{"ok": true}')),
        ev.ConversationItemRetrieve(item_id="i"),
        ev.ConversationItemTruncate(item_id="i", audio_end_ms=10),
        ev.ConversationItemDelete(item_id="i"),
        ev.ResponseCreate(),
        ev.ResponseCreate(response=ev.ResponseParams(instructions="x", conversation="none", metadata={"a": "b"})),
        ev.ResponseCancel(),
        ev.ResponseCancel(response_id="r"),
    ]
    for event in emitted:
        wire = json.loads(event.to_json())
        assert oracle.validate_python(wire).type == wire["type"]
        assert wire["event_id"].startswith("event_")
        assert isinstance(ev.parse_client_event(event.to_json()), type(event))


async def test_dispatcher_is_ordered_and_survives_a_failing_handler() -> None:
    seen: list[str] = []
    failures: list[str] = []
    d = Dispatcher(on_handler_error=lambda e, exc: failures.append(e.type))

    async def slow(e) -> None:
        await asyncio.sleep(0.01)
        seen.append("slow:" + e.event_id)

    def boom(e) -> None:
        raise RuntimeError("handler bug")

    d.on("error", slow)
    d.on("error", boom)
    d.on_any(lambda e: seen.append("any:" + (e.event_id or "")))
    d.start()
    for i in range(3):
        d.put(
            ev.parse_server_event(
                json.dumps({"type": "error", "event_id": str(i), "error": {"type": "x", "message": "m"}})
            )
        )
    await d.drain(2)
    await d.stop()
    assert seen == ["slow:0", "any:0", "slow:1", "any:1", "slow:2", "any:2"]
    assert failures == ["error"] * 3
