"""`serve --network`: real calls through the emulated network, seen where a client sees it (aiortc's RTP stats,
RTCP round trips, the WebSocket's event times), the `network` fault mid-call, and the flag on the command line."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import pytest

from voiceclient import ClientSettings, VoiceCall
from voiceclient.server import RealtimeServer
from voiceclient.server.faults import FaultPlan, FaultSpec

from .test_cli import run_cli

pytestmark = pytest.mark.timeout(40)


def settings_for(server: RealtimeServer) -> ClientSettings:
    return ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc", connect_timeout=10)


async def stats_of(call: VoiceCall, kind: str) -> Any:
    report = await call.transport.peer.pc.getStats()  # type: ignore[attr-defined]
    return next((s for s in report.values() if s.type == kind), None)


async def until(condition: Any, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)


async def test_down_loss_shows_in_the_clients_rtp_stats_and_the_servers_counters() -> None:
    async with RealtimeServer(port=0, network="down.loss=0.2:seed=1") as server:
        async with VoiceCall(settings_for(server)) as call:
            call.send_text("say something long enough")
            await call.wait_for(lambda e: e.type == "response.done", 15)

            async def enough() -> bool:
                inbound = await stats_of(call, "inbound-rtp")
                return inbound is not None and inbound.packetsReceived >= 100

            await until(enough)
            inbound = await stats_of(call, "inbound-rtp")
            network = server.history[-1].network
            assert network is not None
            assert network.up.stats.lost == 0 and network.down.stats.lost > 0
            # about a fifth of the RTP (the counter also has the DTLS and SCTP datagrams)
            share = inbound.packetsLost / (inbound.packetsLost + inbound.packetsReceived)
            assert 0.1 < share < 0.3, (inbound.packetsLost, inbound.packetsReceived)
    assert network.down.stats.passed > 100 and 0.1 < network.down.stats.lost / network.down.stats.passed < 0.35


async def test_down_delay_raises_the_rtcp_round_trip_by_as_much() -> None:
    async with RealtimeServer(port=0, network="down.delay_ms=100") as server:
        async with VoiceCall(settings_for(server)) as call:

            async def measured() -> bool:
                remote = await stats_of(call, "remote-inbound-rtp")
                return remote is not None and remote.roundTripTime is not None

            await until(measured)
            rtt = (await stats_of(call, "remote-inbound-rtp")).roundTripTime
            network = server.history[-1].network
            assert network is not None
            assert 0.095 < rtt < 0.15, rtt  # the server's receiver reports come back 100 ms late; loopback adds ~1
            assert 99 < network.down.stats.mean_delay_ms < 110 and network.up.stats.mean_delay_ms < 5


async def test_the_network_fault_makes_a_clean_call_lossy_mid_call() -> None:
    faults = FaultPlan([FaultSpec(action="network", network="down.loss=0.5:seed=4", call=1, at_seconds=1.0)])
    async with RealtimeServer(port=0, faults=faults) as server:
        async with VoiceCall(settings_for(server)) as call:
            network = server.history[-1].network
            assert network is not None and network.spec.name == "clean"
            assert network.down.stats.lost == 0 and network.down.stats.passed > 0  # (the call is open)

            async def switched() -> bool:
                return network.down.stats.lost >= 10

            await until(switched)
            assert network.spec.name == "down.loss=0.5:seed=4"
            assert time.time() - server.history[-1].created_at >= 1.0
            inbound = await stats_of(call, "inbound-rtp")
            assert inbound.packetsLost > 0
            assert network.up.stats.lost == 0


async def test_a_websocket_session_gets_its_events_late_in_order_and_all_of_them() -> None:
    """200 ms each way: the first event 200 ms after the upgrade, a reply 400 ms after the request; a lossy down
    direction turns losses into stalls (the counters say how many), and every event still arrives, in order."""
    async with RealtimeServer(port=0, network="delay_ms=200:down.loss=0.3:seed=2") as server:
        url = f"{server.websocket_url}/realtime?model=gpt-realtime"
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.ws_connect(url, headers={"Authorization": "Bearer sk-test"}) as ws:
                upgraded = time.monotonic()
                first = json.loads((await ws.receive(timeout=5)).data)
                greeted = time.monotonic()
                assert first["type"] == "session.created"
                assert 0.19 < greeted - upgraded < 1.0 and greeted - started < 1.5
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
                asked = time.monotonic()
                await ws.send_json({"type": "conversation.item.create", "item": item})
                await ws.send_json({"type": "response.create"})
                types: list[str] = []
                while not types or types[-1] != "response.done":
                    types.append(json.loads((await ws.receive(timeout=10)).data)["type"])
                    if len(types) == 1:
                        assert time.monotonic() - asked >= 0.39
            network = server.history[-1].network
    assert types[:2] == ["conversation.item.added", "conversation.item.done"]
    assert types[2] == "response.created" and types[-1] == "response.done"
    deltas = [i for i, t in enumerate(types) if t == "response.output_audio.delta"]
    assert deltas and deltas == list(range(deltas[0], deltas[0] + len(deltas)))  # none missing from the run
    assert network is not None and network.down.stats.lost > 0  # losses became stalls
    assert network.up.stats.lost == 0 and network.down.stats.passed >= len(types) + 1


async def test_serve_takes_network_and_says_so() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--network", "wifi:seed=3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(5)]
        assert "  network: wifi:seed=3 (seed 3): down 40 ms ± 20 ms, 0.5 % loss; up the same\n" in lines, lines
    finally:
        proc.kill()
        await proc.wait()


async def test_serve_refuses_a_network_it_does_not_know_in_one_line() -> None:
    code, out, err = await run_cli("serve", "--port", "0", "--no-speech", "--network", "nonsense")
    assert code == 2 and out == ""
    assert err == (
        "voiceclient: error: network 'nonsense': unknown profile 'nonsense'; "
        "the profiles are wifi, bad-wifi, lossy, mobile\n"
    )


async def test_the_plugins_voice_server_takes_a_network(voice_server: Any) -> None:
    server = await voice_server(network="bad-wifi")
    assert server.network is not None and server.network.name == "bad-wifi"
    async with VoiceCall(settings_for(server)) as call:
        call.send_text("hello")
        done = await call.wait_for(lambda e: e.type == "response.done", 15)
        assert done.response.status == "completed"
    network = server.history[-1].network
    assert network is not None and network.down.stats.mean_delay_ms > 50
