"""A backend joins a live WebRTC call over the sideband WebSocket, with the official openai SDK unchanged."""

from __future__ import annotations

import asyncio

import pytest

from voiceclient import ClientSettings, VoiceCall
from voiceclient.client.options import Recording
from voiceclient.server import RealtimeServer

pytestmark = pytest.mark.timeout(30)


async def test_the_sdk_joins_a_call_and_drives_it(tmp_path) -> None:
    from openai import AsyncOpenAI

    async with RealtimeServer(port=0) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl")) as call:
            stream = call.events()
            client = AsyncOpenAI(api_key="sk-backend", base_url=server.base_url)
            async with client.realtime.connect(call_id=call.call_id) as sideband:
                first = await asyncio.wait_for(sideband.recv(), 5)
                assert first.type == "session.created" and first.session.audio.output.voice == "alloy"
                await sideband.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "from the backend"}],
                    }
                )
                await sideband.response.create()
                seen = []
                while "response.done" not in seen:
                    event = await asyncio.wait_for(sideband.recv(), 5)  # parsed by the SDK's own models
                    seen.append(event.type)
                assert {"conversation.item.added", "response.created", "response.output_audio_transcript.done"} <= set(
                    seen
                )
                await sideband.send({"type": "no.such.event", "event_id": "sb1"})  # type: ignore[arg-type]
                error = await asyncio.wait_for(sideband.recv(), 5)
                assert error.type == "error" and error.error.event_id == "sb1"
            # A browser-style join offers the `realtime` subprotocol, and gets it chosen (or it refuses the handshake).
            import websockets

            url = server.base_url.replace("http://", "ws://") + f"/realtime?call_id={call.call_id}"
            auth = {"Authorization": "Bearer sk-backend"}
            async with websockets.connect(url, subprotocols=["realtime"], additional_headers=auth) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "realtime"
            # The WebRTC client saw the same conversation, and heard the answer.
            said = await stream.next_of("response.output_audio_transcript.done")
            assert said.transcript == "You said: from the backend"
            await stream.next_of("output_audio_buffer.stopped")
            assert call.meter.speech_received_seconds > 0.4
            await client.close()


async def test_unknown_calls_and_sessions_without_a_model_are_refused() -> None:
    import httpx

    async with RealtimeServer(port=0) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            headers = {
                "Authorization": "Bearer sk-x",
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            }
            unknown = await http.get("/realtime", params={"call_id": "rtc_nope"}, headers=headers)
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "call_id_not_found"
            missing = await http.get("/realtime", headers=headers)
            # neither a call to join nor a model for a new WebSocket session
            assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
            no_key = await http.get("/realtime", params={"call_id": "rtc_nope"})
            assert no_key.status_code == 401
