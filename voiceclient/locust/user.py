"""`RealtimeUser`: a Locust user whose task is one real voice call, reported to Locust as request events.

Each figure of a call (`voiceclient.locust.calls`) is one request event: `request_type` is the protocol ("realtime"
or "live"), `name` the figure ("create call", "connect", "first answer audio", "turn latency", "audio gaps",
"call"), `response_time` its milliseconds; a stage that failed is a failure with the exception. The figures are
fired from the user's greenlet once the call has ended: Locust's statistics are not touched from the event loop's
thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from locust import User, constant, task

from voiceclient.client.settings import ClientSettings
from voiceclient.errors import VoiceClientError
from voiceclient.locust.calls import CallPlan, CallReport, Figure, base_url, place_call, preload
from voiceclient.locust.loop import shared_loop
from voiceclient.protocol.session import SessionConfig

# What a caller says when nothing else is given: a sentence of the package's demo, 1.8 s without a pause.
DEFAULT_WAV = Path(__file__).resolve().parents[1] / "assets" / "demo_check.wav"
# What a call imports and loads (aiortc, aiohttp, libopus), now, in the main thread: as the locustfile is loaded,
# before a worker connects to its master (which would take an import of seconds for a missed heartbeat).
preload()


class RealtimeUser(User):
    """A caller: each task is one call against `--host`, from a WAV or a text, then `wait_time`.

    Subclass it in a locustfile and set what differs; what is left as None is read from the environment
    (`VOICECLIENT_LOCUST_*`), so the ready locustfile needs no code:

        from voiceclient.locust import RealtimeUser

        class Caller(RealtimeUser):
            wav = "my_question.wav"
            transport = "websocket"

    The API key is `OPENAI_API_KEY`'s. `settings()`, `session()` and `plan()` can be overridden for anything else.
    """

    abstract = True
    wait_time = constant(1)
    wav: str | None = None  # VOICECLIENT_LOCUST_WAV; without a WAV or a text: DEFAULT_WAV
    text: str | None = None  # VOICECLIENT_LOCUST_TEXT: typed instead of spoken
    transport: str | None = None  # VOICECLIENT_LOCUST_TRANSPORT: webrtc (default), websocket or auto
    model: str | None = None  # VOICECLIENT_LOCUST_MODEL (a gpt-live-* model speaks GPT-Live)
    turns: int | None = None  # VOICECLIENT_LOCUST_TURNS: the input said this many times per call (default 1)
    idle_seconds = 1.5  # a call ends once it has been this quiet after its last answer
    max_call_seconds = 60.0  # and fails when it runs longer

    def setting(self, name: str) -> str | None:
        """The class attribute `name`, else `VOICECLIENT_LOCUST_<NAME>` from the environment, else None."""
        value = getattr(self, name)
        if value is not None:
            return str(value)
        return os.environ.get(f"VOICECLIENT_LOCUST_{name.upper()}") or None

    def settings(self) -> ClientSettings:
        """Where the calls go: `--host` (the base URL), `OPENAI_API_KEY`, the transport."""
        if not self.host:
            raise VoiceClientError("no endpoint: give Locust one with --host, e.g. --host http://127.0.0.1:8000")
        return ClientSettings.from_env(base_url=base_url(self.host), transport=self.setting("transport") or "webrtc")

    def session(self) -> SessionConfig:
        """The session each call asks for (the server's defaults, with `model` when set)."""
        return SessionConfig(model=self.setting("model"))

    def plan(self) -> CallPlan:
        """What each call says, and how long it may take."""
        text = self.setting("text")
        wav = self.setting("wav")
        return CallPlan(
            wav=None if text is not None else Path(wav) if wav else DEFAULT_WAV,
            text=text,
            turns=int(self.setting("turns") or 1),
            idle_seconds=self.idle_seconds,
            max_seconds=self.max_call_seconds,
        )

    @task
    def call(self) -> None:
        """One call, its figures fired as Locust request events."""
        try:
            settings, session, plan = self.settings(), self.session(), self.plan()
        except (VoiceClientError, ValueError) as exc:  # a configuration no call can be made with: every call fails
            self.report(CallReport("realtime", figures=[Figure("connect", 0.0, error=exc)]))
            return
        self.report(shared_loop().run(place_call(settings, session, plan)))

    def report(self, report: CallReport) -> None:
        """Fire each figure of `report` as a request event (a failure when it has an error)."""
        for figure in report.figures:
            self.environment.events.request.fire(
                request_type=report.family,
                name=figure.name,
                response_time=figure.milliseconds,
                response_length=figure.length,
                exception=figure.error,
                context={"call_id": report.call_id},
            )
