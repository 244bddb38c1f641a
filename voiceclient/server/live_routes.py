"""GPT-Live's endpoints on the embedded server (`/v1/live/sessions...`), beside the Realtime API's in `server/app.py`:

- `POST /v1/live/sessions`: a GPT-Live WebRTC session; JSON in (`session`, `transport: {type: "webrtc", sdp}`),
  `201` JSON out with the session's id and the SDP answer (as `/calls` gives it). The first data channel event is
  `session.started`.
- `GET /v1/live/sessions` (WebSocket): a GPT-Live session (`server/live.py`). Nothing is sent before the client's
  first message, which must be `session.start`; a bad one is answered with an `error` and the socket waits for
  another (a model that is not a GPT-Live one: the error, then close code 3000, as the Realtime path does).
- `POST /v1/live/sessions/{id}/hangup`: 200, the session ends (`session.closed`); 404 for an unknown session.
- `GET /v1/live/sessions/{id}/attach` (WebSocket): the sideband of a GPT-Live session, greeted with `session.started`.
- `GET /v1/live/sessions/{id}/content`: the stored recording (stereo WAV) of an ended WebRTC session with `store: true`.

The routes open their sessions through the server (`LiveHost`): its keys, faults, registry and console are the same
for both protocols.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.bodies import read_json
from voiceclient.server.console import Console
from voiceclient.server.dialect import Dialect
from voiceclient.server.edge import Edge
from voiceclient.server.faults import FaultPlan
from voiceclient.server.live import LiveDialect
from voiceclient.server.network import CallNetwork
from voiceclient.server.session import ServerSession
from voiceclient.server.sideband import serve_sideband
from voiceclient.server.speech_port import OfflineSpeech
from voiceclient.server.websocket import WS_MAX_MESSAGE, WebSocketEdge

log = logging.getLogger(__name__)
LIVE_START_SECONDS = 60.0  # how long a GPT-Live socket may wait for its `session.start` before it is closed


class LiveHost(Protocol):
    """What GPT-Live's routes use of the server they are on (`RealtimeServer`)."""

    faults: FaultPlan
    speech: OfflineSpeech | None
    console: Console
    pace_websocket_audio: bool
    live: dict[str, ServerSession]
    stored: dict[str, Path]

    def bearer(self, request: web.Request) -> str: ...

    def check_key(self, key: str) -> None: ...

    def count_session(self) -> tuple[int, ProtocolError | None]: ...

    def network_for(self, call_number: int, reliable: bool) -> CallNetwork | None: ...

    def open_session(
        self,
        session_id: str,
        session: dict[str, Any],
        edge: Edge,
        call_number: int,
        network: CallNetwork | None,
        dialect: Dialect,
    ) -> ServerSession: ...

    async def open_call(self, call_id: str, session: dict[str, Any], sdp: str, dialect: Dialect) -> tuple[str, str]: ...


class LiveRoutes:
    def __init__(self, server: LiveHost) -> None:
        self.server = server

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/live/sessions", self.websocket)
        router.add_post("/v1/live/sessions", self.create_session)
        router.add_post("/v1/live/sessions/{session_id}/hangup", self.hangup)
        router.add_get("/v1/live/sessions/{session_id}/attach", self.sideband)
        router.add_get("/v1/live/sessions/{session_id}/content", self.recording)

    def session(self, session_id: str) -> ServerSession:
        """A GPT-Live session under way, over either transport (what its hangup and sideband reach), or 404."""
        session = self.server.live.get(session_id)
        if session is None or not isinstance(session.dialect, LiveDialect):
            raise ProtocolError(f"Session {session_id!r} not found.", "session_not_found", "session_id", status=404)
        return session

    def _check_project_key(self, key: str) -> None:
        if key.startswith("ek_"):  # GPT-Live has no ephemeral keys
            raise ProtocolError("GPT-Live sessions need a project API key.", "invalid_api_key", status=401)
        self.server.check_key(key)

    async def create_session(self, request: web.Request) -> web.Response:
        """`POST /v1/live/sessions`: a GPT-Live WebRTC session, JSON `{session, transport: {type: "webrtc", sdp}}`
        in, `201` JSON `{session: {id}, transport: {type: "webrtc", sdp: ANSWER}}` out (the answer in the shape
        this server gives for the Realtime API: no GPT-Live answer has been published)."""
        self._check_project_key(self.server.bearer(request))
        dialect = LiveDialect()
        session, sdp = dialect.create_session(await read_json(request))
        call_id, answer = await self.server.open_call(session["id"], session, sdp, dialect)
        return web.json_response(
            {"session": {"id": call_id}, "transport": {"type": "webrtc", "sdp": answer}}, status=201
        )

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/live/sessions` (WebSocket): a GPT-Live session, started by the client's `session.start`."""
        server = self.server
        key = server.bearer(request)  # no key at all: 401 before the upgrade
        refused: ProtocolError | None = None
        try:
            self._check_project_key(key)
        except ProtocolError as exc:
            refused = exc
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=WS_MAX_MESSAGE)
        await ws.prepare(request)
        dialect = LiveDialect()

        async def refuse(exc: ProtocolError) -> None:
            for event in dialect.error(exc):
                await ws.send_str(json.dumps(event, separators=(",", ":")))

        if refused is not None:
            await refuse(refused)
            await ws.close(code=3000, message=f"{refused.type}.{refused.code}".encode())
            return ws
        session: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(LIVE_START_SECONDS):
                async for message in ws:  # nothing is sent before `session.start`
                    if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                        break
                    try:
                        session = dialect.start_session(message.data)
                        break
                    except ProtocolError as exc:
                        await refuse(exc)
                        if exc.code == "model_not_found":
                            await ws.close(code=3000, message=f"{exc.type}.{exc.code}".encode())
                            return ws
        except TimeoutError:
            log.info("live session: no session.start in %g s; closing the socket", LIVE_START_SECONDS)
        if session is None:
            await ws.close()
            return ws
        number, refusal = server.count_session()
        if refusal is not None:  # (after the upgrade: the session's refusal is an error event, then the close)
            log.info("live session %d: injected refusal %d", number, refusal.status)
            await refuse(refusal)
            await ws.close(code=3000, message=f"{refusal.type}.{refusal.code}".encode())
            return ws
        if server.speech is not None:
            await server.speech.ready()
        network = server.network_for(number, reliable=True)
        edge = WebSocketEdge(request, ws, server.pace_websocket_audio, network)
        live = server.open_session(session["id"], session, edge, number, network, dialect)
        server.console.watch(live)
        log.info("live session %s created (%s)", live.id, session["model"])
        try:
            await edge.serve()
        finally:
            await live.close()
        return ws

    async def hangup(self, request: web.Request) -> web.Response:
        """`POST /v1/live/sessions/{id}/hangup`: the session ends as if the client had closed it (`session.closed`,
        `close_requested`, to the client and every sideband). OpenAI documents it for SIP calls; `serve` takes it
        for a session over any transport, as the Realtime API's hangup."""
        self.server.check_key(self.server.bearer(request))
        await self.session(request.match_info["session_id"]).hang_up()
        return web.Response(status=200)

    async def sideband(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/live/sessions/{id}/attach` (WebSocket): a backend joins a GPT-Live session under way. No
        `session.start`: it is greeted with `session.started` (the session as it is), then receives every event
        the session sends and may send the same client events (`server/sideband.py`)."""
        self.server.check_key(self.server.bearer(request))
        return await serve_sideband(request, self.session(request.match_info["session_id"]))

    async def recording(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/live/sessions/{id}/content`: the stored recording of an ended GPT-Live session started with
        `store: true`, a stereo 24 kHz WAV (left what the user said, right what the model said). `serve` records
        WebRTC sessions; a WebSocket session, a session without `store` or one still under way has none (404)."""
        self.server.check_key(self.server.bearer(request))
        session_id = request.match_info["session_id"]
        live = self.server.live
        path = self.server.stored.get(session_id)
        if path is None or session_id in live or not path.exists():
            why = "is still under way" if session_id in live and path is not None else "has no stored recording"
            raise ProtocolError(
                f"Session {session_id!r} {why}: serve stores the recording of a WebRTC session started with "
                "store: true, once it has ended.",
                "recording_not_found",
                "session_id",
                status=404,
            )
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
