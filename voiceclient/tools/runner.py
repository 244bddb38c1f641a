"""Runs the model's function calls during a call and continues the conversation exactly once per response.

- On `response.function_call_arguments.done` the call runs as an owned task, concurrently with the others of the
  same response. Its arguments are validated first; a tool marked `needs_approval` then goes through the approver;
  the tool runs under its timeout. Every call gets exactly one `function_call_output`: the result as JSON text, or a
  short `{"error": …}` the model can read (invalid JSON or arguments, refused, exception, timeout, cancelled by
  the user's interruption).
- A call of a tool this client did not declare is not answered: in the sideband split another client of the same
  session (a backend) owns that tool and sends its output; two outputs for one call id would be wrong. It is
  reported locally instead: a log line and `foreign_calls` (the printer says so from the event itself).
- Once the response's `response.done` has arrived and every call of it has its output, one `response.create`
  follows (through `TurnState.request_response`, which retries it once after the active response if the server
  answers `conversation_already_has_active_response`), only if the response completed and none of its calls was
  cut by an interruption (the user's new turn gets its own response then).
- `cancel_on_interrupt` tools are cancelled on barge-in (`input_audio_buffer.speech_started`) or a local
  interrupt. Tools still running when the call ends are cancelled and send nothing.
- `mcp_approval_request` items from the server go through the same approver and are answered with an
  `mcp_approval_response` item, then a `response.create`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from voiceclient.protocol import events as ev
from voiceclient.protocol.events import ClientEvent, ConversationItemCreate, Item, new_id
from voiceclient.tasks import TaskOwner
from voiceclient.tools.approvals import ApprovalRequest, Approver, decide
from voiceclient.tools.registry import DEFAULT_TIMEOUT, CallHandle, Tool, ToolContext

log = logging.getLogger(__name__)
MAX_OUTPUT_CHARS = 16_000


class EventSource(Protocol):
    """What the runner subscribes to (the call's dispatcher, a layer above: tools do not import the client)."""

    def on(self, kind: type[Any], handler: Callable[[Any], object]) -> object: ...


INTERRUPTED = "cancelled: the user interrupted before the tool finished"


def serialise(result: Any, limit: int = MAX_OUTPUT_CHARS) -> str:
    """A tool result as the JSON text the model reads, at most `limit` characters (a marker says when cut)."""
    if isinstance(result, BaseModel):
        text = result.model_dump_json()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        text = json.dumps(dataclasses.asdict(result), default=str)
    else:
        text = json.dumps(result, default=str)
    if len(text) > limit:
        text = json.dumps({"truncated": True, "original_chars": len(text), "output": text[:limit]})
    return text


def error_output(message: str) -> str:
    return json.dumps({"error": message})


ToolResultHook = Callable[[str, str, str, float], None]  # (name, arguments, output, seconds)


class ResponseRequester(Protocol):
    """Where the runner asks for the next response (the call's `TurnState`)."""

    def request_response(self, retry: bool = True) -> object: ...


@dataclasses.dataclass
class _ResponseCalls:
    pending: set[str] = dataclasses.field(default_factory=set)
    had_calls: bool = False
    done_status: str | None = None
    continued: bool = False
    interrupted: bool = False


@dataclasses.dataclass
class _Running:
    task: asyncio.Task[None]
    tool: Tool
    interrupted: bool = False


class ToolRunner:
    def __init__(
        self,
        tools: list[Tool],
        send: Callable[[ClientEvent], None],
        responses: ResponseRequester,
        timeout: float = DEFAULT_TIMEOUT,
        on_result: ToolResultHook | None = None,
        approver: Approver | None = None,
        handle: CallHandle | None = None,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        self.send = send
        self.responses = responses
        self.timeout = timeout
        self.on_result = on_result  # (name, arguments, output, seconds) for the UI and summaries
        self.approver = approver
        self.handle = handle
        self.calls_run = 0
        self.foreign_calls: list[tuple[str, str]] = []  # (name, call_id) of calls left to another client
        self._responses: dict[str, _ResponseCalls] = {}
        self._running: dict[str, _Running] = {}
        self._approvals = 0
        self._answered_mcp: set[str] = set()
        self._tasks = TaskOwner("tool runner")
        self._closed = False

    @property
    def busy(self) -> bool:
        """A tool or an approval is running here, or a response of ours still waits for outputs."""
        return bool(self._running) or self._approvals > 0 or any(r.pending for r in self._responses.values())

    # ------------------------------------------------------------------------------------------ events
    def subscribe(self, dispatcher: EventSource) -> None:
        dispatcher.on(ev.ResponseFunctionCallArgumentsDone, self.on_function_call)
        dispatcher.on(ev.ResponseDone, self.on_response_done)
        dispatcher.on(ev.SpeechStarted, self.on_speech_started)
        dispatcher.on(ev.ConversationItemDone, self.on_item_done)

    def on_function_call(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        self.function_call(event.response_id, event.call_id, event.name or "", event.arguments)

    def on_response_done(self, event: ev.ResponseDone) -> None:
        self.response_finished(event.response.id or "", event.response.status)

    def function_call(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        """The model called a function in `response_id` (the Realtime API's event, or a call delegated to a
        Responses backend in GPT-Live): run it and answer it."""
        if not self._closed:
            self._start(response_id, call_id, name, arguments)

    def response_finished(self, response_id: str, status: str | None) -> None:
        """`response_id` is over (`completed`, or not): once its calls are answered, it is continued once."""
        calls = self._responses.get(response_id)
        if calls is not None and not self._closed:
            calls.done_status = status
            self._maybe_continue(calls)

    def on_speech_started(self, event: ev.SpeechStarted) -> None:
        self.interrupt()

    def on_item_done(self, event: ev.ConversationItemDone) -> None:
        if event.item.type == "mcp_approval_request" and not self._closed:
            self._start_mcp_approval(event.item)

    def interrupt(self) -> None:
        """Cancel the running `cancel_on_interrupt` tools; each reports the interruption as its output."""
        for running in self._running.values():
            if running.tool.cancel_on_interrupt and not running.interrupted:
                running.interrupted = True
                running.task.cancel()

    # ------------------------------------------------------------------------------------------ function calls
    async def settle(self, timeout: float) -> None:
        """Wait (bounded) for the tools running now to finish and send their outputs: a tool that hangs up the
        call still answers its call first. Never cancels them."""
        tasks = [running.task for running in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _start(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        if name not in self.tools:
            self.foreign_calls.append((name, call_id))
            log.info(
                "function call %s of %r: not a tool of this client; left to the client that declared it", call_id, name
            )
            return
        if call_id in self._running:
            log.warning("function call %s announced twice; running it once", call_id)
            return
        calls = self._responses.setdefault(response_id, _ResponseCalls())
        calls.pending.add(call_id)
        calls.had_calls = True
        task = self._tasks.spawn(self._run(response_id, call_id, name, arguments), f"tool {name} ({call_id})")
        self._running[call_id] = _Running(task, self.tools[name])

    async def _run(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            output = await self._output_of(call_id, name, arguments)
        except asyncio.CancelledError:
            running = self._running.get(call_id)
            if self._closed or running is None or not running.interrupted:
                self._running.pop(call_id, None)
                raise  # the call is ending: nothing more is sent
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            output = error_output(INTERRUPTED)
            self._responses[response_id].interrupted = True
        self._running.pop(call_id, None)
        self.calls_run += 1
        if self.on_result is not None:
            self.on_result(name, arguments, output, loop.time() - started)
        self._send(ConversationItemCreate(item=Item.function_call_output(call_id, output)))
        calls = self._responses[response_id]
        calls.pending.discard(call_id)
        self._maybe_continue(calls)

    async def _output_of(self, call_id: str, name: str, arguments: str) -> str:
        tool = self.tools[name]
        try:
            tool.parse_arguments(arguments)
        except json.JSONDecodeError as exc:
            return error_output(f"arguments are not valid JSON: {exc.msg}")
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            return error_output(f"invalid arguments: {where}: {err['msg']}")
        if tool.needs_approval:
            decision = await decide(self.approver, ApprovalRequest("function", call_id, name, arguments))
            if not decision.approve:
                return json.dumps({"error": "the user did not approve this call", "reason": decision.reason})
        timeout = tool.timeout or self.timeout
        context = ToolContext(
            call_id=call_id,
            name=name,
            arguments=arguments,
            call=self.handle,
            logger=logging.getLogger(f"voiceclient.tools.{name}"),
        )
        try:
            result = await asyncio.wait_for(tool.invoke(arguments, context), timeout)
        except TimeoutError:
            return error_output(f"tool {name} timed out after {timeout:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("tool %s raised %s: %s", name, type(exc).__name__, exc)
            return error_output(f"{type(exc).__name__}: {exc}")
        try:
            return serialise(result)
        except (TypeError, ValueError) as exc:
            return error_output(f"the tool's result could not be serialised: {exc}")

    def _maybe_continue(self, calls: _ResponseCalls) -> None:
        if calls.had_calls and not calls.pending and calls.done_status is not None and not calls.continued:
            calls.continued = True
            if calls.done_status == "completed" and not calls.interrupted:
                self._create()

    # ------------------------------------------------------------------------------------------ MCP approvals
    def _start_mcp_approval(self, item: Item) -> None:
        if item.id in self._answered_mcp:
            return
        self._answered_mcp.add(item.id or "")
        extra = item.model_extra or {}
        request = ApprovalRequest(
            "mcp", item.id or "", item.name or "", item.arguments or "", server_label=extra.get("server_label")
        )
        self._approvals += 1
        self._tasks.spawn(self._answer_mcp(request), f"MCP approval {request.id}")

    async def _answer_mcp(self, request: ApprovalRequest) -> None:
        try:
            decision = await decide(self.approver, request)
        finally:
            self._approvals -= 1
        if self.on_result is not None:
            verdict = "approved" if decision.approve else f"refused ({decision.reason})"
            self.on_result(f"mcp {request.server_label}/{request.name}", request.arguments, verdict, 0.0)
        fields: dict[str, Any] = {"id": new_id("item"), "approval_request_id": request.id, "approve": decision.approve}
        if decision.reason:
            fields["reason"] = decision.reason
        self._send(ConversationItemCreate(item=Item(type="mcp_approval_response", **fields)))
        self._create()

    # ------------------------------------------------------------------------------------------ output
    def _send(self, event: ClientEvent) -> None:
        if not self._closed:
            self.send(event)

    def _create(self) -> None:
        if not self._closed:
            self.responses.request_response(retry=True)

    async def close(self) -> None:
        """Cancel whatever still runs; nothing is sent after this."""
        self._closed = True
        await self._tasks.close()
