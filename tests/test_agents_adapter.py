"""The Agents SDK adapter's own parts, without a call: `WebRTCModel` stands on the SDK's public `RealtimeModel`
interface and nothing private of the SDK (checked in its source), the session built from the SDK's settings, the
response sequencing (`ResponseGate`), and the conversions of items, usage and user input. (The model over a real
call, through the SDK's `RealtimeSession`, is tests/test_agents_webrtc.py.)"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents import function_tool
from agents.realtime import OpenAIRealtimeWebSocketModel, RealtimeAgent
from agents.realtime.items import AssistantMessageItem, UserMessageItem
from agents.realtime.model import RealtimeModel
from agents.run_context import RunContextWrapper

import voiceclient.agents
from voiceclient.agents import WebRTCModel
from voiceclient.agents.mapping import conversation_message, output_message, usage_event, user_item
from voiceclient.agents.responses import ResponseGate
from voiceclient.agents.settings import audio_format, session_wire, tracing_wire
from voiceclient.protocol.session import SessionConfig

pytestmark = pytest.mark.timeout(20)
PACKAGE = Path(voiceclient.agents.__file__).parent


def test_the_model_implements_the_sdks_public_interface_only() -> None:
    assert RealtimeModel in WebRTCModel.__bases__
    assert not issubclass(WebRTCModel, OpenAIRealtimeWebSocketModel)  # not the SDK's concrete model
    assert not getattr(WebRTCModel, "__abstractmethods__", None)  # every abstract method implemented
    model = WebRTCModel(playback=False)
    assert isinstance(model, RealtimeModel)


def test_the_package_uses_no_sdk_internal() -> None:
    """No `_private` name imported from the SDK (or from an SDK module whose path has one), and no `_private`
    attribute read on anything but the package's own objects (`self`, `cls`): an SDK release can only break the
    adapter through its public API."""
    found: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("agents", "openai"):
                module = node.module or ""
                if any(part.startswith("_") for part in module.split(".")):
                    found.append(f"{path.name}:{node.lineno} from {module}")
                found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Import):
                found += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in ("agents", "openai")
                    and any(p.startswith("_") for p in a.name.split("."))
                ]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                while isinstance(owner, ast.Attribute) and owner.attr.startswith("_"):
                    owner = owner.value  # self._call._x is still the package's own
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert found == []


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        ("pcm16", {"type": "audio/pcm", "rate": 24000}),
        ("g711_ulaw", {"type": "audio/pcmu"}),
        ("audio/pcma", {"type": "audio/pcma"}),
        ({"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcm", "rate": 24000}),
        (None, None),
        ("mp3", None),
    ],
)
def test_audio_formats_as_the_sdk_names_them(given: Any, wire: Any) -> None:
    assert audio_format(given) == wire


async def test_the_session_from_the_sdks_settings() -> None:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    @function_tool(is_enabled=False)
    def hidden(city: str) -> str:
        """Never offered."""
        return ""

    weather = RealtimeAgent(name="weather", instructions="Weather only.", tools=[get_weather, hidden])
    triage = RealtimeAgent(name="triage", handoffs=[weather])
    context = RunContextWrapper(None)
    tools = await weather.get_all_tools(context)
    camel_case: Any = {"type": "server_vad", "silenceDurationMs": 300, "createResponse": True}  # as from JS
    session = session_wire(
        {
            "instructions": "Weather only.",
            "tools": tools,
            "handoffs": [voiceclient_handoff(triage)],
            "voice": "marin",
            "output_audio_format": "g711_ulaw",
            "turn_detection": camel_case,
            "max_output_tokens": 200,
        },
        model="gpt-realtime",
    )
    SessionConfig.model_validate(session)  # what voiceclient sends
    assert session["model"] == "gpt-realtime" and session["instructions"] == "Weather only."
    assert session["output_modalities"] == ["audio"] and session["max_output_tokens"] == 200
    assert [t["name"] for t in session["tools"]] == ["get_weather", "transfer_to_weather"]
    assert session["tools"][0]["parameters"]["properties"]["city"]["type"] == "string"
    audio = session["audio"]
    assert audio["output"] == {"voice": "marin", "format": {"type": "audio/pcmu"}}
    assert audio["input"]["format"] == {"type": "audio/pcm", "rate": 24000}  # the SDK's default
    assert audio["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert audio["input"]["turn_detection"] == {
        "type": "server_vad",
        "silence_duration_ms": 300,
        "create_response": True,
    }
    # the GA `audio` block wins over the flat fields; no model named: none sent (the server's default)
    session = session_wire({"voice": "ash", "audio": {"output": {"voice": "cedar"}, "input": {"turn_detection": None}}})
    assert "model" not in session and session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"] is None
    assert tracing_wire("auto") == "auto" and tracing_wire(None) is None
    assert tracing_wire({"workflow_name": "desk", "group_id": None}) == {"workflow_name": "desk"}


def voiceclient_handoff(agent: RealtimeAgent[Any]) -> Any:
    """The SDK's handoff to the agent `agent` hands off to, as the SDK's session lists it."""
    from agents.realtime import realtime_handoff

    (target,) = agent.handoffs
    assert isinstance(target, RealtimeAgent)
    return realtime_handoff(target)


async def test_one_response_create_at_a_time() -> None:
    gate = ResponseGate()
    first = await gate.reserve()
    assert await gate.turn(first) is not None  # nothing runs: it may go
    await gate.sent(first, manual=False)
    second, third = await gate.reserve(), await gate.reserve()
    manual = await gate.reserve(manual=True)
    turns = {v: asyncio.create_task(gate.turn(v, "mine" if v == manual else None)) for v in (second, third, manual)}
    await asyncio.sleep(0)
    assert not any(t.done() for t in turns.values())  # the first was asked for, not yet answered
    await gate.created("resp_1")
    await asyncio.sleep(0)
    assert not any(t.done() for t in turns.values())  # ... and now runs
    await gate.done("resp_other")  # another response's end changes nothing
    await asyncio.sleep(0)
    assert not any(t.done() for t in turns.values())
    await gate.done("resp_1")
    event_id = await asyncio.wait_for(turns[second], 5)
    assert event_id is not None and gate.asked == event_id
    await gate.sent(second, manual=False)  # a plain create answers the plain request after it too
    assert await asyncio.wait_for(turns[third], 5) is None
    assert not turns[manual].done()
    assert await gate.refused(event_id, names_create=False)  # refused: the next may go
    assert await asyncio.wait_for(turns[manual], 5) == "mine"
    await gate.sent(manual, manual=True)
    assert gate.pending and gate.asked == "mine"  # sent, not answered yet
    await gate.created("resp_2")
    assert not gate.pending and gate.ongoing_id == "resp_2"
    assert await gate.begin_cancel("resp_other") is False  # scoped to another response
    assert await gate.begin_cancel("resp_2") is True
    assert await gate.begin_cancel(None) is False  # already being cancelled
    late = await gate.reserve()
    waiting = asyncio.create_task(gate.turn(late))
    await gate.reset()  # the call closed: the waiting sender returns
    assert await asyncio.wait_for(waiting, 5) is None


async def test_close_is_idempotent_and_leaves_no_task() -> None:
    model = WebRTCModel(playback=False)
    before = asyncio.all_tasks()
    await model.close()
    await model.close()
    assert asyncio.all_tasks() == before
    with pytest.raises(Exception, match="not connected"):
        _ = model.call


def test_items_as_the_sdks_history_items() -> None:
    user = conversation_message(
        {"id": "item_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}, "item_0"
    )
    assert isinstance(user, UserMessageItem) and user.previous_item_id == "item_0" and user.content[0].text == "Hi"
    answer = conversation_message(
        {
            "id": "item_2",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": "Hello."}],
        },
        None,
    )
    assert isinstance(answer, AssistantMessageItem) and answer.content[0].type == "audio"
    assert answer.status == "completed"
    added = output_message(
        {"id": "item_3", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Yes"}]},
        done=False,
    )
    assert isinstance(added, AssistantMessageItem) and added.status == "in_progress"
    assert [c.model_dump() for c in added.content] == [{"type": "text", "text": "Yes"}]


def test_usage_and_user_input() -> None:
    event = usage_event(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "input_token_details": {"audio_tokens": 8, "text_tokens": 2, "cached_tokens": 4},
            "output_token_details": {"audio_tokens": 5},
        }
    )
    assert (event.usage.requests, event.usage.input_tokens, event.usage.output_tokens) == (1, 10, 5)
    assert event.usage.total_tokens == 15 and event.usage.input_tokens_details.cached_tokens == 4
    assert event.input_tokens_details is not None and event.input_tokens_details.audio_tokens == 8
    assert event.output_tokens_details is not None and event.output_tokens_details.audio_tokens == 5
    assert user_item("Hello").model_dump(exclude_none=True) == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hello"}],
    }
    item = user_item(
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"},
                {"type": "input_image", "image_url": ""},
            ],
        }
    )
    assert [p.model_dump(exclude_none=True) for p in item.content or []] == [
        {"type": "input_text", "text": "Look"},
        {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"},
    ]
