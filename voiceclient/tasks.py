"""Small asyncio helpers shared by the modules that own background tasks."""

from __future__ import annotations

import asyncio
from typing import Any


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
