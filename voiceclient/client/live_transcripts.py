"""GPT-Live's transcripts grouped into turns: `session.input_transcript.delta` and `.output_transcript.delta` come
with no `.done`, so a turn ends when the other side's words begin, or when the session ends.

Each turn is a message in the call's history (`role` user or assistant, `audio`, its words so far), so the
conversation reads as a Realtime call's; each finished turn is also the call's own `TranscriptTurn` event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from voiceclient.client.call_events import TranscriptTurn
from voiceclient.client.history import ConversationHistory, HistoryItem
from voiceclient.protocol import live_events as live
from voiceclient.protocol.events import new_id

if TYPE_CHECKING:
    from voiceclient.client.dispatcher import Dispatcher

Role = Literal["user", "assistant"]


class LiveTranscripts:
    """`LiveTranscripts(history, publish).subscribe(dispatcher)`."""

    def __init__(self, history: ConversationHistory, publish: Callable[[TranscriptTurn], None]) -> None:
        self.history = history
        self._publish = publish
        self._turn: tuple[Role, HistoryItem] | None = None

    def subscribe(self, dispatcher: Dispatcher) -> None:
        dispatcher.on(live.InputTranscriptDelta, lambda event: self.delta("user", event.delta))
        dispatcher.on(live.OutputTranscriptDelta, lambda event: self.delta("assistant", event.delta))
        dispatcher.on(live.SessionClosed, lambda event: self.finish())

    def delta(self, role: Role, text: str) -> None:
        """Words of `role`'s turn: the turn goes on, or the other side's ends and this one begins."""
        if self._turn is not None and self._turn[0] != role:
            self.finish()
        if self._turn is None:
            item = HistoryItem(id=new_id("item"), type="message", role=role, text="", audio=True)
            self.history.items.append(item)
            self._turn = (role, item)
        self._turn[1].text = (self._turn[1].text or "") + text

    def finish(self) -> None:
        """The turn under way is over: said once, as a `TranscriptTurn`."""
        turn, self._turn = self._turn, None
        if turn is not None:
            role, item = turn
            self._publish(TranscriptTurn(role=role, text=(item.text or "").strip(), item_id=item.id))
