"""G.711 mu-law and A-law (`audio/pcmu`, `audio/pcma`: 8 kHz, one byte a sample), as the Realtime API's WebSocket
formats carry them. numpy lookup tables built once from the ITU/Sun reference algorithm (the one CPython's
`audioop` used; `audioop` is deprecated and gone in 3.13)."""

from __future__ import annotations

import functools

import numpy as np

G711_RATE = 8000
_SEG_U = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_A = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


@functools.cache
def _tables(law: str) -> tuple[np.ndarray, np.ndarray]:
    """(encode: 65536 int16 -> uint8, indexed by the sample as uint16; decode: 256 uint8 -> int16)."""
    pcm = np.arange(-32768, 32768, dtype=np.int64)
    code = np.arange(256, dtype=np.int64)
    if law == "ulaw":
        v = pcm >> 2
        mask = np.where(v < 0, 0x7F, 0xFF)
        v = np.minimum(np.abs(v), 8159) + 0x21
        seg = np.searchsorted(_SEG_U, v)  # the first segment whose end is >= v
        enc = np.where(seg >= 8, 0x7F, (seg << 4) | ((v >> (np.minimum(seg, 7) + 1)) & 0xF)) ^ mask
        u = ~code & 0xFF
        t = (((u & 0xF) << 3) + 0x84) << ((u & 0x70) >> 4)
        dec = np.where(u & 0x80, 0x84 - t, t - 0x84)
    elif law == "alaw":
        v = pcm >> 3
        mask = np.where(v >= 0, 0xD5, 0x55)
        v = np.where(v >= 0, v, -v - 1)
        seg = np.searchsorted(_SEG_A, v)
        shift = np.where(seg < 2, 1, np.minimum(seg, 7))
        enc = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((v >> shift) & 0xF)) ^ mask
        a = code ^ 0x55
        t = (a & 0xF) << 4
        s = (a & 0x70) >> 4
        t = np.where(s == 0, t + 8, np.where(s == 1, t + 0x108, (t + 0x108) << np.maximum(s - 1, 0)))
        dec = np.where(a & 0x80, t, -t)
    else:
        raise ValueError(f"unknown G.711 law {law!r}")
    encode = np.empty(65536, np.uint8)
    encode[pcm.astype(np.int16).view(np.uint16)] = enc.astype(np.uint8)
    return encode, dec.astype(np.int16)


def encode(pcm: np.ndarray, law: str) -> bytes:
    """int16 PCM (8 kHz) -> G.711 bytes (`law`: "ulaw" or "alaw")."""
    table, _ = _tables(law)
    return table[np.ascontiguousarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def decode(data: bytes, law: str) -> np.ndarray:
    """G.711 bytes -> int16 PCM (8 kHz)."""
    _, table = _tables(law)
    return table[np.frombuffer(data, dtype=np.uint8)]
