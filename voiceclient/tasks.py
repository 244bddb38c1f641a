"""Background tasks with an owner: every task a call starts is held, cancelled and awaited on close.

In the spirit of `asyncio.TaskGroup`, but for a long-lived object rather than a block: tasks are started at any
time with `spawn`, a task that fails is logged (it does not take its siblings down: one tool failing must not end
the call), and `close()` cancels whatever still runs and waits until all of it has unwound.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel a task we own and wait until it has finished unwinding (its own cancellation is not an error)."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():  # we are being cancelled ourselves: pass it on
            raise


async def in_daemon_thread(fn: Callable[..., T], /, *args: Any, name: str = "voiceclient-worker", **kwargs: Any) -> T:
    """Run a blocking function in its own daemon thread, like `asyncio.to_thread` (context variables included),
    for code we do not own that may never return (a user's tool).

    `to_thread`'s pool is joined when the loop and the interpreter shut down, so one hung function keeps the
    process alive forever after its caller gave up. A daemon thread is abandoned instead: cancelling the await
    stops waiting for it, and the process ends when it has nothing else to do."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller stopped waiting
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = call()
        except BaseException as exc:
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed while the function ran: nobody is waiting
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future


class TaskOwner:
    """Holds the background tasks of one object (a call, a tool runner, a server call)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Start `coro` as a task owned here. After `close()` nothing new may start."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name}: closed, cannot start {name or coro!r}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}" if name else None)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: task %s failed: %s", self.name, task.get_name(), exc, exc_info=exc)

    @property
    def closed(self) -> bool:
        """`close()` has begun: nothing new may start."""
        return self._closed

    async def close(self) -> None:
        """Cancel every task still running (except the caller's own) and wait until all have unwound."""
        self._closed = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
