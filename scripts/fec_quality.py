"""Encode cost and quality under loss of the uplink's two modes: low-delay (clean) and VoIP with in-band FEC at
complexities 10, 5 and 3. Speech (fixtures/hello.wav, 10 s) loses 5 % of its packets at random; the receiver
rebuilds a lost frame from the next packet's FEC when it has some (`OpusDecoder.recover`), else conceals it.
Prints microseconds per 20 ms frame and the SNR against the same stream decoded without loss.

    .venv/bin/python scripts/fec_quality.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from voiceclient.audio import opus
from voiceclient.audio.sources import WavSource

SPEECH = np.resize(WavSource(Path(__file__).resolve().parents[1] / "fixtures" / "hello.wav").pcm, opus.RATE * 10)
FRAMES = [SPEECH[i * opus.FRAME : (i + 1) * opus.FRAME] for i in range(SPEECH.size // opus.FRAME)]


def encode(application: int, complexity: int, fec: bool) -> tuple[list[bytes], float]:
    best = float("inf")
    for _ in range(3):
        encoder = opus.OpusEncoder(32_000, application, complexity)
        encoder.set_fec(fec, 10 if fec else 0)
        start = time.perf_counter()
        packets = [encoder.encode(f) for f in FRAMES]
        best = min(best, (time.perf_counter() - start) / len(FRAMES) * 1e6)
    return packets, best


def snr(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    return float(10 * np.log10(np.sum(want**2) / np.sum((got - want) ** 2)))


def main() -> None:
    lost = set(np.flatnonzero(np.random.default_rng(1).random(len(FRAMES)) < 0.05)) - {0}
    for name, application, complexity, fec in (
        ("low-delay", opus.LOWDELAY, 10, False),
        ("VoIP+FEC", opus.VOIP, 10, True),
        ("VoIP+FEC", opus.VOIP, 5, True),
        ("VoIP+FEC", opus.VOIP, 3, True),
    ):
        packets, micros = encode(application, complexity, fec)
        decoder = opus.OpusDecoder()
        clean = np.concatenate([decoder.decode(p) for p in packets])
        decoder, heard = opus.OpusDecoder(), []
        for i, packet in enumerate(packets):
            following = packets[i + 1] if i + 1 < len(packets) and i + 1 not in lost else None
            if i not in lost:
                heard.append(decoder.decode(packet))
            elif following is not None and opus.packet_has_fec(following):
                heard.append(decoder.recover(following))
            else:
                heard.append(decoder.conceal())
        print(
            f"{name:9} complexity {complexity:2}: {micros:4.0f} us/frame, "
            f"{sum(map(len, packets)) * 8 / 10 / 1000:.1f} kbit/s, "
            f"SNR under 5 % loss {snr(np.concatenate(heard), clean):.1f} dB"
        )


if __name__ == "__main__":
    main()
