"""A link's fate, packet by packet: when each one arrives, or that it never does. The model behind `serve
--network` (`server/network.py`), for UDP datagrams (`rtc/impair.py`) and WebSocket messages alike; pure
arithmetic on a clock it is given, so a test drives it with its own.

Per packet, in this order:

- loss: independent (Bernoulli) when `burst` is 1; else the Gilbert-Elliott two-state model (a good state that
  loses nothing, a bad one that loses every packet) whose stationary loss is `loss` and whose mean burst is
  `burst` packets: P(bad -> good) = 1/burst, P(good -> bad) = loss / (burst * (1 - loss)).
- delay: `delay_ms` plus a normal draw with `jitter_ms` as its standard deviation, never below zero in total.
- order: a link is FIFO (Wi-Fi, a mobile bearer, any one path): a packet is never delivered before the one sent
  before it, so a late packet holds the ones behind it and they arrive in a burst. With probability `reorder` a
  packet skips that rule (its own delay, whatever came before).
- stalls: holds of `stall_ms` starting at random, `stall_every_s` apart on average (a Poisson process, as handovers
  of a moving phone); a packet due during one is delivered at its end, with everything else held by it.

`reliable=True` is a TCP connection over such a link (the WebSocket): a lost packet is retransmitted after the
retransmission timeout, max(200 ms, 2 x delay + jitter) (RFC 6298's timeout floored as Linux floors it), and,
the link being in order, everything behind it waits too: head-of-line blocking. Nothing is lost or reordered.

Each model draws from its own `random.Random`s, one per purpose, seeded by a string (the server mixes the spec's
seed, the call number and the direction). Audio packets and the rest draw apart:

- an audio packet (`fate(now, sequence=...)`, its RTP sequence number) takes the draws of its place in the
  stream, counted from the first packet of the current talk spurt: `spurt()` (the server's playout calls it as
  an answer's first sample leaves) starts the count again, with draws of the spurt's own. So the same seed
  loses the same 20 ms frames of each answer and jitters them alike, whatever the timing of the call and
  however many other packets went by: two clients under test meet the same losses in the same words. Places
  skipped (a gap in the sequence) still use up their draws.
- every other packet (DTLS, RTCP, SCTP; a WebSocket's messages) takes the next draws of a stream of its own:
  the same seed loses the same of them, in order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

TCP_MIN_RTO = 0.2  # seconds: Linux's floor of the retransmission timeout (RFC 6298 says 1 s; stacks use 200 ms)


class LinkParams(Protocol):
    """What a model reads of a link's spec (`server.network.LinkSpec`)."""

    @property
    def delay_ms(self) -> float: ...
    @property
    def jitter_ms(self) -> float: ...
    @property
    def loss(self) -> float: ...
    @property
    def burst(self) -> float: ...
    @property
    def reorder(self) -> float: ...
    @property
    def stall_ms(self) -> float: ...
    @property
    def stall_every_s(self) -> float: ...


@dataclass
class LinkStats:
    """What one direction of one call went through: packets delivered, packets lost (on a reliable link: delayed
    by a retransmission instead), and the delay added to the ones delivered, measured when each one left."""

    passed: int = 0
    lost: int = 0
    delay_total: float = 0.0  # seconds, summed over the packets passed

    @property
    def mean_delay_ms(self) -> float:
        return 1000 * self.delay_total / self.passed if self.passed else 0.0

    def describe(self) -> str:
        return f"{self.passed} passed, {self.lost} lost, {self.mean_delay_ms:.1f} ms mean added delay"


class _Draws:
    """One stream of fates, each packet's in turn: lost or not (the Gilbert-Elliott chain), its jitter (seconds),
    and whether it skips the in-order rule; each purpose from its own `random.Random`."""

    def __init__(self, params: LinkParams, seed: str) -> None:
        self._loss_rng = random.Random(f"{seed}:loss")
        self._delay_rng = random.Random(f"{seed}:delay")
        self._loss, self._burst, self._reorder = params.loss, params.burst, params.reorder
        self._jitter = params.jitter_ms / 1000
        self._bad = False  # Gilbert-Elliott: in the bad state
        self._to_good = 1 / params.burst
        self._to_bad = params.loss / (params.burst * (1 - params.loss)) if params.loss < 1 else 1.0

    def lost(self) -> bool:
        """Whether the next packet is lost (advances the loss chain by one packet)."""
        if self._loss <= 0:
            return False
        if self._burst <= 1:
            return self._loss_rng.random() < self._loss
        flip = self._loss_rng.random() < (self._to_good if self._bad else self._to_bad)
        self._bad = self._bad != flip
        return self._bad

    def next(self) -> tuple[bool, float, bool]:
        """The next packet's fate: (lost, jitter, skips the in-order rule)."""
        jitter = self._delay_rng.gauss(0.0, self._jitter) if self._jitter else 0.0
        skips = bool(self._reorder) and self._delay_rng.random() < self._reorder
        return self.lost(), jitter, skips


MEDIA_MEMORY = 256  # audio places whose fates are kept, for a packet sent out of order
MEDIA_LEAP = 3000  # a jump in the sequence past this many places (a minute of 20 ms frames): a new spurt


class LinkModel:
    """One direction of one link. `fate(now)`: the time the packet sent at `now` arrives, or None when it is lost;
    `fate(now, sequence)` for an audio packet. `configure` switches the spec mid-call (new draws from the new
    seed; the packets already sent keep theirs, and the order rule still holds across the switch)."""

    def __init__(self, params: LinkParams, seed: str, reliable: bool = False) -> None:
        self.reliable = reliable
        self.stats = LinkStats()
        self._last_due = float("-inf")  # the latest arrival of an in-order packet so far
        self.configure(params, seed)

    def configure(self, params: LinkParams, seed: str) -> None:
        self.params = params
        self._seed = seed
        self._draws = _Draws(params, seed)
        self._stall_rng = random.Random(f"{seed}:stall")
        self._delay = params.delay_ms / 1000
        self._jitter = params.jitter_ms / 1000
        self._rto = max(TCP_MIN_RTO, 2 * self._delay + self._jitter)
        self._stalls = params.stall_ms > 0 and params.stall_every_s > 0
        self._stall: tuple[float, float] | None = None  # the current or next stall, (start, end)
        self.clean = not (self._delay or self._jitter or params.loss or self._stalls)
        self._spurts = 0
        self.spurt()

    def spurt(self) -> None:
        """A talk spurt begins: the next audio packet takes the first draws of a stream of the spurt's own."""
        self._spurts += 1
        self._media = _Draws(self.params, f"{self._seed}:media:{self._spurts}")
        self._media_head: tuple[int, int] | None = None  # the furthest packet so far: (sequence, place)
        self._media_places: dict[int, tuple[bool, float, bool]] = {}
        self._media_next = 0  # the first place not drawn yet

    def lost(self) -> bool:
        """Whether the next packet that is not audio is lost (advances that stream's loss chain by one)."""
        return self._draws.lost()

    def fate(self, now: float, sequence: int | None = None) -> float | None:
        """When the packet sent at `now` arrives (on the clock of `now`), or None if it is lost. `sequence`: an
        audio packet's RTP sequence number (its fate is its place's in the talk spurt)."""
        if self.clean:
            due = max(now, self._last_due)
            self._last_due = due
            return due
        lost, jitter, skips = self._draws.next() if sequence is None else self._media_fate(sequence)
        due = max(now, now + self._delay + jitter)
        if lost:
            self.stats.lost += 1
            if not self.reliable:
                return None
            due += self._rto
        in_order = self.reliable or not skips
        if in_order:
            due = max(due, self._last_due)
        if self._stalls:
            due = self._after_stall(now, due)
        if in_order:
            self._last_due = max(self._last_due, due)
        return due

    def _media_fate(self, sequence: int) -> tuple[bool, float, bool]:
        head = self._media_head
        if head is None:
            place = 0
        else:  # counted from the furthest packet so far, the 16-bit sequence wrapping
            step = (sequence - head[0]) & 0xFFFF
            place = head[1] + (step if step < 0x8000 else step - 0x10000)
        if place >= self._media_next + MEDIA_LEAP:
            self.spurt()  # another stream, or a sender that skipped a minute: count afresh
            return self._media_fate(sequence)
        places = self._media_places
        while self._media_next <= place:
            places[self._media_next] = self._media.next()
            places.pop(self._media_next - MEDIA_MEMORY, None)
            self._media_next += 1
        if head is None or place > head[1]:
            self._media_head = (sequence, place)
        fate = places.get(place)
        return fate if fate is not None else self._draws.next()  # long out of order: the other stream's draws

    def _after_stall(self, now: float, due: float) -> float:
        p = self.params
        if self._stall is None:
            start = now + self._stall_rng.expovariate(1 / p.stall_every_s)
            self._stall = (start, start + p.stall_ms / 1000)
        while due >= self._stall[1]:  # that one is over: draw the next, from its end
            start = self._stall[1] + self._stall_rng.expovariate(1 / p.stall_every_s)
            self._stall = (start, start + p.stall_ms / 1000)
        return self._stall[1] if due >= self._stall[0] else due
