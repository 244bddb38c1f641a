"""Real packets through an emulated link, inside the process: a `DelayLine` holds each packet until its model says
it arrives (or drops it), and `ImpairedTransport` puts one under each direction of an aiortc ICE transport.

Every DTLS, SRTP, SRTCP and SCTP datagram of a peer connection passes through `RTCIceTransport._send` (one call,
one UDP datagram) and `_recv` once ICE is up, so wrapping those two on the server's transport impairs both
directions of any client's call: down on `_send`, up on `_recv` (a task pulls from the real `_recv` and feeds the
line, whose output is what the DTLS transport reads). ICE's own STUN checks go around them, as consent keeps the
path alive on a real lossy link too. An RTP packet's sequence number (in the clear under SRTP) goes to the model
with it: audio draws its fate on the media's clock (`rtc/netem.py`).

One pump task per line, sleeping until the earliest packet is due (a heap: with `reorder`, a later packet may be
due first); no task or timer per packet. `drain()` (on hangup) sends what is held at once and lets later packets
through unimpaired, so the goodbye (DTLS close_notify, SCTP ABORT) reaches the client; `close()` drops what is
held and ends the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from aiortc.rtp import is_rtcp

from voiceclient.rtc.netem import LinkModel

log = logging.getLogger(__name__)
T = TypeVar("T")


class DelayLine(Generic[T]):
    """Packets in, each handed to `deliver` when `model` says it arrives (in arrival order), or never.
    A `deliver` that raises ConnectionError or OSError breaks the line: `error` is set, what is held is dropped."""

    def __init__(self, model: LinkModel, deliver: Callable[[T], Awaitable[None]], name: str) -> None:
        self.model = model
        self._deliver = deliver
        self._loop = asyncio.get_running_loop()
        self._heap: list[tuple[float, int, float, T]] = []  # (due, order pushed, sent, packet)
        self._order = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.bypassed = False
        self._task = self._loop.create_task(self._run(), name=name)

    @property
    def held(self) -> int:
        return len(self._heap)

    def push(self, packet: T, sequence: int | None = None) -> bool:
        """Send one packet down the line (`sequence`: an audio packet's RTP sequence number); False when the model
        lost it."""
        now = self._loop.time()
        due = self.model.fate(now, sequence)
        if due is None:
            return False
        order = next(self._order)
        heapq.heappush(self._heap, (due, order, now, packet))
        wake = self._wake
        if wake is not None and not wake.done() and self._heap[0][1] == order:  # a new earliest: wake sooner
            wake.set_result(None)
        return True

    async def _run(self) -> None:
        loop, heap = self._loop, self._heap
        while True:
            if not heap:
                await self._sleep(None)
                continue
            due = heap[0][0]
            if due > loop.time():
                await self._sleep(due)
                continue
            _, _, sent, packet = heapq.heappop(heap)
            self.model.stats.passed += 1
            self.model.stats.delay_total += loop.time() - sent
            try:
                await self._deliver(packet)
            except (ConnectionError, OSError) as exc:
                self.error = exc
                heap.clear()
                return

    async def _sleep(self, until: float | None) -> None:
        wake = self._wake = self._loop.create_future()
        timer = None if until is None else self._loop.call_at(until, _wake_up, wake)
        try:
            await wake
        finally:
            if timer is not None:
                timer.cancel()
            self._wake = None

    async def drain(self) -> None:
        """Deliver what is held now, in order, and stop impairing: the caller then delivers directly."""
        await self._stop()
        self.bypassed = True
        held, self._heap[:] = sorted(self._heap), []
        for _, _, sent, packet in held:
            self.model.stats.passed += 1
            self.model.stats.delay_total += self._loop.time() - sent
            try:
                await self._deliver(packet)
            except (ConnectionError, OSError) as exc:
                self.error = exc
                return

    async def close(self) -> None:
        """Drop what is held and end the pump."""
        self._heap.clear()
        await self._stop()

    async def _stop(self) -> None:
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def rtp_sequence(datagram: bytes) -> int | None:
    """An RTP packet's sequence number, or None for any other datagram, told apart as aiortc's DTLS transport
    routes them: RFC 7983's first byte (128-191: RTP or RTCP, not DTLS or STUN), then `aiortc.rtp.is_rtcp`. SRTP
    leaves the header in the clear."""
    if len(datagram) < 12 or not 128 <= datagram[0] <= 191 or is_rtcp(datagram):
        return None
    return (datagram[2] << 8) | datagram[3]


def _wake_up(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ImpairedTransport:
    """An aiortc `RTCIceTransport` whose datagrams go through `down` (what it sends) and `up` (what it receives).
    Put it on before any datagram flows (after the offer is set, before the answer is sent); `close()` after the
    peer connection has closed puts the transport's own methods back."""

    def __init__(self, transport: Any, down: LinkModel, up: LinkModel, name: str) -> None:
        self.transport = transport
        self._real_send: Callable[[bytes], Awaitable[None]] = transport._send
        self._real_recv: Callable[[], Awaitable[bytes]] = transport._recv
        self.down = DelayLine(down, self._real_send, f"{name} down")
        self.up = DelayLine(up, self._received, f"{name} up")
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._intake: asyncio.Task[None] | None = None
        self._name = name
        transport._send = self._send
        transport._recv = self._recv

    async def _send(self, data: bytes) -> None:
        down = self.down
        if down.error is not None:
            raise ConnectionError(f"cannot send: {down.error}")
        if down.bypassed:
            await self._real_send(data)
        else:
            down.push(data, rtp_sequence(data))

    async def _recv(self) -> bytes:
        if self._intake is None:  # the first read: ICE is up (a read before would fail, and does, below)
            self._intake = asyncio.get_running_loop().create_task(self._pull(), name=f"{self._name} intake")
        data = await self._inbox.get()
        if data is None:
            self._inbox.put_nowait(None)  # every later read fails too, as the real one does once closed
            raise ConnectionError("the connection is closed")
        return data

    async def _pull(self) -> None:
        try:
            while True:
                data = await self._real_recv()
                self.up.push(data, rtp_sequence(data))
        except ConnectionError:
            await self.up.close()  # held packets of a connection that is gone are not delivered
            self._inbox.put_nowait(None)

    async def _received(self, data: bytes) -> None:
        self._inbox.put_nowait(data)

    async def drain(self) -> None:
        """The call is hanging up: what the server has sent leaves now, and its goodbye goes out unimpaired."""
        await self.down.drain()

    async def close(self) -> None:
        """End the pumps and the intake, drop what is held, and give the transport its own methods back."""
        if self._intake is not None:
            self._intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._intake
        await self.down.close()
        await self.up.close()
        self._inbox.put_nowait(None)
        self.transport._send = self._real_send
        self.transport._recv = self._real_recv
