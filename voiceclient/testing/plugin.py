"""pytest fixtures for voice tests against the embedded server: `pytest_plugins = ["voiceclient.testing.plugin"]`.

The only module of voiceclient that imports pytest. The server and the speech models are imported when a fixture
is first used, so a suite that does not use them pays nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from voiceclient.testing import speech_backends

if TYPE_CHECKING:
    from voiceclient.server import RealtimeServer


@pytest.fixture
async def realtime_server() -> AsyncIterator[RealtimeServer]:
    """The embedded server with the echo responder and energy VAD, on 127.0.0.1 and a free port."""
    from voiceclient.server import RealtimeServer

    async with RealtimeServer(port=0) as server:
        yield server


@pytest.fixture
async def agent_server() -> AsyncIterator[RealtimeServer]:
    """The embedded server with the offline agent (Silero VAD, STT, TTS), on 127.0.0.1 and a free port."""
    from voiceclient.server import RealtimeServer
    from voiceclient.server.agent import AgentResponder

    async with RealtimeServer(port=0, responder=AgentResponder(), speech=speech_backends()) as server:
        yield server
