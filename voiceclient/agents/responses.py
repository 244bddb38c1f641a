"""`ResponseGate`: one `response.create` at a time, after the response in progress, as the SDK's WebSocket model
sequences them (the Realtime API refuses a create while a response runs).

Each request to create a response takes a version (`reserve`); its sender waits for its `turn`: no response in
progress, none asked for and not yet answered, none being cancelled, and no older request waiting. A plain
(automatic) create then answers every plain request waiting up to the next explicit one (`manual`: the app's own
`response.create`, with its parameters, sent as it is); the others' senders find theirs answered and send nothing.
"""

from __future__ import annotations

import asyncio


class ResponseGate:
    """Where responses stand for the SDK's model: in progress, asked for, being cancelled; who may ask next."""

    def __init__(self) -> None:
        self.ongoing = False
        self.ongoing_id: str | None = None
        self.asked: str | None = None  # the event id of the create sent and not answered yet
        self.cancelling = False
        self._waiting: set[int] = set()  # versions of the requests not yet answered
        self._manual: set[int] = set()
        self._version = 0
        self._counter = 0
        self._changed = asyncio.Condition()

    @property
    def pending(self) -> bool:
        """A create is waiting to be sent, or sent and not answered."""
        return bool(self._waiting) or self.asked is not None

    async def reserve(self, *, manual: bool = False) -> int:
        """A request for a response; the version its sender waits with."""
        async with self._changed:
            self._version += 1
            self._waiting.add(self._version)
            if manual:
                self._manual.add(self._version)
            self._changed.notify_all()
            return self._version

    async def turn(self, version: int, event_id: str | None = None) -> str | None:
        """Wait until request `version` may be sent; the event id to send it with (marked asked), or None when a
        create sent meanwhile answered it (or the gate was reset)."""
        async with self._changed:
            await self._changed.wait_for(lambda: version not in self._waiting or self._free(version))
            if version not in self._waiting:
                return None
            if event_id is None:
                self._counter += 1
                event_id = f"voiceclient_agents_response_create_{self._counter}"
            self.asked = event_id
            return event_id

    def _free(self, version: int) -> bool:
        return not self.ongoing and self.asked is None and not self.cancelling and min(self._waiting) == version

    async def sent(self, version: int, *, manual: bool) -> None:
        """Request `version` went out: it answers itself and, a plain one, the plain requests after it up to the
        next explicit one."""
        async with self._changed:
            if manual:
                covered = {version}
            else:
                later_manual = [v for v in self._manual if v > version]
                limit = min(later_manual) if later_manual else self._version + 1
                covered = {v for v in self._waiting if v < limit}
            self._waiting -= covered
            self._manual -= covered
            self._changed.notify_all()

    async def created(self, response_id: str | None) -> None:
        """`response.created`: a response runs (ours, or one the server started)."""
        async with self._changed:
            self.ongoing, self.ongoing_id = True, response_id
            self.asked = None
            self.cancelling = False
            self._changed.notify_all()

    async def done(self, response_id: str | None) -> None:
        """`response.done` (of another response than the one in progress: ignored)."""
        async with self._changed:
            if response_id is not None and self.ongoing_id is not None and response_id != self.ongoing_id:
                return
            self.ongoing, self.ongoing_id = False, None
            self.asked = None
            self.cancelling = False
            self._changed.notify_all()

    async def refused(self, event_id: str | None, names_create: bool) -> bool:
        """An error: if it answers the create asked for (by its event id; without one, an error about
        `response.create`), that create is dropped and the next request may go. Whether it did."""
        async with self._changed:
            if self.ongoing or self.asked is None:
                return False
            if event_id != self.asked and not (event_id is None and names_create):
                return False
            self.asked = None
            self._changed.notify_all()
            return True

    async def failed(self, version: int) -> None:
        """Request `version` could not be sent: dropped, and the next request may go."""
        async with self._changed:
            self._waiting.discard(version)
            self._manual.discard(version)
            self.asked = None
            self._changed.notify_all()

    async def begin_cancel(self, response_id: str | None) -> bool:
        """Whether to send `response.cancel`: a response runs, is not being cancelled, and is `response_id` (if
        given and known)."""
        async with self._changed:
            if not self.ongoing or self.cancelling:
                return False
            if response_id is not None and self.ongoing_id is not None and response_id != self.ongoing_id:
                return False
            self.cancelling = True
            return True

    async def end_cancel(self) -> None:
        """The cancel could not be sent."""
        async with self._changed:
            self.cancelling = False
            self._changed.notify_all()

    async def connection_changed(self) -> None:
        """A new connection carries the call: what ran or was asked on the old one is gone with it (the requests
        not yet sent go on the new one)."""
        async with self._changed:
            self.ongoing, self.ongoing_id = False, None
            self.asked = None
            self.cancelling = False
            self._changed.notify_all()

    async def reset(self) -> None:
        """The call is closed: nothing runs, nothing waits (the waiting senders return)."""
        async with self._changed:
            self.ongoing, self.ongoing_id = False, None
            self.asked = None
            self.cancelling = False
            self._waiting.clear()
            self._manual.clear()
            self._changed.notify_all()
