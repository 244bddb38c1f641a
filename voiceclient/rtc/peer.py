"""One RTCPeerConnection for a Realtime call: a sendrecv audio transceiver and the `oai-events` data channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from voiceclient.rtc.jitter import use_immediate_jitter_buffer
from voiceclient.errors import ConnectionLostError

log = logging.getLogger(__name__)
CHANNEL_LABEL = "oai-events"


class Peer:
    """Offer side of the call. `lost` is set (with a reason) when ICE/DTLS fails or the channel closes."""

    def __init__(self, outbound: MediaStreamTrack, ice_servers: list[str] | None = None) -> None:
        servers = [RTCIceServer(urls=u) for u in ice_servers or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # [] means no STUN wait offline
        self.transceiver = self.pc.addTransceiver(outbound, direction="sendrecv")
        use_immediate_jitter_buffer(self.transceiver.receiver)
        self.channel = self.pc.createDataChannel(CHANNEL_LABEL)
        self.remote_track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.opened = asyncio.Event()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.on_message: Callable[[str | bytes], None] | None = None
        self._closed = False

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not self.remote_track.done():
                self.remote_track.set_result(track)

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            state = self.pc.connectionState
            log.debug("peer connection state: %s", state)
            if state == "failed":
                self._lose("the WebRTC connection failed (ICE/DTLS)")
            elif state == "closed" and not self._closed:
                self._lose("the WebRTC connection was closed by the remote side")

        @self.channel.on("open")
        def _on_open() -> None:
            self.opened.set()

        @self.channel.on("close")
        def _on_close() -> None:
            if not self._closed:
                self._lose("the oai-events data channel closed")

        @self.channel.on("message")
        def _on_message(message: str | bytes) -> None:
            if self.on_message is not None:
                self.on_message(message)

    def _lose(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)

    async def create_offer(self) -> str:
        """Create the offer and gather candidates; returns `localDescription.sdp` (with its candidates)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def wait_open(self, timeout: float) -> None:
        """Wait for the data channel to open (it may already be open), or fail clearly."""
        if self.channel.readyState == "open":
            self.opened.set()
        opened = asyncio.ensure_future(self.opened.wait())
        try:
            done, _ = await asyncio.wait({opened, self.lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        if self.opened.is_set():
            return
        if self.lost.done():
            raise ConnectionLostError(self.lost.result())
        raise ConnectionLostError(f"the connection did not come up within {timeout:g} s "
                                  f"(ICE state {self.pc.iceConnectionState})")

    def send(self, text: str) -> None:
        if self.channel.readyState != "open":
            raise ConnectionLostError("the oai-events data channel is not open")
        self.channel.send(text)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pc.close()
