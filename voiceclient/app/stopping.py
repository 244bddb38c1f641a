"""How a command ends on a signal: Ctrl-C (SIGINT) and SIGTERM both cancel the command's task.

The task's `async with` blocks then close as on any other way out: the call hangs up, recordings and event logs
are finished, a server tells its clients. A second signal, or a close that outlasts `grace` seconds, ends the
process at once: whoever sends SIGTERM (a CI timeout, `docker stop`, systemd) follows it with SIGKILL anyway,
and a process that will not end is worse than one that ends a little untidily.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any

#: Seconds a command has to close after the first signal before the process ends regardless.
GRACE_SECONDS = 10.0


class Stopped(Exception):
    """The command was stopped by a signal; `signum` is which (SIGINT for Ctrl-C, or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Stop:
    """The signal handlers' state: the first signal cancels the task, a second one (or the grace) ends it all."""

    def __init__(self, task: asyncio.Task[Any], grace: float) -> None:
        self.task = task
        self.grace = grace
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        if self.signum is not None:
            self._exit_now(f"{signal.Signals(signum).name} again")
            return
        self.signum = signum
        self.task.cancel()
        # A thread, not the loop's timer: what could outlast the grace also runs after the loop (threads that
        # interpreter shutdown waits for).
        watchdog = threading.Timer(self.grace, self._exit_now, (f"still closing after {self.grace:g} s",))
        watchdog.daemon = True
        watchdog.start()

    def _exit_now(self, why: str) -> None:
        assert self.signum is not None
        print(f"voiceclient: {why}; exiting without waiting", file=sys.stderr, flush=True)
        os._exit(128 + self.signum)


def _handled_signals() -> list[signal.Signals]:
    """SIGINT only when Python's own handler is in place (a background job's Ctrl-C is meant to be ignored, and a
    caller may have installed its own); SIGTERM unless someone set a handler for it."""
    wanted: list[signal.Signals] = []
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        wanted.append(signal.SIGINT)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        wanted.append(signal.SIGTERM)
    return wanted


async def _guarded(
    command: Coroutine[Any, Any, int], grace: float, signals: list[signal.Signals]
) -> tuple[int, int | None]:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stop = _Stop(task, grace)
    installed = []
    for signum in signals:
        try:
            loop.add_signal_handler(signum, stop.request, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            continue
        installed.append(signum)
    try:
        try:
            result = await command
        except asyncio.CancelledError:
            if stop.signum is None:
                raise
            return 0, stop.signum
        return result, stop.signum
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_command(command: Coroutine[Any, Any, int], *, grace: float = GRACE_SECONDS) -> int:
    """Run a command's coroutine to its end; raise `Stopped` if a signal ended it (after it closed)."""
    # Which signals are ours is read before `asyncio.run`, which puts its own SIGINT handler in place (it cancels the
    # main task, and a cancellation swallowed anywhere in the command then lost the Ctrl-C: the command ran on to
    # its end and exited 0). The loop's handler replaces it: the signal is noted before the task is cancelled.
    result, signum = asyncio.run(_guarded(command, grace, _handled_signals()))
    if signum is not None:
        raise Stopped(signum)
    return result
