"""Runs the model's function calls during a call and continues the conversation exactly once per response.

On `response.function_call_arguments.done` the tool runs as an owned task; its result (or a short error object:
unknown tool, bad arguments, exception, timeout) goes back as a `function_call_output` item. Once the response's
`response.done` has arrived and every call of it has its output, one `response.create` follows, and only if the
response completed (an interrupted response is followed by the user's new turn instead). If the server answers
that create with `conversation_already_has_active_response`, it is retried once after that response is done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from ..events.models import ClientEvent, ConversationItemCreate, Item, ResponseCreate
from .registry import Tool

log = logging.getLogger(__name__)
MAX_OUTPUT_CHARS = 16_000


def serialise(result: Any) -> str:
    """A tool result as the JSON text the model reads (strings are sent as JSON strings too)."""
    if isinstance(result, BaseModel):
        text = result.model_dump_json()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        text = json.dumps(dataclasses.asdict(result), default=str)
    else:
        text = json.dumps(result, default=str)
    if len(text) > MAX_OUTPUT_CHARS:
        text = json.dumps({"truncated": True, "output": text[:MAX_OUTPUT_CHARS]})
    return text


@dataclasses.dataclass
class _ResponseCalls:
    pending: set[str] = dataclasses.field(default_factory=set)
    had_calls: bool = False
    done_status: str | None = None
    continued: bool = False


class ToolRunner:
    def __init__(self, tools: list[Tool], send: Callable[[ClientEvent], None], timeout: float = 30.0,
                 on_result: Callable[[str, str, str, float], None] | None = None) -> None:
        self.tools = {t.name: t for t in tools}
        self.send = send
        self.timeout = timeout
        self.on_result = on_result  # (name, arguments, output, seconds) for the UI and summaries
        self.calls_run = 0
        self._responses: dict[str, _ResponseCalls] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._create_ids: set[str] = set()
        self._retry_after_done = False

    @property
    def busy(self) -> bool:
        """A tool is running, or a response.create is owed."""
        return bool(self._tasks) or self._retry_after_done or any(
            r.had_calls and not r.continued and r.done_status in (None, "completed") and r.pending
            for r in self._responses.values())

    def on_event(self, event: Any) -> None:
        kind = event.type
        if kind == "response.function_call_arguments.done":
            calls = self._responses.setdefault(event.response_id, _ResponseCalls())
            calls.pending.add(event.call_id)
            calls.had_calls = True
            name = event.name or ""
            task = asyncio.ensure_future(self._run(event.response_id, event.call_id, name, event.arguments))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "response.done":
            if self._retry_after_done:
                self._retry_after_done = False
                self._create()
            calls = self._responses.get(event.response.id or "")
            if calls is not None:
                calls.done_status = event.response.status
                self._maybe_continue(calls)
        elif kind == "error" and event.error.code == "conversation_already_has_active_response" \
                and event.error.event_id in self._create_ids:
            self._create_ids.discard(event.error.event_id)
            self._retry_after_done = True

    async def _run(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tool = self.tools.get(name)
        if tool is None:
            output = json.dumps({"error": f"unknown tool {name!r}"})
        else:
            try:
                result = await asyncio.wait_for(tool.invoke(arguments), self.timeout)
                output = serialise(result)
            except json.JSONDecodeError as exc:
                output = json.dumps({"error": f"arguments are not valid JSON: {exc.msg}"})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"]) or "arguments"
                output = json.dumps({"error": f"invalid arguments: {where}: {err['msg']}"})
            except TimeoutError:
                output = json.dumps({"error": f"tool {name} timed out after {self.timeout:g} s"})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tool %s raised %s: %s", name, type(exc).__name__, exc)
                output = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        self.calls_run += 1
        if self.on_result is not None:
            self.on_result(name, arguments, output, loop.time() - started)
        self.send(ConversationItemCreate(item=Item.function_call_output(call_id, output)))
        calls = self._responses[response_id]
        calls.pending.discard(call_id)
        self._maybe_continue(calls)

    def _maybe_continue(self, calls: _ResponseCalls) -> None:
        if calls.had_calls and not calls.pending and calls.done_status is not None and not calls.continued:
            calls.continued = True
            if calls.done_status == "completed":
                self._create()

    def _create(self) -> None:
        event = ResponseCreate()
        assert event.event_id is not None
        self._create_ids.add(event.event_id)
        self.send(event)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
