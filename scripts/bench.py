#!/usr/bin/env python3
"""Benchmarks on loopback: connect time, one-way audio latency each way (before and after a lost packet),
CPU of one call. Figures go in docs/benchmarks.md; nothing here is a test.

    .venv/bin/python scripts/bench.py            # everything (about a minute)
    .venv/bin/python scripts/bench.py latency --stock   # the same latency run with aiortc's stock jitter buffer
    .venv/bin/python scripts/bench.py scale --calls 1,8,16   # N scripted calls at once against one server
    .venv/bin/python scripts/bench.py scale --workers 1,2    # the same against serve --workers 1, then 2
    .venv/bin/python scripts/bench.py websocket --sessions 1,8   # WebSocket sessions driven by the openai SDK
    .venv/bin/python scripts/bench.py agents --runs 10 --turns 10   # the Agents SDK: its WebSocket model, WebRTCModel
    .venv/bin/python scripts/bench.py report --minutes 30   # `voiceclient report` on a 30-minute call
    .venv/bin/python scripts/bench.py network --seconds 40 --seeds 1,2,3   # speech quality under network profiles
    .venv/bin/python scripts/bench.py echo          # the click round trip through a Chromium echo (2 minutes)
    .venv/bin/python scripts/bench.py startup --runs 20 --before DIR   # process start, against another checkout
    .venv/bin/python scripts/bench.py callcpu --runs 3 --spy prof/   # CPU of `call` and `serve` processes, py-spy
    .venv/bin/python scripts/bench.py rtppath   # us per audio RTP packet, aiortc's path and voiceclient.rtc.direct

`network`: espeak-ng says Harvard sentences (`--seconds` of speech, one turn each, room left for each echo) into
`voiceclient serve --no-speech` (a process of its own, echo, server VAD 500 ms), one serve per profile and seed
(`--network down=PROFILE:seed=N`; `--uplink`: `up=`), and each receiver makes its own call to it, one after the
other: voiceclient's VoiceCall with the real SpeakerSink on a PulseAudio null sink (played = the blocks the device
callback took, its `reference`), the same call's `--record` right lane (what arrived), stock aiortc in a process
that imports no voiceclient (scripts/bench_aiortc.py: played = `track.recv()`'s frames in order) and headless
Chromium with the WAV as its fake microphone (scripts/bench_network.html: played = the remote stream through
WebAudio, recorded by an AudioWorklet beside the microphone). Per receiver: PESQ wideband of each sentence's echo
(found by cross-correlation against the sentence; groups of ~10 s), the delay from the end of a sentence sent to
the start of its echo played (on the receiver's clock; drift = the last third's median less the first third's),
and the share of audio concealed (Chromium's concealedSamples) or packets lost (aiortc's inbound-rtp); a markdown
table, median of the seeds, for docs/benchmarks.md. `--uplink` scores what serve received instead (its
`--record-dir` recording, left lane). Needs pulseaudio, chromium, espeak-ng and the `pesq` package (test extra).

`echo`: the click round trip through a real browser. Headless Chromium (scripts/bench_echo.html) answers our offers
and sends the received track back on the offer's own transceiver (`pc.addTrack(remoteTrack)`: NetEq, then
Chromium's Opus encoder; no WebAudio), signalled by long poll from an aiohttp endpoint on 127.0.0.1. Our side sends
the click train (`burst_train`) on an OutboundTrack paced at real time and times each echo as it comes off the remote
track; round trip = the echo's onset played less the click's captured (as one-way latency below). Three receivers,
one call each, one after another, the set `--repeats` times (default 2, interleaved, so the machine's drift shows),
`--seconds` of clicks per call (default 20; a little over 2 minutes in all): voiceclient's `Peer` as the client makes it
(adaptive jitter buffer, inline codec), the same with the immediate jitter buffer (the "before"), and stock aiortc (a
plain RTCPeerConnection). Median and p90 per call, ratio to stock aiortc, a markdown table for docs/benchmarks.md;
each call's line also gives Chromium's NetEq delay/target from getStats(). Needs chromium.

`startup`: how long a process takes to start, `--runs` times each (median and p90): the interpreter alone,
`import voiceclient`, `voiceclient --version`, `voiceclient --help`, and `voiceclient call` to its `connected in`
line (printed once `session.updated` has come) against one `voiceclient serve --no-speech` (WebRTC, loopback).
`--before DIR` runs the same commands from another checkout (`git worktree add --detach DIR COMMIT`) in the same
run, interleaved with this one, for a before/after table.

One-way latency = when a sample would play at the receiver (its decoded frame's arrival plus its offset in the
frame) minus when it was captured at the sender (its frame handed to aiortc, less its offset from the frame end).
It covers the 20 ms of framing (a sample at the start of a frame waits for the frame to fill), Opus encode and
decode with its look-ahead, SRTP, UDP on loopback, the jitter buffer and the Python hops: about 23 ms with the
immediate jitter buffer, 28-29 ms with aiortc's stock one (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceclient import ClientSettings, SessionConfig, VoiceCall  # noqa: E402
from voiceclient.audio.sources import BufferSource  # noqa: E402
from voiceclient.client.options import Continuity, Recording  # noqa: E402
from voiceclient.client.transport import WebRTCTransport  # noqa: E402
from voiceclient.protocol import events as ev  # noqa: E402
from voiceclient.rtc import jitter  # noqa: E402
from voiceclient.server import RealtimeServer  # noqa: E402
from voiceclient.server.call import CallEdge  # noqa: E402

RATE = 48_000
BURST_EVERY = 0.25  # seconds between bursts
BURST = 0.06
THRESHOLD = 2000


def burst_train(seconds: float) -> tuple[np.ndarray, list[int]]:
    """1 kHz bursts with a hard onset every 250 ms; returns the PCM and the onset sample indices."""
    pcm = np.zeros(int(seconds * RATE), np.int16)
    onsets = []
    t = np.arange(int(BURST * RATE)) / RATE
    burst = (10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    burst[0] = 10000  # a sharp first sample
    for start in np.arange(0.5, seconds - 0.2, BURST_EVERY):
        i = int(start * RATE)
        pcm[i : i + burst.size] = burst
        onsets.append(i)
    return pcm, onsets


class Timeline:
    """Maps sample positions of a stream to wall-clock times, from per-frame (pts, time) records."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, float, np.ndarray]] = []

    def tap(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self.frames.append((pts, at, pcm.copy()))

    def onsets(self) -> list[tuple[float, int]]:
        """(time the onset sample is available, frame index) per detected burst onset, in arrival order."""
        out = []
        quiet_until = -1.0
        base = self.frames[0][0] if self.frames else 0
        for pts, at, pcm in self.frames:
            hits = np.nonzero(np.abs(pcm.astype(np.int32)) > THRESHOLD)[0]
            if hits.size:
                pos = (pts - base) + int(hits[0])
                if pos / RATE > quiet_until:
                    out.append((at, hits[0], pcm.size, pos))
                quiet_until = pos / RATE + BURST + 0.05
        return out


def one_way(sent: Timeline, received: Timeline) -> list[float]:
    """Latencies in ms, pairing the n-th sent onset with the n-th received one."""
    s, r = sent.onsets(), received.onsets()
    out = []
    for (s_at, s_off, s_size, _), (r_at, r_off, _, _) in zip(s, r):
        captured = s_at - (s_size - s_off) / RATE  # the sample was captured this long before the frame was full
        played = r_at + r_off / RATE  # and plays this long after its decoded frame arrives
        out.append((played - captured) * 1000)
    return out


def drop_one_packet(receiver, after_packets: int) -> None:
    """Lose one RTP packet on this receiver's path after `after_packets` (wraps whichever buffer is in place)."""
    attr = "_RTCRtpReceiver__jitter_buffer"
    buffer = getattr(receiver, attr)
    seen = {"n": 0}
    original = buffer.add

    def add(packet):
        seen["n"] += 1
        if seen["n"] == after_packets:
            return False, None
        return original(packet)

    buffer.add = add


def call_edge(server: RealtimeServer) -> CallEdge:
    """The WebRTC edge of the server's one call (its peer, reader, track and playout)."""
    edge = next(iter(server.calls.values())).edge
    assert isinstance(edge, CallEdge)
    return edge


def webrtc_settings(url: str, **kw: float) -> ClientSettings:
    """The benchmarks measure WebRTC itself (the default transport, auto, would too, behind one more layer)."""
    return ClientSettings(base_url=url, api_key="sk-bench", transport="webrtc", **kw)


def stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    v = sorted(values)
    p99 = v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]
    return f"median {statistics.median(v):6.1f} ms, p99 {p99:6.1f} ms (n={len(v)})"


async def bench_latency(seconds: float, stock: bool) -> dict[str, list[float]]:
    if stock:  # leave aiortc's JitterBuffer(capacity=16, prefetch=4) in place on both sides
        jitter.use_immediate_jitter_buffer = lambda receiver: None  # type: ignore[assignment]
        import voiceclient.rtc.peer  # the one peer wrapper of both sides

        voiceclient.rtc.peer.use_immediate_jitter_buffer = jitter.use_immediate_jitter_buffer  # type: ignore
    pcm, _ = burst_train(seconds)
    up_sent, up_recv, down_sent, down_recv = Timeline(), Timeline(), Timeline(), Timeline()
    session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    async with RealtimeServer(port=0) as server:
        settings = webrtc_settings(server.base_url)
        call = VoiceCall(settings, session, source=BufferSource(np.zeros(0, np.int16)))
        async with call:
            srv = call_edge(server)
            assert srv.reader is not None and isinstance(call.transport, WebRTCTransport)
            srv.reader.taps.append(up_recv.tap)
            srv.track.on_frame = down_sent.tap
            call.tap_audio(received=down_recv.tap, sent=up_sent.tap)
            half = int(seconds / 2 / 0.02)
            drop_one_packet(srv.pc.getTransceivers()[0].receiver, half)
            drop_one_packet(call.transport.peer.pc.getTransceivers()[0].receiver, half)
            await asyncio.sleep(0.3)
            call.set_source(BufferSource(pcm))
            srv.playout.put("bench", pcm)
            await asyncio.sleep(seconds + 0.5)
    up, down = one_way(up_sent, up_recv), one_way(down_sent, down_recv)
    split = len(up) // 2
    return {
        "client->server before loss": up[:split],
        "client->server after loss": up[split + 1 :],
        "server->client before loss": down[:split],
        "server->client after loss": down[split + 1 :],
    }


async def bench_connect(runs: int, answer: str = "real") -> tuple[list[float], list[float]]:
    """Process start -> session.updated (a fresh `python -c` each run), and in-process connect time, against a
    server answering in the real service's shape (ICE-lite) or aiortc's (`--answer aiortc`)."""
    script = (
        "import asyncio, sys, time\n"
        "from voiceclient import VoiceCall, ClientSettings\n"
        "async def main():\n"
        "    settings = ClientSettings(base_url=sys.argv[1], api_key='sk-bench', transport='webrtc')\n"
        "    async with VoiceCall(settings) as call:\n"
        "        print('READY', time.time(), call.connect_seconds, flush=True)\n"
        "asyncio.run(main())\n"
    )
    process, inproc = [], []
    async with RealtimeServer(port=0, answer_shape=answer) as server:  # type: ignore[arg-type]
        for _ in range(runs):
            start = time.time()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, server.base_url, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            _, ready, connect = out.decode().split()
            process.append((float(ready) - start) * 1000)
            inproc.append(float(connect) * 1000)
    return process, inproc


STARTUP_COMMANDS = {
    "interpreter (`python -c pass`)": ["-c", "pass"],
    "`import voiceclient`": ["-c", "import voiceclient"],
    "`voiceclient --version`": ["-m", "voiceclient", "--version"],
    "`voiceclient --help`": ["-m", "voiceclient", "--help"],
}


def startup_env(tree: Path) -> dict[str, str]:
    """The environment of a process that runs voiceclient from `tree` (a checkout: this one, or the "before")."""
    return {**os.environ, "PYTHONPATH": str(tree)}  # its .pyc files written by the warm-up run


def startup_once(tree: Path, argv: list[str], until: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of `python argv` run in `tree`: from spawning it to its exit, or to the first line of its
    output that contains `until` (then the process is left to finish). CPU (user + system) is the process's own,
    which a busy machine inflates less than the wall time."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tree,
        env=startup_env(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if until is None:
        _, err = proc.communicate(timeout=60)
        took = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} in {tree} exited {proc.returncode}: {err.strip()[-400:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in proc.stdout:
        if until in line:
            took = time.perf_counter() - started
            cpu = cpu_of(proc.pid)  # still running: it hangs up after --idle-exit
            break
    else:
        proc.wait(60)
        raise RuntimeError(f"{argv} in {tree} never said {until!r}: {proc.stderr.read().strip()[-400:]}")  # type: ignore[union-attr]
    proc.communicate(timeout=60)
    return took, cpu


def p90(values: list[float]) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]


async def bench_startup(runs: int, before: Path | None) -> None:
    """Process start -> done (or -> `session.updated` for `call`), `runs` times each, this tree and `before`
    interleaved, against one `voiceclient serve` of this tree (echo, no speech models)."""
    trees = {"after": ROOT} | ({"before": before} if before is not None else {})
    for name, tree in trees.items():  # each tree imports its own voiceclient, not the installed one
        where = subprocess.run(
            [sys.executable, "-c", "import voiceclient; print(voiceclient.__file__)"],
            cwd=tree,
            env=startup_env(tree),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(where).is_relative_to(tree), (name, where)
        # As pip installs it: bytecode compiled (PYTHONDONTWRITEBYTECODE=1 would otherwise compile every start)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "voiceclient")], check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        cwd=ROOT,
        env=startup_env(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its log of each call
        text=True,
    )
    work = Path(tempfile.mkdtemp(prefix="voiceclient-bench-startup-"))
    wav = work / "short.wav"
    import wave

    with wave.open(str(wav), "wb") as w:  # 0.2 s of silence: the call ends soon after it connects
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.zeros(RATE // 5, np.int16).tobytes())
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        call = ["-m", "voiceclient", "call", "--base-url", url, "--api-key", "sk-bench", "--transport", "webrtc"]
        call += ["--input", str(wav), "--idle-exit", "0.1", "--max-duration", "1"]
        commands: dict[str, tuple[list[str], str | None]] = {k: (v, None) for k, v in STARTUP_COMMANDS.items()}
        commands["`voiceclient call` -> `session.updated` (its `connected in` line)"] = (call, "connected in")
        results: dict[str, dict[str, list[float]]] = {label: {t: [] for t in trees} for label in commands}
        cpus: dict[str, dict[str, list[float]]] = {label: {t: [] for t in trees} for label in commands}
        for label, (argv, until) in commands.items():
            for tree in trees.values():  # one warm-up each: the page cache
                startup_once(tree, argv, until)
            for _ in range(runs):
                for name, tree in trees.items():
                    wall, cpu = startup_once(tree, argv, until)
                    results[label][name].append(wall * 1000)
                    cpus[label][name].append(cpu * 1000)
            print(
                f"  {label}: "
                + ", ".join(
                    f"{name} median {statistics.median(v):.0f} ms, p90 {p90(v):.0f} ms "
                    f"(CPU {statistics.median(cpus[label][name]):.0f} ms)"
                    for name, v in results[label].items()
                ),
                flush=True,
            )
    finally:
        stop(server)
    print("\n### Start-up\n")
    print(bench_header() + "\n")
    print(
        f"Process start to exit (to the `connected in` line for `call`, printed once `session.updated` is in), "
        f"{runs} runs each, the trees interleaved: wall median / p90 ms, and the process's CPU (median ms). "
        f"Load average at the end: {os.getloadavg()[0]:.1f}.\n"
    )
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for label, by_tree in results.items():
        cells = [
            f"{statistics.median(v):.0f} / {p90(v):.0f} (CPU {statistics.median(cpus[label][t]):.0f})"
            for t, v in by_tree.items()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> float | None:
    """SIGTERM, then SIGKILL if `process` has not stopped within `timeout` s: how long it took, or None if killed."""
    started = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_cpu(seconds: float) -> tuple[float, float]:
    """CPU % of one core for the client process and the server process during a call of `seconds`."""
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        pcm, _ = burst_train(seconds)
        session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        async with VoiceCall(webrtc_settings(url), session, source=BufferSource(pcm)) as call:
            c0, s0, w0 = time.process_time(), cpu_of(server.pid), time.monotonic()
            await asyncio.sleep(seconds)
            c1, s1, w1 = time.process_time(), cpu_of(server.pid), time.monotonic()
            del call
        return (c1 - c0) / (w1 - w0) * 100, (s1 - s0) / (w1 - w0) * 100
    finally:
        stop(server)


def spy_top(path: Path, n: int = 15) -> list[str]:
    """The top lines of a py-spy raw profile (`--format raw`: one collapsed stack and its count a line): the share of
    the busy samples (not waiting in epoll or on a lock) each function takes itself, and with what it calls."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or any(w in stack for w in ("epoll_wait", "Condition.wait", "Queue.get (queue.py")):
            continue
        c = int(count)
        busy += c
        frames = [
            re.sub(r" \((?:.*/)?(?:site-packages/|voiceclient/)?([^()]*?):\d+\)$", r" (\1)", f)
            for f in stack.split(";")
        ]
        own[frames[-1]] = own.get(frames[-1], 0) + c
        for f in set(frames):
            under[f] = under.get(f, 0) + c
    lines = [f"{busy} busy samples; itself:"]
    lines += [f"  {100 * c / busy:5.1f} %  {f}" for f, c in sorted(own.items(), key=lambda x: -x[1])[:n]]
    lines.append("with what it calls (below the event loop):")
    deep = [(f, c) for f, c in under.items() if c < 0.9 * busy]
    lines += [f"  {100 * c / busy:5.1f} %  {f}" for f, c in sorted(deep, key=lambda x: -x[1])[:n]]
    return lines


async def bench_rtp_path(packets: int = 3000, repeats: int = 5) -> None:
    """Microseconds per audio RTP packet through aiortc's own path and `voiceclient.rtc.direct`'s, over real SRTP
    packets (speech coded by our encoder, written by `RtpWriter`), min of `repeats`. Received: from aioice's
    datagram callback to the jitter buffer's push (a list append here, both ways), one loop turn a packet as a
    socket gives; the turn alone is measured and taken off. Sent: from the packet's bytes to `sendto` on a real
    UDP socket on loopback; `sendto` alone is measured too."""
    import socket

    import pylibsrtp
    from aioice.candidate import Candidate
    from aioice.ice import CandidatePair, StunProtocol
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
    from aiortc.rtcdtlstransport import State
    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpReceiveParameters,
    )

    from voiceclient.audio.sources import WavSource
    from voiceclient.rtc.direct import DirectSend, use_direct_receive
    from voiceclient.rtc.inline import MonoOpusEncoder, RtpWriter, ntp_now
    from voiceclient.rtc.jitter import use_adaptive_jitter_buffer

    opus_codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    uris = [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ]
    extensions = [RTCRtpHeaderExtensionParameters(id=i + 1, uri=u) for i, u in enumerate(uris)]
    key = bytes(range(30))
    pcm = np.resize(WavSource(Path(__file__).resolve().parent.parent / "fixtures" / "hello.wav").pcm, 960 * 500)
    encoder = MonoOpusEncoder()
    payloads = []
    for i in range(500):
        frame = mono_frame_of(pcm[i * 960 : (i + 1) * 960], i * 960)
        payloads.append(encoder.encode(frame)[0][0])
    writer = RtpWriter(111, 0x1234ABCD, "0", 1, 2, 3)
    plain = [
        writer.packet(i & 0xFFFF, i * 960 & 0xFFFFFFFF, False, payloads[i % 500], ntp_now(), -30)
        for i in range(packets * repeats)
    ]
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    protected = [tx.protect(p) for p in plain]
    loop = asyncio.get_running_loop()

    def transport() -> RTCDtlsTransport:
        dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
        dtls._state = State.CONNECTED
        dtls._RTCDtlsTransport__handshake_done = True  # type: ignore[attr-defined]
        return dtls

    async def receive(batch: list[bytes], direct: bool) -> float:
        dtls = transport()
        dtls._rx_srtp = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        receiver = RTCRtpReceiver("audio", dtls)
        receiver._RTCRtpReceiver__codecs[111] = opus_codec  # type: ignore[attr-defined]
        dtls._register_rtp_receiver(receiver, RTCRtpReceiveParameters(codecs=[opus_codec], headerExtensions=extensions))
        buffer = use_adaptive_jitter_buffer(receiver)
        pushed: list[int] = []
        buffer.push = lambda seq, ts, payload, now=None: pushed.append(seq)  # type: ignore[method-assign]
        connection = dtls.transport._connection
        connection._nominated[1] = None  # `recv` asks only that a pair is nominated
        task = None
        if direct:
            use_direct_receive(dtls)
        else:

            async def run() -> None:
                while True:
                    await dtls._recv_next()

            task = asyncio.create_task(run())
            await asyncio.sleep(0)
        deliver = connection.data_received
        start = time.perf_counter()
        for data in batch:
            deliver(data, 1)
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - start
        if task is not None:
            task.cancel()
        buffer.close()
        if len(pushed) != len(batch):
            raise RuntimeError(f"{len(pushed)} of {len(batch)} packets reached the buffer")
        return elapsed / len(batch) * 1e6

    async def turns(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await asyncio.sleep(0)
        return (time.perf_counter() - start) / n * 1e6

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    host, port = sink.getsockname()

    async def send(batch: list[bytes], way: str) -> float:
        dtls = transport()
        dtls._tx_srtp = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        connection = dtls.transport._connection
        udp, protocol = await loop.create_datagram_endpoint(
            lambda: StunProtocol(connection), local_addr=("127.0.0.1", 0)
        )
        remote = Candidate("1", 1, "udp", 1, host, port, "host")
        connection._nominated[1] = CandidatePair(protocol, remote)
        direct = DirectSend(dtls)
        start = time.perf_counter()
        if way == "aiortc":
            for data in batch:
                await dtls._send_rtp(data)
        elif way == "direct":
            for data in batch:
                if not direct(data):
                    raise RuntimeError("DirectSend declined")
        else:
            for data in batch:
                udp.sendto(data, (host, port))
        elapsed = time.perf_counter() - start
        udp.close()
        return elapsed / len(batch) * 1e6

    figures: dict[str, list[float]] = {
        k: [] for k in ("rx aiortc", "rx direct", "turn", "tx aiortc", "tx direct", "sendto")
    }
    for r in range(repeats):
        batch = protected[r * packets : (r + 1) * packets]
        figures["rx aiortc"].append(await receive(batch, False))
        figures["rx direct"].append(await receive(batch, True))
        figures["turn"].append(await turns(packets))
        figures["tx aiortc"].append(await send(plain[:packets], "aiortc"))
        figures["tx direct"].append(await send(plain[:packets], "direct"))
        figures["sendto"].append(await send(protected[:packets], "sendto"))
    sink.close()
    best = {k: min(v) for k, v in figures.items()}
    print(f"one audio RTP packet, us (min of {repeats} x {packets}):")
    print(
        f"  received, datagram to jitter buffer: aiortc {best['rx aiortc'] - best['turn']:.1f}, "
        f"direct {best['rx direct'] - best['turn']:.1f} (a loop turn of {best['turn']:.1f} taken off each)"
    )
    print(
        f"  sent, bytes to the socket: aiortc {best['tx aiortc']:.1f}, direct {best['tx direct']:.1f} "
        f"(sendto alone {best['sendto']:.1f})"
    )


def mono_frame_of(pcm: np.ndarray, pts: int) -> Any:
    from voiceclient.audio.tracks import mono_frame

    return mono_frame(pcm, pts, 48000)


async def bench_call_cpu(
    seconds: float, spy: Path | None, tree: Path = ROOT, transport: str = "webrtc"
) -> tuple[float, float]:
    """CPU % of one core of a `voiceclient call` process and of `voiceclient serve --no-speech --vad energy`, each
    its own process, over a call of `seconds` of spoken sentences (the fixtures, 1.5 s apart) echoed back: counted
    from 6 s in (after start-up and connect) to 4 s before the input ends. `spy`: py-spy records both meanwhile
    (`--native -r 200`) into that folder, and the top lines are printed."""
    import wave

    from voiceclient.audio.sources import load_audio

    work = Path(tempfile.mkdtemp())
    parts: list[np.ndarray] = []
    while sum(p.size for p in parts) < seconds * RATE:
        sentence = ROOT / "fixtures" / "speech" / f"sentence_{len(parts) // 2 % 7 + 1}.wav"
        parts += [load_audio(sentence, RATE), np.zeros(RATE * 3 // 2, np.int16)]
    with wave.open(str(work / "in.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.concatenate(parts)[: int(seconds * RATE)].tobytes())
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,
        env=startup_env(tree),
    )
    client: subprocess.Popen[Any] | None = None
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voiceclient",
                "call",
                "--input",
                str(work / "in.wav"),
                "--base-url",
                url,
                "--api-key",
                "sk-bench",
                "--transport",
                transport,
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            cwd=tree,
            env=startup_env(tree),
        )
        await asyncio.sleep(6)
        span = seconds - 10
        spies = []
        if spy is not None:
            spy.mkdir(parents=True, exist_ok=True)
            spies = [
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--native",
                        "-r",
                        "200",
                        "-d",
                        str(int(span)),
                        "-p",
                        str(pid),
                        "-o",
                        str(spy / f"{name}.txt"),
                        "--format",
                        "raw",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for pid, name in ((client.pid, "client"), (server.pid, "serve"))
            ]
        c0, s0, w0 = cpu_of(client.pid), cpu_of(server.pid), time.monotonic()
        await asyncio.sleep(span)
        c1, s1, w1 = cpu_of(client.pid), cpu_of(server.pid), time.monotonic()
        for process in spies:
            process.wait()
        if spy is not None:
            for name in ("client", "serve"):
                print(f"py-spy, {name}: " + "\n".join(spy_top(spy / f"{name}.txt")))
        client.wait(30)
        return (c1 - c0) / (w1 - w0) * 100, (s1 - s0) / (w1 - w0) * 100
    finally:
        if client is not None and client.poll() is None:
            stop(client)
        stop(server)


async def bench_call_cpus(seconds: float, runs: int, spy: Path | None, before: Path | None, transports: str) -> None:
    """`bench_call_cpu` `runs` times for each transport and tree (this one, and `before` when given), interleaved
    so that the machine's load falls on every column alike; the medians as a table."""
    trees = {"after": ROOT} | ({"before": before} if before is not None else {})
    kinds = [t.strip() for t in transports.split(",") if t.strip()]
    got: dict[tuple[str, str], list[tuple[float, float]]] = {(t, n): [] for t in kinds for n in trees}
    for run in range(runs):
        for transport in kinds:
            for name, tree in trees.items():
                where = spy / f"{name}-{transport}-{run}" if spy is not None and name == "after" else None
                client, server = await bench_call_cpu(seconds, where, tree, transport)
                got[transport, name].append((client, server))
                print(f"  {transport:9} {name:6} run {run + 1}: client {client:.2f} %, serve {server:.2f} %")
    load = os.getloadavg()[0]
    print(
        f"\n### CPU of one call\n\n{runs} runs of a {seconds:g} s spoken call each, the columns interleaved; median % "
        f"of one core, counted from 6 s in to 4 s before the end. Load average at the end: {load:.1f}.\n"
    )
    print("| transport | side | " + " | ".join(trees) + " |")
    print("|---|---|" + "---|" * len(trees))
    for transport in kinds:
        for side, i in (("`voiceclient call`", 0), ("`serve`", 1)):
            cells = [f"{statistics.median(r[i] for r in got[transport, n]):.2f}" for n in trees]
            print(f"| {transport} | {side} | " + " | ".join(cells) + " |")


def rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Spoken questions for the agent benchmark, of different lengths, said by espeak-ng at run time (a voice the tests
# do not use), beside the flite sentences of fixtures/speech/ that the tests use. Answered by the rules in
# voiceclient/assets/agent_demo.toml: the weather question with a tool round trip, the rest by a spoken answer.
AGENT_QUESTIONS = [
    "Hello there.",
    "Can you hear me?",
    "What is the weather in Paris?",
    "I would like to know how long the drive to the coast takes on a Sunday morning.",
    "Please tell me a short story about a cat who lived in a lighthouse by the sea.",
    "Is it going to rain?",
    "Good morning, how are you today?",
    "Set a timer for ten minutes.",
    "Which is bigger, the moon or the earth?",
    "Thank you, goodbye.",
]
# Sentences said in two halves with a pause between (the comma pause of issue 12): the turn must not end there.
PAUSED = [
    ("My favorite colors are green,", "blue and orange."),
    ("Turn off the lights in the kitchen,", "and lock the front door."),
    ("Remind me to call my sister,", "tomorrow morning."),
]


def espeak(text: str, out: Path) -> np.ndarray:
    from voiceclient.audio.sources import load_audio

    subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "160", "-w", str(out), text], check=True, timeout=30)
    pcm = load_audio(out, RATE)
    loud = np.flatnonzero(np.abs(pcm) > 300)
    return pcm[loud[0] : loud[-1] + 1] if loud.size else pcm  # the speech itself, no silence either side


def voiced_edges(pcm: np.ndarray, rate: int, dbfs: float = -40.0, window_ms: int = 5) -> np.ndarray:
    """Per `window_ms` window: is it voiced (RMS above `dbfs`)."""
    n = rate * window_ms // 1000
    frames = pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n)
    return 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) / 32768 + 1e-12) > dbfs


async def agent_turns(
    url: str, questions: list[tuple[str, np.ndarray]], silence_ms: int, vad: str, record: Path
) -> tuple[list[tuple[str, float, bool, str]], list[int]]:
    """Say each question (48 kHz) in one call, wait for its answer to finish playing; from the call's own
    recording, per question: (text, end of the user's last voiced sample -> first assistant sample, a tool turn,
    where the time went), and the number of user turns the server committed per question."""
    from voiceclient.app.demo import get_weather

    td = (
        {"type": "server_vad", "silence_duration_ms": silence_ms}
        if vad == "server_vad"
        else {"type": "semantic_vad", "eagerness": "high"}
    )
    session = SessionConfig.model_validate(
        {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}, "turn_detection": td}}}
    )
    committed: list[int] = []
    tool_turns: list[bool] = []
    async with VoiceCall(
        webrtc_settings(url),
        session,
        tools=[get_weather],
        source=BufferSource(np.zeros(RATE // 2, np.int16)),
        recording=Recording(record_wav=record, events_jsonl=record.with_suffix(".jsonl")),
    ) as call:
        stream = call.events()
        await asyncio.sleep(0.5)
        for _, pcm in questions:
            tools_before, turns = call.tool_calls, 0
            call.set_source(BufferSource(np.concatenate([pcm, np.zeros(RATE * 3 // 2, np.int16)])))
            while True:  # the answer (after the tool round trip, if any) has played out
                event = await asyncio.wait_for(stream.__anext__(), 30)
                turns += event.type == "input_audio_buffer.committed"
                if event.type == "output_audio_buffer.stopped" and not call.turns.busy:
                    break
            committed.append(turns)
            tool_turns.append(call.tool_calls > tools_before)
            await asyncio.sleep(0.3)
    import wave

    with wave.open(str(record)) as w:
        rec = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    rate, window = 24_000, 5
    sent, heard = voiced_edges(rec[:, 0], rate), voiced_edges(rec[:, 1], rate)
    # The user's utterances in the recording: voiced stretches of the sent lane, joined across gaps under 0.8 s
    # (a comma pause is one utterance); one per question.
    spans: list[list[int]] = []
    for w in np.flatnonzero(sent):
        if spans and w - spans[-1][1] <= 800 // window:
            spans[-1][1] = int(w)
        else:
            spans.append([int(w), int(w)])
    assert len(spans) == len(questions), f"{len(spans)} utterances in the recording for {len(questions)} questions"
    log = [json.loads(line) for line in record.with_suffix(".jsonl").read_text().splitlines()]
    results = []
    for i, (text, _) in enumerate(questions):
        end = spans[i][1] + 1  # the window after the user's last voiced one
        hi = spans[i + 1][0] if i + 1 < len(spans) else heard.size
        answer = np.flatnonzero(heard[end:hi])
        # Where the time went, from the event log (client receive times): after the user's last voiced sample.
        t_end, t_next = end * window / 1000, hi * window / 1000
        marks = {}
        for line in log:
            kind = line["event"]["type"]
            if line["dir"] == "server" and t_end - 0.5 < line["t"] < t_next and kind in STEPS and kind not in marks:
                marks[kind] = (line["t"] - t_end) * 1000
        steps = " ".join(f"{STEPS[k]} {marks[k]:.0f}" for k in STEPS if k in marks)
        results.append((text, float(answer[0] * window) if answer.size else float("nan"), tool_turns[i], steps))
    return results, committed


STEPS = {
    "input_audio_buffer.speech_stopped": "stopped",
    "conversation.item.input_audio_transcription.completed": "heard",
    "response.created": "response",
    "output_audio_buffer.started": "playing",
}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


async def bench_agent(silence_ms: int, rounds: int = 1) -> None:
    """The offline agent in a `voiceclient serve` process: end of the user's speech to the first assistant audio,
    over spoken questions of different lengths (from the call's recording); turns ended inside a paused sentence;
    load time, RSS, CPU."""
    from voiceclient.audio.sources import load_audio
    from voiceclient.speech.backends import SpeechBackends

    t0 = time.monotonic()
    probe = SpeechBackends()
    await probe.ready()
    print(
        f"agent models ({probe.describe()}): loaded in {probe.load_seconds:.2f} s in-process "
        f"({time.monotonic() - t0:.2f} s with imports)"
    )
    del probe
    work = Path(tempfile.mkdtemp(prefix="voiceclient-bench-agent-"))
    said = [(text, espeak(text, work / f"q{i}.wav")) for i, text in enumerate(AGENT_QUESTIONS)]
    flite = (ROOT / "fixtures" / "speech" / "sentences.txt").read_text().splitlines()
    said += [
        (text, load_audio(ROOT / "fixtures" / "speech" / f"sentence_{i + 1}.wav", RATE)) for i, text in enumerate(flite)
    ]
    rules = ROOT / "voiceclient" / "assets" / "agent_demo.toml"
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--scenario", str(rules)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        while "offline speech" not in (line := server.stdout.readline()):
            pass
        print(f"server: {line.strip()}; RSS {rss_of(server.pid):.0f} MB after loading")
        spoken: list[float] = []
        tools: list[float] = []
        c0, w0 = cpu_of(server.pid), time.monotonic()
        for r in range(rounds):
            results, _ = await agent_turns(url, said, silence_ms, "server_vad", work / f"rec{r}.wav")
            for text, ms, tool, steps in results:
                (tools if tool else spoken).append(ms)
                print(f"  {ms:6.0f} ms  {'(tool) ' if tool else ''}{text:60.60s} [{steps}]")
        talking = (cpu_of(server.pid) - c0) / (time.monotonic() - w0) * 100
        print(
            f"end of user speech -> first assistant audio, silence_duration_ms {silence_ms}, "
            f"{len(spoken)} spoken answers: median {statistics.median(spoken):.0f} ms, "
            f"p90 {percentile(spoken, 90):.0f} ms, worst {max(spoken):.0f} ms"
        )
        if tools:
            print(f"  with a tool round trip ({len(tools)}): median {statistics.median(tools):.0f} ms")
        for vad in ("server_vad", "semantic_vad"):
            for pause_ms in (150, 200, 250):
                halves = [
                    (
                        f"{a} {b}",
                        np.concatenate(
                            [
                                espeak(a, work / "a.wav"),
                                np.zeros(RATE * pause_ms // 1000, np.int16),
                                espeak(b, work / "b.wav"),
                            ]
                        ),
                    )
                    for a, b in PAUSED
                ]
                _, committed = await agent_turns(url, halves, silence_ms, vad, work / "paused.wav")
                false_ends = sum(n - 1 for n in committed)
                print(
                    f"sentences with a {pause_ms} ms pause, {vad}"
                    f"{f' {silence_ms} ms' if vad == 'server_vad' else ' (eagerness high)'}: "
                    f"{false_ends} false ends of turn in {len(committed)} sentences"
                )
        print(f"server CPU while talking {talking:.1f} % of one core; RSS {rss_of(server.pid):.0f} MB after")
    finally:
        stop(server)


def bench_aec() -> tuple[float, float, float]:
    """Echo reduction on a synthetic laptop echo: far-end speech through a decaying room response (250 ms, 50 ms
    decay, 10 ms delay), converged over 6 s, then double talk with a near-end talker. Returns (ERLE dB in far-end
    only speech, near-end correlation in double talk at the best lag, CPU ms per 10 ms)."""
    from voiceclient.audio.aec import EchoCanceller
    from voiceclient.audio.sources import load_audio

    far = load_audio(ROOT / "voiceclient" / "assets" / "demo_answer.wav", RATE)
    near = load_audio(ROOT / "fixtures" / "hello.wav", RATE)
    rng = np.random.default_rng(3)
    t = np.arange(int(0.25 * RATE)) / RATE
    room = rng.normal(0, 1, t.size) * np.exp(-t / 0.05)
    room[:480] = 0
    room *= 0.5 / np.sqrt(np.sum(room**2))
    far3 = np.concatenate([far, far, far])
    echo = np.convolve(far3.astype(np.float64), room)[: far3.size]
    mic = echo.copy()
    talk_at = 2 * far.size
    mic[talk_at : talk_at + near.size] += near
    mic = np.clip(mic, -32768, 32767).astype(np.int16)
    aec = EchoCanceller(delay_ms=10)
    out = np.zeros_like(mic)
    start = time.process_time()
    for i in range(0, mic.size - 960, 960):
        aec.reference(far3[i : i + 960])
        out[i : i + 960] = aec.process(mic[i : i + 960])
    cpu = (time.process_time() - start) / (mic.size / 480) * 1000
    far_only = slice(far.size, 2 * far.size)
    erle = 10 * np.log10(np.mean(echo[far_only] ** 2) / max(1e-9, float(np.mean(out[far_only].astype(float) ** 2))))
    span = near.size - 2000
    corr = max(
        float(np.corrcoef(out[talk_at + lag : talk_at + lag + span].astype(float), near[:span].astype(float))[0, 1])
        for lag in range(0, 1200, 48)
    )
    return erle, corr, cpu


async def bench_talk(seconds: float) -> None:
    """`talk` through PulseAudio's virtual devices against an echo server in this process."""
    from voiceclient.app.talk import Talk
    from voiceclient.audio.format import tone
    from voiceclient.testing import virtual_audio_devices

    with virtual_audio_devices() as env, tempfile.TemporaryDirectory() as tmp:
        burst = Path(tmp) / "burst.wav"
        import wave

        with wave.open(str(burst), "wb") as w:
            pcm = np.concatenate([np.zeros(2400, np.int16), tone(1000, 0.3, 24000, -6), np.zeros(12000, np.int16)])
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(24000)
            w.writeframes(pcm.astype("<i2").tobytes())
        async with RealtimeServer(port=0) as server:
            queue: asyncio.Queue[str] = asyncio.Queue()
            talk = Talk(
                webrtc_settings(server.base_url),
                SessionConfig(),
                aec="off",
                commands=queue,
                stream=open(os.devnull, "w"),
            )
            mic_in, speaker_out, srv_in, srv_out = Timeline(), Timeline(), Timeline(), Timeline()
            task = asyncio.ensure_future(talk.run(max_duration=seconds + 30))
            while talk.call is None or talk.call.state.value != "connected":
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            srv = call_edge(server)
            assert srv.reader is not None
            srv.reader.taps.append(srv_in.tap)
            srv.track.on_frame = srv_out.tap
            blocks = {"n": 0}

            def on_mic(block: np.ndarray) -> np.ndarray:
                mic_in.tap(block, blocks["n"] * 960, time.monotonic())
                blocks["n"] += 1
                return block

            played = {"n": 0}

            def on_speaker(block: np.ndarray) -> None:
                speaker_out.tap(block, played["n"] * 480, time.monotonic())
                played["n"] += 1

            talk.mic.process = on_mic
            talk.speaker.reference = on_speaker
            for _ in range(int(seconds / 2)):
                subprocess.Popen(["paplay", "--device=vmicsink", str(burst)], env=env)
                await asyncio.sleep(2.0)
            # Barge-in: a long reply, interrupted by the user; time from speech_started to the first silent block.
            talk.mic.process = None
            talk.speaker.reference = None
            stream = talk.call.events()
            talk.call.send_text("x" * 80)  # the echo responder answers with a ~4.8 s tone
            await stream.next_of("output_audio_buffer.started", timeout=5)
            await asyncio.sleep(1.0)
            marks: dict[str, float] = {}
            talk.speaker.reference = lambda b: (
                marks.setdefault("silent", time.monotonic()) if "barge" in marks and not b.any() else None
            )
            subprocess.Popen(["paplay", "--device=vmicsink", str(burst)], env=env)
            await stream.next_of("input_audio_buffer.speech_started", timeout=5)
            marks["barge"] = time.monotonic()
            await asyncio.sleep(1.0)
            queue.put_nowait("/q")
            await task
        devices_only, with_call = await talk_cpu(seconds, env)
    m2e = [o - i for i, o in zip(one_way_onsets(mic_in), one_way_onsets(speaker_out))]
    echo_delay = [o - i for i, o in zip(one_way_onsets(srv_in), one_way_onsets(srv_out))]
    app = [(a - b) * 1000 for a, b in zip(m2e, echo_delay)]
    device = (talk.speaker.latency_s + talk.mic.latency_s) * 1000
    print(
        f"talk, mouth-to-ear in the app (mic callback -> speaker callback, less the echo server's own delay): "
        f"{stats(app)}; plus the streams' reported input and output latency {device:.0f} ms"
    )
    print(f"talk, the echo server's own delay (turn end + VAD silence): {stats([x * 1000 for x in echo_delay])}")
    if "silent" in marks:
        print(
            f"talk, barge-in: speech_started at the client -> first silent speaker block "
            f"{(marks['silent'] - marks['barge']) * 1000:.1f} ms (+ {talk.speaker.latency_s * 1000:.0f} ms output "
            "latency)"
        )
    print(
        f"talk, CPU of the talk process: {with_call:.1f} % of one core in a call (echo server in another "
        f"process); the open microphone and speaker streams alone: {devices_only:.1f} %; the client's own work: "
        f"{with_call - devices_only:.1f} %"
    )


async def bench_switches(rounds: int) -> None:
    """`talk` on PulseAudio's virtual devices while the sound system changes under it, each kind `rounds` times:
    the speaker moved with `/d`, new default devices with the old ones unloaded, the sound server restarted. A
    tone plays both ways all along (into the virtual microphone; from the server's playout to the speaker); the gap
    is the longest run without it, in the blocks the microphone delivered and in those handed to the speaker.
    A virtual speaker (a null sink) renders in 2 s blocks while nothing keeps it busy, so a stream opened on an
    idle one waits up to 2 s for its first block, whoever opens it (measured: 1.86-1.95 s for a plain stream):
    `pacat` keeps each speaker busy here, so that the gap measured is the client's. After a restart every sink is
    new and idle: that row has the 2 s in it."""
    from voiceclient.app.talk import Talk
    from voiceclient.audio.devices import list_devices
    from voiceclient.audio.format import rms_dbfs, tone
    from voiceclient.testing.devices import restart_sound_server, virtual_audio_devices

    def pactl(env: dict[str, str], *args: str) -> None:
        subprocess.run(["pactl", *args], env=env, check=True, capture_output=True)

    gaps: dict[str, list[tuple[float, float]]] = {
        "/d: the speaker moved": [],
        "new default devices": [],
        "the sound server restarted": [],
    }
    with virtual_audio_devices() as env, tempfile.TemporaryDirectory() as tmp:
        long_tone = Path(tmp) / "tone.wav"
        import wave

        with wave.open(str(long_tone), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(24000)
            w.writeframes(tone(500, 600.0, 24000, -12).astype("<i2").tobytes())
        session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        async with RealtimeServer(port=0) as server:
            talk = Talk(
                webrtc_settings(server.base_url),
                session,
                aec="off",
                commands=asyncio.Queue(),
                stream=open(os.devnull, "w"),
            )
            task = asyncio.ensure_future(talk.run(max_duration=3600))
            while talk.call is None or talk.call.state.value != "connected":
                await asyncio.sleep(0.05)
            call_edge(server).playout.put("bench", tone(500, 600.0, RATE, -12))
            heard: list[tuple[float, bool]] = []  # (time, loud) of each block the microphone delivered
            played: list[tuple[float, bool]] = []  # and of each handed to the speaker

            def on_mic(block: np.ndarray) -> np.ndarray:
                heard.append((time.monotonic(), rms_dbfs(block) > -40))
                return block

            talk.mic.process = on_mic
            talk.speaker.reference = lambda block: played.append((time.monotonic(), bool(np.abs(block).max() > 300)))
            player = subprocess.Popen(["paplay", "--device=vmicsink", str(long_tone)], env=env)

            def keep_busy(sink: str) -> subprocess.Popen[bytes]:
                zeros = open("/dev/zero", "rb")  # silence, for ever
                return subprocess.Popen(["pacat", f"--device={sink}", "--latency-msec=10"], stdin=zeros, env=env)

            keepers = [keep_busy("vspk")]
            await asyncio.sleep(3.0)

            def gap(blocks: list[tuple[float, bool]], since: float) -> float:
                """ms of the longest stretch without the tone after `since` (from the last loud block to the next)."""
                loud = [t for t, is_loud in blocks if is_loud and t >= since - 1.0]
                return max((b - a for a, b in itertools.pairwise(loud)), default=float("nan")) * 1000

            async def settle(since: float) -> None:
                await asyncio.sleep(5.0)
                gaps[kind].append((gap(heard, since), gap(played, since)))

            for _ in range(rounds):
                kind = "/d: the speaker moved"
                other = next(d for d in list_devices() if d.outputs and d.index != talk.speaker.device.index)
                at = time.monotonic()
                await talk.devices(["out", str(other.index)])
                await settle(at)
            for _ in range(rounds):
                kind = "new default devices"
                at = time.monotonic()
                pactl(env, "load-module", "module-null-sink", "sink_name=hspk", "rate=48000", "channels=2")
                pactl(env, "load-module", "module-null-sink", "sink_name=hmicsink", "rate=48000", "channels=1")
                pactl(env, "load-module", "module-remap-source", "source_name=hmic", "master=hmicsink.monitor")
                keepers.append(keep_busy("hspk"))
                player.kill()
                player = subprocess.Popen(["paplay", "--device=hmicsink", str(long_tone)], env=env)
                await asyncio.sleep(2.5)  # (the new virtual microphone's own first block, before the switch)
                at = time.monotonic()
                pactl(env, "set-default-sink", "hspk")
                pactl(env, "set-default-source", "hmic")
                modules = subprocess.run(
                    ["pactl", "list", "short", "modules"], env=env, capture_output=True, text=True
                ).stdout.splitlines()
                for line in reversed([m for m in modules if "vspk" in m or "vmic" in m]):
                    pactl(env, "unload-module", line.split("\t")[0])
                await settle(at)
                await asyncio.to_thread(restart_sound_server, env)  # back to vspk and vmic for the next round
                player.kill()
                player = subprocess.Popen(["paplay", "--device=vmicsink", str(long_tone)], env=env)
                keepers = [keep_busy("vspk")]
                await asyncio.sleep(4.0)
            for _ in range(rounds):
                kind = "the sound server restarted"
                at = time.monotonic()
                await asyncio.to_thread(restart_sound_server, env)
                player.kill()
                player = subprocess.Popen(["paplay", "--device=vmicsink", str(long_tone)], env=env)
                keepers = [keep_busy("vspk")]
                await settle(at)
            player.kill()
            for keeper in keepers:
                keeper.kill()
            talk.commands.put_nowait("/q")  # type: ignore[union-attr]
            await asyncio.wait_for(task, 15)
    print(
        f"talk, the gap in the audio at each kind of switch, {rounds} times each (ms; microphone: the blocks it "
        "delivered; speaker: those handed to the device); recoveries by the sound guard: "
        f"{talk.guard.recoveries}"
    )
    for kind, values in gaps.items():
        mic = ", ".join(f"{m:.0f}" for m, _ in values)
        spk = ", ".join(f"{s:.0f}" for _, s in values)
        print(f"  {kind}: microphone {mic}; speaker {spk}")


async def talk_cpu(seconds: float, env: dict[str, str]) -> tuple[float, float]:
    from voiceclient.app.talk import Talk
    from voiceclient.audio.mic import MicSource
    from voiceclient.audio.speaker import SpeakerSink

    mic, speaker = MicSource(), SpeakerSink()
    speaker.start()
    mic.start()
    for _ in range(100):
        await mic.next_block()
    cpu0, wall0 = time.process_time(), time.monotonic()
    end = wall0 + seconds
    while time.monotonic() < end:
        speaker(await mic.next_block())  # loop the microphone to the speaker: the devices' own cost
    devices_only = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
    mic.close()
    speaker.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        queue: asyncio.Queue[str] = asyncio.Queue()
        talk = Talk(webrtc_settings(url), SessionConfig(), aec="off", commands=queue, stream=open(os.devnull, "w"))
        task = asyncio.ensure_future(talk.run(max_duration=seconds + 30))
        while talk.call is None or talk.call.state.value != "connected":
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        cpu0, wall0 = time.process_time(), time.monotonic()
        talk.call.send_text("y" * 200)  # the assistant talks for most of the measurement
        await asyncio.sleep(seconds)
        with_call = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
        queue.put_nowait("/q")
        await task
    finally:
        stop(server)
    return devices_only, with_call


async def recovery_once(media_timeout: float, at: float = 3.0) -> tuple[float, float, float, int]:
    """One run: (detected after the fault, conversation back after that, audio again after that, items)."""
    from voiceclient.server.faults import FaultPlan, FaultSpec

    marks: dict[str, float] = {}
    heard: list[float] = []

    def status(text: str) -> None:
        marks.setdefault(text.split(" ")[0].rstrip(","), time.time())

    def tap(pcm: np.ndarray, pts: int, when: float) -> None:
        if "asked" in marks and not heard and np.abs(pcm).max() > 2000:
            heard.append(time.time())

    faults = FaultPlan([FaultSpec(action="stop_media", call=1, at_seconds=at)])
    async with RealtimeServer(port=0, faults=faults) as server:
        call = VoiceCall(
            webrtc_settings(server.base_url),
            on_status=status,
            continuity=Continuity(reconnect=5, media_timeout=media_timeout),
        )
        async with call:
            call.tap_audio(received=tap)
            call.send_text("remember the number 42")
            await call.wait_for(lambda e: e.type == "response.done", 10)
            fault_at = server.history[0].created_at + at
            while call.switches == 0:
                await asyncio.sleep(0.005)
            marks["asked"] = time.time()
            call.send_text("which number?")
            while not heard:
                await asyncio.sleep(0.005)
            replayed = call.replayed
    return (
        marks["connection"] - fault_at,
        marks["reconnected"] - marks["connection"],
        heard[0] - marks["reconnected"],
        replayed,
    )


async def bench_recovery(runs: int, media_timeout: float) -> None:
    """Media stopped at the server -> loss detected -> new call with the history -> assistant audio heard again."""
    rows = [await recovery_once(media_timeout) for _ in range(runs)]
    for detect, back, audio, replayed in rows:
        print(
            f"recovery: detected {detect * 1000:5.0f} ms after the media stopped, conversation back "
            f"{back * 1000:4.0f} ms later ({replayed} items), audio again {audio * 1000:4.0f} ms after that"
        )
    print(
        f"recovery, median of {runs}: detected {statistics.median(r[0] for r in rows) * 1000:.0f} ms, back "
        f"{statistics.median(r[1] for r in rows) * 1000:.0f} ms later, audio again "
        f"{statistics.median(r[2] for r in rows) * 1000:.0f} ms after that (media timeout {media_timeout:g} s)"
    )


def loud_onsets(pcm: np.ndarray, rate: int, dbfs: float = -30.0) -> list[float]:
    """Seconds at which each loud stretch of `pcm` starts (10 ms frames)."""
    n = rate // 100
    frames = pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n)
    loud = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) / 32768 + 1e-12) > dbfs
    return [i / 100 for i in range(len(loud)) if loud[i] and (i == 0 or not loud[i - 1])]


async def bench_soak(
    minutes: float, recycle_after: float | None, turn_every: float, max_call_seconds: float | None
) -> None:
    """A long call with a turn every `turn_every` s, recycled every `recycle_after` s or, with `max_call_seconds`,
    by the server's session cap (the client recycles a minute before the `expires_at` it was given). Bounded
    bookkeeping only (a few numbers per turn and switch), so the RSS figure is the call's own."""
    import collections
    import wave

    from voiceclient.audio.format import tone

    turns = int(minutes * 60 / turn_every)
    burst = tone(440, 0.6, 48000, -12.0)
    pcm = np.concatenate(
        [np.concatenate([burst, np.zeros(int(48000 * turn_every) - burst.size, np.int16)]) for _ in range(turns)]
    )
    gaps: list[tuple[float, float]] = []  # (when, gap ms) for every gap between sent frames over 30 ms
    last_sent = [0.0]
    loud_sent: list[float] = []  # monotonic time of each burst's first loud frame, as sent / as received
    loud_heard: list[float] = []
    switches: list[float] = []
    lag_ms: collections.Counter[int] = collections.Counter()  # event-loop oversleep, 0.1 ms buckets
    cut: list[str] = []
    rss_samples: list[float] = []
    record = Path(tempfile.mkdtemp()) / "soak.wav"

    async def sample() -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            lag_ms[int((time.monotonic() - t0 - 0.01) * 10000)] += 1
            if len(rss_samples) < int((time.monotonic() - started) / 30):
                rss_samples.append(rss_of(os.getpid()))

    def sent(p: np.ndarray, pts: int, at: float) -> None:
        if last_sent[0] and at - last_sent[0] > 0.03:
            gaps.append((at, (at - last_sent[0]) * 1000))
        last_sent[0] = at
        if np.abs(p).max() > 2000 and (not loud_sent or at - loud_sent[-1] > turn_every / 2):
            loud_sent.append(at)

    def heard(p: np.ndarray, pts: int, at: float) -> None:
        if np.abs(p).max() > 2000 and (not loud_heard or at - loud_heard[-1] > turn_every / 2):
            loud_heard.append(at)

    losses: list[str] = []

    def on_status(text: str) -> None:
        if "recycled" in text:
            switches.append(time.monotonic())
        elif text.startswith("connection lost"):
            losses.append(text)

    def on_done(event: ev.ResponseDone) -> None:
        if event.response.status != "completed":
            cut.append(str(event.response.status))

    session = SessionConfig.model_validate(
        {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}
    )
    started = time.monotonic()
    cap = ["--max-call-seconds", f"{max_call_seconds:g}"] if max_call_seconds else []
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", *cap],
        stdout=subprocess.PIPE,
        text=True,
    )  # its own process, as a real server is
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        call = VoiceCall(
            webrtc_settings(url),
            session,
            source=BufferSource(pcm),
            on_status=on_status,
            recording=Recording(record_wav=record),
            continuity=Continuity(recycle_after=recycle_after),
        )
        sampler = asyncio.ensure_future(sample())
        async with call:
            call.tap_audio(sent=sent, received=heard)
            call.on(ev.ResponseDone, on_done)
            await call.run_until_idle(2.0, minutes * 60 + 30)
            rss_end = rss_of(os.getpid())
            t0 = call.t0
        sampler.cancel()
    finally:
        stop(server)
    with wave.open(str(record)) as w:
        rate = w.getframerate()
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    left, right = loud_onsets(stereo[:, 0], rate), loud_onsets(stereo[:, 1], rate)
    # Where each lane put a burst in the file, less when it was sent / heard: constant unless a lane drifts.
    off_left = [min(left, key=lambda x, s=s: abs(x - (s - t0))) - (s - t0) for s in loud_sent]
    off_right = [min(right, key=lambda x, h=h: abs(x - (h - t0))) - (h - t0) for h in loud_heard]
    drift = [a - b for a, b in zip(off_left, off_right)]
    at_switch = [max((g for when, g in gaps if abs(when - s) < 1.0), default=0.0) for s in switches]
    lags = sorted(lag_ms.elements())
    p99 = lags[int(0.99 * (len(lags) - 1))] / 10 if lags else 0.0
    base = rss_samples[0] if rss_samples else rss_end
    every = (
        f"server cap {max_call_seconds:g} s (recycled at expires_at - 60 s)"
        if max_call_seconds
        else f"recycle every {recycle_after:g} s"
    )
    print(
        f"soak: {minutes:g} min, a turn every {turn_every:g} s, {every}: "
        f"{len(switches)} switches, {len(losses)} connections lost, {len(cut)} cut responses, "
        f"{len(loud_heard)} of {turns} turns echoed" + "".join(f"\n  {line}" for line in losses)
    )
    print(
        f"soak: microphone gap at each switch (longest gap between sent frames, 20 ms is none): "
        f"{', '.join(f'{g:.0f} ms' if g else '20 ms' for g in at_switch) or 'n/a'}"
    )
    print(
        f"soak: client RSS {base:.0f} MB after 30 s -> {rss_end:.0f} MB at the end ({rss_end - base:+.1f} MB); "
        f"recording drift between left and right {(max(drift) - min(drift)) * 1000 if drift else 0:.0f} ms; "
        f"event-loop lag p99 {p99:.1f} ms, max {lags[-1] / 10 if lags else 0:.1f} ms"
    )
    every_5 = rss_samples[::10]  # one sample each 30 s: every fifth minute, to tell growth from a plateau
    print("soak: client RSS every 5 minutes: " + ", ".join(f"{m:.1f}" for m in every_5) + f", end {rss_end:.1f} MB")


SCALE_SPEECH = ROOT / "fixtures" / "speech" / "sentence_1.wav"


def fidelity(sent: np.ndarray, heard: np.ndarray) -> float:
    """Normalised cross-correlation at the best lag of what was sent and what came back (1.0 = the same)."""
    a = sent.astype(np.float64) - sent.mean()
    b = heard.astype(np.float64) - heard.mean()
    if not a.any() or not b.any():
        return 0.0
    n = 1 << int(np.ceil(np.log2(a.size + b.size)))
    xcorr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    return float(xcorr.max() / (np.linalg.norm(a) * np.linalg.norm(b)))


async def scale_call(url: str, out: Path) -> dict[str, float | str]:
    """One scripted call: the spoken sentence in, the echo back; its turn delay and fidelity."""
    from voiceclient.audio.sources import WavSource, load_audio

    session = SessionConfig.model_validate(
        {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}
    )
    try:
        async with VoiceCall(
            webrtc_settings(url, connect_timeout=30),
            session,
            source=WavSource(SCALE_SPEECH),
            recording=Recording(output_wav=out),
        ) as call:
            ended = await call.run_until_idle(1.5, 40)
            delay = call.meter.latencies[0] if call.meter.latencies else float("nan")
        heard = load_audio(out, 24000)
        return {
            "ended": ended,
            "delay": delay,
            "fidelity": fidelity(load_audio(SCALE_SPEECH, 24000), heard),
            "connect": call.connect_seconds or float("nan"),
        }
    except Exception as exc:  # a call that fails is a row of the table, not the end of the benchmark
        return {"ended": f"failed: {exc}", "delay": float("nan"), "fidelity": 0.0, "connect": float("nan")}


async def scale_worker(url: str, out: str) -> None:
    import json

    print(json.dumps(await scale_call(url, Path(out))), flush=True)


async def scale_round(url: str, n: int, mode: str, work: Path) -> tuple[list[dict[str, float | str]], float, float]:
    """N calls at once, as N processes or in this process's one event loop. Returns the rows, the wall time and
    the CPU seconds the client side used."""
    import json

    started, cpu0 = time.monotonic(), _children_cpu() + time.process_time()
    if mode == "processes":
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).resolve()),
                "scale",
                "--worker",
                url,
                str(work / f"p{n}_{i}.wav"),
                stdout=asyncio.subprocess.PIPE,
            )
            for i in range(n)
        ]
        outs = await asyncio.gather(*(p.communicate() for p in procs))
        rows = [
            json.loads(o.decode().strip().splitlines()[-1])
            if o.strip()
            else {"ended": "failed: no output", "delay": float("nan"), "fidelity": 0.0}
            for o, _ in outs
        ]
    else:
        rows = list(await asyncio.gather(*(scale_call(url, work / f"l{n}_{i}.wav") for i in range(n))))
    return rows, time.monotonic() - started, _children_cpu() + time.process_time() - cpu0


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def serve_pids(url: str, front: int) -> list[int]:
    """The processes of a `serve` (its workers' too, with `--workers`), whose CPU is the server's."""
    import json
    import urllib.request

    with urllib.request.urlopen(url.removesuffix("/v1") + "/", timeout=10) as resp:
        workers = json.loads(resp.read()).get("workers", [])
    return [front, *(int(w["pid"]) for w in workers)]


async def bench_scale(counts: list[int], modes: list[str], workers: int = 1) -> None:
    """One embedded server (echo responder, energy VAD, its own process; `workers`: `serve --workers N`) and N
    scripted calls at once. Per N: how many completed, the answer's fidelity (normalised correlation of the echoed
    speech with what was sent) and the turn delay (end of the user's speech to the first echoed audio), against the
    single call; and CPU per call (the server's: its front and workers together)."""
    command = [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        pids = serve_pids(url, server.pid)
        with tempfile.TemporaryDirectory() as tmp:
            for mode in modes:
                base: tuple[float, float] | None = None
                print(
                    f"scale ({mode}, serve --workers {workers}): N calls at once against one server; fidelity and "
                    "turn delay are medians (worst) over the calls"
                )
                print(
                    f"  {'N':>3} {'done':>5} {'fidelity':>16} {'turn delay ms':>18} {'client CPU/call':>16} "
                    f"{'server CPU/call':>16} {'wall s':>7}  within target"
                )
                for n in counts:
                    s0 = sum(cpu_of(pid) for pid in pids)
                    rows, wall, cpu = await scale_round(url, n, mode, Path(tmp))
                    server_cpu = sum(cpu_of(pid) for pid in pids) - s0
                    ok = [r for r in rows if r["ended"] == "idle" and r["delay"] == r["delay"]]
                    fid = sorted(float(r["fidelity"]) for r in rows)
                    delays = sorted(float(r["delay"]) * 1000 for r in ok) or [float("nan")]
                    med_f, med_d = statistics.median(fid), statistics.median(delays)
                    if base is None:
                        base = (med_f, med_d)
                    good = len(ok) == n and fid[0] >= base[0] - 0.03 and delays[-1] <= 1.5 * base[1] + 100
                    print(
                        f"  {n:>3} {len(ok):>2}/{n:<2} {med_f:7.3f} ({fid[0]:.3f}) {med_d:8.0f} ({delays[-1]:5.0f}) "
                        f"{cpu / n / wall * 100:14.1f} % {server_cpu / n / wall * 100:14.1f} % {wall:7.1f}  "
                        f"{'yes' if good else 'NO'}"
                    )
                    failed = [str(r["ended"]) for r in rows if r["ended"] != "idle"]
                    for reason in sorted(set(failed)):
                        print(f"      {failed.count(reason)} x {reason}")
    finally:
        stop(server)


PLUGIN_SUITE = """
import json
import os
from pathlib import Path

import pytest

CALLS = int(os.environ["VOICECLIENT_BENCH_CALLS"])


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", range(CALLS))
async def test_echo(n, realtime_server, scripted_call):
    result = await scripted_call(realtime_server, os.environ["VOICECLIENT_BENCH_SPEECH"])
    row = {"ended": result.ended, "delay": result.latencies[0] if result.latencies else None,
           "output": str(result.output_wav), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}
    Path(os.environ["VOICECLIENT_BENCH_OUT"], f"{n}.json").write_text(json.dumps(row))
"""


def plugin_round(n: int, workers: int, work: Path) -> tuple[list[dict[str, Any]], float]:
    """A suite of `n` voice tests, each one scripted call through the pytest plugin (`realtime_server`,
    `scripted_call`), run by `pytest -n workers` (0: in one process); each test's row and the suite's wall time."""
    import json

    from voiceclient.audio.sources import load_audio

    folder = work / f"plugin_{n}_{workers}"
    (folder / "rows").mkdir(parents=True)
    (folder / "test_bench_calls.py").write_text(PLUGIN_SUITE)
    env = {
        **os.environ,
        "VOICECLIENT_BENCH_CALLS": str(n),
        "VOICECLIENT_BENCH_SPEECH": str(SCALE_SPEECH),
        "VOICECLIENT_BENCH_OUT": str(folder / "rows"),
    }
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers), "--rootdir", str(folder),
         "--basetemp", str(folder / "tmp"), str(folder / "test_bench_calls.py")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    wall = time.monotonic() - started
    sent = load_audio(SCALE_SPEECH, 24000)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        path = folder / "rows" / f"{i}.json"
        if not path.exists():
            rows.append({"ended": "failed: the test left no row", "delay": None, "fidelity": 0.0})
            continue
        row = json.loads(path.read_text())
        row["fidelity"] = fidelity(sent, load_audio(Path(row["output"]), 24000))
        rows.append(row)
    if run.returncode != 0:
        print("      pytest: " + (run.stdout.strip().splitlines() or ["no output"])[-1])
    return rows, wall


def bench_plugin(counts: list[int], workers: int) -> None:
    """Voice tests through the pytest plugin, sharded by pytest-xdist: each worker runs its own embedded servers
    and calls in its own process. One test alone is the reference; then suites of N tests on `workers` workers,
    each call held to the scale benchmark's target (fidelity within 0.03, turn delay within 1.5 x + 100 ms)."""
    with tempfile.TemporaryDirectory() as tmp:
        print(f"plugin: a suite of N voice tests (one echo call each) run by `pytest -n {workers}`")
        head = f"  {'N':>3} {'workers':>7} {'done':>5} {'fidelity':>16} {'turn delay ms':>18} {'wall s':>7}"
        print(head + "  within target")
        base: tuple[float, float] | None = None
        for n, w in [(1, 0)] + [(n, workers) for n in counts]:
            rows, wall = plugin_round(n, w, Path(tmp))
            ok = [r for r in rows if r["ended"] == "idle" and r["delay"] is not None]
            fid = sorted(float(r["fidelity"]) for r in rows)
            delays = sorted(float(r["delay"]) * 1000 for r in ok) or [float("nan")]
            med_f, med_d = statistics.median(fid), statistics.median(delays)
            if base is None:
                base = (med_f, med_d)
            good = len(ok) == n and fid[0] >= base[0] - 0.03 and delays[-1] <= 1.5 * base[1] + 100
            print(
                f"  {n:>3} {w:>7} {len(ok):>2}/{n:<2} {med_f:7.3f} ({fid[0]:.3f}) {med_d:8.0f} ({delays[-1]:5.0f}) "
                f"{wall:7.1f}  {'yes' if good else 'NO'}"
            )
            failed = [str(r["ended"]) for r in rows if r["ended"] != "idle"]
            for reason in sorted(set(failed)):
                print(f"      {failed.count(reason)} x {reason}")


def one_way_onsets(timeline: Timeline) -> list[float]:
    """Times at which each burst's first loud sample was captured/played (frame time + offset in frame)."""
    return [at - (size - off) / RATE for at, off, size, _ in timeline.onsets()]


async def ws_turn(client: object, paced_seconds: float | None = None) -> tuple[float, float, int]:
    """One WebSocket session of the official SDK, the microphone as 20 ms appends in real time: (connect ms to
    session.created, ms from the end of the user's tone to the first audio delta, turns answered). With
    `paced_seconds`, turns of 1 s tone + 1 s silence for that long instead of one turn."""
    import base64

    from voiceclient.audio.format import tone

    rate, frame = 24_000, 480
    start = time.monotonic()
    async with client.realtime.connect(model="gpt-realtime") as conn:  # type: ignore[attr-defined]
        await conn.recv()
        connect_ms = (time.monotonic() - start) * 1000
        turns = max(1, int((paced_seconds or 2.0) / 2.0))
        pcm = np.concatenate([np.concatenate([tone(440, 1.0, rate), np.zeros(rate, np.int16)])] * turns)
        first_delta: list[float] = []
        tone_end: list[float] = []
        answered = 0

        async def read() -> None:
            nonlocal answered
            async for event in conn:
                if event.type == "response.output_audio.delta" and len(first_delta) < len(tone_end):
                    first_delta.append(time.monotonic())
                elif event.type == "response.done":
                    answered += 1
                    if answered == turns:
                        return

        reader = asyncio.get_running_loop().create_task(read())
        t0 = time.monotonic()
        for i in range(0, pcm.size, frame):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + frame].tobytes()).decode())
            if i // frame % 100 == 49:  # the last frame of a turn's tone has gone
                tone_end.append(time.monotonic())
            await asyncio.sleep(max(0.0, t0 + (i + frame) / rate - time.monotonic()))
        await asyncio.wait_for(reader, 10)
        delays = [(d - e) * 1000 for d, e in zip(first_delta, tone_end)]
        return connect_ms, statistics.median(delays), answered


async def bench_websocket(runs: int, seconds: float, counts: list[int], workers: int = 1) -> None:
    """WebSocket sessions against `voiceclient serve` in its own process, driven by the official SDK. `workers`:
    `serve --workers N`, whose front relays each session (its CPU given apart)."""
    from openai import AsyncOpenAI

    command = [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"]
    server = subprocess.Popen(
        [*command, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        pids = serve_pids(url, server.pid)
        if workers > 1:
            print(f"websocket: serve --workers {workers}, each session relayed by the front")
        client = AsyncOpenAI(base_url=url, api_key="sk-bench")
        await ws_turn(client)  # warm: the server's first session, the SDK's imports
        results = [await ws_turn(client) for _ in range(runs)]
        print(f"websocket connect (SDK connect -> session.created): {stats([r[0] for r in results])}")
        print(
            f"websocket turn (end of the tone -> first audio delta, silence_duration_ms 200): "
            f"{stats([r[1] for r in results])}"
        )
        for n in counts:
            c0, f0, s0, w0 = time.process_time(), cpu_of(pids[0]), sum(map(cpu_of, pids)), time.monotonic()
            out = await asyncio.gather(*(ws_turn(client, seconds) for _ in range(n)))
            c1, f1, s1, w1 = time.process_time(), cpu_of(pids[0]), sum(map(cpu_of, pids)), time.monotonic()
            turns = sum(r[2] for r in out)
            front = f" (the front's relay {(f1 - f0) / (w1 - w0) * 100 / n:.1f} %)" if workers > 1 else ""
            print(
                f"websocket x{n}, {seconds:g} s of real-time appends each: {turns} of {n * int(seconds / 2)} "
                f"turns answered, turn delay median {statistics.median(r[1] for r in out):.0f} ms, "
                f"server CPU {(s1 - s0) / (w1 - w0) * 100 / n:.1f} % of a core per session{front}, "
                f"client (the SDK) {(c1 - c0) / (w1 - w0) * 100 / n:.1f} %"
            )
        await client.close()
    finally:
        stop(server)


async def fallback_round(drop_udp: bool, transport: str, runs: int) -> list[float]:
    """`voiceclient serve` in a network namespace of its own (root: ip, nft), UDP dropped there or not; the client
    outside, `runs` calls, each: start -> the first answer audio of a typed turn (ms)."""
    import subprocess

    def sh(*args: str, data: bytes | None = None) -> None:
        subprocess.run(args, check=True, capture_output=True, input=data, timeout=20)

    ns, outside, inside = "vcbench", "vcabench", "vcbbench"
    sh("ip", "netns", "add", ns)
    proc = None
    times: list[float] = []
    try:
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", ns)
        sh("ip", "addr", "add", "198.18.99.1/30", "dev", outside)
        sh("ip", "link", "set", outside, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", "198.18.99.2/30", "dev", inside)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
        if drop_udp:
            sh(
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "-f",
                "-",
                data=(
                    b"table inet t {\n chain i { type filter hook input priority 0; meta l4proto udp drop; }\n"
                    b" chain o { type filter hook output priority 0; meta l4proto udp drop; }\n}\n"
                ),
            )
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
            "198.18.99.2",
            "--port",
            "0",
            "--no-speech",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        url = (await proc.stdout.readline()).decode().split("listening on ")[1].split()[0]
        for _ in range(runs):
            start = time.monotonic()
            settings = ClientSettings(base_url=url, api_key="sk-bench", transport=transport)  # type: ignore[arg-type]
            async with VoiceCall(settings) as call:
                call.send_text("hello")
                await call.wait_for(lambda e: e.type == "output_audio_buffer.started", 30)
                times.append((time.monotonic() - start) * 1000)
    finally:
        if proc is not None:
            proc.kill()
            await proc.wait()
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
    return times


async def bench_fallback(runs: int) -> None:
    for drop, transport in ((False, "webrtc"), (False, "auto"), (False, "websocket"), (True, "auto")):
        times = await fallback_round(drop, transport, runs)
        print(
            f"UDP {'dropped' if drop else 'open':7s}, --transport {transport:9s}: start -> first answer audio "
            f"{stats(times)}"
        )


# ----------------------------------------------------------------------------------------------- both transports
class StreamTimeline:
    """Onsets of a stream of chunks at any rate, each chunk timed when it was handed over (pts counted here)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frames: list[tuple[int, float, np.ndarray]] = []
        self._pts = 0

    def tap(self, pcm: np.ndarray, at: float) -> None:
        self.frames.append((self._pts, at, pcm.copy()))
        self._pts += pcm.size

    def onsets(self) -> list[tuple[float, int, int]]:
        """(time the chunk holding an onset was handed over, the onset's offset in it, the chunk's size)."""
        out, quiet_until = [], -1.0
        for pts, at, pcm in self.frames:
            hits = np.nonzero(np.abs(pcm.astype(np.int32)) > THRESHOLD)[0]
            if hits.size:
                pos = (pts + int(hits[0])) / self.rate
                if pos > quiet_until:
                    out.append((at, int(hits[0]), pcm.size))
                quiet_until = pos + BURST + 0.05
        return out


def stream_one_way(sent: StreamTimeline, received: StreamTimeline, played: bool) -> list[float]:
    """ms from the chunk holding an onset leaving the sender (a microphone frame as an RTP packet or an append; an
    RTP frame or a delta of the answer) to that chunk being there: in the server's input buffer (the chunk
    arrived), or, `played`, its first sample handed to the speaker (the onset's time in the playout frame less its
    offset in the chunk it left in: for a delta, how long after it left its audio began to play)."""
    out = []
    for (s_at, s_off, _), (r_at, r_off, _) in zip(sent.onsets(), received.onsets()):
        if played:
            out.append((r_at + r_off / received.rate - s_off / sent.rate - s_at) * 1000)
        else:
            out.append((r_at - s_at) * 1000)
    return out


async def transport_latency(transport: str, seconds: float) -> tuple[list[float], list[float]]:
    """One call over `transport` against an in-process server (one clock for both sides): a train of 1 kHz bursts
    as the user's audio, then the echo of it as the answer. Up: the client's sent frame -> the server's input
    (RTP decoded and resampled, or an `input_audio_buffer.append` decoded). Down: the server's output (an RTP
    frame, or a `response.output_audio.delta`, sent in real time: `pace_websocket_audio`) -> the client's playable
    frame (decoded RTP, or the local playout's frame)."""
    pcm, _ = burst_train(seconds)
    up_sent, up_recv = StreamTimeline(RATE), StreamTimeline(24_000)
    down_sent, down_recv = StreamTimeline(RATE), StreamTimeline(RATE)
    session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    loop = asyncio.get_running_loop()
    async with RealtimeServer(port=0, pace_websocket_audio=True, vad="energy") as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-bench", transport=transport)  # type: ignore[arg-type]
        async with VoiceCall(settings, session, source=BufferSource(np.zeros(0, np.int16))) as call:
            srv = next(iter({**server.calls, **server.sessions}.values()))
            original_input = srv.input_audio

            def server_input(pcm24: np.ndarray) -> None:
                up_recv.tap(pcm24, loop.time())
                original_input(pcm24)

            srv.input_audio = server_input  # type: ignore[method-assign]
            if transport == "webrtc":
                srv.edge.track.on_frame = lambda frame, pts, at: down_sent.tap(frame, at)  # type: ignore[attr-defined]
            else:
                import base64

                deltas = srv.edge.deltas  # type: ignore[attr-defined]
                send = deltas.send

                def delta_out(event: ev.ServerEvent) -> None:
                    if isinstance(event, ev.ResponseOutputAudioDelta):
                        down_sent.tap(np.repeat(np.frombuffer(base64.b64decode(event.delta), "<i2"), 2), loop.time())
                    send(event)

                deltas.send = delta_out
            call.tap_audio(
                received=lambda frame, pts, at: down_recv.tap(frame, at),
                sent=lambda frame, pts, at: up_sent.tap(frame, at),
            )
            await asyncio.sleep(0.3)
            source = BufferSource(pcm)
            call.set_source(source)
            while not source.done:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            call.send(ev.InputAudioBufferCommit())
            call.send(ev.ResponseCreate())
            await call.wait_for(lambda e: e.type == "response.done", seconds + 10)
            await call.run_until_idle(0.5, 2 * seconds + 20)  # (from the call's start: the train, then its echo)
    return stream_one_way(up_sent, up_recv, False), stream_one_way(down_sent, down_recv, True)


def turn_train(seconds: float) -> np.ndarray:
    """Turns of 0.5 s of a 440 Hz tone and 1.5 s of silence (its echo ends before the next), at 48 kHz."""
    from voiceclient.audio.format import tone

    turn = np.concatenate([tone(440, 0.5, RATE), np.zeros(RATE * 3 // 2, np.int16)])
    return np.concatenate([turn] * max(1, int(seconds / 2)))


async def transport_round(url: str, server_pid: int, transport: str, n: int, seconds: float) -> dict[str, Any]:
    """N calls at once over `transport`, from this process's event loop, each a turn every 2 s for `seconds`.
    CPU is counted from when every call is connected to when every call is idle."""
    session = SessionConfig.model_validate(
        {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}}}
    )
    settings = ClientSettings(
        base_url=url,
        api_key="sk-bench",
        transport=transport,  # type: ignore[arg-type]
        connect_timeout=30,
    )
    calls = [VoiceCall(settings, session) for _ in range(n)]
    try:
        await asyncio.gather(*(call.connect() for call in calls))
        c0, s0, w0 = time.process_time(), cpu_of(server_pid), time.monotonic()
        pcm = turn_train(seconds)
        for call in calls:
            call.set_source(BufferSource(pcm))
        await asyncio.gather(*(call.run_until_idle(1.0, seconds + 20) for call in calls))
        c1, s1, w1 = time.process_time(), cpu_of(server_pid), time.monotonic()
    finally:
        await asyncio.gather(*(call.close() for call in calls))
    delays = sorted(d * 1000 for call in calls for d in call.meter.latencies)
    return {
        "connect": [c.connect_seconds * 1000 for c in calls if c.connect_seconds is not None],
        "turns": sum(len(c.meter.latencies) for c in calls),
        "expected": n * int(seconds / 2),
        "delay": statistics.median(delays) if delays else float("nan"),
        "worst": delays[-1] if delays else 0.0,
        "client": (c1 - c0) / (w1 - w0) * 100 / n,
        "server": (s1 - s0) / (w1 - w0) * 100 / n,
    }


async def bench_transports(runs: int, seconds: float, counts: list[int]) -> None:
    """Our client over WebRTC and over WebSocket, side by side, in one run: connect, one-way latency each way, turn
    delay, CPU per call of client and server, and N calls at once. The connect, turn and CPU rows are against
    `voiceclient serve --no-speech --vad energy` in its own process (echo; WebSocket answer audio in bursts, as
    the real service sends it); the latency rows against an in-process server, so that both ends read one clock."""
    rows: dict[str, dict[str, str]] = {"webrtc": {}, "websocket": {}}
    for transport in rows:
        up, down = await transport_latency(transport, seconds)
        rows[transport]["one-way up: frame sent -> in the server's input buffer"] = stats(up)
        rows[transport]["one-way down: RTP frame / delta sent -> playable at the client"] = stats(down)
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        for transport in rows:
            await transport_round(url, server.pid, transport, 1, 2)  # warm: imports, the server's first session
            connects: list[float] = []
            for _ in range(runs):
                connects += (await transport_round(url, server.pid, transport, 1, 2))["connect"]
            rows[transport]["connect, VoiceCall.connect() -> session.updated"] = stats(connects)
            for n in counts:
                r = await transport_round(url, server.pid, transport, n, seconds)
                rows[transport][f"{n} at once: turns answered, turn delay median (worst)"] = (
                    f"{r['turns']}/{r['expected']}, {r['delay']:.0f} ({r['worst']:.0f}) ms"
                )
                rows[transport][f"{n} at once: CPU per call, client / server"] = (
                    f"{r['client']:.1f} / {r['server']:.1f} % of a core"
                )
                print(f"{transport} x{n}: {r}", file=sys.stderr, flush=True)
    finally:
        took = stop(server)
        print(
            f"the server stopped {took:.1f} s after SIGTERM"
            if took is not None
            else "the server did not stop within 30 s of SIGTERM: killed",
            file=sys.stderr,
        )
    print("| what | WebRTC | WebSocket |\n|---|---|---|")
    for what in rows["webrtc"]:
        print(f"| {what} | {rows['webrtc'][what]} | {rows['websocket'][what]} |")


async def agents_round(url: str, ws_url: str, kind: str, turns: int) -> dict[str, Any]:
    """One Agents SDK session (an agent with no tools, the server echoing) over `kind`: the SDK's own WebSocket
    model or voiceclient's WebRTCModel. The same application code drives both: `session.send_audio` in real-time
    20 ms chunks (0.5 s of 440 Hz, then silence), the answer's first `audio` event timed. Connect is `async with
    session` entered -> the SDK sees `session.updated`."""
    from agents.realtime import RealtimeAgent, RealtimeRunner

    from voiceclient.agents import WebRTCModel
    from voiceclient.audio.format import API_RATE, tone
    from voiceclient.audio.sources import SilenceSource

    settings = {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}
    model = None if kind == "websocket" else WebRTCModel(source=SilenceSource(), playback=False)
    config = {
        "api_key": "sk-bench",
        "initial_model_settings": settings,
        "url": f"{ws_url}/realtime?model=gpt-realtime" if model is None else url,
    }
    session = await RealtimeRunner(RealtimeAgent(name="echo", instructions="Repeat."), model=model).run(
        model_config=config
    )  # type: ignore[arg-type]
    chunk = API_RATE // 50
    said = tone(440, 0.5, API_RATE)
    silence = np.zeros(chunk, np.int16).tobytes()
    updated, heard = asyncio.Event(), asyncio.Event()
    marks: dict[str, float] = {}
    delays: list[float] = []
    t0 = time.monotonic()
    async with session:

        async def consume() -> None:
            async for event in session:
                if (
                    event.type == "raw_model_event"
                    and event.data.type == "raw_server_event"
                    and event.data.data.get("type") == "session.updated"
                    and not updated.is_set()
                ):
                    marks["updated"] = time.monotonic()
                    updated.set()
                elif event.type == "audio" and "end" in marks and not heard.is_set():
                    delays.append((time.monotonic() - marks["end"]) * 1000)
                    heard.set()

        reader = asyncio.get_running_loop().create_task(consume())
        await asyncio.wait_for(updated.wait(), 30)
        connect = (marks["updated"] - t0) * 1000
        c0, w0 = time.process_time(), time.monotonic()
        for _ in range(turns):
            marks.pop("end", None)
            heard.clear()
            tick = time.monotonic()
            for i in range(0, said.size, chunk):
                await session.send_audio(said[i : i + chunk].tobytes())
                tick += 0.02
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
            marks["end"] = time.monotonic()
            for _ in range(125):  # 2.5 s of silence: the VAD ends the turn, the echo plays out
                await session.send_audio(silence)
                tick += 0.02
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
        c1, w1 = time.process_time(), time.monotonic()
        reader.cancel()
    return {"connect": connect, "delays": delays, "turns": turns, "cpu": (c1 - c0) / (w1 - w0) * 100}


async def bench_agents(runs: int, turns: int) -> None:
    """The Agents SDK over its own WebSocket model and over voiceclient's WebRTCModel, side by side, in one run,
    against `voiceclient serve --no-speech --vad energy` in its own process (echo)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech", "--vad", "energy"],
        stdout=subprocess.PIPE,
        text=True,
    )
    rows: dict[str, dict[str, str]] = {"websocket": {}, "webrtc": {}}
    try:
        assert server.stdout is not None
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)  # type: ignore[union-attr]
        ws_url = url.replace("http://", "ws://", 1)
        for kind in rows:
            await agents_round(url, ws_url, kind, 1)  # warm: imports, the server's first session
            connects = [(await agents_round(url, ws_url, kind, 0))["connect"] for _ in range(runs)]
            rows[kind]["connect: `async with session` -> the SDK sees session.updated"] = stats(connects)
            r = await agents_round(url, ws_url, kind, turns)
            print(f"agents {kind}: {r}", file=sys.stderr, flush=True)
            rows[kind]["turns answered; user's last sample sent -> the answer's first `audio` event, median / p99"] = (
                f"{len(r['delays'])}/{r['turns']}; {stats(r['delays'])}"
            )
            rows[kind]["client CPU during the turns (SDK + model + driver)"] = f"{r['cpu']:.1f} % of a core"
    finally:
        stop(server)
    print("| what | the SDK's WebSocket model | voiceclient's WebRTCModel |\n|---|---|---|")
    for what in rows["websocket"]:
        print(f"| {what} | {rows['websocket'][what]} | {rows['webrtc'][what]} |")


async def bench_report(minutes: float) -> None:
    """`voiceclient report` on a long call: the demo's conversation (its event log and stereo recording) repeated
    to `minutes`, on one clock, then the page made from it."""
    from voiceclient.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "voiceclient",
                "demo",
                "--output-dir",
                str(work / "demo"),
                "--quiet",
                "--transport",
                "webrtc",
            ],
            check=True,
            capture_output=True,
        )
        lines = [json.loads(x) for x in (work / "demo" / "events.jsonl").read_text().splitlines()]
        import wave

        with wave.open(str(work / "demo" / "conversation.wav")) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        one = len(pcm) / 4 / rate
        copies = max(1, int(minutes * 60 / one))
        with open(work / "long.jsonl", "w") as out:
            for k in range(copies):
                for line in lines:
                    out.write(json.dumps({**line, "t": round(line["t"] + k * one, 4)}) + "\n")
        with wave.open(str(work / "long.wav"), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(rate)
            for _ in range(copies):
                w.writeframes(pcm)
        started, c0 = time.monotonic(), time.process_time()
        timeline = write_report(work / "long.jsonl", work / "long.wav", work / "long.html")
        wall, cpu = time.monotonic() - started, time.process_time() - c0
        size = (work / "long.html").stat().st_size
        print(
            f"report of a {copies * one / 60:.1f}-minute call ({len(lines) * copies} events, "
            f"{timeline.summary['turns']} turns, a {(work / 'long.wav').stat().st_size / 1e6:.0f} MB recording): "
            f"{size / 1e6:.1f} MB of HTML in {wall:.2f} s ({cpu:.2f} s CPU); the demo's own: "
            f"{len(lines)} events"
        )


# ------------------------------------------------------------------------------------------------ network
# Harvard sentences (IEEE 1969, lists 1-2), said by espeak-ng one per turn.
HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]
NET_LEAD = 3.0  # seconds of silence before the first sentence: the call connects meanwhile (Chromium's capture runs)
NET_GAP = 2.2  # seconds after a sentence's echo has played (silence 500 ms + prefix 300 ms + transport) to the next
# One turn per sentence: server VAD with 500 ms of silence (espeak's pauses inside a sentence are shorter), the same
# session for every receiver.
NET_SESSION = {
    "type": "realtime",
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
}
NET_PAD = RATE // 4  # PESQ: 250 ms either side of each sentence


def network_speech(seconds: float, out: Path) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The spoken WAV (48 kHz mono, at `out`): sentences until `seconds` of speech, each followed by the time its
    echo takes; returns the PCM and each sentence's (start, end) sample."""
    import wave

    parts, spans, pos, said = [np.zeros(int(NET_LEAD * RATE), np.int16)], [], int(NET_LEAD * RATE), 0
    for i, text in enumerate(itertools.cycle(HARVARD)):
        if said >= seconds * RATE:
            break
        pcm = espeak(text, out.with_name(f"sentence{i}.wav"))
        spans.append((pos, pos + pcm.size))
        gap = np.zeros(pcm.size + int(NET_GAP * RATE), np.int16)
        parts += [pcm, gap]
        pos += pcm.size + gap.size
        said += pcm.size
    wav = np.concatenate(parts)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(wav.astype("<i2").tobytes())
    return wav, spans


def origin(times: list[float] | np.ndarray, sizes: list[int] | np.ndarray) -> float:
    """The monotonic time of a stream's sample 0, from the times its chunks were handed over (median: robust to
    a chunk handed late or a burst)."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return float(np.median(np.asarray(times) - starts / RATE))


def best_lag(ref: np.ndarray, lane: np.ndarray, lo: int, hi: int) -> tuple[int, float]:
    """Where in lane[lo:hi] `ref` starts best (normalised cross-correlation), and that correlation."""
    lo, hi = max(0, lo), min(hi, lane.size - ref.size)
    if hi <= lo:
        return lo, 0.0
    seg = lane[lo : hi + ref.size].astype(np.float64)
    a = ref.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(seg.size + a.size)))
    xc = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(a, n)), n)[: hi - lo]
    energy = np.concatenate([[0], np.cumsum(seg**2)])
    window = np.sqrt(np.maximum(energy[a.size : a.size + hi - lo] - energy[: hi - lo], 1e-9))
    score = xc / (window * np.linalg.norm(a) + 1e-9)
    k = int(np.argmax(score))
    return lo + k, float(score[k])


def to_16k(pcm: np.ndarray) -> np.ndarray:
    from voiceclient.audio.resample import Resampler

    r = Resampler(RATE, 16_000)
    return np.concatenate([r.process(pcm), r.flush()]).astype(np.float32) / 32768


def score_played(
    wav: np.ndarray,
    spans: list[tuple[int, int]],
    sent: np.ndarray,
    sent_origin: float,
    played: np.ndarray,
    played_origin: float,
    echo: bool = True,
    served: np.ndarray | None = None,
) -> dict[str, Any]:
    """PESQ (wideband, of each sentence's echo found in `played` by cross-correlation against the sentence sent,
    scored in groups of about 10 s) and the delay of each echo: its start in what was played minus the end of the
    sentence in what was sent, on one clock (each stream's origin)."""
    from pesq import pesq

    first, last = spans[0][0], spans[-1][1]
    at, _ = best_lag(wav[first:last], sent, 0, sent.size)  # where the WAV's speech is in what was sent
    shift = at - first
    delays, found, refs, degs, srvs = [], [], [], [], []
    served_at = 0
    for start, end in spans:
        end_time = sent_origin + (shift + end) / RATE  # the sentence's last sample left
        lo = int((end_time - played_origin) * RATE)  # an echo starts after the sentence ends...
        if not echo:  # ...the sentence itself (as the server received it) about where it was sent
            lo -= end - start + RATE
        pos, corr = best_lag(wav[start:end], played, lo, lo + 4 * RATE)
        found.append(corr)
        if corr < 0.3:  # no echo of it there
            continue
        delays.append((played_origin + pos / RATE - end_time) * 1000)
        refs.append(wav[start - NET_PAD : end + NET_PAD])
        deg = played[max(0, pos - NET_PAD) : pos + (end - start) + NET_PAD]
        degs.append(np.concatenate([deg, np.zeros(refs[-1].size - deg.size, np.int16)]))
        if served is not None:  # the same echo in what serve sent (its recording's right lane), found in turn
            at_srv, _ = best_lag(wav[start:end], served, served_at, served.size)
            served_at = at_srv + (end - start)
            srv = served[max(0, at_srv - NET_PAD) : at_srv + (end - start) + NET_PAD]
            srvs.append(np.concatenate([srv, np.zeros(refs[-1].size - srv.size, np.int16)]))

    def grouped(refs: list[np.ndarray]) -> float:
        scores, i = [], 0
        while i < len(refs):  # groups of sentences, about 10 s each (P.862 is meant for 8-20 s)
            j, n = i, 0
            while j < len(refs) and n < 10 * RATE:
                n += refs[j].size
                j += 1
            try:
                scores.append(pesq(16_000, to_16k(np.concatenate(refs[i:j])), to_16k(np.concatenate(degs[i:j])), "wb"))
            except Exception as exc:  # (no utterance found in the degraded file, and the like)
                print(f"  PESQ failed on sentences {i}-{j - 1}: {exc}")
            i = j
        return float(np.mean(scores)) if scores else float("nan")

    k = max(1, len(delays) // 3)
    return {
        "pesq": grouped(refs),
        "pesq_down": grouped(srvs) if served is not None else float("nan"),
        "delay": float(np.median(delays)) if delays else float("nan"),
        "drift": float(np.median(delays[-k:]) - np.median(delays[:k])) if len(delays) >= 2 else float("nan"),
        "echoes": f"{len(delays)}/{len(spans)}",
        "min_corr": min(found) if found else 0.0,
    }


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 24 kHz stereo recording's lanes, at 48 kHz."""
    import wave

    from voiceclient.audio.resample import Resampler

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    lanes = []
    for lane in (pcm[:, 0], pcm[:, 1]):
        r = Resampler(rate, RATE)
        lanes.append(np.concatenate([r.process(lane.copy()), r.flush()]))
    return lanes[0], lanes[1]


async def net_voiceclient(url: str, wav_path: Path, seconds: float, work: Path) -> dict[str, dict[str, Any]]:
    """voiceclient's VoiceCall with the real SpeakerSink (on the PulseAudio null sink): what the device callback
    took, block by block (the sink's `reference`), and the call's `--record` recording (what arrived)."""
    from voiceclient.audio.sources import WavSource
    from voiceclient.audio.speaker import SpeakerSink

    speaker = SpeakerSink()
    played: list[np.ndarray] = []
    played_at: list[float] = []
    sent: list[np.ndarray] = []
    sent_at: list[float] = []

    def on_played(block: np.ndarray) -> None:
        played_at.append(time.monotonic())
        played.append(block.copy())

    def on_sent(pcm: np.ndarray, pts: int | None = None, at: float | None = None) -> None:
        sent_at.append(time.monotonic() if at is None else at)
        sent.append(pcm.copy())

    speaker.reference = on_played
    record = work / "voiceclient.record.wav"
    speaker.start()
    try:
        call = VoiceCall(
            webrtc_settings(url, connect_timeout=30),
            SessionConfig.model_validate(NET_SESSION),
            source=WavSource(wav_path),
            playback=speaker,
            recording=Recording(record_wav=record),
        )
        call.tap_audio(sent=on_sent)
        async with call:
            c0, w0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - c0, time.monotonic() - w0
            assert isinstance(call.transport, WebRTCTransport)
            stats = await call.transport.peer.pc.getStats()
    finally:
        speaker.close()
    inbound = [s for s in stats.values() if s.type == "inbound-rtp"]
    lost, received = sum(s.packetsLost for s in inbound), sum(s.packetsReceived for s in inbound)
    missing = 100 * lost / max(1, lost + received)
    left, right = read_stereo(record)
    return {
        "voiceclient": {
            "sent": (np.concatenate(sent), origin(sent_at, [s.size for s in sent])),
            "played": (np.concatenate(played), origin(played_at, [b.size for b in played])),
            "concealed": missing,
            "extra": f"speaker gaps {speaker.gaps}, trimmed {speaker.trimmed_ms:.0f} ms, "
            f"device latency {speaker.latency_s * 1000:.0f} ms, takes {speaker.burst_ms:.0f} ms at once",
            "cpu": (cpu, wall),
        },
        "recording": {"sent": (left, 0.0), "played": (right, 0.0), "concealed": missing},
    }


async def net_aiortc(url: str, wav_path: Path, seconds: float, work: Path) -> dict[str, dict[str, Any]]:
    """Stock aiortc in a process of its own (scripts/bench_aiortc.py): what `track.recv()` decoded, in order."""
    out = work / "aiortc.npz"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "bench_aiortc.py"),
        url,
        str(wav_path),
        str(out),
        str(seconds),
        json.dumps(NET_SESSION),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await proc.communicate()
    assert proc.returncode == 0, f"the aiortc receiver failed ({proc.returncode})"
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    d = np.load(out)
    return {
        "aiortc": {
            "sent": (d["sent"], origin(d["sent_times"], d["sent_sizes"])),
            "played": (d["played"], origin(d["played_times"], d["played_sizes"])),
            "concealed": 100 * info["lost"] / max(1, info["lost"] + info["received"]),
            "cpu": (info["cpu"], info["wall"]),
        }
    }


CHROMIUM = os.environ.get("CHROMIUM") or next(
    (
        p
        for p in ("chromium", "chromium-browser", "google-chrome")
        if subprocess.run(["which", p], capture_output=True).returncode == 0
    ),
    None,
)


async def net_chromium(url: str, wav_path: Path, seconds: float, work: Path) -> dict[str, dict[str, Any]]:
    """The system Chromium, headless, its fake microphone playing the WAV: scripts/bench_network.html records the
    microphone and the remote stream as WebAudio plays it, and POSTs them with getStats()'s inbound-rtp."""
    from aiohttp import web

    loop = asyncio.get_running_loop()
    result: asyncio.Future[dict[str, Any]] = loop.create_future()
    pcm: dict[str, bytes] = {}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=(ROOT / "scripts" / "bench_network.html").read_text(), content_type="text/html")

    async def receive_pcm(request: web.Request) -> web.Response:
        pcm["data"] = await request.read()
        return web.Response()

    async def receive(request: web.Request) -> web.Response:
        if not result.done():
            result.set_result(json.loads(await request.text()))
        return web.Response()

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/", page)
    app.router.add_post("/pcm", receive_pcm)
    app.router.add_post("/result", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    from urllib.parse import urlencode

    query = urlencode({"base": url, "seconds": f"{seconds:.2f}", "session": json.dumps(NET_SESSION)})
    assert CHROMIUM is not None, "Chromium is not installed"
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
            f"--user-data-dir={work / 'chromium-profile'}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav_path}",
            "--autoplay-policy=no-user-gesture-required",
            f"http://127.0.0.1:{port}/?{query}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = await asyncio.wait_for(result, seconds + 60)
    finally:
        stop(browser, 10)
        await runner.cleanup()
    assert report["ok"], report
    stereo = np.frombuffer(pcm["data"], "<i2").reshape(-1, 2)
    st = report["stats"]
    concealed = 100 * st.get("concealedSamples", 0) / max(1, st.get("totalSamplesReceived", 0))
    jb = 1000 * st.get("jitterBufferDelay", 0) / max(1, st.get("jitterBufferEmittedCount", 0))
    return {
        "chromium": {
            "sent": (stereo[:, 0].copy(), 0.0),
            "played": (stereo[:, 1].copy(), 0.0),
            "concealed": concealed,
            "extra": f"jitter buffer {jb:.0f} ms, packets lost {st.get('packetsLost', 0)}",
        }
    }


@contextlib.contextmanager
def before_issue_30() -> Any:
    """voiceclient's media path as it was before issue 30, for the before/after columns: the immediate jitter buffer
    (every packet decoded on arrival through PyAV, nothing concealed) and 32 kbit/s low-delay Opus."""
    import voiceclient.rtc.inline as inline_module
    import voiceclient.rtc.peer as peer_module

    saved = peer_module.use_adaptive_jitter_buffer, inline_module.MonoOpusEncoder.__init__.__defaults__
    peer_module.use_adaptive_jitter_buffer = jitter.use_immediate_jitter_buffer  # type: ignore[assignment]
    inline_module.MonoOpusEncoder.__init__.__defaults__ = (32_000, None, 32_000)
    try:
        yield
    finally:
        peer_module.use_adaptive_jitter_buffer, inline_module.MonoOpusEncoder.__init__.__defaults__ = saved


async def net_voiceclient_before(url: str, wav_path: Path, seconds: float, work: Path) -> dict[str, dict[str, Any]]:
    with before_issue_30():
        got = await net_voiceclient(url, wav_path, seconds, work)
    return {"before": got["voiceclient"]}


NET_RECEIVERS = {
    "voiceclient": net_voiceclient,
    "before": net_voiceclient_before,
    "aiortc": net_aiortc,
    "chromium": net_chromium,
}
NET_COLUMNS = {
    "voiceclient": "voiceclient (speaker)",
    "before": "voiceclient before (speaker)",
    "recording": "voiceclient (--record)",
    "aiortc": "stock aiortc",
    "chromium": "Chromium",
}


async def new_recording(record_dir: Path, before: set[Path]) -> Path:
    """The server's recording of the call just ended, once the server has finished it (its size stays put)."""
    size = -1
    for _ in range(100):
        await asyncio.sleep(0.2)
        new = sorted(set(record_dir.glob("*.conversation.wav")) - before) if record_dir.exists() else []
        if new and new[-1].stat().st_size == size:
            return new[-1]
        size = new[-1].stat().st_size if new else -1
    raise AssertionError(f"no finished server recording in {record_dir}")


def network_support() -> bool:
    import inspect

    return "network" in inspect.signature(RealtimeServer.__init__).parameters


async def network_cell(
    spec: str | None,
    wav: np.ndarray,
    spans: list[tuple[int, int]],
    wav_path: Path,
    receivers: list[str],
    uplink: bool,
    work: Path,
) -> dict[str, dict[str, Any]]:
    """Each receiver's call to a `voiceclient serve` process of its own (its own CPU) with this network spec, one
    after the other: every call is the server's first, so the seeded network loses the same packets in each; the
    scores per column."""
    seconds = wav.size / RATE - 0.3  # the call ends before Chromium's fake capture loops the WAV
    out: dict[str, dict[str, Any]] = {}
    for name in receivers:
        record_dir = work / f"server-{name}"
        cmd = [sys.executable, "-m", "voiceclient", "serve", "--port", "0", "--no-speech"]
        cmd += ["--record-dir", str(record_dir)]
        if spec is not None:
            cmd += ["--network", spec]
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            match = re.search(r"listening on (\S+)", line)
            assert match, f"serve did not start: {line!r}"
            url = match.group(1)
            before = set(record_dir.glob("*.conversation.wav")) if record_dir.exists() else set()
            got = await NET_RECEIVERS[name](url, wav_path, seconds, work)
            for column, r in got.items():  # kept for a look afterwards
                np.savez(work / f"{column}.{spec or 'clean'}.npz", sent=r["sent"][0], played=r["played"][0])
            # What the server decoded (its recording's left lane), against the WAV alone (no delay across clocks).
            decoded, served = read_stereo(await new_recording(record_dir, before))
            heard = score_played(wav, spans, decoded, 0.0, decoded, 0.0, echo=False)
            for column, r in got.items():
                if uplink:
                    if column == "recording":
                        continue
                    s = dict(heard)
                    s["pesq_down"] = float("nan")
                    s["delay"] = s["drift"] = float("nan")
                    s["concealed"] = float("nan")
                else:
                    s = score_played(wav, spans, *r["sent"], *r["played"], served=served)
                    s["concealed"] = r.get("concealed", float("nan"))
                s["extra"] = r.get("extra", "")
                if not uplink and column != "recording":
                    s["extra"] = f"serve heard PESQ {heard['pesq']:.2f}; " + s["extra"]
                s["cpu"] = r.get("cpu")
                out[column] = s
        finally:
            stop(server)
    return out


ECHO_VARIANTS = {
    "voiceclient": "voiceclient (adaptive jitter buffer)",
    "immediate": "voiceclient, immediate jitter buffer (before)",
    "aiortc": "stock aiortc",
}


def local_candidates(sdp: str, loopback: bool) -> str:
    """The SDP with only its IPv4 candidates of this machine: 127.0.0.1 (ours), or (Chromium's, which gathers none
    on loopback) its own interface address, whose packets the kernel keeps on the machine."""
    lines = sdp.splitlines()

    def keep(line: str) -> bool:
        if not line.startswith("a=candidate:"):
            return True
        address = line.split()[4]
        return address == "127.0.0.1" if loopback else address.count(".") == 3 and not address.endswith(".local")

    kept = [ln for ln in lines if keep(ln)]
    if not any(ln.startswith("a=candidate:") for ln in kept):
        raise AssertionError("no usable candidate in the SDP:\n" + sdp)
    return "\r\n".join(kept) + "\r\n"


def round_trips(sent: Timeline, received: Timeline) -> list[float]:
    """ms from each click sent (captured) to its echo played: the first received onset within the click period after
    it (robust to an echo that started late or a click lost on the way)."""
    sent_at = [o[0] - (o[2] - o[1]) / RATE for o in sent.onsets()]  # type: ignore[misc]  # 4-tuples
    heard_at = [o[0] + o[1] / RATE for o in received.onsets()]
    out = []
    for s in sent_at:
        i = bisect.bisect_left(heard_at, s)
        if i < len(heard_at) and heard_at[i] - s < BURST_EVERY:
            out.append((heard_at[i] - s) * 1000)
    return out


class EchoPage:
    """Headless Chromium on scripts/bench_echo.html, which answers our offers and echoes the audio; its commands
    go out through a long poll (GET /next) and its replies come back as POSTs."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.browser: subprocess.Popen[bytes] | None = None
        self.runner: Any = None

    async def __aenter__(self) -> EchoPage:
        from aiohttp import web

        async def page(request: web.Request) -> web.Response:
            return web.Response(text=(ROOT / "scripts" / "bench_echo.html").read_text(), content_type="text/html")

        async def next_command(request: web.Request) -> web.Response:
            return web.json_response(await self.commands.get())

        async def reply(request: web.Request) -> web.Response:
            body = json.loads(await request.text())
            if request.path == "/error":
                body = {"error": body.get("error", "?")}
            await self.replies.put(body)
            return web.Response()

        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_get("/next", next_command)
        for path in ("/answer", "/stats", "/error"):
            app.router.add_post(path, reply)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        assert CHROMIUM is not None, "Chromium is not installed"
        self.browser = subprocess.Popen(
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
                f"--user-data-dir={self.work / 'chromium-profile'}",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-features=WebRtcHideLocalIpsWithMdns",  # candidates as addresses, not mDNS names
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    async def command(self, command: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        await self.commands.put(command)
        reply = await asyncio.wait_for(self.replies.get(), timeout)
        if "error" in reply:
            raise AssertionError(f"the echo page failed: {reply['error']}")
        return reply

    async def __aexit__(self, *exc: object) -> None:
        await self.commands.put({"type": "done"})
        await asyncio.sleep(0.2)
        if self.browser is not None:
            stop(self.browser, 10)
        if self.runner is not None:
            await self.runner.cleanup()


async def echo_once(page: EchoPage, variant: str, seconds: float) -> dict[str, Any]:
    """One call through the echo: clicks out on an OutboundTrack paced at real time, their echoes timed as they come
    back off the remote track; the round trips (ms), Chromium's stats and our receiver's buffer."""
    from unittest import mock

    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    import voiceclient.rtc.peer as peer_module
    from voiceclient.audio.sources import SilenceSource
    from voiceclient.audio.tracks import InboundReader, OutboundTrack
    from voiceclient.rtc.peer import Peer

    sent, received = Timeline(), Timeline()
    track = OutboundTrack(SilenceSource(), on_frame=sent.tap)
    remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    peer: Peer | None = None
    if variant == "aiortc":  # no voiceclient patches: aiortc's JitterBuffer(16, prefetch 4), its codec threads
        pc = RTCPeerConnection()
        pc.addTransceiver(track, direction="sendrecv")

        @pc.on("track")
        def on_track(t: MediaStreamTrack) -> None:
            if not remote.done():
                remote.set_result(t)

        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
    else:
        before = (  # the "before": the immediate buffer, for this receiver only, restored at once
            mock.patch.object(peer_module, "use_adaptive_jitter_buffer", jitter.use_immediate_jitter_buffer)
            if variant == "immediate"
            else contextlib.nullcontext()
        )
        with before:
            peer = Peer(track)  # the client's offerer: adaptive buffer, inline decoder and encoder
        pc = peer.pc
        offer = await peer.create_offer()
    reader: InboundReader | None = None
    try:
        reply = await page.command({"type": "offer", "sdp": local_candidates(offer, loopback=True)})
        assert reply["reused"] and reply["transceivers"] == 1, reply  # the echo rides the offer's transceiver
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=local_candidates(reply["sdp"], loopback=False), type="answer")
        )
        incoming = await asyncio.wait_for(peer.remote_track if peer else remote, 10)
        reader = InboundReader(incoming, [received.tap])
        reader.start()
        for _ in range(100):  # the echo of our silence is flowing
            if reader.frames >= 25:
                break
            await asyncio.sleep(0.1)
        pcm, _ = burst_train(seconds)
        track.source = BufferSource(pcm)
        await asyncio.sleep(seconds + 0.5)
        chromium = await page.command({"type": "stats"})
        buffer: Any = pc.getTransceivers()[0].receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        ours = f"{type(buffer).__name__}"
        if hasattr(buffer, "buffer"):  # the adaptive one
            st = buffer.buffer.stats
            ours += (
                f" (delay {buffer.buffer.delay_ms:.1f} ms, target {buffer.buffer.target_ms:.1f} ms; added "
                f"{st.added_ms:.0f} ms, removed {st.removed_ms:.0f} ms, concealed {st.concealed}, late {st.late})"
            )
        await page.command({"type": "close"})
    finally:
        if reader is not None:
            await reader.stop()
        if peer is not None:
            await peer.close()
        else:
            await pc.close()
        track.stop()
    return {"rtt": round_trips(sent, received), "clicks": len(sent.onsets()), "chromium": chromium, "ours": ours}


def chromium_buffer(stats: dict[str, Any]) -> str:
    """Chromium's NetEq on the way back, from its inbound-rtp: mean delay, target and minimum (ms per sample)."""
    inbound = stats.get("inbound", {})
    n = max(1, inbound.get("jitterBufferEmittedCount", 0))
    out = ", ".join(
        f"{name} {1000 * inbound.get(key, 0) / n:.1f} ms"
        for name, key in (
            ("delay", "jitterBufferDelay"),
            ("target", "jitterBufferTargetDelay"),
            ("minimum", "jitterBufferMinimumDelay"),
        )
    )
    concealed = 100 * inbound.get("concealedSamples", 0) / max(1, inbound.get("totalSamplesReceived", 0))
    rtt = stats.get("pair", {}).get("currentRoundTripTime")
    return f"{out}, concealed {concealed:.2f} %" + (f", ICE RTT {1000 * rtt:.1f} ms" if rtt is not None else "")


async def bench_echo(seconds: float, repeats: int) -> None:
    """Clicks through a Chromium echo, each variant's call in turn, the set `repeats` times; see the top."""
    import aioice.ice

    work = Path(tempfile.mkdtemp(prefix="voiceclient-bench-echo-"))
    host_addresses = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # our candidates: loopback only
    runs: dict[str, list[list[float]]] = {v: [] for v in ECHO_VARIANTS}
    try:
        async with EchoPage(work) as page:
            for repeat in range(repeats):
                for variant in ECHO_VARIANTS:
                    r = await echo_once(page, variant, seconds)
                    runs[variant].append(r["rtt"])
                    print(
                        f"  set {repeat + 1} {ECHO_VARIANTS[variant]}: {stats_p90(r['rtt'])}, "
                        f"{len(r['rtt'])}/{r['clicks']} clicks came back; ours: {r['ours']}; "
                        f"Chromium's jitter buffer: {chromium_buffer(r['chromium'])}",
                        flush=True,
                    )
    finally:
        aioice.ice.get_host_addresses = host_addresses
    print("\n### Click round trip through a Chromium echo\n")
    print(bench_header() + "\n")
    print(
        f"Clicks (1 kHz bursts with a hard onset every {BURST_EVERY * 1000:.0f} ms) sent for {seconds:g} s per call "
        "on an OutboundTrack paced at real time, echoed by headless Chromium (the received track sent back on the "
        "same transceiver: NetEq, Chromium's Opus encoder) on loopback; round trip = the echo's onset played "
        "(decoded frame's arrival plus its offset) less the click's captured. The variants one after another, "
        f"the set {repeats} times (set 1 / set 2 ...); ratio = median / stock aiortc's median of the same set.\n"
    )
    sep = " / "  # the sets side by side in one cell
    print("| receiver | median ms | p90 ms | ratio to stock aiortc |")
    print("|---|---|---|---|")
    for variant, label in ECHO_VARIANTS.items():
        med = [statistics.median(v) if v else float("nan") for v in runs[variant]]
        p90 = [percentile(v, 90) if v else float("nan") for v in runs[variant]]
        ratio = [m / statistics.median(s) if s else float("nan") for m, s in zip(med, runs["aiortc"], strict=True)]
        cells = [sep.join(f"{x:.{d}f}" for x in xs) for xs, d in ((med, 1), (p90, 1), (ratio, 2))]
        print(f"| {label} | " + " | ".join(cells) + " |")
    before = [statistics.median(v) for v in runs["immediate"] if v]
    now = [statistics.median(v) for v in runs["voiceclient"] if v]
    if before and now:
        print(
            "\nvoiceclient now / before (immediate jitter buffer), per set: "
            + ", ".join(f"{n / b:.3f}" for n, b in zip(now, before, strict=False))
            + " (the requirement: within 1.05)"
        )


def stats_p90(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):5.1f} ms, p90 {percentile(values, 90):5.1f} ms (n={len(values)})"


def bench_header() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    import aiortc

    chromium = (
        subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip() if CHROMIUM else "-"
    )
    return (
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, commit {commit.stdout.strip()}"
        f"{' (modified)' if dirty else ''}, Python {sys.version.split()[0]}, aiortc {aiortc.__version__}, {chromium}"
    )


async def bench_network(
    seconds: float, seeds: list[int], profiles: list[str], receivers: list[str], uplink: bool
) -> None:
    """The spoken WAV through `serve` (echo) under network profiles, each receiver's own call; see the top."""
    from voiceclient.testing import virtual_audio_devices

    work = Path(tempfile.mkdtemp(prefix="voiceclient-bench-network-"))
    wav_path = work / "speech.wav"
    wav, spans = network_speech(seconds, wav_path)
    supported = network_support()
    if not supported and any(p != "clean" for p in profiles):
        print(
            "network: RealtimeServer takes no `network` argument here (the network profiles are not on this "
            f"branch): skipping {', '.join(p for p in profiles if p != 'clean')}"
        )
        profiles = [p for p in profiles if p == "clean"]
    direction = "up" if uplink else "down"
    print(
        f"network: {len(spans)} sentences, {sum(e - s for s, e in spans) / RATE:.1f} s of speech in a "
        f"{wav.size / RATE:.1f} s call; {direction}link impaired; seeds {seeds}; work files in {work}"
    )
    columns = [c for r in receivers for c in (["voiceclient", "recording"] if r == "voiceclient" else [r])]
    if uplink:
        columns = [c for c in columns if c != "recording"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    devices = virtual_audio_devices() if "voiceclient" in receivers else contextlib.nullcontext()
    with devices:
        for profile in profiles:
            for seed in seeds:
                spec = None if profile == "clean" else f"{direction}={profile}:seed={seed}"
                cell = await network_cell(spec, wav, spans, wav_path, receivers, uplink, work)
                for column, s in cell.items():
                    results.setdefault(profile, {}).setdefault(column, []).append(s)
                    print(
                        f"  {profile} seed {seed} {NET_COLUMNS[column]}: PESQ {s['pesq']:.2f} (against what serve "
                        f"sent {s['pesq_down']:.2f}), delay "
                        f"{s['delay']:.0f} ms (drift {s['drift']:+.0f} ms), concealed/missing "
                        f"{s['concealed']:.1f} %, echoes {s['echoes']} (min corr {s['min_corr']:.2f})"
                        + (f"; {s['extra']}" if s["extra"] else "")
                    )
    what = "what the server received" if uplink else "what each receiver played"
    print(f"\n### Network: {direction}link impaired, {what}\n")
    print(bench_header() + "\n")
    print(
        f"{len(spans)} spoken sentences ({sum(e - s for s, e in spans) / RATE:.0f} s of speech) echoed by `serve`; "
        f"median of seeds {','.join(map(str, seeds))}. Cell: PESQ wideband against the WAV (in brackets: against "
        "what serve sent, the downlink alone), delay ms (end of a sentence sent to "
        "the start of its echo played; drift late - early), concealed or lost %.\n"
    )
    print("| profile | " + " | ".join(NET_COLUMNS[c] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))

    def med(rows: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in rows if not np.isnan(r[key])]
        return float(np.median(values)) if values else float("nan")

    for profile, by_column in results.items():
        cells = []
        for c in columns:
            rows = by_column.get(c, [])
            cell = f"{med(rows, 'pesq'):.2f}"
            if not np.isnan(med(rows, "pesq_down")):
                cell += f" ({med(rows, 'pesq_down'):.2f})"
            if not np.isnan(med(rows, "delay")):
                cell += f", {med(rows, 'delay'):.0f} ms ({med(rows, 'drift'):+.0f})"
            if not np.isnan(med(rows, "concealed")):
                cell += f", {med(rows, 'concealed'):.1f} %"
            cells.append(cell)
        print(f"| {profile} | " + " | ".join(cells) + " |")
    clean = results.get("clean", {})
    for c in ("voiceclient", "aiortc"):
        runs = [r["cpu"] for r in clean.get(c, []) if r.get("cpu")]
        if runs:
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            print(
                f"\nCPU of the {NET_COLUMNS[c]} process over a clean call: {cpu:.2f} s in {wall:.0f} s "
                f"({100 * cpu / wall:.1f} % of one core; both directions, the receive side and the WAV's encoding)"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what",
        nargs="*",
        default=["connect", "latency", "cpu"],
        choices=[
            "connect",
            "latency",
            "cpu",
            "agent",
            "talk",
            "aec",
            "recovery",
            "soak",
            "scale",
            "websocket",
            "fallback",
            "transports",
            "switches",
            "agents",
            "report",
            "network",
            "echo",
            "startup",
            "callcpu",
            "plugin",
            "rtppath",
        ],
    )
    parser.add_argument("--repeats", type=int, default=2, help="echo: times through the set of variants")
    parser.add_argument("--seeds", default="1", help="network: the network profiles' seeds (median of them)")
    parser.add_argument("--profiles", default="clean,wifi,bad-wifi,lossy", help="network: the profiles")
    parser.add_argument("--receivers", default="voiceclient,before,aiortc,chromium", help="network: who calls")
    parser.add_argument(
        "--uplink", action="store_true", help="network: impair client->server instead; score what serve received"
    )
    parser.add_argument("--calls", default="1,4,8,12,16", help="scale: the numbers of calls at once; plugin: of tests")
    parser.add_argument("--xdist", type=int, default=2, help="plugin: pytest-xdist workers (`pytest -n`)")
    parser.add_argument(
        "--sessions", default="1,8", help="websocket, transports: the numbers of sessions (calls) at once"
    )
    parser.add_argument(
        "--modes",
        default="processes,loop",
        help="scale: processes (one per call) and/or loop (every call in this process's event loop)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="scale, websocket: serve's worker processes, or several to compare (1,2); default 1",
    )
    parser.add_argument("--worker", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--minutes", type=float, default=30.0, help="soak, report: how long")
    parser.add_argument("--recycle-after", type=float, default=300.0, help="soak: seconds per connection")
    parser.add_argument(
        "--max-call-seconds",
        type=float,
        help="soak: the server's session cap instead of --recycle-after (the client recycles a minute before it)",
    )
    parser.add_argument("--turn-every", type=float, default=20.0, help="soak: seconds between turns")
    parser.add_argument("--media-timeout", type=float, default=2.0, help="recovery: the client's media timeout")
    parser.add_argument("--silence-ms", type=int, default=200, help="agent: the session's silence_duration_ms")
    parser.add_argument("--rounds", type=int, default=1, help="agent: times through the questions")
    parser.add_argument("--stock", action="store_true", help="latency with aiortc's stock jitter buffer")
    parser.add_argument("--seconds", type=float, help="how long (default 12 s; echo: 20 s per call)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="startup, callcpu: a checkout of the commit to compare with (`git worktree add --detach DIR COMMIT`), "
        "run side by side with this one",
    )
    parser.add_argument("--spy", type=Path, help="callcpu: py-spy records both processes into this folder")
    parser.add_argument("--transports", default="webrtc", help="callcpu: webrtc and/or websocket, comma-separated")
    parser.add_argument("--turns", type=int, default=10, help="agents: spoken turns per model")
    parser.add_argument(
        "--answer",
        choices=["real", "aiortc"],
        default="real",
        help="connect: the server's answer, ICE-lite as the real service (default) or aiortc's",
    )
    args = parser.parse_args()
    echo_seconds = args.seconds or 20.0
    call_seconds = args.seconds or 60.0
    if args.seconds is None:
        args.seconds = 12.0
    if args.worker:
        await scale_worker(*args.worker)
        return
    print(
        f"# voiceclient benchmarks, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}"
    )
    if "connect" in args.what:
        process, inproc = await bench_connect(args.runs, args.answer)
        print(f"connect ({args.answer} answer), process start -> session.updated: {stats(process)}")
        print(f"connect ({args.answer} answer), VoiceCall.connect() -> session.updated: {stats(inproc)}")
    if "latency" in args.what:
        label = "stock aiortc jitter buffer" if args.stock else "immediate jitter buffer"
        for name, values in (await bench_latency(args.seconds, args.stock)).items():
            print(f"one-way {name:27s} ({label}): {stats(values)}")
    if "aec" in args.what:
        erle, corr, aec_cpu = bench_aec()
        print(
            f"echo cancellation (livekit AEC3) on a synthetic laptop echo: {erle:.1f} dB echo reduction, "
            f"near-end correlation in double talk {corr:.2f}, {aec_cpu:.3f} ms CPU per 10 ms"
        )
    if "talk" in args.what:
        await bench_talk(args.seconds)
    if "agent" in args.what:
        await bench_agent(args.silence_ms, args.rounds)
    if "recovery" in args.what:
        await bench_recovery(args.runs, args.media_timeout)
    if "soak" in args.what:
        await bench_soak(
            args.minutes, None if args.max_call_seconds else args.recycle_after, args.turn_every, args.max_call_seconds
        )
    if "scale" in args.what:
        for workers in args.workers.split(","):
            await bench_scale([int(n) for n in args.calls.split(",")], args.modes.split(","), int(workers))
    if "fallback" in args.what:
        await bench_fallback(args.runs)
    if "switches" in args.what:
        await bench_switches(args.runs)
    if "transports" in args.what:
        await bench_transports(args.runs, args.seconds, [int(n) for n in args.sessions.split(",")])
    if "agents" in args.what:
        await bench_agents(args.runs, args.turns)
    if "report" in args.what:
        await bench_report(args.minutes)
    if "network" in args.what:
        await bench_network(
            args.seconds,
            [int(x) for x in args.seeds.split(",")],
            args.profiles.split(","),
            args.receivers.split(","),
            args.uplink,
        )
    if "echo" in args.what:
        await bench_echo(echo_seconds, args.repeats)
    if "startup" in args.what:
        await bench_startup(args.runs, Path(args.before).resolve() if args.before else None)
    if "websocket" in args.what:
        for workers in args.workers.split(","):
            await bench_websocket(args.runs, args.seconds, [int(n) for n in args.sessions.split(",")], int(workers))
    if "plugin" in args.what:
        bench_plugin([int(n) for n in args.calls.split(",")], args.xdist)
    if "callcpu" in args.what:
        await bench_call_cpus(
            call_seconds, args.runs, args.spy, Path(args.before).resolve() if args.before else None, args.transports
        )
    if "rtppath" in args.what:
        await bench_rtp_path()
    if "cpu" in args.what:
        client, server = await bench_cpu(args.seconds)
        print(
            f"CPU during a {args.seconds:g} s call with audio both ways: client {client:.1f} % of one core, "
            f"server {server:.1f} %"
        )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        asyncio.run(main())
