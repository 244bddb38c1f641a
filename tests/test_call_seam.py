"""The client's seam, in memory: the one `TransportEvents` object a transport is opened with, the narrow
`Conversation` protocol a `VoiceCall` meets itself, and the call's one subscription model (`call.subscribe`,
ended by the function it returns), through the scripted transport: no sockets, milliseconds each."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings, ConnectionLostError, VoiceCall
from voiceclient.client.call_events import (
    AudioReceived,
    AudioSent,
    CallClosed,
    CallFailed,
    CallStatus,
    ConnectionChanged,
)
from voiceclient.client.connections import Conversation, Inbound
from voiceclient.client.dispatcher import Dispatcher
from voiceclient.client.options import Continuity, ReconnectPolicy
from voiceclient.client.scripted import ScriptedTransport
from voiceclient.client.transport import TransportEvents
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig

pytestmark = pytest.mark.timeout(10)
SETTINGS = ClientSettings(base_url="http://scripted.invalid/v1", api_key="sk-test", session_update_timeout=0.3)


class Recorded:
    """A `TransportEvents` that keeps what it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_server_message(self, message: str | bytes) -> None:
        self.seen.append(("message", message))

    def on_received_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self.seen.append(("received", pts))

    def on_sent_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self.seen.append(("sent", pts))

    def on_local_message(self, message: str | bytes) -> None:
        self.seen.append(("local", message))

    def on_sent_message(self, message: str) -> None:
        self.seen.append(("sent message", message))


async def test_a_transport_is_opened_with_one_events_object_that_takes_messages_and_both_ways_of_audio() -> None:
    transport = ScriptedTransport()
    events = Recorded()
    await transport.open(SessionConfig(), events)
    transport.feed(np.zeros(960, np.int16))
    transport.pump(1)
    kinds = [kind for kind, _ in events.seen]
    assert kinds == ["message", "received", "sent"]
    assert '"session.created"' in str(events.seen[0][1])
    await transport.close()


def test_a_call_is_the_connection_managers_conversation_itself() -> None:
    """No shim between them: the manager reads the call through its protocol, the call's inbound is a
    `TransportEvents`, and nothing of the manager's side is the call's API."""

    async def check() -> None:
        call = VoiceCall(SETTINGS, transport=ScriptedTransport())
        conversation: Conversation = call  # (mypy checks the protocol; here: it is the call, not a stand-in)
        inbound: Inbound = call._connections.inbound
        events: TransportEvents = inbound
        assert conversation is call and events is inbound
        assert call.quiet_since() == call.turns.last_activity
        for gone in ("on_server_message", "on_received_audio", "status", "fail", "wake", "connection_changed"):
            assert not hasattr(call, gone)

    asyncio.run(check())


async def test_subscribe_takes_classes_wire_types_and_the_calls_own_events_and_ends_when_asked() -> None:
    transport = ScriptedTransport()
    seen: list[str] = []
    async with VoiceCall(SETTINGS, transport=transport) as call:
        end = call.subscribe(lambda e: seen.append(f"class:{e.type}"), ev.ResponseCreated, "response.done")
        call.subscribe(lambda e: seen.append(f"any:{e.type}"))
        transport.emit({"type": "response.created", "response": {"id": "r1"}})
        transport.emit({"type": "response.done", "response": {"id": "r1", "status": "completed"}})
        await call.events_handled()
        end()
        transport.emit({"type": "response.created", "response": {"id": "r2"}})
        await call.events_handled()
    assert seen == [
        "class:response.created",
        "any:response.created",
        "class:response.done",
        "any:response.done",
        "any:response.created",
    ]


async def test_audio_frames_are_the_calls_own_events_and_tap_audio_is_made_of_them() -> None:
    transport = ScriptedTransport()
    frames: list[tuple[str, int]] = []
    tapped: list[int] = []
    async with VoiceCall(SETTINGS, transport=transport) as call:
        call.subscribe(lambda f: frames.append((f.type, f.pts)), AudioReceived, AudioSent)
        untap = call.tap_audio(received=lambda pcm, pts, at: tapped.append(pts))
        transport.feed(np.zeros(1920, np.int16))
        transport.pump(1)
        untap()
        transport.feed(np.zeros(960, np.int16))
        server_only: list[str] = []
        call.on_any(lambda e: server_only.append(e.type))  # every server event, none of the call's own
        transport.feed(np.zeros(960, np.int16))
        await call.events_handled()
    assert frames == [
        ("call.audio.received", 0),
        ("call.audio.received", 960),
        ("call.audio.sent", 0),
        ("call.audio.received", 1920),
        ("call.audio.received", 2880),
    ]
    assert tapped == [0, 960]
    assert server_only == []


async def test_the_managers_news_are_the_calls_own_events_status_connection_and_failure() -> None:
    made: list[ScriptedTransport] = []

    def factory() -> ScriptedTransport:
        t = ScriptedTransport(echo_items=True, call_id=f"rtc_{len(made)}", fail_open="refused" if made else None)
        made.append(t)
        return t

    news: list[str] = []
    states: list[str] = []
    call = VoiceCall(SETTINGS, transport_factory=factory, continuity=Continuity(reconnect=ReconnectPolicy(1, (0.01,))))
    call.subscribe(lambda e: news.append(type(e).__name__), CallStatus, ConnectionChanged, CallFailed, CallClosed)
    call.on_connection(states.append)
    async with call:
        waiting = asyncio.ensure_future(call.wait_for(lambda e: e.type == "response.done", 5))
        stream = call.events()
        made[0].lose("cable pulled")
        error = await asyncio.wait_for(call.ended(), 5)
        assert isinstance(error, ConnectionLostError) and "1 attempts to reconnect failed" in str(error)
        with pytest.raises(ConnectionLostError):
            await waiting  # a waiter gets the call's failure
    assert [e async for e in stream] == []  # a stream ends when the call closes
    assert news == ["CallStatus", "ConnectionChanged", "CallStatus", "CallFailed", "CallClosed"]
    assert states == ["connecting"]


async def test_a_failing_subscriber_of_the_calls_own_events_does_not_stop_the_others() -> None:
    failures: list[str] = []
    dispatcher = Dispatcher(on_handler_error=lambda e, exc: failures.append(f"{e.type}: {exc}"))
    got: list[str] = []

    def broken(event: CallStatus) -> None:
        raise RuntimeError("boom")

    dispatcher.on(CallStatus, broken)
    dispatcher.on(CallStatus, lambda e: got.append(e.text))
    dispatcher.publish(CallStatus("reconnecting"))
    assert got == ["reconnecting"] and failures == ["call.status: boom"]
