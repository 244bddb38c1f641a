"""Follow the system's default devices where the system does not move streams to them (macOS, Windows).

PortAudio sees the devices as they were when it started, and looking again means re-initialising it, which
closes every stream: a call cannot poll that way. So a small helper process (`python -m
voiceclient.audio.defaults`) re-initialises its own PortAudio once a second and prints the default input and
output as a JSON line whenever they change; `DefaultWatch` reads it and tells `talk`, which then re-initialises
its PortAudio once and reopens the streams the user did not pin to a device.

On Linux with PulseAudio or PipeWire the default device PortAudio sees is the sound server's own `default`, whose
streams the server moves to a new default itself: the helper sees no change there, and nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
INTERVAL = 1.0  # seconds between looks


def current_defaults(sd: Any) -> dict[str, str | None]:
    """{"input": name, "output": name} of the default devices PortAudio sees now (None: there is none)."""
    out: dict[str, str | None] = {}
    for kind, index in zip(("input", "output"), sd.default.device):
        try:
            out[kind] = str(sd.query_devices(index)["name"]) if index is not None and index >= 0 else None
        except Exception:
            out[kind] = None
    return out


def main(interval: float = INTERVAL) -> None:
    """The helper: a line whenever the defaults change (the first at once); ends with its parent."""
    import sounddevice as sd

    parent, last = os.getppid(), None
    while os.getppid() == parent:
        sd._terminate()
        sd._initialize()
        now = current_defaults(sd)
        if now != last:
            print(json.dumps(now), flush=True)
            last = now
        time.sleep(interval)


class DefaultWatch:
    """Runs the helper and calls `on_change(kinds)` ("input", "output") when a default device changes."""

    def __init__(
        self,
        on_change: Callable[[list[str]], Awaitable[None]],
        interval: float = INTERVAL,
        command: list[str] | None = None,
    ) -> None:
        self.on_change = on_change
        self.command = command or [sys.executable, "-m", "voiceclient.audio.defaults", str(interval)]
        self.changes = 0
        self.defaults: dict[str, str | None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        self._proc = proc = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        assert proc.stdout is not None
        try:
            async for raw in proc.stdout:
                try:
                    now = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                before, self.defaults = self.defaults, now
                if before is None:
                    continue  # the first look: what the streams were opened on
                kinds = [k for k in ("input", "output") if now.get(k) != before.get(k) and now.get(k)]
                if kinds:
                    self.changes += 1
                    await self.on_change(kinds)
        finally:
            await self.close()

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else INTERVAL)
