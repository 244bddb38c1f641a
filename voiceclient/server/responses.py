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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE, samples_to_ms
from voiceclient.audio.resample import resample
from voiceclient.audio.stretch import time_scale
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
    placeholder_audio,
    steer,
)
from voiceclient.server.response_items import ActiveResponse, OutputItems
from voiceclient.server.steering import TokenBudget, steering_for, usage
from voiceclient.server.tool_items import ToolItems
from voiceclient.tasks import cancel_and_wait

log = logging.getLogger(__name__)


async def _one_part(text: str, pcm: np.ndarray | None, speed: float) -> AsyncIterator[tuple[str, np.ndarray | None]]:
    """Given audio as one part, played at `speed` (time-scaled, the pitch kept; in a worker thread: a long echo
    takes a while)."""
    if pcm is not None and speed != 1.0:
        pcm = await asyncio.to_thread(time_scale, pcm, speed, API_RATE)
    yield text, pcm


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
        self.active: ActiveResponse | None = None  # the default conversation's response (one at a time)
        self.out_of_band: dict[str, ActiveResponse] = {}  # out-of-band responses running (any number, beside it)
        self.responses: dict[str, ActiveResponse] = {}
        self.last_response_id: str | None = None
        self.turn_index = 0
        self.audio_started = False  # assistant audio exists (the voice can no longer change)
        self.items = OutputItems(ctx)
        self.tools = ToolItems(ctx, conversation, self.items)
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

    def truncate(self, item_id: str, audio_end_ms: int, content_index: int = 0) -> None:
        """A client's `conversation.item.truncate` (raises ProtocolError when it cannot be applied)."""
        self.conversation.truncate(item_id, audio_end_ms, content_index)
        self.send(self.dialect.item_truncated(item_id, audio_end_ms))

    # ------------------------------------------------------------------------------------------ responses
    def _input_items(self, request: ResponseRequest) -> list[dict[str, Any]]:
        """An out-of-band response's context: its `input` (items, or references to the conversation's items), or
        the whole default conversation when it gives none. Nothing is marked answered."""
        if request.input is None:
            return list(self.conversation.items)
        items = []
        for i, it in enumerate(request.input):
            if it.get("type") == "item_reference":
                found = self.conversation.get(it["id"])
                if found is None:  # (the real wording is not established: refused, as an unknown item elsewhere)
                    raise ProtocolError(
                        f"Item with id '{it['id']}' not found.", "item_not_found", f"response.input[{i}].id"
                    )
                items.append(found)
            else:
                items.append({"id": it.get("id") or new_id("item"), **it})
        return items

    def _context(self, resp: ActiveResponse, request: ResponseRequest | None) -> TurnContext:
        """What the next response answers: MCP approval decisions, else a new user message (a user turn, even if
        tool outputs came in meanwhile), else the function outputs that arrived since the last response. An
        out-of-band response answers its own input (`_input_items`): it takes nothing from the conversation's
        unanswered items and is planned as the next turn would be, without using that turn up."""
        oob = resp.out_of_band
        new = self._input_items(request) if oob and request is not None else self.conversation.take_unanswered()
        ctx = TurnContext(turn_index=self.turn_index)
        tools = resp.steering.tools
        ctx.mcp_tools = {t["server_label"]: t for t in tools if t.get("type") == "mcp"}
        ctx.function_tools = {t["name"] for t in tools if t.get("type") == "function" and "name" in t}
        ctx.delegated_tools = self.dialect.delegates_tools
        ctx.tool_choice = resp.steering.tool_choice
        ctx.instructions = resp.steering.instructions
        ctx.out_of_band = oob
        for it in new:
            if it.get("type") == "mcp_approval_response":
                approval = self.tools.approval(it["approval_request_id"], keep=oob)
                if approval is not None:
                    approval.call.approval_request_id = it["approval_request_id"]
                    ctx.mcp_decisions.append((approval, it["approve"], it.get("reason")))
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
            if not oob:
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
            (origin for it in outputs if (origin := self.tools.call_origins.get(it["call_id"])) is not None),
            None,
        )
        if not outputs and not oob:
            self.turn_index += 1
        return ctx

    def running(self, response_id: str | None = None) -> ActiveResponse | None:
        """The response `response.cancel` means: the one named (default or out of band), else the default
        conversation's ([SDK] `ResponseCancelEvent.response_id`: "if not provided, will cancel an in-progress
        response in the default conversation")."""
        if response_id is None:
            return self.active
        resp = self.active if self.active is not None and self.active.id == response_id else None
        return resp or self.out_of_band.get(response_id)

    def start(self, params: ResponseRequest | None) -> ActiveResponse:
        """A new response (the caller has checked that no default-conversation response is active, when this is
        one; out-of-band responses run beside it and each other). Raises ProtocolError, before anything is sent,
        for a request the real service refuses."""
        modalities = (
            params.output_modalities if params and params.output_modalities else self.session["output_modalities"]
        )
        steering = steering_for(self.session, params)
        out_of_band = params is not None and params.out_of_band
        if out_of_band and params is not None and params.input is not None:
            self._input_items(params)  # an unknown item reference is refused before the response exists
        resp_id = new_id("resp")
        conversation = None if out_of_band else "conv_" + self.ctx.id.split("_", 1)[-1]
        voice = params.voice if params and params.voice is not None else self.session["audio"]["output"]["voice"]
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
                    "voice": voice,
                }
            },
            "usage": None,
            "metadata": params.metadata if params else None,
        }
        active = ActiveResponse(
            resp_id,
            obj,
            conversation=Conversation() if out_of_band else self.conversation,
            out_of_band=out_of_band,
            steering=steering,
            budget=TokenBudget(steering.max_output_tokens),
            speed=float(self.session["audio"]["output"].get("speed") or 1.0),
        )
        if out_of_band:
            self.out_of_band[resp_id] = active
        else:
            self.active = active
        self.responses[resp_id] = active
        self.last_response_id = resp_id
        say = params.say if params is not None else None
        # (a response that says given words answers nothing of the conversation: it takes none of its items)
        ctx = self._context(active, params) if say is None else TurnContext(turn_index=self.turn_index)
        # Announced here, not in the task: a cancel that comes before the task first runs still ends a response
        # the client has seen created (`cancel` then sends its `response.done`).
        self.send(self.dialect.response_created({**obj, "output": []}))
        active.task = self.ctx.tasks.spawn(self._run_response(active, ctx, modalities == ["audio"], say), resp_id)
        return active

    async def _plan(self, ctx: TurnContext) -> ResponsePlan:
        """Give the responder what it needs (the user's transcript, for responders that listen) and plan."""
        if self.ctx.listening_responder and ctx.user_item_id is not None:
            heard = await self.transcript_of(ctx.user_item_id)
            if heard is not None:
                ctx.transcript = heard
        plan = self.ctx.responder.plan(ctx)
        return plan if isinstance(plan, ResponsePlan) else await plan

    async def _run_response(self, resp: ActiveResponse, ctx: TurnContext, audio: bool, say: str | None) -> None:
        """`say`: the words to say (`ResponseRequest.say`), instead of the responder's plan."""
        try:
            if say is not None:
                plan = ResponsePlan([Speech(say, None, paced=True)])
            else:
                plan = steer(await self._plan(ctx), resp.steering.tool_choice, resp.steering.tools)
            if plan.delay_ms:
                await asyncio.sleep(plan.delay_ms / 1000)
            for index, output in enumerate(plan.outputs):
                if isinstance(output, FunctionCall):
                    self.tools.function_call(resp, index, output)
                elif isinstance(output, McpApprovalRequest):
                    self.tools.mcp_approval_request(resp, index, output)
                elif isinstance(output, McpCall):
                    await self.tools.mcp_call(resp, index, output)
                else:
                    await self._emit_message(resp, index, output, audio)
                if resp.budget.spent:
                    break
            if resp.budget.spent:  # [SDK] `RealtimeResponseStatus`: incomplete, reason max_output_tokens
                resp.obj["status"] = "incomplete"
                resp.obj["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
            else:
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
        resp.obj["usage"] = usage(
            resp.budget, resp.queued / self.output.rate, self.input_seconds(), self.conversation.items
        )
        self.send(self.dialect.response_done(resp.obj))
        self.ctx.on_response_done()
        if self.active is resp:
            self.active = None
        self.out_of_band.pop(resp.id, None)
        self.output.close(resp.id)

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
        previous = self.items.added(resp, index, item)
        ids: dict[str, Any] = {"response_id": resp.id, "item_id": item_id, "output_index": index, "content_index": 0}
        said_words: list[str] = []
        self.send(self.dialect.message_planned(ids, speech.text))
        empty = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        self.send(self.dialect.content_part_added(ids, empty))
        status = "completed"
        try:
            parts = self._voiced_parts(speech, audio, resp.speed)
            try:
                async for text, pcm24 in parts:
                    await self._play_part(resp, item, ids, text, pcm24, audio, speech.paced and audio, said_words)
                    if resp.budget.spent:
                        status = "incomplete"
                        break
            finally:
                aclose = getattr(parts, "aclose", None)
                if aclose is not None:
                    await aclose()
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
            self.items.done(resp, index, item, previous, status)

    def _voiced_parts(self, speech: Speech, audio: bool, speed: float) -> AsyncIterator[tuple[str, np.ndarray | None]]:
        """What to play, part by part: (text, 24 kHz audio or None), at `speed` (`audio.output.speed`). The offline
        voice streams a reply clause by clause (the first part plays while the rest is synthesized), speaking at
        that speed itself; given audio, a tone, or text only, is one part, time-scaled to it."""
        if audio and speech.pcm is None and self.ctx.speech is not None and self.ctx.speech.can_synthesize:
            return self.ctx.speech.synthesize_parts(speech.text, speed)
        pcm = speech.pcm
        if audio and pcm is None:
            pcm = placeholder_audio(speech.text)
        return _one_part(speech.text, pcm if audio else None, speed)

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
        conversation = resp.conversation
        text, pcm24 = resp.budget.take_part(text, pcm24)
        start = resp.queued
        earlier = conversation.audio.get(item_id)
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
            conversation.audio[item_id] = ItemAudio(whole, rate)
            self.audio_started = True
            if earlier is None:
                with contextlib.suppress(TimeoutError):  # (asyncio.timeout: 3.11's wait_for can drop a cancel)
                    async with asyncio.timeout(0.5):
                        await resp.started.wait()
        total = max(1, resp.queued - start)
        starts = conversation.word_starts.setdefault(item_id, [])
        offsets = word_offsets(text)
        dues = [start + int(total * offset / max(1, len(text))) for offset, _ in offsets] + [resp.queued]
        for i, (_, word) in enumerate(offsets):
            due = dues[i]
            span = (
                samples_to_ms(due - item_start, self.output.rate),
                samples_to_ms(dues[i + 1] - item_start, self.output.rate),
            )
            starts.append((span[0], word))
            if paced:  # each word goes out when its audio does
                # (a poll: the track reads one 20 ms frame at a time, and a word is due within one)
                while (  # noqa: ASYNC110
                    self.output.played(resp.id) < due and not resp.cleared and self.output.pending(resp.id)
                ):
                    await asyncio.sleep(0.01)
            said.append(word)
            if audio:
                self.send(self.dialect.output_transcript_delta(ids, word, span))
            else:
                self.send(self.dialect.output_text_delta(ids, word))
            await asyncio.sleep(0)

    async def cancel(self, resp: ActiveResponse, reason: str) -> None:
        if resp.task is None or resp.task.done():
            return
        resp.cancel_reason = reason
        await cancel_and_wait(resp.task)
        if not resp.finished:  # cancelled before its task ever ran: its body (and `finally`) never did
            self._cut_short(resp)
            self._finish(resp)

    async def interrupt(self, reason: str) -> None:
        """Barge-in: cancel the default conversation's running response, cut all audio, truncate what was not
        heard. Out-of-band responses go on (what they have queued is cut with the rest)."""
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
                    if resp.out_of_band:  # its item is in no conversation: cut, and nothing to announce
                        resp.conversation.cut(item, samples_to_ms(heard, rate))
                    else:
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
        for resp in [*self.out_of_band.values(), *([self.active] if self.active is not None else [])]:
            resp.failure = failure
            await self.cancel(resp, "client_cancelled")
