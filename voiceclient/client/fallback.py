"""`transport="auto"`: WebRTC first; when ICE has not connected within a few seconds (a network that drops UDP, as
office, hotel and conference networks do), the same conversation goes on over the WebSocket, which passes wherever
HTTPS does. Each new connection (a reconnect, a recycle) tries WebRTC again: it takes whichever works then.
"""

from __future__ import annotations

import asyncio
import logging

from voiceclient.audio.sources import AudioSource
from voiceclient.client.family import Family
from voiceclient.client.settings import ClientSettings
from voiceclient.client.transport import Transport, TransportEvents, WebRTCTransport
from voiceclient.client.websocket import WebSocketTransport
from voiceclient.errors import ConnectionLostError, VoiceClientError
from voiceclient.protocol.session import AnySession

log = logging.getLogger(__name__)
WEBRTC_DEADLINE = 3.0  # seconds for ICE to connect before the WebSocket is tried


def first_sentence(text: str) -> str:
    """The reason without its advice (WebRTC's says to try the WebSocket, which was just tried)."""
    return text.split(". ", 1)[0]


class AutoTransport(Transport):
    """One connection, over WebRTC if it comes up in time, else over WebSocket; `fallback` says why it fell back."""

    def __init__(self, settings: ClientSettings, liveness: float = 30.0, family: Family | None = None) -> None:
        self.settings = settings
        self.family = family
        self.liveness = liveness  # the WebSocket's (see WebSocketTransport)
        self.lost = asyncio.get_running_loop().create_future()
        self.chosen: Transport | None = None
        self.fallback: str | None = None  # why WebRTC was given up, when it was
        self._source: AudioSource | None = None

    @property
    def plays_audio(self) -> bool:  # type: ignore[override]
        return self.chosen is not None and self.chosen.plays_audio

    async def open(self, session: AnySession, events: TransportEvents) -> None:
        deadline = min(self.settings.connect_timeout, WEBRTC_DEADLINE)
        webrtc = WebRTCTransport(self.settings.model_copy(update={"connect_timeout": deadline}), self.family)
        try:
            await webrtc.open(session, events)
        except ConnectionLostError as exc:
            await webrtc.close()  # hangs the WebRTC call up: it exists on the server
            self.fallback = str(exc)
            log.info("WebRTC did not come up (%s); trying the WebSocket", exc)
            chosen: Transport = WebSocketTransport(self.settings, self.liveness, self.family)
            try:
                await chosen.open(session, events)  # (it cleans up if it fails)
            except VoiceClientError as ws:  # neither way in: a connection failure, with both reasons
                raise ConnectionLostError(
                    f"could not connect: WebRTC: {first_sentence(str(exc))}; WebSocket fallback: {ws}"
                ) from ws
        except BaseException:
            await webrtc.close()  # refused, unreachable, cancelled: nothing of it stays open
            raise
        else:
            chosen = webrtc
        self._use(chosen)

    def _use(self, chosen: Transport) -> None:
        self.chosen = chosen
        self.call_id = chosen.call_id
        self.create_seconds = chosen.create_seconds
        if self._source is not None:
            chosen.set_source(self._source)
        chosen.lost.add_done_callback(self._chosen_lost)

    def _chosen_lost(self, lost: asyncio.Future[str]) -> None:
        if not lost.cancelled() and not self.lost.done():
            self.lost.set_result(lost.result())

    def send(self, text: str) -> None:
        if self.chosen is None:
            raise ConnectionLostError("the connection is not open")
        self.chosen.send(text)

    def set_source(self, source: AudioSource) -> None:
        self._source = source
        if self.chosen is not None:
            self.chosen.set_source(source)

    def clear_playout(self) -> tuple[str, int] | None:
        return self.chosen.clear_playout() if self.chosen is not None else None

    async def close(self) -> None:
        if self.chosen is not None:
            await self.chosen.close()
        if not self.lost.done():
            self.lost.cancel()
