"""What the parts of a server session share: its id, the current session object, the way out and the protocol it
speaks (`server/dialect.py`), the backends and the one owner of its background tasks. Each part gets this narrow
context, never the session object itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voiceclient.server.dialect import Dialect, Wire
from voiceclient.server.inbox import Inbox
from voiceclient.server.responders import Responder, listens
from voiceclient.server.speech_port import OfflineSpeech
from voiceclient.tasks import TaskOwner

Send = Callable[[list[Wire]], None]  # what one happening became on the wire (built by the session's dialect)
Post = Callable[[Inbox], None]  # into the session's one ordered inbox


@dataclass
class SessionContext:
    id: str
    session: dict[str, Any]  # the full current session; replaced (not mutated) by session.update
    send: Send
    post: Post
    tasks: TaskOwner
    responder: Responder
    speech: OfflineSpeech | None = None
    dialect: Dialect = field(kw_only=True)  # the wire protocol: every event the parts send is built by it
    on_response_done: Callable[[], None] = field(default=lambda: None, kw_only=True)  # (after_turns faults)

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.session["audio"]["input"]["turn_detection"]
        return td

    @property
    def transcription_requested(self) -> bool:
        return self.session["audio"]["input"].get("transcription") is not None

    @property
    def listening_responder(self) -> bool:
        """The responder wants the transcript of each user turn (the offline agent)."""
        return listens(self.responder)

    def later(self, seconds: float, message: Inbox) -> asyncio.TimerHandle:
        """Post `message` into the ordered inbox after `seconds`."""
        return asyncio.get_running_loop().call_later(seconds, self.post, message)
