"""Conformance: where the real service is strict, `serve` is too. One test per row of the audit (docs/protocol.md,
"Where serve is as strict as the service"), each naming the source of the real behaviour, each on the wire as any
client sends it (a plain WebSocket and JSON, so that nothing of ours or of an SDK shapes what is sent).

By default every row runs against a `serve` of its own on 127.0.0.1. The same rows run against any server at a URL:
that is the drift check, for whoever has a key, which keeps the emulator honest as the service changes:

    VOICECLIENT_CONFORMANCE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \\
        .venv/bin/python -m pytest tests/test_conformance.py

A row that fails there is a place where `serve` and the service differ. A row asserts only what its source
establishes (a refusal whose exact code no source gives is asserted as a refusal, on its param)."""

from __future__ import annotations

import asyncio
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


# ----------------------------------------------------------------------------------------------- the switch
ROWS = 14  # the tests above


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
        assert len(sessions["sessions"]) == ROWS - 1  # (the refused model opens none)
    finally:
        serve.terminate()
        serve.wait(10)
