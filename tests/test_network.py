"""A network that drops UDP, for real: `voiceclient serve` in a network namespace of the test's own (a veth pair,
nftables in the namespace dropping every UDP packet), the client outside. HTTP and the WebSocket (TCP) pass, ICE
(UDP) does not, as on office, hotel and conference networks that let only HTTPS out.

Needs root (CI is root), `ip` and `nft` (scripts/test installs iproute2 and nftables). The addresses are the
benchmarking range 198.18.0.0/15, on the test's own veth pair only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource, tool
from voiceclient.audio.format import dominant_frequency
from voiceclient.client.fallback import AutoTransport
from voiceclient.client.options import Continuity, ReconnectPolicy, Recording
from voiceclient.client.websocket import WebSocketTransport
from voiceclient.errors import ConnectionLostError

from .conftest import FIXTURES, loud_spans, read_wav

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"),
        reason="needs root, ip and nft (CI runs as root; scripts/test installs nftables)",
    ),
]


SERIAL = itertools.count(10)  # two digits: one namespace and veth pair per test, names under 16 characters


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def drop(ns: str, table: str, protocols: str) -> None:
    """Drop every packet of `protocols` ("udp", "{ tcp, udp }") in and out of namespace `ns`, silently."""
    rules = (
        f"table inet {table} {{\n"
        f"  chain input {{ type filter hook input priority 0; meta l4proto {protocols} drop; }}\n"
        f"  chain output {{ type filter hook output priority 0; meta l4proto {protocols} drop; }}\n}}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules.encode(), check=True, capture_output=True, timeout=20
    )


@pytest.fixture
async def udp_dropped_server() -> AsyncIterator[str]:
    """`voiceclient serve --scenario tools.toml` behind a namespace that drops UDP both ways; its base URL."""
    async with namespaced_server(True, "--scenario", str(FIXTURES / "scenarios" / "tools.toml")) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def namespaced_server(drop_udp: bool, *serve_args: str) -> AsyncIterator[tuple[str, str]]:
    """`voiceclient serve` in a namespace of its own (dropping UDP both ways, or not); (its base URL, the
    namespace's name)."""
    tag = f"{os.getpid() % 10000}{next(SERIAL)}"
    ns, outside, inside = f"vc{tag}", f"vca{tag}", f"vcb{tag}"
    subnet = (os.getpid() * 7 + int(tag[-2:])) % 250
    host_ip, ns_ip = f"198.18.{subnet}.1", f"198.18.{subnet}.2"
    sh("ip", "netns", "add", ns)
    proc = None
    try:
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", outside)
        sh("ip", "link", "set", outside, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", inside)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        if drop_udp:
            drop(ns, "voiceclient_test", "udp")
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "voiceclient",
            "serve",
            "--host",
            ns_ip,
            "--port",
            "0",
            "--no-speech",
            "--vad",
            "energy",
            *serve_args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        yield line.split("listening on ")[1].split()[0], ns
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=20)  # and its peer with it
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


@tool
def get_weather(city: str, unit: str = "celsius") -> dict:
    """Weather for a city."""
    if unit not in ("celsius", "fahrenheit"):
        raise ValueError(f"unknown unit {unit}")
    return {"city": city, "forecast": "sunny", "temperature": 22}


async def test_webrtc_alone_fails_at_its_deadline_where_udp_is_dropped(udp_dropped_server: str) -> None:
    settings = ClientSettings(base_url=udp_dropped_server, api_key="sk-x", transport="webrtc")
    started = time.monotonic()
    with pytest.raises(ConnectionLostError) as err:
        async with VoiceCall(settings):
            pass
    elapsed = time.monotonic() - started
    assert str(err.value).startswith("the WebRTC connection did not come up within 5 s")
    assert "blocks UDP" in str(err.value) and "\n" not in str(err.value)
    assert 4.5 < elapsed < 10


async def test_auto_goes_on_over_websocket_with_a_spoken_turn_and_a_tool(udp_dropped_server: str, tmp_path) -> None:
    settings = ClientSettings(base_url=udp_dropped_server, api_key="sk-x")  # transport "auto", the default
    session = SessionConfig.model_validate(
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}
    )
    status: list[str] = []
    out = tmp_path / "out.wav"
    started = time.monotonic()
    async with VoiceCall(
        settings,
        session,
        source=WavSource(FIXTURES / "hello.wav"),
        tools=[get_weather],
        on_status=status.append,
        recording=Recording(output_wav=out),
    ) as call:
        assert isinstance(call.transport, AutoTransport) and isinstance(call.transport.chosen, WebSocketTransport)
        stream = call.events()
        first = await stream.next_of("response.output_audio_transcript.done", timeout=30)
        first_answer = time.monotonic() - started
        assert first.transcript == "Checking two cities."
        answer = await stream.next_of("response.output_audio_transcript.done", timeout=30)
        assert answer.transcript == "Paris is sunny, 22 degrees."
        await call.run_until_idle(1.0, 30)
    assert (
        len(status) == 1
        and status[0].startswith("WebRTC did not connect (the WebRTC connection did not come up within 3 s")
        and status[0].endswith("over WebSocket")
    )
    assert 3 < first_answer < 20
    # Heard, played out by the client: the preamble's 0.4 s of 500 Hz, then the answer's 0.6 s of 700 Hz, back to
    # back (as over WebRTC: the answer follows the tool output at once).
    pcm, rate, _ = read_wav(out)
    [(start, end)] = loud_spans(pcm[:, 0], rate)
    assert abs(end - start - 1.0) < 0.06
    head = pcm[int(start * rate) + 600 : int((start + 0.35) * rate), 0]
    tail = pcm[int((start + 0.5) * rate) : int(end * rate) - 600, 0]
    assert abs(dominant_frequency(head, rate) - 500) < 5 and abs(dominant_frequency(tail, rate) - 700) < 5


@pytest.mark.parametrize(
    "transport, reason",
    [
        ("webrtc", "no audio from the server for 1.5 s"),
        ("websocket", "the server went silent: no answer to a WebSocket ping for 1.5 s"),
    ],
)
async def test_a_network_that_goes_silent_mid_call_is_noticed_and_the_call_comes_back(
    transport: str, reason: str
) -> None:
    """Every packet to and from the server dropped mid-call, no FIN, no RST (Wi-Fi gone, a VPN re-routing): the
    client notices within its media timeout (over WebRTC the audio stops; over a WebSocket only its pings can
    tell), tries again while the network is down, and once it is back carries the conversation on."""
    async with namespaced_server(False) as (url, ns):
        settings = ClientSettings(
            base_url=url,
            api_key="sk-x",
            transport=transport,  # type: ignore[arg-type]
            connect_timeout=2,
            session_update_timeout=2,
            http_timeout=2,
            max_retries=0,
        )
        statuses: list[str] = []
        changed = asyncio.Event()

        def on_status(text: str) -> None:
            statuses.append(text)
            changed.set()

        async def until(word: str, timeout: float) -> float:
            async def wait() -> None:
                while not any(word in s for s in statuses):
                    changed.clear()
                    await changed.wait()

            await asyncio.wait_for(wait(), timeout)
            return time.monotonic()

        async with VoiceCall(
            settings,
            on_status=on_status,
            continuity=Continuity(reconnect=ReconnectPolicy(8, (0.5,)), media_timeout=1.5),
        ) as call:
            call.send_text("remember the number 42")
            await call.wait_for(lambda e: e.type == "response.done", 10)
            await asyncio.sleep(1.0)  # the server streams on (WebRTC) or pings go unanswered (WebSocket)
            dropped = time.monotonic()
            drop(ns, "voiceclient_silent", "{ tcp, udp }")
            noticed = await until("connection lost", 10)
            await until("reconnecting (attempt 2", 30)  # the first attempt met the silent network
            sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "voiceclient_silent")
            await until("reconnected", 40)
            call.send_text("which number?")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed" and call.switches == 1
    assert statuses[0] == f"connection lost: {reason}"
    assert 1.0 < noticed - dropped < 4.0
    assert statuses[-1] == "reconnected, conversation restored (2 items)"
