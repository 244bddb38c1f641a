"""GPT-Live's transcripts grouped into turns: `session.input_transcript.delta` and `.output_transcript.delta` come
with no `.done`, and the user's words may arrive after the assistant has begun to answer them, so turns are made
by the deltas' times (`start_ms`, `end_ms` on the session's clock), not by when they arrive:

- a delta continues its speaker's turn, unless the other side began speaking since that turn began (then it
  begins a new one);
- a turn ends when the other side speaks after it ended, when its speaker begins a new one, when no words of it
  came for `QUIET_SECONDS`, or when the session ends.

Each turn is a message in the call's history (`role` user or assistant, `audio`, its words so far), placed in the
order the turns were spoken, so the conversation reads as a Realtime call's; each finished turn is also the call's
own `TranscriptTurn` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from voiceclient.client.call_events import TranscriptTurn
from voiceclient.client.history import ConversationHistory, HistoryItem
from voiceclient.protocol import live_events as live
from voiceclient.protocol.events import new_id

if TYPE_CHECKING:
    from voiceclient.client.dispatcher import Dispatcher

Role = Literal["user", "assistant"]
QUIET_SECONDS = 1.5  # a turn with no new words for this long is over
OTHER: dict[Role, Role] = {"user": "assistant", "assistant": "user"}


@dataclass
class Turn:
    item: HistoryItem
    start_ms: int
    end_ms: int
    timer: asyncio.TimerHandle | None = None


class LiveTranscripts:
    """`LiveTranscripts(history, publish).subscribe(dispatcher)`."""

    def __init__(self, history: ConversationHistory, publish: Callable[[TranscriptTurn], None]) -> None:
        self.history = history
        self._publish = publish
        self._open: dict[Role, Turn] = {}
        self._began: dict[Role, int] = {}  # when each side's latest turn began (ms)
        self._starts: dict[str, int] = {}  # history item -> when its turn began (ms), for the order

    def subscribe(self, dispatcher: Dispatcher) -> None:
        dispatcher.on(live.InputTranscriptDelta, lambda e: self.delta("user", e.delta, e.start_ms, e.end_ms))
        dispatcher.on(live.OutputTranscriptDelta, lambda e: self.delta("assistant", e.delta, e.start_ms, e.end_ms))
        dispatcher.on(live.SessionClosed, lambda event: self.finish_all())

    def delta(self, role: Role, text: str, start_ms: int, end_ms: int) -> None:
        """Words of `role`, spoken from `start_ms` to `end_ms`."""
        other = self._open.get(OTHER[role])
        if other is not None and start_ms >= other.end_ms:
            self.finish(OTHER[role])  # this side spoke after the other's turn ended
        turn = self._open.get(role)
        if turn is not None and turn.start_ms < self._began.get(OTHER[role], -1) <= start_ms:
            self.finish(role)  # the other side began speaking since: a new turn
            turn = None
        if turn is None:
            item = HistoryItem(id=new_id("item"), type="message", role=role, text="", audio=True)
            self._place(item, start_ms)
            turn = self._open[role] = Turn(item, start_ms, end_ms)
            self._began[role] = start_ms
        turn.item.text = (turn.item.text or "") + text
        turn.end_ms = max(turn.end_ms, end_ms)
        if turn.timer is not None:
            turn.timer.cancel()
        turn.timer = asyncio.get_running_loop().call_later(QUIET_SECONDS, self._quiet, role, turn)

    def _place(self, item: HistoryItem, start_ms: int) -> None:
        """In the history after the turns that began before it (the user's words often arrive late)."""
        self._starts[item.id] = start_ms
        index = len(self.history.items)
        while index > 0 and self._starts.get(self.history.items[index - 1].id, -1) > start_ms:
            index -= 1
        self.history.items.insert(index, item)

    def _quiet(self, role: Role, turn: Turn) -> None:
        if self._open.get(role) is turn:
            self.finish(role)

    def finish(self, role: Role) -> None:
        """`role`'s turn under way is over: said once, as a `TranscriptTurn`."""
        turn = self._open.pop(role, None)
        if turn is None:
            return
        if turn.timer is not None:
            turn.timer.cancel()
        self._publish(TranscriptTurn(role=role, text=(turn.item.text or "").strip(), item_id=turn.item.id))

    def finish_all(self) -> None:
        """The session is over: every turn under way ends, the earlier first."""
        for role in sorted(self._open, key=lambda r: self._open[r].start_ms):
            self.finish(role)
