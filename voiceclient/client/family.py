"""The protocol family a call speaks, as one small strategy object the call holds: the Realtime API or GPT-Live.

    Realtime: POST /realtime/calls (multipart) | GET /realtime?model=M   session.created -> session.update -> updated
    GPT-Live: POST /live/sessions (JSON)       | GET /live/sessions + session.start    -> session.started

What differs between the two APIs is here and only here: how a server message is decoded, how a connection's
session is confirmed, where a WebRTC call is created and a WebSocket opened, which client events may be sent, how
the session is ended, and whether a new connection can be given the conversation. The call, its connections, the
transports, the audio and the files are the same for both.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from voiceclient.client.live_transcripts import LiveTranscripts
from voiceclient.client.settings import ClientSettings, DelegationName
from voiceclient.errors import CallError, ConnectionLostError, SessionNotConfirmedError, SessionUpdateError
from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import AnySession, SessionConfig, TranscriptionSessionConfig

if TYPE_CHECKING:
    from voiceclient.client.calls_api import CallAnswer, CallsAPI
    from voiceclient.client.dispatcher import Dispatcher
    from voiceclient.client.history import ConversationHistory

log = logging.getLogger(__name__)
DEFAULT_MODEL = "gpt-realtime"  # the Realtime model a WebSocket asks for when the session names none
LIVE_MODEL_PREFIX = "gpt-live"
CLOSE_TIMEOUT = 3.0  # how long a GPT-Live close waits for `session.closed`
DELEGATION_MODEL = "gpt-5-mini"  # the Responses backend of a session with tools (our choice, not the API's default)
AnyClientEvent = ev.ClientEvent | live.ClientEvent


class Closing(Protocol):
    """What a family's goodbye needs of the call."""

    def send(self, event: AnyClientEvent) -> None: ...

    async def wait_for(self, predicate: Any, timeout: float) -> Any: ...


class Confirming(Protocol):
    """What a family's confirmation of the session needs of the connection (`client/connection.py`'s
    `Connection`): send, wait for an event, and keep what the server said of the session."""

    expires_at: float | None
    effective_session: dict[str, Any] | None

    def send(self, event: AnyClientEvent) -> None: ...

    async def next_event(
        self, accept: Callable[[ev.ReceivedServerEvent], bool], timeout: float, what: str
    ) -> ev.ReceivedServerEvent: ...


class Family(abc.ABC):
    """One voice API's wire, as the client's parts need it."""

    name: str
    replays = True  # a new connection (a reconnect, a recycle) is given the conversation's items
    websocket_subprotocols: tuple[str, ...] = ()
    audio_append = "input_audio_buffer.append"  # the WebSocket's microphone event
    audio_delta = "response.output_audio.delta"  # the WebSocket's answer audio event

    def decode(self, message: str | bytes) -> ev.ReceivedServerEvent:
        """One server message as its event model (never raises)."""
        return ev.parse_server_event(message)

    @abc.abstractmethod
    async def confirm(self, conn: Confirming, session: AnySession, timeout: float, update_timeout: float) -> None:
        """After the transport opened: wait until the server has confirmed the session (or raise)."""

    @abc.abstractmethod
    def wire(self, event: AnyClientEvent) -> dict[str, Any]:
        """A client event as it goes out; a `CallError` for one this API does not have."""

    @abc.abstractmethod
    async def create(self, api: CallsAPI, offer: str, session: AnySession) -> CallAnswer:
        """Create a WebRTC call with our SDP offer."""

    async def hangup(self, api: CallsAPI, call_id: str) -> None:
        """End a WebRTC call from the HTTP side (best effort)."""
        return None  # (nothing, unless the API needs it)

    @abc.abstractmethod
    def websocket_url(self, base_url: str, session: AnySession) -> str:
        """Where a WebSocket session is opened."""

    def websocket_start(self, session: AnySession) -> list[str]:
        """What a WebSocket sends first, before any event of the call's."""
        return []

    def attach(self, dispatcher: Dispatcher, history: ConversationHistory, publish: Any) -> None:
        """Follow the call's events where this API needs more than the shared parts (GPT-Live's transcripts)."""
        return None  # (nothing, unless the API needs it)

    def flush(self) -> None:
        """The call is closing: what is still open (a turn's words) is finished."""
        return None  # (nothing, unless the API needs it)

    async def goodbye(self, call: Closing) -> None:
        """End the session as the API asks before the connection is closed (nothing for the Realtime API)."""
        return None  # (nothing, unless the API needs it)


class RealtimeFamily(Family):
    """The Realtime API: `session.created`, our `session.update`, `session.updated`."""

    name = "realtime"
    websocket_subprotocols = ("realtime",)

    async def confirm(self, conn: Confirming, session: AnySession, timeout: float, update_timeout: float) -> None:
        try:
            created = await conn.next_event(lambda e: e.type == "session.created", timeout, "session.created")
        except TimeoutError as exc:
            raise ConnectionLostError(str(exc)) from None
        if isinstance(created, ev.SessionCreated) and isinstance(created.session.get("expires_at"), (int, float)):
            conn.expires_at = float(created.session["expires_at"])
        update = ev.SessionUpdate(session=session)
        conn.send(update)
        try:
            reply = await conn.next_event(
                lambda e: (
                    e.type == "session.updated" or (isinstance(e, ev.Error) and e.error.event_id == update.event_id)
                ),
                update_timeout,
                "session.updated",
            )
        except TimeoutError:
            raise SessionNotConfirmedError(
                f"the server did not confirm the session within {update_timeout:g} s (no session.updated): the "
                "instructions, voice, tools and turn detection asked for may not apply"
            ) from None
        if isinstance(reply, ev.Error):
            raise _refused(reply)
        if isinstance(reply, ev.SessionUpdated):
            conn.effective_session = reply.session

    def wire(self, event: AnyClientEvent) -> dict[str, Any]:
        if not isinstance(event, ev.ClientEvent):
            raise CallError(f"{event.type} is GPT-Live's: a Realtime call does not send it")
        return event.to_wire()

    async def create(self, api: CallsAPI, offer: str, session: AnySession) -> CallAnswer:
        return await api.create_call(offer, session)

    async def hangup(self, api: CallsAPI, call_id: str) -> None:
        await api.hangup(call_id, retry=False)

    def websocket_url(self, base_url: str, session: AnySession) -> str:
        return websocket_url(base_url, session)


class LiveFamily(Family):
    """GPT-Live: the session goes with the create call (or `session.start`), `session.started` confirms it; the
    model takes its own turns, so none of the Realtime API's turn control is sent; `session.close` ends it."""

    name = "live"
    replays = False  # a GPT-Live session takes a text history only at its start: nothing is replayed
    audio_append = "session.input_audio.append"
    audio_delta = "session.output_audio.delta"

    def __init__(self, delegation_model: str = DELEGATION_MODEL, delegation: DelegationName = "responses") -> None:
        self.closed: live.SessionClosed | None = None  # how the session ended (reason, usage), once it has
        self.delegation_model = delegation_model  # the Responses model that runs a session's tools
        self.delegation: DelegationName = delegation  # who the model delegates the tools to (ClientSettings')
        self._transcripts: LiveTranscripts | None = None

    def decode(self, message: str | bytes) -> ev.ReceivedServerEvent:
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ev.parse_server_event(message)  # (a MalformedEvent)
        if not isinstance(data, dict) or data.get("type") == "error":
            return ev.parse_server_event(message)  # the error envelope is the Realtime API's
        try:
            event = live.parse_server_event(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            return ev.MalformedEvent(
                raw=str(message)[:500], reason=f"{data['type']}: {where}: {first['msg']}", event_type=data["type"]
            )
        if event is None:
            return ev.parse_server_event(message)  # an UnknownEvent (info, session.paused, ...)
        return event  # type: ignore[return-value]  # (the call's subscriptions take GPT-Live's models too)

    def session(self, session: AnySession, *, websocket: bool) -> dict[str, Any]:
        """The GPT-Live session made of the call's: model, instructions, voice and (WebSocket) the audio format."""
        if not isinstance(session, SessionConfig):
            raise CallError("a transcription session is the Realtime API's: GPT-Live has none")
        wire = session.to_wire()
        out: dict[str, Any] = {"model": session.model or live.MODELS[0]}
        if session.instructions is not None:
            out["instructions"] = session.instructions
        audio = wire.get("audio") or {}
        voice = (audio.get("output") or {}).get("voice")
        if voice is not None:
            out.setdefault("audio", {})["output"] = {"voice": voice}
        fmt = (audio.get("input") or {}).get("format")
        if websocket and fmt is not None:
            out.setdefault("audio", {})["format"] = {k: v for k, v in fmt.items() if k in ("type", "rate")}
        if self.delegation == "client":  # every delegated task is the application's (the tools are not sent)
            out["delegation"] = {"type": "client"}
        elif session.tools:  # the application's tools, run by a Responses backend that delegates their calls to us
            tools = [tool for tool in wire["tools"] if tool.get("type") == "function"]
            responses = {"model": self.delegation_model, "tools": tools}
            out["delegation"] = {"type": "responses", "responses": responses}
        dropped = sorted(k for k in wire if k not in ("type", "model", "instructions", "audio", "tools"))
        if dropped:
            log.info("not in a GPT-Live session (the Realtime API's): %s", ", ".join(dropped))
        return live.SessionConfig.model_validate(out).model_dump(mode="json", exclude_none=True)

    async def confirm(self, conn: Confirming, session: AnySession, timeout: float, update_timeout: float) -> None:
        wait = timeout + update_timeout
        try:
            started = await conn.next_event(lambda e: e.type in ("session.started", "error"), wait, "session.started")
        except TimeoutError:
            raise SessionNotConfirmedError(
                f"the server did not start the GPT-Live session within {wait:g} s (no session.started)"
            ) from None
        if isinstance(started, ev.Error):
            raise _refused(started)
        if isinstance(started, live.SessionStarted):
            conn.effective_session = started.session

    def wire(self, event: AnyClientEvent) -> dict[str, Any]:
        if isinstance(event, ev.ClientEvent):
            raise CallError(
                f"{getattr(event, 'type', type(event).__name__)} is the Realtime API's: a GPT-Live session does not "
                "send it (the model takes its own turns; send GPT-Live's events, voiceclient.protocol.live_events)"
            )
        if isinstance(event, live.SessionStart):
            raise CallError("session.start is sent by the WebSocket itself, as the session's first message")
        if event.event_id is None:
            event = event.model_copy(update={"event_id": ev.new_id("event")})
        data: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
        if isinstance(event, (live.InstructionsAppend, live.ThinkingAppend, live.CommentaryAppend)):
            data["delegation_id"] = event.delegation_id  # (required, nullable)
        return data

    async def create(self, api: CallsAPI, offer: str, session: AnySession) -> CallAnswer:
        return await api.create_live_session(offer, self.session(session, websocket=False))

    def websocket_url(self, base_url: str, session: AnySession) -> str:
        base = base_url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[len("http") :]
        return f"{base}/live/sessions"

    def websocket_start(self, session: AnySession) -> list[str]:
        start = {
            "type": "session.start",
            "event_id": ev.new_id("event"),
            "session": self.session(session, websocket=True),
        }
        return [json.dumps(start, separators=(",", ":"))]

    def attach(self, dispatcher: Dispatcher, history: ConversationHistory, publish: Any) -> None:
        self._transcripts = LiveTranscripts(history, publish)
        self._transcripts.subscribe(dispatcher)
        dispatcher.on(live.SessionClosed, self._closed)

    def flush(self) -> None:
        if self._transcripts is not None:
            self._transcripts.finish_all()

    def _closed(self, event: live.SessionClosed) -> None:
        self.closed = event

    async def goodbye(self, call: Closing) -> None:
        """`session.close`, then `session.closed` (its reason and usage kept in `closed`), waited for at most
        `CLOSE_TIMEOUT` seconds."""
        if self.closed is not None:
            return
        waiter = asyncio.ensure_future(call.wait_for(lambda e: e.type == "session.closed", CLOSE_TIMEOUT))
        await asyncio.sleep(0)  # (subscribed before the close goes out)
        try:
            call.send(live.SessionClose(type="session.close"))
            await waiter
        except (CallError, ConnectionLostError, asyncio.CancelledError) as exc:
            if not waiter.done():
                waiter.cancel()
            if isinstance(exc, asyncio.CancelledError):
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            log.info("GPT-Live close: no session.closed (%s)", exc or "the call closed")


def family_for(settings: ClientSettings, session: AnySession) -> Family:
    """The settings' `api`; with "auto", GPT-Live for a `gpt-live-*` model, else the Realtime API."""
    api = settings.api
    if api == "auto":
        model = session.model if isinstance(session, SessionConfig) else None
        api = "live" if (model or "").startswith(LIVE_MODEL_PREFIX) else "realtime"
    return LiveFamily(delegation=settings.delegation) if api == "live" else RealtimeFamily()


def _refused(reply: ev.Error) -> SessionUpdateError:
    """The session asked for was refused: the server's reason, and the field it names."""
    param = f" (param {reply.error.param})" if reply.error.param else ""
    return SessionUpdateError(f"the server refused the session: {reply.error.message}{param}")


def websocket_url(base_url: str, session: AnySession) -> str:
    """`https://api.openai.com/v1` -> `wss://api.openai.com/v1/realtime?model=M` (http -> ws likewise); a
    transcription session has no model: `?intent=transcription`."""
    base = base_url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    if isinstance(session, TranscriptionSessionConfig):
        return f"{base}/realtime?intent=transcription"
    return f"{base}/realtime?model={session.model or DEFAULT_MODEL}"
