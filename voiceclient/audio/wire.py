"""The session's audio formats on the JSON wire (`input_audio_buffer.append`, `response.output_audio.delta`):
`{"type": "audio/pcm", "rate": 24000}` (16-bit little-endian mono), `{"type": "audio/pcmu"}` and
`{"type": "audio/pcma"}` (G.711 at 8 kHz). Inside voiceclient audio is 24 kHz int16; input is converted here, at
the edge; output leaves through `server/deltas.py`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import Resampler

LAWS = {"audio/pcmu": "ulaw", "audio/pcma": "alaw"}


class InputDecoder:
    """base64 audio in the session's input format -> 24 kHz int16, one stream (the resampler keeps its state
    across chunks, so 8 kHz G.711 arrives without clicks at chunk edges)."""

    def __init__(self) -> None:
        self._fmt: str | None = None
        self._resampler: Resampler | None = None

    def decode(self, audio: str, fmt: dict[str, Any]) -> np.ndarray:
        """Raises ValueError (with a one-line reason) for audio that is not base64 in `fmt`."""
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        kind = fmt.get("type", "audio/pcm")
        if kind != self._fmt:
            self._fmt = kind
            self._resampler = Resampler(g711.G711_RATE, API_RATE) if kind in LAWS else None
        law = LAWS.get(kind)
        if law is None:
            if len(data) % 2:
                raise ValueError("PCM16 audio must be a whole number of 2-byte samples")
            return np.frombuffer(data, dtype="<i2").astype(np.int16)
        assert self._resampler is not None
        return self._resampler.process(g711.decode(data, law))
