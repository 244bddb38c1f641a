"""libopus through ctypes: concealment, FEC recovery, and the LBRR flag read from the packet."""

from __future__ import annotations

import numpy as np
import pytest

from voiceclient.audio import opus
from voiceclient.audio.format import dominant_frequency

pytestmark = pytest.mark.timeout(30)


def tone(hz: float, seconds: float, rate: int = opus.RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def packets(pcm: np.ndarray, application: int, fec: bool) -> list[bytes]:
    encoder = opus.OpusEncoder(32_000, application)
    encoder.set_fec(fec, 10)
    return [encoder.encode(pcm[i : i + opus.FRAME]) for i in range(0, pcm.size - opus.FRAME + 1, opus.FRAME)]


def test_low_delay_packets_carry_no_fec_and_voip_packets_do() -> None:
    pcm = tone(300, 1.0)
    assert not any(opus.packet_has_fec(p) for p in packets(pcm, opus.LOWDELAY, fec=True))
    assert sum(opus.packet_has_fec(p) for p in packets(pcm, opus.VOIP, fec=True)) > 25
    assert not any(opus.packet_has_fec(p) for p in packets(pcm, opus.VOIP, fec=False))
    assert all(opus.packet_samples(p) == opus.FRAME for p in packets(pcm, opus.VOIP, fec=False))


def test_a_lost_frame_is_rebuilt_from_the_next_packets_fec_better_than_concealed() -> None:
    pcm = tone(300, 1.0)
    sent = packets(pcm, opus.VOIP, fec=True)
    lost = next(i for i in range(20, len(sent)) if opus.packet_has_fec(sent[i + 1]))
    clean = opus.OpusDecoder()
    reference = [clean.decode(p) for p in sent]

    def error(rebuilt: np.ndarray) -> float:
        return float(np.sqrt(np.mean((rebuilt.astype(float) - reference[lost]) ** 2)))

    fec, plc = opus.OpusDecoder(), opus.OpusDecoder()
    for p in sent[:lost]:
        fec.decode(p)
        plc.decode(p)
    recovered, concealed = fec.recover(sent[lost + 1]), plc.conceal()
    assert recovered.size == concealed.size == opus.FRAME
    assert dominant_frequency(recovered, opus.RATE) == pytest.approx(300, abs=15)
    assert error(recovered) < error(concealed)
    assert np.abs(concealed).max() > 1000  # concealment continues the tone; it is not a hole
