"""The live console of `voiceclient serve` in real Chromium (driven by playwright, the system's browser): a
scripted call and its events while it runs, then its report; a turn from the page's own "talk" button with a fake
microphone; the console's endpoints and who may read them."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import numpy as np
import pytest

from voiceclient import ClientSettings, VoiceCall
from voiceclient.audio.format import API_RATE, dominant_frequency
from voiceclient.audio.sources import WavSource
from voiceclient.client.options import Recording

from .conftest import FIXTURES, longest_tone, loud_spans, read_wav
from .test_browser import CHROMIUM

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/test installs it)"),
]


def console_url(server: Any) -> str:
    return server.base_url.removesuffix("/v1") + "/"


async def test_the_console_shows_a_live_call_its_events_and_then_its_report(
    voice_server: Any, browser: Any, tmp_path: Any
) -> None:
    server = await voice_server(
        scenario=FIXTURES / "scenarios" / "long_reply.toml",  # 3 s answers
        record_dir=tmp_path / "kept",
    )
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(console_url(server)) else None)
    await page.goto(console_url(server))
    await page.wait_for_selector("text=no calls yet")
    settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc")
    async with VoiceCall(
        settings,
        source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
        recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
    ) as call:
        card = page.locator(".session", has_text=call.call_id)
        await card.locator("text=live").wait_for()
        # while it runs: the user's turn, then the answer playing, each as it happens
        await page.locator("#rows td.type", has_text="input_audio_buffer.speech_started").first.wait_for()
        await page.locator("#status .badge", has_text="assistant speaking").wait_for(timeout=15_000)
        assert await page.locator("#title").inner_text() == call.call_id
        assert call.state.value == "connected"  # (the page showed all that before the call ended)
        await page.locator("#rows tr.client td.type", has_text="session.update").first.wait_for()
        await call.run_until_idle(1.0)
    await card.locator("text=ended").wait_for(timeout=15_000)
    rows = await page.locator("#rows td.type").all_inner_texts()
    assert (
        rows.index("input_audio_buffer.speech_started")
        < rows.index("response.created")
        < rows.index("output_audio_buffer.started")
        < rows.index("output_audio_buffer.stopped")
    )
    await page.locator("#rows td.type", has_text="response.done").first.click()
    assert json.loads(await page.locator("#json").inner_text())["event"]["response"]["status"] == "completed"
    await page.screenshot(path=str(tmp_path / "console.png"))
    # once ended: its timeline page, from the server's own log of the session
    async with page.expect_popup() as popup:
        await page.click("#report-link")
    report = await popup.value
    await report.wait_for_selector("body[data-ready='1']")
    assert await report.inner_text("#fact-call") == call.call_id
    assert await report.inner_text("#fact-turns") == "1"
    assert (await report.inner_text("#fact-turn-latency")).endswith("(recording)")  # the server's recording
    # the recording itself: left what the user sent (1 s of 440 Hz), right what the server played (3 s)
    wav = await page.request.get(console_url(server).rstrip("/") + await page.get_attribute("#recording-link", "href"))
    assert wav.ok and wav.headers["content-type"] == "audio/wav"
    (tmp_path / "server.wav").write_bytes(await wav.body())
    pcm, rate, channels = read_wav(tmp_path / "server.wav")
    assert channels == 2
    (said,) = loud_spans(pcm[:, 0], rate)
    assert 0.9 < said[1] - said[0] < 1.2
    assert abs(dominant_frequency(pcm[int(said[0] * rate) : int(said[1] * rate), 0], rate) - 440) < 5
    answered = loud_spans(pcm[:, 1], rate)
    assert answered[0][0] > said[1] and 2.8 < answered[0][1] - answered[0][0] < 3.2
    assert outside == []  # the console and its report asked nothing of anyone else


async def test_talk_from_this_browser_makes_a_webrtc_call_and_hears_the_answer(voice_server: Any, browser: Any) -> None:
    server = await voice_server()  # the echo
    page = await browser.new_page()
    await page.goto(console_url(server))
    await page.click("#talk-button")
    await page.locator("#said .assistant", has_text="Echo of").first.wait_for(timeout=30_000)
    call_id = await page.evaluate("document.body.dataset.call")
    await page.locator(".session", has_text=call_id).wait_for()
    call = next(s for s in server.history if s.id == call_id)
    heard = longest_tone(call.conversation.user_audio(), API_RATE)  # the fake microphone's 440 Hz, over WebRTC
    assert abs(dominant_frequency(heard, API_RATE) - 440) < 5
    assert np.abs(heard).max() > 1000
    await page.click("#hangup")
    await page.locator(".session", has_text=call_id).locator("text=ended").wait_for(timeout=15_000)
    assert await page.inner_text("#talk-state") == "not connected"


async def test_the_console_endpoints(realtime_server: Any) -> None:
    root = console_url(realtime_server)
    async with aiohttp.ClientSession() as http:
        async with http.get(root, headers={"Accept": "application/json"}) as r:  # scripts keep their JSON index
            assert (await r.json())["object"] == "voiceclient.server"
        async with http.get(root, headers={"Accept": "text/html", "Origin": "https://elsewhere.example"}) as r:
            page = await r.text()
            assert "voiceclient serve" in page and "default-src 'none'" in page
            assert "Access-Control-Allow-Origin" not in r.headers  # the console is for its own origin
        async with http.get(root + "console/sessions", headers={"Origin": "https://elsewhere.example"}) as r:
            assert (await r.json()) == {"sessions": []} and "Access-Control-Allow-Origin" not in r.headers
        async with http.get(root + "console/sessions/rtc_nobody/events.jsonl") as r:
            assert r.status == 404 and "no session 'rtc_nobody'" in (await r.json())["error"]["message"]
