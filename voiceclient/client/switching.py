"""A second connection for the same conversation, made ready before the call moves onto it.

`PendingConnection` opens a transport while the current one still carries the call, confirms the session on it and
replays the conversation history into it (`conversation.item.create` per item), reading that connection's events
on a side queue so none of them reaches the call's handlers twice. `ReconnectPolicy` says how often and how soon to
try again after a loss.
"""

from __future__ import annotations

import asyncio
import json
import time
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voiceclient.client.transport import FrameTap, MessageTap, Transport
from voiceclient.errors import ConnectionLostError, SessionNotConfirmedError, SessionUpdateError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Continuity:
    """How a call outlives its connections (the command line's --reconnect, --recycle-after, --media-timeout)."""

    reconnect: int = 0
    recycle_after: float | None = None
    media_timeout: float = 2.0


@dataclass(frozen=True)
class ReconnectPolicy:
    """`attempts` new connections after a loss, waiting `backoff[i]` seconds before attempt i (the last value
    repeats)."""

    attempts: int = 0
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

    def delay(self, attempt: int) -> float:
        return self.backoff[min(attempt, len(self.backoff) - 1)] if self.backoff else 0.0


class PendingConnection:
    def __init__(self, transport: Transport, send_log: Callable[[str, dict[str, object]], None]) -> None:
        self.transport = transport
        self.created = time.monotonic()  # when this connection was begun (its recycle timer starts here)
        self.created_wall = time.time()
        self.events: asyncio.Queue[ev.ReceivedServerEvent] = asyncio.Queue()
        self.expires_at: float | None = None  # the new session's cap, from its session.created
        self.replayed: set[str | None] = set()  # ids of the history items this connection has been given
        self._log = send_log  # (direction, event) into the call's event log

    def on_message(self, message: str | bytes) -> None:
        self.events.put_nowait(ev.parse_server_event(message))

    def send(self, event: ev.ClientEvent) -> None:
        wire = event.to_wire()
        self._log("client", wire)
        self.transport.send(json.dumps(wire, separators=(",", ":")))

    async def _next(self, accept: Callable[[ev.ReceivedServerEvent], bool], timeout: float,
                    what: str) -> ev.ReceivedServerEvent:
        async def find() -> ev.ReceivedServerEvent:
            while True:
                event = await self.events.get()
                if accept(event):
                    return event

        lost: asyncio.Future[str] = asyncio.ensure_future(asyncio.shield(self.transport.lost))
        found = asyncio.get_running_loop().create_task(find())
        waiters: set[asyncio.Future[Any]] = {found, lost}
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not found.done():
                found.cancel()
        if found in done:
            return found.result()
        if lost in done and not lost.cancelled():
            raise ConnectionLostError(f"the new connection was lost while {what}: {lost.result()}")
        raise TimeoutError(f"no {what} on the new connection within {timeout:g} s")

    async def prepare(self, session: SessionConfig, replay: list[ev.Item], on_audio: FrameTap, on_sent: FrameTap,
                      on_message: MessageTap, timeout: float, on_local: MessageTap | None = None) -> None:
        """Open, confirm `session`, replay the items; raises on any failure (the caller closes the transport)."""
        await self.transport.open(session, on_message, on_audio, on_sent, on_local)
        created = await self._next(lambda e: e.type == "session.created", timeout, "waiting for session.created")
        if isinstance(created, ev.SessionCreated) and isinstance(created.session.get("expires_at"), (int, float)):
            self.expires_at = float(created.session["expires_at"])
        update = ev.SessionUpdate(session=session)
        self.send(update)
        try:
            reply = await self._next(lambda e: e.type == "session.updated" or (
                isinstance(e, ev.Error) and e.error.event_id == update.event_id), timeout, "confirming the session")
        except TimeoutError:
            raise SessionNotConfirmedError("the new connection did not confirm the session") from None
        if isinstance(reply, ev.Error):
            raise SessionUpdateError(f"the new connection refused the session: {reply.error.message}")
        await self.replay(replay, timeout)

    async def replay(self, items: list[ev.Item], timeout: float) -> None:
        """Create `items` (those not replayed yet) on this connection and wait until each is done or refused."""
        creates = [ev.ConversationItemCreate(item=item) for item in items if item.id not in self.replayed]
        self.replayed.update(c.item.id for c in creates if c.item.id)
        for create in creates:
            self.send(create)
        waiting = {c.event_id: c.item.id for c in creates}  # request -> the item it creates
        while waiting:
            event = await self._next(lambda e: (
                isinstance(e, ev.ConversationItemDone) and e.item.id in waiting.values()) or (
                isinstance(e, ev.Error) and e.error.event_id in waiting), timeout, "replaying the conversation")
            if isinstance(event, ev.Error):
                log.warning("replaying the conversation: the new connection refused an item: %s",
                            event.error.message)
                waiting.pop(event.error.event_id, None)
            elif isinstance(event, ev.ConversationItemDone):
                for request in [k for k, v in waiting.items() if v == event.item.id]:
                    del waiting[request]
