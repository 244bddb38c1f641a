"""GPT-Live's session routes beside the session: a backend joins a session under way
(`GET /v1/live/sessions/{id}/attach`) and hangs it up (`POST /v1/live/sessions/{id}/hangup`) while voiceclient's own
client holds it over either transport, and a session started with `store: true` leaves its recording
(`GET /v1/live/sessions/{id}/content`); all through the official openai SDK unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from voiceclient.audio.format import RTP_RATE
from voiceclient.audio.sources import BufferSource, WavSource, load_audio
from voiceclient.audio.tracks import InboundReader, OutboundTrack
from voiceclient.client.call import VoiceCall
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import SessionConfig
from voiceclient.rtc.peer import Peer
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, loud_spans, read_wav

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


async def test_a_stored_session_leaves_its_recording_user_left_model_right(
    server: RealtimeServer, tmp_path: Path
) -> None:
    from openai import AsyncOpenAI

    speech = load_audio(SPEECH, RTP_RATE)
    pcm = np.concatenate([np.zeros(RTP_RATE // 2, np.int16), speech])
    client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
    peer = Peer(OutboundTrack(BufferSource(pcm)))
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    peer.on_message = lambda message: events.put_nowait(json.loads(message))

    answered_and_quiet = asyncio.Event()
    loud, quiet = 0, 0

    def heard(pcm: np.ndarray, pts: int, at: float) -> None:  # the answer on the track: loud, then 0.5 s quiet
        nonlocal loud, quiet
        if np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300:
            loud, quiet = loud + 1, 0
        elif loud >= 25:
            quiet += 1
            if quiet >= 25:
                answered_and_quiet.set()

    async def until_event(kind: str) -> dict[str, Any]:
        while (event := await asyncio.wait_for(events.get(), 30))["type"] != kind:
            pass
        return event

    try:
        created = await client.live.create(
            session={"model": "gpt-live-1", "store": True},
            transport={"type": "webrtc", "sdp": await peer.create_offer()},
        )
        session_id = created.session.id
        await peer.accept_answer(created.transport.sdp)
        reader = InboundReader(await peer.remote_track, [heard])
        reader.start()
        await until_event("session.usage.updated")  # the turn heard and answered...
        await asyncio.wait_for(answered_and_quiet.wait(), 30)  # ...and its audio played to the end
        await reader.stop()
        with pytest.raises(Exception, match="under way"):  # no recording while the session runs
            await client.live.sessions.download_recording(session_id)
        peer.send(json.dumps({"type": "session.close"}))
        await until_event("session.closed")
        await server.history[-1].closed.wait()
        recording = await client.live.sessions.download_recording(session_id)
    finally:
        await peer.close()
        await client.close()
    (tmp_path / "stored.wav").write_bytes(recording.content)
    stereo, rate, channels = read_wav(tmp_path / "stored.wav")
    assert (rate, channels) == (24_000, 2)
    said, answered = loud_spans(stereo[:, 0], rate), loud_spans(stereo[:, 1], rate)
    assert said and answered and answered[0][0] > said[0][0]  # the user's sentence left, its echo after it right
    assert abs((said[-1][1] - said[0][0]) - speech.size / RTP_RATE) < 0.5  # the whole sentence, once
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": "Bearer sk-test"}) as http:
        unstored = await http.get("/live/sessions/live_nope/content")
    assert unstored.status_code == 404 and unstored.json()["error"]["code"] == "recording_not_found"
