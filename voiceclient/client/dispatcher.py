"""The one subscription model of a call, and its ordered consumer: handlers run one event at a time, in order.

Consumers subscribe by event class (`on(ev.ResponseDone, handler)`, the handler typed for that class; a base
class such as `ev.ServerEvent` matches all its subclasses), by wire type (`on("response.done", handler)`), or to
every server event (`on_any`); each subscription returns a function that ends it. For each event the matching
handlers run in the order they subscribed, so the state tracker that subscribes first is up to date when the
others look at it. Server events are queued (`put`) and handled by one consumer task; the call's own events
(`voiceclient.client.call_events`) are handed to the same subscriptions at once (`publish`), and `on_any` does not
take them. A handler that raises is logged and reported through `on_handler_error`; the loop never dies on input.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from voiceclient.client.call_events import CallEvent
from voiceclient.protocol.events import ReceivedServerEvent
from voiceclient.tasks import cancel_and_wait

log = logging.getLogger(__name__)
E = TypeVar("E")
AnyHandler = Callable[[ReceivedServerEvent], object]
Unsubscribe = Callable[[], None]
Kind = type[Any] | str | None  # an event class, a wire type, or None: every server event


class Dispatcher:
    def __init__(
        self, on_handler_error: Callable[[ReceivedServerEvent | CallEvent, BaseException], None] | None = None
    ) -> None:
        self._subscriptions: list[tuple[Kind, Callable[[Any], object]]] = []
        self._routes: dict[tuple[type[Any], str], list[Callable[[Any], object]]] = {}
        self._queue: asyncio.Queue[ReceivedServerEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._detached: set[asyncio.Future[Any]] = set()  # what async handlers of the call's own events return
        self.on_handler_error = on_handler_error

    @overload
    def on(self, kind: type[E], handler: Callable[[E], object]) -> Unsubscribe: ...

    @overload
    def on(self, kind: str, handler: AnyHandler) -> Unsubscribe: ...

    def on(self, kind: type[Any] | str, handler: Callable[[Any], object]) -> Unsubscribe:
        """Call `handler` for every event of class `kind` (or a subclass), or of wire type `kind`."""
        return self.subscribe(kind, handler)

    def on_any(self, handler: AnyHandler) -> Unsubscribe:
        """Call `handler` for every server event, known, unknown or malformed."""
        return self.subscribe(None, handler)

    def subscribe(self, kind: Kind, handler: Callable[[Any], object]) -> Unsubscribe:
        """`handler` for the events of `kind` (None: every server event); returns what ends the subscription."""
        entry = (kind, handler)
        self._subscriptions.append(entry)
        self._routes.clear()

        def unsubscribe() -> None:
            for i, candidate in enumerate(self._subscriptions):
                if candidate is entry:
                    del self._subscriptions[i]
                    self._routes.clear()
                    return

        return unsubscribe

    def handlers_for(self, event: ReceivedServerEvent | CallEvent) -> list[Callable[[Any], object]]:
        key = (type(event), event.type)
        route = self._routes.get(key)
        if route is None:
            own = isinstance(event, CallEvent)
            route = self._routes[key] = [
                handler
                for kind, handler in self._subscriptions
                if (kind is None and not own)
                or kind == event.type
                or (isinstance(kind, type) and isinstance(event, kind))
            ]
        return route

    def publish(self, event: CallEvent) -> None:
        """Hand one of the call's own events to its subscribers now, in the order they subscribed (an async
        handler's coroutine runs as its own task)."""
        for handler in self.handlers_for(event):
            try:
                result = handler(event)
                if result is not None and inspect.isawaitable(result):  # (most return None: 100 frames a second)
                    task = asyncio.ensure_future(result)
                    self._detached.add(task)
                    task.add_done_callback(self._detached.discard)
            except Exception as exc:
                log.exception("event handler failed on %s", event.type)
                if self.on_handler_error is not None:
                    self.on_handler_error(event, exc)

    def put(self, event: ReceivedServerEvent) -> None:
        self._queue.put_nowait(event)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voiceclient: event dispatcher")

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.handle(event)
            finally:
                self._queue.task_done()

    async def handle(self, event: ReceivedServerEvent) -> None:
        """Run the handlers of one event now (the consumer task does this for queued events)."""
        for handler in self.handlers_for(event):
            try:
                result = handler(event)
                if result is not None and inspect.isawaitable(result):
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
            async with asyncio.timeout(timeout):
                await self._queue.join()
        except TimeoutError:
            log.warning("%d events still unhandled after %.1f s", self._queue.qsize(), timeout)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
