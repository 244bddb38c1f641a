"""`voiceclient serve --workers N`: one public port, the calls spread over N worker processes.

    client --HTTP/WebSocket--> Front (this module, the public port; routing only)
                                 |--> worker 1: `voiceclient serve --worker` on 127.0.0.1:PORT1 (a RealtimeServer)
                                 |--> worker 2: ...
    client <==== WebRTC media (UDP) ====> the worker that answered the call (its own ports, in its SDP answer)

- A new call or session (`POST /v1/realtime/calls`, `POST /v1/live/sessions`, a WebSocket session) goes to the
  worker with the fewest live calls and sessions (each worker's `GET /` counts, plus the ones being placed).
- The front remembers which worker holds each call and session (from the `Location` of `/calls`, the JSON of
  `/live/sessions`, a WebSocket session's first event), so its hangup, its sideband, its recording and its console
  pages reach that worker. An id it does not know is asked of each worker in turn (a 404 from all is the answer).
- An ephemeral key is the issuing worker's: a call or WebSocket session made with it goes to that worker.
- The console's list is every worker's, each session marked with its worker's pid (`worker`).
- A WebSocket session is relayed message by message (the front parses each frame and writes it again); WebRTC
  media never passes through the front.
- A worker that exits is logged once and given no more calls; the front keeps serving with the rest.
- `close()` stops every worker (SIGTERM: each tells its calls and ends them, as `serve` alone does), then the front.
  A worker whose front is gone (its stdin closed) stops itself the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from voiceclient.errors import ConfigError
from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.app import CORS_HEADERS, api_base_url
from voiceclient.server.bodies import MAX_BODY, too_large
from voiceclient.server.websocket import WS_MAX_MESSAGE

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
START_SECONDS = 60.0  # a worker's start, imports and all, on a busy machine
STOP_SECONDS = 8.0  # a worker's stop: its calls get CLOSE_SECONDS (3 s) together, then it exits
LEARN_WITHIN = 8  # a WebSocket's first messages read for its session id (then passed on unread)
COUNT_TIMEOUT = aiohttp.ClientTimeout(total=2.0)  # a worker that does not say its load is not given the call
KNOWN_IDS = 100_000  # call, session and ephemeral-key owners remembered, oldest forgotten first
# Hop-by-hop headers, and those aiohttp sets again for the body it writes.
NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
}
CALL_LOCATION = re.compile(r"/v1/realtime/calls/([^/?#]+)")


@dataclass
class Worker:
    """One worker process and where it listens."""

    number: int
    process: asyncio.subprocess.Process
    url: str = ""  # http://127.0.0.1:PORT (no /v1)
    alive: bool = True
    placing: int = 0  # calls being placed on it, not yet in its own count

    @property
    def pid(self) -> int:
        return self.process.pid


class Front:
    """`async with Front(command, workers=2, port=0) as front: front.base_url`. `command` starts one worker:
    a `voiceclient serve` that listens on 127.0.0.1 port 0 and prints `listening on URL` first."""

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        host: str = "127.0.0.1",
        port: int = 8000,
        on_output: Callable[[int, str], None] | None = None,
    ) -> None:
        """`on_output(worker_number, line)`: each line a worker prints after its address (its models loaded)."""
        if workers < 1:
            raise ConfigError("workers must be at least 1")
        self.command = list(command)
        self.count = workers
        self.host = host
        self.port = port
        self.on_output = on_output
        self.workers: list[Worker] = []
        self.owners: collections.OrderedDict[str, Worker] = collections.OrderedDict()  # id or ek_ -> its worker
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        self.app.router.add_get("/", self.index)
        self.app.router.add_get("/console/sessions", self.console_sessions)
        self.app.router.add_get("/console/sessions/{id}/{rest:.*}", self.by_id)
        self.app.router.add_post("/v1/realtime/calls", self.place)
        self.app.router.add_post("/v1/realtime/client_secrets", self.place)
        self.app.router.add_post("/v1/live/sessions", self.place)
        self.app.router.add_post("/v1/realtime/calls/{id}/hangup", self.by_id)
        self.app.router.add_post("/v1/live/sessions/{id}/hangup", self.by_id)
        self.app.router.add_get("/v1/live/sessions/{id}/content", self.by_id)
        self.app.router.add_get("/v1/live/sessions/{id}/attach", self.relay_by_id)
        self.app.router.add_get("/v1/realtime", self.realtime_websocket)
        self.app.router.add_get("/v1/live/sessions", self.live_websocket)
        self.app.router.add_route("*", "/{tail:.*}", self.anywhere)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._relays: set[asyncio.Task[Any]] = set()
        self._closing = False

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> "Front":
        """Start the workers and wait until each listens (`ConfigError` if one does not: it says why on
        stderr, which it shares with the front), then listen on the
        public port (`port=0`: a free one, then in `port`)."""
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # one connection per relayed session or stream: no cap
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
            auto_decompress=False,
        )
        starting = [asyncio.create_task(self._start_worker(n + 1)) for n in range(self.count)]
        try:
            try:
                await asyncio.gather(*starting)
            finally:  # one failed: the others' starts end too (close() stops their processes)
                for task in starting:
                    task.cancel()
                await asyncio.gather(*starting, return_exceptions=True)
            self.workers.sort(key=lambda w: w.number)
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self.close()
            raise
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("front on %s: %d workers (pids %s)", self.base_url, len(self.workers), self.pids)
        return self

    async def _start_worker(self, number: int) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,  # its stdin closing is its front gone (workers.py's docstring)
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the front only; the front stops the workers
        )
        worker = Worker(number, process)
        self.workers.append(worker)  # (so that a failed start still stops it)
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_SECONDS):
                while True:
                    line = (await process.stdout.readline()).decode()
                    if not line:
                        raise ConfigError(
                            f"serve --workers: worker {number} exited before listening (exit code "
                            f"{await process.wait()})"
                        )
                    found = re.search(r"listening on (http://\S+?)/v1", line)
                    if found:
                        worker.url = found.group(1)
                        break
        except TimeoutError:
            raise ConfigError(f"serve --workers: worker {number} did not listen within {START_SECONDS:g} s") from None
        self._watchers.append(asyncio.create_task(self._watch(worker)))

    async def _watch(self, worker: Worker) -> None:
        """Keep the worker's stdout drained (its lines to `on_output`), and notice when it exits."""
        assert worker.process.stdout is not None
        while line := await worker.process.stdout.readline():
            if self.on_output is not None:
                self.on_output(worker.number, line.decode().rstrip())
        code = await worker.process.wait()
        worker.alive = False
        for key in [k for k, w in self.owners.items() if w is worker]:
            del self.owners[key]
        if not self._closing:
            log.warning(
                "worker %d (pid %d) exited with code %s: its calls are gone; new calls go to the other %d",
                worker.number,
                worker.pid,
                code,
                len(self.alive),
            )

    async def close(self) -> None:
        """Stop every worker (each ends its calls and tells them, as `serve` does on SIGTERM; one that outlasts
        STOP_SECONDS is killed), then the relays and the public port. Idempotent."""
        self._closing = True
        running = [w for w in self.workers if w.process.returncode is None]
        if running:
            log.info("stopping %d worker(s)", len(running))
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(self._reap(w) for w in running))
        if self._relays:  # each ends as its worker closed its socket
            await asyncio.wait(set(self._relays), timeout=2.0)
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    @staticmethod
    async def _reap(worker: Worker) -> None:
        try:
            await asyncio.wait_for(worker.process.wait(), STOP_SECONDS)
        except TimeoutError:
            log.warning("worker %d (pid %d) did not stop in %g s; killed", worker.number, worker.pid, STOP_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
            await worker.process.wait()
        if worker.process.stdin is not None:
            worker.process.stdin.close()

    async def __aenter__(self) -> "Front":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return api_base_url(self.host, self.port)

    @property
    def websocket_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    @property
    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.alive and w.process.returncode is None]

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    # ------------------------------------------------------------------------------------------ choosing
    def _remember(self, key: str, worker: Worker) -> None:
        self.owners[key] = worker
        self.owners.move_to_end(key)
        while len(self.owners) > KNOWN_IDS:
            self.owners.popitem(last=False)

    async def _counts(self, worker: Worker) -> tuple[int, int]:
        """(calls, WebSocket sessions) live on the worker, as its `GET /` says."""
        assert self._http is not None
        headers = {"Accept": "application/json"}
        async with self._http.get(worker.url + "/", headers=headers, timeout=COUNT_TIMEOUT) as resp:
            body = await resp.json()
        return int(body["calls"]), int(body["websocket_sessions"])

    async def _least_loaded(self) -> Worker:
        workers = self.alive
        if not workers:
            raise ProtocolError("Every worker of this server has stopped.", type="server_error", status=503)
        counts = await asyncio.gather(*(self._counts(w) for w in workers), return_exceptions=True)
        loads = [
            (sum(c) + w.placing if not isinstance(c, BaseException) else float("inf"), w.number, w)
            for w, c in zip(workers, counts)
        ]
        return min(loads, key=lambda x: (x[0], x[1]))[2]

    def _issuer(self, request: web.Request) -> Worker | None:
        """The worker that issued the request's ephemeral key (as a bearer, or a browser's subprotocol)."""
        keys = [request.headers.get("Authorization", "").removeprefix("Bearer ").strip()]
        for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            keys.append(offered.strip().removeprefix("openai-insecure-api-key."))
        for key in keys:
            worker = self.owners.get(key) if key.startswith("ek_") else None
            if worker is not None and worker.alive:
                return worker
        return None

    async def _target(self, request: web.Request) -> Worker:
        return self._issuer(request) or await self._least_loaded()

    def _first(self) -> Worker:
        workers = self.alive
        if not workers:
            raise ProtocolError("Every worker of this server has stopped.", type="server_error", status=503)
        return workers[0]

    # ------------------------------------------------------------------------------------------ plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ProtocolError as exc:
            error = exc
        except web.HTTPRequestEntityTooLarge:
            error = too_large()
        except (aiohttp.ClientError, ConnectionError) as exc:  # a worker gone mid-request
            log.info("request %s %s: worker unreachable (%s)", request.method, request.path, exc)
            error = ProtocolError(f"The worker for this request is unreachable: {exc}", type="server_error", status=502)
        response = web.json_response(error.envelope(), status=error.status, headers=error.headers)
        if not request.path.startswith("/console/"):  # the front's own errors, as the workers' answers: CORS
            response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
            response.headers["Vary"] = "Origin"
            response.headers.update(CORS_HEADERS)
        return response

    async def _send(self, worker: Worker, request: web.Request, body: bytes) -> aiohttp.ClientResponse:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
        return await self._http.request(
            request.method, worker.url + request.rel_url.path_qs, headers=headers, data=body, allow_redirects=False
        )

    @staticmethod
    async def _pass_on(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """The worker's answer to the client, streamed (the console's server-sent events, recordings)."""
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in NOT_FORWARDED}
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:  # the client left (a console page closed): the worker's stream ends with it
            pass
        finally:
            upstream.release()
        return response

    async def _forward(self, worker: Worker, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        upstream = await self._send(worker, request, await request.read() if body is None else body)
        return await self._pass_on(request, upstream)

    # ------------------------------------------------------------------------------------------ routes
    async def place(self, request: web.Request) -> web.StreamResponse:
        """A new call, GPT-Live session or ephemeral key: on the issuer of the key it is made with, else on the
        least loaded worker. Its id (or key) is remembered with the worker."""
        body = await request.read()
        worker = await self._target(request)
        worker.placing += 1
        try:
            upstream = await self._send(worker, request, body)
            if upstream.status >= 300:
                return await self._pass_on(request, upstream)
            data = await upstream.read()
        finally:
            worker.placing -= 1
        key: str | None = None
        location = CALL_LOCATION.search(upstream.headers.get("Location", ""))
        if location:
            key = location.group(1)
        elif upstream.content_type == "application/json":
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                answer = json.loads(data)
                key = answer.get("value") or answer["session"]["id"]
        if isinstance(key, str):
            self._remember(key, worker)
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in NOT_FORWARDED}
        return web.Response(status=upstream.status, body=data, headers=headers)

    async def by_id(self, request: web.Request) -> web.StreamResponse:
        """A call's or session's own route: to its worker; an id this front does not know, to each worker in turn
        until one does not answer 404."""
        body = await request.read()
        owner = self.owners.get(request.match_info["id"])
        if owner is not None and owner.alive:
            return await self._forward(owner, request, body)
        workers = self.alive
        if not workers:
            raise ProtocolError("Every worker of this server has stopped.", type="server_error", status=503)
        for worker in workers:
            upstream = await self._send(worker, request, body)
            if upstream.status != 404 or worker is workers[-1]:
                if upstream.status != 404:
                    self._remember(request.match_info["id"], worker)
                return await self._pass_on(request, upstream)
            upstream.release()
        raise AssertionError("unreachable")

    async def anywhere(self, request: web.Request) -> web.StreamResponse:
        """What belongs to no call (the console's page, CORS preflights, unknown paths): the first worker's."""
        return await self._forward(self._first(), request)

    async def index(self, request: web.Request) -> web.StreamResponse:
        """`GET /`: the console page for a browser; else the JSON index, summed over the workers, with each one."""
        if "text/html" in request.headers.get("Accept", ""):
            return await self.anywhere(request)
        workers = self.alive
        counts = await asyncio.gather(*(self._counts(w) for w in workers), return_exceptions=True)
        rows = [
            {"pid": w.pid, "url": w.url + "/v1", "calls": c[0], "websocket_sessions": c[1]}
            for w, c in zip(workers, counts)
            if not isinstance(c, BaseException)
        ]
        return web.json_response(
            {
                "object": "voiceclient.server",
                "base_url": self.base_url,
                "calls": sum(r["calls"] for r in rows),
                "websocket_sessions": sum(r["websocket_sessions"] for r in rows),
                "workers": rows,
            }
        )

    async def console_sessions(self, request: web.Request) -> web.Response:
        """`GET /console/sessions`: every worker's, newest first, each with its worker's pid."""
        assert self._http is not None

        async def of(worker: Worker) -> list[dict[str, Any]]:
            assert self._http is not None
            async with self._http.get(worker.url + "/console/sessions", timeout=COUNT_TIMEOUT) as resp:
                sessions: list[dict[str, Any]] = (await resp.json())["sessions"]
            for session in sessions:
                session["worker"] = worker.pid
                self.owners.setdefault(session["id"], worker)
            return sessions

        found = await asyncio.gather(*(of(w) for w in self.alive), return_exceptions=True)
        sessions = [s for part in found if not isinstance(part, BaseException) for s in part]
        sessions.sort(key=lambda s: s.get("created_at", 0), reverse=True)
        return web.json_response({"sessions": sessions})

    async def realtime_websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/realtime`: a call's sideband (`call_id`) to its worker; a new session to the key's issuer or
        the least loaded worker."""
        call_id = request.query.get("call_id")
        if call_id:
            owner = self.owners.get(call_id)
            worker = owner if owner is not None and owner.alive else await self._holder(request, call_id)
            return await self._relay(worker, request, learn=False)
        worker = await self._target(request)
        return await self._relay(worker, request, learn=True)

    async def live_websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/live/sessions` (WebSocket): a new GPT-Live session, on the least loaded worker."""
        return await self._relay(await self._least_loaded(), request, learn=True)

    async def relay_by_id(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/live/sessions/{id}/attach`: the session's sideband, on its worker."""
        session_id = request.match_info["id"]
        owner = self.owners.get(session_id)
        worker = owner if owner is not None and owner.alive else await self._holder(request, session_id)
        return await self._relay(worker, request, learn=False)

    async def _holder(self, request: web.Request, session_id: str) -> Worker:
        """The worker whose console lists `session_id` (a session this front has not seen placed), else the first
        (which refuses it as `serve` alone would)."""
        await self.console_sessions(request)
        owner = self.owners.get(session_id)
        return owner if owner is not None and owner.alive else self._first()

    async def _relay(self, worker: Worker, request: web.Request, learn: bool) -> web.StreamResponse:
        """A WebSocket between the client and `worker`, message by message, close codes kept. `learn`: the
        session's id is read from its first event (`session.created`, `session.started`) and remembered."""
        assert self._http is not None
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "openai-beta", "origin", "user-agent")
            or k.lower().startswith(("x-", "openai-"))
        }
        worker.placing += learn
        try:
            upstream = await self._http.ws_connect(
                worker.url + request.rel_url.path_qs,
                headers=headers,
                protocols=offered,
                autoping=True,
                max_msg_size=WS_MAX_MESSAGE,
                compress=0,  # no permessage-deflate on loopback: the client's own link keeps what it negotiated
            )
        except aiohttp.WSServerHandshakeError as exc:
            # The worker refused before the upgrade. aiohttp drops the body of a refused handshake, so the worker's
            # own words are lost: its status and Retry-After, in words of ours.
            retry = exc.headers.get("Retry-After") if exc.headers else None
            raise ProtocolError(
                f"The session was refused before the upgrade (HTTP {exc.status}).",
                "invalid_api_key" if exc.status == 401 else None,
                status=exc.status,
                headers={"Retry-After": retry} if retry else None,
            ) from None
        finally:
            worker.placing -= learn
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (), heartbeat=30, max_msg_size=WS_MAX_MESSAGE
        )
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
        try:
            await client.prepare(request)
            await self._pump(client, upstream, worker, learn)
        finally:
            if task is not None:
                self._relays.discard(task)
            await upstream.close()
        return client

    async def _pump(
        self, client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, worker: Worker, learn: bool
    ) -> None:
        async def down() -> None:  # worker -> client; the worker's close (code, reason) passed on
            unread = LEARN_WITHIN if learn else 0
            while True:
                message = await upstream.receive()
                if message.type == WSMsgType.TEXT:
                    if unread:
                        unread = 0 if self._learn(message.data, worker) else unread - 1
                    await client.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await client.send_bytes(message.data)
                else:
                    break
            closing = message.type == WSMsgType.CLOSE
            code = int(message.data) if closing and message.data else upstream.close_code or 1000
            reason = str(message.extra or "") if closing else ""
            await client.close(code=code, message=reason.encode())

        async def up() -> None:  # client -> worker
            while True:
                message = await client.receive()
                if message.type == WSMsgType.TEXT:
                    await upstream.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await upstream.send_bytes(message.data)
                else:
                    break
            closing = message.type == WSMsgType.CLOSE
            code = int(message.data) if closing and message.data else client.close_code or 1000
            await upstream.close(code=code, message=str(message.extra or "").encode() if closing else b"")

        tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=2.0)  # one side ended: the other is given a moment to close too
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not client.closed:
            await client.close()

    def _learn(self, text: str, worker: Worker) -> bool:
        """Remember the worker of the session whose first event this is; True once done."""
        try:
            event = json.loads(text)
            if event.get("type") not in ("session.created", "session.started"):
                return False  # (an error before the session, as a bad `session.start` gets)
            session_id = event["session"]["id"]
        except (ValueError, AttributeError, TypeError, KeyError):
            return True
        if isinstance(session_id, str):
            self._remember(session_id, worker)
        return True


def worker_count(text: str, cpus: int | None) -> int:
    """`--workers` as given: a whole number from 1, or `auto` (one per core)."""
    if text == "auto":
        return max(1, cpus or 1)
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"--workers takes a whole number from 1, or auto (got {text!r})")
    return count
