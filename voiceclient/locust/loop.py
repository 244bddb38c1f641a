"""One asyncio event loop for a Locust process, in a native thread, and greenlets that wait on it without blocking
gevent's hub.

Locust runs its users as greenlets on gevent, with the standard library monkey-patched; voiceclient is asyncio.
`shared_loop()` starts one event loop for the whole process in a real OS thread (gevent's original
`start_new_thread`), and `EventLoopThread.run(coro)` runs a coroutine there: the calling greenlet sleeps on a
gevent async watcher that the loop's thread fires when the coroutine ends (libev's thread-safe wake-up), so the
other users, and Locust's own greenlets, go on meanwhile. A greenlet killed while it waits (the test stopping)
cancels its coroutine and waits a little for it to clean up (a call hangs up).

The loop's thread runs no gevent hub, so what the loop does must not wait on gevent: it polls with the original
epoll (gevent replaces `selectors.DefaultSelector` with its own), and its default executor (DNS lookups,
`run_in_executor`) runs each job in a native thread of its own, where `concurrent.futures`' pool would start
greenlets that never run.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import selectors
import socket
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import gevent
import gevent.event
from gevent import monkey

T = TypeVar("T")
P = ParamSpec("P")
CLEANUP_SECONDS = 5.0  # how long a greenlet killed while it waits gives its coroutine to finish

start_new_thread = monkey.get_original("_thread", "start_new_thread")
allocate_lock = monkey.get_original("_thread", "allocate_lock")
# What a job of the loop's executor runs instead of gevent's patched function of the same name (gevent's resolver
# would start a hub and a thread pool in each job's thread).
NATIVE = {
    getattr(socket, name): monkey.get_original("socket", name)
    for name in ("getaddrinfo", "getnameinfo", "gethostbyname")
}


# `selectors.EpollSelector` on the original `select.epoll` (gevent removes the class from `selectors`, and replaces
# `select.epoll`).
NativeEpollSelector: type[selectors.BaseSelector] = type(
    "NativeEpollSelector",
    (monkey.get_original("selectors", "EpollSelector"),),
    {"_selector_cls": monkey.get_original("select", "epoll")},
)


class NativeThreads(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: each job in a native thread of its own."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        """Run `fn(*args, **kwargs)` in a new native thread; its future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        run: Callable[..., T] = NATIVE.get(fn, fn)

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = run(*args, **kwargs)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        start_new_thread(job, ())
        return future


class Job:
    """A coroutine handed to the loop: started there, cancelled there, and its outcome read once it is done."""

    def __init__(self, coro: Coroutine[Any, Any, Any], wake: Callable[[], None]) -> None:
        self.coro = coro
        self.wake = wake
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.coro)
        self.task.add_done_callback(lambda _: self.wake())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class EventLoopThread:
    """An asyncio event loop running in a native thread: `run(coro)` from any greenlet. `close()` stops it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._started = allocate_lock()
        self._stopped = allocate_lock()
        self._started.acquire()
        self._stopped.acquire()
        start_new_thread(self._main, ())
        self._started.acquire()  # (milliseconds: the loop is made in its own thread)

    def _main(self) -> None:
        loop = asyncio.SelectorEventLoop(NativeEpollSelector())
        asyncio.set_event_loop(loop)
        loop.set_default_executor(NativeThreads(max_workers=1))
        self.loop = loop
        self._started.release()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            gc.collect()  # what was left of the calls is finalised here, while logging still works in this thread
            loop.close()
            self._stopped.release()

    async def _wind_down(self) -> None:
        """Cancel what still runs (calls under way hang up) and wait for it, at most CLEANUP_SECONDS; then stop."""
        loop = asyncio.get_running_loop()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=CLEANUP_SECONDS)
        loop.stop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result (or raise its exception); only the calling greenlet
        waits."""
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError("the event loop thread is closed")
        hub = gevent.get_hub()
        watcher = hub.loop.async_()
        done = gevent.event.Event()
        watcher.start(done.set)
        job = Job(coro, watcher.send)  # (send: libev's wake-up, safe from any thread)
        try:
            loop.call_soon_threadsafe(job.start)
            done.wait()
        except BaseException:  # killed (GreenletExit), timed out, interrupted: the coroutine is cancelled too
            if not loop.is_closed():
                loop.call_soon_threadsafe(job.cancel)
                done.wait(CLEANUP_SECONDS)
            raise
        finally:
            watcher.stop()
            watcher.close()
        assert job.task is not None and job.task.done()
        result: T = job.task.result()
        return result

    def close(self) -> None:
        """Cancel what still runs on the loop, wait for it to finish (a call under way hangs up), stop the loop and
        wait for its thread. Idempotent. (At exit: Locust ends its users' greenlets without waiting for them.)"""
        loop = self.loop
        if loop is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(RuntimeError):  # (closed meanwhile)
            loop.call_soon_threadsafe(lambda: loop.create_task(self._wind_down()))
        self._stopped.acquire(timeout=2 * CLEANUP_SECONDS)


_shared: EventLoopThread | None = None


def shared_loop() -> EventLoopThread:
    """The process's one event loop thread, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = EventLoopThread()
        atexit.register(_shared.close)
    return _shared
