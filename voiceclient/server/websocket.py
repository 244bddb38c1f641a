"""The WebSocket edge of a server session: `GET /v1/realtime?model=M`, a whole Realtime session over one socket.

    client --input_audio_buffer.append (base64, the session's input format)--> WireDecoder --24 kHz--> turns
           --every client event--> the session's ordered queue
    ResponseEngine --> DeltaOutput --response.output_audio.delta (base64, the session's output format)--> client

The client plays the audio and truncates on barge-in (`conversation.item.truncate`); there is no
`output_audio_buffer.*`. Events go out through an `EventWriter` (the sidebands' too), so a slow reader never
blocks the session; a reader so slow that `QUEUE_LIMIT` events wait is disconnected. The rest of the session is
`ServerSession`'s.

With an emulated network (`server/network.py`), each event waits in a `DelayLine` before the writer takes it, and
each client message before the session does: delayed, in order, a lost packet turned into a stall of everything
behind it for a retransmission timeout, as TCP does; never lost, never reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from voiceclient.rtc.impair import DelayLine
from voiceclient.server.deltas import DeltaOutput
from voiceclient.server.faults import FaultSpec
from voiceclient.server.network import CallNetwork
from voiceclient.server.responders import Responder
from voiceclient.server.session import ServerSession
from voiceclient.server.sideband import EventWriter
from voiceclient.server.speech import SpeechBackends

log = logging.getLogger(__name__)
QUEUE_LIMIT = 50_000  # server events waiting for a slow client before it is disconnected
CLOSE_FLUSH_SECONDS = 5.0  # on close, how long the events already queued may take to leave


class WebSocketSession(ServerSession):
    transport = "websocket"

    def __init__(
        self,
        session_id: str,
        session: dict[str, Any],
        responder: Responder,
        request: web.Request,
        ws: web.WebSocketResponse,
        pace_audio: bool = False,
        on_closed: Callable[[ServerSession], None] | None = None,
        max_seconds: float = 3600.0,
        speech: SpeechBackends | None = None,
        vad: str = "auto",
        faults: list[FaultSpec] | None = None,
        network: CallNetwork | None = None,
    ) -> None:
        self.deltas = DeltaOutput(self.send, lambda: self.session["audio"]["output"]["format"], pace_audio)
        super().__init__(
            session_id, session, responder, self.deltas, on_closed, max_seconds, speech, vad, faults, network
        )
        self.request = request
        self.ws = ws
        self.writer = EventWriter(ws, QUEUE_LIMIT, on_overflow=self._too_slow, name=f"websocket {session_id}")
        self._dropped = False
        self._close_with: tuple[int, bytes] = (WSCloseCode.OK, b"")
        self._down: DelayLine[str] | None = None
        self._up: DelayLine[str | bytes] | None = None
        if network is not None:
            self._down = DelayLine(network.down, self._write, f"websocket {session_id} down")
            self._up = DelayLine(network.up, self._read, f"websocket {session_id} up")

    async def serve(self) -> None:
        """Greet the client, then read its events until the socket closes; the session ends with it."""
        self.deltas.start(self.tasks)
        self.start()
        self.greet()
        try:
            async for message in self.ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):  # binary: decoded like text, an error event
                    if self._up is None:
                        self.submit(message.data)
                    else:
                        self._up.push(message.data)
                elif message.type == WSMsgType.ERROR:
                    log.info("websocket %s: %s", self.id, self.ws.exception())
                    break
        finally:
            if not self._closing:
                log.info("websocket %s: the client closed the socket (code %s)", self.id, self.ws.close_code)
            await self.close()

    def _deliver(self, text: str, kind: str) -> bool:
        if self.ws.closed or self._dropped:
            return False
        if self._down is None or self._down.bypassed:
            return self.writer.push(text)
        self._down.push(text)  # (a reliable line loses nothing)
        return True

    async def _write(self, text: str) -> None:
        self.writer.push(text)

    async def _read(self, message: str | bytes) -> None:
        self.submit(message)

    def _too_slow(self) -> None:
        self._close_with = (WSCloseCode.POLICY_VIOLATION, b"client too slow")
        self._post("lost", "too slow")

    async def _transport_fault(self, fault: FaultSpec) -> None:
        if fault.action == "stop_media":
            self.deltas.muted = True
        elif fault.action == "close_channel":  # a clean close, no error: as if the service hung up
            self._post("lost", "closed by an injected fault")
        elif fault.action == "drop_connection":  # no close frame: the TCP connection just goes
            self._dropped = True
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def _close_transport(self) -> None:
        if self._up is not None:
            await self._up.close()  # what the client sent after the end is not heard
        if self._down is not None:
            await self._down.drain()  # what the server sent before it (a final error, say) is
        self.writer.close(*self._close_with)  # what is queued (a final error, say) still leaves, then the close
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self.writer.task), CLOSE_FLUSH_SECONDS)
        self.writer.task.cancel()
