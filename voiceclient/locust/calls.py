"""One load-test call and the figures it leaves, in milliseconds: create call, connect, first answer audio, turn
latency, audio gaps, and the call as a whole; a failure is the figure of the stage that failed, with its exception.

Nothing here knows Locust or gevent: `place_call` is a coroutine that makes one real call (WebRTC or WebSocket)
from a WAV or a text and returns a `CallReport`; `voiceclient.locust.user` runs it on its event loop and hands the
figures to Locust's request events.

- "create call": the server's create-call request (WebRTC: SDP offer to answer), or the WebSocket's handshake.
- "connect": from the start to the session confirmed (`session.updated`), the create call included.
- "first answer audio": from the session confirmed (when the user starts to speak or type) to the first sound of
  the first answer: the user's wait, their own speaking time included.
- "turn latency": per turn, from the end of the user's speech (on the sent stream's clock) or the text sent, to the
  first sound of the answer.
- "audio gaps": per call, the milliseconds of silence a player holding `PLAYER_BUFFER` of audio would have played in
  the middle of an answer (received audio came late); its length is how many such cuts there were.
- "call": the whole call, from the start to the hang-up.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from voiceclient.audio.format import RTP_RATE, rms_dbfs
from voiceclient.audio.sources import BufferSource, load_audio
from voiceclient.client.call import VoiceCall
from voiceclient.client.recording import LOUD_DBFS
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import CallError
from voiceclient.protocol.session import SessionConfig

PLAYER_BUFFER = 0.1  # seconds of audio a player holds before it plays (a browser's jitter and device buffers)
RESUMED = 0.5  # sound within this after the player ran dry in the middle of sound makes the silence a gap


@dataclass(frozen=True)
class Figure:
    """One measurement for Locust: `name`, `milliseconds`, a `length` (the number of gaps for "audio gaps"), and
    the `error` when the stage failed."""

    name: str
    milliseconds: float
    length: int = 0
    error: BaseException | None = None


@dataclass
class CallReport:
    """What one call left: its protocol family ("realtime" or "live"), its id, and its figures in order."""

    family: str
    call_id: str | None = None
    figures: list[Figure] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether a stage of the call failed."""
        return any(f.error is not None for f in self.figures)


@dataclass(frozen=True)
class CallPlan:
    """What each call says: a WAV (spoken `turns` times, each after the answer to the last), or a text (sent
    `turns` times); a call ends once it has been quiet for `idle_seconds` after its last answer, and fails past
    `max_seconds`."""

    wav: Path | None = None
    text: str | None = None
    turns: int = 1
    idle_seconds: float = 1.5
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if (self.wav is None) == (self.text is None):
            raise CallError("a load-test call says a WAV or a text: give one of them")
        if self.turns < 1:
            raise CallError(f"a call has at least one turn, not {self.turns}")


@functools.lru_cache(maxsize=8)
def speech(path: Path) -> np.ndarray:
    """The WAV as the microphone sends it (48 kHz mono int16), read once per process."""
    pcm = load_audio(path)
    pcm.setflags(write=False)  # shared by every call of the process
    return pcm


class Ear:
    """What a listener hears of the answers (a received-audio tap): when the first sound came, the latency of each
    text turn, and the cuts a player holding `buffer` seconds of audio would have played as silence."""

    def __init__(self, buffer: float = PLAYER_BUFFER) -> None:
        self.buffer = buffer
        self.first_sound_at: float | None = None
        self.text_latencies: list[float] = []
        self.gaps = 0
        self.gap_seconds = 0.0
        self._asked_at: float | None = None
        self._plays_until: float | None = None  # when the player runs dry if nothing more arrives
        self._sounding = False  # the last frame that arrived had sound in it

    def expect(self, since: float) -> None:
        """A text turn was sent at `since` (monotonic): the next sound begins its answer."""
        self._asked_at = since

    def __call__(self, pcm: np.ndarray, pts: int | None, at: float) -> None:
        loud = rms_dbfs(pcm) > LOUD_DBFS
        if self._plays_until is None or at > self._plays_until:  # the player has run dry: it buffers again
            if self._plays_until is not None and loud and self._sounding and at - self._plays_until < RESUMED:
                self.gaps += 1
                self.gap_seconds += at - self._plays_until
            self._plays_until = at + self.buffer
        self._plays_until += pcm.size / RTP_RATE
        self._sounding = loud
        if loud:
            if self.first_sound_at is None:
                self.first_sound_at = at
            if self._asked_at is not None:
                self.text_latencies.append(at - self._asked_at)
                self._asked_at = None


@functools.cache
def preload() -> None:
    """Import and load now what a call does when it is first made (aiortc, aiohttp, libopus): in the caller's
    thread, not on the event loop's (finding a library runs `ldconfig`, and under gevent a child process can be
    watched only from the main thread)."""
    import aiohttp  # noqa: F401  (the WebSocket transport)

    import voiceclient.audio.tracks
    import voiceclient.rtc.peer  # noqa: F401
    from voiceclient.audio.opus import library

    library()


def base_url(host: str) -> str:
    """Locust's `--host` as the API's base URL: a host without a path gets `/v1` (`http://127.0.0.1:8000` ->
    `http://127.0.0.1:8000/v1`); one with a path is taken as it is."""
    return host.rstrip("/") + ("/v1" if urlsplit(host).path.strip("/") == "" else "")


def ms(seconds: float) -> float:
    """Seconds as Locust's milliseconds."""
    return round(seconds * 1000.0, 1)


async def place_call(settings: ClientSettings, session: SessionConfig, plan: CallPlan) -> CallReport:
    """Make one call as `plan` says and measure it. A failure does not raise: it is the figure of the stage that
    failed ("create call", "connect", "first answer audio", "turn latency"), with the exception."""
    ear = Ear()
    call = VoiceCall(settings, session, source=None if plan.wav is None else BufferSource(speech(plan.wav)))
    call.tap_audio(received=ear)
    report = CallReport(call.family.name)
    started = time.monotonic()
    stage = "connect"
    try:
        async with call:
            report.call_id = call.call_id
            created = call.transport.create_seconds
            if created is not None:
                report.figures.append(Figure("create call", ms(created)))
            report.figures.append(Figure("connect", ms(call.connect_seconds or 0.0)))
            connected = time.monotonic()
            stage = "first answer audio"
            for turn in range(1, plan.turns + 1):
                latencies = await say(call, ear, plan, turn)
                if turn == 1 and ear.first_sound_at is not None:
                    report.figures.append(Figure(stage, ms(ear.first_sound_at - connected)))
                stage = "turn latency"
                report.figures += [Figure(stage, ms(latency)) for latency in latencies]
            gaps = Figure("audio gaps", ms(ear.gap_seconds), ear.gaps)
        report.figures += [gaps, Figure("call", ms(time.monotonic() - started))]
    except Exception as exc:  # a failed call is a row of Locust's failures, with the reason
        if stage == "connect" and not creation_done(call):
            stage = "create call"
        report.figures.append(Figure(stage, ms(time.monotonic() - started), error=exc))
    return report


def creation_done(call: VoiceCall) -> bool:
    """Whether the call got as far as the server creating it (its transport has a create time)."""
    try:
        return call.transport.create_seconds is not None
    except CallError:  # no transport was made
        return False


def heard(call: VoiceCall, ear: Ear) -> list[float]:
    """Every turn latency so far: of spoken turns (the call's meter), of typed ones (the ear)."""
    return [*call.meter.latencies, *ear.text_latencies]


async def say(call: VoiceCall, ear: Ear, plan: CallPlan, turn: int) -> list[float]:
    """One turn: the WAV or the text, then the answer, until the call is quiet; the turn's latencies (seconds).
    A `CallError` when no answer sounded or the call ran out of time."""
    before = len(heard(call, ear))
    if plan.wav is not None:
        if turn > 1:
            call.set_source(BufferSource(speech(plan.wav)))
    else:
        assert plan.text is not None
        ear.expect(time.monotonic())
        call.send_text(plan.text)
    ended = await call.run_until_idle(plan.idle_seconds, plan.max_seconds)
    if ended == "max_duration":
        raise CallError(f"turn {turn}: the call ran past {plan.max_seconds:g} s")
    latencies = heard(call, ear)[before:]
    if not latencies:
        raise CallError(f"turn {turn}: no answer sounded (quiet for {plan.idle_seconds:g} s after the input)")
    return latencies
