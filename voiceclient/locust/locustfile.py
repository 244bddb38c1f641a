"""The ready locustfile: one kind of caller, configured by the environment (`VOICECLIENT_LOCUST_WAV`, `_TEXT`,
`_TRANSPORT`, `_MODEL`, `_TURNS`, and `OPENAI_API_KEY`). `python -m voiceclient.locust` runs Locust with it."""

from __future__ import annotations

from voiceclient.locust.user import RealtimeUser


class VoiceCallUser(RealtimeUser):
    """One caller: a call, a second's pause, the next call."""
