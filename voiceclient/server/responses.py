"""How the embedded server answers: the response engine. A response's full event sequence, its playout,
cancellation and truncation.

A response runs as an owned task so `response.cancel` and barge-in can reach it while it thinks; its audio goes
to the session's `AudioOutput`. Over WebRTC that is the playout queue, which is what
`output_audio_buffer.started/stopped/cleared` and the server's own truncation are measured against; over a
WebSocket it is audio delta events, the client plays and truncates, and none of those events exist. The engine
works on the conversation it is given and sends through the session context; it knows nothing of transports, and
reaches the wire protocol only through the session's dialect (`server/dialect.py`): `self.dialect.response_done(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE, samples_to_ms
from voiceclient.audio.resample import resample
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.server.context import Send, SessionContext
from voiceclient.server.conversation import Conversation, ItemAudio, word_offsets
from voiceclient.server.dialect import Dialect, ResponseRequest
from voiceclient.server.playout import AudioOutput
from voiceclient.server.responders import (
    FunctionCall,
    McpApprovalRequest,
    McpCall,
    ResponsePlan,
    Speech,
    TurnContext,
    mcp_tool_names,
    placeholder_audio,
)
from voiceclient.tasks import cancel_and_wait

log = logging.getLogger(__name__)


async def _once(parts: list[tuple[str, np.ndarray | None]]) -> AsyncIterator[tuple[str, np.ndarray | None]]:
    for part in parts:
        yield part


@dataclass
class ActiveResponse:
    id: str
    obj: dict[str, Any]
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    failure: ProtocolError | None = None  # the server cut it short (shutting down): it ends `failed`
    audio_items: list[tuple[dict[str, Any], int, int]] = field(default_factory=list)  # item, start, end
    queued: int = 0  # samples queued for output (at the output's rate)
    cleared: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False  # `response.done` sent


class ResponseEngine:
    def __init__(
        self,
        ctx: SessionContext,
        conversation: Conversation,
        output: AudioOutput,
        transcript_of: Callable[[str], Awaitable[str | None]],
        input_seconds: Callable[[], float],
        on_audio_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        self.ctx = ctx
        self.conversation = conversation
        self.output = output
        self.transcript_of = transcript_of  # the user turn's transcript, for responders that listen
        self.input_seconds = input_seconds  # input audio so far (for the usage estimate)
        self.on_audio_stopped = on_audio_stopped  # the assistant's audio has finished playing (not cleared)
        self.active: ActiveResponse | None = None
        self.responses: dict[str, ActiveResponse] = {}
        self.last_response_id: str | None = None
        self.turn_index = 0
        self.audio_started = False  # assistant audio exists (the voice can no longer change)
        self.call_origins: dict[str, Any] = {}  # function call_id -> what the responder attached to it
        self.mcp_pending: dict[str, McpApprovalRequest] = {}  # approval request item id -> the request
        self.mcp_listed: set[str] = set()
        output.on_start = self._on_playout_start
        output.on_drain = self._on_playout_drain

    @property
    def send(self) -> Send:
        return self.ctx.send

    @property
    def dialect(self) -> Dialect:
        return self.ctx.dialect

    @property
    def session(self) -> dict[str, Any]:
        return self.ctx.session

    def _truncate(self, item: dict[str, Any], end_ms: int) -> None:
        self.conversation.cut(item, end_ms)
        self.send(self.dialect.item_truncated(item["id"], end_ms))

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """A client's `conversation.item.truncate` (raises ProtocolError when it cannot be applied)."""
        self.conversation.truncate(item_id, audio_end_ms)
        self.send(self.dialect.item_truncated(item_id, audio_end_ms))

    # ------------------------------------------------------------------------------------------ MCP
    def list_mcp_tools(self) -> None:
        """`mcp_list_tools.*` for each MCP server the session gained (the tools are the responder's)."""
        for tool in self.session.get("tools") or []:
            label = tool.get("server_label")
            if tool.get("type") != "mcp" or label in self.mcp_listed:
                continue
            self.mcp_listed.add(label)
            item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": label, "tools": []}
            previous = self.conversation.add_output(item)
            self.send(self.dialect.item_added(item, previous))
            self.send(self.dialect.mcp_tools_listing(item["id"]))
            allowed = tool.get("allowed_tools")
            offered = mcp_tool_names(self.ctx.responder, label)
            names = [n for n in offered if not isinstance(allowed, list) or n in allowed]
            item["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in names]
            self.send(self.dialect.mcp_tools_listed(item["id"]))
            self.send(self.dialect.item_done(item, previous))

    # ------------------------------------------------------------------------------------------ responses
    def _context(self) -> TurnContext:
        """What the next response answers: MCP approval decisions, else a new user message (a user turn, even if
        tool outputs came in meanwhile), else the function outputs that arrived since the last response."""
        new = self.conversation.take_unanswered()
        ctx = TurnContext(turn_index=self.turn_index)
        tools = self.session.get("tools") or []
        ctx.mcp_tools = {t["server_label"]: t for t in tools if t.get("type") == "mcp"}
        ctx.function_tools = {t["name"] for t in tools if t.get("type") == "function" and "name" in t}
        for it in new:
            if it.get("type") == "mcp_approval_response":
                request = self.mcp_pending.pop(it["approval_request_id"], None)
                if request is not None:
                    request.call.approval_request_id = it["approval_request_id"]
                    ctx.mcp_decisions.append((request, it["approve"], it.get("reason")))
        if ctx.mcp_decisions:
            return ctx
        users = [it for it in new if it.get("type") == "message" and it.get("role") == "user"]
        if users:
            last = users[-1]
            texts = [p.get("text") for p in last.get("content", []) if p.get("type") == "input_text"]
            if texts:
                ctx.user_text = " ".join(t for t in texts if t)
            audio = self.conversation.audio.get(last["id"])
            ctx.user_audio = audio.pcm if audio is not None else None
            ctx.user_item_id = last["id"]
            if ctx.user_text is not None:
                ctx.transcript = ctx.user_text
            ctx.earlier = self.conversation.user_words(last["id"])
            # A conversation carried over from an earlier session goes on where it was, not at its first turn.
            ctx.turn_index = self.turn_index + self.conversation.carried_turns(last["id"])
            self.turn_index += 1
            return ctx
        # In the order the model made the calls, not the order the tools happened to finish in.
        order = {
            it.get("call_id"): i for i, it in enumerate(self.conversation.items) if it.get("type") == "function_call"
        }
        outputs = sorted(
            (it for it in new if it.get("type") == "function_call_output"),
            key=lambda it: order.get(it["call_id"], len(order)),
        )
        ctx.function_outputs = [
            (self.conversation.function_name(it["call_id"]) or "unknown", it["output"]) for it in outputs
        ]
        ctx.origin = next(
            (self.call_origins[it["call_id"]] for it in outputs if self.call_origins.get(it["call_id"]) is not None),
            None,
        )
        if not outputs:
            self.turn_index += 1
        return ctx

    def start(self, params: ResponseRequest | None) -> ActiveResponse:
        """A new response (the caller has checked that none is active)."""
        modalities = (
            params.output_modalities if params and params.output_modalities else self.session["output_modalities"]
        )
        resp_id = new_id("resp")
        conversation = None if params and params.conversation == "none" else "conv_" + self.ctx.id.split("_", 1)[-1]
        obj = {
            "object": "realtime.response",
            "id": resp_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": conversation,
            "output_modalities": modalities,
            "max_output_tokens": (
                params.max_output_tokens if params and params.max_output_tokens else self.session["max_output_tokens"]
            ),
            "audio": {
                "output": {
                    "format": self.session["audio"]["output"]["format"],
                    "voice": self.session["audio"]["output"]["voice"],
                }
            },
            "usage": None,
            "metadata": params.metadata if params else None,
        }
        active = ActiveResponse(resp_id, obj)
        self.active = active
        self.responses[resp_id] = active
        self.last_response_id = resp_id
        ctx = self._context()
        # Announced here, not in the task: a cancel that comes before the task first runs still ends a response
        # the client has seen created (`cancel` then sends its `response.done`).
        self.send(self.dialect.response_created({**obj, "output": []}))
        active.task = self.ctx.tasks.spawn(self._run_response(active, ctx, modalities == ["audio"]), resp_id)
        return active

    async def _plan(self, ctx: TurnContext) -> ResponsePlan:
        """Give the responder what it needs (the user's transcript, for responders that listen) and plan."""
        if self.ctx.listening_responder and ctx.user_item_id is not None:
            heard = await self.transcript_of(ctx.user_item_id)
            if heard is not None:
                ctx.transcript = heard
        plan = self.ctx.responder.plan(ctx)
        return plan if isinstance(plan, ResponsePlan) else await plan

    async def _run_response(self, resp: ActiveResponse, ctx: TurnContext, audio: bool) -> None:
        try:
            plan = await self._plan(ctx)
            if plan.delay_ms:
                await asyncio.sleep(plan.delay_ms / 1000)
            for index, output in enumerate(plan.outputs):
                if isinstance(output, FunctionCall):
                    self._emit_function_call(resp, index, output)
                elif isinstance(output, McpApprovalRequest):
                    self._emit_mcp_approval_request(resp, index, output)
                elif isinstance(output, McpCall):
                    await self._emit_mcp_call(resp, index, output)
                else:
                    await self._emit_message(resp, index, output, audio)
            resp.obj["status"] = "completed"
        except asyncio.CancelledError:
            self._cut_short(resp)
        except Exception as exc:  # a responder bug ends this response, visibly, and never the session
            log.exception("session %s: response %s failed", self.ctx.id, resp.id)
            resp.obj["status"] = "failed"
            resp.obj["status_details"] = {
                "type": "failed",
                "error": {"type": "server_error", "code": type(exc).__name__},
            }
        finally:
            self._finish(resp)

    @staticmethod
    def _cut_short(resp: ActiveResponse) -> None:
        """Cancelled: `failed` when the server cut it short (shutting down), else `cancelled` with the reason."""
        if resp.failure is not None:
            resp.obj["status"] = "failed"
            resp.obj["status_details"] = {"type": "failed", "error": resp.failure.event()["error"]}
        else:
            resp.obj["status"] = "cancelled"
            resp.obj["status_details"] = {"type": "cancelled", "reason": resp.cancel_reason or "client_cancelled"}

    def _finish(self, resp: ActiveResponse) -> None:
        """`response.done`, once, and the response is no longer active."""
        if resp.finished:
            return
        resp.finished = True
        resp.obj["usage"] = self._usage(resp)
        self.send(self.dialect.response_done(resp.obj))
        self.ctx.on_response_done()
        if self.active is resp:
            self.active = None
        self.output.close(resp.id)

    def _usage(self, resp: ActiveResponse) -> dict[str, Any]:
        text = sum(len(json.dumps(it)) // 4 for it in resp.obj["output"])
        audio_out = int(resp.queued / self.output.rate * 10)
        audio_in = int(self.input_seconds() * 10)
        text_in = sum(len(json.dumps(it)) // 4 for it in self.conversation.items) // 2
        return {
            "total_tokens": text + audio_out + audio_in + text_in,
            "input_tokens": audio_in + text_in,
            "output_tokens": text + audio_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text, "audio_tokens": audio_out},
        }

    def _output_item(self, resp: ActiveResponse, index: int, item: dict[str, Any]) -> str | None:
        resp.obj["output"].append(item)
        previous = self.conversation.add_output(item)
        self.send(self.dialect.output_item_added(resp.id, index, item, previous))
        return previous

    def _finish_item(
        self, resp: ActiveResponse, index: int, item: dict[str, Any], previous: str | None, status: str
    ) -> None:
        item["status"] = status
        self.send(self.dialect.output_item_done(resp.id, index, item, previous))

    async def _emit_message(self, resp: ActiveResponse, index: int, speech: Speech, audio: bool) -> None:
        item_id = new_id("item")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        previous = self._output_item(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item_id, "output_index": index, "content_index": 0}
        said_words: list[str] = []
        empty = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        self.send(self.dialect.content_part_added(ids, empty))
        status = "completed"
        try:
            async for text, pcm24 in self._voiced_parts(speech, audio):
                await self._play_part(resp, item, ids, text, pcm24, audio, speech.paced and audio, said_words)
            if audio:  # every audio delta before `response.output_audio.done` (a paced WebSocket output)
                await self.output.flushed(resp.id)
        except asyncio.CancelledError:
            status = "incomplete"
            raise
        finally:
            said = "".join(said_words)
            if audio:
                self.send(self.dialect.output_audio_done(ids))
                self.send(self.dialect.output_transcript_done(ids, said))
                part = {"type": "audio", "transcript": said}
                item["content"] = [{"type": "output_audio", "transcript": said}]
            else:
                self.send(self.dialect.output_text_done(ids, said))
                part = {"type": "text", "text": said}
                item["content"] = [{"type": "output_text", "text": said}]
            self.send(self.dialect.content_part_done(ids, part))
            self._finish_item(resp, index, item, previous, status)

    def _voiced_parts(self, speech: Speech, audio: bool) -> AsyncIterator[tuple[str, np.ndarray | None]]:
        """What to play, part by part: (text, 24 kHz audio or None). The offline voice streams a reply clause by
        clause (the first part plays while the rest is synthesized); given audio, a tone, or text only, is one
        part."""
        if audio and speech.pcm is None and self.ctx.speech is not None and self.ctx.speech.can_synthesize:
            return self.ctx.speech.synthesize_parts(speech.text)
        pcm = speech.pcm
        if audio and pcm is None:
            pcm = placeholder_audio(speech.text)
        return _once([(speech.text, pcm if audio else None)])

    async def _play_part(
        self,
        resp: ActiveResponse,
        item: dict[str, Any],
        ids: dict[str, Any],
        text: str,
        pcm24: np.ndarray | None,
        audio: bool,
        paced: bool,
        said: list[str],
    ) -> None:
        """Queue one part's audio, then send its words (adding each to `said` as it goes), each as its audio
        starts playing when `paced`."""
        item_id = item["id"]
        start = resp.queued
        earlier = self.conversation.audio.get(item_id)
        item_start = start - (earlier.pcm.size if earlier is not None else 0)  # where the item's audio began
        if pcm24 is not None and pcm24.size:
            rate = self.output.rate
            pcm = resample(pcm24, API_RATE, rate) if rate != API_RATE else pcm24
            self.output.put(resp.id, pcm, ids)
            resp.queued += pcm.size
            if earlier is None:
                resp.audio_items.append((item, start, resp.queued))
            else:  # the item's audio grows by this part (its entry is the last: items are voiced in turn)
                resp.audio_items[-1] = (item, item_start, resp.queued)
            whole = pcm if earlier is None else np.concatenate([earlier.pcm, pcm])
            self.conversation.audio[item_id] = ItemAudio(whole, rate)
            self.audio_started = True
            if earlier is None:
                with contextlib.suppress(TimeoutError):  # (asyncio.timeout: 3.11's wait_for can drop a cancel)
                    async with asyncio.timeout(0.5):
                        await resp.started.wait()
        total = max(1, resp.queued - start)
        starts = self.conversation.word_starts.setdefault(item_id, [])
        for offset, word in word_offsets(text):
            due = start + int(total * offset / max(1, len(text)))
            starts.append((samples_to_ms(due - item_start, self.output.rate), word))
            if paced:  # each word goes out when its audio does
                # (a poll: the track reads one 20 ms frame at a time, and a word is due within one)
                while (  # noqa: ASYNC110
                    self.output.played(resp.id) < due and not resp.cleared and self.output.pending(resp.id)
                ):
                    await asyncio.sleep(0.01)
            said.append(word)
            if audio:
                self.send(self.dialect.output_transcript_delta(ids, word))
            else:
                self.send(self.dialect.output_text_delta(ids, word))
            await asyncio.sleep(0)

    def _emit_function_call(self, resp: ActiveResponse, index: int, call: FunctionCall) -> None:
        item_id, call_id = new_id("item"), new_id("call")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        previous = self._output_item(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item_id, "output_index": index, "call_id": call_id}
        half = len(call.arguments) // 2
        for delta in (call.arguments[:half], call.arguments[half:]):
            if delta:
                self.send(self.dialect.function_arguments_delta(ids, delta))
        self.send(self.dialect.function_arguments_done(ids, call.name, call.arguments))
        item["arguments"] = call.arguments
        self.call_origins[call_id] = call.origin
        self._finish_item(resp, index, item, previous, "completed")

    def _emit_mcp_approval_request(self, resp: ActiveResponse, index: int, request: McpApprovalRequest) -> None:
        call = request.call
        item = {
            "id": new_id("item"),
            "type": "mcp_approval_request",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": call.arguments,
        }
        previous = self._output_item(resp, index, item)
        self.mcp_pending[item["id"]] = request
        self.send(self.dialect.output_item_done(resp.id, index, item, previous))

    async def _emit_mcp_call(self, resp: ActiveResponse, index: int, call: McpCall) -> None:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "mcp_call",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": "",
        }
        if call.approval_request_id:
            item["approval_request_id"] = call.approval_request_id
        previous = self._output_item(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item["id"], "output_index": index}
        self.send(self.dialect.mcp_arguments_delta(ids, call.arguments))
        self.send(self.dialect.mcp_arguments_done(ids, call.arguments))
        item["arguments"] = call.arguments
        self.send(self.dialect.mcp_call_in_progress(item["id"], index))
        await asyncio.sleep(0.05)  # the hosted call takes a moment
        if call.error is not None:
            item["error"] = {"type": "tool_execution_error", "message": call.error}
            self.send(self.dialect.mcp_call_finished(item["id"], index, failed=True))
        else:
            item["output"] = call.output or ""
            self.send(self.dialect.mcp_call_finished(item["id"], index, failed=False))
        self.send(self.dialect.output_item_done(resp.id, index, item, previous))

    def has_mcp_request(self, item_id: str) -> bool:
        return item_id in self.mcp_pending

    async def cancel(self, resp: ActiveResponse, reason: str) -> None:
        if resp.task is None or resp.task.done():
            return
        resp.cancel_reason = reason
        await cancel_and_wait(resp.task)
        if not resp.finished:  # cancelled before its task ever ran: its body (and `finally`) never did
            self._cut_short(resp)
            self._finish(resp)

    async def interrupt(self, reason: str) -> None:
        """Barge-in: cancel the running response, cut its audio, truncate what was not heard."""
        if self.active is not None:
            await self.cancel(self.active, reason)
        if self.output.announces_playout:
            self.clear_output()
        else:  # the client plays the audio: the unsent rest is dropped, and the client truncates
            self.output.clear()

    def clear_output(self) -> bool:
        played = self.output.clear()
        for resp_id, samples in played.items():
            resp = self.responses.get(resp_id)
            if resp is None:
                continue
            resp.cleared = True
            for item, start, end in resp.audio_items:
                heard = min(max(samples - start, 0), end - start)
                if heard < end - start:
                    rate = self.output.rate
                    self._truncate(item, samples_to_ms(heard, rate))
            self.send(self.dialect.playout_cleared(resp_id))
        return bool(played)

    def _on_playout_start(self, resp_id: str) -> None:
        resp = self.responses.get(resp_id)
        if resp is not None and not resp.started.is_set():
            resp.started.set()
            if self.output.announces_playout:
                self.send(self.dialect.playout_started(resp_id))

    def _on_playout_drain(self, resp_id: str, played: int) -> None:
        resp = self.responses.get(resp_id)
        if resp is not None and resp.started.is_set() and not resp.cleared:
            if self.output.announces_playout:
                self.send(self.dialect.playout_stopped(resp_id))
            if self.active is None:
                self.on_audio_stopped()

    async def close(self, failure: ProtocolError | None = None) -> None:
        """Cancel the running response as the session ends: `client_cancelled` when the client ended it, `failed`
        with `failure` when the server did."""
        if self.active is not None:
            self.active.failure = failure
            await self.cancel(self.active, "client_cancelled")
