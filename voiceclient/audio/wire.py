"""The session's audio formats on the JSON wire (`input_audio_buffer.append`, `response.output_audio.delta`):
`{"type": "audio/pcm", "rate": 24000}` (16-bit little-endian mono), `{"type": "audio/pcmu"}` and
`{"type": "audio/pcma"}` (G.711 at 8 kHz), and the older names `pcm16`, `g711_ulaw` and `g711_alaw`. Inside
voiceclient audio is 24 kHz int16: `WireEncoder` and `WireDecoder` convert at the edge, one stream each;
`WireFormat` packs and unpacks samples already at the format's own rate."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import Resampler

PCM = "audio/pcm"
LAWS = {"audio/pcmu": "ulaw", "audio/pcma": "alaw"}
PCM_RATES = (16000, 24000)  # PCM16's rates (GPT-Live has both; the Realtime API only 24 kHz)
LEGACY = {"pcm16": PCM, "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}

FormatSpec: TypeAlias = Mapping[str, Any] | str | None
"""A format as sessions and apps give it: a dict with a `type`, a name, or None (PCM16)."""


@dataclass(frozen=True)
class WireFormat:
    """One audio format of the wire: its kind (`audio/pcm`, `audio/pcmu` or `audio/pcma`) and sample rate."""

    kind: str
    rate: int

    @property
    def law(self) -> str | None:
        """The G.711 law ("ulaw" or "alaw"), None for PCM16."""
        return LAWS.get(self.kind)

    def pack(self, pcm: np.ndarray) -> bytes:
        """int16 samples at this format's rate -> its bytes."""
        law = self.law
        return g711.encode(pcm, law) if law else pcm.astype("<i2").tobytes()

    def unpack(self, data: bytes) -> np.ndarray:
        """This format's bytes -> int16 samples at its rate (ValueError: PCM16 that is not whole samples)."""
        law = self.law
        if law:
            return g711.decode(data, law)
        if len(data) % 2:
            raise ValueError("PCM16 audio must be a whole number of 2-byte samples")
        return np.frombuffer(data, dtype="<i2").astype(np.int16)


def wire_format(fmt: FormatSpec) -> WireFormat:
    """A format as given (`{"type": "audio/pcmu"}`, `"g711_ulaw"`, None...) -> its kind and rate. PCM16 is
    24 kHz on the Realtime API, 16 or 24 kHz on GPT-Live (its `rate`); a kind not known is taken as PCM16, as the
    server takes it."""
    name = fmt if isinstance(fmt, str) else str((fmt or {}).get("type", PCM))
    kind = LEGACY.get(name, name)
    if kind in LAWS:
        return WireFormat(kind, g711.G711_RATE)
    rate = fmt.get("rate") if isinstance(fmt, Mapping) else None
    return WireFormat(PCM, rate if rate in PCM_RATES else API_RATE)


class _Stream:
    """The resampler of one stream between 24 kHz and a format's rate, started again when the format changes."""

    def __init__(self, to_api: bool) -> None:
        self._to_api = to_api
        self._format: WireFormat | None = None
        self._resampler: Resampler | None = None

    def resampler(self, fmt: WireFormat) -> Resampler | None:
        if fmt != self._format:
            self._format = fmt
            rates = (fmt.rate, API_RATE) if self._to_api else (API_RATE, fmt.rate)
            self._resampler = Resampler(*rates) if fmt.rate != API_RATE else None
        return self._resampler

    def flush(self) -> np.ndarray:
        """What the resampler still holds; it starts again with the next chunk."""
        return self._resampler.flush() if self._resampler is not None else np.zeros(0, np.int16)


class WireEncoder:
    """24 kHz int16 -> a format's bytes, one stream (the resampler to 8 kHz keeps its state across chunks)."""

    def __init__(self) -> None:
        self._stream = _Stream(to_api=False)

    def encode(self, pcm: np.ndarray, fmt: FormatSpec) -> bytes:
        """The next chunk, in `fmt`."""
        wire = wire_format(fmt)
        resampler = self._stream.resampler(wire)
        return wire.pack(resampler.process(pcm) if resampler else pcm)

    def encode_base64(self, pcm: np.ndarray, fmt: FormatSpec) -> str:
        """The next chunk, in `fmt`, as base64 text (an event's `audio` or `delta`)."""
        return base64.b64encode(self.encode(pcm, fmt)).decode()


class WireDecoder:
    """A format's bytes -> 24 kHz int16, one stream (the resampler from 8 kHz keeps its state across chunks, so
    G.711 arrives without clicks at chunk edges).

    `lenient`: for audio a server sent; characters that are not base64 are skipped and an odd last byte of PCM16
    is dropped, where strict decoding refuses them."""

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        self._stream = _Stream(to_api=True)

    def decode(self, audio: str, fmt: FormatSpec) -> np.ndarray:
        """The next base64 chunk in `fmt`. Raises ValueError with a one-line reason for audio that is not."""
        try:
            data = base64.b64decode(audio, validate=not self.lenient)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        return self.decode_bytes(data, fmt)

    def flush(self) -> np.ndarray:
        """The tail the resampler still holds (G.711's last ~2 ms): the end of the stream, or of a turn committed
        by hand; the next chunk starts a fresh stream."""
        return self._stream.flush()

    def decode_bytes(self, data: bytes, fmt: FormatSpec) -> np.ndarray:
        """The next chunk of bytes in `fmt`."""
        wire = wire_format(fmt)
        resampler = self._stream.resampler(wire)
        if self.lenient and wire.law is None:
            data = data[: len(data) // 2 * 2]
        pcm = wire.unpack(data)
        return resampler.process(pcm) if resampler else pcm
