"""An in-memory transport that plays the server from a script, for tests of a call's rules in milliseconds.

    transport = ScriptedTransport()
    async with VoiceCall(transport=transport, tools=[...]) as call:   # session.created/updated are answered
        transport.emit({"type": "response.created", "response": {"id": "resp_1"}})
        ...
        assert transport.sent_types() == [...]

`on_client_event` (a function of the client event as a dict) lets a test answer what the client sends, for
example a `response.create` with a `response.created`. Audio: `pump(n)` pulls n 20 ms frames from the call's
source (as the WebRTC track would), `feed(pcm)` delivers received audio to the call's taps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceclient.audio.format import RTP_FRAME
from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.client.transport import Transport, TransportEvents
from voiceclient.errors import ConnectionLostError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.session import AnySession

ClientEventHandler = Callable[[dict[str, Any]], None]


class ScriptedTransport(Transport):
    """The server played from a script, in memory: `VoiceCall(transport=ScriptedTransport())`, then `emit` server
    events and assert on `sent`. The call's own turn rules run unchanged, in milliseconds, with no peer and no
    audio. `on_client_event` answers what the client sends; `confirm_session` answers each `session.update`
    with `session.updated` (the session merged); `echo_items` answers each `conversation.item.create` with
    `conversation.item.added` and `.done`; `fail_open` makes `open` fail with that reason; `live` plays a GPT-Live
    session (`session.started` on open).
    """

    def __init__(
        self,
        on_client_event: ClientEventHandler | None = None,
        *,
        confirm_session: bool = True,
        echo_items: bool = False,
        fail_open: str | None = None,
        call_id: str = "rtc_scripted",
        live: bool = False,
    ) -> None:
        self.on_client_event = on_client_event
        self.confirm_session = confirm_session
        self.echo_items = echo_items  # answer each conversation.item.create with item.added and item.done
        self.fail_open = fail_open  # open() fails with this reason (a server that cannot be reached)
        self.call_id = call_id
        self.live = live  # a GPT-Live session: `session.started` on open, nothing to confirm after it
        self.lost = asyncio.get_running_loop().create_future()
        self.sent: list[dict[str, Any]] = []  # every client event, decoded, in order
        self.emitted: list[dict[str, Any]] = []  # every server event delivered to the call
        self.session: dict[str, Any] = {}
        self.items: list[dict[str, Any]] = []  # what echo_items has added
        self.source: AudioSource = SilenceSource()
        self.opened = False
        self.closed = False
        self._events: TransportEvents | None = None  # (set by `open`)
        self._pts = 0
        self._sent_any = asyncio.Event()

    async def open(self, session: AnySession, events: TransportEvents) -> None:
        if self.fail_open is not None:
            raise ConnectionLostError(self.fail_open)
        self._events = events
        self.opened = True
        if self.live:
            self.session = {"id": new_id("live"), "model": getattr(session, "model", None), "status": "active"}
            self.emit({"type": "session.started", "session": self.session})
            return
        self.session = {"object": "realtime.session", "id": new_id("sess"), **session.to_wire()}
        self.emit({"type": "session.created", "session": self.session})

    # ------------------------------------------------------------------------------------------ the server's side
    def emit(self, event: dict[str, Any]) -> None:
        """Deliver one server event to the call (an `event_id` is added when missing)."""
        events = self._opened()
        event = {"event_id": new_id("event"), **event}
        self.emitted.append(event)
        events.on_server_message(json.dumps(event))

    def emit_raw(self, text: str | bytes) -> None:
        """Deliver a message as it is (malformed input, unknown types)."""
        self._opened().on_server_message(text)

    def _opened(self) -> TransportEvents:
        if self._events is None:
            raise RuntimeError("the scripted transport is not open")
        return self._events

    def lose(self, reason: str = "the scripted connection dropped") -> None:
        """End the connection as a network loss would (the call reconnects if it may)."""
        if not self.lost.done():
            self.lost.set_result(reason)

    def feed(self, pcm: np.ndarray, at: float = 0.0) -> None:
        """Received audio (48 kHz mono int16) for the call's taps, in 20 ms frames."""
        if self._events is None:
            return
        pcm = np.asarray(pcm, np.int16)
        for start in range(0, pcm.size, RTP_FRAME):
            self._events.on_received_audio(pcm[start : start + RTP_FRAME], self._pts, at)
            self._pts += RTP_FRAME

    def pump(self, frames: int, at: float = 0.0) -> np.ndarray:
        """Pull `frames` 20 ms frames from the call's source, as the outbound track would; returns them."""
        out = []
        for i in range(frames):
            pcm = np.asarray(self.source.read(RTP_FRAME), np.int16)
            if self._events is not None:
                self._events.on_sent_audio(pcm, i * RTP_FRAME, at)
            out.append(pcm)
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    # ------------------------------------------------------------------------------------------ Transport
    def send(self, text: str) -> None:
        if self.closed or self.lost.done():
            raise ConnectionLostError("the scripted connection is closed")
        event = json.loads(text)
        self.sent.append(event)
        self._sent_any.set()
        if event.get("type") == "session.update" and self.confirm_session:
            self.session = {**self.session, **event["session"]}
            self.emit({"type": "session.updated", "session": self.session})
        if event.get("type") == "conversation.item.create" and self.echo_items:
            item = {"id": new_id("item"), **event["item"]}
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            for kind in ("conversation.item.added", "conversation.item.done"):
                self.emit({"type": kind, "previous_item_id": previous, "item": item})
        if self.on_client_event is not None:
            self.on_client_event(event)

    def set_source(self, source: AudioSource) -> None:
        self.source = source

    async def close(self) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.cancel()

    # ------------------------------------------------------------------------------------------ asserting
    def sent_types(self, *, skip: tuple[str, ...] = ("session.update",)) -> list[str]:
        """The types of the events the client sent, in order (`skip`: types left out)."""
        return [e["type"] for e in self.sent if e["type"] not in skip]

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        """The events of type `kind` the client sent, in order."""
        return [e for e in self.sent if e["type"] == kind]

    async def wait_sent(self, kind: str, count: int = 1, timeout: float = 2.0) -> list[dict[str, Any]]:
        """Wait until the client has sent `count` events of type `kind`; returns them."""

        async def enough() -> list[dict[str, Any]]:
            while len(found := self.sent_of(kind)) < count:
                self._sent_any.clear()
                await self._sent_any.wait()
            return found

        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} {kind} within {timeout:g} s; the client sent {self.sent_types()}"
            ) from None
