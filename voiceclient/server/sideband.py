"""The sideband: a backend joins a live WebRTC call over a WebSocket, `GET /v1/realtime?call_id=rtc_…`.

It receives every server event of the call from the moment it joins (starting with `session.created` carrying the
current session) and may send the same client events as the data channel; they go through the call's one ordered
queue. An unknown or ended call is refused with 404 before the upgrade, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

log = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000  # events buffered for a slow sideband before it is dropped


class Listener(Protocol):
    def push(self, text: str) -> bool: ...

    def close(self) -> None: ...


class Joinable(Protocol):
    """What a sideband needs of a live session: join it (and be greeted with `session.created`), put client
    events into its ordered queue, leave it."""

    id: str

    def join(self, listener: Listener) -> None: ...

    def submit(self, message: str | bytes) -> None: ...

    def leave(self, listener: Listener) -> None: ...


class EventWriter:
    """Server events to one WebSocket through its own writer task, so a slow reader never blocks the session.
    More than `limit` events waiting means the reader is too slow: `push` then calls `on_overflow` (or closes).
    `close(code, message)` lets what is queued leave, then closes the socket; `task` ends when it has."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        limit: int = QUEUE_LIMIT,
        on_overflow: Callable[[], None] | None = None,
        name: str = "event writer",
    ) -> None:
        self.ws = ws
        self.on_overflow = on_overflow
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=limit)
        self.close_code: int = WSCloseCode.OK
        self.close_message = b""
        # Not a session task: it must outlive the session's own tasks to deliver the last events (a final error).
        self.task = asyncio.get_running_loop().create_task(self._write(), name=name)

    def push(self, text: str) -> bool:
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            log.warning("%s: the client reads too slowly (%d events waiting)", self.task.get_name(), self.queue.maxsize)
            if self.on_overflow is not None:
                self.on_overflow()
            else:
                self.close()
            return False

    def close(self, code: int = WSCloseCode.OK, message: bytes = b"") -> None:
        self.close_code, self.close_message = code, message
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.task.cancel()

    async def _write(self) -> None:
        while (text := await self.queue.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:  # the client went away mid-send
                log.info("%s: send failed: %s", self.task.get_name(), exc)
                return
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=self.close_code, message=self.close_message)


async def serve_sideband(request: web.Request, call: Joinable) -> web.WebSocketResponse:
    # (the `realtime` subprotocol is chosen when offered, as on a WebSocket session: a browser offering it
    # refuses a handshake that chooses none)
    ws = web.WebSocketResponse(protocols=("realtime",), heartbeat=30)
    await ws.prepare(request)
    sideband = EventWriter(ws, name=f"sideband of {call.id}")
    call.join(sideband)
    log.info("call %s: sideband joined", call.id)
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):  # binary is decoded like text: an error event
                call.submit(message.data)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        call.leave(sideband)
        sideband.close()
        log.info("call %s: sideband left", call.id)
    return ws
