"""One ordered consumer for the events of a call: handlers run one event at a time, in arrival order.

A handler that raises is logged and reported through `on_handler_error`; the loop never dies on input.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any
from collections.abc import Callable

from voiceclient.tasks import cancel_and_wait

log = logging.getLogger(__name__)
Handler = Callable[[Any], Any]


class Dispatcher:
    def __init__(self, on_handler_error: Callable[[Any, BaseException], None] | None = None) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_handler_error = on_handler_error

    def on(self, event_type: str, handler: Handler) -> None:
        """Register `handler` for one event type, or for every event with `"*"`."""
        self._handlers.setdefault(event_type, []).append(handler)

    def put(self, event: Any) -> None:
        self._queue.put_nowait(event)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._handle(event)
            finally:
                self._queue.task_done()

    async def _handle(self, event: Any) -> None:
        for handler in self._handlers.get(event.type, []) + self._handlers.get("*", []):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("event handler failed on %s", event.type)
                if self.on_handler_error is not None:
                    self.on_handler_error(event, exc)

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until every queued event has been handled."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("%d events still unhandled after %.1f s", self._queue.qsize(), timeout)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
