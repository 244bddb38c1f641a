"""A backend joins a GPT-Live session under way (`GET /v1/live/sessions/{id}/attach`) and hangs it up
(`POST /v1/live/sessions/{id}/hangup`), with the official openai SDK unchanged (`client.live.sideband.connect`,
`client.live.sessions.hangup`), while voiceclient's own client holds the session over either transport."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(90)
SPEECH = FIXTURES / "speech" / "sentence_1.wav"


async def until(sideband: Any, kind: str, seen: list[str], timeout: float = 30) -> Any:
    while True:
        event = await asyncio.wait_for(sideband.recv(), timeout)
        seen.append(event.type)
        if event.type == kind:
            return event


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_backend_attaches_steers_sees_the_answer_and_hangs_up(server: RealtimeServer, transport: str) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
    settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport)  # type: ignore[arg-type]
    session = SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1"})
    seen: list[str] = []
    async with VoiceCall(settings, session, source=WavSource(SPEECH)) as call:
        assert call.call_id is not None
        events = call.events()
        async with client.live.sideband.connect(session_id=call.call_id) as sideband:
            first = await asyncio.wait_for(sideband.recv(), 10)
            assert first.type == "session.started" and first.session.id == call.call_id  # the session as it is
            steer = "Answer in one sentence."
            await sideband.session.instructions.append(content=steer, delegation_id=None, event_id="sb_1")
            appended = await until(sideband, "session.instructions.appended", seen)
            await events.next_of("session.instructions.appended", timeout=10)  # the client sees the backend's steer
            said = ""
            while "Echo of" not in said:  # what the session says, seen from the side, word by word
                said += (await until(sideband, "session.output_transcript.delta", seen)).delta
            await client.live.sessions.hangup(call.call_id)
            closed = await until(sideband, "session.closed", seen)
            assert closed.reason == "close_requested" and closed.session.id == call.call_id
        ended = await events.next_of("session.closed", timeout=10)
        assert isinstance(ended, live.SessionClosed) and ended.reason == "close_requested"
    assert appended.type == "session.instructions.appended"
    assert call.session_closed is not None and call.session_closed.reason == "close_requested"
    assert call.call_id not in server.live  # ended, and no longer reachable
    assert [ended.id for ended in server.history] == [call.call_id]  # and the client took the end: no new session
    await client.close()


async def test_an_unknown_session_is_404_for_the_sideband_and_the_hangup(server: RealtimeServer) -> None:
    auth = {"Authorization": "Bearer sk-test"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth) as http:
        hangup = await http.post("/live/sessions/live_nope/hangup")
        attach = await http.get("/live/sessions/live_nope/attach")
        unauthorized = await http.post("/live/sessions/live_nope/hangup", headers={"Authorization": ""})
    for response in (hangup, attach):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "session_not_found"
    assert unauthorized.status_code == 401
