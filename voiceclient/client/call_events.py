"""The call's own events, beside the server's: what its connections and its audio do. They reach the same
subscriptions as server events (`call.subscribe(handler, CallStatus)`), at once where they happen rather than
through the ordered consumer; a subscription to every server event (no kinds) does not get them.

    CallStatus          a human-readable line about the connection (reconnecting, recycled, fell back)
    ConnectionChanged   "connecting" when the connection carrying the call is lost, "connected" when a new one
                        carries it (a reconnect, a recycle)
    CallFailed          the call gave up (a loss it could not mend); `await call.ended()` says it too
    CallClosed          the call has closed: event streams end, waiters still waiting are cancelled
    AudioReceived       one received 20 ms frame (48 kHz mono int16, pts, monotonic time), 50 a second
    AudioSent           one sent frame, as the microphone side sent it
    TranscriptTurn      GPT-Live: a turn's words, the user's or the assistant's
    DelegationRequested GPT-Live: the model delegated a task to the application (`session.delegation.created`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from voiceclient.errors import VoiceClientError


@dataclass(frozen=True)
class CallEvent:
    """One of the call's own events; `type` names it as a wire type names a server event."""

    type: ClassVar[str] = "call"


@dataclass(frozen=True)
class CallStatus(CallEvent):
    type: ClassVar[str] = "call.status"
    text: str


@dataclass(frozen=True)
class ConnectionChanged(CallEvent):
    type: ClassVar[str] = "call.connection"
    state: Literal["connecting", "connected"]
    replayed: int = 0  # ("connected") items of the history the new connection was given


@dataclass(frozen=True)
class CallFailed(CallEvent):
    type: ClassVar[str] = "call.failed"
    error: VoiceClientError


@dataclass(frozen=True)
class CallClosed(CallEvent):
    type: ClassVar[str] = "call.closed"


@dataclass(frozen=True, eq=False)
class AudioReceived(CallEvent):
    type: ClassVar[str] = "call.audio.received"
    pcm: np.ndarray
    pts: int
    at: float


@dataclass(frozen=True, eq=False)
class AudioSent(CallEvent):
    type: ClassVar[str] = "call.audio.sent"
    pcm: np.ndarray
    pts: int
    at: float


@dataclass(frozen=True)
class TranscriptTurn(CallEvent):
    """A turn's words, once the other side speaks or the session ends: GPT-Live sends only transcript deltas
    (no `.done`), and the call groups them into the user's and the assistant's turns."""

    type: ClassVar[str] = "call.transcript"
    role: Literal["user", "assistant"]
    text: str
    item_id: str


@dataclass(frozen=True)
class DelegationRequested(CallEvent):
    """GPT-Live delegated a task to the application (`session.delegation.created`, target `client`). The event
    carries no task text: `request` is the user's latest words heard, for the application to work it out. Answer
    with `call.append_commentary(text, delegation_id)` (spoken) or `call.append_thinking(...)` (silent); a call's
    first tool answers by itself (`tool`: its name, or None when the call has no tools)."""

    type: ClassVar[str] = "call.delegation"
    delegation_id: str
    offset_ms: int
    request: str
    tool: str | None = None
