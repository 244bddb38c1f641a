"""What goes into a server session's one ordered inbox: a closed union of frozen messages.

    edge (WebRTC call, WebSocket, memory)  --ClientMessage, ConnectionOpened, ConnectionLost-->  inbox
    TurnHandler                            --VadDecision, IdleTimeout-->                         inbox
    the session's own timers               --FaultDue, SessionExpired, ConnectTimeout-->         inbox
    the session, as a response ends        --QueuedResponseDue-->                               inbox

`ServerSession._consume` matches each message by type and ends in `assert_never`: a new kind that the session does
not handle is a type error, not a message dropped at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceclient.server.faults import FaultSpec
from voiceclient.server.vad import VadEvent


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One client event as it came off the wire (a data channel message, a WebSocket frame, a sideband's)."""

    text: str | bytes


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """The client's event path is open (the data channel, the socket): the session greets it."""


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The connection went (the peer failed, the socket closed, a reader too slow): the session ends."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectTimeout:
    """The client has its SDP answer and has not opened the connection in time: if it still has not, the session
    ends (a client that never connects must not hold a call)."""


@dataclass(frozen=True, slots=True)
class VadDecision:
    """The turn detector's decision on the input audio (speech started, stopped, paused, resumed)."""

    event: VadEvent


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    """`idle_timeout_ms` of no user speech after the assistant's audio."""


@dataclass(frozen=True, slots=True)
class FaultDue:
    """An injected fault's time has come (`serve --fault`)."""

    fault: FaultSpec


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """The session reached its maximum duration."""


@dataclass(frozen=True, slots=True)
class QueuedResponseDue:
    """A response ended: a response that waited for it (a commentary to speak) may start."""


Inbox = (
    ClientMessage
    | ConnectionOpened
    | ConnectionLost
    | ConnectTimeout
    | VadDecision
    | IdleTimeout
    | FaultDue
    | SessionExpired
    | QueuedResponseDue
)
