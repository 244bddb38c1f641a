"""Audio through aiortc without the thread hops: Opus encoded and decoded on the event loop, the RTP audio level
computed by numpy.

Profiled (py-spy, one call with audio both ways), most of a call's CPU was not Opus but the way aiortc reaches it:
every sent frame goes to a thread pool (`run_in_executor`) and back, every received packet to a decoder thread and
back (`run_coroutine_threadsafe`), each a lock, a self-pipe write and a few futures; and the RTP audio-level header
extension is computed in pure Python (`compute_audio_level_dbov`, a `struct` loop over 1920 samples, the largest
single item). Opus itself takes 0.1 ms to encode and 0.03 ms to decode a 20 ms frame, less than the hops around it,
so here it runs inline: one call's audio costs half the CPU, and many calls in one process no longer contend for
the pool.

Like the jitter buffer, this replaces private parts of aiortc's sender and receiver (aiortc's minor version is
pinned; `tests/test_inline.py` fails if they move). The wire is unchanged: the same Opus packets, the same audio
level values as aiortc computes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import types
from typing import Any

import av
import numpy as np
from aiortc.codecs import get_decoder, get_encoder
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender

log = logging.getLogger(__name__)
_SENDER = "_RTCRtpSender__"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_MIN_LEVEL = -127


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """RFC 6465 audio level, exactly as aiortc's `rtp.compute_audio_level_dbov` (which sums the squares of every
    sample of the packed plane and divides by the samples of one channel), in numpy."""
    pcm = frame.to_ndarray().reshape(-1).astype(np.float64)  # exact: 1920 squares of int16 fit in 2**53
    energy = float(np.dot(pcm, pcm))
    if energy <= 0:
        return _MIN_LEVEL
    rms = math.sqrt(energy / (frame.samples * 32767 * 32767))
    return round(min(max(20 * math.log10(rms), _MIN_LEVEL), 0))


async def _next_encoded_frame(self: RTCRtpSender, codec: Any) -> RTCEncodedFrame | None:
    """`RTCRtpSender._next_encoded_frame` for audio, encoding on the loop."""
    data = await getattr(self, _SENDER + "track").recv()
    if not self._enabled:
        return None
    if not isinstance(data, av.AudioFrame):
        raise TypeError(f"an audio sender was given {type(data).__name__}")
    encoder = getattr(self, _SENDER + "encoder")
    if encoder is None:
        encoder = get_encoder(codec)
        setattr(self, _SENDER + "encoder", encoder)
    setattr(self, _SENDER + "force_keyframe", False)  # meaningless for audio; kept as aiortc keeps it
    payloads, timestamp = encoder.encode(data, False)
    if not payloads:
        return None
    return RTCEncodedFrame(payloads, timestamp, audio_level_dbov(data))


def use_inline_encoder(sender: RTCRtpSender) -> None:
    """Encode this audio sender's frames on the event loop (before media flows)."""
    for name in ("track", "encoder", "force_keyframe"):
        if not hasattr(sender, _SENDER + name):
            raise RuntimeError(f"aiortc's RTCRtpSender no longer has {_SENDER + name}; voiceclient.rtc.inline "
                               "needs updating for this aiortc version")
    sender._next_encoded_frame = types.MethodType(_next_encoded_frame, sender)  # type: ignore[method-assign]


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
            self._decoder, self._codec_name = get_decoder(codec), codec.name
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
        raise RuntimeError(f"aiortc's RTCRtpReceiver no longer has {_DECODER_QUEUE}; voiceclient.rtc.inline needs "
                           "updating for this aiortc version")
    inline = InlineDecoderQueue(receiver)
    setattr(receiver, _DECODER_QUEUE, inline)
    return inline
