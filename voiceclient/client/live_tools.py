"""The application's `@tool` functions answering GPT-Live's Responses delegation, through the same `ToolRunner` a
Realtime call uses:

    response.event {event: response.created}                          -> the delegated response under way
    response.event {event: response.output_item.done, function_call}  -> the tool runs
    response.event {event: response.completed | failed | incomplete}  -> that response is over
    each output: response.item.create {item: function_call_output}; then one response.create

The runner sends the Realtime API's `conversation.item.create` and asks `request_response()`; this bridge says
them in GPT-Live's words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live

if TYPE_CHECKING:
    from voiceclient.client.dispatcher import Dispatcher
    from voiceclient.tools.runner import ToolRunner

log = logging.getLogger(__name__)
FINISHED = {"response.completed": "completed", "response.failed": "failed", "response.incomplete": "incomplete"}


class DelegatedTools:
    """`send` and `request_response` for a `ToolRunner` in a GPT-Live call; `subscribe` feeds it the calls."""

    def __init__(self, send: Callable[[live.ClientEvent], None]) -> None:
        self._send = send
        self._runner: ToolRunner | None = None
        self._current: dict[str, str] = {}  # delegation (or "") -> the Responses response under way

    def subscribe(self, dispatcher: Dispatcher, runner: ToolRunner) -> None:
        self._runner = runner
        dispatcher.on(live.ResponseEvent, self.on_response_event)

    def on_response_event(self, event: live.ResponseEvent) -> None:
        nested: dict[str, Any] = event.event
        kind = nested.get("type")
        key = event.delegation_id or ""
        if kind == "response.created":
            self._current[key] = str((nested.get("response") or {}).get("id") or key)
        elif kind == "response.output_item.done":
            item = nested.get("item") or {}
            if item.get("type") == "function_call" and self._runner is not None:
                response = self._current.get(key, key)
                self._runner.function_call(
                    response, str(item.get("call_id")), str(item.get("name")), str(item.get("arguments") or "{}")
                )
        elif kind in FINISHED and self._runner is not None:
            response = str((nested.get("response") or {}).get("id") or self._current.get(key, key))
            self._runner.response_finished(response, FINISHED[kind])

    # ------------------------------------------------------------------------------------------ the runner's
    def send(self, event: ev.ClientEvent) -> None:
        """A tool's output, as `response.item.create`."""
        if isinstance(event, ev.ConversationItemCreate) and event.item.type == "function_call_output":
            item = {"type": "function_call_output", "call_id": event.item.call_id, "output": event.item.output}
            self._send(live.ResponseItemCreate.model_validate({"type": "response.item.create", "item": item}))
        else:  # (MCP approvals are the Realtime API's: a GPT-Live backend runs its MCP tools itself)
            log.warning("%s is not sent in a GPT-Live session", getattr(event, "type", type(event).__name__))

    def request_response(self, retry: bool = True) -> live.ResponseCreate:
        """Every call answered: one `response.create` continues the delegated response."""
        create = live.ResponseCreate(type="response.create")
        self._send(create)
        return create
