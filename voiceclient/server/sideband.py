"""The sideband: a backend joins a live WebRTC call over a WebSocket, `GET /v1/realtime?call_id=rtc_…`.

It receives every server event of the call from the moment it joins (starting with `session.created` carrying the
current session) and may send the same client events as the data channel; they go through the call's one ordered
queue. An unknown or ended call is refused with 404 before the upgrade, as the API does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000  # events buffered for a slow sideband before it is dropped


class Listener(Protocol):
    def push(self, text: str) -> None: ...

    def close(self) -> None: ...


class Joinable(Protocol):
    """What a sideband needs of a live session: join it (and be greeted with `session.created`), put client
    events into its ordered queue, leave it."""

    id: str

    def join(self, listener: Listener) -> None: ...

    def submit(self, message: str | bytes) -> None: ...

    def leave(self, listener: Listener) -> None: ...


class Sideband:
    """One joined WebSocket: its own writer task, so a slow reader never blocks the call."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.writer = asyncio.get_running_loop().create_task(self._write(), name="sideband writer")

    def push(self, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("sideband too slow; closing it")
            self.close()

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.writer.cancel()

    async def _write(self) -> None:
        while (text := await self.queue.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(text)
        await self.ws.close()


async def serve_sideband(request: web.Request, call: Joinable) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    sideband = Sideband(ws)
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
