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

What the console keeps is bounded by count and by size: the last KEPT sessions, each one's log within
`event_log.PER_SESSION` bytes (its earliest events dropped, and counted as not kept, beyond that), and all of them
within BUDGET bytes, dropping the oldest ended sessions first (a live one is never dropped).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from voiceclient.protocol.errors import ProtocolError
from voiceclient.report.page import page_template
from voiceclient.server.event_log import EventLog
from voiceclient.server.faults import FaultSpec
from voiceclient.server.session import ServerSession

KEPT = 32  # sessions kept for the console (running and ended)
BUDGET = 8 * 1024 * 1024  # bytes of event logs kept across sessions: four whole PER_SESSION logs, or 32 demo calls
Line = str  # one line of a log, as its JSON text


@dataclass
class Watched:
    """One session as the console shows it. It holds what its summary needs, not the session: an ended session's
    conversation and audio are the server's `history`'s to keep or let go (`app.HISTORY_BUDGET`)."""

    id: str
    transport: str
    created_at: float
    faults: list[FaultSpec]
    t0: float
    log: EventLog = field(default_factory=EventLog)
    subscribers: set[asyncio.Queue[Line | None]] = field(default_factory=set)
    speaking: bool = False
    responses: set[str] = field(default_factory=set)
    playing: bool = False
    turns: int = 0
    injected: list[str] = field(default_factory=list)
    ended_at: float | None = None
    recording: Path | None = None  # `serve --record-dir`: the call's stereo recording, on this log's clock
    last: str | None = None  # the type of the last event
    on_grown: Callable[[], None] | None = None  # the console's budget, checked as the log grows

    def seen(self, direction: str, event: dict[str, Any]) -> None:
        t = round(time.monotonic() - self.t0, 4)
        text = self.log.append({"t": t, "dir": direction, "event": event})
        kind = self.last = event.get("type")
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
            self.injected.append(f"{event.get('action')} at {t:.1f} s")
        for queue in list(self.subscribers):
            queue.put_nowait(text)
        if self.on_grown is not None:
            self.on_grown()

    def ended(self) -> None:
        self.ended_at = time.monotonic()
        self.speaking = self.playing = False
        for queue in list(self.subscribers):
            queue.put_nowait(None)

    def summary(self) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return {
            "id": self.id,
            "transport": self.transport,
            "created_at": self.created_at,
            "ended": self.ended_at is not None,
            "seconds": round(end - self.t0, 1),
            "events": len(self.log),
            "not_kept": self.log.not_kept,
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
                for f in self.faults
            ],
            "injected": self.injected,
            "last": self.last,
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
        watched = Watched(
            session.id,
            session.transport,
            session.created_at,
            list(session.faults),
            time.monotonic(),
            on_grown=self.trim,
        )
        session.watchers.append(watched.seen)
        self.watched[session.id] = watched
        self.trim()
        return watched

    def ended(self, session: ServerSession) -> None:
        watched = self.watched.get(session.id)
        if watched is not None and watched.ended_at is None:
            watched.ended()
            session.watchers.remove(watched.seen)  # an ended session holds no log (nor a log its session)

    def size(self) -> int:
        """Bytes of the event logs kept."""
        return sum(w.log.size for w in self.watched.values())

    def trim(self) -> None:
        """Drop the oldest ended sessions while over KEPT sessions or BUDGET bytes."""
        while len(self.watched) > KEPT or (len(self.watched) > 1 and self.size() > BUDGET):
            oldest = next((k for k, w in self.watched.items() if w.ended_at is not None), None)
            if oldest is None:
                break
            del self.watched[oldest]

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
        queue: asyncio.Queue[Line | None] = asyncio.Queue()
        backlog, not_kept = list(watched.log), watched.log.not_kept
        if watched.ended_at is None:
            watched.subscribers.add(queue)
        try:
            if not_kept:
                await response.write(f"event: not_kept\ndata: {json.dumps({'count': not_kept})}\n\n".encode())
            for line in backlog:
                await response.write(f"data: {line}\n\n".encode())
            while watched.ended_at is None or not queue.empty():
                live = await queue.get()
                if live is None:
                    break
                await response.write(f"data: {live}\n\n".encode())
            await response.write(b"event: ended\ndata: {}\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watched.subscribers.discard(queue)
        return response

    async def event_log(self, request: web.Request) -> web.Response:
        watched = self._find(request)
        body = "".join(line + "\n" for line in watched.log)
        return web.Response(
            text=body,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": f'inline; filename="{watched.id}.events.jsonl"'},
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
        lines = await asyncio.to_thread(watched.log.parsed)
        if not lines:
            raise ProtocolError("no events yet", "no_events", status=404)
        lines.append(
            {
                "t": lines[-1]["t"],
                "dir": "local",
                "event": {"type": "conversation.history", "call_id": watched.id},
            }
        )
        path = self._recording(watched)
        timeline = await asyncio.to_thread(
            lambda: Builder(lines, read_recording(path) if path is not None else None).build()
        )
        return web.Response(text=render(timeline, f"{watched.id} (the server's view)"), content_type="text/html")
