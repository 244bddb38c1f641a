"""The server's session core through the memory edge: how a session ends (the cap, a lost or never-opened
connection, close, shutdown), the injected faults, and who else sees its events (console watchers, sidebands)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.server.faults import FaultSpec
from voiceclient.server.inbox import ClientMessage, ConnectTimeout, SessionExpired
from voiceclient.server.responders import ResponsePlan, Speech, TurnContext
from voiceclient.server.session import server_shutting_down
from voiceclient.server.session_rules import default_session
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def create_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    item = user_text(text)
    if item_id is not None:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


TEXT_ONLY = {"output_modalities": ["text"]}


def _turnless_audio() -> dict[str, Any]:
    """The default audio fields without turn detection (the client commits the input itself)."""
    audio: dict[str, Any] = default_session()["audio"]
    audio["input"]["turn_detection"] = None
    return audio


async def text_turn(s: MemorySession, text: str) -> dict[str, Any]:
    """One typed user turn and its (text) answer: the answer's `response.done`."""
    s.send(create_item(text))
    s.send({"type": "response.create"})
    return await s.next_event("response.done")


class HeldResponder:
    """Answers only once released: the response stays in progress until then. `unwind`, when set, holds the
    response's cancellation until it is set too (a response slow to unwind)."""

    def __init__(self, unwind: asyncio.Event | None = None) -> None:
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.unwind = unwind

    async def plan(self, ctx: TurnContext) -> ResponsePlan:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            if self.unwind is not None:
                await self.unwind.wait()
            raise
        return ResponsePlan([Speech("released")])


class Sideband:
    """A sideband listener (`server/sideband.py` `Listener`): keeps what it is pushed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def push(self, text: str) -> bool:
        self.events.append(json.loads(text))
        return True

    def close(self) -> None:
        self.closed = True


def watch(s: MemorySession) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    s.core.watchers.append(lambda direction, event: seen.append((direction, event)))
    return seen


# ---------------------------------------------------------------------------------------------- the session cap
async def test_the_session_cap_sends_session_expired_then_ends_the_session() -> None:
    async with MemorySession(max_seconds=0.2) as s:
        [created] = s.sent("session.created")
        assert created["session"]["expires_at"] == int(s.core.created_at + 0.2)
        error = await s.next_event("error")
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["message"] == "Your session hit the maximum duration of 0.2 seconds."
        assert error["error"]["event_id"] is None  # it answers no client event
        await s.until_closed()
        assert s.edge.closed and s.events[-1] is error  # nothing after the error


@pytest.mark.parametrize(
    ("max_seconds", "length"), [(3600, "60 minutes"), (120, "2 minutes"), (90, "90 seconds"), (30, "30 seconds")]
)
async def test_session_expired_names_the_cap_as_the_real_service_does(max_seconds: float, length: str) -> None:
    async with MemorySession(max_seconds=max_seconds) as s:
        s.post(SessionExpired())
        error = await s.next_event("error")
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["message"] == f"Your session hit the maximum duration of {length}."
        await s.until_closed()


# ---------------------------------------------------------------------------------------------- connecting
async def test_a_connect_timeout_ends_a_session_whose_client_never_connected() -> None:
    async with MemorySession(connect=False) as s:
        s.post(ConnectTimeout())
        await s.until_closed()
        assert not s.core.opened and s.edge.closed
        assert s.events == []


async def test_a_connect_timeout_after_the_client_connected_is_ignored() -> None:
    async with MemorySession(TEXT_ONLY) as s:
        s.post(ConnectTimeout())
        done = await text_turn(s, "still here")
        assert done["response"]["status"] == "completed"
        assert not s.core.closed.is_set() and not s.edge.closed


async def test_events_sent_before_the_client_connects_are_dropped() -> None:
    async with MemorySession(connect=False) as s:
        handled = asyncio.Event()
        s.core.watchers.append(lambda d, e: handled.set() if e.get("type") == "conversation.item.done" else None)
        s.send(create_item("before connecting", "item_early"))
        await asyncio.wait_for(handled.wait(), 5)
        assert s.events == [] and s.core.events_sent == 0
        s.edge.connect()
        await s.next_event("session.created")
        assert [e["type"] for e in s.events] == ["session.created"] and s.core.events_sent == 1
        s.send({"type": "conversation.item.retrieve", "item_id": "item_early"})  # the item itself was kept
        retrieved = await s.next_event("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["text"] == "before connecting"


# ---------------------------------------------------------------------------------------------- ending
async def test_a_lost_connection_ends_the_session_and_cancels_the_response_in_progress() -> None:
    responder = HeldResponder()
    async with MemorySession(responder=responder) as s:
        seen = watch(s)
        s.send({"type": "response.create"})
        created = await s.next_event("response.created")
        s.drop()
        await s.until_closed()
        assert responder.cancelled.is_set()
        assert s.core.responses.active is None
        [done] = [e for d, e in seen if e["type"] == "response.done"]
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert not s.sent("response.done") and not s.sent("error")  # the client was gone: nothing reached it
        task = s.core.responses.responses[created["response"]["id"]].task
        assert task is not None and task.done() and not task.cancelled()  # it unwound and ended on its own terms


async def test_close_is_idempotent_and_a_second_close_waits_for_the_first() -> None:
    unwind = asyncio.Event()
    responder = HeldResponder(unwind)
    async with MemorySession(responder=responder) as s:
        s.send({"type": "response.create"})
        await s.next_event("response.created")
        first = asyncio.create_task(s.core.close())
        await asyncio.wait_for(responder.cancelled.wait(), 5)  # the first close is unwinding the response
        second = asyncio.create_task(s.core.close())
        done, _ = await asyncio.wait({second}, timeout=0.05)
        assert not done and not s.core.closed.is_set()  # the second waits for the first
        unwind.set()
        await asyncio.wait_for(second, 5)
        assert s.core.closed.is_set() and s.edge.closed
        await asyncio.wait_for(first, 5)
        await s.core.close()  # a third, after the end, returns at once
        assert len(s.sent("response.done")) == 1


async def test_closing_for_shutdown_sends_server_shutting_down_and_fails_the_running_response() -> None:
    async with MemorySession(responder=HeldResponder()) as s:
        s.send({"type": "response.create"})
        created = await s.next_event("response.created")
        await s.core.close(server_shutting_down())
        error = await s.next_event("error")
        assert error["error"]["type"] == "server_error" and error["error"]["code"] == "server_shutting_down"
        assert error["error"]["message"] == "The server is shutting down; this session has ended."
        done = await s.next_event("response.done")  # after the error
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status"] == "failed"
        details = done["response"]["status_details"]
        assert details["type"] == "failed" and details["error"]["code"] == "server_shutting_down"
        assert s.edge.closed


# ---------------------------------------------------------------------------------------------- faults
async def test_the_expire_session_fault_at_seconds_ends_the_session_as_the_cap_does() -> None:
    async with MemorySession(faults=[FaultSpec(action="expire_session", at_seconds=0.05)]) as s:
        seen = watch(s)
        error = await s.next_event("error")
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["message"] == "Your session hit the maximum duration of 60 minutes."  # the cap's
        await s.until_closed()
        [fault] = [e for d, e in seen if d == "local"]  # the console is told of the fault as it strikes
        assert (fault["type"], fault["action"], fault["at_seconds"]) == ("server.fault", "expire_session", 0.05)
        assert seen.index(("local", fault)) < seen.index(("server", error))


async def test_the_expire_session_fault_after_turns_strikes_after_that_many_responses() -> None:
    async with MemorySession(TEXT_ONLY, faults=[FaultSpec(action="expire_session", after_turns=2)]) as s:
        await text_turn(s, "one")
        s.send(create_item("between"))
        await s.next_event("conversation.item.done")
        assert not s.sent("error")  # one response in: the fault has not struck
        second = await text_turn(s, "two")
        error = await s.next_event("error")
        assert error["error"]["code"] == "session_expired"
        await s.until_closed()
        assert s.events.index(second) < s.events.index(error)


async def test_the_delay_events_fault_delivers_every_later_event_late_and_in_order() -> None:
    faults = [FaultSpec(action="delay_events", at_seconds=0, delay_ms=150)]
    async with MemorySession(faults=faults) as s:
        start = time.monotonic()
        s.send(create_item("late", "item_late"))
        s.send({"type": "conversation.item.delete", "item_id": "item_late"})
        added = await s.next_event("conversation.item.added")
        waited = time.monotonic() - start
        assert waited >= 0.14, f"the event came {waited:.3f} s after the client's, not delayed"
        assert s.core.event_delay == 0.15
        await s.next_event("conversation.item.deleted")
        kinds = [e["type"] for e in s.events[s.events.index(added) :]]
        assert kinds == ["conversation.item.added", "conversation.item.done", "conversation.item.deleted"]


async def test_the_stop_media_fault_ignores_input_audio_and_stops_the_output() -> None:
    async with MemorySession(TEXT_ONLY, faults=[FaultSpec(action="stop_media", after_turns=1)]) as s:
        seen = watch(s)
        await text_turn(s, "before the fault")
        heard_before = s.core.turns.audio_samples
        audio = base64.b64encode(tone(440, 0.5, API_RATE, -12).astype("<i2").tobytes()).decode()
        s.send({"type": "input_audio_buffer.append", "audio": audio})
        s.send({"type": "input_audio_buffer.commit"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"  # the appended audio was dropped
        s.speak(tone(440, 1.0, API_RATE, -12))
        assert s.core.turns.audio_samples == heard_before  # spoken audio too
        assert s.core.media_stopped and s.edge.media_paused and s.edge.faults_applied == ["stop_media"]
        assert s.play(0.5).size == 0  # nothing is played out
        done = await text_turn(s, "the session goes on")
        assert done["response"]["status"] == "completed"
        [fault] = [e for d, e in seen if d == "local"]
        assert (fault["type"], fault["action"], fault["after_turns"]) == ("server.fault", "stop_media", 1)


async def test_the_close_channel_fault_ends_the_session_and_is_recorded() -> None:
    async with MemorySession(faults=[FaultSpec(action="close_channel", at_seconds=0.05)]) as s:
        await s.until_closed()
        assert s.edge.faults_applied == ["close_channel"]
        assert [e["type"] for e in s.events] == ["session.created"]  # a clean close: no error event


async def test_the_drop_connection_fault_after_a_turn_ends_the_session_and_is_recorded() -> None:
    async with MemorySession(TEXT_ONLY, faults=[FaultSpec(action="drop_connection", after_turns=1)]) as s:
        done = await text_turn(s, "hello")
        assert done["response"]["status"] == "completed"
        await s.until_closed()
        assert s.edge.faults_applied == ["drop_connection"]
        assert not s.sent("error")


# ---------------------------------------------------------------------------------------------- who watches
async def test_watchers_see_client_and_server_events_with_audio_replaced_by_its_length() -> None:
    async with MemorySession({"audio": _turnless_audio()}, playout=False) as s:
        seen = watch(s)
        audio = base64.b64encode(tone(440, 0.2, API_RATE, -12).astype("<i2").tobytes()).decode()
        s.send({"type": "input_audio_buffer.append", "audio": audio})
        s.send({"type": "input_audio_buffer.commit"})
        s.send({"type": "response.create"})
        await s.next_event("response.done")
        appended = [e for d, e in seen if d == "client" and e["type"] == "input_audio_buffer.append"]
        assert appended == [{"type": "input_audio_buffer.append", "audio": f"<{len(audio)} base64 characters>"}]
        deltas = [e for d, e in seen if d == "server" and e["type"] == "response.output_audio.delta"]
        sent_deltas = s.sent("response.output_audio.delta")
        assert deltas and len(deltas) == len(sent_deltas)
        for watched, sent in zip(deltas, sent_deltas, strict=True):
            assert watched["event_id"] == sent["event_id"]
            assert watched["delta"] == f"<{len(sent['delta'])} base64 characters>"
        assert [d for d, e in seen if e["type"] == "input_audio_buffer.commit"] == ["client"]
        server_kinds = [e["type"] for d, e in seen if d == "server"]
        assert server_kinds == [e["type"] for e in s.events[1:]]  # every server event since the watcher joined


async def test_a_failing_watcher_does_not_break_the_session() -> None:
    async with MemorySession(TEXT_ONLY) as s:

        def broken(direction: str, event: dict[str, Any]) -> None:
            raise RuntimeError("the console broke")

        s.core.watchers.append(broken)
        seen = watch(s)  # a watcher after the broken one still sees everything
        done = await text_turn(s, "hello")
        assert done["response"]["status"] == "completed"
        assert ("server", done) in seen


async def test_a_sideband_is_greeted_with_the_current_session_then_gets_every_event() -> None:
    async with MemorySession(TEXT_ONLY) as s:
        s.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
        await s.next_event("session.updated")
        joined_at = len(s.events)
        sideband = Sideband()
        s.core.join(sideband)
        [greeting] = sideband.events
        assert greeting["type"] == "session.created" and greeting["session"]["instructions"] == "Be brief."
        await text_turn(s, "hello")
        assert sideband.events[1:] == s.events[joined_at:]  # the same events, ids and all, in the same order
        s.core.leave(sideband)
        before_leaving = len(sideband.events)
        s.send(create_item("after leaving"))
        await s.next_event("conversation.item.done")
        assert len(sideband.events) == before_leaving  # nothing after leaving
        assert not sideband.closed


async def test_a_sidebands_client_event_is_handled_and_the_sideband_closes_with_the_session() -> None:
    async with MemorySession(TEXT_ONLY) as s:
        sideband = Sideband()
        s.core.join(sideband)
        s.core.submit(json.dumps(create_item("from the backend", "item_backend")))
        added = await s.next_event("conversation.item.added")  # the client sees it too
        assert added["item"]["id"] == "item_backend"
        s.core.submit(json.dumps({"type": "response.create"}))
        done = await s.next_event("response.done")
        assert "from the backend" in done["response"]["output"][0]["content"][0]["text"]
        assert [e["type"] for e in sideband.events].count("response.done") == 1
        await s.close()
        assert sideband.closed


# ---------------------------------------------------------------------------------------------- bookkeeping
async def test_retained_size_grows_with_the_conversation_and_is_recorded_once_ended() -> None:
    async with MemorySession(TEXT_ONLY) as s:
        empty = s.core.retained_size()
        s.send(create_item("x" * 5000))
        await s.next_event("conversation.item.done")
        with_item = s.core.retained_size()
        assert with_item >= empty + 5000
        s.send({"type": "response.create", "response": {"output_modalities": ["audio"]}})
        await s.play_through("output_audio_buffer.stopped")
        await s.next_event("response.done")
        [answer] = list(s.core.conversation.audio.values())
        with_answer = s.core.retained_size()
        assert with_answer >= with_item + answer.pcm.nbytes
        assert s.core.retained_bytes == 0  # not recorded while the session runs
    assert s.core.retained_bytes == s.core.retained_size() == with_answer


async def test_input_audio_never_committed_is_not_retained_once_ended() -> None:
    async with MemorySession({"audio": _turnless_audio()}) as s:
        before = s.core.retained_size()
        s.speak(tone(440, 1.0, API_RATE, -12))
        buffered = s.core.retained_size()
        assert buffered >= before + API_RATE * 2  # one second of 16-bit input audio, held until committed
    assert s.core.retained_bytes == before


async def test_the_inbox_handles_messages_in_the_order_they_were_posted() -> None:
    async with MemorySession() as s:
        s.post(ClientMessage(json.dumps(create_item("first", "item_first"))))
        s.post(ClientMessage(json.dumps({"type": "conversation.item.delete", "item_id": "item_first"})))
        s.post(SessionExpired())
        s.post(ClientMessage(json.dumps(create_item("never", "item_never"))))
        await s.until_closed()
        kinds = [(e["type"], e.get("item", {}).get("id") or e.get("item_id")) for e in s.events[1:]]
        assert kinds == [
            ("conversation.item.added", "item_first"),
            ("conversation.item.done", "item_first"),
            ("conversation.item.deleted", "item_first"),
            ("error", None),
        ]
        assert s.events[-1]["error"]["code"] == "session_expired"
        assert s.core.conversation.items == []  # the message after the end was never handled
