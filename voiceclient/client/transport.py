"""What a call talks through: the `Transport` seam, and its WebRTC implementation.

A `VoiceCall` is the conversation; the transport is one connection under it. The call hands the transport one
`TransportEvents` object when it opens it (server messages, received audio, sent audio, the transport's own
events) and gives it the microphone; the transport says when it is `lost`. `WebRTCTransport` is the real one
(create-call over HTTP, aiortc peer, paced outbound track, inbound reader);
`voiceclient.client.scripted.ScriptedTransport` is an in-memory one for fast tests of the call's turn-taking rules.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.client.calls_api import CallsAPI
from voiceclient.client.family import Family, RealtimeFamily
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import InvalidAnswerError, VoiceClientError
from voiceclient.protocol.session import AnySession

if TYPE_CHECKING:
    from voiceclient.audio.tracks import InboundReader, OutboundTrack
    from voiceclient.rtc.peer import Peer

log = logging.getLogger(__name__)
FrameTap = Callable[[np.ndarray, int, float], None]  # (48 kHz mono int16, pts, monotonic time)
MessageTap = Callable[[str | bytes], None]


class TransportEvents(Protocol):
    """Where a transport delivers what happens on its connection, each in order, on the event loop's thread."""

    def on_server_message(self, message: str | bytes) -> None:
        """One server event as it came over the wire (JSON text)."""

    def on_received_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        """One received 20 ms frame (48 kHz mono int16, pts, monotonic time)."""

    def on_sent_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        """One sent 20 ms frame, as the microphone side sent it."""

    def on_local_message(self, message: str | bytes) -> None:
        """An event the transport makes itself, in the protocol's words (the WebSocket's playout:
        `output_audio_buffer.*`)."""

    def on_sent_message(self, message: str) -> None:
        """A client event the transport sent on its own, not through `send` (GPT-Live's `session.start`, the
        WebSocket's first message): for the event log, which keeps both directions."""


class Transport(abc.ABC):
    """One connection of a call. `open` connects (until the event channel is open); `lost` resolves with a reason
    when the connection goes away without `close`; `close` hangs up and releases, and may be called twice."""

    call_id: str | None = None
    lost: asyncio.Future[str]
    # Seconds the server took to create the call: WebRTC's create-call request (SDP offer to answer), the WebSocket's
    # handshake; None until then (a load test's "create call", `voiceclient.locust`).
    create_seconds: float | None = None

    @abc.abstractmethod
    async def open(self, session: AnySession, events: TransportEvents) -> None:
        """Connect with `session`; from then on what happens on the connection goes to `events`, in order: every
        server message, every received and every sent audio frame, and the events the transport makes itself."""

    plays_audio: bool = False  # the transport plays the answer out itself (WebSocket); over WebRTC the server does

    def clear_playout(self) -> tuple[str, int] | None:
        """A transport that plays the answer itself drops what was not heard yet and returns (the item that was
        playing, ms of it heard), for the call's `conversation.item.truncate`; None when nothing was playing."""
        return None

    @abc.abstractmethod
    def send(self, text: str) -> None:
        """One client event (JSON text) to the server, in order."""

    @abc.abstractmethod
    def set_source(self, source: AudioSource) -> None:
        """What the microphone side sends from now on (silence until the first call)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Hang up (best effort) and release everything. Idempotent."""


class WebRTCTransport(Transport):
    """A voice API over WebRTC: the family's create call with our offer (the Realtime API's `POST
    /v1/realtime/calls`, GPT-Live's `POST /v1/live/sessions`), then media and `oai-events`."""

    def __init__(self, settings: ClientSettings, family: Family | None = None) -> None:
        import voiceclient.rtc.peer  # noqa: F401  aiortc is imported when a call is made, not with the package

        self.settings = settings
        self.family = family or RealtimeFamily()
        self.lost = asyncio.get_running_loop().create_future()
        self._api: CallsAPI | None = None
        self._peer: Peer | None = None
        self._track: OutboundTrack | None = None
        self._reader: InboundReader | None = None
        self._watch: asyncio.Future[str] | None = None
        self._closed = False

    async def open(self, session: AnySession, events: TransportEvents) -> None:
        from voiceclient.audio.tracks import InboundReader, OutboundTrack  # aiortc only when a call is made
        from voiceclient.rtc.peer import Peer

        timeout = self.settings.connect_timeout
        sent: FrameTap = events.on_sent_audio
        received: FrameTap = events.on_received_audio
        self._track = OutboundTrack(SilenceSource(), on_frame=sent)
        self._peer = peer = Peer(self._track, self.settings.ice_servers)
        peer.on_message = events.on_server_message
        peer.lost.add_done_callback(self._peer_lost)
        offer = await peer.create_offer()
        self._api = CallsAPI(self.settings)
        asked = time.monotonic()
        answer = await self.family.create(self._api, offer, session)
        self.create_seconds = time.monotonic() - asked
        self.call_id = answer.call_id
        log.info("call %s: SDP answer received", self.call_id or "?")
        try:
            await peer.accept_answer(answer.sdp)
        except Exception as exc:  # aiortc raises ValueError and friends for an answer that does not fit the offer
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidAnswerError(f"the server's SDP answer does not fit our offer: {reason}") from None
        await peer.wait_open(timeout)
        remote = await asyncio.wait_for(asyncio.shield(peer.remote_track), timeout)
        self._reader = InboundReader(remote, [received])
        self._reader.start()

    @property
    def peer(self) -> Peer:
        """The aiortc peer (after `open` has begun)."""
        if self._peer is None:
            raise VoiceClientError("the transport is not open")
        return self._peer

    def _peer_lost(self, lost: asyncio.Future[str]) -> None:
        if not self._closed and not self.lost.done() and not lost.cancelled():
            self.lost.set_result(lost.result())

    def send(self, text: str) -> None:
        if self._peer is None:
            raise VoiceClientError("the transport is not open")
        self._peer.send(text)

    def set_source(self, source: AudioSource) -> None:
        if self._track is not None:
            self._track.source = source

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._api is not None and self.call_id:
            try:
                await asyncio.wait_for(self.family.hangup(self._api, self.call_id), 5)
            except (TimeoutError, VoiceClientError) as exc:
                log.info("hangup of %s: %s", self.call_id, exc)
        if self._reader is not None:
            await self._reader.stop()
        if self._peer is not None:
            await self._peer.close()
        if self._api is not None:
            await self._api.aclose()
        if not self.lost.done():
            self.lost.cancel()
