"""The sideband: a backend joins a live WebRTC call over a WebSocket, `GET /v1/realtime?call_id=rtc_…`.

It receives every server event of the call from the moment it joins (starting with `session.created` carrying the
current session) and may send the same client events as the data channel; they go through the call's one ordered
queue. An unknown or ended call is refused with 404 before the upgrade, as the API does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from voiceclient.server.call import ServerCall

log = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000  # events buffered for a slow sideband before it is dropped


class Sideband:
    """One joined WebSocket: its own writer task, so a slow reader never blocks the call."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.writer = asyncio.ensure_future(self._write())

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


async def serve_sideband(request: web.Request, call: "ServerCall") -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    sideband = Sideband(ws)
    call.sidebands.add(sideband)
    call.send_to(sideband, {"type": "session.created", "session": call.public_session()})
    log.info("call %s: sideband joined", call.id)
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                call.queue.put_nowait(("client", message.data))
            elif message.type == WSMsgType.BINARY:
                call.queue.put_nowait(("client", message.data))  # decoded like text; not JSON -> an error event
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        call.sidebands.discard(sideband)
        sideband.close()
        log.info("call %s: sideband left", call.id)
    return ws
