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
seed, the call number and the direction): the same seed loses the same packets, whatever the timing.
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


class LinkModel:
    """One direction of one link. `fate(now)`: the time the packet sent at `now` arrives, or None when it is lost.
    `configure` switches the spec mid-call (new draws from the new seed; the packets already sent keep theirs, and
    the order rule still holds across the switch)."""

    def __init__(self, params: LinkParams, seed: str, reliable: bool = False) -> None:
        self.reliable = reliable
        self.stats = LinkStats()
        self._last_due = float("-inf")  # the latest arrival of an in-order packet so far
        self.configure(params, seed)

    def configure(self, params: LinkParams, seed: str) -> None:
        self.params = params
        self._loss_rng = random.Random(f"{seed}:loss")
        self._delay_rng = random.Random(f"{seed}:delay")
        self._stall_rng = random.Random(f"{seed}:stall")
        self._bad = False  # Gilbert-Elliott: in the bad state
        self._to_good = 1 / params.burst
        self._to_bad = params.loss / (params.burst * (1 - params.loss)) if params.loss < 1 else 1.0
        self._delay = params.delay_ms / 1000
        self._jitter = params.jitter_ms / 1000
        self._rto = max(TCP_MIN_RTO, 2 * self._delay + self._jitter)
        self._stalls = params.stall_ms > 0 and params.stall_every_s > 0
        self._stall: tuple[float, float] | None = None  # the current or next stall, (start, end)
        self.clean = not (self._delay or self._jitter or params.loss or self._stalls)

    def lost(self) -> bool:
        """Whether the next packet is lost (advances the loss model by one packet)."""
        p = self.params
        if p.loss <= 0:
            return False
        if p.burst <= 1:
            return self._loss_rng.random() < p.loss
        flip = self._loss_rng.random() < (self._to_good if self._bad else self._to_bad)
        self._bad = self._bad != flip
        return self._bad

    def fate(self, now: float) -> float | None:
        """When the packet sent at `now` arrives (on the clock of `now`), or None if it is lost."""
        if self.clean:
            due = max(now, self._last_due)
            self._last_due = due
            return due
        due = now + self._delay
        if self._jitter:
            due = max(now, due + self._delay_rng.gauss(0.0, self._jitter))
        if self.lost():
            self.stats.lost += 1
            if not self.reliable:
                return None
            due += self._rto
        in_order = self.reliable or not self.params.reorder or self._delay_rng.random() >= self.params.reorder
        if in_order:
            due = max(due, self._last_due)
        if self._stalls:
            due = self._after_stall(now, due)
        if in_order:
            self._last_due = max(self._last_due, due)
        return due

    def _after_stall(self, now: float, due: float) -> float:
        p = self.params
        if self._stall is None:
            start = now + self._stall_rng.expovariate(1 / p.stall_every_s)
            self._stall = (start, start + p.stall_ms / 1000)
        while due >= self._stall[1]:  # that one is over: draw the next, from its end
            start = self._stall[1] + self._stall_rng.expovariate(1 / p.stall_every_s)
            self._stall = (start, start + p.stall_ms / 1000)
        return self._stall[1] if due >= self._stall[0] else due
