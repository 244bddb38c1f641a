"""Conformance: where the real service is strict, `serve` is too. One test per row of the audit (docs/protocol.md,
"Where serve is as strict as the service"), each naming the source of the real behaviour, each on the wire as any
client sends it (a plain WebSocket and JSON, so that nothing of ours or of an SDK shapes what is sent).

By default every row runs against a `serve` of its own on 127.0.0.1. The same rows run against any server at a URL:
that is the drift check, for whoever has a key, which keeps the emulator honest as the service changes:

    VOICECLIENT_CONFORMANCE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \\
        .venv/bin/python -m pytest tests/test_conformance.py

A row that fails there is a place where `serve` and the service differ. A row asserts only what its source
establishes (a refusal whose exact code no source gives is asserted as a refusal, on its param).

The GPT-Live rows go through the same switch, by the `openai` SDK's `client.live.connect()` and `.create()` (the
way a GPT-Live application reaches the service); VOICECLIENT_CONFORMANCE_LIVE_MODEL names their model."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voiceclient.server import RealtimeServer

pytestmark = pytest.mark.timeout(60)
URL = os.environ.get("VOICECLIENT_CONFORMANCE_URL")
MODEL = os.environ.get("VOICECLIENT_CONFORMANCE_MODEL", "gpt-realtime")
WAIT = 30.0 if URL else 10.0  # seconds for any one event (a real model takes its time)


class Wire:
    """One Realtime WebSocket session, as raw JSON both ways."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def next(self, *types: str) -> dict[str, Any]:
        """The next event of one of `types` (the ones between are kept in `seen`)."""
        async with asyncio.timeout(WAIT):
            while True:
                event: dict[str, Any] = json.loads(await self.ws.recv())
                self.seen.append(event)
                if event["type"] in types:
                    return event

    async def refused(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send `event` and return the `error` it gets (its `error` object)."""
        await self.send(event)
        error: dict[str, Any] = (await self.next("error"))["error"]
        return error

    async def update(self, session: dict[str, Any]) -> dict[str, Any]:
        """A session.update that must succeed: the session it results in."""
        await self.send({"type": "session.update", "session": session})
        event = await self.next("session.updated", "error")
        assert event["type"] == "session.updated", event
        updated: dict[str, Any] = event["session"]
        return updated


@pytest.fixture
async def target() -> AsyncIterator[tuple[str, str]]:
    """(base URL, API key): the server at VOICECLIENT_CONFORMANCE_URL, else a `serve` of this test's own."""
    if URL:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            pytest.fail("VOICECLIENT_CONFORMANCE_URL is set but OPENAI_API_KEY is not")
        yield URL.rstrip("/"), key
        return
    async with RealtimeServer(port=0, vad="energy") as server:
        yield server.base_url, "sk-test"


@pytest.fixture
async def wire(target: tuple[str, str]) -> AsyncIterator[Wire]:
    """A session past its `session.created`, with turn detection off (nothing here is spoken)."""
    import websockets

    base, key = target
    url = base.replace("https://", "wss://").replace("http://", "ws://") + f"/realtime?model={MODEL}"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        w = Wire(ws)
        await w.next("session.created")
        await w.update({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        yield w


def user_text(text: str) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}


# ----------------------------------------------------------------------------------------------- the session
async def test_an_update_without_session_type_is_refused_whole(wire: Wire) -> None:
    """[live] a GA conformance run (2026-09): `missing_required_parameter` on `session.type`; nothing applies."""
    error = await wire.refused({"type": "session.update", "session": {"instructions": "Speak like a pirate."}})
    assert (error["code"], error["param"]) == ("missing_required_parameter", "session.type")
    session = await wire.update({"type": "realtime"})
    assert session["instructions"] != "Speak like a pirate."


async def test_an_unknown_session_field_is_unknown_parameter_on_its_path(wire: Wire) -> None:
    """[live] the same run: `unknown_parameter`, param `session.<field>`, nothing of the validator's in it."""
    error = await wire.refused({"type": "session.update", "session": {"type": "realtime", "temperature": 0.7}})
    assert (error["code"], error["param"]) == ("unknown_parameter", "session.temperature")


async def test_a_beta_audio_format_string_is_invalid_type(wire: Wire) -> None:
    """[docs] the GA migration: a beta-style `"pcm16"` where an object goes is `invalid_type` on its path."""
    update = {"type": "realtime", "audio": {"input": {"format": "pcm16"}}}
    error = await wire.refused({"type": "session.update", "session": update})
    assert (error["code"], error["param"]) == ("invalid_type", "session.audio.input.format")


async def test_the_voice_is_locked_once_the_assistant_has_spoken(wire: Wire) -> None:
    """[live] openai-agents-python 1661: `cannot_update_voice`, param null, once assistant audio exists."""
    await wire.update({"type": "realtime", "audio": {"output": {"voice": "marin"}}})
    await wire.send(user_text("Say hello."))
    await wire.send({"type": "response.create"})
    done = await wire.next("response.done")
    assert done["response"]["status"] == "completed"
    error = await wire.refused(
        {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}}
    )
    assert (error["code"], error["param"]) == ("cannot_update_voice", None)


# ----------------------------------------------------------------------------------------------- events
async def test_an_unknown_event_type_is_invalid_value_on_type(wire: Wire) -> None:
    """[docs] the Realtime guide's errors: an unknown `type` is `invalid_value`, param `type`."""
    error = await wire.refused({"type": "response.start", "event_id": "ev_1"})
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "ev_1")


async def test_a_field_the_event_does_not_take_is_unknown_parameter(wire: Wire) -> None:
    """[docs] the error reference, as for session fields: `unknown_parameter` on the field."""
    error = await wire.refused({"type": "response.cancel", "reason": "bored"})
    assert (error["code"], error["param"]) == ("unknown_parameter", "reason")


async def test_committing_an_empty_buffer_is_refused(wire: Wire) -> None:
    """[live] betalgo/openai 674: `input_audio_buffer_commit_empty`."""
    error = await wire.refused({"type": "input_audio_buffer.commit"})
    assert error["code"] == "input_audio_buffer_commit_empty"


async def test_cancelling_with_no_response_running_is_refused(wire: Wire) -> None:
    """[docs] pitfalls of the Realtime guide: `response_cancel_not_active`."""
    error = await wire.refused({"type": "response.cancel"})
    assert error["code"] == "response_cancel_not_active"


async def test_a_function_output_for_an_unknown_call_is_refused(wire: Wire) -> None:
    """[docs] OpenAPI 2.3.0: the server checks the call id. (No source gives the code: the row asserts the
    refusal and its param, and that the item was not added.)"""
    item = {"type": "function_call_output", "call_id": "call_never_made", "output": "{}"}
    error = await wire.refused({"type": "conversation.item.create", "item": item})
    assert error["type"] == "invalid_request_error" and error["param"] == "item.call_id"
    await wire.send(user_text("hi"))
    await wire.next("conversation.item.done")
    assert not [e for e in wire.seen if e["type"] == "conversation.item.added" and e["item"]["type"] != "message"]


# ----------------------------------------------------------------------------------------------- responses
async def test_max_output_tokens_ends_the_response_incomplete(wire: Wire) -> None:
    """[SDK] RealtimeResponseStatus: reaching `max_output_tokens` ends the response `incomplete`, with reason
    `max_output_tokens`."""
    await wire.send(user_text("Tell me a long story about the sea."))
    await wire.send({"type": "response.create", "response": {"max_output_tokens": 1}})
    done = await wire.next("response.done")
    assert done["response"]["status"] == "incomplete"
    assert done["response"]["status_details"]["reason"] == "max_output_tokens"


async def test_an_out_of_band_response_runs_beside_the_default_one_outside_the_conversation(wire: Wire) -> None:
    """[SDK] RealtimeResponseCreateParams (`conversation: "none"`, `input`, `metadata`): it runs while the
    default response runs, its `conversation_id` is null, its metadata is echoed, and nothing it makes is added
    to the conversation."""
    await wire.send(user_text("Say hello."))
    await wire.send({"type": "response.create"})
    await wire.next("response.created")
    oob = {"conversation": "none", "metadata": {"topic": "check"}, "output_modalities": ["text"], "input": []}
    await wire.send({"type": "response.create", "response": oob})
    done: dict[str, dict[str, Any]] = {}
    while len(done) < 2:
        event = await wire.next("response.done", "error")
        assert event["type"] == "response.done", event  # no conversation_already_has_active_response
        done["oob" if event["response"].get("metadata") == {"topic": "check"} else "default"] = event["response"]
    assert done["oob"]["conversation_id"] is None and done["default"]["conversation_id"] is not None
    oob_items = {item["id"] for item in done["oob"]["output"]}
    added = {e["item"]["id"] for e in wire.seen if e["type"] in ("conversation.item.added", "conversation.item.done")}
    assert oob_items and not oob_items & added


# ----------------------------------------------------------------------------------------------- tool_choice
def function_tool(name: str, description: str) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


WEATHER = function_tool("get_weather", "The weather now in a city.")
TIME = function_tool("get_time", "The time now in a city.")


def outputs(done: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in done["response"]["output"] if item["type"] == kind]


async def test_tool_choice_required_makes_a_tool_call(wire: Wire) -> None:
    """[SDK] RealtimeToolChoiceConfig, ToolChoiceOptions: `required` means the model must call one or more tools
    (here the only one declared)."""
    await wire.update({"type": "realtime", "tools": [WEATHER], "tool_choice": "required"})
    await wire.send(user_text("Hello there."))
    await wire.send({"type": "response.create"})
    done = await wire.next("response.done")
    assert [call["name"] for call in outputs(done, "function_call")][:1] == ["get_weather"]


async def test_a_responses_tool_choice_none_answers_without_a_tool_call(wire: Wire) -> None:
    """[SDK] RealtimeToolChoiceConfig: `none` means the model will not call any tool and instead generates a
    message; RealtimeResponseCreateParams.tool_choice is this response's own. So a session that requires a tool
    call answers this response with a message (locally: the echo, steered to a call by `required`, speaks
    instead)."""
    await wire.update({"type": "realtime", "tools": [WEATHER], "tool_choice": "required"})
    await wire.send(user_text("What is the weather in Paris? Use get_weather."))
    await wire.send({"type": "response.create", "response": {"tool_choice": "none"}})
    done = await wire.next("response.done")
    assert done["response"]["status"] == "completed"
    assert not outputs(done, "function_call") and outputs(done, "message")


async def test_a_tool_choice_naming_a_function_calls_that_function(wire: Wire) -> None:
    """[SDK] ToolChoiceFunction: "Use this option to force the model to call a specific function" (on a
    response, RealtimeResponseCreateParams.tool_choice), even when the words ask for another tool."""
    await wire.update({"type": "realtime", "tools": [WEATHER, TIME]})
    await wire.send(user_text("What is the weather in Paris?"))
    await wire.send({"type": "response.create", "response": {"tool_choice": {"type": "function", "name": "get_time"}}})
    done = await wire.next("response.done")
    calls = [call["name"] for call in outputs(done, "function_call")]
    assert calls and set(calls) == {"get_time"}


async def test_a_tool_choice_naming_an_undeclared_function_is_refused(wire: Wire) -> None:
    """[SDK] ToolChoiceFunction forces a call of a function the session declares (it has nothing else to call).
    (No source gives the code: the row asserts the refusal, on its param, and that the update did not apply.)"""
    update = {"type": "realtime", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "book_flight"}}
    error = await wire.refused({"type": "session.update", "session": update})
    assert error["type"] == "invalid_request_error" and error["param"] == "session.tool_choice"
    session = await wire.update({"type": "realtime"})
    assert session["tool_choice"] == "auto"


# ----------------------------------------------------------------------------------------------- turns
async def stream_silence(wire: Wire, stop: asyncio.Event) -> None:
    """100 ms of silence every 100 ms (PCM16, 24 kHz), as a microphone sends it, until `stop`."""
    chunk = base64.b64encode(bytes(4800)).decode()
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stop.is_set():
        await wire.send({"type": "input_audio_buffer.append", "audio": chunk})
        due += 0.1
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
        except TimeoutError:
            pass


async def test_the_idle_timeout_spans_the_silence_after_the_answer(wire: Wire) -> None:
    """[SDK] ServerVad.idle_timeout_ms: applied once the last response's audio has finished playing;
    InputAudioBufferTimeoutTriggered: `audio_start_ms` to `audio_end_ms` is the silent segment after the last
    response up to the trigger, "the difference between the start and end values will roughly match the
    configured timeout", and that segment is committed (`input_audio_buffer.committed`, the same item) and
    answered."""
    turn_detection = {"type": "server_vad", "idle_timeout_ms": 5000}
    await wire.update({"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}})
    stop = asyncio.Event()
    silence = asyncio.ensure_future(stream_silence(wire, stop))
    try:
        await wire.send(user_text("Say hello."))
        await wire.send({"type": "response.create"})
        first = await wire.next("response.done")
        timeout = await wire.next("input_audio_buffer.timeout_triggered")
        committed = await wire.next("input_audio_buffer.committed")
        answer = await wire.next("response.done")
    finally:
        stop.set()
        await silence
    assert timeout["audio_start_ms"] < timeout["audio_end_ms"]
    assert abs(timeout["audio_end_ms"] - timeout["audio_start_ms"] - 5000) <= 1000
    assert committed["item_id"] == timeout["item_id"]
    assert answer["response"]["id"] != first["response"]["id"]  # "and a model response will be generated"


# ----------------------------------------------------------------------------------------------- newer fields
async def test_transcription_delay_is_accepted_for_gpt_realtime_whisper(wire: Wire) -> None:
    """[SDK] AudioTranscription.delay: "Only supported with `gpt-realtime-whisper` in GA Realtime sessions";
    the session shows it (RealtimeSessionCreateResponse)."""
    transcription = {"model": "gpt-realtime-whisper", "delay": "low"}
    session = await wire.update({"type": "realtime", "audio": {"input": {"transcription": transcription}}})
    assert session["audio"]["input"]["transcription"]["delay"] == "low"


async def test_transcription_keywords_and_languages_are_accepted_for_gpt_transcribe(wire: Wire) -> None:
    """[SDK] AudioTranscription.keywords and .languages: "Supported by `gpt-transcribe` and
    `gpt-live-transcribe`"; the session shows them."""
    transcription = {"model": "gpt-transcribe", "keywords": ["WebRTC", "Opus"], "languages": ["en", "fr"]}
    session = await wire.update({"type": "realtime", "audio": {"input": {"transcription": transcription}}})
    shown = session["audio"]["input"]["transcription"]
    assert (shown["keywords"], shown["languages"]) == (["WebRTC", "Opus"], ["en", "fr"])


async def test_noise_reduction_strength_is_accepted_defaults_to_1_and_is_kept(wire: Wire) -> None:
    """[SDK] RealtimeAudioConfigInput NoiseReduction.strength: "Defaults to 1 when noise reduction is first
    enabled. Omitting strength from a session update preserves the current strength." """

    async def noise_reduction(value: dict[str, Any]) -> Any:
        session = await wire.update({"type": "realtime", "audio": {"input": {"noise_reduction": value}}})
        return session["audio"]["input"]["noise_reduction"]["strength"]

    assert await noise_reduction({"type": "near_field"}) == 1
    assert await noise_reduction({"type": "near_field", "strength": 0.5}) == 0.5
    assert await noise_reduction({"type": "far_field"}) == 0.5


async def test_an_mcp_tool_with_tunnel_id_defer_loading_and_allowed_callers_is_accepted(wire: Wire) -> None:
    """[SDK] RealtimeToolsConfigUnion Mcp: `tunnel_id` (one of `server_url`, `connector_id` or `tunnel_id`),
    `defer_loading`, `allowed_callers` ("direct", "programmatic"); the session shows the tool with them. (Whether
    the tunnel answers is another matter: nothing here waits for its tools.)"""
    tool = {
        "type": "mcp",
        "server_label": "docs",
        "tunnel_id": "tunnel_conformance",
        "defer_loading": False,
        "allowed_callers": ["direct"],
        "require_approval": "never",
    }
    session = await wire.update({"type": "realtime", "tools": [tool]})
    [shown] = [t for t in session["tools"] if t["type"] == "mcp"]
    assert (shown["server_label"], shown["tunnel_id"]) == ("docs", "tunnel_conformance")
    assert shown.get("defer_loading") in (False, None) and shown.get("allowed_callers") in (["direct"], None)


async def test_reasoning_and_parallel_tool_calls_are_accepted_on_response_create(target: tuple[str, str]) -> None:
    """[SDK] RealtimeResponseCreateParams.reasoning and .parallel_tool_calls, for reasoning models such as
    `gpt-realtime-2`: the response runs."""
    async with await connect(target, "model=gpt-realtime-2") as ws:
        w = Wire(ws)
        await w.next("session.created")
        await w.update({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await w.send(user_text("Say hello."))
        response = {"reasoning": {"effort": "low"}, "parallel_tool_calls": False}
        await w.send({"type": "response.create", "response": response})
        done = await w.next("response.done", "error")
        assert done["type"] == "response.done", done
        assert done["response"]["status"] == "completed"


# ----------------------------------------------------------------------------------------------- sessions
async def connect(target: tuple[str, str], query: str) -> Any:
    import websockets

    base, key = target
    url = base.replace("https://", "wss://").replace("http://", "ws://") + f"/realtime?{query}"
    return websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"})


async def test_a_model_that_is_not_a_realtime_one_is_model_not_found(target: tuple[str, str]) -> None:
    """[live] openai-realtime-console 561: an unknown model is `model_not_found`, an error event, then the close."""
    import websockets

    async with await connect(target, "model=gpt-4o-mini") as ws:
        w = Wire(ws)
        error = (await w.next("error"))["error"]
        assert error["code"] == "model_not_found"
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(WAIT):
                await ws.recv()
    assert not [e for e in w.seen if e["type"] == "session.created"]


async def test_a_transcription_session_by_intent_transcribes_and_never_answers(target: tuple[str, str]) -> None:
    """[SDK] `realtime.connect` with `intent=transcription`, RealtimeTranscriptionSessionCreateRequest: a session of
    type `transcription`, with no model at session level, in which `response.create` is refused."""
    async with await connect(target, "intent=transcription") as ws:
        w = Wire(ws)
        created = await w.next("session.created")
        assert created["session"]["type"] == "transcription" and "model" not in created["session"]
        error = await w.refused({"type": "response.create"})
        assert error["type"] == "invalid_request_error"


async def test_an_assistant_item_is_retrieved_with_its_audio(wire: Wire) -> None:
    """[SDK] ConversationItemRetrieved: the item with its audio, assistant items included."""
    await wire.send(user_text("Say hello."))
    await wire.send({"type": "response.create"})
    done = await wire.next("response.done")
    [item] = [it for it in done["response"]["output"] if it["type"] == "message"]
    await wire.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
    retrieved = (await wire.next("conversation.item.retrieved"))["item"]
    [part] = [c for c in retrieved["content"] if c["type"] == "output_audio"]
    assert len(part.get("audio") or "") > 1000  # base64 of the answer's audio


# ----------------------------------------------------------------------------------------------- GPT-Live
# The GPT-Live rows, through the official SDK's `client.live.*` as a GPT-Live application reaches the service (the
# SDK shapes nothing here that a source does not fix: the events are typed dicts, sent as written). Every event
# received must parse as the SDK's `ServerEvent`. Sources: the SDK's types (openai 3.63), OpenAI's guides,
# Microsoft Foundry's GPT-Live reference, and a captured real WebSocket session (docs/live.md names them).
LIVE_MODEL = os.environ.get("VOICECLIENT_CONFORMANCE_LIVE_MODEL", "gpt-live-1")


class LiveWire:
    """One GPT-Live WebSocket session through the SDK's `client.live.connect()`: raw JSON in, each event checked
    against the SDK's `ServerEvent`."""

    def __init__(self, conn: Any) -> None:
        from openai.types.live import ServerEvent
        from pydantic import TypeAdapter

        self.conn = conn
        self.adapter: Any = TypeAdapter(ServerEvent)
        self.seen: list[dict[str, Any]] = []

    async def next(self, *types: str) -> dict[str, Any]:
        """The next event of one of `types` (the ones between are kept in `seen`)."""
        async with asyncio.timeout(WAIT):
            while True:
                event: dict[str, Any] = json.loads(await self.conn.recv_bytes())
                self.adapter.validate_python(event)
                self.seen.append(event)
                if event["type"] in types:
                    return event

    async def refused(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send `event` and return the `error` it gets (its `error` object)."""
        await self.conn.send(event)
        error: dict[str, Any] = (await self.next("error"))["error"]
        return error


@pytest.fixture
async def live_client(target: tuple[str, str]) -> AsyncIterator[Any]:
    from openai import AsyncOpenAI

    base, key = target
    client = AsyncOpenAI(base_url=base, api_key=key, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def live(live_client: Any) -> AsyncIterator[LiveWire]:
    """A GPT-Live session past its `session.started` (delegation to the application, the default)."""
    async with live_client.live.connect(max_retries=0) as conn:
        w = LiveWire(conn)
        await conn.send({"type": "session.start", "session": {"model": LIVE_MODEL}})
        await w.next("session.started")
        yield w


async def test_live_session_start_is_answered_with_the_resolved_session(live_client: Any) -> None:
    """[capture] a real WebSocket session (2026-10-07) and the SDK's SessionResource: `session.started` first, with
    a `live_` id, `status: "active"`, the model, delegation to the application, no input, and 24 kHz PCM."""
    async with live_client.live.connect(max_retries=0) as conn:
        w = LiveWire(conn)
        await conn.send({"type": "session.start", "session": {"model": LIVE_MODEL}})
        started = await w.next("session.started", "error")
    assert w.seen[0] is started and started["type"] == "session.started", started
    session = started["session"]
    assert session["id"].startswith("live_") and session["status"] == "active"
    assert session["model"] == LIVE_MODEL and session["delegation"] == {"type": "client"}
    assert session["input"] == [] and session["audio"]["format"] == {"type": "audio/pcm", "rate": 24000}


async def test_live_a_model_that_is_not_a_live_one_is_model_not_found(live_client: Any) -> None:
    """[capture] errors seen from the real service: `model_not_found`, and no session starts."""
    async with live_client.live.connect(max_retries=0) as conn:
        w = LiveWire(conn)
        error = await w.refused({"type": "session.start", "session": {"model": "gpt-realtime"}})
    assert error["code"] == "model_not_found"
    assert not [e for e in w.seen if e["type"] == "session.started"]


async def test_live_an_unknown_startup_field_is_refused(live_client: Any) -> None:
    """[docs] Foundry's GPT-Live reference: the startup configuration "rejects unknown fields". (No source gives the
    code: the row asserts the refusal, and that no session starts.)"""
    async with live_client.live.connect(max_retries=0) as conn:
        w = LiveWire(conn)
        error = await w.refused({"type": "session.start", "session": {"model": LIVE_MODEL, "temperature": 0.7}})
    assert error["type"] == "invalid_request_error"
    assert not [e for e in w.seen if e["type"] == "session.started"]


async def test_live_response_item_create_requires_responses_delegation(live: LiveWire) -> None:
    """[capture] errors seen from the real service: "response.item.create requires Responses delegation." under
    delegation to the application."""
    item = {"type": "function_call_output", "call_id": "call_1", "output": "{}"}
    error = await live.refused({"type": "response.item.create", "item": item})
    assert error["message"] == "response.item.create requires Responses delegation."


async def test_live_the_instructions_cannot_change_by_session_update(live: LiveWire) -> None:
    """[SDK] SessionUpdateConfig (delegation and triggers only) and the guides: the instructions are fixed at start.
    (No source gives the code: the row asserts the refusal.)"""
    await live.conn.send({"type": "session.update", "session": {"instructions": "Speak like a pirate."}})
    event = await live.next("session.updated", "error")
    assert event["type"] == "error", event


async def test_live_mute_and_appends_are_acknowledged(live: LiveWire) -> None:
    """[SDK] the server events: `session.input_audio.muted` / `.unmuted` answer the mute commands, and each context
    append its `.appended`."""
    await live.conn.send({"type": "session.input_audio.mute"})
    await live.next("session.input_audio.muted")
    await live.conn.send({"type": "session.input_audio.unmute"})
    await live.next("session.input_audio.unmuted")
    append = {"content": "Be brief.", "delegation_id": None}
    await live.conn.send({"type": "session.instructions.append", **append})
    await live.next("session.instructions.appended")
    await live.conn.send({"type": "session.thinking.append", **append})
    await live.next("session.thinking.appended")


async def test_live_session_close_ends_with_session_closed(live: LiveWire) -> None:
    """[docs] the WebRTC guide and the SDK's SessionClosedEvent: `session.close` is answered with `session.closed`,
    reason `close_requested`, with the usage and the session."""
    started = live.seen[0]
    await live.conn.send({"type": "session.close"})
    closed = await live.next("session.closed")
    assert closed["reason"] == "close_requested" and closed["session"]["id"] == started["session"]["id"]
    assert closed["usage"]["seconds"] >= 0


async def live_offer() -> tuple[Any, Any]:
    """An aiortc peer with a microphone track and the `oai-events` channel, as the guide asks: (peer, its offer)."""
    import numpy as np

    from voiceclient.audio.format import RTP_RATE
    from voiceclient.audio.sources import BufferSource
    from voiceclient.audio.tracks import OutboundTrack
    from voiceclient.rtc.peer import Peer

    peer = Peer(OutboundTrack(BufferSource(np.zeros(RTP_RATE, np.int16))))
    return peer, await peer.create_offer()


async def test_live_audio_format_is_refused_for_webrtc(live_client: Any) -> None:
    """[SDK] MediaSessionConfigParam has no `audio.format`, and the guides: WebRTC negotiates its own media format.
    (No source gives the code: the row asserts the HTTP refusal.)"""
    import openai

    peer, offer = await live_offer()
    try:
        session = {"model": LIVE_MODEL, "audio": {"format": {"type": "audio/pcm", "rate": 24000}}}
        with pytest.raises(openai.BadRequestError):
            await live_client.live.create(session=session, transport={"type": "webrtc", "sdp": offer})
    finally:
        await peer.close()


@pytest.mark.webrtc
async def test_live_a_webrtc_session_starts_on_its_data_channel_and_closes(live_client: Any) -> None:
    """[docs] the GPT-Live WebRTC guide and the SDK's LiveCreateResponse: `client.live.create` answers with a
    `live_` id and the SDP answer; the first data-channel event is `session.started`; `session.close` is answered
    with `session.closed`."""
    from openai.types.live import ServerEvent
    from pydantic import TypeAdapter

    adapter: Any = TypeAdapter(ServerEvent)
    peer, offer = await live_offer()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    peer.on_message = lambda message: events.put_nowait(json.loads(message))

    async def next_event(kind: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                event = await events.get()
                adapter.validate_python(event)
                if event["type"] == kind:
                    return event

    try:
        created = await live_client.live.create(
            session={"model": LIVE_MODEL}, transport={"type": "webrtc", "sdp": offer}
        )
        assert created.session.id.startswith("live_") and created.transport.type == "webrtc"
        await peer.accept_answer(created.transport.sdp)
        first = await asyncio.wait_for(events.get(), WAIT)
        assert first["type"] == "session.started" and first["session"]["id"] == created.session.id
        peer.send(json.dumps({"type": "session.close"}))
        closed = await next_event("session.closed")
        assert closed["reason"] == "close_requested"
    finally:
        await peer.close()


# ----------------------------------------------------------------------------------------------- the switch
ROWS = 33  # the tests above
REFUSED = 4  # the rows whose session is refused before it opens: a wrong model (both APIs), a bad Live start or POST
LIVE_SESSIONS = 6  # the GPT-Live rows whose session opens


@pytest.mark.subprocess
@pytest.mark.timeout(180)
@pytest.mark.skipif(URL is not None, reason="(this checks the switch itself; it runs without it)")
def test_the_rows_run_against_a_server_at_a_url_as_the_real_service_is_reached(tmp_path: Path) -> None:
    """The drift check's switch: `serve` started as a separate process, the rows pointed at its URL with a key, as
    they would be at the real service's. All pass, and it was that server that the sessions reached."""
    import httpx

    root = Path(__file__).resolve().parents[1]
    serve = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        base_url = line.split("listening on ", 1)[1].split()[0]
        env = {**os.environ, "VOICECLIENT_CONFORMANCE_URL": base_url, "OPENAI_API_KEY": "sk-from-the-switch"}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not subprocess", __file__],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert run.returncode == 0, run.stdout[-3000:]
        assert f"{ROWS} passed" in run.stdout, run.stdout[-1500:]
        sessions = httpx.get(base_url.removesuffix("/v1") + "/console/sessions", timeout=10).json()
        assert len(sessions["sessions"]) == ROWS - REFUSED
        assert len([s for s in sessions["sessions"] if s["id"].startswith("live_")]) == LIVE_SESSIONS
    finally:
        serve.terminate()
        serve.wait(10)
