"""Sound streams that recover: a watchdog on the microphone and the speaker of a call.

A PortAudio stream that stops calling back (the sound server restarted, a device unplugged, a Bluetooth profile
switched) never says so by itself: the call would go on deaf and mute. `StreamGuard` looks at each stream ten
times a second; one that finished, went inactive or has not called back for `stall` seconds is reopened, on the
device the user named or the current default:

1. only the failed stream, PortAudio left as it is, so a healthy one on the other side keeps running;
2. when that does not open (its device is gone, the sound server is not back yet): PortAudio is re-initialised,
   which is the only way it sees today's devices and which closes every stream, and both are reopened;
3. while nothing opens, again every `retry` seconds, with one line saying it waits.

The call never notices: the microphone sends silence in real time while it is down (the recording keeps its
timeline), the speaker drops what it cannot play. Each recovery is one status line and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from voiceclient.audio.devices import reinitialise_portaudio
from voiceclient.errors import DeviceError

log = logging.getLogger(__name__)
# Seconds without a callback from a running stream: it has stopped. A stream that is alive can be late by far more
# than a block: on a busy machine PortAudio's callback thread waits for the CPU, and a stream that underran is
# restarted by the sound server, silent for up to 2 s (PulseAudio). Reopening it then loses what was buffered and
# costs a start-up stall of its own. A sound server that dies ends its streams (finished, inactive: seen at the
# next look), so this only catches streams that go quiet and stay open (a device suspended or moved).
STALL = 2.5
STARTUP = 2.5  # seconds a just-opened stream may take to call back the first time
RETRY = 0.5  # seconds between attempts while nothing opens


class GuardedStream(Protocol):
    """A device stream the guard can watch and reopen (`MicSource`, `SpeakerSink`)."""

    what: str  # "microphone" | "speaker"
    spec: str | int | None  # the device asked for (None: the default)

    def failure(self, stall: float, startup: float) -> str | None:
        """Why the stream is not running (None while it is)."""

    def reopen(self) -> None:
        """Close the stream if it is open, find its device again, open and start it; DeviceError if it cannot."""

    def close(self) -> None: ...


class StreamGuard:
    """Keeps `streams` running for as long as `run()` runs (a task of the call's owner)."""

    def __init__(
        self,
        streams: list[GuardedStream],
        on_status: Callable[[str], None],
        on_reopened: Callable[[], None] | None = None,
        *,
        stall: float = STALL,
        startup: float = STARTUP,
        retry: float = RETRY,
    ) -> None:
        self.streams = streams
        self.on_status = on_status
        self.on_reopened = on_reopened  # e.g. the echo canceller's delay from the new streams' latencies
        self.stall, self.startup, self.retry = stall, startup, retry
        self.recoveries = 0
        self.last_recovery_seconds: float | None = None
        self.recovering = False
        self._lock = asyncio.Lock()  # one reopening at a time: a recovery, or a device chosen by the user

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            failed = [(s, reason) for s in self.streams if (reason := s.failure(self.stall, self.startup))]
            if failed:
                await self.recover(failed)

    async def recover(self, failed: list[tuple[GuardedStream, str]]) -> None:
        async with self._lock:
            await self._recover(failed)

    async def choose(self, stream: GuardedStream, spec: str | int) -> None:
        """Move `stream` to the device `spec` (an index or a name), live; if it does not open there, back to the
        one it was on, and DeviceError says why."""
        async with self._lock:
            old = stream.spec
            stream.spec = spec
            try:
                await asyncio.to_thread(stream.reopen)
            except DeviceError:
                stream.spec = old
                await asyncio.to_thread(stream.reopen)
                raise
            if self.on_reopened is not None:
                self.on_reopened()

    async def follow_defaults(self) -> None:
        """A default device changed where the system does not move streams to it: PortAudio re-initialised (it
        sees the new device only then; it closes every stream), and every stream reopened, on the new default
        unless the user named its device."""
        async with self._lock:
            await asyncio.to_thread(self._reopen_all)
            if self.on_reopened is not None:
                self.on_reopened()

    async def _recover(self, failed: list[tuple[GuardedStream, str]]) -> None:
        started = time.monotonic()
        self.recovering = True
        names = " and ".join(s.what for s, _ in failed)
        log.warning("sound: %s", "; ".join(f"the {s.what} {reason}" for s, reason in failed))
        said_waiting = False
        targets = [s for s, _ in failed]
        try:
            while True:
                work = asyncio.ensure_future(asyncio.to_thread(self._reopen, targets))
                try:
                    await asyncio.shield(work)
                    break
                except asyncio.CancelledError:  # the call is ending: let the thread finish with the streams
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(work, 10)
                    raise
                except DeviceError as exc:
                    targets = list(self.streams)  # (re-initialising closed them all)
                    if not said_waiting:
                        self.on_status(
                            f"sound: the {names} stopped and cannot be reopened yet ({exc}); "
                            "trying again until the sound server is back"
                        )
                        said_waiting = True
                    await asyncio.sleep(self.retry)
        finally:
            self.recovering = False
        self.recoveries += 1
        self.last_recovery_seconds = time.monotonic() - started
        if self.on_reopened is not None:
            self.on_reopened()
        self.on_status(
            f"sound: the {names} stopped ({failed[0][1]}); reopened in "
            f"{self.last_recovery_seconds:.1f} s (recovery {self.recoveries})"
        )

    def _reopen(self, failed: list[GuardedStream]) -> None:
        """In a worker thread (opening a stream can take a while): the failed streams alone, else all of them
        after re-initialising PortAudio."""
        try:
            for stream in failed:
                stream.reopen()
            return
        except DeviceError as exc:
            log.info("sound: reopening without re-initialising PortAudio failed (%s); re-initialising", exc)
        self._reopen_all()

    def _reopen_all(self) -> None:
        """Every stream closed, PortAudio re-initialised (it sees today's devices), every stream reopened."""
        for stream in self.streams:
            stream.close()
        reinitialise_portaudio()
        for stream in self.streams:
            stream.reopen()
