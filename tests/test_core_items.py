"""The session core's conversation and client-event handling, driven in memory (`MemorySession`): items created,
placed, retrieved and deleted; malformed client messages; `session.update` and its refusals; function and MCP calls
scripted by a scenario."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.server.responders import ScenarioResponder, ScenarioSpec
from voiceclient.server.session_rules import default_session
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

TEXT_ONLY = {"output_modalities": ["text"]}


def user_text(text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}], **fields}


def manual_turns() -> dict[str, Any]:
    """Session fields without turn detection: the client commits its audio itself."""
    audio = copy.deepcopy(default_session()["audio"])
    audio["input"]["turn_detection"] = None
    return {"audio": audio}


def scenario(spec: dict[str, Any]) -> ScenarioResponder:
    return ScenarioResponder(ScenarioSpec.model_validate(spec), Path("."))


async def create(s: MemorySession, item: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Create an item; returns its `conversation.item.done` (checked against the `added` before it)."""
    s.send({"type": "conversation.item.create", "item": item, **fields})
    added = await s.next_event("conversation.item.added")
    done = await s.next_event("conversation.item.done")
    assert done["item"] == added["item"] and done["previous_item_id"] == added["previous_item_id"]
    return done


async def refused(s: MemorySession, event: dict[str, Any] | str) -> dict[str, Any]:
    """Send a client event (a dict, or raw text) and return the `error` it gets."""
    if isinstance(event, str):
        s.send_raw(event)
    else:
        s.send(event)
    error: dict[str, Any] = (await s.next_event("error"))["error"]
    return error


def conversation_ids(s: MemorySession) -> list[str]:
    return [it["id"] for it in s.core.conversation.items]


def types_between(s: MemorySession, first: str, last: str, response_id: str) -> list[str]:
    """The event types of one response from `first` to `last` (rate limits left out)."""
    kinds = [e["type"] for e in s.events]
    start = next(
        i for i, e in enumerate(s.events) if e["type"] == first and e.get("response", {}).get("id") == response_id
    )
    end = next(
        i
        for i, e in enumerate(s.events)
        if i > start and e["type"] == last and e.get("response", {}).get("id") == response_id
    )
    return [k for k in kinds[start : end + 1] if k != "rate_limits.updated"]


# ----------------------------------------------------------------------------------------------- creating items
async def test_a_created_item_is_announced_added_then_done_and_chained_after_the_last() -> None:
    async with MemorySession() as s:
        first = await create(s, user_text("one"))
        item = first["item"]
        assert first["previous_item_id"] is None
        assert item["id"].startswith("item_") and item["object"] == "realtime.item" and item["status"] == "completed"
        assert item["content"] == [{"type": "input_text", "text": "one"}]
        kinds = [e["type"] for e in s.events]
        assert kinds.index("conversation.item.added") + 1 == kinds.index("conversation.item.done")
        second = await create(s, user_text("two"))
        assert second["previous_item_id"] == item["id"]
        assert conversation_ids(s) == [item["id"], second["item"]["id"]]


async def test_an_item_keeps_the_id_the_client_gave_and_a_second_with_that_id_is_refused() -> None:
    async with MemorySession() as s:
        done = await create(s, user_text("mine", id="item_client_1"))
        assert done["item"]["id"] == "item_client_1"
        again = user_text("again", id="item_client_1")
        error = await refused(s, {"type": "conversation.item.create", "event_id": "ev_dup", "item": again})
        assert error["code"] == "item_create_duplicate_item_id" and error["event_id"] == "ev_dup"
        assert conversation_ids(s) == ["item_client_1"]


async def test_previous_item_id_places_the_item_after_that_item() -> None:
    async with MemorySession() as s:
        a = (await create(s, user_text("a")))["item"]["id"]
        b = (await create(s, user_text("b")))["item"]["id"]
        c = await create(s, user_text("c"), previous_item_id=a)
        assert c["previous_item_id"] == a
        assert conversation_ids(s) == [a, c["item"]["id"], b]
        d = await create(s, user_text("d"))  # without previous_item_id: after the last item, b
        assert d["previous_item_id"] == b


async def test_root_places_the_item_first() -> None:
    async with MemorySession() as s:
        a = (await create(s, user_text("a")))["item"]["id"]
        first = await create(s, user_text("first"), previous_item_id="root")
        assert first["previous_item_id"] is None
        assert conversation_ids(s) == [first["item"]["id"], a]


async def test_an_unknown_previous_item_id_is_item_not_found_and_adds_nothing() -> None:
    async with MemorySession() as s:
        a = (await create(s, user_text("a")))["item"]["id"]
        error = await refused(
            s,
            {
                "type": "conversation.item.create",
                "event_id": "ev_place",
                "item": user_text("lost"),
                "previous_item_id": "item_nowhere",
            },
        )
        assert (error["code"], error["param"], error["event_id"]) == ("item_not_found", "previous_item_id", "ev_place")
        assert error["type"] == "invalid_request_error" and "item_nowhere" in error["message"]
        assert conversation_ids(s) == [a]
        assert len(s.sent("conversation.item.added")) == 1


INVALID_ITEMS = [
    ({"type": "reasoning"}, "item.type"),
    ({"type": "message", "role": "tool", "content": [{"type": "input_text", "text": "x"}]}, "item.role"),
    ({"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]}, "item.content[0].type"),
    (
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "x"}, {"type": "input_audio", "audio": ""}],
        },
        "item.content[1].type",
    ),
    (
        {"type": "message", "role": "assistant", "content": [{"type": "input_text", "text": "y"}]},
        "item.content[0].type",
    ),
    ({"type": "message", "role": "user", "content": []}, "item.content"),
    ({"type": "function_call_output", "call_id": "call_1"}, "item.call_id"),
    ({"type": "function_call", "call_id": "call_1", "arguments": "{}"}, "item.call_id"),
    ({"type": "mcp_approval_response", "approval_request_id": "item_x"}, "item.approval_request_id"),
]


@pytest.mark.parametrize(
    ("item", "param"),
    INVALID_ITEMS,
    ids=[
        "unknown-type",
        "unknown-role",
        "user-output-part",
        "system-audio-part",
        "assistant-input-part",
        "no-content",
        "output-without-output",
        "call-without-name",
        "approval-without-approve",
    ],
)
async def test_an_item_the_server_does_not_take_is_invalid_value_on_its_field(item: dict[str, Any], param: str) -> None:
    async with MemorySession() as s:
        error = await refused(s, {"type": "conversation.item.create", "event_id": "ev_bad", "item": item})
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", param, "ev_bad")
        assert not s.sent("conversation.item.added") and s.core.conversation.items == []


async def test_an_approval_for_no_pending_mcp_request_is_item_not_found() -> None:
    async with MemorySession() as s:
        item = {"type": "mcp_approval_response", "approval_request_id": "item_never_asked", "approve": True}
        error = await refused(s, {"type": "conversation.item.create", "item": item})
        assert (error["code"], error["param"]) == ("item_not_found", "item.approval_request_id")
        assert s.core.conversation.items == []


# ----------------------------------------------------------------------------------------------- retrieve, delete
async def test_retrieving_a_committed_user_audio_item_returns_its_audio() -> None:
    spoken = tone(330, 0.4, API_RATE, -12)
    async with MemorySession(manual_turns()) as s:
        wire = base64.b64encode(spoken.astype("<i2").tobytes()).decode()
        s.send({"type": "input_audio_buffer.append", "audio": wire})
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        s.send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        retrieved = (await s.next_event("conversation.item.retrieved"))["item"]
        assert retrieved["id"] == committed["item_id"] and retrieved["role"] == "user"
        part = retrieved["content"][0]
        assert part["type"] == "input_audio"
        audio = np.frombuffer(base64.b64decode(part["audio"]), "<i2")
        np.testing.assert_array_equal(audio, spoken)
        assert not s.sent("response.created")  # without turn detection a commit does not answer


async def test_retrieving_a_text_item_returns_it_as_created() -> None:
    async with MemorySession() as s:
        created = (await create(s, user_text("keep me")))["item"]
        s.send({"type": "conversation.item.retrieve", "item_id": created["id"]})
        retrieved = (await s.next_event("conversation.item.retrieved"))["item"]
        assert retrieved == created and "audio" not in retrieved["content"][0]


async def test_a_deleted_item_is_gone_for_retrieve_and_for_a_second_delete() -> None:
    async with MemorySession() as s:
        a = (await create(s, user_text("a")))["item"]["id"]
        b = (await create(s, user_text("b")))["item"]["id"]
        s.send({"type": "conversation.item.delete", "item_id": a})
        deleted = await s.next_event("conversation.item.deleted")
        assert deleted["item_id"] == a and conversation_ids(s) == [b]
        error = await refused(s, {"type": "conversation.item.retrieve", "event_id": "ev_r", "item_id": a})
        assert (error["code"], error["param"], error["event_id"]) == ("item_retrieve_invalid_item_id", None, "ev_r")
        assert a in error["message"]
        error = await refused(s, {"type": "conversation.item.delete", "item_id": a})
        assert (error["code"], error["param"]) == ("item_delete_invalid_item_id", None)
        assert len(s.sent("conversation.item.deleted")) == 1


# ----------------------------------------------------------------------------------------------- malformed messages
@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1, 2]", '{"event_id": "ev_1"}', '{"type": 7}', b"\xff\xfe"],
    ids=["broken", "array", "no-type", "type-not-a-string", "binary"],
)
async def test_a_message_that_is_not_an_event_object_is_invalid_json(raw: str | bytes) -> None:
    async with MemorySession() as s:
        s.send_raw(raw)
        error = (await s.next_event("error"))["error"]
        assert error["code"] == "invalid_json" and error["type"] == "invalid_request_error"
        assert error["event_id"] is None  # nothing to echo: it was not an event


async def test_an_unknown_event_type_is_invalid_value_on_type_and_echoes_the_event_id() -> None:
    async with MemorySession() as s:
        error = await refused(s, {"type": "conversation.item.create_all", "event_id": "ev_typo"})
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "ev_typo")
        assert "conversation.item.create" in error["message"]  # the supported values are listed


async def test_a_missing_required_field_is_missing_required_parameter_on_that_field() -> None:
    async with MemorySession() as s:
        error = await refused(s, {"type": "conversation.item.retrieve", "event_id": "ev_noid"})
        assert error["code"] == "missing_required_parameter"
        assert (error["param"], error["event_id"]) == ("item_id", "ev_noid")


async def test_a_field_the_event_does_not_take_is_refused_on_that_field() -> None:
    async with MemorySession() as s:
        error = await refused(s, {"type": "response.cancel", "event_id": "ev_extra", "reason": "bored"})
        assert (error["code"], error["param"], error["event_id"]) == ("unknown_parameter", "reason", "ev_extra")
        assert error["message"] == "Unknown parameter: 'reason'."


async def test_the_session_keeps_serving_after_each_bad_message() -> None:
    bad: list[dict[str, Any] | str] = [
        "{oops",
        {"type": "no.such.event", "event_id": "ev_a"},
        {"type": "conversation.item.delete", "event_id": "ev_b"},
        {"type": "conversation.item.delete", "event_id": "ev_c", "item_id": "item_missing"},
        {"type": "conversation.item.create", "event_id": "ev_d", "item": {"type": "nope"}},
        {"type": "response.cancel", "event_id": "ev_e"},
    ]
    async with MemorySession(TEXT_ONLY) as s:
        for message in bad:
            await refused(s, message)
        errors = s.sent("error")
        assert [e["error"]["event_id"] for e in errors] == [None, "ev_a", "ev_b", "ev_c", "ev_d", "ev_e"]
        assert [e["error"]["code"] for e in errors] == [
            "invalid_json",
            "invalid_value",
            "missing_required_parameter",
            "item_delete_invalid_item_id",
            "invalid_value",
            "response_cancel_not_active",
        ]
        await create(s, user_text("still there?"))
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["text"] == "You said: still there?"


# ----------------------------------------------------------------------------------------------- session.update
async def test_session_updated_reflects_the_update_merged_into_the_session() -> None:
    async with MemorySession() as s:
        s.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "output_modalities": ["text"],
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
                },
            }
        )
        session = (await s.next_event("session.updated"))["session"]
        assert session["instructions"] == "Be brief." and session["output_modalities"] == ["text"]
        td = session["audio"]["input"]["turn_detection"]
        # a new turn_detection object is completed with its type's defaults; the rest of the session stays
        assert td["silence_duration_ms"] == 500 and td["prefix_padding_ms"] == 300 and td["create_response"] is True
        assert session["audio"]["output"]["voice"] == "alloy"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await create(s, user_text("hi"))
        s.send({"type": "response.create"})
        created = await s.next_event("response.created")
        assert created["response"]["output_modalities"] == ["text"]


async def test_a_refused_session_update_leaves_the_session_as_it_was() -> None:
    async with MemorySession() as s:
        before = copy.deepcopy(s.core.session)
        error = await refused(
            s,
            {
                "type": "session.update",
                "event_id": "ev_upd",
                "session": {"type": "realtime", "instructions": "New.", "temperature": 0.7},
            },
        )
        assert (error["code"], error["param"], error["event_id"]) == (
            "unknown_parameter",
            "session.temperature",
            "ev_upd",
        )
        assert error["message"] == "Unknown parameter: 'session.temperature'."
        assert s.core.session == before and not s.sent("session.updated")


async def test_a_session_update_without_session_type_is_refused_whole() -> None:
    """The GA service refuses an update whose session has no `type` (a beta leftover): nothing of it applies.
    Source: a live conformance run against the GA service (docs/protocol.md, "Where serve is strict")."""
    async with MemorySession() as s:
        before = copy.deepcopy(s.core.session)
        error = await refused(s, {"type": "session.update", "event_id": "ev_t", "session": {"instructions": "New."}})
        assert (error["code"], error["param"], error["event_id"]) == (
            "missing_required_parameter",
            "session.type",
            "ev_t",
        )
        assert s.core.session == before and not s.sent("session.updated")


async def test_a_wrong_typed_session_field_is_invalid_type_on_its_path() -> None:
    async with MemorySession() as s:
        error = await refused(
            s, {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"format": "pcm16"}}}}
        )
        assert (error["code"], error["param"]) == ("invalid_type", "session.audio.input.format")
        error = await refused(s, {"type": "session.update", "session": {"type": "realtime", "truncation": "some"}})
        assert (error["code"], error["param"]) == ("invalid_value", "session.truncation")
        assert "literal" not in error["message"]
        # JSON types are held strictly, as the service's schema holds them: no "yes" for true, no 1 for a string
        td = {"type": "server_vad", "create_response": "yes"}
        error = await refused(
            s, {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": td}}}}
        )
        assert (error["code"], error["param"]) == ("invalid_type", "session.audio.input.turn_detection.create_response")
        error = await refused(s, {"type": "session.update", "session": {"type": "realtime", "instructions": 1}})
        assert (error["code"], error["param"]) == ("invalid_type", "session.instructions")


async def test_an_update_naming_another_model_keeps_the_model_and_applies_the_rest() -> None:
    async with MemorySession() as s:
        s.send({"type": "session.update", "session": {"type": "realtime", "model": "other-model", "instructions": "X"}})
        session = (await s.next_event("session.updated"))["session"]
        assert session["model"] == "gpt-realtime" and session["instructions"] == "X"


async def test_the_voice_changes_before_any_audio_but_not_once_assistant_audio_exists() -> None:
    def voice(name: str) -> dict[str, Any]:
        return {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": name}}}}

    async with MemorySession(playout=False) as s:
        s.send(voice("verse"))
        assert (await s.next_event("session.updated"))["session"]["audio"]["output"]["voice"] == "verse"
        await create(s, user_text("speak"))
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["audio"]["output"]["voice"] == "verse"
        assert s.sent("response.output_audio.delta")  # the answer had audio
        error = await refused(s, {**voice("alloy"), "event_id": "ev_voice"})
        assert (error["code"], error["param"], error["event_id"]) == (
            "cannot_update_voice",
            None,  # the real error names no param (openai-agents-python issue 1661)
            "ev_voice",
        )
        assert s.core.session["audio"]["output"]["voice"] == "verse"
        s.send(voice("verse"))  # naming the voice it already has is no change
        assert (await s.next_event("session.updated"))["session"]["audio"]["output"]["voice"] == "verse"


async def test_tracing_cannot_change_once_it_is_set() -> None:
    async with MemorySession({"tracing": "auto"}) as s:
        error = await refused(
            s,
            {"type": "session.update", "session": {"type": "realtime", "tracing": {"workflow_name": "other"}}},
        )
        assert (error["code"], error["param"]) == ("invalid_value", "session.tracing")
        assert s.core.session["tracing"] == "auto"


# ----------------------------------------------------------------------------------------------- function calls
WEATHER = {
    "turns": [
        {
            "calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            "after_tools": {"text": "It is {output[forecast]} in {output[city]}."},
        }
    ],
    "after_turns": "silence",
}
WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


async def test_a_scripted_function_call_streams_its_arguments_in_order() -> None:
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL]}, scenario(WEATHER)) as s:
        await create(s, user_text("weather in Paris?"))
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        resp_id = done["response"]["id"]
        assert types_between(s, "response.created", "response.done", resp_id) == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        [args_done] = s.sent("response.function_call_arguments.done")
        deltas = s.sent("response.function_call_arguments.delta")
        assert json.loads(args_done["arguments"]) == {"city": "Paris"}
        assert "".join(d["delta"] for d in deltas) == args_done["arguments"]
        assert args_done["name"] == "get_weather" and args_done["call_id"].startswith("call_")
        assert {d["call_id"] for d in deltas} == {args_done["call_id"]}
        [call] = done["response"]["output"]
        assert call["type"] == "function_call" and call["status"] == "completed"
        assert (call["call_id"], call["arguments"], call["id"]) == (
            args_done["call_id"],
            args_done["arguments"],
            args_done["item_id"],
        )


async def test_a_function_output_waits_for_response_create_then_gets_the_after_tools_reply() -> None:
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL]}, scenario(WEATHER)) as s:
        await create(s, user_text("weather in Paris?"))
        s.send({"type": "response.create"})
        call_id = (await s.next_event("response.function_call_arguments.done"))["call_id"]
        first = await s.next_event("response.done")
        result = json.dumps({"forecast": "sunny", "city": "Paris"})
        output = {"type": "function_call_output", "call_id": call_id, "output": result}
        done_item = await create(s, output)
        assert done_item["previous_item_id"] == first["response"]["output"][0]["id"]
        assert s.core.responses.active is None and len(s.sent("response.created")) == 1  # no reply by itself
        s.send({"type": "response.create"})
        reply = await s.next_event("response.done")
        assert reply["response"]["status"] == "completed"
        [message] = reply["response"]["output"]
        assert message["role"] == "assistant"
        assert message["content"] == [{"type": "output_text", "text": "It is sunny in Paris."}]
        deltas = [e["delta"] for e in s.sent("response.output_text.delta")]
        assert "".join(deltas) == "It is sunny in Paris."


async def test_a_function_output_for_a_call_the_conversation_never_had_is_refused() -> None:
    """The real service checks the call id (OpenAPI 2.3.0's text); the item is not added."""
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL]}) as s:
        output = {"type": "function_call_output", "call_id": "call_never", "output": "{}"}
        error = await refused(s, {"type": "conversation.item.create", "event_id": "ev_out", "item": output})
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "item.call_id", "ev_out")
        assert "call_never" in error["message"]
        assert not s.core.conversation.items and not s.sent("conversation.item.added")


# ----------------------------------------------------------------------------------------------- MCP calls
MCP_TOOL = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.invalid/sse"}
DOCS_SEARCH = {
    "turns": [
        {
            "mcp": {
                "server_label": "docs",
                "name": "search",
                "arguments": {"q": "webrtc"},
                "output": "3 results",
                "after": {"text": "The docs say: {output}"},
            }
        }
    ],
    "after_turns": "silence",
}


async def test_an_mcp_call_without_approval_runs_and_reports_its_output() -> None:
    tool = {**MCP_TOOL, "require_approval": "never"}
    async with MemorySession({**TEXT_ONLY, "tools": [tool]}, scenario(DOCS_SEARCH)) as s:
        listing = await s.next_event("conversation.item.done")  # the session's MCP server is listed as it opens
        assert listing["item"]["type"] == "mcp_list_tools" and listing["item"]["server_label"] == "docs"
        assert [t["name"] for t in listing["item"]["tools"]] == ["search"]
        await create(s, user_text("search the docs"))
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        resp_id = done["response"]["id"]
        kinds = types_between(s, "response.created", "response.done", resp_id)
        mcp = [k for k in kinds if k.startswith("response.mcp_call")]
        assert mcp == [
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
        ]
        call, message = done["response"]["output"]
        assert (call["type"], call["server_label"], call["name"]) == ("mcp_call", "docs", "search")
        assert json.loads(call["arguments"]) == {"q": "webrtc"} and call["output"] == "3 results"
        assert message["content"] == [{"type": "output_text", "text": "The docs say: 3 results"}]


async def test_an_mcp_call_needing_approval_runs_once_the_client_approves() -> None:
    async with MemorySession({**TEXT_ONLY, "tools": [MCP_TOOL]}, scenario(DOCS_SEARCH)) as s:
        await s.next_event("mcp_list_tools.completed")
        await s.next_event("conversation.item.done")  # the listing's
        await create(s, user_text("search the docs"))
        s.send({"type": "response.create"})
        first = await s.next_event("response.done")
        [request] = first["response"]["output"]
        assert request["type"] == "mcp_approval_request" and request["name"] == "search"
        assert not s.sent("response.mcp_call.in_progress")  # nothing runs before the approval
        approval = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
        await create(s, approval)
        s.send({"type": "response.create"})
        second = await s.next_event("response.done")
        call, message = second["response"]["output"]
        assert call["type"] == "mcp_call" and call["approval_request_id"] == request["id"]
        assert call["output"] == "3 results"
        assert message["content"] == [{"type": "output_text", "text": "The docs say: 3 results"}]
        # the request is answered: approving it again is refused
        error = await refused(s, {"type": "conversation.item.create", "item": approval})
        assert (error["code"], error["param"]) == ("item_not_found", "item.approval_request_id")


async def test_an_error_names_the_client_event_id_and_null_when_the_client_sent_none() -> None:
    """The id of the event the error answers is the client's own; a well-formed event sent without one is
    answered with null, never with an id the server made up while parsing it."""
    async with MemorySession() as s:
        s.send({"type": "conversation.item.retrieve", "item_id": "item_missing"})
        without = await s.next_event("error")
        s.send({"type": "conversation.item.retrieve", "item_id": "item_missing", "event_id": "evt_mine"})
        named = await s.next_event("error")
        assert without["error"]["code"] == named["error"]["code"] == "item_retrieve_invalid_item_id"
        assert without["error"]["event_id"] is None and named["error"]["event_id"] == "evt_mine"


async def test_a_refused_turn_detection_field_is_named_by_the_path_the_client_wrote() -> None:
    """The error's param is the field as sent (`session.audio.input.turn_detection.idle_timeout_ms`), without the
    validator's union tag (`server_vad`) that the client never wrote."""
    async with MemorySession() as s:
        td = {"type": "server_vad", "idle_timeout_ms": 1000}
        s.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": td}}}})
        error = await s.next_event("error")
        assert error["error"]["param"] == "session.audio.input.turn_detection.idle_timeout_ms"
        assert "server_vad." not in error["error"]["message"]
