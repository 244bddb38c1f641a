"""One RTCPeerConnection of a Realtime call, for either side: a sendrecv audio transceiver with the adaptive jitter
buffer, the `oai-events` data channel, and a `lost` future set (with a reason) when ICE/DTLS fails or the channel
closes without us closing it.

The offerer (the client) creates the channel and the offer; the answerer (the embedded server) takes the offer,
accepts the first `oai-events` channel the offerer opens and answers, by default as OpenAI's service does: ICE-lite
on host candidates of one address, the answer in the real service's shape (`rtc/lite.py`, `rtc/answer.py`); with
`answer_shape="aiortc"`, as aiortc answers (full ICE on every interface). aiortc's camelCase stays in this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from voiceclient.errors import ConnectionLostError
from voiceclient.protocol.errors import ProtocolError
from voiceclient.rtc.answer import prepare_answerer, real_answer
from voiceclient.rtc.direct import use_direct_rtp
from voiceclient.rtc.inline import MonoOpusEncoder, use_inline_decoder, use_inline_encoder
from voiceclient.rtc.jitter import use_adaptive_jitter_buffer
from voiceclient.rtc.lite import LiteConnection, ice_transports, use_ice_lite

if TYPE_CHECKING:  # the emulated network is the server's: a client's start-up does not load it
    from voiceclient.rtc.impair import ImpairedTransport
    from voiceclient.rtc.netem import LinkModel

log = logging.getLogger(__name__)
CHANNEL_LABEL = "oai-events"
Role = Literal["offerer", "answerer"]
AnswerShape = Literal["real", "aiortc"]


class InvalidOffer(ProtocolError):
    """An SDP offer the answerer cannot take (no audio, no data channel, or not SDP at all). The client sees the
    API's words; `detail` says what was wrong, for the server's log."""

    def __init__(self, detail: str) -> None:
        super().__init__("Invalid SDP offer. Please try again with a WHIP-compliant offer.", "invalid_offer", "sdp")
        self.detail = detail


class Peer:
    def __init__(
        self,
        outbound: MediaStreamTrack,
        ice_servers: list[str] | None = None,
        role: Role = "offerer",
        answer_shape: AnswerShape = "real",
        host: str = "127.0.0.1",
        deaf: bool = False,
    ) -> None:
        """Answerer only: `answer_shape`, `host` (the address whose candidates a real-shape answer gives) and
        `deaf` (answer no ICE checks: candidates nobody can reach)."""
        servers = [RTCIceServer(urls=u) for u in ice_servers or []]
        self.role = role
        self.answer_shape = answer_shape
        self.host = host
        self.deaf = deaf
        self.lite: list[LiteConnection] = []
        self.outbound = outbound
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # [] means no STUN wait offline
        loop = asyncio.get_running_loop()
        self.remote_track: asyncio.Future[MediaStreamTrack] = loop.create_future()
        self.opened = asyncio.Event()
        self.ice_connected = asyncio.Event()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.on_message: Callable[[str | bytes], None] | None = None
        self.on_open: Callable[[], None] | None = None
        self.channel: RTCDataChannel | None = None
        self.impaired: list[ImpairedTransport] = []
        self.uplink: MonoOpusEncoder | None = None  # our audio's encoder: its mode (FEC or not) and switches
        self._closed = False
        if role == "offerer":
            transceiver = self.pc.addTransceiver(outbound, direction="sendrecv")
            use_adaptive_jitter_buffer(transceiver.receiver)
            use_inline_decoder(transceiver.receiver)
            self.uplink = use_inline_encoder(transceiver.sender)
            self._attach(self.pc.createDataChannel(CHANNEL_LABEL))
        else:
            self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("iceconnectionstatechange", self._on_ice_state)

    # ------------------------------------------------------------------------------------------ aiortc events
    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self.channel is not None:
            log.info("ignoring data channel %r", channel.label)
            return
        self._attach(channel)
        if channel.readyState == "open":
            self._opened()

    def _attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("open", self._opened)
        channel.on("close", self._on_channel_close)
        channel.on("message", self._on_message)

    def _opened(self) -> None:
        if self.opened.is_set():
            return
        self.opened.set()
        if self.on_open is not None:
            self.on_open()

    def _on_message(self, message: str | bytes) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def _on_channel_close(self) -> None:
        if not self._closed:
            self._lose(f"the {CHANNEL_LABEL} data channel closed")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self.remote_track.done():
            self.remote_track.set_result(track)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.debug("peer connection state: %s", state)
        if state == "connected":
            use_direct_rtp(self.pc)
        elif state == "failed":
            self._lose("the WebRTC connection failed (ICE/DTLS)")
        elif state == "closed" and not self._closed:
            self._lose("the WebRTC connection was closed by the remote side")

    def _on_ice_state(self) -> None:
        if self.pc.iceConnectionState in ("connected", "completed"):
            self.ice_connected.set()

    def _lose(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)

    # ------------------------------------------------------------------------------------------ negotiation
    async def create_offer(self) -> str:
        """Offerer: create the offer and gather candidates; returns `localDescription.sdp` (with candidates)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer(self, offer_sdp: str) -> str:
        """Answerer: take the offer (it must carry audio and the data channel) and return the answer SDP."""
        if "m=audio" not in offer_sdp:
            raise InvalidOffer("the offer has no audio m-line")
        if "webrtc-datachannel" not in offer_sdp:
            raise InvalidOffer(f"the offer has no data channel (create `{CHANNEL_LABEL}` before the offer)")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on a malformed SDP
            raise InvalidOffer(f"{type(exc).__name__}: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                use_adaptive_jitter_buffer(transceiver.receiver)
                use_inline_decoder(transceiver.receiver)
        self.uplink = use_inline_encoder(self.pc.addTrack(self.outbound))
        if self.answer_shape == "aiortc":
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp
        prepare_answerer(self.pc)
        self.lite = await use_ice_lite(self.pc, self.host, deaf=self.deaf)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return real_answer(self.pc.localDescription.sdp)

    def impair(self, down: LinkModel, up: LinkModel) -> None:
        """Send every datagram of this connection through `down` and receive each through `up` (an emulated
        network, `rtc/impair.py`). After `answer()` (its transports exist then) and before the answer is sent."""
        from voiceclient.rtc.impair import ImpairedTransport

        self.impaired = [
            ImpairedTransport(transport, down, up, f"network {i}")
            for i, transport in enumerate(ice_transports(self.pc))
        ]

    async def wait_open(self, timeout: float) -> None:
        """Wait for ICE to connect within `timeout` (a person at a laptop will not wait longer, and a lite server
        that never answers leaves aioice checking for ever), then for DTLS, SCTP and the data channel within as
        long again; or fail with one line that says which step did not come up."""
        if self.channel is not None and self.channel.readyState == "open":
            self.opened.set()
            self.ice_connected.set()
        if not await self._wait_for(self.ice_connected, timeout):
            raise ConnectionLostError(self._not_connected(timeout))
        if not await self._wait_for(self.opened, timeout):
            raise ConnectionLostError(
                f"ICE connected, but the data channel did not open within {timeout:g} s "
                f"(DTLS {self._dtls_state()}); the server may not be a Realtime server"
            )

    def _dtls_state(self) -> str:
        transceivers = self.pc.getTransceivers()
        return str(transceivers[0].receiver.transport.state) if transceivers else "?"

    def _not_connected(self, timeout: float) -> str:
        remote = self._remote_candidates()
        candidates = sorted({f"{c.ip}:{c.port}" for c in remote if c.protocol == "udp"})
        tcp = any(c.protocol == "tcp" for c in remote)
        where = ", ".join(candidates[:3]) or "no UDP candidate"
        return (
            f"the WebRTC connection did not come up within {timeout:g} s: no answer to ICE checks from the "
            f"server's UDP candidates ({where}; ICE {self.pc.iceConnectionState}). A network that blocks UDP "
            "does this (office, hotel or conference Wi-Fi): --transport websocket (or the default, auto) goes "
            "through wherever HTTPS does; or a TURN server with --ice-server"
            + (" (aiortc cannot use the server's TCP candidates)" if tcp else "")
        )

    def _remote_candidates(self) -> list[Any]:
        transceivers = self.pc.getTransceivers()
        return transceivers[0].receiver.transport.transport.getRemoteCandidates() if transceivers else []

    async def _wait_for(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for `event`: True when set, False after `timeout`; raises with the reason if the connection is
        lost meanwhile."""
        waiter = asyncio.get_running_loop().create_task(event.wait())
        waiters: set[asyncio.Future[Any]] = {waiter, self.lost}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if event.is_set():
            return True
        if self.lost.done():
            raise ConnectionLostError(self.lost.result())
        return False

    # ------------------------------------------------------------------------------------------ use
    @property
    def is_open(self) -> bool:
        return self.channel is not None and self.channel.readyState == "open"

    def send(self, text: str) -> None:
        if self.channel is None or self.channel.readyState != "open":
            raise ConnectionLostError(f"the {CHANNEL_LABEL} data channel is not open")
        self.channel.send(text)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for impaired in self.impaired:  # the goodbye reaches the client, whatever the emulated network
            await impaired.drain()
        await close_peer_connection(self.pc)
        for impaired in self.impaired:
            await impaired.close()


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close `pc` so that cancelling the caller cannot break aiortc's own close.

    Once every DTLS transport has closed, aiortc starts `pc.close()` in a task of its own; a second
    `close()` awaits that task's future, and cancelling that second caller (a shutdown timeout, a torn
    down task group) cancels the shared future. aiortc's task then fails on `set_result` and is
    garbage collected with "Task exception was never retrieved", whose logged traceback runs
    `ast.parse` inside a finalizer (CPython 3.11 broke a test's own `ast.parse` this way in CI).
    The shield keeps the shared future out of our cancellation.
    """
    await asyncio.shield(pc.close())
