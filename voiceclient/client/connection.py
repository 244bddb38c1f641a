"""One connection of a call and its handshake, the same for the first connection and every later one.

    open the transport -> the family confirms the session (Realtime: session.created -> session.update ->
    session.updated, or the error naming our update; GPT-Live: session.started)
    -> replay the conversation's items (`conversation.item.create` each, until each is done or refused)

A `Connection` reads its own server events on a side queue while it listens (the handshake, the replay): a
connection made while another still carries the call (a recycle, a reconnect) is prepared without any of its
events reaching the call's handlers. Every wait is bounded and also ends when the transport is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from voiceclient.client.family import AnyClientEvent, Family, RealtimeFamily
from voiceclient.client.transport import Transport, TransportEvents
from voiceclient.errors import ConnectionLostError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import AnySession

log = logging.getLogger(__name__)
LogLine = Callable[[str, dict[str, Any]], None]  # (direction, event) into the call's event log


class Connection:
    """A transport plus what the call knows of its session: when it was made, its cap, what it was replayed."""

    def __init__(self, transport: Transport, log_line: LogLine, family: Family | None = None) -> None:
        self.transport = transport
        self.family = family or RealtimeFamily()
        self.created = time.monotonic()  # when this connection was begun (its recycle timer starts here)
        self.created_wall = time.time()
        self.expires_at: float | None = None  # the session's cap (unix time), from its session.created
        self.effective_session: dict[str, Any] | None = None  # as session.updated gave it
        self.replayed: set[str | None] = set()  # ids of the history items this connection has been given
        self._events: asyncio.Queue[ev.ReceivedServerEvent] = asyncio.Queue()
        self._listening = True
        self._log = log_line

    @property
    def call_id(self) -> str | None:
        return self.transport.call_id

    @property
    def session_length(self) -> float | None:
        """Seconds from this connection's creation to its session's cap."""
        return None if self.expires_at is None else self.expires_at - self.created_wall

    def cap(self) -> float | None:
        """The session's cap as monotonic time, or None."""
        return None if self.expires_at is None else time.monotonic() + self.expires_at - time.time()

    def on_message(self, message: str | bytes) -> None:
        if self._listening:
            self._events.put_nowait(self.family.decode(message))

    def stop_listening(self) -> None:
        """The call reads this connection's events from now on; the side queue is dropped."""
        self._listening = False
        self._events = asyncio.Queue()

    def send(self, event: AnyClientEvent) -> None:
        wire = self.family.wire(event)
        self._log("client", wire)
        self.transport.send(json.dumps(wire, separators=(",", ":")))

    async def open(
        self, session: AnySession, events: TransportEvents, timeout: float, update_timeout: float | None = None
    ) -> None:
        """Connect with `events` (which hand each server message to `on_message` too), confirm `session`; raises a
        `VoiceClientError` on any failure (the caller closes the transport)."""
        await self.transport.open(session, events)
        await self.family.confirm(self, session, timeout, timeout if update_timeout is None else update_timeout)

    async def replay(self, items: list[ev.Item], timeout: float) -> None:
        """Create `items` (those not replayed yet) on this connection and wait until each is done or refused, no
        longer than `timeout` in all (then ConnectionLostError: the connection is not fit to carry the call)."""
        creates = [ev.ConversationItemCreate(item=item) for item in items if item.id not in self.replayed]
        self.replayed.update(c.item.id for c in creates if c.item.id)
        for create in creates:
            self.send(create)
        waiting = {c.event_id: c.item.id for c in creates}  # request -> the item it creates
        deadline = time.monotonic() + timeout
        while waiting:
            left = max(0.0, deadline - time.monotonic())
            try:
                event = await self.next_event(
                    lambda e: (
                        (isinstance(e, ev.ConversationItemDone) and e.item.id in waiting.values())
                        or (isinstance(e, ev.Error) and e.error.event_id in waiting)
                    ),
                    left,
                    f"acknowledgement of the replayed conversation ({len(waiting)} of {len(creates)} items)",
                )
            except TimeoutError:
                raise ConnectionLostError(
                    f"the new connection did not acknowledge {len(waiting)} of the "
                    f"{len(creates)} replayed items within {timeout:g} s"
                ) from None
            if isinstance(event, ev.Error):
                log.warning("replaying the conversation: the new connection refused an item: %s", event.error.message)
                waiting.pop(event.error.event_id, None)
            elif isinstance(event, ev.ConversationItemDone):
                for request in [k for k, v in waiting.items() if v == event.item.id]:
                    del waiting[request]

    async def next_event(
        self, accept: Callable[[ev.ReceivedServerEvent], bool], timeout: float, what: str
    ) -> ev.ReceivedServerEvent:
        """The next listened event `accept` takes; TimeoutError after `timeout`, ConnectionLostError on a loss."""

        async def find() -> ev.ReceivedServerEvent:
            while True:
                event = await self._events.get()
                if accept(event):
                    return event

        lost: asyncio.Future[str] = asyncio.ensure_future(asyncio.shield(self.transport.lost))
        found = asyncio.get_running_loop().create_task(find())
        try:
            waiters: set[asyncio.Future[Any]] = {found, lost}
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not found.done():
                found.cancel()
        if found in done:
            return found.result()
        if lost in done and not lost.cancelled():
            raise ConnectionLostError(f"the connection was lost before {what}: {lost.result()}")
        raise TimeoutError(f"no {what} from the server within {timeout:g} s")
