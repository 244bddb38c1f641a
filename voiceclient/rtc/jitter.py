"""A jitter buffer for Opus audio that hands each in-order packet to the decoder at once.

aiortc's stock audio buffer (`JitterBuffer(capacity=16, prefetch=4)`) holds 4 packets (+80 ms always) and, after
one lost packet, stays ~300 ms behind for the rest of the call. On loopback and LAN paths packets arrive in
order, and Opus packets are whole frames, so the right buffer for a conversation is none: emit every packet that
is newer than the last one, drop duplicates and late ones. This replaces a private attribute of
`RTCRtpReceiver`; aiortc's minor version is pinned and `tests/test_jitter.py` fails if the internal moves.
"""

from __future__ import annotations

from typing import Any

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver

_ATTR = "_RTCRtpReceiver__jitter_buffer"


class ImmediateJitterBuffer:
    capacity = 1

    def __init__(self) -> None:
        self._last: int | None = None
        self.dropped = 0

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None:
            ahead = (seq - self._last) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:  # duplicate, or older than what was already played
                self.dropped += 1
                return False, None
        self._last = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


def use_immediate_jitter_buffer(receiver: RTCRtpReceiver) -> ImmediateJitterBuffer:
    """Install the immediate buffer on an audio receiver (before media flows)."""
    if not hasattr(receiver, _ATTR):
        raise RuntimeError(
            "aiortc's RTCRtpReceiver no longer has a jitter buffer attribute; "
            "voiceclient.rtc.jitter needs updating for this aiortc version"
        )
    buffer = ImmediateJitterBuffer()
    setattr(receiver, _ATTR, buffer)
    return buffer
