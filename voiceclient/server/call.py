"""One call on the embedded server: the peer, the conversation, the input audio and its turns, client events.

Client messages and VAD decisions go through one queue with one consumer, so the server handles them in
arrival order, as the real API does. How responses are produced, played out, cancelled and truncated is in
responses.py (`ResponseMixin`, the other half of `ServerCall`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any
from collections.abc import Callable

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from voiceclient.tasks import cancel_and_wait
from voiceclient.audio.format import API_RATE, RTP_RATE, samples_to_ms
from voiceclient.rtc.jitter import use_immediate_jitter_buffer
from voiceclient.audio.resample import Resampler
from voiceclient.audio.sources import PlayoutQueue
from voiceclient.audio.tracks import InboundReader, OutboundTrack
from voiceclient.protocol import events as ev
from voiceclient.protocol.events import new_id
from voiceclient.server.responders import McpApprovalRequest, Responder
from voiceclient.server.responses import ActiveResponse, ResponseMixin, words
from voiceclient.server.session_rules import SessionError, apply_update
from voiceclient.server.sideband import Sideband
from voiceclient.server.speech import SpeechBackends
from voiceclient.server.vad import TurnDetector, VadEvent

log = logging.getLogger(__name__)
CHANNEL_LABEL = "oai-events"
MANUAL_BUFFER_MS = 15 * 60 * 1000  # input audio kept without turn detection before the oldest is dropped
MIN_COMMIT_MS = 100
CONNECT_TIMEOUT = 30  # seconds from the SDP answer to an open data channel


class InvalidOffer(ValueError):
    pass


class ServerCall(ResponseMixin):
    def __init__(self, call_id: str, session: dict[str, Any], responder: Responder,
                 on_closed: Callable[["ServerCall"], None] | None = None,
                 max_seconds: float = 3600.0, speech: SpeechBackends | None = None,
                 vad: str = "auto") -> None:
        self.id = call_id
        self.speech = speech
        self.session = session
        self.responder = responder
        self.on_closed = on_closed
        self.created_at = time.time()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.playout = PlayoutQueue(on_start=self._on_playout_start, on_drain=self._on_playout_drain)
        self.track = OutboundTrack(self.playout)
        self.channel: Any = None
        self.reader: InboundReader | None = None
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.items: list[dict[str, Any]] = []
        self.item_audio: dict[str, np.ndarray] = {}
        self.vad = TurnDetector(self._turn_detection(), speech.vad() if speech and vad != "energy" else None)
        self.transcripts: dict[str, asyncio.Task[str | None]] = {}  # user item id -> its transcription
        self.item_text: dict[str, str] = {}  # assistant item id -> the full text it was to say
        self._idle_timer: asyncio.TimerHandle | None = None
        self.speculative: tuple[str, asyncio.Task[str | None]] | None = None  # (speech item, early transcript)
        self.buffer: list[np.ndarray] = []
        self.buffer_start_ms = 0
        self.audio_samples = 0  # 24 kHz samples of input audio received in this session
        self.speech_item: str | None = None
        self.speech_start_ms = 0
        self.active: ActiveResponse | None = None
        self.responses: dict[str, ActiveResponse] = {}
        self.last_response_id: str | None = None
        self.turn_index = 0
        self.answered_upto = 0  # index into self.items already answered by a response
        self.audio_started = False
        self.events_sent = 0
        self.sidebands: set[Sideband] = set()
        self.call_origins: dict[str, Any] = {}  # function call_id -> what the responder attached to it
        self.mcp_pending: dict[str, McpApprovalRequest] = {}  # approval request item id -> the request
        self.mcp_listed: set[str] = set()
        self.produced: set[str] = set()  # ids of the items responses (or the server) created
        self.closed = asyncio.Event()
        self._resampler = Resampler(RTP_RATE, API_RATE)
        self._consumer: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max_seconds, lambda: asyncio.ensure_future(self.close()))
        # A client that got its answer but never connects (a crashed page, a blocked port) must not hold the call.
        self._connect_timer: asyncio.TimerHandle | None = loop.call_later(
            CONNECT_TIMEOUT, lambda: asyncio.ensure_future(self._abandoned()))
        self._closing = False

        @self.pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            if channel.label != CHANNEL_LABEL or self.channel is not None:
                log.info("call %s: ignoring data channel %r", self.id, channel.label)
                return
            self.channel = channel
            channel.on("message", lambda m: self.queue.put_nowait(("client", m)))
            if channel.readyState == "open":
                self._on_open()
            else:
                channel.on("open", self._on_open)

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self.reader is None:
                self.reader = InboundReader(track, [self._on_audio])
                self.reader.start()

        @self.pc.on("connectionstatechange")
        async def _on_state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    # ------------------------------------------------------------------------------------------ setup
    async def answer(self, offer_sdp: str) -> str:
        if "m=audio" not in offer_sdp:
            raise InvalidOffer("the offer has no audio m-line")
        if "webrtc-datachannel" not in offer_sdp:
            raise InvalidOffer("the offer has no data channel (create `oai-events` before the offer)")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on a malformed SDP
            raise InvalidOffer(f"{type(exc).__name__}: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                use_immediate_jitter_buffer(transceiver.receiver)
        self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._consumer = asyncio.ensure_future(self._consume())
        return self.pc.localDescription.sdp

    def _on_open(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.send({"type": "session.created", "session": self.public_session()})
        self._list_mcp_tools()

    def public_session(self) -> dict[str, Any]:
        """The session as sent to the client: MCP credentials are never echoed back."""
        out = json.loads(json.dumps(self.session))
        for tool in out.get("tools") or []:
            if tool.get("type") == "mcp":
                tool.pop("authorization", None)
                if isinstance(tool.get("headers"), dict):
                    tool["headers"] = {k: "[redacted]" for k in tool["headers"]}
        return out

    def _list_mcp_tools(self) -> None:
        """`mcp_list_tools.*` for each MCP server the session gained (the tools are the scenario's)."""
        names_of = getattr(self.responder, "mcp_tool_names", lambda label: [])
        for tool in self.session.get("tools") or []:
            label = tool.get("server_label")
            if tool.get("type") != "mcp" or label in self.mcp_listed:
                continue
            self.mcp_listed.add(label)
            item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": label,
                                    "tools": []}
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            self.produced.add(item["id"])
            self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
            self.send({"type": "mcp_list_tools.in_progress", "item_id": item["id"]})
            allowed = tool.get("allowed_tools")
            names = [n for n in names_of(label) if not isinstance(allowed, list) or n in allowed]
            item["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in names]
            self.send({"type": "mcp_list_tools.completed", "item_id": item["id"]})
            self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    # ------------------------------------------------------------------------------------------ output
    def send(self, event: dict[str, Any]) -> None:
        """To the data channel and every sideband, in order."""
        if "event_id" not in event:
            event = {"event_id": new_id("event"), **event}
        text = json.dumps(event, separators=(",", ":"))
        for sideband in list(self.sidebands):
            sideband.push(text)
        if self.channel is None or self.channel.readyState != "open":
            log.debug("call %s: channel not open, dropped %s", self.id, event["type"])
            return
        self.channel.send(text)
        self.events_sent += 1

    def send_to(self, sideband: Sideband, event: dict[str, Any]) -> None:
        sideband.push(json.dumps({"event_id": new_id("event"), **event}, separators=(",", ":")))

    def error(self, message: str, code: str | None = None, param: str | None = None,
              event_id: str | None = None, type: str = "invalid_request_error") -> None:
        self.send({"type": "error", "error": {"type": type, "code": code, "message": message, "param": param,
                                              "event_id": event_id}})

    # ------------------------------------------------------------------------------------------ input audio
    def _turn_detection(self) -> dict[str, Any] | None:
        return self.session["audio"]["input"]["turn_detection"]

    def _on_audio(self, pcm48: np.ndarray, pts: int, arrival: float) -> None:
        pcm = self._resampler.process(pcm48)
        if not pcm.size:
            return
        self.buffer.append(pcm)
        self.audio_samples += pcm.size
        for vad_event in self.vad.feed(pcm):
            self.queue.put_nowait(("vad", vad_event))
        if not self.vad.speaking and self.speech_item is None:
            keep = MANUAL_BUFFER_MS if self._turn_detection() is None else max(self.vad.prefix_ms, 0) + 200
            self._trim_buffer(keep)

    def _now_ms(self) -> int:
        return samples_to_ms(self.audio_samples, API_RATE)

    def _trim_buffer(self, keep_ms: int) -> None:
        total = sum(c.size for c in self.buffer)
        excess = total - keep_ms * API_RATE // 1000
        while excess > 0 and self.buffer and self.buffer[0].size <= excess:
            excess -= self.buffer[0].size
            self.buffer_start_ms += samples_to_ms(self.buffer[0].size, API_RATE)
            self.buffer.pop(0)

    def _take_buffer(self, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        pcm = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int16)
        lo = 0 if start_ms is None else max(0, (start_ms - self.buffer_start_ms) * API_RATE // 1000)
        hi = pcm.size if end_ms is None else max(lo, (end_ms - self.buffer_start_ms) * API_RATE // 1000)
        taken = pcm[lo:hi]
        rest = pcm[hi:]
        self.buffer = [rest] if rest.size else []
        self.buffer_start_ms = self._now_ms() - samples_to_ms(rest.size, API_RATE)
        return taken

    # ------------------------------------------------------------------------------------------ consumer
    async def _consume(self) -> None:
        while True:
            kind, payload = await self.queue.get()
            try:
                if kind == "client":
                    await self._on_client_message(payload)
                elif kind == "idle":
                    await self._on_idle_timeout()
                else:
                    await self._on_vad(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the call goes on whatever one event did
                log.exception("call %s: handling %s failed", self.id, kind)
                self.error(f"The server failed to handle the event: {exc}", "server_error", type="server_error")

    async def _on_vad(self, vad_event: VadEvent) -> None:
        td = self._turn_detection()
        if td is None:
            return
        if vad_event.kind == "paused":
            self._speculate(vad_event.ms)
            return
        if vad_event.kind == "resumed":
            self.speculative = None
            return
        if vad_event.kind == "started":
            self._cancel_idle_timer()
            self.speech_item = new_id("item")
            self.speech_start_ms = vad_event.ms
            self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": vad_event.ms,
                       "item_id": self.speech_item})
            if td.get("interrupt_response", True):
                await self.interrupt("turn_detected")
            return
        item_id = self.speech_item or new_id("item")
        self.speech_item = None
        self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": vad_event.ms, "item_id": item_id})
        pcm = self._take_buffer(self.speech_start_ms, vad_event.ms)
        self._commit(pcm, item_id)
        if td.get("create_response", True):
            if self.active is None:
                self.start_response(None)
            else:
                log.info("call %s: turn ended while response %s runs; not starting another", self.id,
                         self.active.id)

    def _commit(self, pcm: np.ndarray, item_id: str) -> None:
        previous = self.items[-1]["id"] if self.items else None
        self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.item_audio[item_id] = pcm
        self._add_item(item, previous)
        self._transcribe(item)

    def _wants_transcripts(self) -> bool:
        return self.speech is not None and self.speech.stt is not None and (
            getattr(self.responder, "listens", False)
            or self.session["audio"]["input"].get("transcription") is not None)

    def _speculate(self, pause_ms: int) -> None:
        """The user paused: transcribe what was said so far while the silence runs on (kept if they stop)."""
        if not self._wants_transcripts() or self.speech_item is None:
            return
        assert self.speech is not None
        pcm = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int16)
        lo = max(0, (self.speech_start_ms - self.buffer_start_ms) * API_RATE // 1000)
        hi = max(lo, (pause_ms - self.buffer_start_ms) * API_RATE // 1000)
        self.speculative = (self.speech_item, asyncio.ensure_future(self.speech.transcribe(pcm[lo:hi])))

    def _transcribe(self, item: dict[str, Any]) -> None:
        """Transcribe a committed user turn once (for the agent and, when the session asks, for the client)."""
        wanted = self.session["audio"]["input"].get("transcription") is not None
        if self.speech is None or (self.speech.stt is None and not wanted):
            return
        task = asyncio.ensure_future(self._run_transcription(item, wanted))
        self.transcripts[item["id"]] = task

    async def _run_transcription(self, item: dict[str, Any], announce: bool) -> str | None:
        assert self.speech is not None
        started = time.monotonic()
        pcm = self.item_audio.get(item["id"], np.zeros(0, np.int16))
        early = self.speculative[1] if self.speculative and self.speculative[0] == item["id"] else None
        self.speculative = None
        try:
            if self.speech.stt is None:
                raise RuntimeError("no speech-to-text backend is installed (pip install 'voiceclient[agent]')")
            text = (await early if early is not None else await self.speech.transcribe(pcm)) or ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("call %s: transcription failed: %s", self.id, exc)
            if announce:
                self.send({"type": "conversation.item.input_audio_transcription.failed", "item_id": item["id"],
                           "content_index": 0, "error": {"type": "transcription_error",
                                                         "code": "transcription_unavailable", "message": str(exc),
                                                         "param": None}})
            return None
        item["content"][0]["transcript"] = text
        if announce:
            for word in words(text):
                self.send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item["id"],
                           "content_index": 0, "delta": word})
            self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item["id"],
                       "content_index": 0, "transcript": text,
                       "usage": {"type": "duration", "seconds": round(pcm.size / API_RATE, 3)}})
        log.info("call %s: heard %r (%.2f s to transcribe)", self.id, text, time.monotonic() - started)
        return text

    def _add_item(self, item: dict[str, Any], previous: str | None) -> None:
        if previous is None or not self.items or previous == self.items[-1]["id"]:
            self.items.append(item)
        elif previous == "root":
            self.items.insert(0, item)
            self.answered_upto += 1
        else:
            index = next(i for i, it in enumerate(self.items) if it["id"] == previous)
            self.items.insert(index + 1, item)
            if index < self.answered_upto:
                self.answered_upto += 1
        self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    # ------------------------------------------------------------------------------------------ client events
    async def _on_client_message(self, message: str | bytes) -> None:
        event = ev.parse_client_event(message)
        if isinstance(event, ev.MalformedEvent):
            if event.event_type is None:
                self.error(f"Invalid client event: {event.reason}.", "invalid_json", None, event.event_id)
            else:
                param = event.reason.split(":", 1)[0]
                code = "missing_required_parameter" if "required" in event.reason else "invalid_value"
                self.error(f"Invalid '{event.event_type}' event: {event.reason}.", code, param or None,
                           event.event_id)
            return
        if isinstance(event, ev.UnknownEvent):
            self.error(f"Invalid value: '{event.type}'. Supported values are: "
                       f"{', '.join(sorted(ev.CLIENT_EVENT_TYPES))}.", "invalid_value", "type", event.event_id)
            return
        handler = getattr(self, "_on_" + event.type.replace(".", "_"))
        await handler(event)

    async def _on_session_update(self, event: ev.SessionUpdate) -> None:
        raw = json.loads(event.model_dump_json(exclude_unset=True))["session"]
        try:
            self.session = apply_update(self.session, raw, audio_started=self.audio_started)
        except SessionError as exc:
            self.error(exc.message, exc.code, exc.param, event.event_id)
            return
        self.vad.configure(self._turn_detection())
        self.send({"type": "session.updated", "session": self.public_session()})
        self._list_mcp_tools()

    async def _on_input_audio_buffer_append(self, event: ev.InputAudioBufferAppend) -> None:
        try:
            pcm = np.frombuffer(base64.b64decode(event.audio, validate=True), dtype="<i2").astype(np.int16)
        except (ValueError, TypeError):
            self.error("Invalid 'audio': not base64 PCM16.", "invalid_value", "audio", event.event_id)
            return
        self.buffer.append(pcm)
        self.audio_samples += pcm.size

    async def _on_input_audio_buffer_commit(self, event: ev.InputAudioBufferCommit) -> None:
        buffered = sum(c.size for c in self.buffer)
        if buffered < MIN_COMMIT_MS * API_RATE // 1000:
            self.error(f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                       f"of audio, but buffer only has {samples_to_ms(buffered, API_RATE)}ms of audio.",
                       "input_audio_buffer_commit_empty", None, event.event_id)
            return
        item_id = self.speech_item or new_id("item")
        self.speech_item = None
        self.vad.reset()
        self._commit(self._take_buffer(), item_id)

    async def _on_input_audio_buffer_clear(self, event: ev.InputAudioBufferClear) -> None:
        self._take_buffer()
        self.speech_item = None
        self.vad.reset()
        self.send({"type": "input_audio_buffer.cleared"})

    async def _on_output_audio_buffer_clear(self, event: ev.OutputAudioBufferClear) -> None:
        if not self.clear_output():
            if self.last_response_id is None:
                self.error("There is no output audio to clear.", "output_audio_buffer_empty", None, event.event_id)
            else:
                self.send({"type": "output_audio_buffer.cleared", "response_id": self.last_response_id})

    async def _on_conversation_item_create(self, event: ev.ConversationItemCreate) -> None:
        item = event.item.model_dump(mode="json", exclude_none=True)
        problem = self._check_item(item)
        if problem:
            self.error(problem[0], "invalid_value", problem[1], event.event_id)
            return
        previous = event.previous_item_id
        if previous is not None and previous != "root" and not any(it["id"] == previous for it in self.items):
            self.error(f"Previous item with id '{previous}' not found.", "item_not_found", "previous_item_id",
                       event.event_id)
            return
        if item.get("type") == "mcp_approval_response" and item["approval_request_id"] not in self.mcp_pending:
            self.error(f"No MCP approval request with id '{item['approval_request_id']}'.", "item_not_found",
                       "item.approval_request_id", event.event_id)
            return
        if any(it["id"] == item.get("id") for it in self.items):
            self.error(f"Item with id '{item['id']}' already exists.", "item_already_exists", "item.id",
                       event.event_id)
            return
        item.setdefault("id", new_id("item"))
        if not item["type"].startswith("mcp_"):
            item["object"] = "realtime.item"
            item["status"] = "completed"
        if previous is None and self.items:
            previous = self.items[-1]["id"]
        self._add_item(item, previous)

    @staticmethod
    def _check_item(item: dict[str, Any]) -> tuple[str, str] | None:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system"):
                return f"Invalid 'item.role': {role!r}.", "item.role"
            allowed = {"user": {"input_text", "input_audio", "input_image"}, "system": {"input_text"},
                       "assistant": {"output_text", "output_audio", "text", "audio"}}[role]
            for i, part in enumerate(item.get("content") or []):
                if part.get("type") not in allowed:
                    return f"Invalid content type {part.get('type')!r} for a {role} message.", f"item.content[{i}].type"
            if not item.get("content"):
                return "A message item needs content.", "item.content"
        elif kind == "function_call_output":
            if not item.get("call_id") or item.get("output") is None:
                return "A function_call_output item needs call_id and output.", "item.call_id"
        elif kind == "function_call":
            if not item.get("call_id") or not item.get("name"):
                return "A function_call item needs call_id and name.", "item.call_id"
        elif kind == "mcp_approval_response":
            if not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool):
                return "An mcp_approval_response needs approval_request_id and approve.", "item.approval_request_id"
        else:
            return f"Invalid 'item.type': {kind!r}.", "item.type"
        return None

    async def _on_conversation_item_retrieve(self, event: ev.ConversationItemRetrieve) -> None:
        item = next((it for it in self.items if it["id"] == event.item_id), None)
        if item is None:
            self.error(f"Item with id '{event.item_id}' not found.", "item_not_found", "item_id", event.event_id)
            return
        out = json.loads(json.dumps(item))
        audio = self.item_audio.get(item["id"])
        if audio is not None and out.get("role") == "user":
            out["content"][0]["audio"] = base64.b64encode(audio.astype("<i2").tobytes()).decode()
        self.send({"type": "conversation.item.retrieved", "item": out})

    async def _on_conversation_item_delete(self, event: ev.ConversationItemDelete) -> None:
        index = next((i for i, it in enumerate(self.items) if it["id"] == event.item_id), None)
        if index is None:
            self.error(f"Item with id '{event.item_id}' not found.", "item_not_found", "item_id", event.event_id)
            return
        self.items.pop(index)
        self.item_audio.pop(event.item_id, None)
        if index < self.answered_upto:
            self.answered_upto -= 1
        self.send({"type": "conversation.item.deleted", "item_id": event.item_id})

    async def _on_conversation_item_truncate(self, event: ev.ConversationItemTruncate) -> None:
        item = next((it for it in self.items if it["id"] == event.item_id), None)
        if item is None or item.get("role") != "assistant":
            self.error(f"Item with id '{event.item_id}' is not an assistant message.", "invalid_value", "item_id",
                       event.event_id)
            return
        length_ms = samples_to_ms(self.item_audio.get(item["id"], np.zeros(0)).size, RTP_RATE)
        if event.audio_end_ms > length_ms:
            self.error(f"Audio content of {length_ms}ms is already shorter than {event.audio_end_ms}ms.",
                       "invalid_value", "audio_end_ms", event.event_id)
            return
        self._truncate(item, event.audio_end_ms, length_ms)

    async def _on_response_create(self, event: ev.ResponseCreate) -> None:
        if self.active is not None:
            self.error(f"Conversation already has an active response in progress: {self.active.id}. Wait until "
                       "the response is finished before creating a new one.",
                       "conversation_already_has_active_response", None, event.event_id)
            return
        self.start_response(event.response)

    async def _on_response_cancel(self, event: ev.ResponseCancel) -> None:
        active = self.active
        if active is None or (event.response_id and event.response_id != active.id):
            self.error("Cancellation failed: no active response found.", "response_cancel_not_active", None,
                       event.event_id)
            return
        await self.cancel_response(active, "client_cancelled")

    # ------------------------------------------------------------------------------------------ idle timeout
    def _arm_idle_timer(self) -> None:
        td = self._turn_detection() or {}
        timeout = td.get("idle_timeout_ms")
        self._cancel_idle_timer()
        if td.get("type") == "server_vad" and timeout and self.active is None:
            self._idle_timer = asyncio.get_running_loop().call_later(
                timeout / 1000, lambda: self.queue.put_nowait(("idle", None)))

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    async def _on_idle_timeout(self) -> None:
        """`idle_timeout_ms` after playback with no user speech: commit an empty turn and respond."""
        self._idle_timer = None
        if self.active is not None or self.vad.speaking or self._turn_detection() is None:
            return
        item_id = new_id("item")
        now = self._now_ms()
        self.send({"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": now, "audio_end_ms": now,
                   "item_id": item_id})
        self._take_buffer()
        self._commit(np.zeros(0, np.int16), item_id)
        self.start_response(None)

    # ------------------------------------------------------------------------------------------ teardown
    async def _abandoned(self) -> None:
        if self.channel is None or self.channel.readyState != "open":
            log.info("call %s: the client never opened oai-events within %d s; ending the call", self.id,
                     CONNECT_TIMEOUT)
            await self.close()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._timer.cancel()
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        self._cancel_idle_timer()
        for task in self.transcripts.values():
            task.cancel()
        if self.active is not None:
            await self.cancel_response(self.active, "client_cancelled")
        if self._consumer is not None and self._consumer is not asyncio.current_task():
            await cancel_and_wait(self._consumer)
        if self.reader is not None:
            await self.reader.stop()
        self.track.stop()
        await self.pc.close()
        for sideband in list(self.sidebands):
            sideband.close()
        self.closed.set()
        if self.on_closed is not None:
            self.on_closed(self)
