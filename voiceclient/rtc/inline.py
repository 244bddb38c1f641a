"""Audio through aiortc without the thread hops: Opus encoded and decoded on the event loop, the RTP audio level
computed by numpy.

Profiled (py-spy, one call with audio both ways), most of a call's CPU was not Opus but the way aiortc reaches it:
every sent frame goes to a thread pool (`run_in_executor`) and back, every received packet to a decoder thread and
back (`run_coroutine_threadsafe`), each a lock, a self-pipe write and a few futures; and the RTP audio-level header
extension is computed in pure Python (`compute_audio_level_dbov`, a `struct` loop over 1920 samples, the largest
single item). Opus itself takes 0.1 ms to encode and 0.03 ms to decode a 20 ms frame, less than the hops around it,
so here it runs inline: one call's audio costs about half the CPU, and many calls in one process no longer
contend for the pool.

The voice is coded as what it is, one channel, where aiortc codes two equal channels at 96 kbit/s in VoIP mode.
The SDP still says `opus/48000/2`, under which every Opus decoder takes mono packets (RFC 7587), and a mono packet
decodes to two full-level channels, so nothing is lost on the way. On a clean path it is Opus's low-delay (CELT)
mode at 64 kbit/s: 2.5 ms of look-ahead instead of VoIP's 6.5 ms, and the cheapest to encode (per 20 ms frame of
speech, libopus through ctypes: 63-75 us; VoIP 136 us, its SILK layer costs more than CELT). But CELT packets
cannot carry in-band FEC, so while the far end's RTCP reports loss (`voiceclient.rtc.uplink`) the encoder moves to
VoIP at the same 64 kbit/s with FEC (at 32, libopus coded no FEC for under 6 % loss), and back after 10 s
without loss, at quiet frames (`voiceclient.audio.switching`). Under 5 % random loss the far end then rebuilds
most lost frames: 20.7 dB SNR against the loss-free decode, where low-delay with concealment gets 9.6 dB.
Received audio is decoded to one channel directly.

Like the jitter buffer, this replaces private parts of aiortc's sender and receiver (aiortc's minor version is
pinned; `tests/test_inline.py` fails if they move). The audio level header carries the values aiortc computes.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import queue
import struct
import time
import types
from typing import Any

import av
import numpy as np
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender, random_sequence_number
from aiortc.rtp import AnyRtcpPacket, RtcpRrPacket, RtcpSrPacket
from aiortc.utils import random32, uint16_add, uint32_add

from voiceclient.audio.switching import SwitchingEncoder
from voiceclient.audio.tracks import frame_to_mono
from voiceclient.rtc.direct import DirectSend
from voiceclient.rtc.uplink import CLEAN, PROTECTED, Mode, UplinkPolicy

log = logging.getLogger(__name__)
_SENDER = "_RTCRtpSender__"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_MIN_LEVEL = -127
OPUS_RATE = 48_000
# Low-delay Opus is CELT alone, which needs about twice SILK's bits for speech: measured on spoken English through
# libopus, PESQ 3.1 at 32 kbit/s, 3.8 at 48, 4.1 at 64. The clean path sends 64 kbit/s (74 us a frame against 69 at
# 32: the bits cost bandwidth, not CPU). The FEC mode (VoIP: SILK/hybrid) sends as many: its FEC is carried inside
# the bitrate, and at 32 kbit/s libopus 1.6 coded none below 6 % expected loss (the stream "protected" for 2-3 %
# loss carried no FEC, at a lower quality); `scripts/jitter_replay.py` scores the protected downlink 3.24 -> 3.83
# PESQ on wifi and 2.77 -> 3.50 on bad-wifi (seeds 1-8) from 32 to 64 kbit/s, FEC in every voiced packet.
OPUS_BITRATE = 64_000
FEC_BITRATE = 64_000
_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
_RTP_HEADER = struct.Struct("!BBHII")
_NTP_DELTA = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970


class MonoOpusEncoder:
    """Opus for speech: one channel, low-delay (CELT) on a clean path, VoIP with in-band FEC while the far end
    reports loss (`policy`, fed by `watch_loss`). Takes 48 kHz s16 frames, mono (ours) or stereo (mixed down);
    returns aiortc's `(payloads, rtp_timestamp)`, the timestamp counted in samples from the first packet, continuous
    across switches (`voiceclient.audio.switching`)."""

    def __init__(
        self, bitrate: int = OPUS_BITRATE, policy: UplinkPolicy | None = None, fec_bitrate: int = FEC_BITRATE
    ) -> None:
        self.policy = policy or UplinkPolicy()
        self.stream = SwitchingEncoder(bitrate, fec_bitrate)
        self._logged_mode = CLEAN

    @property
    def mode(self) -> Mode:
        """What is being sent now (the policy may already want the other)."""
        return PROTECTED if self.stream.protected else CLEAN

    @property
    def switches(self) -> int:
        return self.stream.switches

    def encode(self, frame: av.AudioFrame) -> tuple[list[bytes], int | None]:
        if frame.format.name != "s16" or frame.sample_rate != OPUS_RATE or frame.layout.name not in ("mono", "stereo"):
            raise ValueError(
                f"the Opus encoder takes 48 kHz s16 mono or stereo, not {frame.format.name} "
                f"{frame.layout.name} at {frame.sample_rate} Hz"
            )
        if frame.layout.name == "stereo":  # never from OutboundTrack, which sends mono
            pcm = frame_to_mono(frame)
        else:
            pcm = np.frombuffer(memoryview(frame.planes[0]), np.int16, count=frame.samples)
        policy = self.policy
        packets, timestamp = self.stream.encode(pcm, policy.mode == PROTECTED, policy.loss_percent)
        if self.mode != self._logged_mode:
            self._logged_mode = self.mode
            log.info(
                "uplink now sends %s (switch %d; %d samples of delay dropped at quiet moments so far)",
                "Opus VoIP with in-band FEC" if self.mode == PROTECTED else "Opus low-delay",
                self.switches,
                self.stream.dropped,
            )
        if not packets:
            return [], None
        return packets, timestamp


class MonoOpusDecoder:
    """Opus packets (mono or stereo coded) to 48 kHz mono s16 frames."""

    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libopus", "r")
        self.codec.format = "s16"
        self.codec.layout = "mono"
        self.codec.sample_rate = OPUS_RATE

    def decode(self, encoded: JitterFrame) -> list[av.AudioFrame]:
        packet = av.Packet(encoded.data)
        packet.pts = encoded.timestamp
        packet.time_base = _TIME_BASE
        return [f for f in self.codec.decode(packet) if isinstance(f, av.AudioFrame)]


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """RFC 6465 audio level, exactly as aiortc's `rtp.compute_audio_level_dbov` (which sums the squares of every
    sample of the packed plane and divides by the samples of one channel), in numpy."""
    values = frame.samples * len(frame.layout.channels)
    pcm = np.frombuffer(memoryview(frame.planes[0]), np.int16, count=values).astype(np.float64)  # exact: fits in 2**53
    energy = float(np.dot(pcm, pcm))
    if energy <= 0:
        return _MIN_LEVEL
    rms = math.sqrt(energy / (frame.samples * 32767 * 32767))
    return round(min(max(20 * math.log10(rms), _MIN_LEVEL), 0))


async def _next_encoded_frame(self: RTCRtpSender, codec: Any) -> RTCEncodedFrame | None:
    """`RTCRtpSender._next_encoded_frame` for audio: mono Opus, encoded on the loop."""
    data = await getattr(self, _SENDER + "track").recv()
    if not self._enabled:
        return None
    if not isinstance(data, av.AudioFrame):
        raise TypeError(f"an audio sender was given {type(data).__name__}")
    if codec.name.lower() != "opus":
        raise ValueError(f"voiceclient sends Opus audio, and {codec.name} was negotiated")
    encoder = getattr(self, _SENDER + "encoder")
    if not isinstance(encoder, MonoOpusEncoder):  # aiortc drops its encoder when the sender stops
        encoder = MonoOpusEncoder()
        setattr(self, _SENDER + "encoder", encoder)
    payloads, timestamp = encoder.encode(data)
    if not payloads or timestamp is None:
        return None
    return RTCEncodedFrame(payloads, timestamp, audio_level_dbov(data))


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp to the microsecond, as aiortc's `clock.current_ntp_time` gives it
    (which goes through `datetime`: 5 us a call, twice a packet)."""
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return ((seconds + _NTP_DELTA) << 32) | (micros << 32) // 1_000_000


class RtpWriter:
    """Serializes a sender's audio RTP packets: byte for byte what aiortc's `RtpPacket.serialize` makes of the
    packets its `_run_rtp` builds (header, then the one-byte header extensions mid, abs-send-time and audio level,
    those negotiated, padded to 32 bits), with one `struct` call and a join instead of a packet object, a
    dataclass of extensions and a header extension map walked per packet. `ids`: the extension ids (0: not
    negotiated). `usable` is False where the one-byte form cannot carry them (an id over 14, a mid over 16 bytes):
    aiortc's own path then."""

    def __init__(self, payload_type: int, ssrc: int, mid: str | None, mid_id: int, abs_id: int, level_id: int) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        mid_bytes = mid.encode() if mid is not None and mid_id else b""
        self.usable = all(0 <= i <= 14 for i in (mid_id, abs_id, level_id)) and len(mid_bytes) <= 16
        self._mid = bytes([(mid_id << 4) | (len(mid_bytes) - 1)]) + mid_bytes if mid_bytes else b""
        self._abs = (abs_id << 4) | 2 if abs_id else 0
        self._level = (level_id << 4) if level_id else 0

    def packet(
        self, sequence_number: int, timestamp: int, marker: bool, payload: bytes, ntp: int, level: int | None
    ) -> bytes:
        """One packet's bytes; `level`: the audio level in -dBov (aiortc's `RTCEncodedFrame.audio_level`), or None."""
        parts = [self._mid]
        if self._abs:
            parts.append(((self._abs << 24) | ((ntp >> 14) & 0xFFFFFF)).to_bytes(4, "big"))
        if self._level and level is not None:
            parts.append(bytes((self._level, -level & 0x7F)))
        extensions = b"".join(parts)
        if extensions:
            extensions += bytes(-len(extensions) % 4)
            header = _RTP_HEADER.pack(0x90, (marker << 7) | self.payload_type, sequence_number, timestamp, self.ssrc)
            return b"".join((header, (0xBEDE0000 | len(extensions) >> 2).to_bytes(4, "big"), extensions, payload))
        header = _RTP_HEADER.pack(0x80, (marker << 7) | self.payload_type, sequence_number, timestamp, self.ssrc)
        return header + payload


def rtp_writer(sender: RTCRtpSender, codec: Any) -> RtpWriter:
    """The writer for this started sender's negotiated extensions (`send()` has configured them)."""
    ids = getattr(sender, _SENDER + "rtp_header_extensions_map")._HeaderExtensionsMap__ids
    return RtpWriter(
        codec.payloadType,
        sender._ssrc,
        getattr(sender, _SENDER + "mid"),
        ids.mid or 0,
        ids.abs_send_time or 0,
        ids.audio_level or 0,
    )


async def _run_rtp(self: RTCRtpSender, codec: Any) -> None:
    """`RTCRtpSender._run_rtp` for Opus without NACK (what audio negotiates): the same packets, sequence and
    timestamps, the same counters for the RTCP sender reports, with the packet written by `RtpWriter` and sent by
    `DirectSend` (`voiceclient.rtc.direct`). Keeps no history for retransmission (nothing asks for it without
    NACK); otherwise, aiortc's own loop."""
    writer = rtp_writer(self, codec)
    if not writer.usable or any(fb.type == "nack" for fb in codec.rtcpFeedback):
        await RTCRtpSender._run_rtp(self, codec)
        return
    getattr(self, _SENDER + "rtp_started").set()
    direct = DirectSend(self.transport)
    sequence_number = random_sequence_number()
    timestamp_origin = random32()
    try:
        while True:
            if not getattr(self, _SENDER + "track"):
                await asyncio.sleep(0.02)
                continue
            enc_frame = await self._next_encoded_frame(codec)
            if enc_frame is None:
                continue
            timestamp = uint32_add(timestamp_origin, enc_frame.timestamp)
            last = len(enc_frame.payloads) - 1
            for i, payload in enumerate(enc_frame.payloads):
                ntp = ntp_now()
                data = writer.packet(sequence_number, timestamp, i == last, payload, ntp, enc_frame.audio_level)
                if not direct(data):  # (not connected, or an emulated network: aiortc's coroutines)
                    await self.transport._send_rtp(data)
                setattr(self, _SENDER + "ntp_timestamp", ntp)
                setattr(self, _SENDER + "rtp_timestamp", timestamp)
                setattr(self, _SENDER + "octet_count", getattr(self, _SENDER + "octet_count") + len(payload))
                setattr(self, _SENDER + "packet_count", getattr(self, _SENDER + "packet_count") + 1)
                sequence_number = uint16_add(sequence_number, 1)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:  # as aiortc: the loop must end with `rtp_exited` set, or the sender's stop() hangs
        log.exception("the audio RTP sender failed")
    track = getattr(self, _SENDER + "track")
    if track:
        track.stop()
        setattr(self, _SENDER + "track", None)
    setattr(self, _SENDER + "encoder", None)
    getattr(self, _SENDER + "rtp_exited").set()


def watch_loss(sender: RTCRtpSender, policy: UplinkPolicy) -> None:
    """Feed `policy` the far end's report blocks about this sender's stream (RTCP RR and SR), then let aiortc handle
    the packet as before (its round-trip time and `remote-inbound-rtp` stats)."""
    handle = sender._handle_rtcp_packet
    loop = asyncio.get_running_loop()

    async def _handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    policy.report(loop.time(), report.fraction_lost / 256, report.packets_lost)
        await handle(packet)

    sender._handle_rtcp_packet = _handle_rtcp_packet  # type: ignore[method-assign]


def use_inline_encoder(sender: RTCRtpSender) -> MonoOpusEncoder:
    """Encode this audio sender's frames on the event loop (before media flows), with FEC while the far end reports
    loss. Both sides of a call do this (`Peer`): the client's uplink, and the embedded server's downlink when a
    client reports loss, as the real service's answer (`useinbandfec=1`) suggests it does. Returns the encoder
    (its `mode`, `switches` and `policy` say what the uplink is doing)."""
    for name in (
        "track",
        "encoder",
        "rtp_started",
        "rtp_exited",
        "mid",
        "ntp_timestamp",
        "rtp_timestamp",
        "octet_count",
        "packet_count",
        "rtp_header_extensions_map",
    ):
        if not hasattr(sender, _SENDER + name):
            raise RuntimeError(
                f"aiortc's RTCRtpSender no longer has {_SENDER + name}; voiceclient.rtc.inline "
                "needs updating for this aiortc version"
            )
    encoder = MonoOpusEncoder()
    setattr(sender, _SENDER + "encoder", encoder)
    watch_loss(sender, encoder.policy)
    sender._next_encoded_frame = types.MethodType(_next_encoded_frame, sender)  # type: ignore[method-assign]
    sender._run_rtp = types.MethodType(_run_rtp, sender)  # type: ignore[method-assign]
    return encoder


class InlineDecoderQueue:
    """Stands where aiortc's receiver keeps the queue to its decoder thread: `put((codec, frame))` decodes at once
    and hands the frames to the remote track; `put(None)` (the receiver stopping) goes on to the thread, which then
    ends the track as before. The thread waits on `get()` and does nothing else."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._thread_queue: queue.Queue[Any] = queue.Queue()
        self._decoder: Any = None
        self._codec_name: str | None = None
        self.errors = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._thread_queue.get(*args, **kwargs)

    def put(self, task: Any, *args: Any, **kwargs: Any) -> None:
        if task is None:
            self._thread_queue.put(None)
            return
        codec, encoded = task
        if codec.name != self._codec_name:
            self._decoder = MonoOpusDecoder() if codec.name.lower() == "opus" else get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded)
        except av.FFmpegError as exc:  # keep the decoder's state, as aiortc does; the next packet decodes
            self.errors += 1
            log.warning("failed to decode a %s frame: %s", codec.name, exc)
            return
        track = self._receiver._track
        if track is None:  # aiortc makes the track before any packet can arrive; kept honest
            return
        track_queue: asyncio.Queue[Any] = track._queue
        for frame in frames:
            track_queue.put_nowait(frame)


def use_inline_decoder(receiver: RTCRtpReceiver) -> InlineDecoderQueue:
    """Decode this audio receiver's packets on the event loop (before media flows)."""
    if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
        raise RuntimeError(
            f"aiortc's RTCRtpReceiver no longer has {_DECODER_QUEUE}; voiceclient.rtc.inline needs "
            "updating for this aiortc version"
        )
    inline = InlineDecoderQueue(receiver)
    setattr(receiver, _DECODER_QUEUE, inline)
    return inline
