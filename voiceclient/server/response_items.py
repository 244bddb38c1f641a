"""A running response's state (`ActiveResponse`), and how the items of its output are announced (`OutputItems`:
`response.output_item.added/done`, and the conversation's `conversation.item.added/done` unless the response is out
of band, whose items go into a scratch conversation no client sees)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation
from voiceclient.server.steering import Steering, TokenBudget


@dataclass
class ActiveResponse:
    id: str
    obj: dict[str, Any]
    # Where its items go: the session's conversation, or (out of band) a scratch one no client sees.
    conversation: Conversation = field(default_factory=Conversation)
    out_of_band: bool = False
    steering: Steering = field(default_factory=Steering)
    # `audio.output.speed` as the response began: an update while it runs applies from the next one ([docs]
    # "can only be changed in between model turns, not while a response is in progress").
    speed: float = 1.0
    budget: TokenBudget = field(default_factory=TokenBudget)  # max_output_tokens: spent, it ends `incomplete`
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    failure: ProtocolError | None = None  # the server cut it short (shutting down): it ends `failed`
    audio_items: list[tuple[dict[str, Any], int, int]] = field(default_factory=list)  # item, start, end
    queued: int = 0  # samples queued for output (at the output's rate)
    cleared: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False  # `response.done` sent


class OutputItems:
    """Announces the items of a response's output, through the session's dialect."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx

    def added(self, resp: ActiveResponse, index: int, item: dict[str, Any]) -> str | None:
        """The item joins the response's output and its conversation; returns the id of the item before it (none
        for an out-of-band response: its conversation is not the client's)."""
        resp.obj["output"].append(item)
        previous = resp.conversation.add_output(item)
        if resp.out_of_band:
            previous = None
        self.ctx.send(
            self.ctx.dialect.output_item_added(resp.id, index, item, previous, in_conversation=not resp.out_of_band)
        )
        return previous

    def done(
        self, resp: ActiveResponse, index: int, item: dict[str, Any], previous: str | None, status: str | None = None
    ) -> None:
        """The item is complete (with `status`, when it has one to set)."""
        if status is not None:
            item["status"] = status
        self.ctx.send(
            self.ctx.dialect.output_item_done(resp.id, index, item, previous, in_conversation=not resp.out_of_band)
        )
