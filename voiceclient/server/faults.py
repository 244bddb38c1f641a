"""Faults the embedded server injects on purpose, so clients (ours, and yours) can be tested against a server
that misbehaves the way real networks and services do.

A fault is an action, which calls it hits (`call = N`, the Nth call or WebSocket session created, counting from
1; every one when left out) and when: `at_seconds` after the call was created, or `after_turns` responses into it
(once the Nth `response.done` has gone out). In a scenario or agent file, a `[[faults]]` table each; on the command
line, `--fault ACTION[:key=value...]`, for example `--fault drop_connection:call=1:at_seconds=5` or
`--fault http_status:status=429:retry_after=1:times=2` or `--fault network:network=bad-wifi:at_seconds=5` (a
network that gets worse mid-call; every part of a `network` fault but `call`, `at_seconds` and `after_turns` is
its spec, so `network:network=wifi:seed=3:at_seconds=5` and `network:down.loss=0.2:at_seconds=5` work too).

| action            | what the client sees |
|-------------------|----------------------|
| `stop_media`      | no more audio from the server, and its audio is no longer heard (the connection stays up) |
| `close_channel`   | the `oai-events` data channel closes; a WebSocket session's socket closes cleanly (no error) |
| `drop_connection` | the peer connection closes; a WebSocket's TCP connection drops without a close frame |
| `expire_session`  | the `session_expired` error, then the call or session ends, as at the session cap |
| `delay_events`    | every server event from then on arrives `delay_ms` late (order kept) |
| `http_status`     | the create-call (or WebSocket upgrade) answers `status` `times` times (`Retry-After` if set) |
| `unreachable`     | a WebRTC call is answered as usual, but no ICE check is answered (UDP dropped on the way) |
| `network`         | the call's link is `network` from then on (a profile or spec, as `serve --network`) |
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from voiceclient.errors import ConfigError
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.validation import validate
from voiceclient.server.network import NetworkSpec, parse_network

Action = Literal[
    "stop_media",
    "close_channel",
    "drop_connection",
    "expire_session",
    "delay_events",
    "http_status",
    "unreachable",
    "network",
]
NETWORK_FAULT_KEYS = ("call", "at_seconds", "after_turns")  # the rest of a `network` fault's parts is its spec
CALL_ACTIONS = ("stop_media", "close_channel", "drop_connection", "expire_session", "delay_events", "network")


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    call: int | None = Field(default=None, ge=1)
    at_seconds: float | None = Field(default=None, ge=0)
    after_turns: int | None = Field(default=None, ge=1)
    status: int = Field(default=503, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    times: int = Field(default=1, ge=1)
    delay_ms: int = Field(default=500, ge=0, le=60_000)
    network: str | None = None  # the `network` action's profile or spec

    @field_validator("network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_network(value)
            except ConfigError as exc:
                raise PydanticCustomError("explained", str(exc)) from None
        return value

    @property
    def network_spec(self) -> NetworkSpec:
        """The `network` action's spec, parsed."""
        return parse_network(self.network or "")

    @model_validator(mode="after")
    def _when(self) -> FaultSpec:
        if self.action == "network" and self.network is None:
            raise PydanticCustomError(
                "explained", "network needs network=PROFILE_OR_SPEC (as --network), e.g. network=bad-wifi"
            )
        if self.action in CALL_ACTIONS and self.at_seconds is None and self.after_turns is None:
            raise ValueError(f"{self.action} needs at_seconds or after_turns")
        if self.at_seconds is not None and self.after_turns is not None:
            raise ValueError("at_seconds or after_turns, not both")
        return self


def parse_fault(text: str) -> FaultSpec:
    """`ACTION[:key=value...]` from the command line."""
    action, *pairs = text.split(":")
    data: dict[str, object] = {"action": action}
    network: list[str] = []  # the `network` action: every part but its `when` is the spec, colons and all
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.replace("-", "_")
        if action == "network" and key not in NETWORK_FAULT_KEYS:
            network.append(value if key == "network" else pair)
            continue
        if not sep or not key:
            raise ConfigError(f"--fault {text}: expected ACTION[:key=value...], e.g. drop_connection:at_seconds=5")
        data[key] = value
    if network:
        data["network"] = ":".join(network)
    return validate(FaultSpec, data, prefix="--fault")


class FaultPlan:
    def __init__(self, faults: list[FaultSpec] | None = None) -> None:
        self.faults = list(faults or [])
        self._http_left = {id(f): f.times for f in self.faults if f.action == "http_status"}

    def __bool__(self) -> bool:
        return bool(self.faults)

    def http_refusal(self, call_number: int) -> ProtocolError | None:
        """The refusal this create-call gets, if a fault says so (counted down per fault)."""
        for fault in self.faults:
            if fault.action != "http_status" or (fault.call is not None and fault.call != call_number):
                continue
            if self._http_left[id(fault)] > 0:
                self._http_left[id(fault)] -= 1
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                kind = "server_error" if fault.status >= 500 else "invalid_request_error"
                code = "rate_limit_exceeded" if fault.status == 429 else "injected_fault"
                return ProtocolError(
                    f"Injected fault: HTTP {fault.status}.", code, type=kind, status=fault.status, headers=headers
                )
        return None

    def unreachable(self, call_number: int) -> bool:
        """Whether this WebRTC call's candidates are to answer no checks."""
        return any(f.action == "unreachable" and (f.call is None or f.call == call_number) for f in self.faults)

    def switches_network(self, call_number: int) -> bool:
        """Whether a `network` fault hits this call or session (it then needs an emulated network from the start)."""
        return any(f.action == "network" for f in self.for_call(call_number))

    def for_call(self, call_number: int) -> list[FaultSpec]:
        return [f for f in self.faults if f.action in CALL_ACTIONS and (f.call is None or f.call == call_number)]
