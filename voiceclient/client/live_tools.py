"""The application's `@tool` functions answering GPT-Live's Responses delegation, through the same `ToolRunner` a
Realtime call uses:

    response.event {event: response.created}                          -> the delegated response under way
    response.event {event: response.output_item.done, function_call}  -> the tool runs
    response.event {event: response.completed | failed | incomplete}  -> that response is over
    each output: response.item.create {item: function_call_output}; then one response.create

Delegation to the application (`{"type": "client"}`) names no function: the event is metadata only, and the
application works the task out from what the user said. The call's first tool answers it, with the user's latest
words as its first string argument (when none came since the last task, they are waited for, briefly: the
delegation may come before the transcript):

    session.delegation.created {delegation: {id, target: client}}      -> DelegationRequested; the tool runs
    its output: session.commentary.append {delegation_id, content}       (spoken; `@tool(spoken=False)`: thinking)

The runner sends the Realtime API's `conversation.item.create` and asks `request_response()`; this bridge says
them in GPT-Live's words.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voiceclient.client.call_events import DelegationRequested
from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live

if TYPE_CHECKING:
    from voiceclient.client.dispatcher import Dispatcher
    from voiceclient.client.history import ConversationHistory
    from voiceclient.tools.registry import Tool
    from voiceclient.tools.runner import ToolRunner

log = logging.getLogger(__name__)
FINISHED = {"response.completed": "completed", "response.failed": "failed", "response.incomplete": "incomplete"}
REQUEST_WAIT = 1.5  # how long a task delegated to us waits for the user's words, when none came since the last
WORDS_PAUSE = 0.3  # ... and once they come, for a pause in them (the words of a turn come in a burst)
APPENDED = "appended"  # a client delegation's "response" status: nothing to continue, its answer is appended


class DelegatedTools:
    """`send` and `request_response` for a `ToolRunner` in a GPT-Live call; `subscribe` feeds it the calls."""

    def __init__(self, send: Callable[[live.ClientEvent], None], tools: list[Tool] | None = None) -> None:
        self._send = send
        self._runner: ToolRunner | None = None
        self._current: dict[str, str] = {}  # delegation (or "") -> the Responses response under way
        self._delegate: Tool | None = tools[0] if tools else None  # what answers the tasks delegated to us
        self._asked: dict[str, Tool] = {}  # a client delegation's id -> the tool answering it, until it has
        self._history: ConversationHistory | None = None
        self._publish: Callable[[DelegationRequested], None] | None = None
        self.continuing = False  # a `response.create` sent, the backend's answer not come yet (the call is busy)
        self._new_words = False  # the user said something since the last task delegated to us
        # client delegations waiting for the user's words: id -> (the event, until when, the timer that answers it)
        self._waiting: dict[str, tuple[live.DelegationCreated, float, asyncio.TimerHandle]] = {}

    def subscribe(
        self,
        dispatcher: Dispatcher,
        runner: ToolRunner,
        history: ConversationHistory | None = None,
    ) -> None:
        self._runner = runner
        self._history = history
        self._publish = dispatcher.publish
        dispatcher.on(live.ResponseEvent, self.on_response_event)
        dispatcher.on(live.DelegationCreated, self.on_delegation)
        dispatcher.on(live.InputTranscriptDelta, self.on_words)
        dispatcher.on(ev.Error, self.on_error)

    @property
    def busy(self) -> bool:
        """A continued delegation's answer has not come yet, or a task waits for the user's words."""
        return self.continuing or bool(self._waiting)

    def on_error(self, event: ev.Error) -> None:
        self.continuing = False  # (a refused `response.create` brings no answer)

    def on_delegation(self, event: live.DelegationCreated) -> None:
        """A task delegated to the application: once the user's words that ask for it are in (no new words since
        the last task: waited for, at most `REQUEST_WAIT` s), said to the application and run by the delegate."""
        if event.delegation.target != "client":
            return  # (Responses: the calls come in `response.event`)
        if self._new_words:
            self._answer(event)
            return
        loop = asyncio.get_running_loop()
        self._waiting[event.delegation.id] = (
            event,
            loop.time() + REQUEST_WAIT,
            loop.call_later(REQUEST_WAIT, self._answer, event),
        )

    def on_words(self, event: live.InputTranscriptDelta) -> None:
        """The user's words: a task waiting for them is answered once they pause (`WORDS_PAUSE`)."""
        self._new_words = True
        loop = asyncio.get_running_loop()
        for key, (task, deadline, timer) in list(self._waiting.items()):
            timer.cancel()
            at = min(deadline, loop.time() + WORDS_PAUSE)
            self._waiting[key] = (task, deadline, loop.call_at(at, self._answer, task))

    def close(self) -> None:
        """The call is ending: the tasks still waiting for the user's words are dropped."""
        for _task, _deadline, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()

    def _answer(self, event: live.DelegationCreated) -> None:
        """Say the task to the application (`DelegationRequested`); the delegate tool's output is appended under
        the delegation."""
        delegation_id = event.delegation.id
        waited = self._waiting.pop(delegation_id, None)
        if waited is not None:
            waited[2].cancel()
        self._new_words = False
        request = self._request()
        tool = self._delegate
        if self._publish is not None:
            name = tool.name if tool is not None else None
            self._publish(DelegationRequested(delegation_id, event.offset_ms, request, name))
        if tool is None or self._runner is None:
            return  # (the application answers it, or nothing does)
        self._asked[delegation_id] = tool
        self._runner.function_call(delegation_id, delegation_id, tool.name, json.dumps(arguments_for(tool, request)))
        self._runner.response_finished(delegation_id, APPENDED)

    def _request(self) -> str:
        """The user's latest words heard: the task the model delegated is in them."""
        for item in reversed(self._history.items if self._history is not None else []):
            if item.role == "user" and item.text:
                return item.text.strip()
        return ""

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
        elif kind in FINISHED:
            self.continuing = False  # (the backend's answer to our outputs has come, if we were waiting for it)
            if self._runner is None:
                return
            response = str((nested.get("response") or {}).get("id") or self._current.get(key, key))
            self._runner.response_finished(response, FINISHED[kind])

    # ------------------------------------------------------------------------------------------ the runner's
    def send(self, event: ev.ClientEvent) -> None:
        """A tool's output, as `response.item.create`; a client delegation's, appended under it."""
        if isinstance(event, ev.ConversationItemCreate) and event.item.type == "function_call_output":
            asked = self._asked.pop(event.item.call_id or "", None)
            if asked is not None:
                self._send(appended(event.item.call_id or "", event.item.output or "", spoken=asked.spoken))
                return
            item = {"type": "function_call_output", "call_id": event.item.call_id, "output": event.item.output}
            self._send(live.ResponseItemCreate.model_validate({"type": "response.item.create", "item": item}))
        else:  # (MCP approvals are the Realtime API's: a GPT-Live backend runs its MCP tools itself)
            log.warning("%s is not sent in a GPT-Live session", getattr(event, "type", type(event).__name__))

    def request_response(self, retry: bool = True) -> live.ResponseCreate:
        """Every call answered: one `response.create` continues the delegated response."""
        create = live.ResponseCreate(type="response.create")
        self._send(create)
        self.continuing = True
        return create


def arguments_for(tool: Tool, request: str) -> dict[str, Any]:
    """A delegate tool's arguments: the user's words in its first string parameter (none if it has none)."""
    for name, schema in (tool.parameters.get("properties") or {}).items():
        if isinstance(schema, dict) and schema.get("type") == "string":
            return {name: request}
    return {}


def appended(delegation_id: str, output: str, *, spoken: bool) -> live.ClientEvent:
    """A tool's output for a client delegation: its text (a JSON string as the string itself), as commentary to be
    said or silent thinking."""
    try:
        value = json.loads(output)
    except json.JSONDecodeError:
        value = output
    content = value if isinstance(value, str) else output
    if spoken:
        return live.CommentaryAppend(type="session.commentary.append", content=content, delegation_id=delegation_id)
    return live.ThinkingAppend(type="session.thinking.append", content=content, delegation_id=delegation_id)
