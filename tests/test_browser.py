"""A real Chromium, following OpenAI's browser guide, calls the embedded server from another origin."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from voiceclient.audio.format import dominant_frequency
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, longest_tone, loud_spans

pytestmark = pytest.mark.timeout(90)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PAGE = Path(__file__).parent / "browser" / "call.html"


async def run_page(
    server: RealtimeServer,
    mode: str,
    tmp_path: Path,
    page_file: Path = PAGE,
    query: str | None = None,
    assets: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Serve `page_file` (and `assets`, by path) from an origin of its own, open it in Chromium with a fake
    microphone playing the 440 Hz fixture, and return what the page POSTs to /result."""
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=page_file.read_text(), content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        path = (assets or {})[request.path]
        return web.Response(body=path.read_bytes(), content_type="text/javascript")

    async def receive(request: web.Request) -> web.Response:
        if not result.done():
            result.set_result(json.loads(await request.text()))
        return web.Response()

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/result", receive)
    for path in assets or {}:
        app.router.add_get(path, asset)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/?{query or f'mode={mode}&base={server.base_url}'}"
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={FIXTURES / 'tone_440_16k_stereo.wav'}",
            "--autoplay-policy=no-user-gesture-required",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(result, 60)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        await runner.cleanup()


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/test installs Debian's chromium when run as root)")
    return CHROMIUM


@pytest.mark.parametrize("mode", ["formdata", "ephemeral"])
async def test_browser_call_from_another_origin(chromium: str, mode: str, tmp_path: Path) -> None:
    async with RealtimeServer(port=0) as server:
        report = await run_page(server, mode, tmp_path)
        assert report["ok"], report
        assert report["status"] == 201 and report["location"].startswith("/v1/realtime/calls/rtc_")
        events = report["events"]
        for expected in (
            "session.created",
            "session.updated",
            "input_audio_buffer.speech_started",
            "input_audio_buffer.committed",
            "response.done",
            "output_audio_buffer.started",
            "output_audio_buffer.stopped",
        ):
            assert expected in events, (expected, events)
        assert events[0] == "session.created"
        assert report["maxLevel"] > 0.05  # the echo was heard in the page
        # What the server heard from the browser's (fake, file-fed) microphone is the fixture's 440 Hz tone.
        assert len(server.history) == 1
        call = server.history[0]
        user_audio = call.conversation.user_audio()
        assert user_audio
        pcm = user_audio[0]
        start, end = loud_spans(pcm, 24000)[0]
        segment = pcm[int(start * 24000) + 1200 : int(end * 24000) - 1200]
        assert abs(dominant_frequency(segment.astype(np.int16), 24000) - 440) < 5
        expected_instructions = "from the secret" if mode == "ephemeral" else "from the page"
        assert call.session["instructions"] == expected_instructions


async def test_browser_websocket_session_with_an_ephemeral_key(chromium: str, tmp_path: Path) -> None:
    """A page opens a WebSocket session the browser way (the key as a subprotocol), streams its microphone as
    appends, and gets the echo back as audio deltas."""
    import httpx

    async with RealtimeServer(port=0, api_key="sk-backend") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:  # the page's backend mints the key
            secret = (
                await http.post(
                    "/realtime/client_secrets",
                    headers={"Authorization": "Bearer sk-backend"},
                    json={"session": {"type": "realtime", "instructions": "from the secret"}},
                )
            ).json()
        ws_url = f"{server.websocket_url}/realtime?model=gpt-realtime"
        report = await run_page(
            server,
            "websocket",
            tmp_path,
            Path(__file__).parent / "browser" / "websocket.html",
            f"ws={ws_url}&key={secret['value']}",
        )
        assert report["ok"], report
        assert report["protocol"] == "realtime"
        events = report["events"]
        assert events[0] == "session.created"
        for expected in (
            "input_audio_buffer.speech_started",
            "input_audio_buffer.committed",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.done",
        ):
            assert expected in events, (expected, events)
        assert not [e for e in events if e.startswith("output_audio_buffer.")]
        assert report["answerSamples"] > 0.3 * 24000 and report["peak"] > 1000
        assert report["transcript"].startswith("Echo of")
        session = server.history[0]
        assert session.transport == "websocket" and session.session["instructions"] == "from the secret"
        segment = longest_tone(session.conversation.user_audio(), 24000)
        assert abs(dominant_frequency(segment.astype(np.int16), 24000) - 440) < 5
