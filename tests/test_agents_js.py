"""OpenAI's JavaScript Agents SDK (`@openai/agents-realtime`, pinned in tests/browser/agents/package.json) in real
Chromium, over its default WebRTC transport, against the embedded server on another origin: the browser client
most developers actually use, driven unchanged but for `baseUrl`.

The SDK is installed from npm and bundled with esbuild into a temporary folder at test time (nothing of it is
committed but its package.json and lock file)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from voiceclient.audio.format import dominant_frequency
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, longest_tone
from .test_browser import CHROMIUM, run_page

pytestmark = pytest.mark.timeout(120)
SOURCES = Path(__file__).parent / "browser" / "agents"
NPM = shutil.which("npm")
SCENARIO = FIXTURES / "scenarios" / "clients.toml"  # a typed turn, a tool turn, a long answer to interrupt
PAGE = """<!doctype html><html><body><script type="module" src="/bundle.js"></script></body></html>"""


@pytest.fixture(scope="session")
def agents_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm ci of the pinned SDK and esbuild, then the page bundled: a path to bundle.js."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/test installs Debian's chromium when run as root)")
    if NPM is None:
        pytest.skip("npm is not installed (scripts/test installs Debian's npm when run as root)")
    work = tmp_path_factory.mktemp("agents-js")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(SOURCES / name, work / name)
    (work / "src").mkdir()
    shutil.copy(SOURCES / "page.js", work / "src" / "page.js")
    install = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    build = subprocess.run(
        [
            str(work / "node_modules" / ".bin" / "esbuild"),
            "src/page.js",
            "--bundle",
            "--format=esm",
            "--outfile=bundle.js",
            "--log-level=warning",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    return work / "bundle.js"


async def test_the_agents_sdk_talks_to_the_embedded_server_over_webrtc(agents_bundle: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    async with RealtimeServer(port=0, api_key="sk-backend", responder=ScenarioResponder.from_file(SCENARIO)) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:  # the page's backend mints the key
            secret = (
                await http.post(
                    "/realtime/client_secrets",
                    headers={"Authorization": "Bearer sk-backend"},
                    json={"session": {"type": "realtime"}},
                )
            ).json()
        report = await run_page(
            server,
            "agents",
            tmp_path,
            page,
            f"base={server.base_url}&key={secret['value']}",
            assets={"/bundle.js": agents_bundle},
        )
        assert report["ok"], report["errors"]
        assert report["steps"] == ["connected", "typed turn", "tool turn", "interrupted", "closed"]
        assert not report["errors"], report["errors"]
        # Every server event the SDK knows passed its own schemas (it drops the others without a word).
        assert report["rejected"] == []
        assert {
            "session.created",
            "session.updated",
            "response.done",
            "output_audio_buffer.started",
            "output_audio_buffer.cleared",
            "conversation.item.added",
        } <= set(report["events"])
        assert re.fullmatch(r"rtc_u\d_[A-Za-z0-9]{21,32}", report["callId"])
        # The typed turn, the tool the SDK ran, and the answer made from its output.
        assert report["firstReply"] == "Hello from the embedded server."
        assert report["toolCalls"] == ["Paris"]
        history = report["history"]
        assert [h["name"] for h in history if h["type"] == "function_call"] == ["get_weather"]
        said = [h["text"] for h in history if h["type"] == "message" and h["role"] == "assistant"]
        assert said[:2] == ["Hello from the embedded server.", "Paris is sunny, 22 degrees."]
        # What the page heard: each answer's tone, and nothing of the long one after interrupt().
        heard = [h["hz"] for h in report["heard"]]
        for frequency in (660, 700, 330):
            assert any(abs(hz - frequency) < 40 for hz in heard), (frequency, sorted({round(h) for h in heard}))
        assert report["heardBeforeInterrupt"] > 10 and report["heardAfterInterrupt"] == 0
        assert len(said) == 3 and said[2] != "This is a long answer that goes on for a while."  # cut where heard
        # The server side: a lite answer (Chromium nominated), the fake microphone's 440 Hz, the SDK's session.
        [call] = list(server.history)
        assert call.transport == "webrtc" and call.edge.peer.lite and call.edge.peer.lite[0].checks_received >= 1  # type: ignore[attr-defined]
        outputs = [it for it in call.conversation.items if it["type"] == "function_call_output"]
        assert len(outputs) == 1 and '"forecast":"sunny"' in outputs[0]["output"].replace(" ", "")
        segment = longest_tone(call.conversation.user_audio(), 24000)  # (the page unmutes as a tone starts)
        assert abs(dominant_frequency(segment.astype(np.int16), 24000) - 440) < 5
        assert call.session["instructions"] == "Answer briefly."  # the agent's, sent by the SDK
