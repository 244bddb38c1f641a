"""GPT-Live over WebRTC (`POST /v1/live/sessions`): the official SDK's `client.live.create`, unchanged, with an
aiortc offer that carries the audio and the `oai-events` channel the client made; the answer is taken and the
session runs on real loopback WebRTC. Every data channel event validates against `openai.types.live.ServerEvent`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest

from voiceclient.audio.format import RTP_RATE
from voiceclient.audio.sources import BufferSource, load_audio
from voiceclient.audio.tracks import OutboundTrack
from voiceclient.rtc.peer import Peer
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(60)


class Channel:
    """The client's `oai-events` channel: every server event validated, in order."""

    def __init__(self, peer: Peer) -> None:
        from openai.types.live import ServerEvent
        from pydantic import TypeAdapter

        self.adapter: Any = TypeAdapter(ServerEvent)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        peer.on_message = self._received

    def _received(self, message: str | bytes) -> None:
        event = json.loads(message)
        self.adapter.validate_python(event)
        self.seen.append(event)
        self.queue.put_nowait(event)

    async def until(self, kind: str, timeout: float = 20) -> list[dict[str, Any]]:
        got = []
        while True:
            event = await asyncio.wait_for(self.queue.get(), timeout)
            got.append(event)
            if event["type"] == kind:
                return got


async def test_the_sdk_creates_a_webrtc_session_that_starts_answers_and_closes() -> None:
    from openai import AsyncOpenAI

    speech = load_audio(FIXTURES / "speech" / "sentence_1.wav", RTP_RATE)
    pcm = np.concatenate([np.zeros(RTP_RATE // 2, np.int16), speech])
    async with RealtimeServer(port=0) as server:
        client = AsyncOpenAI(api_key="sk-test", base_url=server.base_url)
        peer = Peer(OutboundTrack(BufferSource(pcm)))
        channel = Channel(peer)
        try:
            offer = await peer.create_offer()
            created = await client.live.create(
                session={"model": "gpt-live-1", "instructions": "Be brief."},
                transport={"type": "webrtc", "sdp": offer},
            )
            assert created.session.id.startswith("live_") and created.transport.type == "webrtc"
            assert "a=ice-lite" in created.transport.sdp  # the answer as serve gives it for the Realtime API
            await peer.accept_answer(created.transport.sdp)
            started = (await channel.until("session.started"))[-1]  # the first event on the channel
            assert channel.seen[0] is started and started["session"]["id"] == created.session.id
            assert "format" not in started["session"]["audio"]  # WebRTC negotiates its own media format
            said = await channel.until("session.usage.updated")  # the turn, heard and answered on the tracks
            assert any(e["type"] == "session.output_transcript.delta" for e in said)
            assert not any(e["type"] == "session.output_audio.delta" for e in said)  # audio only on the track
            peer.send(json.dumps({"type": "session.close", "event_id": "bye"}))
            closed = (await channel.until("session.closed"))[-1]
            assert closed["reason"] == "close_requested" and closed["session"]["id"] == created.session.id
            assert server.realtime_call(created.session.id) is None  # no Realtime hangup or sideband reaches it
        finally:
            await peer.close()
            await client.close()


async def test_a_bad_creation_is_refused_in_the_apis_envelope() -> None:
    async with RealtimeServer(port=0) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        auth = {"Authorization": "Bearer sk-test"}
        body: dict[str, Any] = {"session": {"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu"}}}}
        body["transport"] = {"type": "webrtc", "sdp": "v=0"}
        refused = await http.post("/live/sessions", json=body, headers=auth)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "session.audio.format"
        body = {"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": "v=0", "x": 1}}
        refused = await http.post("/live/sessions", json=body, headers=auth)
        assert refused.json()["error"]["code"] == "unknown_parameter"
        assert refused.json()["error"]["param"] == "transport.x"
        body = {"session": {"model": "gpt-realtime"}, "transport": {"type": "webrtc", "sdp": "v=0"}}
        refused = await http.post("/live/sessions", json=body, headers=auth)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
        assert not server.live
