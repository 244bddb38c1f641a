"""The Responses backend of a GPT-Live session with Responses delegation (`delegation: {type: "responses"}`), as
`serve` emulates it: the Responses streaming events it sends (each wrapped by the dialect in a `response.event`
envelope), and which function calls are open, answered, or waiting for `response.create`.

The voice model has no tools. When the responder plans a function call, the backend makes it: a Responses
response (`response.created`, the `function_call` item, its arguments, `response.completed`) under one
delegation. The application answers every open call with `response.item.create` (`function_call_output`) and
then one `response.create`; the backend's next response (under the same delegation) writes the answer as a
message, which the voice model then says. The shapes are the Responses API's (`openai.types.responses`); the
text and the calls are the responder's plan, not a model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id

Envelope = tuple[dict[str, Any], str]  # (a Responses streaming event, the delegation it belongs to)


@dataclass
class BackendResponse:
    """One Responses response of the backend, streaming while a voice response runs."""

    id: str
    delegation_id: str
    created_at: int = field(default_factory=lambda: int(time.time()))
    sequence: int = 0
    outputs: int = 0  # output items so far (the next one's output_index)


class ResponsesBackend:
    """One per session with Responses delegation (`config`: the session's `delegation.responses`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.running: dict[str, BackendResponse] = {}  # voice response id -> the backend response streaming in it
        self.continues: dict[str, str] = {}  # voice response id -> the delegation that response continues
        self.item_ids: dict[str, tuple[str, int]] = {}  # core item id -> (the backend's item id, output_index)
        self.open: dict[str, str] = {}  # call id -> delegation id: calls made and not answered yet
        self.answered: dict[str, str] = {}  # call id -> delegation id: answered since the last response.create
        self.delegations: set[str] = set()

    # ------------------------------------------------------------------------------------------ the client's side
    def take_output(self, item: dict[str, Any]) -> dict[str, Any]:
        """A `response.item.create`'s item, checked: a `function_call_output` for an open call (raises
        ProtocolError otherwise). Returns it as the core's conversation item."""
        if item.get("type") != "function_call_output":
            raise ProtocolError(
                f"Invalid value: '{item.get('type')}'. voiceclient serve's Responses backend takes only "
                "function_call_output items.",
                "invalid_value",
                "item.type",
            )
        call_id = item["call_id"]
        if call_id not in self.open:  # (the Responses API's words for a call it does not know)
            raise ProtocolError(
                f"No tool call found for function call output with call_id {call_id}.", "invalid_value", "item.call_id"
            )
        self.answered[call_id] = self.open.pop(call_id)
        return {"type": "function_call_output", "call_id": call_id, "output": item["output"]}

    def continuation(self) -> str:
        """`response.create`: the delegation the backend's next response continues. Refused while a call is
        unanswered (whichever delegation it belongs to), and when no call has been answered since the last one."""
        if self.open:
            call_id = next(iter(self.open))
            raise ProtocolError(f"No tool output found for function call {call_id}.", "invalid_request_error")
        if not self.answered:
            raise ProtocolError(
                "No delegated response is waiting for tool results: voiceclient serve's Responses backend answers "
                "response.create only after function_call_output items.",
                "invalid_value",
                "type",
            )
        delegation_id = list(self.answered.values())[-1]
        self.answered.clear()
        return delegation_id

    def continuing(self, voice_response_id: str, delegation_id: str) -> None:
        """The voice response `voice_response_id` runs the backend's next turn of `delegation_id`."""
        self.continues[voice_response_id] = delegation_id

    # ------------------------------------------------------------------------------------------ the events
    def _event(self, resp: BackendResponse, kind: str, **fields: Any) -> Envelope:
        event = {"type": kind, "sequence_number": resp.sequence, **fields}
        resp.sequence += 1
        return event, resp.delegation_id

    def _snapshot(self, resp: BackendResponse, status: str) -> dict[str, Any]:
        """The response as lifecycle events show it: no input, and no instructions, tools nor output."""
        choice = self.config.get("tool_choice")
        return {
            "id": resp.id,
            "object": "response",
            "created_at": resp.created_at,
            "status": status,
            "model": self.config["model"],
            "output": [],
            "parallel_tool_calls": self.config.get("parallel_tool_calls", True),
            "tool_choice": choice if isinstance(choice, str) else "auto",
            "tools": [],
            "instructions": None,
            "error": None,
            "incomplete_details": None,
            "metadata": {},
        }

    def begin(self, voice_response_id: str) -> tuple[BackendResponse, list[Envelope], bool]:
        """The backend response streaming in `voice_response_id`, started if need be: (it, the events that start
        it, whether it starts a new delegation)."""
        resp = self.running.get(voice_response_id)
        if resp is not None:
            return resp, [], False
        delegation_id = self.continues.get(voice_response_id)
        new = delegation_id is None
        if delegation_id is None:
            delegation_id = new_id("deleg")
            self.delegations.add(delegation_id)
        resp = BackendResponse(new_id("resp"), delegation_id)
        self.running[voice_response_id] = resp
        events = [
            self._event(resp, "response.created", response=self._snapshot(resp, "in_progress")),
            self._event(resp, "response.in_progress", response=self._snapshot(resp, "in_progress")),
        ]
        return resp, events, new

    def call_added(self, resp: BackendResponse, item: dict[str, Any]) -> list[Envelope]:
        fc_id = new_id("fc")
        index = resp.outputs
        resp.outputs += 1
        self.item_ids[item["id"]] = (fc_id, index)
        self.open[item["call_id"]] = resp.delegation_id
        added = {
            "type": "function_call",
            "id": fc_id,
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": "",
            "status": "in_progress",
        }
        return [self._event(resp, "response.output_item.added", output_index=index, item=added)]

    def arguments_delta(self, voice_response_id: str, item_id: str, delta: str) -> list[Envelope]:
        resp = self.running.get(voice_response_id)
        if resp is None or item_id not in self.item_ids:
            return []
        fc_id, index = self.item_ids[item_id]
        return [
            self._event(resp, "response.function_call_arguments.delta", item_id=fc_id, output_index=index, delta=delta)
        ]

    def arguments_done(self, voice_response_id: str, item_id: str, name: str, arguments: str) -> list[Envelope]:
        resp = self.running.get(voice_response_id)
        if resp is None or item_id not in self.item_ids:
            return []
        fc_id, index = self.item_ids[item_id]
        return [
            self._event(
                resp,
                "response.function_call_arguments.done",
                item_id=fc_id,
                output_index=index,
                name=name,
                arguments=arguments,
            )
        ]

    def call_done(self, voice_response_id: str, item: dict[str, Any]) -> list[Envelope]:
        resp = self.running.get(voice_response_id)
        if resp is None or item["id"] not in self.item_ids:
            return []
        fc_id, index = self.item_ids[item["id"]]
        done = {
            "type": "function_call",
            "id": fc_id,
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
            "status": "completed",
        }
        return [self._event(resp, "response.output_item.done", output_index=index, item=done)]

    def message(self, voice_response_id: str, text: str) -> list[Envelope]:
        """The backend writes an answer (a continuation's message), whole, before the voice model says it; the
        backend response then completes."""
        resp, events, _ = self.begin(voice_response_id)
        msg_id = new_id("msg")
        index = resp.outputs
        resp.outputs += 1
        ids = {"item_id": msg_id, "output_index": index}
        empty = {"type": "output_text", "text": "", "annotations": []}
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"type": "message", "id": msg_id, "role": "assistant", "status": "in_progress", "content": []}
        events.append(self._event(resp, "response.output_item.added", output_index=index, item=item))
        events.append(self._event(resp, "response.content_part.added", **ids, content_index=0, part=empty))
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = word if i == len(words) - 1 else word + " "
            events.append(
                self._event(resp, "response.output_text.delta", **ids, content_index=0, delta=delta, logprobs=[])
            )
        events.append(self._event(resp, "response.output_text.done", **ids, content_index=0, text=text, logprobs=[]))
        events.append(self._event(resp, "response.content_part.done", **ids, content_index=0, part=part))
        done = {**item, "status": "completed", "content": [part]}
        events.append(self._event(resp, "response.output_item.done", output_index=index, item=done))
        events += self.finish(voice_response_id)
        return events

    def finish(self, voice_response_id: str, *, ended: bool = False) -> list[Envelope]:
        """The backend response streaming in `voice_response_id` completes (if there is one); `ended`: the voice
        response has ended too."""
        if ended:
            self.continues.pop(voice_response_id, None)
        resp = self.running.pop(voice_response_id, None)
        if resp is None:
            return []
        return [self._event(resp, "response.completed", response=self._snapshot(resp, "completed"))]
