"""The WebSocket edge of a server session: `GET /v1/realtime?model=M`, a whole Realtime session over one socket.

    client --every client event (input_audio_buffer.append too)--> port.post(ClientMessage) --> the session
    ResponseEngine --> DeltaOutput --response.output_audio.delta (base64, the session's output format)--> client

The client plays the audio and truncates on barge-in (`conversation.item.truncate`); there is no
`output_audio_buffer.*`. Events go out through an `EventWriter` (the sidebands' too), so a slow reader never
blocks the session; a reader so slow that `QUEUE_LIMIT` events wait is disconnected. The session is
`ServerSession`'s; this edge owns the socket, its writer and the audio deltas.

With an emulated network (`server/network.py`), each event waits in a `DelayLine` before the writer takes it, and
each client message before the session does: delayed, in order, a lost packet turned into a stall of everything
behind it for a retransmission timeout, as TCP does; never lost, never reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from voiceclient.rtc.impair import DelayLine
from voiceclient.server.deltas import DeltaOutput
from voiceclient.server.edge import SessionPort
from voiceclient.server.inbox import ClientMessage, ConnectionLost, ConnectionOpened
from voiceclient.server.network import CallNetwork
from voiceclient.server.sideband import EventWriter

log = logging.getLogger(__name__)
WS_MAX_MESSAGE = 32 * 1024 * 1024  # the largest client message: an append carries up to 15 MiB of audio, as base64
QUEUE_LIMIT = 50_000  # server events waiting for a slow client before it is disconnected
CLOSE_FLUSH_SECONDS = 5.0  # on close, how long the events already queued may take to leave


class WebSocketEdge:
    """An upgraded socket carrying one session: `await edge.serve()` reads it until it closes."""

    transport = "websocket"

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        pace_audio: bool = False,
        network: CallNetwork | None = None,
    ) -> None:
        """`pace_audio`: the answer audio leaves in real time, not as fast as it is made; `network`: every
        message waits in a reliable `DelayLine` each way."""
        self.request = request
        self.ws = ws
        self.pace_audio = pace_audio
        self.network = network
        self.writer: EventWriter | None = None
        self.deltas: DeltaOutput | None = None
        self._port: SessionPort | None = None
        self._dropped = False
        self._closing = False
        self._close_with: tuple[int, bytes] = (WSCloseCode.OK, b"")
        self._down: DelayLine[str] | None = None
        self._up: DelayLine[str | bytes] | None = None

    def attach(self, port: SessionPort) -> None:
        self._port = port
        self.deltas = DeltaOutput(port.output_audio, lambda: port.session["audio"]["output"]["format"], self.pace_audio)
        self.deltas.start(port.tasks)
        self.writer = EventWriter(self.ws, QUEUE_LIMIT, on_overflow=self._too_slow, name=f"websocket {port.id}")
        if self.network is not None:
            self._down = DelayLine(self.network.down, self._write, f"websocket {port.id} down")
            self._up = DelayLine(self.network.up, self._read, f"websocket {port.id} up")

    @property
    def output(self) -> DeltaOutput:
        return self._attached()[1]

    def _attached(self) -> tuple[SessionPort, DeltaOutput, EventWriter]:
        if self._port is None or self.deltas is None or self.writer is None:
            raise RuntimeError("the socket's edge has no session yet (ServerSession attaches it)")
        return self._port, self.deltas, self.writer

    async def serve(self) -> None:
        """Greet the client, then read its events until the socket closes (then the session should close)."""
        port = self._attached()[0]
        port.post(ConnectionOpened())
        async for message in self.ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):  # binary: decoded like text, an error event
                if self._up is None:
                    port.post(ClientMessage(message.data))
                else:
                    self._up.push(message.data)
            elif message.type == WSMsgType.ERROR:
                log.info("websocket %s: %s", port.id, self.ws.exception())
                break
        if not self._closing:
            log.info("websocket %s: the client closed the socket (code %s)", port.id, self.ws.close_code)

    def deliver(self, text: str, kind: str) -> bool:
        writer = self._attached()[2]
        if self.ws.closed or self._dropped:
            return False
        if self._down is None or self._down.bypassed:
            return writer.push(text)
        self._down.push(text)  # (a reliable line loses nothing)
        return True

    async def _write(self, text: str) -> None:
        self._attached()[2].push(text)

    async def _read(self, message: str | bytes) -> None:
        self._attached()[0].post(ClientMessage(message))

    def _too_slow(self) -> None:
        self._close_with = (WSCloseCode.POLICY_VIOLATION, b"client too slow")
        self._attached()[0].post(ConnectionLost("the client reads too slowly"))

    def pause_media(self) -> None:
        self._attached()[1].muted = True

    def close_channel(self) -> None:  # a clean close, no error: as if the service hung up
        self._attached()[0].post(ConnectionLost("closed by an injected fault"))

    async def drop(self) -> None:  # no close frame: the TCP connection just goes
        self._dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._up is not None:
            await self._up.close()  # what the client sent after the end is not heard
        if self._down is not None:
            await self._down.drain()  # what the server sent before it (a final error, say) is
        if self.writer is None:
            return
        self.writer.close(*self._close_with)  # what is queued (a final error, say) still leaves, then the close
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self.writer.task), CLOSE_FLUSH_SECONDS)
        self.writer.task.cancel()
