"""The seam between a server session's core and the connection that carries it.

    ServerSession (the core)  --deliver(text), output.put(audio), pause_media / close_channel / drop, close-->  Edge
    Edge  --port.post(ClientMessage | ConnectionOpened | ConnectionLost), port.input_audio(pcm)-->  the core

An edge owns its connection and its lifecycle: the WebRTC edge (`server/call.py`) a peer, its reader and the
playout; the WebSocket edge (`server/websocket.py`) a socket, its writer and the audio deltas; the memory edge
(`voiceclient.testing.MemoryEdge`) a list of events. The core knows nothing of which one it drives. It hands
itself to the edge once, as a `SessionPort`, before it asks for the edge's `output`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import numpy as np

from voiceclient.server.inbox import Inbox
from voiceclient.server.playout import AudioOutput
from voiceclient.tasks import TaskOwner


class SessionPort(Protocol):
    """What an edge may do to the session it carries."""

    @property
    def id(self) -> str: ...

    @property
    def session(self) -> dict[str, Any]: ...

    @property
    def tasks(self) -> TaskOwner: ...

    def post(self, message: Inbox) -> None:
        """Into the session's one ordered inbox."""

    def later(self, seconds: float, message: Inbox) -> asyncio.TimerHandle:
        """Into the inbox after `seconds` (the timer ends with the session)."""

    def input_audio(self, pcm24: np.ndarray) -> None:
        """Input audio at 24 kHz (RTP, decoded and resampled)."""

    def output_audio(self, ids: dict[str, Any], audio: str) -> None:
        """A chunk of answer audio sent as an event (base64, the session's output format: the WebSocket's audio
        deltas), to the connection and every sideband; the session's dialect names and shapes it."""


class Edge(Protocol):
    """A connection that carries one session."""

    transport: str  # "webrtc", "websocket", "memory": for logs, the index and the console

    def attach(self, port: SessionPort) -> None:
        """Called once, by the session, before anything else."""

    @property
    def output(self) -> AudioOutput:
        """Where the session's answer audio goes (valid once attached)."""

    def deliver(self, text: str, kind: str) -> bool:
        """Put one server event on the connection; False when it could not go (the connection is not open)."""

    def pause_media(self) -> None:
        """The `stop_media` fault: no more answer audio leaves (input audio is ignored by the core)."""

    def close_channel(self) -> None:
        """The `close_channel` fault: the event path closes cleanly, as if the service hung up."""

    async def drop(self) -> None:
        """The `drop_connection` fault: the connection just goes, no goodbye."""

    async def close(self) -> None:
        """Close the connection (what is queued still leaves where the transport allows). Idempotent."""
