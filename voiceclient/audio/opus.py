"""libopus itself, for what PyAV's codec wrapper cannot do: packet loss concealment, in-band FEC, and encoder
settings that change during a call.

FFmpeg's libopus wrapper decodes only whole packets (no `NULL` packet for concealment, no `decode_fec`) and fixes
the encoder's options when it opens. A receiver that meets loss needs both: libopus conceals a missing frame from
the decoder's state (pitch-continued, fading), and recovers it outright from the low-bitrate copy (LBRR) that the
next packet carries when its sender enabled in-band FEC. No maintained Python binding exists (the `opuslib` family
is a thin ctypes layer over a system library, last released 2018 and forked since), so this is ours: the few calls
we need, through ctypes, on the libopus that PyAV's wheel already carries (a dependency we have anyway; 1.5 here,
newer than most systems'), else the system's. Mono 48 kHz int16 throughout, as the rest of voiceclient.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from collections.abc import Iterator
from functools import cache

import numpy as np

from voiceclient.errors import VoiceClientError

RATE = 48_000
FRAME = RATE // 50  # 20 ms, what WebRTC peers send
MAX_FRAME = RATE * 120 // 1000  # the longest Opus packet
MAX_PACKET = 1500

VOIP, AUDIO, LOWDELAY = 2048, 2049, 2051  # OPUS_APPLICATION_*
_SET_BITRATE, _SET_COMPLEXITY, _SET_INBAND_FEC, _SET_PACKET_LOSS_PERC = 4002, 4010, 4012, 4014
_SET_SIGNAL, _SIGNAL_VOICE, _GET_LOOKAHEAD, _RESET_STATE = 4024, 3001, 4027, 4028


class OpusError(VoiceClientError):
    """libopus is missing or refused a call."""


def _candidates() -> Iterator[str]:
    """PyAV's libopus, then the system's: looked up only if PyAV's will not load (`find_library` runs `ldconfig`,
    about 7 ms of a call's start)."""
    try:
        import av

        base = os.path.dirname(av.__file__)
        for pattern in ("../av.libs/libopus*.so*", ".dylibs/libopus*.dylib", "../av.libs/opus*.dll", "opus*.dll"):
            yield from sorted(glob.glob(os.path.join(base, pattern)))
    except ImportError:  # av is a dependency; kept honest
        pass
    system = ctypes.util.find_library("opus")
    if system:
        yield system


@cache
def library() -> ctypes.CDLL:
    """The libopus this process uses (PyAV's copy first), loaded once."""
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            tried.append(f"{path}: {exc}")
            continue
        _declare(lib)
        return lib
    reasons = "".join("; " + t for t in tried)
    raise OpusError("libopus not found (PyAV's wheel carries one; else install libopus0)" + reasons)


def _declare(lib: ctypes.CDLL) -> None:
    c_int, c_int32, p = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_decoder_create.argtypes = [c_int32, c_int, ctypes.POINTER(c_int)]
    lib.opus_decoder_create.restype = p
    lib.opus_decoder_destroy.argtypes = [p]
    lib.opus_decode.argtypes = [p, ctypes.c_char_p, c_int32, p, c_int, c_int]
    lib.opus_decode.restype = c_int
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, ctypes.POINTER(c_int)]
    lib.opus_encoder_create.restype = p
    lib.opus_encoder_destroy.argtypes = [p]
    lib.opus_encode.argtypes = [p, p, c_int, ctypes.c_char_p, c_int32]
    lib.opus_encode.restype = c_int32
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, c_int32, c_int32]
    lib.opus_packet_get_nb_samples.restype = c_int
    if hasattr(lib, "opus_packet_has_lbrr"):
        lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, c_int32]
        lib.opus_packet_has_lbrr.restype = c_int
    lib.opus_strerror.argtypes = [c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    # opus_encoder_ctl is variadic: its arguments are wrapped at each call (a bare int would pass as 32 bits)


def version() -> str:
    return str(library().opus_get_version_string().decode())


def _check(code: int, what: str) -> int:
    if code < 0:
        raise OpusError(f"{what}: {library().opus_strerror(code).decode()}")
    return code


def packet_samples(packet: bytes) -> int:
    """Samples at 48 kHz in one Opus packet (20 ms: 960)."""
    return _check(library().opus_packet_get_nb_samples(packet, len(packet), RATE), "opus packet")


def packet_has_fec(packet: bytes) -> bool:
    """Whether the packet carries an in-band FEC copy (LBRR) of the frame before it (RFC 6716 4.2.3 and 4.2.5): only
    SILK and hybrid packets can; the LBRR flag is the bit after the VAD flags of the first SILK frame."""
    if not packet:
        return False
    lib = library()
    if hasattr(lib, "opus_packet_has_lbrr"):  # libopus 1.5 and newer say it themselves
        return bool(lib.opus_packet_has_lbrr(packet, len(packet)) > 0)
    toc = packet[0]
    config = toc >> 3
    if config >= 16:  # CELT only: no SILK layer, no LBRR
        return False
    code = toc & 3
    offset = 1
    if code == 3:  # the frame count byte (and padding/VBR) precede the frames; the first frame follows them
        if len(packet) < 2:
            return False
        count = packet[1]
        offset = 2
        if count & 0x40:  # padding lengths
            while offset < len(packet) and packet[offset] == 255:
                offset += 1
            offset += 1
        if count & 0x80 and (count & 0x3F) > 1:  # VBR: a length per frame but the last
            for _ in range((count & 0x3F) - 1):
                if offset >= len(packet):
                    return False
                offset += 2 if packet[offset] >= 252 else 1
    elif code == 2:  # the first frame's length
        if len(packet) < 2:
            return False
        offset += 2 if packet[1] >= 252 else 1
    if offset >= len(packet):
        return False
    silk_frames = (1, 1, 2, 3)[config & 3] if config < 12 else 1  # 40/60 ms SILK packets hold 2/3 VAD flags
    # The first byte of the range-coded SILK frame starts with the VAD flags, then the LBRR flag, MSB first. The
    # range coder's first symbols are raw bits here (flags coded with probability 1/2 equal their bits).
    first = packet[offset]
    return bool(first >> (7 - silk_frames) & 1)


class OpusDecoder:
    """One stream's decoder: `decode(packet)`, `conceal()` for a frame that never came, `recover(next_packet)` for one
    the next packet's FEC can rebuild. Every call returns int16 mono at 48 kHz."""

    def __init__(self) -> None:
        lib = library()
        err = ctypes.c_int()
        self._lib = lib
        self._state = lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
        _check(err.value, "opus decoder")
        self._pcm = np.zeros(MAX_FRAME, np.int16)
        self._pcm_at = self._pcm.ctypes.data  # (numpy's `.ctypes` takes 4 us a call: read once)
        self.last_samples = FRAME

    def _run(self, data: bytes | None, samples: int, fec: int) -> np.ndarray:
        if self._state is None:
            raise OpusError("the Opus decoder is closed")
        n = self._lib.opus_decode(self._state, data, len(data) if data else 0, self._pcm_at, samples, fec)
        _check(n, "opus decode")
        return self._pcm[: int(n)].copy()

    def decode(self, packet: bytes) -> np.ndarray:
        pcm = self._run(packet, MAX_FRAME, 0)
        self.last_samples = pcm.size or self.last_samples
        return pcm

    def conceal(self, samples: int | None = None) -> np.ndarray:
        """Packet loss concealment for `samples` (default: the last packet's length)."""
        return self._run(None, samples or self.last_samples, 0)

    def recover(self, next_packet: bytes, samples: int | None = None) -> np.ndarray:
        """The frame before `next_packet`, from its FEC copy (or concealed, when it has none); `next_packet` itself
        is then decoded as usual."""
        return self._run(next_packet, samples or self.last_samples, 1)

    def close(self) -> None:
        if self._state is not None:
            self._lib.opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class OpusEncoder:
    """A mono 48 kHz encoder whose FEC, expected loss and bitrate can change between frames."""

    def __init__(self, bitrate: int, application: int = LOWDELAY, complexity: int | None = None) -> None:
        lib = library()
        err = ctypes.c_int()
        self._lib = lib
        self.application = application
        self._state = lib.opus_encoder_create(RATE, 1, application, ctypes.byref(err))
        _check(err.value, "opus encoder")
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self._in = np.zeros(MAX_FRAME, np.int16)
        self._in_at = self._in.ctypes.data
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_SIGNAL, _SIGNAL_VOICE)
        if complexity is not None:
            self._ctl(_SET_COMPLEXITY, complexity)
        value = ctypes.c_int32()
        state = ctypes.c_void_p(self._state)
        _check(lib.opus_encoder_ctl(state, ctypes.c_int(_GET_LOOKAHEAD), ctypes.byref(value)), "opus lookahead")
        self.lookahead = value.value  # samples
        self.fec = False
        self.loss_percent = 0

    def _ctl(self, request: int, value: int) -> None:
        state = ctypes.c_void_p(self._state)
        _check(self._lib.opus_encoder_ctl(state, ctypes.c_int(request), ctypes.c_int32(value)), "opus ctl")

    def set_fec(self, enabled: bool, loss_percent: int) -> None:
        """In-band FEC on (with the loss it should protect against, 1-100 %) or off. Only SILK and hybrid packets
        carry it: a low-delay (CELT) encoder accepts the setting and sends none."""
        loss_percent = max(0, min(100, int(loss_percent)))
        self._ctl(_SET_INBAND_FEC, 1 if enabled else 0)
        self._ctl(_SET_PACKET_LOSS_PERC, loss_percent)
        self.fec, self.loss_percent = enabled, loss_percent

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame (2.5-60 ms of int16 mono) to one packet."""
        if self._state is None:
            raise OpusError("the Opus encoder is closed")
        size = pcm.size
        if size > MAX_FRAME:
            raise OpusError(f"opus encode: {size} samples is more than a packet holds")
        self._in[:size] = pcm.reshape(-1)  # into the buffer whose address was read once
        n = self._lib.opus_encode(self._state, self._in_at, size, self._out, MAX_PACKET)
        _check(n, "opus encode")
        return self._out.raw[:n]

    def close(self) -> None:
        if self._state is not None:
            self._lib.opus_encoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
