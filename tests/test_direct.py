"""Audio RTP straight between the socket and our layers (voiceclient.rtc.direct): the same statistics, sources,
counters and jitter-buffer pushes as aiortc's own receive path for the same SRTP packets, a real call that takes
the direct ways both ways and hears the tones it was sent, and guards that fail when aiortc moves."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

import numpy as np
import pylibsrtp
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver, rtcrtpreceiver
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

from voiceclient.audio.format import dominant_frequency, tone
from voiceclient.audio.sources import BufferSource
from voiceclient.audio.tracks import OutboundTrack
from voiceclient.rtc.direct import DirectReceive, DirectSend, check_internals, use_direct_receive
from voiceclient.rtc.inline import RtpWriter, ntp_now
from voiceclient.rtc.jitter import use_adaptive_jitter_buffer
from voiceclient.rtc.peer import Peer

pytestmark = pytest.mark.timeout(30)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    RTCRtpHeaderExtensionParameters(id=3, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
]
KEY = bytes(range(30))
SSRC = 0x1234ABCD


class FakeTime:
    """`time` for aiortc's receiver statistics: each read 20 ms and a bit later, the same sequence for both paths."""

    def __init__(self) -> None:
        self.reads = itertools.count()

    def time(self) -> float:
        n = next(self.reads)
        return 1_000_000 + n * 0.02 + (n % 7) * 0.0013


def rx_session() -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))


def packets() -> list[bytes]:
    """SRTP as a call sends it (our RtpWriter's extensions), with what a network and a bad peer add: reordering,
    a duplicate, the sequence wrapping, an empty payload, an unknown payload type, PCMU (another codec), a broken
    tag, padding, a truncated extension, a mid that is not UTF-8, a second source, too short a datagram."""
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    writer = RtpWriter(111, SSRC, "0", 1, 2, 3)
    rng = np.random.default_rng(3)
    plain: list[bytes] = []
    seqs = [65530 + i for i in range(6)] + list(range(11))
    for seq in seqs:
        ts = (seq if seq > 1000 else seq + 65536) * 960 & 0xFFFFFFFF
        payload = rng.integers(0, 256, 60 + seq % 13, dtype=np.uint8).tobytes()
        plain.append(writer.packet(seq & 0xFFFF, ts, False, payload, ntp_now(), -40))
    plain.append(writer.packet(11, 11 * 960, False, b"", ntp_now(), None))  # empty: counted, not pushed
    plain.append(RtpWriter(96, SSRC, "0", 1, 2, 3).packet(12, 12 * 960, False, b"\xf8" * 40, ntp_now(), -30))
    plain.append(RtpWriter(0, SSRC, None, 0, 0, 0).packet(13, 13 * 960, False, b"\xff" * 160, ntp_now(), None))
    padded = bytearray(writer.packet(14, 14 * 960, False, b"\xfc" * 30 + b"\x00\x00\x03", ntp_now(), -20))
    padded[0] |= 0x20
    plain.append(bytes(padded))
    truncated = bytearray(writer.packet(15, 15 * 960, False, b"\xfc" * 30, ntp_now(), -20))
    truncated[16] = (1 << 4) | 15  # the mid says 16 bytes in a 12-byte block
    plain.append(bytes(truncated))
    not_utf8 = bytearray(writer.packet(16, 16 * 960, False, b"\xfc" * 30, ntp_now(), -20))
    not_utf8[17] = 0xFF  # the mid's one byte
    plain.append(bytes(not_utf8))
    plain.append(RtpWriter(111, SSRC + 1, "0", 1, 2, 3).packet(500, 7, True, b"\xfc" * 20, ntp_now(), -50))
    protected = [tx.protect(p) for p in plain]  # (sent in order: SRTP refuses to protect a sequence number twice)
    protected[8], protected[9] = protected[9], protected[8]  # 2 before 1 on the way
    protected.insert(10, protected[10])  # 3 twice: SRTP's replay check drops the second
    broken = bytearray(tx.protect(writer.packet(17, 17 * 960, False, b"\xfc" * 30, ntp_now(), -20)))
    broken[-1] ^= 1
    protected.append(bytes(broken))
    protected += [
        tx.protect(writer.packet(18 + i, (18 + i) * 960, False, b"\xfc" * 30, ntp_now(), -20)) for i in range(3)
    ]
    protected.append(b"\x80\x6f\x00")
    return protected


async def receiving_side() -> tuple[RTCDtlsTransport, RTCRtpReceiver, list[tuple[int, int, bytes]]]:
    """A connected DTLS transport (its SRTP keyed by hand) with an Opus receiver whose jitter buffer records what
    it is pushed."""
    ice = RTCIceTransport(RTCIceGatherer())
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    dtls._rx_srtp = rx_session()
    dtls._state = State.CONNECTED
    dtls._RTCDtlsTransport__handshake_done = True  # type: ignore[attr-defined]
    receiver = RTCRtpReceiver("audio", dtls)
    for codec in (OPUS, PCMU):
        receiver._RTCRtpReceiver__codecs[codec.payloadType] = codec  # type: ignore[attr-defined]
    dtls._register_rtp_receiver(receiver, RTCRtpReceiveParameters(codecs=[OPUS, PCMU], headerExtensions=EXTENSIONS))
    buffer = use_adaptive_jitter_buffer(receiver)
    pushed: list[tuple[int, int, bytes]] = []
    buffer.push = lambda seq, ts, payload, now=None: pushed.append((seq, ts, payload))  # type: ignore[method-assign]
    return dtls, receiver, pushed


async def aiortc_handles(dtls: RTCDtlsTransport, data: bytes) -> None:
    """aiortc's own receive step for one datagram (`_recv_next`), the datagram read from a stand-in `_recv`."""
    ice = dtls.transport
    real = ice._recv

    async def recv() -> bytes:
        return data

    ice._recv = recv
    try:
        await dtls._recv_next()
    finally:
        ice._recv = real


def state(dtls: RTCDtlsTransport, receiver: RTCRtpReceiver) -> dict[str, Any]:
    """What the receive path leaves behind: the RTCP receiver report (its bytes, as `_run_rtcp` builds them), the
    sources, the router's SSRCs, the transport's counters."""
    streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    blocks = [
        RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=s.fraction_lost,
            packets_lost=s.packets_lost,
            highest_sequence=s.max_seq,
            jitter=s.jitter,
            lsr=0,
            dlsr=0,
        )
        for ssrc, s in streams.items()
    ]
    reports = (
        bytes(RtcpRrPacket(ssrc=1, reports=blocks)),
        [(s.base_seq, s.cycles, s.packets_received) for s in streams.values()],
    )
    return {
        "reports": reports,
        "sources": sorted(receiver._RTCRtpReceiver__active_ssrc),  # type: ignore[attr-defined]
        "routes": dict(dtls._rtp_router.ssrc_table),
        "rx": (dtls._RTCDtlsTransport__rx_bytes, dtls._RTCDtlsTransport__rx_packets),  # type: ignore[attr-defined]
    }


async def test_direct_receive_does_what_aiortcs_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    datagrams = packets()
    monkeypatch.setattr(rtcrtpreceiver, "time", FakeTime())
    stock_dtls, stock_receiver, stock_pushed = await receiving_side()
    for data in datagrams:
        await aiortc_handles(stock_dtls, data)
    stock = state(stock_dtls, stock_receiver)

    monkeypatch.setattr(rtcrtpreceiver, "time", FakeTime())
    dtls, receiver, pushed = await receiving_side()
    direct = use_direct_receive(dtls)
    assert isinstance(direct, DirectReceive)
    queue = dtls.transport._connection._queue
    for data in datagrams:
        direct(data, 1)
        while not queue.empty():  # what it passed on, aiortc's task would read next
            passed, _ = queue.get_nowait()
            await aiortc_handles(dtls, passed)
    ours = state(dtls, receiver)

    # Every Opus packet with a payload, in arrival order, the duplicate and the broken tag dropped by SRTP.
    assert pushed == stock_pushed
    assert [p[0] for p in pushed] == [*range(65530, 65536), 0, 1, 3, 2, *range(4, 11), 14, 500, 18, 19, 20]
    assert ours["reports"] == stock["reports"]
    assert ours["sources"] == stock["sources"] == [SSRC, SSRC + 1]
    assert ours["routes"].keys() == stock["routes"].keys()
    assert ours["rx"] == stock["rx"]
    # The ordinary packets came the direct way (21 pushed, 1 empty); the odd ones did not: an unknown payload
    # type, PCMU, padding, a truncated extension, a mid that is not UTF-8, too short a datagram.
    assert direct.taken == 22 and direct.passed == 6
    # Closed, or behind an emulated network (which reads the connection itself): aiortc's path, through the queue.
    dtls._state = State.CLOSED
    direct(datagrams[-2], 1)
    dtls._state = State.CONNECTED
    real_recv = dtls.transport._recv
    dtls.transport._recv = lambda: real_recv()
    direct(datagrams[-3], 1)
    assert direct.passed == 8 and queue.qsize() == 2
    for r in (receiver, stock_receiver):
        r._RTCRtpReceiver__jitter_buffer.buffer.close()  # type: ignore[attr-defined]


def test_direct_send_is_declined_where_it_cannot_send() -> None:
    ice = RTCIceTransport(RTCIceGatherer())
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    assert DirectSend(dtls)(b"\x80" * 20) is False  # not connected: aiortc's `_send_rtp` raises
    dtls._state = State.CONNECTED
    assert DirectSend(dtls)(b"\x80" * 20) is False  # no nominated pair


def test_aiortc_still_has_the_internals_we_read() -> None:
    ice = RTCIceTransport(RTCIceGatherer())
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    check_internals(dtls)
    receiver = RTCRtpReceiver("audio", dtls)
    for name in ("codecs", "active_ssrc", "remote_streams", "nack_generator", "remote_bitrate_estimator"):
        assert hasattr(receiver, "_RTCRtpReceiver__" + name), name
    assert receiver._RTCRtpReceiver__nack_generator is None  # type: ignore[attr-defined]
    assert struct.calcsize("!BBHII") == 12
    # `StreamStatistics.add` reads two attributes of the packet (the rest of this module hands it only those).
    names = rtcrtpreceiver.StreamStatistics.add.__code__.co_names
    assert {n for n in names if n in ("sequence_number", "timestamp", "payload", "ssrc", "payload_type")} == {
        "sequence_number",
        "timestamp",
    }


@pytest.mark.webrtc
@pytest.mark.timeout(40)
async def test_a_call_sends_and_receives_the_direct_way_and_hears_its_tones() -> None:
    client_in: list[np.ndarray] = []
    server_in: list[np.ndarray] = []
    client = Peer(OutboundTrack(BufferSource(tone(440, 4.0, 48000))))
    server = Peer(OutboundTrack(BufferSource(tone(610, 4.0, 48000))), role="answerer")
    through_aiortc = {"client": 0, "server": 0}  # RTP packets sent through aiortc's `_send_rtp`
    parsed_by_aiortc = {"client": 0, "server": 0}  # and received through its `_handle_rtp_data`
    try:
        await client.accept_answer(await server.answer(await client.create_offer()))
        await client.wait_open(10)
        for name, peer in (("client", client), ("server", server)):
            dtls = next(t.sender.transport for t in peer.pc.getTransceivers() if t.kind == "audio")
            send_rtp = dtls._send_rtp

            async def counted(data: bytes, name: str = name, send_rtp: Any = send_rtp) -> None:
                if not 192 <= data[1] <= 208:
                    through_aiortc[name] += 1
                await send_rtp(data)

            dtls._send_rtp = counted  # type: ignore[method-assign]
            handle_rtp_data = dtls._handle_rtp_data

            async def parsed(
                data: bytes, arrival_time_ms: int, name: str = name, handle: Any = handle_rtp_data
            ) -> None:
                parsed_by_aiortc[name] += 1
                await handle(data, arrival_time_ms)

            dtls._handle_rtp_data = parsed  # type: ignore[method-assign]

        async def collect(peer: Peer, into: list[np.ndarray]) -> None:
            track = await peer.remote_track
            while sum(len(x) for x in into) < 48000 * 3:
                frame = await track.recv()
                into.append(frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)])

        await asyncio.wait_for(asyncio.gather(collect(client, client_in), collect(server, server_in)), 20)
        for peer in (client, server):
            connection = next(t.receiver.transport for t in peer.pc.getTransceivers()).transport._connection
            assert isinstance(connection.data_received, DirectReceive)
            assert connection.data_received.taken >= 100  # (passed on: DTLS, SCTP, RTCP)
        assert through_aiortc == {"client": 0, "server": 0}  # every RTP packet went by DirectSend
        assert parsed_by_aiortc == {"client": 0, "server": 0}  # and came by DirectReceive
        heard_by_server = np.concatenate(server_in)[48000:]
        heard_by_client = np.concatenate(client_in)[48000:]
        assert dominant_frequency(heard_by_server[:48000], 48000) == pytest.approx(440, abs=5)
        assert dominant_frequency(heard_by_client[:48000], 48000) == pytest.approx(610, abs=5)
    finally:
        await client.close()
        await server.close()
