"""What a `VoiceCall` is asked to do beyond talking: keep files (`Recording`) and outlive its connections
(`Continuity`, with its `ReconnectPolicy`). Plain frozen values: the command line builds them from its flags.

    VoiceCall(settings, recording=Recording(events_jsonl="events.jsonl"),
              continuity=Continuity(reconnect=3, recycle_after=25 * 60))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voiceclient.errors import ConfigError


@dataclass(frozen=True)
class Recording:
    """The files a call writes, each optional, each finalised when the call closes whatever happened:
    `output_wav` the assistant's audio as received (48 kHz mono), `record_wav` the conversation (stereo: the user
    left, the assistant right, on one clock), `events_jsonl` every event both ways (`--output`, `--record`,
    `--events`)."""

    output_wav: str | Path | None = None
    record_wav: str | Path | None = None
    events_jsonl: str | Path | None = None


@dataclass(frozen=True)
class ReconnectPolicy:
    """`attempts` new connections after a loss, waiting `backoff[i]` seconds before attempt i (the last value
    repeats)."""

    attempts: int = 0
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt` (from 0; the last backoff repeats)."""
        return self.backoff[min(attempt, len(self.backoff) - 1)] if self.backoff else 0.0


@dataclass(frozen=True)
class Continuity:
    """How a call outlives its connections (`--reconnect`, `--recycle-after`, `--media-timeout`).

    `reconnect`: attempts after a lost connection (or a full policy). `recycle_after`: seconds per connection, each
    timed from its own creation; without it a call still moves to a fresh connection `recycle_margin` seconds
    before the session's `expires_at` (a quarter of a short session at most). `media_timeout`: a server that was
    streaming audio and went silent this long is lost.
    """

    reconnect: ReconnectPolicy | int = 0
    recycle_after: float | None = None
    recycle_margin: float = 60.0
    media_timeout: float = 2.0

    def __post_init__(self) -> None:
        attempts = self.reconnect.attempts if isinstance(self.reconnect, ReconnectPolicy) else self.reconnect
        if attempts < 0:
            raise ConfigError(f"reconnect must be 0 or more attempts, not {attempts}")
        if self.recycle_after is not None and self.recycle_after <= 0:
            raise ConfigError(f"recycle_after must be a positive number of seconds, not {self.recycle_after:g}")
        if self.recycle_margin < 0 or self.media_timeout <= 0:
            raise ConfigError("recycle_margin must be 0 or more seconds and media_timeout more than 0")

    @property
    def policy(self) -> ReconnectPolicy:
        """`reconnect` as a `ReconnectPolicy` (a number is that many attempts with the default backoff)."""
        return self.reconnect if isinstance(self.reconnect, ReconnectPolicy) else ReconnectPolicy(self.reconnect)
