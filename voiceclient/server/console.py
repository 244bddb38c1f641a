"""The live console of `voiceclient serve`, at its root URL: the calls and WebSocket sessions running and recently
ended, each one's events as they happen, who is speaking, the response under way, the faults; once a session has
ended, its event log and its timeline page (`voiceclient report`), and a button that talks to the server from the
browser over WebRTC, as OpenAI's browser guide does.

    GET /                                    the page (HTML; JSON for `Accept: application/json`, as before)
    GET /console/sessions                    the sessions, newest first (JSON)
    GET /console/sessions/{id}/events        its events so far, then as they happen (server-sent events)
    GET /console/sessions/{id}/events.jsonl  its event log, in the client's event-log format (`--events`)
    GET /console/sessions/{id}/report.html   its timeline page
    GET /console/sessions/{id}/conversation.wav  its stereo recording (`serve --record-dir`, WebRTC calls)

The event log is the server's view, on the server's clock: `client` for what the client sent, `server` for what
the server sent, `local` for an injected fault. Audio stays out of it (its length in).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from voiceclient.protocol.errors import ProtocolError
from voiceclient.report.page import page_template
from voiceclient.server.session import ServerSession

KEPT = 32  # sessions kept for the console (running and ended)
LINES = 50_000  # events kept per session


@dataclass
class Watched:
    session: ServerSession
    t0: float
    lines: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=LINES))
    subscribers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    speaking: bool = False
    responses: set[str] = field(default_factory=set)
    playing: bool = False
    turns: int = 0
    injected: list[str] = field(default_factory=list)
    ended_at: float | None = None
    recording: Path | None = None  # `serve --record-dir`: the call's stereo recording, on this log's clock

    def seen(self, direction: str, event: dict[str, Any]) -> None:
        line = {"t": round(time.monotonic() - self.t0, 4), "dir": direction, "event": event}
        self.lines.append(line)
        kind = event.get("type")
        if kind == "input_audio_buffer.speech_started":
            self.speaking = True
        elif kind == "input_audio_buffer.speech_stopped":
            self.speaking = False
            self.turns += 1
        elif kind == "response.created":
            self.responses.add(str((event.get("response") or {}).get("id")))
        elif kind == "response.done":
            self.responses.discard(str((event.get("response") or {}).get("id")))
        elif kind == "output_audio_buffer.started":
            self.playing = True
        elif kind in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            self.playing = False
        elif kind == "server.fault":
            self.injected.append(f"{event.get('action')} at {line['t']:.1f} s")
        for queue in list(self.subscribers):
            queue.put_nowait(line)

    def ended(self) -> None:
        self.ended_at = time.monotonic()
        self.speaking = self.playing = False
        for queue in list(self.subscribers):
            queue.put_nowait(None)

    def summary(self) -> dict[str, Any]:
        s = self.session
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return {
            "id": s.id,
            "transport": s.transport,
            "created_at": s.created_at,
            "ended": self.ended_at is not None,
            "seconds": round(end - self.t0, 1),
            "events": len(self.lines),
            "turns": self.turns,
            "speaking": self.speaking,
            "responding": sorted(self.responses),
            "playing": self.playing,
            "faults": [
                f.action
                + (
                    f" at {f.at_seconds:g} s"
                    if f.at_seconds is not None
                    else f" after {f.after_turns} responses"
                    if f.after_turns
                    else ""
                )
                for f in s.faults
            ],
            "injected": self.injected,
            "last": self.lines[-1]["event"].get("type") if self.lines else None,
            "recording": self.recording is not None and self.ended_at is not None,
        }


class Console:
    def __init__(self) -> None:
        self.watched: collections.OrderedDict[str, Watched] = collections.OrderedDict()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/console/sessions", self.sessions)
        app.router.add_get("/console/sessions/{id}/events", self.events)
        app.router.add_get("/console/sessions/{id}/events.jsonl", self.event_log)
        app.router.add_get("/console/sessions/{id}/report.html", self.report)
        app.router.add_get("/console/sessions/{id}/conversation.wav", self.conversation)

    def watch(self, session: ServerSession) -> Watched:
        watched = Watched(session, time.monotonic())
        session.watchers.append(watched.seen)
        self.watched[session.id] = watched
        while len(self.watched) > KEPT:
            oldest = next((k for k, w in self.watched.items() if w.ended_at is not None), None)
            if oldest is None:
                break
            del self.watched[oldest]
        return watched

    def ended(self, session: ServerSession) -> None:
        watched = self.watched.get(session.id)
        if watched is not None and watched.ended_at is None:
            watched.ended()

    def _find(self, request: web.Request) -> Watched:
        watched = self.watched.get(request.match_info["id"])
        if watched is None:
            raise ProtocolError(
                f"no session {request.match_info['id']!r} (the console keeps the last {KEPT})",
                "session_not_found",
                status=404,
            )
        return watched

    async def page(self, request: web.Request) -> web.Response:
        text = page_template("voiceclient.server", "console.html")
        return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def sessions(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": [w.summary() for w in reversed(self.watched.values())]})

    async def events(self, request: web.Request) -> web.StreamResponse:
        watched = self._find(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        backlog = list(watched.lines)
        if watched.ended_at is None:
            watched.subscribers.add(queue)
        try:
            for line in backlog:
                await response.write(f"data: {json.dumps(line, separators=(',', ':'))}\n\n".encode())
            while watched.ended_at is None or not queue.empty():
                live = await queue.get()
                if live is None:
                    break
                await response.write(f"data: {json.dumps(live, separators=(',', ':'))}\n\n".encode())
            await response.write(b"event: ended\ndata: {}\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watched.subscribers.discard(queue)
        return response

    async def event_log(self, request: web.Request) -> web.Response:
        watched = self._find(request)
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in watched.lines)
        return web.Response(
            text=body,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": f'inline; filename="{watched.session.id}.events.jsonl"'},
        )

    def _recording(self, watched: Watched) -> Path | None:
        """The call's recording, once it has ended (the WAV is finalised at the end)."""
        if watched.recording is None or watched.ended_at is None or not watched.recording.is_file():
            return None
        return watched.recording

    async def conversation(self, request: web.Request) -> web.StreamResponse:
        path = self._recording(self._find(request))
        if path is None:
            raise ProtocolError(
                "no recording of this session (serve --record-dir keeps those of WebRTC calls, once they have ended)",
                "no_recording",
                status=404,
            )
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def report(self, request: web.Request) -> web.Response:
        from voiceclient.report.page import render
        from voiceclient.report.timeline import Builder, read_recording

        watched = self._find(request)
        lines = list(watched.lines)
        if not lines:
            raise ProtocolError("no events yet", "no_events", status=404)
        lines.append(
            {
                "t": lines[-1]["t"],
                "dir": "local",
                "event": {"type": "conversation.history", "call_id": watched.session.id},
            }
        )
        path = self._recording(watched)
        timeline = await asyncio.to_thread(
            lambda: Builder(lines, read_recording(path) if path is not None else None).build()
        )
        return web.Response(
            text=render(timeline, f"{watched.session.id} (the server's view)"), content_type="text/html"
        )
