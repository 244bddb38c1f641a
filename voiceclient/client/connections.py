"""The connections under one conversation, in one place: the first, the next one a recycle makes before the
session's cap, and a new one after a loss; which of them carries the call, and when the others are hung up.

    open() -> start()                      the first connection: it carries the call from its first event
    watch: transport.lost, media silence   -> reconnect (policy: attempts, backoff), or the call fails
    recycle loop: due -> prepare -> settle -> a quiet moment (or the last one before the cap) -> catch up -> switch
    switch: microphone first, then events and audio; the previous connection sends silence, then is hung up

Every connection is made by the same `Connection` handshake, opened with a `ConnectionEvents` of its own: only the
connection carrying the call reaches the conversation's `Inbound`, the others' messages are only logged. The manager
reads the conversation through the narrow `Conversation` protocol (a `VoiceCall` is one) and says what happens to
the call's connection as the call's own events (`CallStatus`, `ConnectionChanged`, `CallFailed`) through `publish`:
it knows transports, timers and the reconnect policy, not turns, tools or files.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.client.call_events import CallEvent, CallFailed, CallStatus, ConnectionChanged
from voiceclient.client.connection import Connection
from voiceclient.client.family import Family
from voiceclient.client.history import ConversationHistory
from voiceclient.client.options import Continuity
from voiceclient.client.settings import ClientSettings
from voiceclient.client.state import TurnState
from voiceclient.client.transport import Transport, TransportEvents
from voiceclient.errors import CallError, ConnectionLostError, VoiceClientError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import AnySession
from voiceclient.tasks import TaskOwner

log = logging.getLogger(__name__)
QUIET_GAP = 0.3  # seconds without a server event before a recycle may switch connections
RETIRE_AFTER = 1.0  # seconds the previous connection stays up (sending silence, ignored) after a switch
SETTLE_BEFORE_SWITCH = 1.0  # seconds between a new connection being ready and carrying the call
IDLE_STREAMING_FRAMES = 25  # 0.5 s of frames with no response playing: this server sends audio all the time


class Conversation(Protocol):
    """What the connection manager reads of the conversation it carries (a `VoiceCall` is one)."""

    @property
    def session(self) -> AnySession: ...
    @property
    def source(self) -> AudioSource: ...
    @property
    def history(self) -> ConversationHistory: ...
    @property
    def turns(self) -> TurnState: ...
    @property
    def family(self) -> Family: ...

    def quiet_since(self) -> float | None:
        """None while something is under way (a response, the user speaking, a tool), else when the last thing
        happened (monotonic)."""

    def log_line(self, direction: str, event: dict[str, Any]) -> None: ...


class Inbound(TransportEvents, Protocol):
    """Where what the connection carrying the call receives goes (the call's log, consumer and audio)."""

    def overheard(self, message: str | bytes) -> None:
        """A server message on a connection not carrying the call (being prepared, or retiring): logged only."""


class ConnectionEvents:
    """One connection's `TransportEvents`: its messages feed its handshake, and reach the conversation only
    while it carries the call."""

    def __init__(self, manager: ConnectionManager, conn: Connection) -> None:
        self._manager = manager
        self._conn = conn
        self._inbound = manager.inbound

    def on_server_message(self, message: str | bytes) -> None:
        if self._conn is self._manager.current:
            self._inbound.on_server_message(message)
        else:
            self._inbound.overheard(message)
        self._conn.on_message(message)

    def on_local_message(self, message: str | bytes) -> None:  # a transport's own events (the WebSocket's playout)
        if self._conn is self._manager.current:
            self._inbound.on_local_message(message)

    def on_sent_message(self, message: str) -> None:  # a client event the transport sent itself (session.start)
        self._inbound.on_sent_message(message)

    def on_received_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        if self._conn is self._manager.current:
            self._manager.heard(at)
            self._inbound.on_received_audio(pcm, pts, at)

    def on_sent_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        if self._conn is self._manager.current:
            self._inbound.on_sent_audio(pcm, pts, at)


class ConnectionManager:
    """Makes, switches, retires and replaces the connections of one conversation."""

    def __init__(
        self,
        conversation: Conversation,
        inbound: Inbound,
        publish: Callable[[CallEvent], None],
        settings: ClientSettings,
        continuity: Continuity,
        *,
        transport: Transport | None = None,
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        self.settings = settings
        self.continuity = continuity
        self.current: Connection | None = None  # the connection carrying the call
        self.pending: Connection | None = None  # the one being made ready
        self.switches = 0  # times the call moved to a new connection
        self.replayed = 0  # items replayed into the newest connection
        self._settled = asyncio.Event()  # clear while a lost connection is being replaced
        self._settled.set()
        self._conversation = conversation
        self.inbound = inbound
        self._publish = publish
        self._policy = continuity.policy
        self._given = transport
        self._factory = transport_factory
        self._settle = SETTLE_BEFORE_SWITCH
        self._retire_after = RETIRE_AFTER
        self._lost: weakref.WeakSet[Transport] = weakref.WeakSet()  # transports whose loss has been handled
        self._last_media: float | None = None
        self._idle_frames = 0  # frames received while no response audio was playing (a server that streams on)
        self._started = False  # the call is connected: a loss from now on is reconnected (or fails the call)
        self._ending = False  # the call is ending its session: a loss is not replaced
        self._ended_by_server: str | None = None
        self._tasks = TaskOwner("connections")

    @property
    def reconnecting(self) -> bool:
        """Whether a lost connection is being replaced (what the call says meanwhile waits for the new one)."""
        return not self._settled.is_set()

    @property
    def transport(self) -> Transport | None:
        return self.current.transport if self.current is not None else None

    @property
    def call_id(self) -> str | None:
        return self.current.call_id if self.current is not None else None

    def _replay_items(self) -> list[ev.Item]:
        """What a new connection is given of the conversation: its history; nothing in a transcription session,
        which has no conversation to carry over (it refuses `conversation.item.create`)."""
        if self._conversation.session.type == "transcription" or not self._conversation.family.replays:
            return []
        return self._conversation.history.replay_items()

    # ------------------------------------------------------------------------------------------ lifecycle
    async def open(self) -> Connection:
        """The first connection, confirmed: it carries the call from its first event, so its session.created and
        session.updated reach the call's handlers."""
        conn = self.current = self._connection()
        self._tasks.spawn(self._watch(conn), "connection watch")
        self._tasks.spawn(self._watch_media(), "media watch")
        await conn.open(
            self._conversation.session,
            ConnectionEvents(self, conn),
            self.settings.connect_timeout,
            self.settings.session_update_timeout,
        )
        self._said_fallback(conn)
        return conn

    def start(self) -> None:
        """The call is connected: the microphone goes on, and the recycling when the call will need it."""
        conn = self.current
        if conn is None:
            raise CallError("start() before open()")
        if conn.transport.lost.done():
            reason = conn.transport.lost.result() if not conn.transport.lost.cancelled() else "closed"
            raise ConnectionLostError(reason)
        conn.stop_listening()
        self._started = True
        conn.transport.set_source(self._conversation.source)
        if self.continuity.recycle_after is not None or conn.expires_at is not None:
            self._tasks.spawn(self._recycle_loop(), "recycle")

    def ending(self) -> None:
        """The call is ending its session (GPT-Live's `session.close`): a connection lost from now on is not
        replaced, and a recycle does not begin."""
        self._ending = True

    async def close(self) -> None:
        """Stop the watches and any reconnection or recycle under way, hang every connection up. Idempotent."""
        await self._tasks.close()
        for conn in (self.pending, self.current):
            if conn is not None:
                await conn.transport.close()

    def send(self, text: str) -> None:
        if self.current is None:
            raise CallError("the call is not connected")
        self.current.transport.send(text)

    def set_source(self, source: AudioSource) -> None:
        if self.current is not None and self._started:
            self.current.transport.set_source(source)

    def server_ending(self, reason: str) -> None:
        """The server said why it is about to end the session (`session_expired`): that is the loss's reason."""
        self._ended_by_server = reason

    # ------------------------------------------------------------------------------------------ making
    def _make_transport(self) -> Transport:
        from voiceclient.client.fallback import AutoTransport  # each imports what it needs when a call is made
        from voiceclient.client.transport import WebRTCTransport
        from voiceclient.client.websocket import WebSocketTransport

        if self._factory is not None:
            return self._factory()
        if self._given is not None:
            given, self._given = self._given, None
            return given
        if self.current is not None and not isinstance(
            self.current.transport, (WebRTCTransport, WebSocketTransport, AutoTransport)
        ):
            raise CallError("this call was given one transport and no transport_factory: it cannot reconnect")
        liveness = self.continuity.media_timeout  # a server silent this long is lost, whichever the transport
        family = self._conversation.family
        if self.settings.transport == "websocket":
            return WebSocketTransport(self.settings, liveness, family)
        if self.settings.transport == "auto":
            return AutoTransport(self.settings, liveness, family)
        return WebRTCTransport(self.settings, family)

    def _connection(self) -> Connection:
        return Connection(self._make_transport(), self._conversation.log_line, self._conversation.family)

    def heard(self, at: float) -> None:
        """Audio came from the connection carrying the call at `at` (the media watch's evidence)."""
        self._last_media = at
        if not self._conversation.turns.audio_playing:
            self._idle_frames += 1

    def _said_fallback(self, conn: Connection) -> None:
        fallback = getattr(conn.transport, "fallback", None)  # an AutoTransport that gave WebRTC up
        if isinstance(fallback, str):
            self._publish(CallStatus(f"WebRTC did not connect ({fallback}); the call goes on over WebSocket"))

    async def _prepare(self) -> Connection:
        """A new connection with the session confirmed and the history replayed; not yet carrying the call."""
        conn = self.pending = self._connection()
        replay = self._replay_items()
        timeout = self.settings.connect_timeout

        async def ready() -> None:
            await conn.open(
                self._conversation.session, ConnectionEvents(self, conn), timeout, self.settings.session_update_timeout
            )
            await conn.replay(replay, timeout)

        deadline = 2 * timeout + self.settings.session_update_timeout  # connect, confirm, replay
        try:
            await asyncio.wait_for(ready(), deadline)
        except BaseException as exc:
            self.pending = None
            await conn.transport.close()
            if isinstance(exc, TimeoutError):
                raise ConnectionLostError(f"the new connection was not ready within {deadline:g} s") from None
            raise
        self.replayed = len(replay)
        self._said_fallback(conn)
        return conn

    # ------------------------------------------------------------------------------------------ switching
    def _switch(self, conn: Connection, reason: str) -> None:
        """Move the conversation onto `conn`: microphone first, then events and speaker; retire the old one."""
        old = self.current
        conn.transport.set_source(self._conversation.source)
        if old is not None:
            old.transport.set_source(SilenceSource())
        conn.stop_listening()
        self.current, self.pending = conn, None
        self._last_media = None
        self._idle_frames = 0
        self.switches += 1
        self._settled.set()  # (what the call said meanwhile goes out on this connection now)
        self._conversation.log_line(
            "local",
            {"type": "call.switched", "from": old.call_id if old else None, "to": conn.call_id, "reason": reason},
        )
        self._tasks.spawn(self._watch(conn), "connection watch")
        if old is not None:
            self._lost.add(old.transport)  # whatever it does now is not a loss of the call
            self._tasks.spawn(self._retire(old.transport), "hang up the previous connection")
        self._publish(ConnectionChanged("connected", self.replayed))

    async def _retire(self, old: Transport) -> None:
        """Hang the previous connection up once the new one has settled: tearing a peer connection down takes the
        event loop for tens of milliseconds, which at the very moment of the switch would be heard as a gap."""
        try:
            await asyncio.sleep(self._retire_after)
        finally:  # also when the call closes meanwhile: the old connection is hung up, not left to the GC
            await old.close()

    # ------------------------------------------------------------------------------------------ losses
    async def _watch(self, conn: Connection) -> None:
        try:
            reason = await conn.transport.lost
        except asyncio.CancelledError:  # the transport was closed on purpose (or the call is closing)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return
        if self._ended_by_server is not None:  # it said why before it went: that is the reason
            reason = f"the server ended the session: {self._ended_by_server}"
            self._ended_by_server = None
        self._connection_lost(conn, reason)

    async def _watch_media(self) -> None:
        """A server that was streaming audio and stopped is gone, whatever the connection state says. Servers may
        pause when they have nothing to say: silence counts only from one that kept sending while it had nothing
        to say (the embedded server and aiortc peers do), or while its response audio is playing."""
        timeout = self.continuity.media_timeout
        while True:
            await asyncio.sleep(min(0.5, timeout / 2))
            conn, last = self.current, self._last_media
            if conn is None or last is None or not self._started or self.reconnecting:
                continue
            streams_on = self._idle_frames >= IDLE_STREAMING_FRAMES or self._conversation.turns.audio_playing
            if streams_on and time.monotonic() - last > timeout:
                self._connection_lost(conn, f"no audio from the server for {timeout:g} s")

    def _connection_lost(self, conn: Connection, reason: str) -> None:
        if conn is not self.current or conn.transport in self._lost:
            return
        if not self._started or self._tasks.closed or self._ending:  # the first handshake raises it itself; or the
            return  # call is closing
        self._lost.add(conn.transport)
        attempts = self._policy.attempts
        expired = reason.startswith("the server ended the session") and "session_expired" in reason
        if expired and self.continuity.recycle_after is not None:
            attempts = max(attempts, 1)  # a call asked to last (it recycles) goes on past a cap it did not beat
        if attempts <= 0:
            self._publish(CallFailed(ConnectionLostError(reason)))
            return
        self._settled.clear()
        self._tasks.spawn(self._reconnect(conn, reason, attempts), "reconnect")

    async def _reconnect(self, lost: Connection, reason: str, attempts: int) -> None:
        status = self._status
        status(f"connection lost: {reason}")
        self._publish(ConnectionChanged("connecting"))  # (the call notices it is reconnecting)
        try:
            for attempt in range(attempts):
                await asyncio.sleep(self._policy.delay(attempt))
                status(f"reconnecting (attempt {attempt + 1} of {attempts})")
                try:
                    conn = await self._prepare()
                except VoiceClientError as exc:
                    log.warning("reconnect attempt %d of %d failed: %s", attempt + 1, attempts, exc)
                    continue
                self._switch(conn, f"lost: {reason}")
                status(f"reconnected, conversation restored ({self.replayed} items)")
                return
            self._publish(CallFailed(ConnectionLostError(f"{reason}; {attempts} attempts to reconnect failed")))
        finally:
            self._settled.set()
            if not self._tasks.closed:  # (when the call is closing, close() itself ends what is left)
                self._tasks.spawn(lost.transport.close(), "close the lost connection")

    def _status(self, text: str) -> None:
        self._publish(CallStatus(text))

    # ------------------------------------------------------------------------------------------ recycling
    def _quiet(self) -> bool:
        """A moment to change connections: nothing under way and no server event for QUIET_GAP (a turn that just
        ended is answered within milliseconds, so a short gap covers the moment between the two)."""
        if self.current is None or self.current.transport.lost.done() or self.reconnecting:
            return False
        since = self._conversation.quiet_since()  # (a microphone or WAV still sending is no obstacle)
        return since is not None and time.monotonic() - since >= QUIET_GAP

    def _cap_margin(self) -> float:
        """How long before the cap a recycle begins: `recycle_margin`, or for a short session a quarter of it, and
        never less than the new connection needs to be made, settle and find a quiet moment."""
        length = self.current.session_length if self.current is not None else None
        quarter = length / 4 if length is not None else float("inf")
        return min(self.continuity.recycle_margin, max(self._settle + 2.0, quarter))

    def _recycle_due(self) -> float | None:
        """When the current connection should be replaced (monotonic time), or None: `recycle_after` from when that
        connection was made, and before its cap at the latest."""
        conn = self.current
        if conn is None or self._ending:
            return None
        due: list[float] = []
        if self.continuity.recycle_after is not None:
            due.append(conn.created + self.continuity.recycle_after)
        cap = conn.cap()
        if cap is not None:
            due.append(cap - self._cap_margin())
        return min(due) if due else None

    def _switch_by(self) -> float | None:
        """The last moment to switch without a quiet one: just before the cap (a word may glitch)."""
        cap = self.current.cap() if self.current is not None else None
        return None if cap is None else cap - min(1.5, self._cap_margin() / 2)

    async def _recycle_loop(self) -> None:
        """Before each session's cap: prepare the next connection in the background, wait for a quiet moment
        (no response, user not speaking, no tool pending, the assistant's audio finished), then switch."""
        while (due := self._recycle_due()) is not None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._settled.wait()
            try:
                conn = await self._prepare()
            except VoiceClientError as exc:
                log.warning("could not prepare the next connection (%s); trying again in 5 s", exc)
                await asyncio.sleep(5)
                continue
            await asyncio.sleep(self._settle)  # let the new connection's setup burst pass first
            moment = await self._switch_moment()
            if moment == "lost":  # the loss path makes its own connection
                if conn is self.pending:
                    self.pending = None
                await conn.transport.close()
                continue
            try:  # what was said while it waited: a round trip, while the conversation is quiet
                catch_up = self._replay_items()
                await conn.replay(catch_up, self.settings.connect_timeout)
                self.replayed = len(catch_up)
            except VoiceClientError as exc:
                log.warning("could not bring the next connection up to date (%s); trying again", exc)
                self.pending = None
                await conn.transport.close()
                continue
            forced = moment == "forced"
            self._switch(conn, "recycle before the cap" if forced else "recycle")
            self._status(
                f"session recycled{' before the cap, mid-turn' if forced else ''}, "
                f"conversation carried over ({self.replayed} items)"
            )

    async def _switch_moment(self) -> str:
        """Wait for a quiet moment to switch ("quiet"), or the last moment before the cap ("forced"), unless the
        current connection is lost meanwhile ("lost")."""
        while not self._quiet():
            if self.reconnecting or (self.current is not None and self.current.transport.lost.done()):
                return "lost"
            by = self._switch_by()
            if by is not None and time.monotonic() >= by:
                log.warning("no quiet moment before the session's cap: switching connections now (a word may glitch)")
                return "forced"
            await asyncio.sleep(0.05)
        return "quiet"
