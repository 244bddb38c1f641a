"""A real Chromium page written as OpenAI's GPT-Live WebRTC guide shows a browser app (tests/browser/live.html),
driven by playwright with the system's browser, against the embedded server: the fake microphone's tone in, the
echo heard on the track, the transcript deltas read, `session.close` answered with `session.closed`. The page's
offer reaches `POST /v1/live/sessions` as the guide has it (through the page's own server, which holds the key
and calls the `openai` SDK's `client.live.create`) or straight from the page (a JSON POST across origins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from voiceclient.audio.format import dominant_frequency
from voiceclient.server import RealtimeServer

from .conftest import longest_tone
from .test_browser import CHROMIUM

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/test installs it)"),
]
PAGE = Path(__file__).parent / "browser" / "live.html"


async def app_server(server: RealtimeServer, created: list[Any]) -> tuple[web.AppRunner, str]:
    """The page's own origin, as in the guide: the page, and `/api/session`, which takes the browser's offer and
    gets the answer with the project key through the `openai` SDK."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="sk-backend", base_url=server.base_url, max_retries=0)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def session(request: web.Request) -> web.Response:
        reply = await client.live.create(
            session={
                "model": "gpt-live-1",
                "instructions": "from the backend",
                "audio": {"output": {"voice": "marin"}},
            },
            transport={"type": "webrtc", "sdp": await request.text()},
        )
        created.append(reply)
        return web.Response(text=reply.transport.sdp, content_type="application/sdp")

    async def close_client(app: web.Application) -> None:
        await client.close()

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/api/session", session)
    app.on_cleanup.append(close_client)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ["backend", "direct"])
async def test_a_page_following_the_live_webrtc_guide_talks_to_serve(browser: Any, mode: str) -> None:
    from openai.types.live import ClientEvent, ServerEvent
    from pydantic import TypeAdapter

    created: list[Any] = []
    async with RealtimeServer(port=0) as server:
        runner, origin = await app_server(server, created)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{origin}/?mode={mode}&base={server.base_url}")
            report = await page.evaluate("window.outcome")
        finally:
            await runner.cleanup()
        assert report["ok"], (report.get("error"), [e["type"] for e in report["events"]])
        assert errors == []
        events = report["events"]
        kinds = [e["type"] for e in events]
        # Every event the page received is one of the SDK's own, and so is every event the page sent.
        server_event: TypeAdapter[Any] = TypeAdapter(ServerEvent)
        for event in events:
            server_event.validate_python(event)
        client_event: TypeAdapter[Any] = TypeAdapter(ClientEvent)
        for event in report["sent"]:
            client_event.validate_python(event)
        assert [e["type"] for e in report["sent"]] == ["session.instructions.append", "session.close"]
        # In order: the session starts first, the answer comes (as transcript deltas, its audio on the track only),
        # usage after it, and session.closed last.
        assert kinds[0] == "session.started"
        assert "session.instructions.appended" in kinds
        assert "session.output_transcript.delta" in kinds
        assert "session.output_audio.delta" not in kinds
        first_text = kinds.index("session.output_transcript.delta")
        assert kinds.index("session.usage.updated") > first_text
        assert kinds[-1] == "session.closed" and events[-1]["reason"] == "close_requested"
        assert not [k for k in kinds if k.startswith(("response.", "input_audio_buffer.", "conversation."))]
        session_id = events[0]["session"]["id"]
        assert session_id.startswith("live_") and events[-1]["session"]["id"] == session_id
        assert events[0]["session"]["model"] == "gpt-live-1"
        assert "format" not in events[0]["session"]["audio"]  # WebRTC negotiates its own
        if mode == "backend":
            assert [c.session.id for c in created] == [session_id]
            assert events[0]["session"]["instructions"] == "from the backend"
        else:
            assert created == [] and report["status"] == 201 and report["sessionId"] == session_id
            assert events[0]["session"]["instructions"] == "from the page"
        # What was said: the echo's words, in deltas with times, and the echo heard at the tone's pitch.
        assert report["said"]["assistant"].startswith("Echo of ")
        deltas = [e for e in events if e["type"] == "session.output_transcript.delta"]
        assert all(0 <= d["start_ms"] <= d["end_ms"] for d in deltas)
        heard = report["heard"]
        assert heard["maxLevel"] > 0.05, heard
        assert len(heard["hz"]) >= 5 and abs(float(np.median(heard["hz"])) - 440) < 25, sorted(heard["hz"])
        # What the server heard from the browser's (fake, file-fed) microphone: the fixture's 440 Hz tone.
        [session] = [s for s in server.history if s.id == session_id]
        segment = longest_tone(session.conversation.user_audio(), 24000)
        assert abs(dominant_frequency(segment.astype(np.int16), 24000) - 440) < 5
