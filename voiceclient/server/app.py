"""HTTP routes of the embedded server, shaped like api.openai.com/v1 for the Realtime API, both transports.

- `POST /v1/realtime/calls`: multipart (`sdp`, optional `session`; part content types optional, as browser
  FormData sends none) with any bearer key (or the one given to `--api-key`), or raw `application/sdp` with an
  `ek_` key issued by this server. 201, `application/sdp`, `Location: /v1/realtime/calls/rtc_u1_<base62>`, the
  answer in the real service's shape (ICE-lite; `rtc/answer.py`).
- `POST /v1/realtime/calls/{id}/hangup`: 200, or 404 for an unknown call.
- `POST /v1/realtime/client_secrets`: `{value: "ek_…", expires_at, session}`.
- `GET /v1/realtime?model=M` (WebSocket): a whole session over the socket (`server/websocket.py`). The key comes
  as `Authorization: Bearer` (a project key or an `ek_`) or, from a browser, as the subprotocol
  `openai-insecure-api-key.<key>` beside `realtime`. No key at all: 401 before the upgrade; a wrong key: the
  upgrade, an `invalid_api_key` error event, then close code 3000 (as the real service does).
- `GET /v1/realtime?intent=transcription` (WebSocket): a transcription session (no model; `server/transcription.py`).
  A transcription session also comes from an `ek_` whose `client_secrets` session had `type: "transcription"`, or a
  `/calls` session of that type.
- `GET /v1/realtime?call_id=rtc_…` (WebSocket): the sideband of a live WebRTC call (`server/sideband.py`).
- `/v1/live/sessions...`: GPT-Live's endpoints, in `server/live_routes.py`.
- CORS like the real API, so a page on another origin can call it and read `Location`.
- Every request body within 1 MiB, its errors in the API's envelope (`server/bodies.py`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from voiceclient.protocol.errors import ProtocolError
from voiceclient.rtc.lite import BASE62
from voiceclient.rtc.peer import AnswerShape, InvalidOffer
from voiceclient.server.bodies import MAX_BODY, parse_json, read_form, read_json, read_text, too_large
from voiceclient.server.call import CallEdge
from voiceclient.server.console import Console
from voiceclient.server.dialect import Dialect
from voiceclient.server.edge import Edge
from voiceclient.server.faults import FaultPlan
from voiceclient.server.live_routes import LiveRoutes
from voiceclient.server.network import CallNetwork, NetworkSpec, network_spec
from voiceclient.server.realtime import RealtimeDialect
from voiceclient.server.responders import EchoResponder, Responder
from voiceclient.server.session import ServerSession, server_shutting_down
from voiceclient.server.sideband import serve_sideband
from voiceclient.server.speech_port import OfflineSpeech
from voiceclient.server.websocket import WS_MAX_MESSAGE, WebSocketEdge

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INSECURE_KEY = "openai-insecure-api-key."  # a browser's key, as a WebSocket subprotocol
CLOSE_SECONDS = 3.0  # each call's close when the server stops; a peer that is gone must not hold the rest
# What `history` keeps of ended sessions, newest first (creation order): at most HISTORY_KEPT of them, and within
# HISTORY_BUDGET bytes (`ServerSession.retained_size()`), except that the newest ended one is always kept whole.
# Older ones over it are dropped whole, not gutted: a session in `history` has its whole conversation, as a test
# reading `history[-1].conversation` expects. Live sessions are not counted and never dropped. Measured: the demo's
# call keeps 0.66 MB over WebRTC (0.46 MB over the WebSocket), nearly all of it its turns' audio; a minute of the
# user's speech is 2.9 MB (24 kHz), a minute of answers 5.8 MB over WebRTC (48 kHz), so a 10-minute call, half
# each, about 43 MB. 64 MiB keeps such a call whole, or the last 32 demo calls (the count binds first).
HISTORY_KEPT = 32
HISTORY_BUDGET = 64 * 1024 * 1024
# The request headers OpenAI's own SDKs send from a browser, and no more: the real service checks them against a
# fixed list (a third-party `originator` header was refused there), so a page that works here works there.
SDK_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "OpenAI-Organization",
    "OpenAI-Project",
    "OpenAI-Safety-Identifier",  # openai-node's client options
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Retry-Count",
    "X-Stainless-Timeout",
    "X-Stainless-Helper-Method",
    "X-OpenAI-Agents-SDK",  # @openai/agents-realtime adds it to the SDP POST (its WebRTC transport)
)
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": ", ".join(SDK_REQUEST_HEADERS),
    "Access-Control-Expose-Headers": "Location, x-request-id",
    "Access-Control-Max-Age": "600",
}


def api_base_url(host: str, port: int) -> str:
    """The API base URL a server on `host:port` gives its clients, `http://host:port/v1` (127.0.0.1 for a server
    on every interface)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/v1"


def new_call_id() -> str:
    """A call id in the real service's form: `rtc_u1_E7JWxaN1u2ZbQG9SnKbwh` (`rtc_u<digit>_`, 21-32 base62)."""
    return f"rtc_u{secrets.randbelow(10)}_" + "".join(secrets.choice(BASE62) for _ in range(25))


REALTIME = RealtimeDialect()  # the protocol of every endpoint so far (`/v1/realtime/...`)


def new_session(data: Any, model: str | None = None, dialect: Dialect = REALTIME) -> dict[str, Any]:
    """A new session from what the client gave (a `session` object, or an ephemeral key's session), whose model
    it may choose, unlike a later `session.update`."""
    if data is None:
        return dialect.default_session(model)
    if isinstance(data, dict) and data.get("type") == "transcription":  # a transcription session: no model
        data = {k: v for k, v in data.items() if k not in ("object", "id", "expires_at")}
        return dialect.apply_update(dialect.default_transcription_session(), data, audio_started=False)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("object", "id", "expires_at")}
        chosen = data.get("model")
        model = chosen if isinstance(chosen, str) else model
    return dialect.apply_update(dialect.default_session(model), data, audio_started=False)


class RealtimeServer:
    """`async with RealtimeServer(port=0) as server: server.base_url` -> `http://127.0.0.1:PORT/v1`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        responder: Responder | None = None,
        api_key: str | None = None,
        max_call_seconds: float = 3600.0,
        speech: OfflineSpeech | None = None,
        vad: str = "auto",
        faults: FaultPlan | None = None,
        pace_websocket_audio: bool = False,
        answer_shape: AnswerShape = "real",
        record_dir: str | Path | None = None,
        network: NetworkSpec | str | None = None,
        media_host: str | None = None,
    ) -> None:
        """`speech`: offline VAD/STT/TTS (an `OfflineSpeech`: `voiceclient.speech.backends.SpeechBackends()`), loaded in
        the background at start; `vad`: "auto" (Silero when `speech` has it, else energy) or "energy";
        `pace_websocket_audio`: WebSocket sessions get their answer audio in real time instead of as fast as it is made;
        `answer_shape`: "real" (ICE-lite and the answer as OpenAI's service gives it, candidates on `host`) or "aiortc"
        (aiortc's own answer, full ICE on every interface); `record_dir`: keep each WebRTC call's stereo recording there
        (`ID.conversation.wav`: left what the user sent, right what the server played), for the console; `network`: the
        emulated link to every client (a `NetworkSpec`, or a profile or spec as `serve --network` takes it: `"wifi"`,
        `"down=bad-wifi"`, `"delay_ms=40:loss=0.01"`; `server/network.py`), on each WebRTC call's datagrams and each
        WebSocket session's messages; its counters are each session's `network`; `media_host`: where WebRTC media is
        offered, if not on `host` (a `serve --workers` worker listens for HTTP on 127.0.0.1 behind its front)."""
        self.network = network_spec(network)
        self.answer_shape: AnswerShape = answer_shape
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.speech = speech
        self.vad = vad
        self.faults = faults or FaultPlan()
        self.pace_websocket_audio = pace_websocket_audio
        self.calls_created = 0  # also refused ones count: `call = N` in a fault means the Nth call or session
        self.host = host
        self.media_host = media_host or host
        self.port = port
        self.responder_factory: Callable[[], Responder] = (lambda: responder) if responder else EchoResponder
        self.api_key = api_key
        self.max_call_seconds = max_call_seconds
        self.live: dict[str, ServerSession] = {}  # live calls and sessions, whatever carries them
        # recent calls and sessions, for inspection
        self.history: collections.deque[ServerSession] = collections.deque(maxlen=HISTORY_KEPT)
        self.secrets: dict[str, tuple[float, dict[str, Any]]] = {}
        # GPT-Live's stored recordings (`store: true`), by session id; in `record_dir` or a directory of our own
        self.stored: dict[str, Path] = {}
        self._store_dir: tempfile.TemporaryDirectory[str] | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        self.app.router.add_post("/v1/realtime/calls", self.create_call)
        self.app.router.add_post("/v1/realtime/calls/{call_id}/hangup", self.hangup)
        self.app.router.add_post("/v1/realtime/client_secrets", self.client_secrets)
        self.app.router.add_get("/v1/realtime", self.realtime_websocket)
        LiveRoutes(self).add_to(self.app.router)  # GPT-Live's endpoints (`server/live_routes.py`)
        self.app.router.add_get("/", self.index)
        self.console = Console()  # the live console, at "/" for a browser
        self.console.routes(self.app)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> "RealtimeServer":
        """Listen (`port=0`: a free port, then in `port`) and begin loading the offline models, if any."""
        if self.speech is not None:
            self.speech.start_loading()
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("embedded Realtime server on %s", self.base_url)
        return self

    async def close(self) -> None:
        """Tell every call and session that the server is shutting down, end them (each within `CLOSE_SECONDS`,
        together), then stop listening. Idempotent."""
        live = list(self.live.values())
        if live:
            log.info("shutting down: ending %d call(s) and session(s)", len(live))
        outcomes = await asyncio.gather(*(self._end(session) for session in live), return_exceptions=True)
        for session, outcome in zip(live, outcomes):
            if isinstance(outcome, BaseException):
                why = "timed out" if isinstance(outcome, TimeoutError) else f"{type(outcome).__name__}: {outcome}"
                log.warning("%s %s: not closed cleanly (%s)", session.transport, session.id, why)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._store_dir is not None:
            self._store_dir.cleanup()
            self._store_dir = None
            self.stored.clear()

    @staticmethod
    async def _end(session: ServerSession) -> None:
        await asyncio.wait_for(session.close(server_shutting_down()), CLOSE_SECONDS)

    @property
    def calls(self) -> dict[str, ServerSession]:
        """The live WebRTC calls, by call id (GPT-Live's too)."""
        return {k: s for k, s in self.live.items() if s.transport == "webrtc"}

    def realtime_call(self, call_id: str) -> ServerSession | None:
        """A live WebRTC call of the Realtime API (what its hangup and sideband reach), or None."""
        call = self.calls.get(call_id)
        return call if call is not None and call.dialect is REALTIME else None

    @property
    def sessions(self) -> dict[str, ServerSession]:
        """The live WebSocket sessions, by session id."""
        return {k: s for k, s in self.live.items() if s.transport == "websocket"}

    def open_session(
        self,
        session_id: str,
        session: dict[str, Any],
        edge: Edge,
        call_number: int,
        network: CallNetwork | None,
        dialect: Dialect,
    ) -> ServerSession:
        """A session on `edge` speaking `dialect` (the endpoint's protocol), in the registry, the history and the
        console: the one way a session opens."""
        opened = ServerSession(
            session_id,
            session,
            self.responder_factory(),
            edge,
            dialect=dialect,
            on_closed=self._on_closed,
            max_seconds=self.max_call_seconds,
            speech=self.speech,
            vad=self.vad,
            faults=self.faults.for_call(call_number),
            network=network,
        )
        self.live[session_id] = opened
        self.history.append(opened)
        return opened

    async def __aenter__(self) -> "RealtimeServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """The API base URL clients are given, `http://host:port/v1`."""
        return api_base_url(self.host, self.port)

    @property
    def websocket_url(self) -> str:
        """The base URL for WebSocket clients: `ws://127.0.0.1:PORT/v1` (their `wss://api.openai.com/v1`)."""
        return "ws" + self.base_url.removeprefix("http")

    # ------------------------------------------------------------------------------------------ plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            resp: web.StreamResponse = web.Response(status=204)
        else:
            try:
                resp = await handler(request)
            except ProtocolError as exc:
                resp = web.json_response(exc.envelope(), status=exc.status, headers=exc.headers)
            except web.HTTPRequestEntityTooLarge:  # (the readers in server/bodies.py say it first)
                error = too_large()
                resp = web.json_response(error.envelope(), status=error.status)
            except web.HTTPException as exc:
                if exc.status >= 400:
                    error = ProtocolError(exc.reason, status=exc.status)
                    resp = web.json_response(error.envelope(), status=exc.status)
                else:
                    raise
            except Exception as exc:  # one bad request never takes the server down
                log.exception("request %s %s failed", request.method, request.path)
                error = ProtocolError(f"The server had an error: {exc}", type="server_error", status=500)
                resp = web.json_response(error.envelope(), status=500)
        if request.path != "/" and not request.path.startswith("/console/"):  # the console is for this origin only
            resp.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
            resp.headers["Vary"] = "Origin"
            for key, value in CORS_HEADERS.items():
                resp.headers[key] = value
        return resp

    def bearer(self, request: web.Request) -> str:
        """The request's bearer key, or a 401 in the API's words when it has none."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise ProtocolError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
                status=401,
            )
        return auth[7:].strip()

    def check_key(self, key: str) -> None:
        """Refuse (401) an `ek_` this server did not issue or that has expired, and any other key but `api_key`
        when one was given."""
        if key.startswith("ek_"):
            self._secret(key)
        elif self.api_key is not None and key != self.api_key:
            raise ProtocolError("Incorrect API key provided.", "invalid_api_key", status=401)

    def _secret(self, key: str) -> dict[str, Any]:
        entry = self.secrets.get(key)
        if entry is None or entry[0] < time.time():
            raise ProtocolError("Invalid or expired ephemeral key.", "invalid_api_key", status=401)
        return entry[1]

    async def index(self, request: web.Request) -> web.Response:
        """`GET /`: the console page for a browser, else what the server offers as JSON."""
        if "text/html" in request.headers.get("Accept", ""):
            return await self.console.page(request)
        return web.json_response(
            {
                "object": "voiceclient.server",
                "base_url": self.base_url,
                "calls": len(self.calls),
                "websocket_sessions": len(self.sessions),
            }
        )

    # ------------------------------------------------------------------------------------------ routes
    async def create_call(self, request: web.Request) -> web.Response:
        """`POST /v1/realtime/calls`: an SDP offer (raw or multipart with a session) in, the SDP answer out."""
        key = self.bearer(request)
        if request.headers.get("OpenAI-Beta"):
            raise ProtocolError(
                "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
                "beta_api_shape_disabled",
            )
        ctype = request.content_type
        session_data: Any = None
        if ctype == "multipart/form-data":
            self.check_key(key)
            sdp, session_data = await self._read_multipart(request)
        elif ctype == "application/sdp":
            if not key.startswith("ek_"):
                raise ProtocolError(
                    "A raw application/sdp offer needs an ephemeral key (ek_…) from "
                    "/v1/realtime/client_secrets; with a project key send multipart/form-data.",
                    "invalid_api_key",
                    status=401,
                )
            session_data = self._secret(key)
            sdp = await read_text(request)
        else:
            raise ProtocolError(
                f"Unsupported content type {ctype!r}: send multipart/form-data (parts sdp and "
                "session) or application/sdp.",
                "unsupported_content_type",
                status=415,
            )
        if not sdp.strip():
            raise ProtocolError("Missing required parameter: 'sdp'.", "missing_required_parameter", "sdp")
        session = new_session(session_data)
        call_id, answer = await self.open_call(new_call_id(), session, sdp, REALTIME)
        # bytes, so the type stays `application/sdp` exactly (text= would add "; charset=utf-8")
        return web.Response(
            status=201,
            body=answer.encode(),
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call_id}"},
        )

    def count_session(self) -> tuple[int, ProtocolError | None]:
        """A new call or session is counted (`call = N` in a fault means the Nth): its number, and the refusal a
        fault injects for it, if any."""
        self.calls_created += 1
        return self.calls_created, self.faults.http_refusal(self.calls_created)

    async def open_call(self, call_id: str, session: dict[str, Any], sdp: str, dialect: Dialect) -> tuple[str, str]:
        """A WebRTC call of `session` speaking `dialect`, from the client's offer: (its id, the SDP answer)."""
        number, refusal = self.count_session()
        if refusal is not None:
            log.info("create-call %d: injected HTTP %d", number, refusal.status)
            raise refusal
        if self.speech is not None:
            await self.speech.ready()  # the first call waits for the models (loaded once per server)
        network = self.network_for(number, reliable=False)  # (the number: other calls may have come meanwhile)
        edge = CallEdge(self.answer_shape, self.media_host, self.faults.unreachable(number), network)
        call = self.open_session(call_id, session, edge, number, network, dialect)
        try:
            answer = await edge.answer(sdp)
        except InvalidOffer as exc:
            await call.close()
            log.info("invalid offer: %s", exc.detail)
            raise
        watched = self.console.watch(call)
        stored = bool(session.get("live", {}).get("store"))  # a GPT-Live session kept for its recording
        if self.record_dir is not None or stored:
            folder = self.record_dir if self.record_dir is not None else self._storage()
            folder.mkdir(parents=True, exist_ok=True)
            edge.record(folder / f"{call_id}.conversation.wav", watched.t0)
            watched.recording = edge.recording
            if stored and edge.recording is not None:
                self.stored[call_id] = edge.recording
        log.info("call %s created (%s)", call_id, dialect.name)
        return call_id, answer

    def _storage(self) -> Path:
        """Where stored recordings go without `record_dir`: a directory of this server's, gone when it stops."""
        if self._store_dir is None:
            self._store_dir = tempfile.TemporaryDirectory(prefix="voiceclient-stored-")
        return Path(self._store_dir.name)

    def network_for(self, call_number: int, reliable: bool) -> CallNetwork | None:
        """The emulated network of the Nth call or session (`reliable`: a WebSocket's TCP), or None: no network
        given and no `network` fault for it, so nothing in its way."""
        if self.network is None and not self.faults.switches_network(call_number):
            return None
        return CallNetwork(self.network or NetworkSpec(name="clean"), call_number, reliable)

    async def _read_multipart(self, request: web.Request) -> tuple[str, Any]:
        parts = await read_form(request, {"sdp": True, "session": False})
        session = parse_json(parts["session"], "The 'session' part", "session") if "session" in parts else None
        return parts["sdp"], session

    async def hangup(self, request: web.Request) -> web.Response:
        """`POST /v1/realtime/calls/{call_id}/hangup`: with the project key (`--api-key`) or a key this server
        issued, as every other route."""
        self.check_key(self.bearer(request))
        call = self.realtime_call(request.match_info["call_id"])
        if call is None:
            raise ProtocolError(
                f"Call {request.match_info['call_id']!r} not found.", "call_not_found", "call_id", status=404
            )
        await call.close()
        return web.Response(status=200)

    async def client_secrets(self, request: web.Request) -> web.Response:
        """`POST /v1/realtime/client_secrets`: an ephemeral key (`ek_...`) for a browser, with its session."""
        key = self.bearer(request)
        if key.startswith("ek_"):
            raise ProtocolError(
                "Client secrets must be created with a project API key, not an ephemeral key.",
                "invalid_api_key",
                status=401,
            )
        self.check_key(key)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ProtocolError("The body must be a JSON object.", "invalid_type")
        expires = body.get("expires_after") or {}
        seconds = expires.get("seconds", 600) if isinstance(expires, dict) else None
        if not isinstance(seconds, int) or not 10 <= seconds <= 7200:
            raise ProtocolError(
                "Invalid 'expires_after.seconds': an integer from 10 to 7200.", "invalid_value", "expires_after.seconds"
            )
        session = new_session(body.get("session"))
        now = time.time()
        self.secrets = {k: v for k, v in self.secrets.items() if v[0] >= now}  # drop expired ones
        expires_at = int(now) + seconds
        value = "ek_" + secrets.token_hex(16)
        session["expires_at"] = expires_at
        self.secrets[value] = (expires_at, session)
        return web.json_response({"value": value, "expires_at": expires_at, "session": session})

    async def realtime_websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/realtime`: with `call_id`, the sideband of a live call; else a WebSocket session."""
        if request.query.get("call_id"):
            return await self.sideband(request)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        key = next((p.removeprefix(INSECURE_KEY) for p in offered if p.startswith(INSECURE_KEY)), None)
        if request.headers.get("Authorization") or key is None:
            key = self.bearer(request)
        if request.headers.get("OpenAI-Beta") or "openai-beta.realtime-v1" in offered:
            raise ProtocolError(
                "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
                "beta_api_shape_disabled",
            )
        model = request.query.get("model")
        # `?intent=transcription`: a transcription session, which has no model (`server/transcription.py`)
        transcribing = request.query.get("intent") == "transcription"
        refused: ProtocolError | None = None
        session: dict[str, Any] | None = None
        try:
            if key.startswith("ek_"):
                session = new_session(self._secret(key))
            else:
                self.check_key(key)
            if session is None and transcribing:
                session = REALTIME.default_transcription_session()
            elif session is None and model:
                session = REALTIME.default_session(model)  # (a model that is not a Realtime one is refused)
        except ProtocolError as exc:
            if exc.code not in ("invalid_api_key", "model_not_found"):
                raise
            refused = exc
        if refused is None and session is None:
            raise ProtocolError("Missing required parameter: 'model'.", "missing_required_parameter", "model")
        ws = web.WebSocketResponse(protocols=("realtime",), heartbeat=30, max_msg_size=WS_MAX_MESSAGE)
        if refused is not None:  # the real service upgrades, says why in an error event, and closes with 3000
            await ws.prepare(request)
            await ws.send_json(refused.event())
            await ws.close(code=3000, message=f"{refused.type}.{refused.code}".encode())
            return ws
        assert session is not None
        number, refusal = self.count_session()
        if refusal is not None:
            log.info("websocket session %d: injected HTTP %d", number, refusal.status)
            raise refusal
        if self.speech is not None:
            await self.speech.ready()
        await ws.prepare(request)
        network = self.network_for(number, reliable=True)
        edge = WebSocketEdge(request, ws, self.pace_websocket_audio, network)
        ws_session = self.open_session(session["id"], session, edge, number, network, REALTIME)
        self.console.watch(ws_session)
        log.info("websocket session %s created (%s)", ws_session.id, session.get("model") or session["type"])
        try:
            await edge.serve()
        finally:
            await ws_session.close()
        return ws

    async def sideband(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/realtime?call_id=rtc_…` (WebSocket): a backend joins a live call."""
        key = self.bearer(request)
        self.check_key(key)
        call_id = request.query.get("call_id", "")
        call = self.realtime_call(call_id)
        if call is None:
            raise ProtocolError("No session found for the provided call_id", "call_id_not_found", "call_id", status=404)
        return await serve_sideband(request, call)

    def _on_closed(self, ended: ServerSession) -> None:
        self.console.ended(ended)
        if self.live.pop(ended.id, None) is not None:
            log.info("%s %s ended", "call" if ended.transport == "webrtc" else f"{ended.transport} session", ended.id)
        self._trim_history()

    def history_size(self) -> int:
        """About the bytes the ended sessions in `history` hold (each one's `retained_bytes`)."""
        return sum(s.retained_bytes for s in self.history if s.closed.is_set())

    def _trim_history(self) -> None:
        """Keep the newest ended sessions within HISTORY_BUDGET (the newest always), dropping the older ones."""
        total, newest, dropped = 0, True, []
        for session in reversed(self.history):
            if not session.closed.is_set():
                continue
            total += session.retained_bytes
            if total > HISTORY_BUDGET and not newest:
                dropped.append(session)
            newest = False
        for session in dropped:
            self.history.remove(session)
        if dropped:
            log.info(
                "history: %d ended session(s) dropped, %d kept (%.1f MB; the budget is %d MiB)",
                len(dropped),
                len(self.history),
                self.history_size() / 1e6,
                HISTORY_BUDGET // (1024 * 1024),
            )
