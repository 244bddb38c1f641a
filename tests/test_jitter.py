"""The immediate jitter buffer, and a guard that fails when aiortc moves the internal it replaces."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from voiceclient.rtc.jitter import ImmediateJitterBuffer, use_immediate_jitter_buffer

pytestmark = pytest.mark.timeout(10)


def packet(seq: int, ts: int) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=ts)
    p._data = bytes([seq & 0xFF])  # type: ignore[attr-defined]
    return p


def test_every_newer_packet_is_a_frame_at_once_duplicates_and_late_ones_dropped() -> None:
    jb = ImmediateJitterBuffer()
    out = []
    for seq in [65534, 65535, 0, 2, 1, 2, 3]:  # wraps, loses nothing but reorders 1, duplicates 2
        _, frame = jb.add(packet(seq, seq * 960))
        out.append(None if frame is None else frame.timestamp // 960)
    assert out == [65534, 65535, 0, 2, None, None, 3]
    assert jb.dropped == 2


async def test_aiortc_still_has_the_attribute_we_replace() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    stock = transceiver.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert type(stock).__name__ == "JitterBuffer" and stock._prefetch == 4  # the +80 ms we remove
    installed = use_immediate_jitter_buffer(transceiver.receiver)
    assert transceiver.receiver._RTCRtpReceiver__jitter_buffer is installed  # type: ignore[attr-defined]
    await pc.close()
