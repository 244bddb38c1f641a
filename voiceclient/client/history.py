"""The conversation as the server reports it, kept on the client: what was said and done, in the server's order.

Built only from server events (so it is what the model has, not what the client meant to send):
`conversation.item.added/done` place an item after its `previous_item_id`; user audio gets its words from
`conversation.item.input_audio_transcription.completed`; an assistant message its text from the
`response.output_audio_transcript.done` / `response.output_text.done` (and the final item); function calls and
their outputs are kept with their `call_id`; `conversation.item.deleted` removes an item; `conversation.item.truncated`
marks where the user cut the assistant off (the text is what the server reported for the item; the embedded server
reports only the words whose audio had started, the hosted service removes the unheard transcript itself).

`replay_items()` gives the client items that re-create it in a new session (assistant audio as its transcript), the
piece a call that outlives its connection needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from voiceclient.protocol import events as ev

if TYPE_CHECKING:
    from voiceclient.client.dispatcher import Dispatcher


@dataclass
class HistoryItem:
    id: str
    type: str  # message, function_call, function_call_output, mcp_*
    role: str | None = None  # user, assistant, system (messages)
    text: str | None = None  # typed text, or the transcript of spoken audio
    audio: bool = False  # the content was audio (its words are in `text` once known)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    truncated_ms: int | None = None  # the assistant was cut off here

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


class ConversationHistory:
    def __init__(self) -> None:
        self.items: list[HistoryItem] = []
        self._base = 0  # where the current session's conversation starts (after what it was not given)

    def subscribe(self, dispatcher: Dispatcher) -> None:
        dispatcher.on(ev.ConversationItemAdded, self.on_item)
        dispatcher.on(ev.ConversationItemDone, self.on_item)
        dispatcher.on(ev.ConversationItemCreated, self.on_item)
        dispatcher.on(ev.InputTranscriptionCompleted, self.on_user_transcript)
        dispatcher.on(ev.ResponseOutputAudioTranscriptDone, self.on_assistant_transcript)
        dispatcher.on(ev.ResponseOutputTextDone, self.on_assistant_text)
        dispatcher.on(ev.ConversationItemDeleted, self.on_deleted)
        dispatcher.on(ev.ConversationItemTruncated, self.on_truncated)

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> HistoryItem | None:
        return next((it for it in self.items if it.id == item_id), None)

    # ------------------------------------------------------------------------------------------ events
    def on_item(self, event: ev.ConversationItemAdded | ev.ConversationItemDone | ev.ConversationItemCreated) -> None:
        item = event.item
        if item.id is None:
            return
        known = self.get(item.id)
        entry = known or HistoryItem(id=item.id, type=item.type)
        entry.role = item.role or entry.role
        entry.call_id = item.call_id or entry.call_id
        entry.name = item.name or entry.name
        entry.arguments = item.arguments if item.arguments is not None else entry.arguments
        entry.output = item.output if item.output is not None else entry.output
        parts = item.content or []
        entry.audio = entry.audio or any(p.type in ("input_audio", "output_audio", "audio") for p in parts)
        said = "".join(p.transcript or p.text or "" for p in parts)
        if said or (parts and entry.text is None and not entry.audio):
            entry.text = said
        if known is None:
            self._place(entry, event.previous_item_id)

    def _place(self, entry: HistoryItem, previous: str | None) -> None:
        """After `previous`; first of the current session when there is none ("root" or null); last when it is
        unknown to us."""
        if previous is None or previous == "root":
            self.items.insert(self._base, entry)
            return
        index = next((i for i, it in enumerate(self.items) if it.id == previous), None)
        self.items.insert(len(self.items) if index is None else index + 1, entry)

    def new_session(self, replayed: int) -> None:
        """The conversation moved to a new session that was given `replayed` of these items (under their ids):
        an item it puts first goes first if it was given any, else after everything known."""
        self._base = 0 if replayed else len(self.items)

    def on_user_transcript(self, event: ev.InputTranscriptionCompleted) -> None:
        entry = self.get(event.item_id)
        if entry is not None:
            entry.text = event.transcript

    def on_assistant_transcript(self, event: ev.ResponseOutputAudioTranscriptDone) -> None:
        entry = self.get(event.item_id)
        if entry is not None:
            entry.text = event.transcript

    def on_assistant_text(self, event: ev.ResponseOutputTextDone) -> None:
        entry = self.get(event.item_id)
        if entry is not None:
            entry.text = event.text

    def on_deleted(self, event: ev.ConversationItemDeleted) -> None:
        self.items = [it for it in self.items if it.id != event.item_id]

    def on_truncated(self, event: ev.ConversationItemTruncated) -> None:
        entry = self.get(event.item_id)
        if entry is not None:
            entry.truncated_ms = event.audio_end_ms

    # ------------------------------------------------------------------------------------------ replay
    def replay_items(self) -> list[ev.Item]:
        """Client items that re-create this conversation in a new session, in order, under the same item ids (so
        the new session's later items point at items this history knows). MCP items are left out: the new session
        lists its MCP tools itself."""
        out: list[ev.Item] = []
        for it in self.items:
            if it.type == "message" and it.role in ("user", "system") and it.text:
                out.append(
                    ev.Item(
                        id=it.id,
                        type="message",
                        role=it.role,
                        content=[ev.ContentPart(type="input_text", text=it.text)],
                    )
                )
            elif it.type == "message" and it.role == "assistant" and it.text:
                out.append(
                    ev.Item(
                        id=it.id,
                        type="message",
                        role="assistant",
                        content=[ev.ContentPart(type="output_text", text=it.text)],
                    )
                )
            elif it.type == "function_call" and it.call_id and it.name:
                out.append(
                    ev.Item(
                        id=it.id, type="function_call", call_id=it.call_id, name=it.name, arguments=it.arguments or "{}"
                    )
                )
            elif it.type == "function_call_output" and it.call_id and it.output is not None:
                out.append(ev.Item(id=it.id, type="function_call_output", call_id=it.call_id, output=it.output))
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [it.to_json() for it in self.items]
