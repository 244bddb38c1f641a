"""How the embedded server answers: a response's full event sequence, its playout, cancellation and truncation.

`ResponseMixin` is part of `ServerCall` (call.py): a response runs as a task so `response.cancel` and barge-in can
reach it while it thinks; its audio plays out through the call's `PlayoutQueue`, which is what
`output_audio_buffer.started/stopped/cleared` and truncation are measured against.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from voiceclient.tasks import cancel_and_wait
from voiceclient.audio.format import API_RATE, RTP_RATE, samples_to_ms
from voiceclient.audio.resample import resample
from voiceclient.protocol import events as ev
from voiceclient.protocol.events import new_id
from voiceclient.server.responders import (
    FunctionCall, McpApprovalRequest, McpCall, ResponsePlan, Speech, TurnContext, placeholder_audio,
)

@dataclass
class ActiveResponse:
    id: str
    obj: dict[str, Any]
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    audio_items: list[tuple[dict[str, Any], int, int]] = field(default_factory=list)  # item, start, end (48k)
    queued: int = 0  # samples queued for playout (48 kHz)
    cleared: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts) if p or i == len(parts) - 1]


def word_offsets(text: str) -> list[tuple[int, str]]:
    """(character offset, word with its trailing space) for each word of `text`."""
    out, offset = [], 0
    for word in words(text):
        out.append((offset, word))
        offset += len(word)
    return out


class ResponseMixin:
    """The response half of `ServerCall`. It works on the call's state, declared here for the reader."""

    session: dict[str, Any]
    items: list[dict[str, Any]]
    item_audio: dict[str, Any]
    item_text: dict[str, str]
    produced: set[str]
    responses: dict[str, "ActiveResponse"]
    active: "ActiveResponse | None"
    playout: Any
    speech: Any
    responder: Any
    send: Callable[[dict[str, Any]], None]

    def _truncate(self, item: dict[str, Any], end_ms: int, length_ms: int) -> None:
        """Keep the words whose audio had started by `end_ms` (by their position in the full text)."""
        full = self.item_text.get(item["id"])
        for part in item.get("content") or []:
            text = full if full is not None else part.get("transcript")
            if text:
                heard = end_ms / length_ms if length_ms else 0.0
                part["transcript"] = "".join(w for off, w in word_offsets(text)
                                             if off / max(1, len(text)) < heard).rstrip()
        self.send({"type": "conversation.item.truncated", "item_id": item["id"], "content_index": 0,
                   "audio_end_ms": end_ms})

    # ------------------------------------------------------------------------------------------ responses
    def _context(self) -> TurnContext:
        """What the next response answers: MCP approval decisions, else a new user message (a user turn, even if
        tool outputs came in meanwhile), else the function outputs that arrived since the last response."""
        new = [it for it in self.items[self.answered_upto:] if it["id"] not in self.produced]
        self.answered_upto = len(self.items)
        ctx = TurnContext(turn_index=self.turn_index)
        ctx.mcp_tools = {t["server_label"]: t for t in self.session.get("tools") or [] if t.get("type") == "mcp"}
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
            ctx.user_audio = self.item_audio.get(last["id"])
            ctx.user_item_id = last["id"]
            if ctx.user_text is not None:
                ctx.transcript = ctx.user_text
            self.turn_index += 1
            return ctx
        names = {it.get("call_id"): it.get("name") for it in self.items if it.get("type") == "function_call"}
        outputs = [it for it in new if it.get("type") == "function_call_output"]
        ctx.function_outputs = [(names.get(it["call_id"]) or "unknown", it["output"]) for it in outputs]
        ctx.origin = next((self.call_origins[it["call_id"]] for it in outputs
                           if self.call_origins.get(it["call_id"]) is not None), None)
        if not outputs:
            self.turn_index += 1
        return ctx

    def start_response(self, params: ev.ResponseParams | None) -> ActiveResponse:
        modalities = (params.output_modalities if params and params.output_modalities
                      else self.session["output_modalities"])
        resp_id = new_id("resp")
        conversation = None if params and params.conversation == "none" else "conv_" + self.id.removeprefix("rtc_")
        obj = {"object": "realtime.response", "id": resp_id, "status": "in_progress", "status_details": None,
               "output": [], "conversation_id": conversation, "output_modalities": modalities,
               "max_output_tokens": (params.max_output_tokens if params and params.max_output_tokens
                                     else self.session["max_output_tokens"]),
               "audio": {"output": {"format": self.session["audio"]["output"]["format"],
                                    "voice": self.session["audio"]["output"]["voice"]}},
               "usage": None, "metadata": params.metadata if params else None}
        active = ActiveResponse(resp_id, obj)
        self.active = active
        self.responses[resp_id] = active
        self.last_response_id = resp_id
        self._cancel_idle_timer()
        ctx = self._context()
        active.task = asyncio.ensure_future(self._run_response(active, ctx, modalities == ["audio"]))
        return active

    async def _plan(self, ctx: TurnContext) -> ResponsePlan:
        """Give the responder what it needs (the user's transcript, for responders that listen) and plan."""
        if getattr(self.responder, "listens", False) and ctx.user_item_id in self.transcripts:
            ctx.transcript = await asyncio.shield(self.transcripts[ctx.user_item_id])
        plan = self.responder.plan(ctx)
        if inspect.isawaitable(plan):
            plan = await plan
        return plan

    async def _run_response(self, resp: ActiveResponse, ctx: TurnContext, audio: bool) -> None:
        self.send({"type": "response.created", "response": {**resp.obj, "output": []}})
        self.send({"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 400000, "remaining": 399000, "reset_seconds": 0.15}]})
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
            resp.obj["status"] = "cancelled"
            resp.obj["status_details"] = {"type": "cancelled", "reason": resp.cancel_reason or "client_cancelled"}
        finally:
            resp.obj["usage"] = self._usage(resp)
            self.send({"type": "response.done", "response": resp.obj})
            if self.active is resp:
                self.active = None
            self.playout.close(resp.id)

    def _usage(self, resp: ActiveResponse) -> dict[str, Any]:
        text = sum(len(json.dumps(it)) // 4 for it in resp.obj["output"])
        audio_out = int(resp.queued / RTP_RATE * 10)
        audio_in = int(self.audio_samples / API_RATE * 10)
        text_in = sum(len(json.dumps(it)) // 4 for it in self.items) // 2
        return {"total_tokens": text + audio_out + audio_in + text_in, "input_tokens": audio_in + text_in,
                "output_tokens": text + audio_out,
                "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0,
                                        "cached_tokens": 0,
                                        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                                  "image_tokens": 0}},
                "output_token_details": {"text_tokens": text, "audio_tokens": audio_out}}

    def _output_item(self, resp: ActiveResponse, index: int, item: dict[str, Any]) -> str | None:
        previous = self.items[-1]["id"] if self.items else None
        resp.obj["output"].append(item)
        self.items.append(item)
        self.produced.add(item["id"])
        self.send({"type": "response.output_item.added", "response_id": resp.id, "output_index": index,
                   "item": item})
        self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        return previous

    def _finish_item(self, resp: ActiveResponse, index: int, item: dict[str, Any], previous: str | None,
                     status: str) -> None:
        item["status"] = status
        self.send({"type": "response.output_item.done", "response_id": resp.id, "output_index": index,
                   "item": item})
        self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _emit_message(self, resp: ActiveResponse, index: int, speech: Speech, audio: bool) -> None:
        item_id = new_id("item")
        item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                                "status": "in_progress", "content": []}
        previous = self._output_item(resp, index, item)
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": index, "content_index": 0}
        said = ""
        self.send({"type": "response.content_part.added", **ids,
                   "part": {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}})
        status = "completed"
        self.item_text[item_id] = speech.text
        start = resp.queued
        try:
            pcm24 = speech.pcm
            if audio and pcm24 is None and self.speech is not None:
                pcm24 = await self.speech.synthesize(speech.text)
            if audio and pcm24 is None:
                pcm24 = placeholder_audio(speech.text)
            if audio and pcm24 is not None and pcm24.size:
                pcm48 = resample(pcm24, API_RATE, RTP_RATE)
                start = resp.queued
                self.playout.put(resp.id, pcm48)
                resp.queued += pcm48.size
                resp.audio_items.append((item, start, resp.queued))
                self.item_audio[item_id] = pcm48
                self.audio_started = True
                try:
                    await asyncio.wait_for(resp.started.wait(), 0.5)
                except TimeoutError:
                    pass
            total = max(1, resp.queued - start)
            for offset, word in word_offsets(speech.text):
                if audio and speech.paced:  # each word goes out when its audio does
                    due = start + int(total * offset / max(1, len(speech.text)))
                    while self.playout.played(resp.id) < due and not resp.cleared and self.playout.pending(resp.id):
                        await asyncio.sleep(0.01)
                said += word
                self.send({"type": "response.output_audio_transcript.delta" if audio else
                           "response.output_text.delta", **ids, "delta": word})
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            status = "incomplete"
            raise
        finally:
            if audio:
                self.send({"type": "response.output_audio.done", **ids})
                self.send({"type": "response.output_audio_transcript.done", **ids, "transcript": said})
                part = {"type": "audio", "transcript": said}
                item["content"] = [{"type": "output_audio", "transcript": said}]
            else:
                self.send({"type": "response.output_text.done", **ids, "text": said})
                part = {"type": "text", "text": said}
                item["content"] = [{"type": "output_text", "text": said}]
            self.send({"type": "response.content_part.done", **ids, "part": part})
            self._finish_item(resp, index, item, previous, status)

    def _emit_function_call(self, resp: ActiveResponse, index: int, call: FunctionCall) -> None:
        item_id, call_id = new_id("item"), new_id("call")
        item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "function_call",
                                "status": "in_progress", "call_id": call_id, "name": call.name, "arguments": ""}
        previous = self._output_item(resp, index, item)
        ids = {"response_id": resp.id, "item_id": item_id, "output_index": index, "call_id": call_id}
        half = len(call.arguments) // 2
        for delta in (call.arguments[:half], call.arguments[half:]):
            if delta:
                self.send({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
        self.send({"type": "response.function_call_arguments.done", **ids, "name": call.name,
                   "arguments": call.arguments})
        item["arguments"] = call.arguments
        self.call_origins[call_id] = call.origin
        self._finish_item(resp, index, item, previous, "completed")

    def _emit_mcp_approval_request(self, resp: ActiveResponse, index: int, request: McpApprovalRequest) -> None:
        call = request.call
        item = {"id": new_id("item"), "type": "mcp_approval_request", "server_label": call.server_label,
                "name": call.name, "arguments": call.arguments}
        previous = self._output_item(resp, index, item)
        self.mcp_pending[item["id"]] = request
        self.send({"type": "response.output_item.done", "response_id": resp.id, "output_index": index,
                   "item": item})
        self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _emit_mcp_call(self, resp: ActiveResponse, index: int, call: McpCall) -> None:
        item: dict[str, Any] = {"id": new_id("item"), "type": "mcp_call", "server_label": call.server_label,
                                "name": call.name, "arguments": ""}
        if call.approval_request_id:
            item["approval_request_id"] = call.approval_request_id
        previous = self._output_item(resp, index, item)
        ids = {"response_id": resp.id, "item_id": item["id"], "output_index": index}
        self.send({"type": "response.mcp_call_arguments.delta", **ids, "delta": call.arguments})
        self.send({"type": "response.mcp_call_arguments.done", **ids, "arguments": call.arguments})
        item["arguments"] = call.arguments
        self.send({"type": "response.mcp_call.in_progress", "item_id": item["id"], "output_index": index})
        await asyncio.sleep(0.05)  # the hosted call takes a moment
        if call.error is not None:
            item["error"] = {"type": "tool_execution_error", "message": call.error}
            self.send({"type": "response.mcp_call.failed", "item_id": item["id"], "output_index": index})
        else:
            item["output"] = call.output or ""
            self.send({"type": "response.mcp_call.completed", "item_id": item["id"], "output_index": index})
        self.send({"type": "response.output_item.done", "response_id": resp.id, "output_index": index,
                   "item": item})
        self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def cancel_response(self, resp: ActiveResponse, reason: str) -> None:
        if resp.task is None or resp.task.done():
            return
        resp.cancel_reason = reason
        await cancel_and_wait(resp.task)

    async def interrupt(self, reason: str) -> None:
        """Barge-in: cancel the running response, cut its audio, truncate what was not heard."""
        if self.active is not None:
            await self.cancel_response(self.active, reason)
        self.clear_output()

    def clear_output(self) -> bool:
        played = self.playout.clear()
        for resp_id, samples in played.items():
            resp = self.responses.get(resp_id)
            if resp is None:
                continue
            resp.cleared = True
            for item, start, end in resp.audio_items:
                heard = min(max(samples - start, 0), end - start)
                if heard < end - start:
                    self._truncate(item, samples_to_ms(heard, RTP_RATE), samples_to_ms(end - start, RTP_RATE))
            self.send({"type": "output_audio_buffer.cleared", "response_id": resp_id})
        return bool(played)

    def _on_playout_start(self, resp_id: str) -> None:
        resp = self.responses.get(resp_id)
        if resp is not None and not resp.started.is_set():
            resp.started.set()
            self.send({"type": "output_audio_buffer.started", "response_id": resp_id})

    def _on_playout_drain(self, resp_id: str, played: int) -> None:
        resp = self.responses.get(resp_id)
        if resp is not None and resp.started.is_set() and not resp.cleared:
            self.send({"type": "output_audio_buffer.stopped", "response_id": resp_id})
            self._arm_idle_timer()

