"""Bad networks on demand: the link between `serve` and each client it serves, emulated inside the server's process
(`serve --network`, `RealtimeServer(network=...)`, the `network` fault). The model is `rtc/netem.py`'s; WebRTC
calls put it on their real UDP datagrams (`rtc/impair.py`), WebSocket sessions on their messages (delay, and
stalls where TCP would retransmit: `server/websocket.py`).

A spec is written `PROFILE`, `down=PROFILE`, `KEY=VALUE` (both directions), `down.KEY=VALUE` / `up.KEY=VALUE` and
`seed=N`, joined with `:` and applied left to right, e.g. `wifi:seed=3`, `down=bad-wifi`,
`delay_ms=40:jitter_ms=20:loss=0.01:seed=2`, `wifi:down.loss=0.05`. Down is server to client, up client to server.

The profiles. `wifi`, `bad-wifi` and `lossy` are the figures of issue 30 (a home Wi-Fi, a congested one with the
bursty loss of 802.11 retries giving up, a lossy path with independent loss). `mobile` is a phone on LTE on the
move: 3GPP TS 23.203's QoS class for conversational voice (QCI 1) has a packet delay budget of 100 ms and a packet
error loss rate of 10^-2, so 80 ms one way with 30 ms of jitter and 1 % loss (in pairs, as radio losses come) sit
at that class's limits; and a 300 ms stall every 15 s or so is a handover of a moving phone, at the pessimistic end
of the user-plane interruptions field measurements report (tens to a few hundred ms), about as often as a car
crosses small urban cells.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from voiceclient.errors import ConfigError
from voiceclient.protocol.validation import validate
from voiceclient.rtc.netem import LinkModel

log = logging.getLogger(__name__)
DIRECTIONS = ("down", "up")


class LinkSpec(BaseModel):
    """One direction of a link: base one-way delay, jitter (standard deviation), loss (long-run fraction) in bursts
    of `burst` packets on average (1: independent), the chance a packet skips the in-order rule, and stalls of
    `stall_ms` every `stall_every_s` on average (0: none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=10_000)
    loss: float = Field(default=0.0, ge=0, le=1)
    burst: float = Field(default=1.0, ge=1, le=1000)
    reorder: float = Field(default=0.0, ge=0, le=1)
    stall_ms: float = Field(default=0.0, ge=0, le=60_000)
    stall_every_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> LinkSpec:
        if self.stall_ms > 0 and self.stall_every_s <= 0:
            raise PydanticCustomError("explained", "stall_ms needs stall_every_s (the mean time between stalls)")
        if self.burst > 1 and self.loss > self.burst / (self.burst + 1):
            raise PydanticCustomError(
                "explained", f"loss {self.loss:g} in bursts of {self.burst:g} cannot be: at most burst/(burst+1)"
            )
        return self

    def explain(self) -> str:
        """`40 ms ± 20 ms, 0.5 % loss` (a clean link: `clean`)."""
        bits = [f"{self.delay_ms:g} ms" + (f" ± {self.jitter_ms:g} ms" if self.jitter_ms else "")]
        if self.loss:
            bits.append(f"{100 * self.loss:g} % loss" + (f" in bursts of {self.burst:g}" if self.burst > 1 else ""))
        if self.reorder:
            bits.append(f"{100 * self.reorder:g} % out of order")
        if self.stall_ms and self.stall_every_s:
            bits.append(f"a {self.stall_ms:g} ms stall every {self.stall_every_s:g} s")
        return "clean" if bits == ["0 ms"] else ", ".join(bits)


class NetworkSpec(BaseModel):
    """Both directions of the link between the server and a client (`down`: what the server sends), the seed of
    its random draws (mixed with the call number and the direction: two calls differ, a rerun does not), and the
    name it was given by."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    down: LinkSpec = LinkSpec()
    up: LinkSpec = LinkSpec()
    seed: int = 0
    name: str | None = None

    def describe(self) -> str:
        return self.name or "custom"

    def explain(self) -> str:
        """`wifi (seed 0): down 40 ms ± 20 ms, 0.5 % loss; up the same`."""
        down, up = self.down.explain(), self.up.explain()
        return f"{self.describe()} (seed {self.seed}): down {down}; up {'the same' if up == down else up}"


def _both(name: str, **link: float) -> NetworkSpec:
    spec = LinkSpec(**link)
    return NetworkSpec(down=spec, up=spec, name=name)


PROFILES: dict[str, NetworkSpec] = {
    "wifi": _both("wifi", delay_ms=40, jitter_ms=20, loss=0.005),
    "bad-wifi": _both("bad-wifi", delay_ms=60, jitter_ms=40, loss=0.02, burst=3),
    "lossy": _both("lossy", delay_ms=30, jitter_ms=5, loss=0.05),
    "mobile": _both("mobile", delay_ms=80, jitter_ms=30, loss=0.01, burst=2, stall_ms=300, stall_every_s=15),
}
KEYS = tuple(LinkSpec.model_fields)


def _profile(text: str, name: str) -> NetworkSpec:
    if name not in PROFILES:
        raise ConfigError(f"network {text!r}: unknown profile {name!r}; the profiles are {', '.join(PROFILES)}")
    return PROFILES[name]


def _number(text: str, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"network {text!r}: {key}={value!r} is not a number") from None


def parse_network(text: str) -> NetworkSpec:
    """A spec from its text (the module's docstring has the syntax); any mistake is a one-line ConfigError."""
    links: dict[str, dict[str, float]] = {"down": {}, "up": {}}
    seed = 0
    if not text.strip():
        raise ConfigError(f"network: empty; give a profile ({', '.join(PROFILES)}) or KEY=VALUE pairs")
    for part in text.strip().split(":"):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:  # a profile, both ways
            profile = _profile(text, key)
            links = {d: getattr(profile, d).model_dump() for d in DIRECTIONS}
        elif key in DIRECTIONS:
            links[key] = getattr(_profile(text, value), key).model_dump()
        elif key == "seed":
            try:
                seed = int(value)
            except ValueError:
                raise ConfigError(f"network {text!r}: seed={value!r} is not an integer") from None
        else:
            direction, dot, name = key.rpartition(".")
            if (dot and direction not in DIRECTIONS) or name not in KEYS:
                raise ConfigError(
                    f"network {text!r}: unknown key {key!r}; the keys are {', '.join(KEYS)} (each may be "
                    "prefixed down. or up.), seed, down=PROFILE and up=PROFILE"
                )
            for d in [direction] if dot else DIRECTIONS:
                links[d] = {**links[d], name: _number(text, key, value)}
    data = {"down": links["down"], "up": links["up"], "seed": seed, "name": text.strip()}
    return validate(NetworkSpec, data, prefix="network")


def network_spec(value: NetworkSpec | str | None) -> NetworkSpec | None:
    """A spec from what `RealtimeServer(network=...)` was given (text goes through `parse_network`)."""
    return parse_network(value) if isinstance(value, str) else value


class CallNetwork:
    """The emulated network of one call or WebSocket session: a model per direction (`down`, `up`), seeded by the
    spec's seed, the call number and the direction; `switch` changes the spec mid-call (the `network` fault)."""

    def __init__(self, spec: NetworkSpec, call_number: int, reliable: bool = False) -> None:
        self.spec = spec
        self.call_number = call_number
        self.down = LinkModel(spec.down, self._seed(spec, "down"), reliable)
        self.up = LinkModel(spec.up, self._seed(spec, "up"), reliable)

    def _seed(self, spec: NetworkSpec, direction: str) -> str:
        return f"{spec.seed}:{self.call_number}:{direction}"

    def switch(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self.down.configure(spec.down, self._seed(spec, "down"))
        self.up.configure(spec.up, self._seed(spec, "up"))

    def describe(self) -> str:
        """One line for the log: the spec, and each direction's counters."""
        return f"network {self.spec.describe()}: down {self.down.stats.describe()}; up {self.up.stats.describe()}"
