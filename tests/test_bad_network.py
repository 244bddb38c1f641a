"""`serve --network`: real calls through the emulated network, seen where a client sees it (aiortc's RTP stats,
RTCP round trips, the WebSocket's event times), the `network` fault mid-call, and the flag on the command line."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

import aiohttp
import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall
from voiceclient.audio.format import dominant_frequency
from voiceclient.audio.sources import BufferSource
from voiceclient.protocol import events as ev
from voiceclient.rtc import jitter
from voiceclient.rtc.netem import LinkModel
from voiceclient.server import RealtimeServer
from voiceclient.server.faults import FaultPlan, FaultSpec

from .conftest import loud_spans
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
            # The server's receiver reports come back 100 ms late; loopback adds about 1 ms, a busy machine more
            # to one report or another (its loop late to answer): never less than the delay, and a report within
            # 50 ms of it comes before long.
            rtts: list[float] = []

            async def measured() -> bool:
                remote = await stats_of(call, "remote-inbound-rtp")
                if remote is not None and remote.roundTripTime is not None and remote.roundTripTime not in rtts[-1:]:
                    rtts.append(remote.roundTripTime)
                return any(rtt < 0.15 for rtt in rtts)

            await until(measured, 20.0)
            network = server.history[-1].network
            assert network is not None
            assert all(rtt > 0.095 for rtt in rtts), rtts
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


# -- the receive path under it ------------------------------------------------------------------------------------
def _tone(hz: float, seconds: float, rate: int = 48_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def _played_tone(
    network: str, seconds: float = 3.0, faults: FaultPlan | None = None, tail: float = 1.0, chatter: int = 0
) -> tuple[list[tuple[int, np.ndarray]], Any]:
    """The server plays a 440 Hz tone through `network`; what the client's receive path handed on (pts, pcm), and
    its jitter buffer. `chatter`: `session.update`s the client sends first (SCTP both ways, and a later tone)."""
    session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    frames: list[tuple[int, np.ndarray]] = []
    async with RealtimeServer(port=0, network=network, faults=faults) as server:
        call = VoiceCall(settings_for(server), session, source=BufferSource(np.zeros(0, np.int16)))
        call.tap_audio(received=lambda pcm, pts, at: frames.append((pts, pcm.copy())))
        async with call:
            buffer = call.transport.peer.pc.getTransceivers()[0].receiver._RTCRtpReceiver__jitter_buffer.buffer  # type: ignore[attr-defined]
            for n in range(chatter):
                call.send(ev.SessionUpdate(session=session.model_copy(update={"instructions": f"chatter {n}"})))
                await call.wait_for(lambda e: e.type == "session.updated", 10)
            await until(_true(lambda: buffer.stats.received >= 25))  # the server is sending (silence)
            output = next(iter(server.calls.values())).output
            output.put("test", _tone(440, seconds, output.rate))
            wanted = buffer.stats.received + int((seconds + tail) * 50)  # the tone, then `tail` of silence
            await until(_true(lambda: buffer.stats.received >= wanted), timeout=seconds + tail + 15)
            return frames, buffer
    raise AssertionError("unreachable")


def _true(check: Any) -> Any:
    async def condition() -> bool:
        return bool(check())

    return condition


def _tone_span(frames: list[tuple[int, np.ndarray]]) -> np.ndarray:
    pcm = np.concatenate([f for _, f in frames])
    spans = loud_spans(pcm, 48_000, dbfs=-30)
    assert spans, "no tone was played"
    start, end = spans[0][0], spans[-1][1]
    return pcm[int(start * 48_000) : int(end * 48_000)]


async def test_lost_packets_are_concealed_in_time_not_holes() -> None:
    frames, buffer = await _played_tone("down.delay_ms=40:down.jitter_ms=10:down.loss=0.05:seed=3")
    assert buffer.stats.concealed + buffer.stats.recovered >= 3  # the network lost some of the tone's packets
    assert all(a[0] + a[1].size == b[0] for a, b in itertools.pairwise(frames)), "a hole in the played timeline"
    tone = _tone_span(frames)
    assert tone.size / 48_000 == pytest.approx(3.0, abs=0.15)  # all of it, and no more than stretching adds
    blocks = tone[: tone.size // 480 * 480].astype(np.float64).reshape(-1, 480)
    # Never a silent 10 ms inside the tone (a hole is 0): a lost packet is rebuilt from FEC or concealed. Where
    # several are lost close together, concealment fades: to a twentieth of the tone (-26 dB) when, as timing has
    # it, the tone meets the seed's densest losses (4 in 9 packets) before the server has turned FEC on.
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    assert rms[2:-2].min() > 150, np.round(rms).astype(int).tolist()
    # The tone throughout: every 100 ms reads as it. A block where a packet was rebuilt from FEC or the buffer
    # moved by a pitch period reads up to 24 Hz off (463-464 Hz in 1 run of 4 once the stream carried FEC; the
    # cause is not pinned down), so each block is held to 30 Hz and the tone as a whole to 5.
    found = [dominant_frequency(blocks[i : i + 10].reshape(-1), 48_000) for i in range(0, blocks.shape[0] - 10, 10)]
    assert all(abs(f - 440) <= 30 for f in found), [round(f) for f in found]
    assert float(np.median(found)) == pytest.approx(440, abs=5)


async def test_a_stall_delays_the_audio_and_the_delay_drains_once_the_network_calms_down() -> None:
    # 400 ms holds (Wi-Fi retry storms, handovers) twice a second on a 40 ms path, until it calms down after 2 s.
    # The buffer remembers peaks that recur for `PEAKS` seconds (a spell of jitter comes back): the delay they
    # added goes once they are forgotten, well before the end of the call.
    calm = FaultSpec(action="network", network="down.delay_ms=40", call=1, at_seconds=2.0)
    frames, buffer = await _played_tone(
        "down.delay_ms=40:down.stall_ms=400:down.stall_every_s=0.5:seed=5",
        3.0,
        faults=FaultPlan([calm]),
        tail=jitter.PEAKS + 2.0,
    )
    assert buffer.stats.late == 0  # nothing the stalls held back was thrown away...
    assert buffer.stats.concealed > 5  # ...the waits were concealed...
    assert buffer.stats.removed_ms > 100  # ...and the delay they added was taken out again
    assert buffer.delay_ms < 60  # 4 s after the tone, the buffer holds little: no delay for the rest of the call
    assert all(a[0] + a[1].size == b[0] for a, b in itertools.pairwise(frames))


async def _tone_losses(network: str, chatter: int, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Which of a 3 s tone's 150 audio packets the server's network lost (by place from the tone's first), when the
    client sent `chatter` events on the data channel first. The real model decides on the real packets; the test
    notes its verdicts, and the spurt each fell in (the tone's is the call's last)."""
    verdicts: list[tuple[int, bool]] = []  # (spurts so far, lost) per audio packet
    spurts = [0]
    fate, spurt = LinkModel.fate, LinkModel.spurt

    def noted_fate(model: LinkModel, now: float, sequence: int | None = None) -> float | None:
        due = fate(model, now, sequence)
        if sequence is not None and not model.clean:  # the impaired direction: down
            verdicts.append((spurts[0], due is None))
        return due

    def noted_spurt(model: LinkModel) -> None:
        spurts[0] += 1
        spurt(model)

    monkeypatch.setattr(LinkModel, "fate", noted_fate)
    monkeypatch.setattr(LinkModel, "spurt", noted_spurt)
    await _played_tone(network, chatter=chatter)
    return [lost for n, lost in verdicts if n == spurts[0]][:150]


async def test_an_answer_meets_the_same_losses_whatever_else_the_call_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    network = "down.loss=0.1:down.burst=2:down.jitter_ms=20:seed=6"
    quiet = await _tone_losses(network, 0, monkeypatch)
    chatty = await _tone_losses(network, 25, monkeypatch)
    assert 5 <= sum(quiet) <= 35  # about a tenth of 150, in bursts
    assert chatty == quiet
